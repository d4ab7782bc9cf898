"""odezoo's additions to diffrax's adjoints: reverse-reconstruction checks."""

from __future__ import annotations

from jaxtyping import Array

from ._errors import InputError
from ._solve import reconstruction_error
from .nn._base import AbstractModel, AbstractODEModel


def reversibility_error(model: AbstractODEModel, x: Array) -> Array:
    """How well a reverse-time solve recovers the initial state: the health check of
    backsolve (`BacksolveAdjoint`) gradients.

    The backsolve adjoint recomputes the forward trajectory by integrating backwards
    from the final state. When the dynamics are hard to reverse (strongly contracting
    forwards, so expanding backwards) that reconstruction drifts, and so do the
    gradients. As the seed chapter suggests, this integrates `x` forwards to `t1`, then
    backwards to `t0`, and measures how far the result lies from the initial state.

    Arguments:

    - `model`: an ODE model, an [`AbstractODEModel`][odezoo.nn.AbstractODEModel]
      ([`ODENet`][odezoo.ODENet], [`CNF`][odezoo.CNF] with the exact trace); any other
      model raises [`InputError`][odezoo.InputError]. Its solver's tolerances are used.
    - `x`: one example, or a batch (then the worst case over the batch with
      per-example solves, or the whole batch's error when it is solved as one ODE).

    Returns:

    A scalar: the RMS of `(y0_reconstructed - y0) / (atol + rtol * |y0|)`. Values of
    order 1-10 mean the reverse solve is as accurate as the forward one; much larger
    values mean backsolve gradients cannot be trusted. `Solver(adjoint="checked")`
    applies this test in every solve and falls back to checkpointing above
    `check_threshold`.

    Example:

    ```python
    import jax, jax.numpy as jnp, odezoo

    net = odezoo.ODENet(2, key=jax.random.key(0))
    err = odezoo.reversibility_error(net, jnp.ones((16, 2)))
    ```
    """
    if not isinstance(model, AbstractODEModel):
        what = type(model).__name__
        hint = ""
        if isinstance(model, AbstractModel) and model.ode_model() is not None:
            hint = (
                ": pass its ODE part, `model.ode_model()`, with that part's input "
                "(e.g. a Classifier's stem output)"
            )
        raise InputError(
            f"reversibility_error applies to ODE models (ODENet, CNF), not to a {what}{hint}"
        )
    field, y0, t0, t1, batched = model.ode(x)
    return reconstruction_error(model.solver, field, y0, None, t0=t0, t1=t1, batched=batched)
