"""Neural controlled differential equations (Kidger et al. 2020)."""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._errors import InputError
from .._solve import check_solution, solve
from .._solver import Solver
from .._stats import SolveStats
from ._adapt import Autonomous, model_dynamics
from ._base import AbstractODEModel, ODEProblem
from ._irregular import IrregularSeries, as_series

INTERPOLATIONS = ("cubic", "linear")


def control_path(series: IrregularSeries, interpolation: str = "cubic") -> tuple[Array, tuple]:
    """The continuous control path `X(s)` of each series, as diffrax interpolation
    coefficients over the observation index `s = 0, ..., T - 1`.

    `X` has channels `[time, values...]`. Missing values (mask 0) are NaN to diffrax,
    which interpolates through them; missing values before a series' first observation
    take that observation's value, those after its last one its last value (a channel
    never observed is 0). A CDE's solution is invariant under reparametrising its
    control, so integrating over the index instead of time loses nothing (time is a
    channel) and lets a batch with different times share one interval `[0, T - 1]`.

    Arguments:

    - `series`: an [`IrregularSeries`][odezoo.nn.IrregularSeries].
    - `interpolation`: `"cubic"` (Hermite cubic splines with backward differences,
      `diffrax.backward_hermite_coefficients`, Morrill et al. 2021) or `"linear"`.

    Returns:

    `(s, coeffs)`: the index grid `(T,)` and the per-series coefficients (each with a
    leading batch axis), for `diffrax.CubicInterpolation(s, coeffs)` or
    `diffrax.LinearInterpolation(s, coeffs)`.
    """
    if interpolation not in INTERPOLATIONS:
        raise InputError(f"unknown interpolation {interpolation!r}; choose one of {INTERPOLATIONS}")
    times, values, mask = series
    s = jnp.arange(times.shape[1], dtype=values.dtype)

    def one(t, v, m):
        x = jnp.concatenate([t[:, None], jnp.where(m > 0, v, jnp.nan)], axis=1)
        first_idx = jnp.argmax(m > 0, axis=0)
        first = jnp.where(jnp.any(m > 0, axis=0), v[first_idx, jnp.arange(v.shape[1])], 0.0)
        first = jnp.concatenate([t[:1], first])
        if interpolation == "cubic":
            coeffs = diffrax.backward_hermite_coefficients(
                s, x, replace_nans_at_start=first, fill_forward_nans_at_end=True
            )
        else:
            coeffs = (
                diffrax.linear_interpolation(
                    s, x, replace_nans_at_start=first, fill_forward_nans_at_end=True
                ),
            )
        return coeffs

    return s, jax.vmap(one)(times, values, mask)


def _path(interpolation: str, s: Array, coeffs: tuple):
    if interpolation == "cubic":
        return diffrax.CubicInterpolation(s, coeffs)
    return diffrax.LinearInterpolation(s, coeffs[0])


class CDEField(eqx.Module):
    """The CDE `dy = f(y) dX` as an ODE in the path's parameter: `dy/ds = f(y) dX/ds`.

    `f(s, y)` (a network from the hidden state to a `hidden x channels` matrix) lives in this
    Module, so every adjoint, `BacksolveAdjoint` included, differentiates it; the path
    arrives through `args` as `(s, coeffs)` (with per-series coefficients passed as
    `example_args`), so nothing is closed over.
    """

    net: eqx.Module
    hidden_size: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    interpolation: str = eqx.field(static=True)

    def __call__(self, s, y, args):
        grid, coeffs = args
        dx = _path(self.interpolation, grid, coeffs).derivative(s)
        return self.net(s, y).reshape(self.hidden_size, self.channels) @ dx


class _BoundCDE(eqx.Module):
    """A batch's CDE with its paths bound in (for `ode()`: a field needing no args)."""

    field: CDEField
    grid: Array
    coeffs: tuple

    def __call__(self, s, y, args):
        return jax.vmap(lambda yi, ci: self.field(s, yi, (self.grid, ci)))(y, self.coeffs)


