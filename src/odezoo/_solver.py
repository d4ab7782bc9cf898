"""The one place where odezoo calls `diffrax.diffeqsolve`.

A [`Solver`][odezoo.Solver] holds everything that decides *how* an ODE is solved:
the diffrax solver, tolerances, initial step, `max_steps`, the adjoint used for
gradients and how a batch is mapped onto ODE solves. Every ODE model in odezoo
holds one, and [`solve`][odezoo.solve] is the function they all call.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable
from typing import Any, Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from ._accumulate import ErrorAccumulator
from ._backsolve import AbstractDerivativeField, AdjointSolver
from ._counting import CountedField
from ._errors import ConfigError, InputError
from ._errors import SolverError as SolverError
from ._format import format_number

ADJOINTS = ("checkpoint", "backsolve", "direct", "checked", "auto")

# Fields that `Solver.to_config` leaves out at their default: they were added after runs
# were configured, and a run's config hash (checked on resume) must not change with them.
_OMITTED_AT_DEFAULT = {"check_every": 50}
BATCHING = ("batch", "vmap")

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


def _field_names(module) -> list[str]:
    """A dataclass's fields (not its ClassVars, which `__dataclass_fields__` also lists)."""
    return [f.name for f in dataclasses.fields(module)]


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


def _python_number(value) -> Any:
    array = np.asarray(value)
    if array.ndim > 0:
        return [_python_number(v) for v in array]
    number = float(array)
    return int(number) if number.is_integer() else number


def _as_python(value: Any) -> Any:
    """A NumPy or concrete JAX real scalar (`np.float32(1e-3)`, `np.int64(100)`, a 0-d
    array) as the Python number it writes as: static fields must be hashable Python
    values. Anything else is returned unchanged, for `__check_init__` to judge."""
    # (np.float64 is a subclass of float: test for NumPy scalars first.)
    if not isinstance(value, np.generic) and (
        value is None or isinstance(value, bool | int | float | str)
    ):
        return value
    try:
        array = np.asarray(value)
    except Exception:  # a traced value: rejected by the check
        return value
    if array.ndim != 0:  # not a number: rejected by the check, shown as a list
        return array.tolist()
    if np.issubdtype(array.dtype, np.integer):
        return int(array)
    if np.issubdtype(array.dtype, np.floating):
        # The shortest text of the number in its own dtype: np.float32(1e-3) -> 0.001.
        return float(np.format_float_scientific(array[()], unique=True))
    return value


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_positive_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > 0
        and math.isfinite(value)
    )


