"""The one place where odezoo calls `diffrax.diffeqsolve` for an ODE: [`solve`][odezoo.solve],
and [`check_solution`][odezoo.internal.check_solution], which turns a failed solve into an error
naming its cause. (SDEs are solved in `_sde.py`.)"""

from __future__ import annotations

import math
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from ._adjoint import AbstractAdjoint, CheckpointAdjoint
from ._backsolve import AbstractDerivativeField
from ._checks import register_message
from ._counting import CountedField
from ._errors import InputError, SolverError
from ._format import format_number
from ._initial_step import initial_step, rms
from ._result import SolveResult, result_code
from ._solver import Solver
from ._stats import SolveStats


class BatchField(eqx.Module):
    """The vector field of a batch solved as one ODE: `vmap` of the per-example field."""

    field: Callable
    has_example_args: bool = eqx.field(static=True)

    def __call__(self, t, y, args):
        axes = (None, 0) if self.has_example_args else None
        return jax.vmap(self.field, in_axes=(None, 0, axes))(t, y, args)


def _least_advanced(reached: Array, t0, t1) -> Array:
    forward = jnp.asarray(t1 >= t0)
    return jnp.where(forward, jnp.min(reached), jnp.max(reached))


def all_finite(tree: PyTree) -> Array:
    """Whether every floating-point leaf of `tree` (arrays and Python floats) is free of
    NaN and inf (traceable; `True` for a tree without any)."""
    leaves = [
        v
        for v in jax.tree_util.tree_leaves(tree)
        if isinstance(v, float | jax.Array | np.ndarray | np.floating)
        and jnp.issubdtype(jnp.result_type(v), jnp.inexact)
    ]
    if not leaves:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in leaves]))


def _blowing_up(field, t, y, args, t1) -> Array:
    """Whether the state `y` at time `t`, where a solve stopped, was blowing up: the
    field is NaN/inf there, or `y` grows fast enough (by `d log|y| / dt`) to overflow
    its dtype before `t1`. One evaluation of `field`, without gradient."""
    dynamic, static = eqx.partition((field, t, y, args), eqx.is_array)
    field, t, y, args = eqx.combine(jax.lax.stop_gradient(dynamic), static)
    f = field(t, y, args)
    flat_y = jnp.concatenate([jnp.ravel(v) for v in jax.tree_util.tree_leaves(y)])
    flat_f = jnp.concatenate([jnp.ravel(v) for v in jax.tree_util.tree_leaves(f)])
    flat_f = flat_f.astype(flat_y.dtype)
    size = jnp.max(jnp.abs(flat_y))
    unit = flat_y / jnp.where(size > 0, size, 1.0)  # scaled first: |y|^2 may overflow
    growth = jnp.sum(flat_f / jnp.where(size > 0, size, 1.0) * unit) / jnp.maximum(
        jnp.sum(unit**2), jnp.finfo(flat_y.dtype).tiny
    )
    headroom = jnp.log(jnp.finfo(flat_y.dtype).max) - jnp.log(jnp.maximum(size, 1.0))
    remaining = jnp.abs(jnp.asarray(t1, flat_y.dtype) - t)
    return ~jnp.all(jnp.isfinite(flat_f)) | (growth * remaining > headroom)


def _static_time(t) -> float | None:
    """`t` as a Python float when its value is known at trace time, else `None`."""
    if isinstance(t, jax.core.Tracer):
        return None
    try:
        return float(t)
    except (TypeError, ValueError):
        return None


def _fixed_dt0(solver: Solver, t0, t1):
    """The user's step size with the sign of the interval's direction."""
    a, b = _static_time(t0), _static_time(t1)
    if a is not None and b is not None:
        return solver.dt0 if b >= a else -solver.dt0
    return jnp.where(jnp.asarray(t1) >= jnp.asarray(t0), solver.dt0, -solver.dt0)


