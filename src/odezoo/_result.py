"""How a solve ended: [`SolveResult`][odezoo.SolveResult], the one enumeration of solve
outcomes, which `odezoo.train.Failure` extends as diffrax's `RESULTS` extends
optimistix's."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike


class SolveResult(eqx.Enumeration):
    """How a solve ended: what [`SolveStats.result`][odezoo.SolveStats.result] holds.

    An `equinox.Enumeration`, usable inside `jit` like diffrax's `RESULTS`: compare
    members with `==` and read a member's message (what happened and what to do) as
    `SolveResult[member]`. [`odezoo.train.Failure`][odezoo.train.Failure] extends it
    with the training loop's own failures, so a failed solve in training keeps its
    member name (`TrainingError.cause`).

    Members, in the order of their codes (`SolveStats.failed`: a larger code is the
    more basic cause, so a batch or a sequence of solves reports the largest of its
    parts):

    - `successful` (0): the solve reached `t1` with a finite state.
    - `max_steps` (1): the step budget ran out with a finite state that was not
      blowing up: the problem needs more steps, e.g. because it is stiff.
    - `solve_diverged` (2): the input was finite but the state blew up: the solution
      became NaN/inf (a fixed-step solver stepping into overflow), or the adaptive
      solver ran out of steps where the state was blowing up. diffrax reports both as
      `max_steps` reached: it rejects every step that would make the state non-finite,
      and the step size collapses. More steps will not help.
    - `solve_nonfinite` (3): the initial state, the arguments or the times held NaN or
      inf (diffrax reports this as `max_steps` reached after rejecting every step, or,
      for a fixed-step solver or a NaN `t1`, as a success).

    Example:

    ```python
    import jax.numpy as jnp
    import odezoo

    _, stats = odezoo.solve(odezoo.Solver(), lambda t, y, a: -y, jnp.array([jnp.nan]))
    assert stats.result == odezoo.SolveResult.solve_nonfinite
    print(odezoo.SolveResult[stats.result])
    ```
    """

    successful = ""
    max_steps = (
        "the ODE solve hit max_steps with a finite state before reaching its end time "
        "(the dynamics may have become stiff). Raise max_steps (config: solver.max_steps; "
        "`model.with_solver(max_steps=...)`), loosen rtol/atol, or regularise the dynamics"
    )
    solve_diverged = (
        "the ODE solve diverged: its state became NaN/inf or blew up so fast that the "
        "step size collapsed. Raising max_steps will not help: lower the learning rate, "
        "clip gradients (optax.clip_by_global_norm), tighten rtol/atol (or take smaller "
        "fixed steps) or regularise the dynamics"
    )
    solve_nonfinite = (
        "the ODE solve was given NaN or inf (in its input, initial state, arguments or "
        "times): check the data fed to the model; in training on finite data, the "
        "model's parameters are not finite: lower the learning rate or clip gradients"
    )


def result_code(result: SolveResult) -> Array:
    """The int32 code of a member (its position in `SolveResult`), as
    [`SolveStats.failed`][odezoo.SolveStats] holds it."""
    return jnp.asarray(result._value, jnp.int32)


def result_of_code(code: ArrayLike) -> SolveResult:
    """The `SolveResult` of a code (traceable); an unknown code reads as `max_steps`,
    the cause that asks the user to look at the solve."""
    code = jnp.asarray(code)
    out = SolveResult.max_steps
    for member in (SolveResult.solve_nonfinite, SolveResult.solve_diverged):
        out = SolveResult.where(code == result_code(member), member, out)
    ok = SolveResult.successful
    return SolveResult.where(code == result_code(ok), ok, out)


def result_name(result) -> str:
    """The member name of a concrete member of `SolveResult` or of an enumeration that
    extends it (e.g. `"solve_diverged"`)."""
    enumeration = result._enumeration
    for name, member in enumeration._name_to_item.items():
        if bool(member == result):
            return name
    raise AssertionError(f"not a member of {enumeration.__name__}: {result!r}")
