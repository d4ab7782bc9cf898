"""Why a training step failed: `Failure`, an `equinox.Enumeration` like diffrax's `RESULTS`."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array


class Failure(eqx.Enumeration):
    """Why [`fit`][odezoo.train.fit] stopped a run: the `cause` of a
    [`TrainingError`][odezoo.train.TrainingError] is one of these member names, and the
    message says what happened and what to change.

    The train step computes a `Failure` inside `jit` (as diffrax's `RESULTS`), and the
    host turns anything but `successful` into a `TrainingError`. Compare members with
    `==` (`failure == Failure.bad_batch`), and read a member's message as
    `Failure[failure]`.

    Example:

    ```python
    from odezoo.train import Failure

    print(Failure[Failure.max_steps])
    assert bool(Failure.bad_batch != Failure.successful)
    ```
    """

    successful = ""
    bad_batch = "the batch contains NaN or inf (bad data); check the dataset or the sampler"
    nonfinite_loss = (
        "the loss is not finite (divergence); lower the learning rate, clip gradients "
        "(optax.clip_by_global_norm) or tighten the solver tolerances"
    )
    nonfinite_grad = (
        "a gradient is not finite (divergence); lower the learning rate or clip gradients "
        "(optax.clip_by_global_norm)"
    )
    max_steps = (
        "the ODE solve hit max_steps with a finite state before reaching its end time "
        "(the dynamics may have become stiff). Raise max_steps (config: "
        "solver.max_steps), loosen rtol/atol, or regularise the dynamics"
    )
    solve_diverged = (
        "the ODE solve diverged: its state became NaN/inf or blew up so fast that the "
        "step size collapsed. Raising max_steps will not help: lower the learning rate, "
        "clip gradients (optax.clip_by_global_norm), tighten rtol/atol or regularise the "
        "dynamics"
    )
    solve_nonfinite = (
        "the ODE solve was given NaN or inf (the batch was finite, so the model's "
        "parameters or its other inputs are not): lower the learning rate or clip "
        "gradients, and check the model's parameters"
    )


def failure_name(failure: Failure) -> str:
    """The member name of a (concrete) `Failure`, e.g. `"bad_batch"`."""
    for name in _NAMES:
        if bool(failure == getattr(Failure, name)):
            return name
    raise AssertionError(f"not a Failure member: {failure!r}")


_NAMES = (
    "successful",
    "bad_batch",
    "nonfinite_loss",
    "nonfinite_grad",
    "max_steps",
    "solve_diverged",
    "solve_nonfinite",
)


def first_failure(checks: list[tuple[Array, Failure]]) -> Failure:
    """The `Failure` of the first `(failed, failure)` pair whose `failed` holds
    (traceable); `Failure.successful` when none does."""
    out = Failure.successful
    for failed, failure in reversed(checks):
        out = Failure.where(jnp.asarray(failed), failure, out)
    return out
