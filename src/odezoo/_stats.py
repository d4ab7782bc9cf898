"""What a solve reports: how it ended ([`SolveStatus`][odezoo.SolveStatus]), its
statistics ([`SolveStats`][odezoo.SolveStats]) and the forward evaluations each
diffrax solver makes per step."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._accumulate import ErrorAccumulator
from ._static import field_names as _field_names
from ._static import python_number as _python_number

if TYPE_CHECKING:
    from ._solver import Solver

# Function evaluations of the vector field at start-up and per attempted step (accepted
# or rejected), for the diffrax solvers whose counts we have checked against a counting
# vector field (tests/test_solver.py). Measured with diffrax 0.7: an automatically chosen
# dt0 adds no evaluation that survives compilation (its f(t0, y0) is shared with the
# solver's first-same-as-last evaluation). Other solvers report NaN: measure them with
# `count_evaluations`.
STAGE_EVALUATIONS: dict[type, tuple[int, int]] = {
    diffrax.Euler: (0, 1),
    diffrax.Heun: (0, 2),
    diffrax.Midpoint: (0, 2),
    diffrax.Ralston: (0, 2),
    diffrax.Tsit5: (1, 6),
    diffrax.Dopri5: (1, 6),
}


class SolveStatus(enum.IntEnum):
    """How a solve ended: the meaning of [`SolveStats.failed`][odezoo.SolveStats].

    A larger code is the more basic cause: a batch or a sequence of solves reports the
    largest code of its parts.

    - `SUCCESSFUL` (0): the solve reached `t1` with a finite state.
    - `MAX_STEPS` (1): the step budget ran out with a finite state that was not
      blowing up: the problem needs more steps (raise `max_steps`, loosen
      `rtol`/`atol`), e.g. because it is stiff.
    - `DIVERGED` (2): the input was finite but the state blew up: the solution became
      NaN/inf (a fixed-step solver stepping into overflow), or the adaptive solver ran
      out of steps where the state was blowing up (the vector field is NaN/inf there,
      or `|y|` grows fast enough to overflow before `t1`). diffrax reports both as
      `max_steps` reached: it rejects every step that would make the state non-finite,
      and the step size collapses. The dynamics blew up: lower the learning rate,
      tighten the tolerances, regularise the dynamics; more steps will not help.
    - `NONFINITE_INPUT` (3): the initial state, the arguments or the times held NaN or
      inf (diffrax reports this as `max_steps` reached after rejecting every step, or,
      for a fixed-step solver or a NaN `t1`, as a success).

    Each member's `advice` says what happened and what to do.

    Example:

    ```python
    import jax.numpy as jnp
    import odezoo

    _, stats = odezoo.solve(odezoo.Solver(), lambda t, y, a: -y, jnp.array([jnp.nan]))
    assert stats.status == odezoo.SolveStatus.NONFINITE_INPUT
    print(stats.status.advice)
    ```
    """

    SUCCESSFUL = 0
    MAX_STEPS = 1
    DIVERGED = 2
    NONFINITE_INPUT = 3

    @property
    def advice(self) -> str:
        """What happened and what to do, in one or two sentences (for messages such as
        a training loop's; `check_solution` adds the model, interval and solver)."""
        return _ADVICE[self]


_ADVICE = {
    SolveStatus.SUCCESSFUL: "The solve succeeded.",
    SolveStatus.MAX_STEPS: (
        "The ODE solve hit max_steps with a finite state: raise max_steps (config: "
        "solver.max_steps; `model.with_solver(max_steps=...)`) or loosen rtol/atol; if it "
        "keeps happening the dynamics have become stiff: regularise them."
    ),
    SolveStatus.DIVERGED: (
        "The ODE solve diverged: the state became NaN/inf or blew up so fast that the step "
        "size collapsed. Lower the learning rate, tighten rtol/atol (or take smaller fixed "
        "steps), or regularise the dynamics; raising max_steps will not help."
    ),
    SolveStatus.NONFINITE_INPUT: (
        "The ODE solve was given NaN or inf (in the input, initial state, arguments or "
        "times): check the data fed to the model."
    ),
}


class SolveStats(eqx.Module):
    """Statistics of one (possibly batched) solve.

    Every field is a JAX scalar, so a `SolveStats` can be returned from `jit`.
    `print(stats)` shows the values (or, for traced statistics inside `jit`, their
    dtypes and shapes); [`to_dict`][odezoo.SolveStats.to_dict] gives them as Python
    numbers.

    Fields:

    - `num_steps`: steps attempted (accepted plus rejected). In `"vmap"` batching,
      the largest over examples, which is what the vectorised loop runs for.
    - `num_accepted_steps`, `num_rejected_steps`: likewise.
    - `nfe`: forward evaluations of the vector field. One evaluation of a batch solved
      as one ODE counts once. NaN for a diffrax solver whose stage count odezoo does not
      know; use [`count_evaluations`][odezoo.count_evaluations] then.
    - `nfe_backward`: vector-Jacobian products of the vector field that a backward pass
      through this solve computes, for the `"checkpoint"` and `"direct"` adjoints:
      every forward evaluation except the two that choose the initial step when `dt0`
      is automatic (no gradient flows through the step size). NaN where it is not known
      before the backward solve runs (`"backsolve"`, `"checked"`: measure those with
      [`count_evaluations`][odezoo.count_evaluations]) or where `nfe` is NaN.
    - `t_reached`: the time the solve got to (equal to `t1` on success; in `"vmap"`
      batching, the least advanced example).
    - `failed`: how the solve ended, a [`SolveStatus`][odezoo.SolveStatus] code:
      0 on success, nonzero on failure (1: `max_steps` reached; 2: diverged; 3:
      non-finite input). `stats.failed != 0` means the solve failed.
    - `reversibility_error`: for `adjoint="checked"`, the reconstruction error of the
      initial state by a reverse solve, in units of the tolerance (see
      [`reversibility_error`][odezoo.reversibility_error]); NaN otherwise.
    - `fell_back`: for `adjoint="checked"`, 1 when checkpointing was used instead of
      backsolve; 0 otherwise.
    """

    num_steps: Array
    num_accepted_steps: Array
    num_rejected_steps: Array
    nfe: Array
    nfe_backward: Array
    t_reached: Array
    failed: Array
    reversibility_error: Array
    fell_back: Array

    @property
    def status(self) -> SolveStatus:
        """`failed` as a [`SolveStatus`][odezoo.SolveStatus] (call outside `jit`)."""
        return SolveStatus(int(self.failed))

    def to_dict(self) -> dict[str, Any]:
        """The statistics as a dict of Python numbers (call outside `jit`).

        Integer-valued numbers become `int`, the others `float` (NaN stays NaN); a
        statistic with a batch axis (e.g. under the user's own `jax.vmap`) becomes a
        list.

        Example:

        ```python
        import jax.numpy as jnp
        import odezoo

        _, stats = odezoo.solve(odezoo.Solver(), lambda t, y, a: -y, jnp.ones(2))
        assert stats.to_dict()["failed"] == 0
        ```
        """
        return {name: _python_number(getattr(self, name)) for name in _field_names(self)}

    def __repr__(self) -> str:
        parts = []
        for name in _field_names(self):
            value = getattr(self, name)
            if isinstance(value, jax.core.Tracer):
                shown = f"{value.dtype}{list(value.shape)}"
            else:
                shown = str(_python_number(value))
                if name == "failed" and np.ndim(value) == 0:
                    shown += f" ({SolveStatus(int(value)).name.lower()})"
            parts.append(f"{name}={shown}")
        return "SolveStats(" + ", ".join(parts) + ")"

    @classmethod
    def of_solve(
        cls,
        solver: Solver,
        counts: dict[str, Array],
        failed: Array,
        reversibility_error: Array | None = None,
        fell_back: Array | None = None,
    ) -> SolveStats:
        """The statistics of a diffrax solve by `solver`: `counts` holds diffrax's
        `num_steps`, `num_accepted_steps`, `num_rejected_steps` and the `t_reached`;
        the forward and backward evaluations follow from the solver and its adjoint.
        `failed` is a [`SolveStatus`][odezoo.SolveStatus] code."""
        nfe = forward_evaluations(solver, counts["num_steps"])
        if reversibility_error is None:
            reversibility_error = jnp.asarray(jnp.nan, jnp.float32)
        return cls(
            num_steps=counts["num_steps"],
            num_accepted_steps=counts["num_accepted_steps"],
            num_rejected_steps=counts["num_rejected_steps"],
            nfe=nfe,
            nfe_backward=solver.adjoint.backward_evaluations(solver, nfe),
            t_reached=counts["t_reached"],
            failed=jnp.asarray(failed).astype(jnp.int32),
            reversibility_error=reversibility_error,
            fell_back=jnp.asarray(0 if fell_back is None else fell_back, jnp.int32),
        )

    @staticmethod
    def combine(stats: list[SolveStats] | SolveStats) -> SolveStats:
        """Sum the counts of several consecutive solves: a list (e.g. stacked CNF
        blocks), or one `SolveStats` whose fields are stacked along a leading axis (the
        solves of a `lax.scan`, as an ODE-RNN makes). Counts add up; the worst failure
        code, reversibility error and fall-back are kept; `t_reached` is the last."""
        if not isinstance(stats, SolveStats):
            if len(stats) == 1:
                return stats[0]
            stats = jax.tree_util.tree_map(lambda *v: jnp.stack(v), *stats)
        tot = lambda name: jnp.sum(getattr(stats, name), axis=0)
        worst = lambda name: jnp.max(getattr(stats, name), axis=0)
        return SolveStats(
            num_steps=tot("num_steps"),
            num_accepted_steps=tot("num_accepted_steps"),
            num_rejected_steps=tot("num_rejected_steps"),
            nfe=tot("nfe"),
            nfe_backward=tot("nfe_backward"),
            t_reached=stats.t_reached[-1],
            failed=worst("failed"),
            reversibility_error=worst("reversibility_error"),
            fell_back=worst("fell_back"),
        )


def forward_evaluations(solver: Solver, num_steps: Array) -> Array:
    """Forward evaluations of the field in a solve of `num_steps` steps (NaN when the
    diffrax solver's stage count is not known)."""
    inner = solver.solver
    if isinstance(inner, ErrorAccumulator):  # evaluates the field as its inner solver
        inner = inner.solver
    evals = STAGE_EVALUATIONS.get(type(inner))
    if evals is None:
        return jnp.full_like(num_steps, jnp.nan, dtype=jnp.float32)
    init, per_step = evals
    return solver.initial_step_evaluations + init + per_step * num_steps