def _one_solve(
    solver: Solver,
    field,
    y0,
    args,
    t0,
    t1,
    ts,
    adjoint: AbstractAdjoint,
    probe=None,
    controlled=None,
):
    """A single diffrax solve of `field` (which already handles any batch axis).

    `probe`: the same field without an evaluation counter, for diagnosing a failure.
    `controlled`: the part of the state that controls the step size (as in `solve`).
    """
    # `t1=True` is always saved: on failure diffrax stores there the time it reached and
    # the last accepted state (entries of `ts` beyond it are filled with inf).
    saveat = diffrax.SaveAt(ts=ts, t1=True) if ts is not None else diffrax.SaveAt(t1=True)
    if solver.initial_step_evaluations:
        dt0 = initial_step(solver, field, y0, args, t0, t1, controlled)
    else:
        dt0 = _fixed_dt0(solver, t0, t1)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        solver.solver,
        t0,
        t1,
        dt0,
        y0,
        args=args,
        saveat=saveat,
        stepsize_controller=solver.step_controller(controlled=controlled),
        adjoint=adjoint.diffrax_adjoint(solver, _differentiates_itself(field)),
        max_steps=solver.max_steps,
        throw=False,
    )
    last = jax.tree_util.tree_map(lambda v: v[-1], sol.ys)
    if ts is not None:
        ys = jax.tree_util.tree_map(lambda v: v[:-1], sol.ys)
    else:
        ys = last
    stats = sol.stats
    stopped = sol.result != diffrax.RESULTS.successful
    # diffrax never reports a non-finite state: it rejects each step whose candidate is
    # NaN/inf and shrinks the step, so a state that blows up stalls the solve until
    # max_steps (with mostly rejected steps, or with steps too short to move t). A
    # fixed-step solver steps into NaN/inf and reports success.
    finite = jax.lax.stop_gradient(all_finite(last) & (stopped | all_finite(ys)))
    t_reached = jax.lax.stop_gradient(sol.ts[-1])
    probe = field if probe is None else probe
    blowing_up = jax.lax.cond(
        stopped & finite,
        lambda: _blowing_up(probe, t_reached, last, args, t1),
        lambda: jnp.asarray(False),
    )
    failed = jnp.where(
        ~finite | blowing_up,
        result_code(SolveResult.solve_diverged),
        jnp.where(stopped, result_code(SolveResult.max_steps), result_code(SolveResult.successful)),
    ).astype(jnp.int32)
    return ys, dict(
        num_steps=stats["num_steps"],
        num_accepted_steps=stats["num_accepted_steps"],
        num_rejected_steps=stats["num_rejected_steps"],
        failed=failed,
        t_reached=t_reached,
    )


def _differentiates_itself(field) -> bool:
    """Whether `field`, under odezoo's own wrappers (batching, counting), is an
    `AbstractDerivativeField`."""
    while isinstance(field, BatchField | CountedField):
        field = field.field
    return isinstance(field, AbstractDerivativeField)


def _reconstruction(solver, field, y0, args, t0, t1):
    """Forward solve then reverse solve; RMS error of the recovered y0 in tolerance units."""
    # No gradient flows through the check (the field may be a plain function).
    dynamic, static = eqx.partition((field, y0, args), eqx.is_array)
    field, y0, args = eqx.combine(jax.lax.stop_gradient(dynamic), static)
    plain = solver.replace(adjoint=CheckpointAdjoint())
    y1, _ = _one_solve(plain, field, y0, args, t0, t1, None, plain.adjoint)
    y0_rec, _ = _one_solve(plain, field, y1, args, t1, t0, None, plain.adjoint)
    scale = jax.tree_util.tree_map(lambda a: solver.atol + solver.rtol * jnp.abs(a), y0)
    scaled = jax.tree_util.tree_map(lambda a, b, s: (a - b) / s, y0_rec, y0, scale)
    return rms(scaled)


def reconstruction_error(
    solver: Solver,
    field: Callable,
    y0: PyTree,
    args: PyTree = None,
    *,
    t0,
    t1,
    batched: bool = False,
    example_args: PyTree = None,
) -> Array:
    """The reverse-reconstruction error of `y0` (see
    [`reversibility_error`][odezoo.reversibility_error]), batched as `solve` batches:
    the whole batch's error when it is solved as one ODE, the worst example's with
    per-example solves. The arguments are those of [`solve`][odezoo.solve]."""
    has_ex = example_args is not None
    if has_ex:
        args = (args, example_args)
    if batched and solver.batching == "batch":
        return _reconstruction(solver, BatchField(field, has_ex), y0, args, t0, t1)
    if batched:
        errs = jax.vmap(
            lambda yi, ai: _reconstruction(solver, field, yi, ai, t0, t1),
            in_axes=(0, (None, 0) if has_ex else None),
        )(y0, args)
        return jnp.max(errs)
    return _reconstruction(solver, field, y0, args, t0, t1)


def _check_times(t0, t1) -> None:
    for name, t in (("t0", t0), ("t1", t1)):
        value = _static_time(t)
        if value is not None and not math.isfinite(value):
            raise InputError(
                f"solve: {name}={value!r} is not a finite time; give finite t0 and t1 "
                "(t1 < t0 integrates backwards)."
            )


