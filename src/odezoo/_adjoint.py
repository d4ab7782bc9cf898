"""Adjoints: how gradients through a solve are computed, one class per strategy.

As diffrax's own adjoints (`diffrax.AbstractAdjoint`), each strategy is an
`equinox.Module` holding its options; a [`Solver`][odezoo.Solver] holds one. Each class
says what it does to a solve ([`AbstractAdjoint.run`][odezoo.AbstractAdjoint.run]), to
an SDE solve, and how many backward evaluations it costs; a new strategy is one new
subclass with a `name`, and configs reach it by that name.

In configs and on the command line an adjoint is a string with its options beside it
(`{"adjoint": "backsolve", "seminorm": true}`); [`parse_adjoint`][odezoo.internal.parse_adjoint]
is the one place that reads them.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from ._backsolve import AdjointSolver
from ._errors import ConfigError
from ._static import as_python as _as_python
from ._static import is_positive_int as _is_positive_int
from ._static import is_positive_number as _is_positive_number

if TYPE_CHECKING:
    from ._solver import Solver

# One diffrax solve: `run(adjoint, y0) -> (ys, stats dict)`, for the adjoint given.
RunSolve = Callable[["AbstractAdjoint", PyTree], tuple[PyTree, dict]]

# Every adjoint class by its config name, filled by `AbstractAdjoint.__init_subclass__`.
ADJOINT_CLASSES: dict[str, type[AbstractAdjoint]] = {}

# Options that every solver config states, whatever its adjoint, at these values when
# the adjoint has no such option: configs written before adjoints were objects hold
# them, and a run's config hash (checked on resume) must not change. Any other option
# appears only when it differs from its default.
_ALWAYS_STATED = {"checkpoints": None, "seminorm": False, "check_threshold": 10.0}


class AbstractAdjoint(eqx.Module):
    """How gradients through a solve are computed: the interface of every adjoint.

    Subclasses set `name` (their config string), implement
    [`diffrax_adjoint`][odezoo.AbstractAdjoint.diffrax_adjoint], and may override
    `run` (what the adjoint does to a solve, e.g. a check before it), `sde_adjoint`,
    `backward_evaluations`, and `differentiates_steps`. Their fields are their options;
    every field needs a default, so that `parse_adjoint` can build one from a config
    that states only the name.

    Example:

    ```python
    import odezoo

    solver = odezoo.Solver(adjoint=odezoo.BacksolveAdjoint(seminorm=True))
    assert solver.adjoint.name == "backsolve"
    assert odezoo.Solver(adjoint="backsolve", seminorm=True) == solver
    ```
    """

    name: ClassVar[str]
    # Whether gradients flow through the solver's own steps (what the error-estimate
    # regulariser differentiates).
    differentiates_steps: ClassVar[bool] = False
    # Whether its solves report `SolveStats.reversibility_error` and `fell_back`.
    checks_reversibility: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if isinstance(name, str):
            if name in ADJOINT_CLASSES and ADJOINT_CLASSES[name].__qualname__ != cls.__qualname__:
                raise ConfigError(f"an adjoint named {name!r} exists already")
            ADJOINT_CLASSES[name] = cls

    @abc.abstractmethod
    def diffrax_adjoint(self, solver: Solver, derivative_field: bool) -> diffrax.AbstractAdjoint:
        """The `diffrax` adjoint of one ODE solve by `solver`.

        Arguments:

        - `solver`: the [`Solver`][odezoo.Solver] holding this adjoint.
        - `derivative_field`: whether the field differentiates itself (an
          `AbstractDerivativeField`, e.g. a CNF's), whose reverse solve can evaluate the
          adjoint field as one VJP.
        """

    def run(self, solver: Solver, run: RunSolve, check: Callable[[], Array], y0: PyTree):
        """Solve with this adjoint: `(ys, stats, reversibility_error, fell_back)`.

        Arguments:

        - `solver`: the [`Solver`][odezoo.Solver] holding this adjoint.
        - `run`: `run(adjoint, y0) -> (ys, stats)`, one solve with the adjoint given.
        - `check`: computes the reverse-reconstruction error of `y0` (in tolerance
          units), for an adjoint that checks it.
        - `y0`: the initial state.
        """
        del solver, check
        ys, stats = run(self, y0)
        return ys, stats, jnp.asarray(jnp.nan, jnp.float32), jnp.asarray(0, jnp.int32)

    def sde_adjoint(self, solver: Solver) -> diffrax.AbstractAdjoint:
        """The `diffrax` adjoint of an SDE solve (fixed steps) by `solver`; raises
        [`ConfigError`][odezoo.ConfigError] where the strategy has none."""
        del solver
        raise ConfigError(
            f"adjoint={self.name!r} is not available for SDEs; choose one of {sde_adjoint_names()}"
        )

    def backward_evaluations(self, solver: Solver, nfe: Array) -> Array:
        """VJPs of the field in a backward pass through a solve of `nfe` forward
        evaluations, where known before the backward pass runs; NaN otherwise."""
        del solver
        return jnp.full_like(nfe, jnp.nan, dtype=jnp.float32)

    def options(self) -> dict[str, Any]:
        """The options, by field name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_config(self) -> dict[str, Any]:
        """The config keys of this adjoint: `adjoint` (its name) and its options (see
        `Solver.to_config`)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        cfg: dict[str, Any] = {"adjoint": self.name, **_ALWAYS_STATED}
        for key, value in self.options().items():
            if key in _ALWAYS_STATED or value != defaults[key]:
                cfg[key] = value
        return cfg


def sde_adjoint_names() -> tuple[str, ...]:
    """The adjoints that solve SDEs."""
    return tuple(
        name
        for name, cls in ADJOINT_CLASSES.items()
        if cls.sde_adjoint is not AbstractAdjoint.sde_adjoint
    )


def _checkpoints_ok(value: int | None) -> None:
    if value is not None and not _is_positive_int(value):
        raise ConfigError(f"checkpoints must be None or a positive int, got {value!r}")


def _threshold_ok(value: float) -> None:
    if not _is_positive_number(value):
        raise ConfigError(f"check_threshold must be a positive finite number, got {value!r}")


def _checkpointed(solver: Solver, nfe: Array) -> Array:
    """Backward VJPs through a solve differentiated step by step: every forward
    evaluation but the initial-step selection's (no gradient flows through dt0)."""
    return nfe - solver.initial_step_evaluations


class CheckpointAdjoint(AbstractAdjoint):
    """`diffrax.RecursiveCheckpointAdjoint`: exact gradients of the discretised solve,
    by differentiating its steps; memory grows with `checkpoints`. The default.

    Arguments:

    - `checkpoints`: the number of checkpoints (`None`: diffrax's choice, about
      `sqrt(2 * max_steps)`).
    """

    name: ClassVar[str] = "checkpoint"
    differentiates_steps: ClassVar[bool] = True
    checkpoints: int | None = eqx.field(static=True, default=None, converter=_as_python)

    def __check_init__(self):
        _checkpoints_ok(self.checkpoints)

    def diffrax_adjoint(self, solver, derivative_field):
        return diffrax.RecursiveCheckpointAdjoint(checkpoints=self.checkpoints)

    def sde_adjoint(self, solver):
        return self.diffrax_adjoint(solver, False)

    def backward_evaluations(self, solver, nfe):
        return _checkpointed(solver, nfe)


class DirectAdjoint(AbstractAdjoint):
    """`diffrax.DirectAdjoint`: plain differentiation through the solver's loop (also
    supports forward-mode differentiation)."""

    name: ClassVar[str] = "direct"
    differentiates_steps: ClassVar[bool] = True

    def diffrax_adjoint(self, solver, derivative_field):
        return diffrax.DirectAdjoint()

    def sde_adjoint(self, solver):
        return diffrax.DirectAdjoint()

    def backward_evaluations(self, solver, nfe):
        return _checkpointed(solver, nfe)


class BacksolveAdjoint(AbstractAdjoint):
    """`diffrax.BacksolveAdjoint`, the continuous adjoint of Chen et al. 2018: solves the
    adjoint ODE backwards in time; memory constant in the number of steps, gradients
    approximate (see [`reversibility_error`][odezoo.reversibility_error]).

    Arguments:

    - `seminorm`: control the backward step size with `diffrax.adjoint_rms_seminorm`,
      ignoring the parameter-adjoint channels (Kidger et al. 2021: fewer backward
      evaluations).

    For a field that differentiates itself (a CNF's), the reverse solve evaluates
    diffrax's adjoint field as one VJP per stage: the same steps as diffrax's form,
    cheaper per step (`benchmarks/results/adjoints.md`). On SDEs it needs a
    Stratonovich solver (diffrax's backsolve is the adjoint of the Stratonovich SDE).
    """

    name: ClassVar[str] = "backsolve"
    seminorm: bool = eqx.field(static=True, default=False)

    def diffrax_adjoint(self, solver, derivative_field):
        inner = AdjointSolver(solver.solver) if derivative_field else solver.solver
        controller = solver.step_controller(seminorm=self.seminorm)
        return diffrax.BacksolveAdjoint(solver=inner, stepsize_controller=controller)

    def sde_adjoint(self, solver):
        if not isinstance(solver.solver, diffrax.AbstractStratonovichSolver):
            raise ConfigError(
                "adjoint='backsolve' on an SDE needs a Stratonovich solver (diffrax's "
                "backsolve adjoint is that of the Stratonovich SDE), got "
                f"{type(solver.solver).__name__}; use diffrax.ReversibleHeun() "
                "(algebraically reversible: exact backsolve gradients) or "
                "adjoint='checkpoint'"
            )
        if self.seminorm:
            raise ConfigError("seminorm=True controls adaptive steps; SDEs take fixed steps")
        return diffrax.BacksolveAdjoint(
            solver=solver.solver, stepsize_controller=diffrax.ConstantStepSize()
        )


class CheckedAdjoint(AbstractAdjoint):
    """Backsolve, checked first: every solve reconstructs its initial state by a reverse
    solve (see [`reversibility_error`][odezoo.reversibility_error]); when the error
    exceeds `check_threshold` the gradient is computed by checkpointing instead.
    `SolveStats.reversibility_error` and `fell_back` report what happened.

    Arguments:

    - `check_threshold`: the largest acceptable reconstruction error, in units of the
      tolerance `atol + rtol * |y0|` (RMS over the state).
    - `seminorm`: as [`BacksolveAdjoint`][odezoo.BacksolveAdjoint]'s, for its backsolve.
    - `checkpoints`: as [`CheckpointAdjoint`][odezoo.CheckpointAdjoint]'s, for its
      fall-back.

    !!! warning

        The check costs a forward and a reverse solve more, without gradient, on every
        call.
    """

    name: ClassVar[str] = "checked"
    checks_reversibility: ClassVar[bool] = True
    check_threshold: float = eqx.field(static=True, default=10.0, converter=_as_python)
    seminorm: bool = eqx.field(static=True, default=False)
    checkpoints: int | None = eqx.field(static=True, default=None, converter=_as_python)

    def __check_init__(self):
        _threshold_ok(self.check_threshold)
        _checkpoints_ok(self.checkpoints)

    @property
    def backsolve(self) -> BacksolveAdjoint:
        return BacksolveAdjoint(seminorm=self.seminorm)

    @property
    def fallback(self) -> CheckpointAdjoint:
        return CheckpointAdjoint(checkpoints=self.checkpoints)

    def diffrax_adjoint(self, solver, derivative_field):
        return self.backsolve.diffrax_adjoint(solver, derivative_field)

    def run(self, solver, run, check, y0):
        err = check()
        ok = err <= self.check_threshold
        ys, stats = jax.lax.cond(
            ok, lambda y: run(self.backsolve, y), lambda y: run(self.fallback, y), y0
        )
        return ys, stats, err, (~ok).astype(jnp.int32)


class AutoAdjoint(AbstractAdjoint):
    """For training: inside [`fit`][odezoo.train.fit], every `check_every`-th step runs
    as [`CheckedAdjoint`][odezoo.CheckedAdjoint], and the steps until the next check
    use backsolve if its reversibility check passed, checkpointing if it fell back
    (each decision is logged). Outside `fit` it solves and differentiates exactly as
    [`CheckpointAdjoint`][odezoo.CheckpointAdjoint]. See the
    [adjoint guide](../adjoints.md#the-auto-adjoint) for where it must not be used.

    Arguments:

    - `check_every`: the training steps from one reversibility check to the next; a
      positive int.
    - `check_threshold`, `seminorm`, `checkpoints`: as
      [`CheckedAdjoint`][odezoo.CheckedAdjoint]'s, for its checks and the adjoints they
      choose.
    """

    name: ClassVar[str] = "auto"
    check_every: int = eqx.field(static=True, default=50, converter=_as_python)
    check_threshold: float = eqx.field(static=True, default=10.0, converter=_as_python)
    seminorm: bool = eqx.field(static=True, default=False)
    checkpoints: int | None = eqx.field(static=True, default=None, converter=_as_python)

    def __check_init__(self):
        if not _is_positive_int(self.check_every):
            raise ConfigError(
                f"check_every must be a positive int (training steps between reversibility "
                f"checks of adjoint='auto'), got {self.check_every!r}"
            )
        _threshold_ok(self.check_threshold)
        _checkpoints_ok(self.checkpoints)

    @property
    def check(self) -> CheckedAdjoint:
        """The adjoint of a checking step."""
        return CheckedAdjoint(self.check_threshold, self.seminorm, self.checkpoints)

    @property
    def choices(self) -> dict[str, AbstractAdjoint]:
        """What a check may choose for the steps after it, by name."""
        return {
            "backsolve": BacksolveAdjoint(seminorm=self.seminorm),
            "checkpoint": CheckpointAdjoint(checkpoints=self.checkpoints),
        }

    def choice(self, fell_back) -> AbstractAdjoint:
        """The adjoint of the steps after a check: backsolve when the check's
        reconstruction passed (`fell_back == 0`), checkpointing otherwise (it fell back,
        or its flag is missing)."""
        return self.choices["backsolve" if fell_back == 0 else "checkpoint"]

    @property
    def _outside_fit(self) -> CheckpointAdjoint:
        return CheckpointAdjoint(checkpoints=self.checkpoints)

    def diffrax_adjoint(self, solver, derivative_field):
        return self._outside_fit.diffrax_adjoint(solver, derivative_field)

    def backward_evaluations(self, solver, nfe):
        return self._outside_fit.backward_evaluations(solver, nfe)


_OPTIONS = ("adjoint", *_ALWAYS_STATED)


def adjoint_options() -> set[str]:
    """Every config key an adjoint reads: `adjoint` and the options of every class."""
    keys = set(_OPTIONS)
    for cls in ADJOINT_CLASSES.values():
        keys |= {f.name for f in dataclasses.fields(cls)}
    return keys


def _option_default(key: str) -> Any:
    if key in _ALWAYS_STATED:
        return _ALWAYS_STATED[key]
    for cls in ADJOINT_CLASSES.values():
        for f in dataclasses.fields(cls):
            if f.name == key:
                return f.default
    raise KeyError(key)


def parse_adjoint(adjoint: AbstractAdjoint | str, **options: Any) -> AbstractAdjoint:
    """An adjoint from its config form: a name (`"checkpoint"`, `"backsolve"`,
    `"direct"`, `"checked"`, `"auto"`, or a registered subclass's) and its options.

    Arguments:

    - `adjoint`: the name, or an adjoint object (returned as is when no option is
      given; with options, their values replace the object's).
    - `**options`: option values by name (`checkpoints`, `seminorm`,
      `check_threshold`, `check_every`, ...). An option the adjoint does not have must
      be at its default (`None`, `False`, ...): `seminorm=True` with `"checkpoint"`
      raises [`ConfigError`][odezoo.ConfigError].

    Example:

    ```python
    import odezoo

    adjoint = odezoo.internal.parse_adjoint("auto", check_every=10, seminorm=True)
    assert adjoint == odezoo.AutoAdjoint(check_every=10, seminorm=True)
    ```
    """
    if isinstance(adjoint, AbstractAdjoint):
        if not options:
            return adjoint
        options = {**adjoint.options(), **options}
        adjoint = adjoint.name
    cls = ADJOINT_CLASSES.get(adjoint) if isinstance(adjoint, str) else None
    if cls is None:
        raise ConfigError(
            f"unknown adjoint {adjoint!r}; choose one of {tuple(ADJOINT_CLASSES)} "
            "(or an odezoo.AbstractAdjoint)"
        )
    known = adjoint_options()
    unknown = set(options) - known
    if unknown:
        raise ConfigError(f"unknown adjoint option(s) {sorted(unknown)}; valid: {sorted(known)}")
    own = {f.name for f in dataclasses.fields(cls)}
    for key, value in options.items():
        if key not in own and _as_python(value) != _option_default(key):
            users = sorted(n for n, c in ADJOINT_CLASSES.items() if key in _fields(c))
            raise ConfigError(
                f"{key}={value!r} only applies to adjoint "
                + " or ".join(repr(u) for u in users)
                + f", not {adjoint!r}"
            )
    return cls(**{k: v for k, v in options.items() if k in own})


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}
