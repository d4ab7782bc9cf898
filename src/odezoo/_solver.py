"""The one place where odezoo calls `diffrax.diffeqsolve`.

A [`Solver`][odezoo.Solver] holds everything that decides *how* an ODE is solved:
the diffrax solver, tolerances, initial step, `max_steps`, the adjoint used for
gradients and how a batch is mapped onto ODE solves. Every ODE model in odezoo
holds one, and [`solve`][odezoo.solve] is the function they all call.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from ._counting import CountedField
from ._errors import SolverError as SolverError

ADJOINTS = ("checkpoint", "backsolve", "direct", "checked")
BATCHING = ("batch", "vmap")

# Function evaluations of the vector field at start-up and per attempted step (accepted
# or rejected), for the diffrax solvers whose counts we have checked against a counting
# vector field (tests/test_solver.py). Measured with diffrax 0.7: an automatically chosen
# dt0 adds no evaluation that survives compilation (its f(t0, y0) is shared with the
# solver's first-same-as-last evaluation). Other solvers report NaN: measure them with
# `count_evaluations`.
_EVALS: dict[type, tuple[int, int]] = {
    diffrax.Euler: (0, 1),
    diffrax.Heun: (0, 2),
    diffrax.Midpoint: (0, 2),
    diffrax.Ralston: (0, 2),
    diffrax.Tsit5: (1, 6),
    diffrax.Dopri5: (1, 6),
}


def _field_names(module) -> list[str]:
    """A dataclass's fields (not its ClassVars, which `__dataclass_fields__` also lists)."""
    return [f.name for f in dataclasses.fields(module)]


