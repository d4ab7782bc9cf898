"""What a solve reports: its statistics ([`SolveStats`][odezoo.SolveStats]) and the
forward evaluations each diffrax solver makes per step."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._accumulate import ErrorAccumulator
from ._result import SolveResult, result_name, result_of_code
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
    - `failed`: how the solve ended, as the code of a
      [`SolveResult`][odezoo.SolveResult] member: 0 on success, nonzero on failure
      (1: `max_steps` reached; 2: diverged; 3: non-finite input). `stats.failed != 0`
      means the solve failed; `stats.result` is the member.
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
    def result(self) -> SolveResult:
        """How the solve ended: `failed` as a [`SolveResult`][odezoo.SolveResult]
        member (traceable: compare it with `==`, read its message as
        `SolveResult[stats.result]`)."""
        return result_of_code(self.failed)

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
                    shown += f" ({result_name(result_of_code(value))})"
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
        `failed` is a [`SolveResult`][odezoo.SolveResult] code."""
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