class Solver(eqx.Module):
    """How an ODE is solved: the diffrax solver, tolerances, adjoint and batching.

    A `Solver` is immutable and hashable-by-value; every ODE model holds one, and
    `model.with_solver(rtol=..., atol=...)` swaps it without retraining.

    Arguments:

    - `solver`: a diffrax solver instance. Default `diffrax.Dopri5()`.
    - `rtol`, `atol`: tolerances of the adaptive step-size controller (`PIDController`).
      Both must be positive.
    - `dt0`: initial step size, or `None` to let odezoo choose it.
      For a solver without an error estimate (`Euler`, ...) `dt0` is the fixed step.
      It is a size, always positive: a solve from `t0` to `t1 < t0` steps by `-dt0`.
    - `max_steps`: the most steps one solve may take. Reaching it is an error, never a
      silently truncated solution.

    Numbers may be Python, NumPy or concrete 0-d JAX scalars (they are stored as Python
    numbers). A bad value raises [`ConfigError`][odezoo.ConfigError].
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
        - `"auto"`: for training. Inside [`fit`][odezoo.train.fit], every
          `check_every`-th step runs as `"checked"`, and the steps until the next check
          use `"backsolve"` if its reversibility check passed, `"checkpoint"` if it fell
          back (each decision is logged). Outside `fit` it solves and differentiates
          exactly as `"checkpoint"`. See the [adjoint guide](../adjoints.md#the-auto-adjoint)
          for where it must not be used.
    - `checkpoints`: number of checkpoints for `"checkpoint"` (`None`: diffrax's choice,
      about `sqrt(2 * max_steps)`).
    - `seminorm`: for `"backsolve"`, `"checked"` and `"auto"` (its backsolve steps),
      control the backward step size with `diffrax.adjoint_rms_seminorm`, ignoring the
      parameter-adjoint channels (Kidger et al. 2021: fewer backward evaluations).
    - `check_threshold`: for `"checked"` and `"auto"`, the largest acceptable
      reconstruction error, in units of the tolerance `atol + rtol * |y0|` (RMS over the
      state).
    - `check_every`: for `"auto"`, the training steps from one reversibility check to
      the next (default 50); a positive int.
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
    rtol: float = eqx.field(static=True, default=1e-3, converter=_as_python)
    atol: float = eqx.field(static=True, default=1e-6, converter=_as_python)
    dt0: float | None = eqx.field(static=True, default=None, converter=_as_python)
    max_steps: int = eqx.field(static=True, default=4096, converter=_as_python)
    adjoint: Literal["checkpoint", "backsolve", "direct", "checked", "auto"] = eqx.field(
        static=True, default="checkpoint"
    )
    checkpoints: int | None = eqx.field(static=True, default=None, converter=_as_python)
    seminorm: bool = eqx.field(static=True, default=False)
    check_threshold: float = eqx.field(static=True, default=10.0, converter=_as_python)
    batching: Literal["batch", "vmap"] = eqx.field(static=True, default="batch")
    check_every: int = eqx.field(static=True, default=50, converter=_as_python)
    count_evals: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise ConfigError(f"solver must be a diffrax solver instance, got {self.solver!r}")
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not _is_positive_number(value):
                raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
        if self.dt0 is not None and not _is_positive_number(self.dt0):
            raise ConfigError(
                f"dt0 must be None or a positive finite number (a step size: the direction "
                f"of integration comes from t0 and t1), got {self.dt0!r}"
            )
        if not self.adaptive and self.dt0 is None:
            raise ConfigError(
                f"{type(self.solver).__name__} has no error estimate, so it takes fixed steps: "
                "give dt0 (the step size)."
            )
        if not _is_positive_int(self.max_steps):
            raise ConfigError(f"max_steps must be a positive int, got {self.max_steps!r}")
        if self.adjoint not in ADJOINTS:
            raise ConfigError(f"unknown adjoint {self.adjoint!r}; choose one of {ADJOINTS}")
        if self.batching not in BATCHING:
            raise ConfigError(f"unknown batching {self.batching!r}; choose one of {BATCHING}")
        if self.checkpoints is not None and not _is_positive_int(self.checkpoints):
            raise ConfigError(
                f"checkpoints must be None or a positive int, got {self.checkpoints!r}"
            )
        if not _is_positive_number(self.check_threshold):
            raise ConfigError(
                f"check_threshold must be a positive finite number, got {self.check_threshold!r}"
            )
        if not _is_positive_int(self.check_every):
            raise ConfigError(
                f"check_every must be a positive int (training steps between reversibility "
                f"checks of adjoint='auto'), got {self.check_every!r}"
            )
        if self.seminorm and self.adjoint not in ("backsolve", "checked", "auto"):
            raise ConfigError(
                "seminorm=True only applies to adjoint='backsolve', 'checked' or 'auto'"
            )

    @property
    def adaptive(self) -> bool:
        """Whether the solver has an error estimate (and so adaptive steps)."""
        return isinstance(self.solver, diffrax.AbstractAdaptiveSolver)

    def replace(self, **changes: Any) -> Solver:
        """A copy with some fields changed (validated again).

        Example:

        ```python
        import odezoo

        fast = odezoo.Solver().replace(rtol=1e-2, atol=1e-2)
        ```
        """
        names = _field_names(self)
        unknown = set(changes) - set(names)
        if unknown:
            raise ConfigError(f"unknown Solver field(s) {sorted(unknown)}; valid: {sorted(names)}")
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
        """A JSON-able dict that [`Solver.from_config`][odezoo.Solver.from_config] reads.

        `check_every` is left out at its default (it was added after runs had been
        configured, and a run's config must keep its hash to be resumed)."""
        cfg = {k: getattr(self, k) for k in _field_names(self) if k != "solver"}
        for name, default in _OMITTED_AT_DEFAULT.items():
            if cfg[name] == default:
                del cfg[name]
        cfg["solver"] = type(self.solver).__name__
        return cfg

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Solver:
        """Build a `Solver` from a dict such as `to_config()` writes (solver by name)."""
        cfg = dict(cfg)
        name = cfg.pop("solver", "Dopri5")
        solver_cls = getattr(diffrax, name, None)
        if not (isinstance(solver_cls, type) and issubclass(solver_cls, diffrax.AbstractSolver)):
            raise ConfigError(f"unknown diffrax solver {name!r} in solver config")
        return cls(solver=solver_cls(), **cfg)

    # -- pieces handed to diffrax ------------------------------------------------------

    def _controller(self, backward: bool = False, controlled: Callable | None = None):
        if not self.adaptive:
            return diffrax.ConstantStepSize()
        norm = diffrax.adjoint_rms_seminorm if (backward and self.seminorm) else None
        if controlled is not None and not backward:
            norm = lambda error: _rms(controlled(error))
        kwargs = {} if norm is None else {"norm": norm}
        return diffrax.PIDController(rtol=self.rtol, atol=self.atol, **kwargs)

    def _diffrax_adjoint(self, kind: str, derivative_field: bool = False):
        if kind == "checkpoint":
            return diffrax.RecursiveCheckpointAdjoint(checkpoints=self.checkpoints)
        if kind == "direct":
            return diffrax.DirectAdjoint()
        if kind == "backsolve":
            # For a field that differentiates itself (a CNF), the reverse solve evaluates
            # diffrax's adjoint field as one VJP (_backsolve.py): the same steps, 6x
            # cheaper per adjoint step on the exact-trace CNF. On first-order fields
            # diffrax's own form measured faster, so they keep it.
            solver = AdjointSolver(self.solver) if derivative_field else self.solver
            return diffrax.BacksolveAdjoint(
                solver=solver, stepsize_controller=self._controller(backward=True)
            )
        raise AssertionError(kind)


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
    if _auto_dt0(solver):
        init += _INITIAL_STEP_EVALS
    return init + per_step * num_steps


def auto_phase(auto: Solver, adjoint: str) -> dict[str, Any]:
    """The solver changes that turn `auto` (a solver with `adjoint="auto"`) into one
    phase of it: `"checked"` at a check, then `"backsolve"` or `"checkpoint"`. The
    seminorm applies to the phases that solve backwards (checkpointing refuses it)."""
    return {"adjoint": adjoint, "seminorm": auto.seminorm and adjoint != "checkpoint"}


def auto_choice(fell_back) -> str:
    """The adjoint `"auto"` trains with after a check: `"backsolve"` when the checked
    step's reconstruction passed (`fell_back == 0`), `"checkpoint"` otherwise (it fell
    back, or its flag is missing)."""
    return "backsolve" if fell_back == 0 else "checkpoint"


def backward_evaluations(solver: Solver, kind: str, nfe: Array) -> Array:
    """VJPs of the field in a backward pass through a solve of `kind` (see `SolveStats`;
    `"auto"` outside `fit` is `"checkpoint"`)."""
    if kind == "auto":
        kind = "checkpoint"
    if kind not in ("checkpoint", "direct"):
        return jnp.full_like(nfe, jnp.nan, dtype=jnp.float32)
    return nfe - _INITIAL_STEP_EVALS if _auto_dt0(solver) else nfe


# Evaluations of the field by `_initial_step`, made without gradient.
_INITIAL_STEP_EVALS = 2


def _auto_dt0(solver: Solver) -> bool:
    return solver.dt0 is None and solver.adaptive


def _initial_step(solver: Solver, field, y0, args, t0, t1, controlled=None) -> Array:
    """The initial step of Hairer, Nørsett and Wanner (Solving ODEs I, sec. II.4), as
    torchdiffeq and diffrax's `PIDController` define it: two evaluations of `field`.

    odezoo computes it itself because diffrax 0.7 wraps the terms before its controller
    sees them, so its own selection never runs and every adaptive solve starts at
    `dt0 = 0.01`, growing at most 10x a step: one or two wasted steps per solve
    (measured by `odezoo.bench`, docs/benchmarks.md). No gradient flows through it.
    `controlled` picks the part of the state that controls the steps (as in `solve`).
    """
    order = solver.solver.error_order(diffrax.ODETerm(field))
    dynamic, static = eqx.partition((field, y0, args), eqx.is_array)
    field, y0, args = eqx.combine(jax.lax.stop_gradient(dynamic), static)
    leaves = jax.tree_util.tree_leaves(y0)
    dtype = jnp.result_type(*leaves) if leaves else jnp.float32
    direction = jnp.where(jnp.asarray(t1) >= jnp.asarray(t0), 1.0, -1.0).astype(dtype)
    part = (lambda tree: tree) if controlled is None else controlled
    scale = jax.tree_util.tree_map(lambda v: solver.atol + solver.rtol * jnp.abs(v), part(y0))
    scaled = lambda x: _rms(jax.tree_util.tree_map(lambda a, b: a / b, part(x), scale))
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


def _rms(x: PyTree) -> Array:
    leaves = [jnp.ravel(v) for v in jax.tree_util.tree_leaves(x)]
    flat = jnp.concatenate(leaves)
    return jnp.sqrt(jnp.mean(flat**2))


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


def _one_solve(solver, field, y0, args, t0, t1, ts, kind, probe=None, controlled=None):
    """A single diffrax solve of `field` (which already handles any batch axis).

    `probe`: the same field without an evaluation counter, for diagnosing a failure.
    `controlled`: the part of the state that controls the step size (as in `solve`).
    """
    # `t1=True` is always saved: on failure diffrax stores there the time it reached and
    # the last accepted state (entries of `ts` beyond it are filled with inf).
    saveat = diffrax.SaveAt(ts=ts, t1=True) if ts is not None else diffrax.SaveAt(t1=True)
    if _auto_dt0(solver):
        dt0 = _initial_step(solver, field, y0, args, t0, t1, controlled)
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
        stepsize_controller=solver._controller(controlled=controlled),
        adjoint=solver._diffrax_adjoint(kind, _differentiates_itself(field)),
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
        int(SolveStatus.DIVERGED),
        jnp.where(stopped, int(SolveStatus.MAX_STEPS), int(SolveStatus.SUCCESSFUL)),
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
    plain = solver.replace(adjoint="checkpoint", seminorm=False)
    y1, _ = _one_solve(plain, field, y0, args, t0, t1, None, "checkpoint")
    y0_rec, _ = _one_solve(plain, field, y1, args, t1, t0, None, "checkpoint")
    scale = jax.tree_util.tree_map(lambda a: solver.atol + solver.rtol * jnp.abs(a), y0)
    scaled = jax.tree_util.tree_map(lambda a, b, s: (a - b) / s, y0_rec, y0, scale)
    return _rms(scaled)


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
    cause (a [`SolveStatus`][odezoo.SolveStatus]: `max_steps` reached, divergence,
    non-finite input); models turn that into an error with
    [`check_solution`][odezoo.check_solution].

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
    # "auto" switches adjoints between training steps (in `fit`); a solve of its own is
    # checkpointed, the safe choice.
    kind = "checkpoint" if solver.adjoint == "auto" else solver.adjoint
    input_ok = jax.lax.stop_gradient(all_finite((y0, args, example_args, t0, t1, ts)))
    plain = field
    if solver.count_evals:
        field = CountedField(field)
    has_ex = example_args is not None
    run_args = (args, example_args) if has_ex else args

    if batched and solver.batching == "batch":
        run_field, probe = BatchField(field, has_ex), BatchField(plain, has_ex)
        run = lambda k, y: _one_solve(
            solver, run_field, y, run_args, t0, t1, ts, k, probe, controlled
        )
    elif batched:

        def run(k, y):
            ys, st = jax.vmap(
                lambda yi, ai: _one_solve(solver, field, yi, ai, t0, t1, ts, k, plain, controlled),
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
        run = lambda k, y: _one_solve(solver, field, y, run_args, t0, t1, ts, k, plain, controlled)

    if kind == "checked":
        err = reconstruction_error(
            solver, field, y0, args, t0=t0, t1=t1, batched=batched, example_args=example_args
        )
        ok = err <= solver.check_threshold
        ys, st = jax.lax.cond(ok, lambda y: run("backsolve", y), lambda y: run("checkpoint", y), y0)
        rev_err, fell_back = err, (~ok).astype(jnp.int32)
    else:
        ys, st = run(kind, y0)
        rev_err, fell_back = jnp.asarray(jnp.nan, jnp.float32), jnp.asarray(0, jnp.int32)

    nfe = forward_evaluations(solver, st["num_steps"])
    failed = jnp.where(input_ok, st["failed"], int(SolveStatus.NONFINITE_INPUT))
    stats = SolveStats(
        num_steps=st["num_steps"],
        num_accepted_steps=st["num_accepted_steps"],
        num_rejected_steps=st["num_rejected_steps"],
        nfe=nfe,
        nfe_backward=backward_evaluations(solver, kind, nfe),
        t_reached=st["t_reached"],
        failed=failed.astype(jnp.int32),
        reversibility_error=rev_err,
        fell_back=fell_back,
    )
    return ys, stats


def check_solution(y: PyTree, stats: SolveStats, *, what: str, solver: Solver, t0, t1) -> PyTree:
    """Raise (at run time, also under `jit`) if a solve failed, with its cause.

    Returns `y` unchanged otherwise. Used by every odezoo model after
    [`solve`][odezoo.solve]; the message names the model, the interval, the solver
    settings, what happened (a [`SolveStatus`][odezoo.SolveStatus]: non-finite input,
    divergence, or `max_steps` reached) and what to change.

    The error is an `equinox.EquinoxRuntimeError` (inside `jax.jit`, JAX wraps it in a
    `JaxRuntimeError` with the same message); odezoo's models turn it into an
    [`SolverError`][odezoo.SolverError] outside `jit`.

    Arguments:

    - `y`: the solution.
    - `stats`: the [`SolveStats`][odezoo.SolveStats] of that solve.
    - `what`: the model, e.g. `"ODENet(augment=2)"`.
    - `solver`: the [`Solver`][odezoo.Solver] used.
    - `t0`, `t1`: the interval (for the message).
    """
    messages = _failure_messages(what, solver, t0, t1)
    # Error messages must be static under jit, so the time reached is reported as which
    # twentieth of the interval the solve stopped in.
    span = jnp.asarray(t1) - jnp.asarray(t0)
    frac = (stats.t_reached - jnp.asarray(t0)) / jnp.where(span == 0, 1.0, span)
    bucket = jnp.clip(jnp.floor(jnp.nan_to_num(frac) * _BUCKETS), 0, _BUCKETS - 1)
    bucket = bucket.astype(jnp.int32)
    index = jnp.select(
        [stats.failed == SolveStatus.MAX_STEPS, stats.failed == SolveStatus.DIVERGED],
        [bucket, _BUCKETS + bucket],
        default=2 * _BUCKETS,
    )
    return eqx.branched_error_if(y, stats.failed != SolveStatus.SUCCESSFUL, index, messages)


_BUCKETS = 20


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
