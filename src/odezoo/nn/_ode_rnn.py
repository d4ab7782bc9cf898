"""ODE-RNN (Rubanova et al. 2019): a GRU whose hidden state follows an ODE between
observations."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._solve import check_solution, solve
from .._solver import Solver
from .._stats import SolveStats
from ._adapt import Autonomous, model_dynamics
from ._base import AbstractODEModel, ODEProblem
from ._irregular import IrregularSeries, as_series


class HiddenField(eqx.Module):
    """The autonomous hidden-state dynamics `dh/dt = f(h)` of an ODE-RNN (or of a latent
    ODE's decoder): the network lives in this Module, so every adjoint sees it."""

    net: eqx.Module

    def __call__(self, t, h, args):
        return self.net(t, h)


class RescaledField(eqx.Module):
    """`dh/ds = dt * f(h)` on `s in [0, 1]`: one series' interval `[t_prev, t_prev + dt]`
    mapped onto the unit interval. With the per-series `dt` passed as `example_args`,
    a batch whose series have different observation times is one solve per
    observation index (not one per series). The network sees the series' own time
    `t_prev + s dt`."""

    net: eqx.Module

    def __call__(self, s, h, args):
        _, (t_prev, dt) = args
        return dt * self.net(t_prev + s * dt, h)


def hidden_dynamics(dynamics, size, width_size, depth, activation, *, key, what):
    """The dynamics `f(t, h)` of a hidden state of `size`: the user's (through
    `model_dynamics`, shape-checked), or the default autonomous MLP."""
    if dynamics is None:
        mlp = eqx.nn.MLP(size, size, width_size, depth, activation=activation, key=key)
        return Autonomous(mlp)
    return model_dynamics(dynamics, (size,), what=what)


class ODERNN(AbstractODEModel):
    """ODE-RNN (Rubanova et al. 2019, "Latent ODEs for irregularly-sampled time series"):
    between observations the GRU's hidden state follows `dh/dt = f(h)`; at each
    observation a `eqx.nn.GRUCell` updates it from `[values * mask, mask]`. A time with
    no observed channel leaves the hidden state to the ODE alone.

    Batching: series have their own times. Step `k` maps every series' interval
    `[t[b, k-1], t[b, k]]` onto `[0, 1]` (`dh/ds = dt_b f(h)`), so the whole batch takes
    one (batched) solve per observation index: `T` solves, never `B * T`.

    Arguments:

    - `data_size`: channels `C` per observation.
    - `hidden_size`: size of the hidden state.
    - `width_size`, `depth`, `activation`: the default dynamics, an MLP `f(h)` (the
      activation a function; by name in a config).
    - `dynamics`: custom dynamics `f(t, h)` on the hidden state instead: an equinox
      module, a `flax.nnx.Module`, or a plain function bound to its parameters by
      [`as_dynamics`][odezoo.nn.as_dynamics].
    - `out_size`: if given, a linear readout of the final hidden state; otherwise
      `apply` returns the hidden state.
    - `solver`: a [`Solver`][odezoo.Solver] for the solves between observations.
    - `key`: a JAX PRNG key.

    Example:

    ```python
    import jax, odezoo
    from odezoo.nn import ODERNN, as_series

    times, values, mask = odezoo.data.periodic(4, 10, key=jax.random.key(0))
    rnn = ODERNN(1, 8, out_size=2, key=jax.random.key(1))
    out, stats = rnn.apply(as_series(times, values, mask))   # (4, 2)
    ```
    """

    cell: eqx.nn.GRUCell
    dynamics: eqx.Module
    head: eqx.nn.Linear | None
    solver: Solver
    in_shape: tuple[int, ...] = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(
        self,
        data_size: int,
        hidden_size: int = 20,
        *,
        width_size: int = 32,
        depth: int = 1,
        activation: Callable = jnp.tanh,
        out_size: int | None = None,
        dynamics=None,
        solver: Solver | None = None,
        key: PRNGKeyArray,
    ):
        ckey, dkey, hkey = jax.random.split(key, 3)
        self.cell = eqx.nn.GRUCell(2 * data_size, hidden_size, key=ckey)
        self.dynamics = hidden_dynamics(
            dynamics, hidden_size, width_size, depth, activation, key=dkey, what="ODERNN"
        )
        self.head = None if out_size is None else eqx.nn.Linear(hidden_size, out_size, key=hkey)
        self.solver = Solver() if solver is None else solver
        self.in_shape = (data_size,)
        self.hidden_size = hidden_size

    @property
    def name(self) -> str:
        return f"ODERNN(data_size={self.in_shape[0]}, hidden_size={self.hidden_size})"

    def _evolve(self, h: Array, t_prev: Array, dt: Array) -> tuple[Array, SolveStats]:
        h1, stats = solve(
            self.solver,
            RescaledField(self.dynamics),
            h,
            batched=True,
            example_args=(t_prev, dt),
        )
        h1 = check_solution(h1, stats, what=self.name, solver=self.solver, t0=0.0, t1=1.0)
        return h1, stats

    def hidden_states(
        self, series: IrregularSeries, *, reverse: bool = False
    ) -> tuple[Array, Array, SolveStats]:
        """Run over the observations (backwards in time when `reverse`).

        Returns `(hs, h_final, stats)`: `hs` of shape `(B, T, hidden_size)`, the hidden
        state just after each observation (in the order of `series.times`), and the
        final one `(B, hidden_size)` (after the last observation processed).
        """
        series = as_series(series, data_size=self.in_shape[0])
        times, values, mask = series
        inputs = jnp.concatenate([values, mask], axis=-1)
        observed = jnp.any(mask > 0, axis=-1)
        xs = (times.T, jnp.swapaxes(inputs, 0, 1), observed.T)
        if reverse:
            xs = jax.tree_util.tree_map(lambda a: a[::-1], xs)
        h0 = jnp.zeros((times.shape[0], self.hidden_size), values.dtype)

        def step(carry, x):
            h, t_prev = carry
            t, inp, obs = x
            h, st = self._evolve(h, t_prev, t - t_prev)
            h_new = jax.vmap(self.cell)(inp, h)
            h = jnp.where(obs[:, None], h_new, h)
            return (h, t), (h, st)

        (h, _), (hs, st) = jax.lax.scan(step, (h0, xs[0][0]), xs)
        if reverse:
            hs = hs[::-1]
        return jnp.swapaxes(hs, 0, 1), h, SolveStats.combine(st)

    def apply(self, xs, *, key: PRNGKeyArray | None = None) -> tuple[Array, SolveStats]:
        """The readout of the final hidden state, `(B, out_size)` (or the hidden state
        itself without a head), for an [`IrregularSeries`][odezoo.nn.IrregularSeries] (or
        a tuple starting with `(times, values, mask)`)."""
        _, h, stats = self.hidden_states(xs)
        out = h if self.head is None else jax.vmap(self.head)(h)
        return out, stats

    def ode(self, x) -> ODEProblem:
        """The hidden-state ODE `dh/dt = f(h)` over one unit of time, from the hidden
        state after the last observation of each series."""
        _, h, _ = self.hidden_states(x)
        return ODEProblem(HiddenField(self.dynamics), h, 0.0, 1.0, True)
