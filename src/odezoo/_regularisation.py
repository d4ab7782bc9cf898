"""Regularisers that make learned dynamics cheap to solve.

The seed chapter: "during training, the dynamics being learned tend to become more and
more expensive to solve ... we need to somehow encourage our model to be easy to solve."
A [`Regularisation`][odezoo.Regularisation] names the penalties and their weights;
[`penalised_solve`][odezoo.penalised_solve] solves an ODE together with them:

- **RNODE** (Finlay et al. 2020, "How to train your neural ODE"): the kinetic energy
  `∫ ‖f‖² dt` and the Jacobian's Frobenius norm `∫ ‖∂f/∂y‖²_F dt` (exact, or Hutchinson's
  estimate `‖εᵀ ∂f/∂y‖²` with one probe `ε`), integrated as extra state channels.
- **TayNODE** (Kelly et al. 2020, "Learning differential equations that are easy to
  solve"): `∫ ‖d^K y/dt^K‖² dt` for an order `K`, by Taylor-mode differentiation
  (`jax.experimental.jet`).
- **STEER** (Ghosh et al. 2020, "STEER: Simple temporal regularization for neural
  ODEs"): the end time drawn from `U(t1 - b, t1 + b)` at each training step.
- **Error estimates** (Pal et al. 2021, "Opening the Blackbox"): `Σ E_j |Δt_j|`, the
  adaptive solver's local error estimates `E_j` (RMS, in units of the tolerance, as
  the step-size controller sees them) over the accepted steps, with no higher-order
  differentiation (see [`ErrorAccumulator`][odezoo.internal.ErrorAccumulator]).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.experimental.jet import jet
from jaxtyping import Array, PRNGKeyArray, PyTree

from ._accumulate import ErrorAccumulator
from ._backsolve import AbstractDerivativeField
from ._errors import InputError
from ._random import standard_normal, uniform
from ._solve import _differentiates_itself, solve
from ._solver import Solver
from ._stats import SolveStats

CHANNELS = ("kinetic", "jacobian", "taylor")
"""The penalties integrated as extra state channels, in this order."""


def _weight(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number >= 0, got {value!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


class Regularisation(eqx.Module):
    """Which speed regularisers to apply during training, and their weights.

    Every weight defaults to zero (off). The penalty added to the training loss is
    `kinetic * K + jacobian * J + taylor * R_K + error * E`, each term the mean over the
    batch of the example's integral; STEER changes the end time instead.

    Arguments:

    - `kinetic`: weight of RNODE's kinetic energy `∫ ‖f(t, y)‖² dt`.
    - `jacobian`: weight of RNODE's `∫ ‖∂f/∂y‖²_F dt`: exact when no key is given to the
      solve (one JVP per state dimension: small states only), Hutchinson's one-probe
      estimate when a key is given.
    - `taylor`: weight of TayNODE's `∫ ‖d^K y/dt^K‖² dt`, `K = taylor_order`.
    - `taylor_order`: `K >= 1` (`K = 1` is the kinetic energy). Kelly et al. use 2 for
      FFJORD and 3 for an MNIST classifier. Cost grows as `K²` Taylor-mode passes.
    - `error`: weight of the sum of the adaptive solver's local error estimates times
      the step sizes (Pal et al. 2021). Needs an adaptive solver and the checkpointed or
      direct adjoint (the estimate only exists in the discretised solve). Its gradient
      flows through the error estimates at the steps the solver took; how the step sizes
      themselves would move is not differentiated (odezoo chooses the initial step
      without gradient), so finite differences over an adaptive solve differ from it.
    - `steer`: STEER's half-width `b`: during training the end time is drawn from
      `U(t1 - b, t1 + b)`; must be smaller than `|t1 - t0|`. Evaluation uses `t1`.

    Example:

    ```python
    import odezoo

    reg = odezoo.Regularisation(kinetic=0.01, jacobian=0.01)
    tay = odezoo.Regularisation(taylor=0.01, taylor_order=2, steer=0.5)
    print(reg.channels, tay.active)
    ```

    !!! warning

        Each penalty changes what is learned: too large a weight gives dynamics that are
        cheap to solve and fit the data badly. Compare the metric, not only the NFE.
    """

    kinetic: float = eqx.field(static=True, default=0.0, converter=float)
    jacobian: float = eqx.field(static=True, default=0.0, converter=float)
    taylor: float = eqx.field(static=True, default=0.0, converter=float)
    taylor_order: int = eqx.field(static=True, default=2)
    error: float = eqx.field(static=True, default=0.0, converter=float)
    steer: float = eqx.field(static=True, default=0.0, converter=float)

    def __check_init__(self):
        for name in ("kinetic", "jacobian", "taylor", "error", "steer"):
            _weight(getattr(self, name), name)
        order = self.taylor_order
        if isinstance(order, bool) or not (isinstance(order, int) and order >= 1):
            raise InputError(f"taylor_order must be an int >= 1, got {order!r}")

    @property
    def channels(self) -> tuple[str, ...]:
        """The penalties integrated as state channels (those with a weight > 0)."""
        return tuple(name for name in CHANNELS if getattr(self, name) > 0)

    @property
    def active(self) -> bool:
        """Whether any regulariser is switched on."""
        return bool(self.channels) or self.error > 0 or self.steer > 0

    def end_time(self, t0, t1, key: PRNGKeyArray | None):
        """STEER's end time: `t1 + U(-b, b)` with a key, `t1` itself without one."""
        if self.steer == 0 or key is None:
            return t1
        if isinstance(t0, int | float) and isinstance(t1, int | float):
            if not self.steer < abs(t1 - t0):
                raise InputError(
                    f"steer={self.steer:g} must be smaller than the interval's length "
                    f"|t1 - t0| = {abs(t1 - t0):g}"
                )
        delta = uniform(key, (), jnp.result_type(t1, float), -self.steer, self.steer)
        return t1 + delta

    def penalty(self, values: dict[str, Array]) -> Array:
        """The weighted sum of the penalties' batch means (a scalar)."""
        total = jnp.zeros(())
        for name, value in values.items():
            total = total + getattr(self, name) * jnp.mean(value)
        return total


