"""How an ODE is solved: the [`Solver`][odezoo.Solver] every ODE model holds.

A `Solver` holds everything that decides *how* an ODE is solved: the diffrax solver,
tolerances, initial step, `max_steps`, the adjoint used for gradients (an
[`AbstractAdjoint`][odezoo.AbstractAdjoint]) and how a batch is mapped onto ODE
solves. [`solve`][odezoo.solve] (in `_solve.py`) is the function every model calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import diffrax
import equinox as eqx

from ._adjoint import AbstractAdjoint, parse_adjoint
from ._adjoint import adjoint_options as adjoint_options_known
from ._errors import ConfigError
from ._initial_step import INITIAL_STEP_EVALS, rms
from ._static import as_python, field_names, is_positive_int, is_positive_number

BATCHING = ("batch", "vmap")
# The fields a `Solver` keeps itself; every other key of a solver config is the
# adjoint's (see `parse_adjoint`).
_OWN = ("rtol", "atol", "dt0", "max_steps", "adjoint", "batching", "count_evals")


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
    - `adjoint`: how gradients are computed, an
      [`AbstractAdjoint`][odezoo.AbstractAdjoint] or its name:
        - `"checkpoint"` (default): [`CheckpointAdjoint`][odezoo.CheckpointAdjoint],
          exact gradients of the discretised solve.
        - `"backsolve"`: [`BacksolveAdjoint`][odezoo.BacksolveAdjoint], the continuous
          adjoint of Chen et al. 2018, memory constant in the number of steps.
        - `"direct"`: [`DirectAdjoint`][odezoo.DirectAdjoint] (also forward-mode).
        - `"checked"`: [`CheckedAdjoint`][odezoo.CheckedAdjoint], backsolve after a
          reversibility check, checkpointing where the check fails.
        - `"auto"`: [`AutoAdjoint`][odezoo.AutoAdjoint], for training: `fit` checks
          every `check_every` steps and trains with what the check chose.
    - `**adjoint_options`: with a name, the adjoint's options (`checkpoints`,
      `seminorm`, `check_threshold`, `check_every`; see each class), as configs state
      them: `Solver(adjoint="backsolve", seminorm=True)` is
      `Solver(adjoint=BacksolveAdjoint(seminorm=True))`.
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
    - `throw`: what a model does with a failed solve
      ([`check_solution`][odezoo.internal.check_solution]): `True` (default) raises an error
      that says why; `False` puts NaN in place of the solution and leaves the cause in
      the solve's statistics (`stats.result`), as diffrax's `throw=False` does.
      [`fit`][odezoo.train.fit] trains with `throw=False` and reports the cause as a
      [`TrainingError`][odezoo.train.TrainingError]. Not part of the solver's config.

    Numbers may be Python, NumPy or concrete 0-d JAX scalars (they are stored as Python
    numbers). A bad value raises [`ConfigError`][odezoo.ConfigError].

    Example:

    ```python
    import diffrax
    import odezoo

    solver = odezoo.Solver(rtol=1e-5, atol=1e-5, adjoint="backsolve", seminorm=True)
    assert solver.adjoint == odezoo.BacksolveAdjoint(seminorm=True)
    tight = solver.replace(rtol=1e-7, atol=1e-7)
    euler = odezoo.Solver(solver=diffrax.Euler(), dt0=0.05)
    ```
    """

    solver: diffrax.AbstractSolver = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    dt0: float | None = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    adjoint: AbstractAdjoint = eqx.field(static=True)
    batching: Literal["batch", "vmap"] = eqx.field(static=True)
    count_evals: bool = eqx.field(static=True)
    throw: bool = eqx.field(static=True)

    def __init__(
        self,
        solver: diffrax.AbstractSolver | None = None,
        rtol: float = 1e-3,
        atol: float = 1e-6,
        dt0: float | None = None,
        max_steps: int = 4096,
        adjoint: AbstractAdjoint | str = "checkpoint",
        *,
        batching: Literal["batch", "vmap"] = "batch",
        count_evals: bool = False,
        throw: bool = True,
        **adjoint_options: Any,
    ):
        self.solver = diffrax.Dopri5() if solver is None else solver
        self.rtol = as_python(rtol)
        self.atol = as_python(atol)
        self.dt0 = as_python(dt0)
        self.max_steps = as_python(max_steps)
        unknown = set(adjoint_options) - adjoint_options_known()
        if unknown:
            raise ConfigError(
                f"unknown Solver argument(s) {sorted(unknown)}: a Solver takes solver, "
                f"{', '.join(_OWN)}, throw, and its adjoint's options "
                f"{sorted(adjoint_options_known() - {'adjoint'})}"
            )
        self.adjoint = parse_adjoint(adjoint, **adjoint_options)
        self.batching = batching
        self.count_evals = count_evals
        self.throw = throw

    def __check_init__(self):
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise ConfigError(f"solver must be a diffrax solver instance, got {self.solver!r}")
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not is_positive_number(value):
                raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
        if self.dt0 is not None and not is_positive_number(self.dt0):
            raise ConfigError(
                f"dt0 must be None or a positive finite number (a step size: the direction "
                f"of integration comes from t0 and t1), got {self.dt0!r}"
            )
        if not self.adaptive and self.dt0 is None:
            raise ConfigError(
                f"{type(self.solver).__name__} has no error estimate, so it takes fixed steps: "
                "give dt0 (the step size)."
            )
        if not is_positive_int(self.max_steps):
            raise ConfigError(f"max_steps must be a positive int, got {self.max_steps!r}")
        if self.batching not in BATCHING:
            raise ConfigError(f"unknown batching {self.batching!r}; choose one of {BATCHING}")

    @property
    def adaptive(self) -> bool:
        """Whether the solver has an error estimate (and so adaptive steps)."""
        return isinstance(self.solver, diffrax.AbstractAdaptiveSolver)

    @property
    def initial_step_evaluations(self) -> int:
        """Evaluations of the field that choose the initial step (without gradient): 2
        for an adaptive solver with automatic `dt0`, else 0."""
        return INITIAL_STEP_EVALS if self.dt0 is None and self.adaptive else 0

    def replace(self, **changes: Any) -> Solver:
        """A copy with some fields changed (validated again).

        The adjoint's options may be changed by name too (`replace(seminorm=True)`).
        An adjoint given by name keeps the options of the present adjoint that it has
        (`replace(adjoint="backsolve")` from `"checked"` keeps `seminorm`); an adjoint
        object is taken as it is.

        Example:

        ```python
        import odezoo

        fast = odezoo.Solver().replace(rtol=1e-2, atol=1e-2)
        checked = odezoo.Solver(adjoint="backsolve", seminorm=True).replace(adjoint="checked")
        assert checked.adjoint == odezoo.CheckedAdjoint(seminorm=True)
        ```
        """
        valid = set(field_names(self)) | adjoint_options_known()
        unknown = set(changes) - valid
        if unknown:
            raise ConfigError(f"unknown Solver field(s) {sorted(unknown)}; valid: {sorted(valid)}")
        fields = {k: getattr(self, k) for k in field_names(self)}
        adjoint = changes.pop("adjoint", self.adjoint)
        options = {k: changes.pop(k) for k in list(changes) if k not in fields}
        if isinstance(adjoint, str) and adjoint != self.adjoint.name:
            carried = set(parse_adjoint(adjoint).options())
            kept = {k: v for k, v in self.adjoint.options().items() if k in carried}
            options = {**kept, **options}
        elif isinstance(adjoint, str):
            adjoint = self.adjoint
        fields.update(changes, adjoint=parse_adjoint(adjoint, **options))
        return Solver(**fields)

    def describe(self) -> str:
        """One line naming the solver, tolerances and adjoint (used in error messages)."""
        tol = f"rtol={self.rtol:g}, atol={self.atol:g}" if self.adaptive else f"dt0={self.dt0:g}"
        return (
            f"{type(self.solver).__name__}({tol}, max_steps={self.max_steps}, "
            f"adjoint={self.adjoint.name!r}, batching={self.batching!r})"
        )

    def to_config(self) -> dict[str, Any]:
        """A JSON-able dict that [`Solver.from_config`][odezoo.Solver.from_config] reads:
        the solver by its diffrax class name, the adjoint by its name with its options
        beside it (see [`AbstractAdjoint.to_config`][odezoo.AbstractAdjoint.to_config])."""
        cfg = {k: getattr(self, k) for k in _OWN if k != "adjoint"}
        cfg.update(self.adjoint.to_config())
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

    def step_controller(
        self, *, seminorm: bool = False, controlled: Callable | None = None
    ) -> diffrax.AbstractStepSizeController:
        """The diffrax step-size controller of a solve: `PIDController` at the
        tolerances for an adaptive solver, else constant steps.

        Arguments:

        - `seminorm`: measure the error by `diffrax.adjoint_rms_seminorm` (a backward
          solve of the adjoint, ignoring its parameter channels).
        - `controlled`: measure only the part of the state this picks (see `solve`).
        """
        if not self.adaptive:
            return diffrax.ConstantStepSize()
        norm = diffrax.adjoint_rms_seminorm if seminorm else None
        if controlled is not None:
            norm = lambda error: rms(controlled(error))
        kwargs = {} if norm is None else {"norm": norm}
        return diffrax.PIDController(rtol=self.rtol, atol=self.atol, **kwargs)
