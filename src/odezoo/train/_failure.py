"""Why a training step failed: `Failure`, which extends the solve results
([`SolveResult`][odezoo.SolveResult]) as diffrax's `RESULTS` extends optimistix's."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array

from .._result import SolveResult, result_name


class Failure(SolveResult):
    """Why [`fit`][odezoo.train.fit] stopped a run: the `cause` of a
    [`TrainingError`][odezoo.train.TrainingError] is one of these member names, and the
    message says what happened and what to change.

    It extends [`SolveResult`][odezoo.SolveResult]: a failed solve in a training step
    is that solve's member (`max_steps`, `solve_diverged`, `solve_nonfinite`;
    `Failure.promote(stats.result)`), beside the loop's own failures (`bad_batch`,
    `nonfinite_loss`, `nonfinite_grad`). The train step computes a `Failure` inside
    `jit`, and the host turns anything but `successful` into a `TrainingError`.
    Compare members with `==` (`failure == Failure.bad_batch`), and read a member's
    message as `Failure[failure]`.

    Example:

    ```python
    import odezoo
    from odezoo.train import Failure

    print(Failure[Failure.max_steps])
    assert bool(Failure.bad_batch != Failure.successful)
    assert bool(Failure.promote(odezoo.SolveResult.solve_diverged) == Failure.solve_diverged)
    ```
    """

    bad_batch = "the batch contains NaN or inf (bad data); check the dataset or the sampler"
    nonfinite_loss = (
        "the loss is not finite (divergence); lower the learning rate, clip gradients "
        "(optax.clip_by_global_norm) or tighten the solver tolerances"
    )
    nonfinite_grad = (
        "a gradient is not finite (divergence); lower the learning rate or clip gradients "
        "(optax.clip_by_global_norm)"
    )


def failure_name(failure: Failure) -> str:
    """The member name of a (concrete) `Failure`, e.g. `"bad_batch"`."""
    return result_name(failure)


def first_failure(checks: list[tuple[Array, Failure]]) -> Failure:
    """The `Failure` of the first `(failed, failure)` pair whose `failed` holds
    (traceable); `Failure.successful` when none does."""
    out = Failure.successful
    for failed, failure in reversed(checks):
        out = Failure.where(jnp.asarray(failed), failure, out)
    return out