def solve(
    solver: Solver,
    field: Callable,
    y0: PyTree,
    args: PyTree = None,
    *,
    t0: float | Array = 0.0,
    t1: float | Array = 1.0,
    ts: Array | None = None,
    batched: bool = False,
    example_args: PyTree = None,
    controlled: Callable[[PyTree], PyTree] | None = None,
) -> tuple[PyTree, SolveStats]:
    """Solve `dy/dt = field(t, y, args)` from `t0` to `t1` with `solver`.

    Every ODE solve in odezoo, every model's, goes through this function (SDEs through
    [`solve_sde`][odezoo.solve_sde]).

    Arguments:

    - `solver`: a [`Solver`][odezoo.Solver].
    - `field`: the vector field of **one example**, `field(t, y, args) -> dy/dt`. It must
      be a pure function or an `equinox.Module`; parameters it should be differentiated
      with respect to must live in `field` (if it is a Module) or in `args`, never in a
      closure, since `BacksolveAdjoint` cannot see closed-over arrays.
    - `y0`: the initial state: one example, or a batch with a leading axis when
      `batched=True`.
    - `args`: passed through to `field`, shared by all examples.
    - `example_args`: optional per-example arguments (with a leading batch axis when
      `batched=True`), e.g. a Hutchinson probe. When given, `field` receives the pair
      `(args, example_args_of_this_example)` as its `args`.
    - `t0`, `t1`: the integration interval (`t1 < t0` integrates backwards), finite.
      A non-finite time known at trace time raises [`InputError`][odezoo.InputError];
      a traced one is reported in `stats.failed`.
    - `ts`: optional times at which to return the state (shape `(T,)`), instead of `t1`.
    - `batched`: whether `y0` carries a leading batch axis, solved according to
      `solver.batching`.
    - `controlled`: a function picking the part of a state-shaped tree whose error
      controls the adaptive step size (and the initial step), e.g. `lambda s: s[0]` for a
      state `(y, integrals)` whose extra channels should not change the steps taken
      (as [`penalised_solve`][odezoo.penalised_solve] does). Default: the whole state.

    Returns:

    `(y, stats)`: the state at `t1` (or at each of `ts`, with the time axis first and
    the batch axis second), and a [`SolveStats`][odezoo.SolveStats]. Diffrax fills the
    entries of `ts` beyond a failure with `inf`.

    Nothing is raised inside `jit`: a failed solve is flagged in `stats.failed` with its
    cause (a [`SolveResult`][odezoo.SolveResult]: `max_steps` reached, divergence,
    non-finite input); models turn that into an error with
    [`check_solution`][odezoo.internal.check_solution].

    Example:

    ```python
    import jax.numpy as jnp
    import odezoo

    y1, stats = odezoo.solve(odezoo.Solver(rtol=1e-6, atol=1e-6), lambda t, y, a: -y,
                             jnp.ones(3))
    # y1 ≈ exp(-1); stats.nfe is the number of evaluations of the field.
    print(stats)
    ```
    """
    _check_times(t0, t1)
    input_ok = jax.lax.stop_gradient(all_finite((y0, args, example_args, t0, t1, ts)))
    plain = field
    if solver.count_evals:
        field = CountedField(field)
    has_ex = example_args is not None
    run_args = (args, example_args) if has_ex else args

    if batched and solver.batching == "batch":
        run_field, probe = BatchField(field, has_ex), BatchField(plain, has_ex)
        run = lambda adjoint, y: _one_solve(
            solver, run_field, y, run_args, t0, t1, ts, adjoint, probe, controlled
        )
    elif batched:

        def run(adjoint, y):
            ys, st = jax.vmap(
                lambda yi, ai: _one_solve(
                    solver, field, yi, ai, t0, t1, ts, adjoint, plain, controlled
                ),
                in_axes=(0, (None, 0) if has_ex else None),
            )(y, run_args)
            if ts is not None:  # vmap puts the batch axis first; we promise time first.
                ys = jax.tree_util.tree_map(lambda v: jnp.swapaxes(v, 0, 1), ys)
            # The slowest example sets the cost; the least-advanced one is reported,
            # and the most basic failure (the largest code).
            reached = st.pop("t_reached")
            st = {k2: jnp.max(v) for k2, v in st.items()}
            st["t_reached"] = _least_advanced(reached, t0, t1)
            return ys, st
    else:
        run = lambda adjoint, y: _one_solve(
            solver, field, y, run_args, t0, t1, ts, adjoint, plain, controlled
        )

    check = lambda: reconstruction_error(
        solver, field, y0, args, t0=t0, t1=t1, batched=batched, example_args=example_args
    )
    ys, st, rev_err, fell_back = solver.adjoint.run(solver, run, check, y0)

    failed = jnp.where(input_ok, st["failed"], result_code(SolveResult.solve_nonfinite))
    stats = SolveStats.of_solve(solver, st, failed, rev_err, fell_back)
    return ys, stats