class NeuralCDE(AbstractODEModel):
    """Neural CDE (Kidger et al. 2020, "Neural controlled differential equations for
    irregular time series"): the hidden state solves `dy = f(y) dX`, driven by a
    continuous path `X` interpolated from the (irregular, partly missing) observations
    with time as a channel ([`control_path`][odezoo.nn.control_path]); `y(0)` is a
    linear function of `X(0)`, the output a linear readout of the final state: logits
    for classification, values for regression.

    The batch is solved as one ODE over the observation index `[0, T - 1]` (the CDE is
    invariant under that reparametrisation). With `"linear"` interpolation `dX/ds` jumps
    at every observation; adaptive solvers then take more steps (prefer `"cubic"`).

    Arguments:

    - `data_size`: channels `C` per observation (the path has `C + 1`, with time).
    - `hidden_size`: size of `y`.
    - `out_size`: outputs of the readout.
    - `width_size`, `depth`, `activation`: the MLP `f` (`depth=0`: a linear map).
    - `final_activation`: of `f`'s output (`"tanh"`, as Kidger et al., bounds the
      field; `"identity"` for a linear field).
    - `interpolation`: `"cubic"` or `"linear"`.
    - `field`: a custom `f(s, y)` instead of the MLP, returning a `(hidden_size,
      C + 1)` matrix (or its `hidden_size * (C + 1)` entries, row-major), with `s` the
      path's parameter (the observation index): an equinox module, a
      `flax.nnx.Module`, or a plain function bound to its parameters by
      [`as_dynamics`][odezoo.nn.as_dynamics].
    - `solver`: a [`Solver`][odezoo.Solver].
    - `key`: a JAX PRNG key.

    Example:

    ```python
    import jax, odezoo
    from odezoo.nn import NeuralCDE, as_series

    times, values, mask, labels = odezoo.data.spirals_classification(
        4, 10, key=jax.random.key(0), drop=0.3)
    cde = NeuralCDE(2, hidden_size=8, out_size=2, key=jax.random.key(1))
    logits, stats = cde.apply(as_series(times, values, mask))   # (4, 2)
    ```
    """

    initial: eqx.nn.Linear
    field: CDEField
    readout: eqx.nn.Linear
    solver: Solver
    in_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        data_size: int,
        hidden_size: int = 16,
        out_size: int = 1,
        *,
        width_size: int = 32,
        depth: int = 1,
        activation: Callable = jax.nn.softplus,
        final_activation: Callable = jnp.tanh,
        interpolation: str = "cubic",
        field=None,
        solver: Solver | None = None,
        key: PRNGKeyArray,
    ):
        if interpolation not in INTERPOLATIONS:
            raise InputError(
                f"unknown interpolation {interpolation!r}; choose one of {INTERPOLATIONS}"
            )
        ikey, fkey, rkey = jax.random.split(key, 3)
        channels = data_size + 1
        self.initial = eqx.nn.Linear(channels, hidden_size, key=ikey)
        if field is None:
            net = Autonomous(
                eqx.nn.MLP(
                    hidden_size,
                    hidden_size * channels,
                    width_size,
                    depth,
                    activation=activation,
                    final_activation=final_activation,
                    key=fkey,
                )
            )
        else:
            net = model_dynamics(
                field,
                (hidden_size,),
                what="NeuralCDE field",
                out_shapes=((hidden_size, channels), (hidden_size * channels,)),
            )
        self.field = CDEField(net, hidden_size, channels, interpolation)
        self.readout = eqx.nn.Linear(hidden_size, out_size, key=rkey)
        self.solver = Solver() if solver is None else solver
        self.in_shape = (data_size,)

    @property
    def name(self) -> str:
        return f"NeuralCDE(data_size={self.in_shape[0]}, hidden_size={self.field.hidden_size})"

    def _problem(self, xs):
        series = as_series(xs, data_size=self.in_shape[0])
        grid, coeffs = control_path(series, self.field.interpolation)
        x0 = jax.vmap(lambda c: _path(self.field.interpolation, grid, c).evaluate(grid[0]))(coeffs)
        return grid, coeffs, jax.vmap(self.initial)(x0)

    def hidden(self, xs) -> tuple[Array, SolveStats]:
        """The final hidden state `(B, hidden_size)` of a batch, and the solve statistics."""
        grid, coeffs, y0 = self._problem(xs)
        t1 = float(grid.shape[0] - 1)
        if t1 == 0:
            raise InputError(f"{self.name} needs at least 2 observation times per series")
        y1, stats = solve(
            self.solver, self.field, y0, grid, t0=0.0, t1=t1, batched=True, example_args=coeffs
        )
        y1 = check_solution(y1, stats, what=self.name, solver=self.solver, t0=0.0, t1=t1)
        return y1, stats

    def apply(self, xs, *, key: PRNGKeyArray | None = None) -> tuple[Array, SolveStats]:
        """The readout `(B, out_size)` for a batch of irregular series (an
        [`IrregularSeries`][odezoo.nn.IrregularSeries] or `(times, values, mask, ...)`)."""
        y1, stats = self.hidden(xs)
        return jax.vmap(self.readout)(y1), stats

    def ode(self, x) -> ODEProblem:
        """The batch's CDE as one ODE over `[0, T - 1]`, its paths bound into the field."""
        grid, coeffs, y0 = self._problem(x)
        return ODEProblem(
            _BoundCDE(self.field, grid, coeffs), y0, 0.0, float(grid.shape[0] - 1), False
        )