class SolveStats(eqx.Module):
    """Statistics of one (possibly batched) solve.

    Every field is a JAX scalar, so a `SolveStats` can be returned from `jit`.

    Fields:

    - `num_steps`: steps attempted (accepted plus rejected). In `"vmap"` batching,
      the largest over examples, which is what the vectorised loop runs for.
    - `num_accepted_steps`, `num_rejected_steps`: likewise.
    - `nfe`: forward evaluations of the vector field. One evaluation of a batch solved
      as one ODE counts once. NaN for a diffrax solver whose stage count odezoo does not
      know; use [`count_evaluations`][odezoo.count_evaluations] then.
    - `t_reached`: the time the solve got to (equal to `t1` on success; in `"vmap"`
      batching, the least advanced example).
    - `failed`: 1 when diffrax reported an unsuccessful solve (e.g. `max_steps`).
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
    t_reached: Array
    failed: Array
    reversibility_error: Array
    fell_back: Array

    def to_dict(self) -> dict[str, float]:
        """The statistics as a dict of Python numbers (call outside `jit`)."""
        out = {}
        for name in _field_names(self):
            value = float(getattr(self, name))
            out[name] = int(value) if value.is_integer() else value
        return out

    @staticmethod
    def combine(stats: list[SolveStats]) -> SolveStats:
        """Sum the counts of several consecutive solves (e.g. stacked CNF blocks)."""
        if len(stats) == 1:
            return stats[0]
        tot = lambda name: sum(getattr(s, name) for s in stats)
        worst = lambda name: jnp.max(jnp.stack([getattr(s, name) for s in stats]))
        return SolveStats(
            num_steps=tot("num_steps"),
            num_accepted_steps=tot("num_accepted_steps"),
            num_rejected_steps=tot("num_rejected_steps"),
            nfe=tot("nfe"),
            t_reached=stats[-1].t_reached,
            failed=worst("failed"),
            reversibility_error=worst("reversibility_error"),
            fell_back=worst("fell_back"),
        )


class Solver(eqx.Module):
    """How an ODE is solved: the diffrax solver, tolerances, adjoint and batching.

    A `Solver` is immutable and hashable-by-value; every ODE model holds one, and
    `model.with_solver(rtol=..., atol=...)` swaps it without retraining.

    Arguments:

    - `solver`: a diffrax solver instance. Default `diffrax.Dopri5()`.
    - `rtol`, `atol`: tolerances of the adaptive step-size controller (`PIDController`).
      Both must be positive.
    - `dt0`: initial step size, or `None` to let diffrax choose it.
      For a solver without an error estimate (`Euler`, ...) `dt0` is the fixed step.
    - `max_steps`: the most steps one solve may take. Reaching it is an error, never a
      silently truncated solution.
    - `adjoint`: how gradients are computed:
        - `"checkpoint"` (default): `diffrax.RecursiveCheckpointAdjoint`, exact
          gradients of the discretised solve; memory grows with `checkpoints`.
        - `"backsolve"`: `diffrax.BacksolveAdjoint`, the continuous adjoint of Chen et
          al. 2018: solves the adjoint ODE backwards in time, memory constant in the
          number of steps, gradients approximate.
        - `"direct"`: `diffrax.DirectAdjoint`, plain differentiation through the loop
          (also supports forward-mode).
        - `"checked"`: backsolve whose reverse reconstruction of the initial state is
          checked first; when the error exceeds `check_threshold` the gradient is
          computed by checkpointing instead. See
          [`reversibility_error`][odezoo.reversibility_error].
    - `checkpoints`: number of checkpoints for `"checkpoint"` (`None`: diffrax's choice,
      about `sqrt(2 * max_steps)`).
    - `seminorm`: for `"backsolve"` and `"checked"`, control the backward step size with
      `diffrax.adjoint_rms_seminorm`, ignoring the parameter-adjoint channels
      (Kidger et al. 2021: fewer backward evaluations).
    - `check_threshold`: for `"checked"`, the largest acceptable reconstruction error, in
      units of the tolerance `atol + rtol * |y0|` (RMS over the state).
    - `batching`: how a batch of initial states is solved:
        - `"batch"` (default): the whole batch as one ODE with a shared step size. One
          solver loop, one parameter cotangent: the right choice for training.
        - `"vmap"`: one independent solve per example (each keeps its own step size),
          vectorised with `jax.vmap`. Right when examples differ wildly in stiffness,
          or when each prediction must not depend on the rest of the batch; its
          backward pass is much slower because each example carries its own parameter
          cotangent.

    - `count_evals`: wrap the vector field in a counter read by
      [`count_evaluations`][odezoo.count_evaluations] (for measurement only: slow).

    Example:

    ```python
    import diffrax
    import odezoo

    solver = odezoo.Solver(rtol=1e-5, atol=1e-5, adjoint="backsolve", seminorm=True)
    tight = solver.replace(rtol=1e-7, atol=1e-7)
    euler = odezoo.Solver(solver=diffrax.Euler(), dt0=0.05)
    ```
    """

    solver: diffrax.AbstractSolver = eqx.field(static=True, default_factory=diffrax.Dopri5)
    rtol: float = eqx.field(static=True, default=1e-3)
    atol: float = eqx.field(static=True, default=1e-6)
    dt0: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=4096)
    adjoint: Literal["checkpoint", "backsolve", "direct", "checked"] = eqx.field(
        static=True, default="checkpoint"
    )
    checkpoints: int | None = eqx.field(static=True, default=None)
    seminorm: bool = eqx.field(static=True, default=False)
    check_threshold: float = eqx.field(static=True, default=10.0)
    batching: Literal["batch", "vmap"] = eqx.field(static=True, default="batch")
    count_evals: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise ValueError(f"solver must be a diffrax solver instance, got {self.solver!r}")
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.dt0 is not None and not (self.dt0 > 0 and math.isfinite(self.dt0)):
            raise ValueError(f"dt0 must be None or a positive number, got {self.dt0!r}")
        if not self.adaptive and self.dt0 is None:
            raise ValueError(
                f"{type(self.solver).__name__} has no error estimate, so it takes fixed steps: "
                "give dt0 (the step size)."
            )
        if not (isinstance(self.max_steps, int) and self.max_steps > 0):
            raise ValueError(f"max_steps must be a positive int, got {self.max_steps!r}")
        if self.adjoint not in ADJOINTS:
            raise ValueError(f"unknown adjoint {self.adjoint!r}; choose one of {ADJOINTS}")
        if self.batching not in BATCHING:
            raise ValueError(f"unknown batching {self.batching!r}; choose one of {BATCHING}")
        if self.checkpoints is not None and not (
            isinstance(self.checkpoints, int) and self.checkpoints > 0
        ):
            raise ValueError(f"checkpoints must be None or a positive int, got {self.checkpoints}")
        if not (self.check_threshold > 0):
            raise ValueError(f"check_threshold must be positive, got {self.check_threshold!r}")
        if self.seminorm and self.adjoint not in ("backsolve", "checked"):
            raise ValueError("seminorm=True only applies to adjoint='backsolve' or 'checked'")

    @property
    def adaptive(self) -> bool:
        """Whether the solver has an error estimate (and so adaptive steps)."""
        return isinstance(self.solver, diffrax.AbstractAdaptiveSolver)

    def replace(self, **changes: Any) -> Solver:
        """A copy with some fields changed (validated again).

        Example:

        ```python
        fast = odezoo.Solver().replace(rtol=1e-2, atol=1e-2)
        ```
        """
        names = _field_names(self)
        unknown = set(changes) - set(names)
        if unknown:
            raise ValueError(f"unknown Solver field(s) {sorted(unknown)}; valid: {sorted(names)}")
        fields = {k: getattr(self, k) for k in names}
        fields.update(changes)
        return Solver(**fields)

    def describe(self) -> str:
        """One line naming the solver, tolerances and adjoint (used in error messages)."""
        tol = f"rtol={self.rtol:g}, atol={self.atol:g}" if self.adaptive else f"dt0={self.dt0:g}"
        return (
            f"{type(self.solver).__name__}({tol}, max_steps={self.max_steps}, "
            f"adjoint={self.adjoint!r}, batching={self.batching!r})"
        )

    def to_config(self) -> dict[str, Any]:
        """A JSON-able dict that [`Solver.from_config`][odezoo.Solver.from_config] reads."""
        cfg = {k: getattr(self, k) for k in _field_names(self) if k != "solver"}
        cfg["solver"] = type(self.solver).__name__
        return cfg

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Solver:
        """Build a `Solver` from a dict such as `to_config()` writes (solver by name)."""
        cfg = dict(cfg)
        name = cfg.pop("solver", "Dopri5")
        solver_cls = getattr(diffrax, name, None)
        if not (isinstance(solver_cls, type) and issubclass(solver_cls, diffrax.AbstractSolver)):
            raise ValueError(f"unknown diffrax solver {name!r} in solver config")
        return cls(solver=solver_cls(), **cfg)

    # -- pieces handed to diffrax ------------------------------------------------------

    def _controller(self, backward: bool = False):
        if not self.adaptive:
            return diffrax.ConstantStepSize()
        norm = diffrax.adjoint_rms_seminorm if (backward and self.seminorm) else None
        kwargs = {} if norm is None else {"norm": norm}
        return diffrax.PIDController(rtol=self.rtol, atol=self.atol, **kwargs)

    def _diffrax_adjoint(self, kind: str):
        if kind == "checkpoint":
            return diffrax.RecursiveCheckpointAdjoint(checkpoints=self.checkpoints)
        if kind == "direct":
            return diffrax.DirectAdjoint()
        if kind == "backsolve":
            return diffrax.BacksolveAdjoint(
                solver=self.solver, stepsize_controller=self._controller(backward=True)
            )
        raise AssertionError(kind)


def _nfe(solver: Solver, num_steps: Array) -> Array:
    evals = _EVALS.get(type(solver.solver))
    if evals is None:
        return jnp.full_like(num_steps, jnp.nan, dtype=jnp.float32)
    init, per_step = evals
    if _auto_dt0(solver):
        init += 2  # the two evaluations of `_initial_step`
    return init + per_step * num_steps


def _auto_dt0(solver: Solver) -> bool:
    return solver.dt0 is None and solver.adaptive


def _initial_step(solver: Solver, field, y0, args, t0, t1) -> Array:
    """The initial step of Hairer, Nørsett and Wanner (Solving ODEs I, sec. II.4), as
    torchdiffeq and diffrax's `PIDController` define it: two evaluations of `field`.

    odezoo computes it itself because diffrax 0.7 wraps the terms before its controller
    sees them, so its own selection never runs and every adaptive solve starts at
    `dt0 = 0.01`, growing at most 10x a step: one or two wasted steps per solve
    (measured by `odezoo.bench`, docs/benchmarks.md). No gradient flows through it.
    """
    order = solver.solver.error_order(diffrax.ODETerm(field))
    dynamic, static = eqx.partition((field, y0, args), eqx.is_array)
    field, y0, args = eqx.combine(jax.lax.stop_gradient(dynamic), static)
    leaves = jax.tree_util.tree_leaves(y0)
    dtype = jnp.result_type(*leaves) if leaves else jnp.float32
    direction = jnp.where(jnp.asarray(t1) >= jnp.asarray(t0), 1.0, -1.0).astype(dtype)
    scale = jax.tree_util.tree_map(lambda v: solver.atol + solver.rtol * jnp.abs(v), y0)
    scaled = lambda x: _rms(jax.tree_util.tree_map(lambda a, b: a / b, x, scale))
    f0 = field(t0, y0, args)
    d0, d1 = scaled(y0), scaled(f0)
    h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / jnp.where(d1 > 0, d1, 1.0))
    y1 = jax.tree_util.tree_map(lambda a, b: a + direction * h0 * b, y0, f0)
    f1 = field(t0 + direction * h0, y1, args)
    d2 = scaled(jax.tree_util.tree_map(jnp.subtract, f1, f0)) / h0
    max_d = jnp.maximum(d1, d2)
    h1 = jnp.where(
        max_d <= 1e-15,
        jnp.maximum(1e-6, h0 * 1e-3),
        (0.01 / jnp.where(max_d > 0, max_d, 1.0)) ** (1.0 / order),
    )
    return jax.lax.stop_gradient(direction * jnp.minimum(100 * h0, h1))


class _BatchField(eqx.Module):
    """The vector field of a batch solved as one ODE: `vmap` of the per-example field."""

    field: Callable
    has_example_args: bool = eqx.field(static=True)

    def __call__(self, t, y, args):
        axes = (None, 0) if self.has_example_args else None
        return jax.vmap(self.field, in_axes=(None, 0, axes))(t, y, args)


def _least_advanced(reached: Array, t0, t1) -> Array:
    forward = jnp.asarray(t1 >= t0)
    return jnp.where(forward, jnp.min(reached), jnp.max(reached))


def _rms(x: PyTree) -> Array:
    leaves = [jnp.ravel(v) for v in jax.tree_util.tree_leaves(x)]
    flat = jnp.concatenate(leaves)
    return jnp.sqrt(jnp.mean(flat**2))


def _one_solve(solver, field, y0, args, t0, t1, ts, kind):
    """A single diffrax solve of `field` (which already handles any batch axis)."""
    # `t1=True` is always saved: on failure diffrax stores there the time it reached.
    saveat = diffrax.SaveAt(ts=ts, t1=True) if ts is not None else diffrax.SaveAt(t1=True)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        solver.solver,
        t0,
        t1,
        _initial_step(solver, field, y0, args, t0, t1) if _auto_dt0(solver) else solver.dt0,
        y0,
        args=args,
        saveat=saveat,
        stepsize_controller=solver._controller(),
        adjoint=solver._diffrax_adjoint(kind),
        max_steps=solver.max_steps,
        throw=False,
    )
    if ts is not None:
        ys = jax.tree_util.tree_map(lambda v: v[:-1], sol.ys)
    else:
        ys = jax.tree_util.tree_map(lambda v: v[0], sol.ys)
    stats = sol.stats
    nsteps = stats["num_steps"]
    failed = (sol.result != diffrax.RESULTS.successful).astype(jnp.int32)
    t_reached = jax.lax.stop_gradient(sol.ts[-1])
    return ys, dict(
        num_steps=nsteps,
        num_accepted_steps=stats["num_accepted_steps"],
        num_rejected_steps=stats["num_rejected_steps"],
        failed=failed,
        t_reached=t_reached,
    )


def _reconstruction_error(solver, field, y0, args, t0, t1):
    """Forward solve then reverse solve; RMS error of the recovered y0 in tolerance units."""
    # No gradient flows through the check (the field may be a plain function).
    dynamic, static = eqx.partition((field, y0, args), eqx.is_array)
    field, y0, args = eqx.combine(jax.lax.stop_gradient(dynamic), static)
    plain = solver.replace(adjoint="checkpoint", seminorm=False)
    y1, _ = _one_solve(plain, field, y0, args, t0, t1, None, "checkpoint")
    y0_rec, _ = _one_solve(plain, field, y1, args, t1, t0, None, "checkpoint")
    scale = jax.tree_util.tree_map(lambda a: solver.atol + solver.rtol * jnp.abs(a), y0)
    scaled = jax.tree_util.tree_map(lambda a, b, s: (a - b) / s, y0_rec, y0, scale)
    return _rms(scaled)


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
) -> tuple[PyTree, SolveStats]:
    """Solve `dy/dt = field(t, y, args)` from `t0` to `t1` with `solver`.

    This is the one function in odezoo that calls `diffrax.diffeqsolve`; every model
    goes through it.

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
    - `t0`, `t1`: the integration interval (`t1 < t0` integrates backwards).
    - `ts`: optional times at which to return the state (shape `(T,)`), instead of `t1`.
    - `batched`: whether `y0` carries a leading batch axis, solved according to
      `solver.batching`.

    Returns:

    `(y, stats)`: the state at `t1` (or at each of `ts`, with the time axis first and
    the batch axis second), and a [`SolveStats`][odezoo.SolveStats]. Diffrax fills the
    entries of `ts` beyond a failure with `inf`.

    Nothing is raised inside `jit`: a failed solve (e.g. `max_steps` reached) is flagged
    in `stats.failed`; models turn that into an error with
    [`check_solution`][odezoo.check_solution].

    Example:

    ```python
    import jax.numpy as jnp
    import odezoo

    y1, stats = odezoo.solve(odezoo.Solver(rtol=1e-6, atol=1e-6), lambda t, y, a: -y,
                             jnp.ones(3))
    # y1 ≈ exp(-1); stats.nfe is the number of evaluations of the field.
    ```
    """
    kind = solver.adjoint
    if solver.count_evals:
        field = CountedField(field)
    has_ex = example_args is not None
    if has_ex:
        args = (args, example_args)

    if batched and solver.batching == "batch":
        run_field = _BatchField(field, has_ex)
        run = lambda k, y: _one_solve(solver, run_field, y, args, t0, t1, ts, k)
        recon = lambda y: _reconstruction_error(solver, run_field, y, args, t0, t1)
    elif batched:
        axes = (None, 0) if has_ex else None

        def run(k, y):
            ys, st = jax.vmap(
                lambda yi, ai: _one_solve(solver, field, yi, ai, t0, t1, ts, k),
                in_axes=(0, axes),
            )(y, args)
            if ts is not None:  # vmap puts the batch axis first; we promise time first.
                ys = jax.tree_util.tree_map(lambda v: jnp.swapaxes(v, 0, 1), ys)
            # The slowest example sets the cost; the least-advanced one is reported.
            reached = st.pop("t_reached")
            st = {k2: jnp.max(v) for k2, v in st.items()}
            st["t_reached"] = _least_advanced(reached, t0, t1)
            return ys, st

        recon = lambda y: jnp.max(
            jax.vmap(
                lambda yi, ai: _reconstruction_error(solver, field, yi, ai, t0, t1),
                in_axes=(0, axes),
            )(y, args)
        )
    else:
        run = lambda k, y: _one_solve(solver, field, y, args, t0, t1, ts, k)
        recon = lambda y: _reconstruction_error(solver, field, y, args, t0, t1)

    if kind == "checked":
        err = recon(y0)
        ok = err <= solver.check_threshold
        ys, st = jax.lax.cond(ok, lambda y: run("backsolve", y), lambda y: run("checkpoint", y), y0)
        rev_err, fell_back = err, (~ok).astype(jnp.int32)
    else:
        ys, st = run(kind, y0)
        rev_err, fell_back = jnp.asarray(jnp.nan, jnp.float32), jnp.asarray(0, jnp.int32)

    stats = SolveStats(
        num_steps=st["num_steps"],
        num_accepted_steps=st["num_accepted_steps"],
        num_rejected_steps=st["num_rejected_steps"],
        nfe=_nfe(solver, st["num_steps"]),
        t_reached=st["t_reached"],
        failed=st["failed"],
        reversibility_error=rev_err,
        fell_back=fell_back,
    )
    return ys, stats


def check_solution(y: PyTree, stats: SolveStats, *, what: str, solver: Solver, t0, t1) -> PyTree:
    """Raise (at run time, also under `jit`) if a solve failed or produced NaN/inf.

    Returns `y` unchanged otherwise. Used by every odezoo model after
    [`solve`][odezoo.solve]; the messages name the model, the interval, the solver
    settings and what to change.

    Arguments:

    - `y`: the solution.
    - `stats`: the [`SolveStats`][odezoo.SolveStats] of that solve.
    - `what`: the model, e.g. `"ODENet(augment=2)"`.
    - `solver`: the [`Solver`][odezoo.Solver] used.
    - `t0`, `t1`: the interval (for the message).
    """
    where = f"{what}: the ODE solve over [{_fmt(t0)}, {_fmt(t1)}] with {solver.describe()}"
    advice = (
        "Raise max_steps with `model.with_solver(max_steps=...)`, loosen rtol/atol, or "
        "regularise the dynamics (they may have become stiff, or produced NaN/inf)."
    )
    # Error messages must be static under jit, so the time reached is reported as which
    # twentieth of the interval the solve stopped in.
    fractions = [i / _BUCKETS for i in range(_BUCKETS + 1)]
    messages = [
        f"{where} hit max_steps (or its step size collapsed) and stopped at "
        f"{_between(t0, t1, lo, hi)}. {advice}"
        for lo, hi in zip(fractions[:-1], fractions[1:], strict=True)
    ]
    span = jnp.asarray(t1) - jnp.asarray(t0)
    frac = (stats.t_reached - jnp.asarray(t0)) / jnp.where(span == 0, 1.0, span)
    bucket = jnp.clip(jnp.floor(jnp.nan_to_num(frac) * _BUCKETS), 0, _BUCKETS - 1)
    y = eqx.branched_error_if(y, stats.failed == 1, bucket.astype(jnp.int32), messages)
    leaves = jax.tree_util.tree_leaves(y)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in leaves]))
    return eqx.error_if(
        y,
        ~finite,
        f"{where} returned NaN or inf although the solver reported success. "
        "Check the input and the model's parameters for NaN/inf (odezoo never passes NaNs "
        "on silently).",
    )


_BUCKETS = 20


def _between(t0, t1, lo: float, hi: float) -> str:
    try:
        a, b = float(t0), float(t1)
    except Exception:  # traced (e.g. learnable) end time
        return f"between {lo:.0%} and {hi:.0%} of the way from t0 to t1"
    return f"t between {a + lo * (b - a):.4g} and {a + hi * (b - a):.4g}"


def _fmt(t) -> str:
    try:
        return f"{float(t):g}"
    except Exception:  # a traced value inside jit
        return "t"


# -- stochastic differential equations ---------------------------------------------------
# Additive: `solve` above is untouched. SDEs use the same `Solver` (no second configuration
# system); only the pieces diffrax needs in addition (a diffusion, a Brownian path and its
# key) are arguments of `solve_sde`.

SDE_ADJOINTS = ("checkpoint", "backsolve", "direct")


def check_sde_solver(solver: Solver) -> None:
    """Raise [`SolverError`][odezoo.SolverError] unless `solver` can solve an SDE.

    SDEs are solved with fixed steps (`dt0` is required), with the adjoints
    `"checkpoint"`, `"direct"` or `"backsolve"`; backsolve needs a Stratonovich solver
    (diffrax's `ReversibleHeun`, `Heun`, `Midpoint`), since diffrax's `BacksolveAdjoint`
    solves the adjoint of the Stratonovich SDE.
    """
    name = type(solver.solver).__name__
    if solver.dt0 is None:
        raise SolverError(
            f"SDEs are solved with fixed steps: give the Solver a dt0 (the step size), e.g. "
            f"odezoo.Solver(solver=diffrax.{name}(), dt0=0.01)"
        )
    if solver.adjoint not in SDE_ADJOINTS:
        raise SolverError(
            f"adjoint={solver.adjoint!r} is not available for SDEs; choose one of {SDE_ADJOINTS}"
        )
    if solver.adjoint == "backsolve" and not isinstance(
        solver.solver, diffrax.AbstractStratonovichSolver
    ):
        raise SolverError(
            f"adjoint='backsolve' on an SDE needs a Stratonovich solver (diffrax's backsolve "
            f"adjoint is that of the Stratonovich SDE), got {name}; use diffrax.ReversibleHeun() "
            "(algebraically reversible: exact backsolve gradients) or adjoint='checkpoint'"
        )
    if solver.seminorm:
        raise SolverError("seminorm=True controls adaptive steps; SDEs take fixed steps")


class _FlatField(eqx.Module):
    """A per-example field on `(n, d)` states as a field on the flattened `(n * d,)` state,
    so that a batch is one SDE driven by one Brownian path with `n * d` channels."""

    field: Callable
    shape: tuple[int, ...] = eqx.field(static=True)
    has_example_args: bool = eqx.field(static=True)

    def __call__(self, t, y, args):
        axes = (None, 0) if self.has_example_args else None
        out = jax.vmap(self.field, in_axes=(None, 0, axes))(t, y.reshape(self.shape), args)
        return out.reshape(-1)


class _Diagonal(eqx.Module):
    """Diagonal noise: the diffusion's values as a diagonal `lineax` operator (a Module, so
    that every adjoint sees the diffusion's parameters)."""

    diffusion: Callable

    def __call__(self, t, y, args):
        import lineax

        return lineax.DiagonalLinearOperator(self.diffusion(t, y, args))


def _one_sde_solve(solver, drift, diffusion, y0, args, t0, t1, ts, key, tol):
    bm = diffrax.VirtualBrownianTree(
        t0, t1, tol=tol, shape=jax.ShapeDtypeStruct(y0.shape, y0.dtype), key=key
    )
    terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(_Diagonal(diffusion), bm))
    if solver.adjoint == "backsolve":
        adjoint = diffrax.BacksolveAdjoint(
            solver=solver.solver, stepsize_controller=diffrax.ConstantStepSize()
        )
    else:
        adjoint = solver._diffrax_adjoint(solver.adjoint)

    def segment(y, ends):
        sol = diffrax.diffeqsolve(
            terms,
            solver.solver,
            ends[0],
            ends[1],
            solver.dt0,
            y,
            args=args,
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=diffrax.ConstantStepSize(),
            adjoint=adjoint,
            max_steps=solver.max_steps,
            throw=False,
        )
        st = dict(
            num_steps=sol.stats["num_steps"],
            num_accepted_steps=sol.stats["num_accepted_steps"],
            num_rejected_steps=sol.stats["num_rejected_steps"],
            failed=(sol.result != diffrax.RESULTS.successful).astype(jnp.int32),
            t_reached=jax.lax.stop_gradient(sol.ts[-1]),
        )
        return sol.ys[0], (sol.ys[0], st)

    if ts is None:
        _, (y1, st) = segment(y0, (t0, t1))
        return y1, st
    # Saved times are reached by chaining one solve per interval between them (on the one
    # Brownian path): diffrax 0.7's BacksolveAdjoint gives wrong diffusion gradients with
    # SaveAt(ts=...) inside the interval (measured on an OU process: 4.23 against 2.94 by
    # checkpointing at dt0=1e-3, worse as dt0 shrinks), and NaN when ts ends at t1.
    ts = jnp.asarray(ts)
    starts = jnp.concatenate([jnp.reshape(jnp.asarray(t0, ts.dtype), (1,)), ts[:-1]])
    _, (ys, st) = jax.lax.scan(segment, y0, (starts, ts))
    return ys, dict(
        num_steps=jnp.sum(st["num_steps"]),
        num_accepted_steps=jnp.sum(st["num_accepted_steps"]),
        num_rejected_steps=jnp.sum(st["num_rejected_steps"]),
        failed=jnp.max(st["failed"]),
        t_reached=st["t_reached"][-1],
    )