def check_solution(y: PyTree, stats: SolveStats, *, what: str, solver: Solver, t0, t1) -> PyTree:
    """Raise (at run time, also under `jit`) if a solve failed, with its cause.

    Returns `y` unchanged otherwise. Used by every odezoo model after
    [`solve`][odezoo.solve]; the message names the model, the interval, the solver
    settings, what happened (a [`SolveResult`][odezoo.SolveResult]: non-finite input,
    divergence, or `max_steps` reached) and what to change.

    The error is an `equinox.EquinoxRuntimeError` (inside `jax.jit`, JAX wraps it in a
    `JaxRuntimeError` with the same message); odezoo's models turn it into an
    [`SolverError`][odezoo.SolverError] outside `jit`, whose `cause` names the
    `SolveResult` member. A solver with `throw=False` raises nothing: the solution of a
    failed solve is NaN and `stats.result` says why (as `fit` trains).

    Arguments:

    - `y`: the solution.
    - `stats`: the [`SolveStats`][odezoo.SolveStats] of that solve.
    - `what`: the model, e.g. `"ODENet(augment=2)"`.
    - `solver`: the [`Solver`][odezoo.Solver] used.
    - `t0`, `t1`: the interval (for the message).
    """
    failed = stats.result != SolveResult.successful
    if not solver.throw:  # NaN in place of the solution; the cause stays in `stats`
        return jax.tree_util.tree_map(lambda v: _nan_where(failed, v), y)
    messages = _failure_messages(what, solver, t0, t1)
    causes = ["max_steps"] * _BUCKETS + ["solve_diverged"] * _BUCKETS + ["solve_nonfinite"]
    for message, cause in zip(messages, causes, strict=True):
        register_message(message, SolverError, cause)
    # Error messages must be static under jit, so the time reached is reported as which
    # twentieth of the interval the solve stopped in.
    span = jnp.asarray(t1) - jnp.asarray(t0)
    frac = (stats.t_reached - jnp.asarray(t0)) / jnp.where(span == 0, 1.0, span)
    bucket = jnp.clip(jnp.floor(jnp.nan_to_num(frac) * _BUCKETS), 0, _BUCKETS - 1)
    bucket = bucket.astype(jnp.int32)
    index = jnp.select(
        [stats.result == SolveResult.max_steps, stats.result == SolveResult.solve_diverged],
        [bucket, _BUCKETS + bucket],
        default=2 * _BUCKETS,
    )
    return eqx.branched_error_if(y, failed, index, messages)


_BUCKETS = 20


def _nan_where(pred: Array, v: Array) -> Array:
    return jnp.where(pred, jnp.nan, v) if jnp.issubdtype(v.dtype, jnp.inexact) else v


def _failure_messages(what: str, solver: Solver, t0, t1) -> list[str]:
    """The messages of `check_solution`: a twentieth of the interval for each of
    `MAX_STEPS` and `DIVERGED`, then `NONFINITE_INPUT`."""
    t = lambda v: format_number(v, "g", traced="t")
    where = f"{what}: the ODE solve over [{t(t0)}, {t(t1)}] with {solver.describe()}"
    if solver.adaptive:
        budget = (
            "Raise max_steps with `model.with_solver(max_steps=...)` or loosen rtol/atol; "
            "if it keeps happening the dynamics have become stiff: regularise them."
        )
        smaller = "tighten rtol/atol"
    else:
        budget = (
            f"With steps of dt0={solver.dt0:g} the interval needs more than "
            f"max_steps={solver.max_steps} steps: raise max_steps or dt0 with "
            "`model.with_solver(...)`."
        )
        smaller = "take smaller steps (dt0) or use an adaptive solver such as diffrax.Dopri5()"
    diverged = (
        "The dynamics blew up (when training: the parameters diverged): lower the "
        f"learning rate, {smaller}, or regularise the dynamics; raising max_steps will "
        "not help."
    )
    fractions = [i / _BUCKETS for i in range(_BUCKETS + 1)]
    pieces = list(zip(fractions[:-1], fractions[1:], strict=True))
    return (
        [
            f"{where} hit max_steps and stopped at {_between(t0, t1, lo, hi)}. {budget}"
            for lo, hi in pieces
        ]
        + [
            f"{where} diverged: the state became NaN/inf, or blew up so fast that the step "
            f"size collapsed, at {_between(t0, t1, lo, hi)}. {diverged}"
            for lo, hi in pieces
        ]
        + [
            f"{where} was given NaN or inf: the input, the initial state, the arguments or "
            "the times are not finite. Check the data fed to the model (odezoo never passes "
            "NaN or inf on silently)."
        ]
    )


def _between(t0, t1, lo: float, hi: float) -> str:
    a, b = _static_time(t0), _static_time(t1)
    if a is None or b is None:  # traced (e.g. learnable) end time
        return f"between {lo:.0%} and {hi:.0%} of the way from t0 to t1"
    return f"t between {a + lo * (b - a):.4g} and {a + hi * (b - a):.4g}"