def taylor_derivative(field: Callable, t, y: Array, order: int) -> Array:
    """`d^K y/dt^K` along the solution of `dy/dt = field(t, y)` through `(t, y)`, by
    Taylor-mode differentiation (`jax.experimental.jet`), `K = order >= 1`.

    Example:

    ```python
    import jax.numpy as jnp
    from odezoo import taylor_derivative

    A = jnp.array([[0.0, 1.0], [-1.0, 0.0]])
    y = jnp.array([1.0, 0.0])
    second = taylor_derivative(lambda t, y: A @ y, 0.0, y, 2)   # A @ A @ y
    ```
    """
    t = jnp.asarray(t, dtype=y.dtype)
    derivatives = [field(t, y)]
    for k in range(1, order):
        t_series = [jnp.ones_like(t)] + [jnp.zeros_like(t)] * (k - 1)
        _, series = jet(field, (t, y), (t_series, derivatives))
        derivatives.append(series[-1])
    return derivatives[order - 1]


class PenaltyField(eqx.Module):
    """The vector field of `(y, penalties[, error accumulator])` for one example.

    `field(t, y, args)` is the user's field. With a Hutchinson probe, `args` arrives as
    `(args, (example_args, probe))`; the user's field gets `args` (or
    `(args, example_args)` when it had per-example arguments) as before. With a
    `velocity(t, z, args)`, the state `y` is a tuple whose first element `z` is what moves
    (a CNF's `(z, log-det)`): the penalties are of that motion, and the field's first
    output is its velocity.
    """

    field: Callable
    velocity: Callable | None
    channels: tuple[str, ...] = eqx.field(static=True)
    taylor_order: int = eqx.field(static=True)
    probe: bool = eqx.field(static=True)
    user_example_args: bool = eqx.field(static=True)
    accumulate_error: bool = eqx.field(static=True)

    def _user_args(self, args):
        if not self.probe:
            return args, None
        shared, (example, probe) = args
        return ((shared, example) if self.user_example_args else shared), probe

    def __call__(self, t, state, args):
        y = state[0]
        user_args, probe = self._user_args(args)
        dy = self.field(t, y, user_args)
        motion = self.field if self.velocity is None else self.velocity
        g = lambda s, z: motion(s, z, user_args)
        z, dz = (y, dy) if self.velocity is None else (y[0], dy[0])
        rates = []
        for name in self.channels:
            if name == "kinetic":
                rates.append(jnp.sum(dz**2))
            elif name == "jacobian":
                rates.append(_frobenius(lambda zz: g(t, zz), z, probe))
            else:
                rates.append(jnp.sum(taylor_derivative(g, t, z, self.taylor_order) ** 2))
        dtype = z.dtype
        out = (dy, jnp.stack(rates).astype(dtype) if rates else jnp.zeros((0,), dtype))
        if self.accumulate_error:
            out = (*out, jnp.zeros((), dtype))
        return out


class DerivativePenaltyField(PenaltyField, AbstractDerivativeField):
    """A `PenaltyField` that differentiates in every evaluation: a Jacobian or
    Taylor penalty, or a field that differentiates itself (a CNF's trace). Backsolve's
    reverse solve then takes one VJP per stage instead of diffrax's Jacobian of one
    (see `AbstractDerivativeField`); the forward solve is the same."""