def solve_sde(
    solver: Solver,
    drift: Callable,
    diffusion: Callable,
    y0: Array,
    args: PyTree = None,
    *,
    key: Array,
    t0: float | Array = 0.0,
    t1: float | Array = 1.0,
    ts: Array | None = None,
    batched: bool = False,
    example_args: PyTree = None,
    brownian_tol: float | None = None,
) -> tuple[Array, SolveStats]:
    """Solve the SDE `dy = drift(t, y, args) dt + diffusion(t, y, args) * dW` with diagonal
    noise, driven by a `diffrax.VirtualBrownianTree`.

    The SDE counterpart of [`solve`][odezoo.solve], with the same
    [`Solver`][odezoo.Solver]: its diffrax solver decides the interpretation
    (`diffrax.Euler`: Itô, Euler-Maruyama; `diffrax.Heun`, `diffrax.ReversibleHeun`,
    `diffrax.Midpoint`: Stratonovich), `dt0` is the fixed step (required: SDEs are
    solved with constant steps here), and `adjoint` is `"checkpoint"`, `"direct"` or
    `"backsolve"` (Stratonovich solvers only; with `diffrax.ReversibleHeun`, which is
    algebraically reversible, backsolve reconstructs the forward path exactly and its
    gradients equal the discretised ones up to round-off). Other settings raise
    [`SolverError`][odezoo.SolverError].

    Arguments:

    - `solver`: a [`Solver`][odezoo.Solver] with `dt0` set.
    - `drift`, `diffusion`: per-example fields `f(t, y, args)`; `diffusion` returns the
      diagonal of the noise matrix, an array of the shape of `y` (one Brownian channel
      per state channel). Pure functions or equinox Modules holding their parameters
      (never closures over parameters: backsolve cannot see them).
    - `y0`: the initial state, an array `(d,)`, or `(B, d)` when `batched`.
    - `args`, `example_args`, `ts`, `batched`, `t0`, `t1`: as for [`solve`][odezoo.solve];
      `t1` must exceed `t0`, `ts` must be non-decreasing in `[t0, t1]`. With `ts`, the
      solve is chained from one saved time to the next (fixed steps restart at each),
      which keeps backsolve gradients right (diffrax's backsolve with interior saved
      times does not). A batch is solved as one SDE (one Brownian path with
      `B * d` independent channels) in `"batch"` batching, or as `B` SDEs with split keys
      in `"vmap"` batching.
    - `key`: the PRNG key of the Brownian motion: the same key gives the same path, at
      any step size.
    - `brownian_tol`: the virtual Brownian tree's resolution in time (default
      `dt0 / 16`).

    Returns:

    `(y, stats)` as for [`solve`][odezoo.solve]: the state at `t1`, or at each of `ts`
    (time axis first).

    Example:

    ```python
    import diffrax, jax, jax.numpy as jnp, odezoo

    solver = odezoo.Solver(solver=diffrax.ReversibleHeun(), dt0=0.01, adjoint="backsolve")
    drift = lambda t, y, args: -y
    diffusion = lambda t, y, args: 0.5 * jnp.ones_like(y)
    ys, stats = odezoo.solve_sde(solver, drift, diffusion, jnp.ones((8, 2)), batched=True,
                                 ts=jnp.linspace(0.0, 1.0, 5), key=jax.random.key(0))
    # ys: (5, 8, 2), Ornstein-Uhlenbeck paths
    ```
    """
    check_sde_solver(solver)
    y0 = jnp.asarray(y0)
    tol = solver.dt0 / 16 if brownian_tol is None else brownian_tol
    if solver.count_evals:
        drift = CountedField(drift)
    has_ex = example_args is not None
    if has_ex:
        args = (args, example_args)
    if batched and solver.batching == "batch":
        f = _FlatField(drift, y0.shape, has_ex)
        g = _FlatField(diffusion, y0.shape, has_ex)
        ys, st = _one_sde_solve(solver, f, g, y0.reshape(-1), args, t0, t1, ts, key, tol)
        ys = ys.reshape(*ys.shape[: ys.ndim - 1], *y0.shape)
    elif batched:
        axes = (None, 0) if has_ex else None
        keys = jax.random.split(key, y0.shape[0])
        ys, st = jax.vmap(
            lambda yi, ai, ki: _one_sde_solve(
                solver, drift, diffusion, yi, ai, t0, t1, ts, ki, tol
            ),
            in_axes=(0, axes, 0),
        )(y0, args, keys)
        if ts is not None:
            ys = jnp.swapaxes(ys, 0, 1)
        reached = st.pop("t_reached")
        st = {k: jnp.max(v) for k, v in st.items()}
        st["t_reached"] = jnp.min(reached)
    else:
        ys, st = _one_sde_solve(solver, drift, diffusion, y0, args, t0, t1, ts, key, tol)
    nan = jnp.asarray(jnp.nan, jnp.float32)
    stats = SolveStats(
        num_steps=st["num_steps"],
        num_accepted_steps=st["num_accepted_steps"],
        num_rejected_steps=st["num_rejected_steps"],
        nfe=_nfe(solver, st["num_steps"]),
        t_reached=st["t_reached"],
        failed=st["failed"],
        reversibility_error=nan,
        fell_back=jnp.asarray(0, jnp.int32),
    )
    return ys, stats