def _penalty_field_class(field: Callable, channels: tuple[str, ...]) -> type[PenaltyField]:
    if {"jacobian", "taylor"} & set(channels) or _differentiates_itself(field):
        return DerivativePenaltyField
    return PenaltyField


def _frobenius(f, y, probe):
    if probe is None:
        jac = jax.jacfwd(f)(y)
        return jnp.sum(jac**2)
    _, vjp = jax.vjp(f, y)
    (e_jac,) = vjp(probe)
    return jnp.sum(e_jac**2)


def penalised_solve(
    solver: Solver,
    field: Callable,
    y0: PyTree,
    args: PyTree = None,
    *,
    regularisation: Regularisation,
    t0: float | Array = 0.0,
    t1: float | Array = 1.0,
    batched: bool = False,
    key: PRNGKeyArray | None = None,
    example_args: PyTree = None,
    velocity: Callable | None = None,
) -> tuple[PyTree, dict[str, Array], SolveStats]:
    """Solve `dy/dt = field(t, y, args)` as [`solve`][odezoo.solve] does, together with
    the regularisers' integrals.

    Arguments:

    - `solver`, `field`, `y0`, `args`, `t0`, `t1`, `batched`, `example_args`: as for
      [`solve`][odezoo.solve]; `y0` is an array (one example, or a batch), or with
      `velocity` a tuple whose first element is what moves.
    - `regularisation`: a [`Regularisation`][odezoo.Regularisation].
    - `key`: with a key, the Jacobian term uses a Hutchinson probe and STEER draws the
      end time (training); without one, the Jacobian term is exact and the end time is
      `t1` (evaluation).
    - `velocity`: for a state `(z, ...)` whose other parts are integrals (a CNF's
      log-determinant), `velocity(t, z, args)`, the motion of `z` that is penalised;
      `field(t, y, args)[0]` must equal it. Default: the penalties are of `field` on `y`.

    Returns:

    `(y1, values, stats)`: the state at the (possibly drawn) end time; a dict from each
    active penalty's name (`"kinetic"`, `"jacobian"`, `"taylor"`, `"error"`) to its
    per-example values (shape `(B,)` for a batch, `()` for one example); the solve's
    statistics. [`Regularisation.penalty`][odezoo.Regularisation.penalty] weighs them.

    Example:

    ```python
    import jax.numpy as jnp
    import odezoo

    reg = odezoo.Regularisation(kinetic=1.0)
    y1, values, stats = odezoo.penalised_solve(
        odezoo.Solver(rtol=1e-6, atol=1e-6), lambda t, y, a: -y, jnp.ones(2),
        regularisation=reg)
    # values["kinetic"] = ∫ |y(t)|² dt = 2 (1 - exp(-2)) / 2
    ```
    """
    reg = regularisation
    moving = y0 if velocity is None else y0[0]
    steer_key, probe_key = (None, None) if key is None else jax.random.split(key)
    t1 = reg.end_time(t0, t1, steer_key)
    probe = "jacobian" in reg.channels and key is not None
    accumulate = reg.error > 0
    if accumulate:
        if not solver.adaptive:
            raise InputError(
                "the error-estimate regulariser needs an adaptive solver (with an error "
                f"estimate); {type(solver.solver).__name__} takes fixed steps"
            )
        if not solver.adjoint.differentiates_steps:
            raise InputError(
                "the error-estimate regulariser is differentiated through the solver's "
                f"steps: use adjoint='checkpoint' or 'direct', not {solver.adjoint.name!r}"
            )
        solver = solver.replace(solver=ErrorAccumulator(solver.solver, solver.rtol, solver.atol))
    penalty_field = _penalty_field_class(field, reg.channels)(
        field, velocity, reg.channels, reg.taylor_order, probe, example_args is not None, accumulate
    )
    batch_shape = moving.shape[:1] if batched else ()
    zeros = jnp.zeros((*batch_shape, len(reg.channels)), moving.dtype)
    state = (y0, zeros)
    if accumulate:
        state = (*state, jnp.zeros(batch_shape, moving.dtype))
    ex = example_args
    if probe:
        ex = (example_args, standard_normal(probe_key, moving.shape, moving.dtype))
    out, stats = solve(
        solver,
        penalty_field,
        state,
        args,
        t0=t0,
        t1=t1,
        batched=batched,
        example_args=ex,
        controlled=_solution_part,
    )
    values = {name: out[1][..., i] for i, name in enumerate(reg.channels)}
    if accumulate:
        values["error"] = out[2]
    return out[0], values, stats


def _solution_part(state):
    """The solution in a penalised state: only its error controls the steps, so that the
    penalty channels change neither the steps taken nor the NFE."""
    return state[0]
