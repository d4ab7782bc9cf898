"""Latent SDE (Li et al. 2020): a posterior SDE fitted to data against a prior SDE, by
the ELBO, sampled for paths."""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._errors import InputError
from .._random import standard_normal
from .._sde import solve_sde
from .._solve import check_solution
from .._solver import Solver
from .._stats import SolveStats
from ._adapt import model_dynamics
from ._base import AbstractSDEModel, ODEProblem
from ._irregular import IrregularSeries, as_series, gather_union, union_times
from ._latent_ode import gaussian_kl, gaussian_log_likelihood
from ._odenet import DynamicsField


class DiagonalDiffusion(eqx.Module):
    """Diagonal noise `g(z)_i = softplus(net_i(z_i))`: one small MLP per latent channel,
    each seeing only its own channel (so the noise is commutative, where Heun-type
    solvers reach strong order 1)."""

    nets: eqx.nn.MLP

    def __init__(self, size: int, width_size: int, *, key: PRNGKeyArray):
        make = lambda k: eqx.nn.MLP(1, 1, width_size, 1, activation=jnp.tanh, key=k)
        self.nets = eqx.filter_vmap(make)(jax.random.split(key, size))

    def __call__(self, t, z, args):
        out = eqx.filter_vmap(lambda net, zi: net(zi[None])[0])(self.nets, z)
        return jax.nn.softplus(out) + 1e-3


class PriorDrift(eqx.Module):
    """The prior drift `f(t, z)`."""

    net: eqx.nn.MLP

    def __call__(self, t, z, args):
        return self.net(jnp.concatenate([z, jnp.reshape(t, (1,)).astype(z.dtype)]))


def context_at(times: Array, contexts: Array, t: Array) -> Array:
    """The context of the first observation at or after `t`: `contexts[j]` with `j` the
    first index where `times[j] >= t` (the last one past the last observation), so the
    context is piecewise constant in `t`, as in Li et al. 2020.

    Arguments:

    - `times`: one series' observation times `(T,)`, non-decreasing.
    - `contexts`: the context at each of them `(T, K)`.
    - `t`: a scalar time.
    """
    j = jnp.searchsorted(times, jnp.asarray(t, times.dtype), side="left")
    return contexts[jnp.minimum(j, times.shape[0] - 1)]


class _PosteriorDrift(eqx.Module):
    """Drift of the posterior SDE on `[z, kl]`: `h(t, z, c(t))` for `z`, with `c(t)` the
    context of the series' next observation, and `|(h - f) / g|**2 / 2` for the
    accumulated path KL (Li et al. 2020, eq. 9)."""

    prior: eqx.Module
    net: eqx.nn.MLP
    diffusion: eqx.Module

    def __call__(self, t, y, args):
        _, (times, contexts) = args
        z = y[:-1]
        tt = jnp.reshape(t, (1,)).astype(z.dtype)
        h = self.net(jnp.concatenate([z, tt, context_at(times, contexts, t)]))
        u = (h - self.prior(t, z, None)) / self.diffusion(t, z, None)
        return jnp.concatenate([h, 0.5 * jnp.sum(u**2, keepdims=True)])


class _PosteriorDiffusion(eqx.Module):
    diffusion: eqx.Module

    def __call__(self, t, y, args):
        return jnp.concatenate([self.diffusion(t, y[:-1], None), jnp.zeros((1,), y.dtype)])


def _user_field(dynamics, size: int, what: str) -> DynamicsField:
    """A user's `f(t, z)` on the latent state as a diffrax field (shape-checked)."""
    return DynamicsField(model_dynamics(dynamics, (size,), what=what))


class LatentSDE(AbstractSDEModel):
    """Latent SDE (Li et al. 2020, "Scalable gradients for stochastic differential
    equations"): a prior SDE `dz = f(t, z) dt + g(z) dW` with `z0 ~ N(m, s**2)` (learned),
    a posterior SDE `dz = h(t, z, c(t)) dt + g(z) dW` conditioned on a context `c(t)`
    that changes over time, and a linear readout. A GRU encoder run backwards over the
    observations gives a context at each observation time (from the observations at and
    after it); `c(t)` is the context of the series' first observation at or after `t`
    (piecewise constant in `t`, the last one past the last observation), so the posterior
    can follow each path's increments between observations. The encoder's state after
    the whole series gives `q(z0)`. Trained by
    the ELBO: a Gaussian likelihood (fixed `obs_std`) of the observed entries, minus
    `KL(q(z0) || p(z0))`, minus the path KL `E int |(h - f) / g|**2 / 2 dt`, accumulated
    as an extra state channel of the posterior SDE. Because both SDEs share `g`, the KL
    is the same under the Itô and the Stratonovich interpretation.

    Solved by [`solve_sde`][odezoo.solve_sde] with the model's [`Solver`][odezoo.Solver]
    (fixed `dt0`; default `diffrax.ReversibleHeun()`, `dt0=0.05`): `adjoint="checkpoint"`
    or `"backsolve"` (exact with reversible Heun). The batch is one SDE saved at the
    union of the series' times.

    Arguments:

    - `data_size`: channels `C` per observation.
    - `latent_size`: size of `z`.
    - `hidden_size`: the encoder's GRU state.
    - `context_size`: size of the context `c`.
    - `width_size`, `depth`, `activation`: the drift MLPs (activation by name).
    - `drift`, `diffusion`: a custom prior drift `f(t, z)` and a custom diagonal
      diffusion `g(t, z)` (each returning the latent state's shape; the diffusion must
      be positive, e.g. a softplus output), instead of the defaults: equinox modules,
      `flax.nnx.Module`s, or plain functions bound to their parameters by
      [`as_dynamics`][odezoo.nn.as_dynamics]. The posterior drift, which also reads the
      context, stays an MLP.
    - `obs_std`: the fixed observation noise of the likelihood.
    - `t0`: the time of `z0`.
    - `solver`: a [`Solver`][odezoo.Solver] with `dt0` set.
    - `key`: a JAX PRNG key.

    Example:

    ```python
    import jax, jax.numpy as jnp, odezoo
    from odezoo.nn import LatentSDE, as_series

    times, values, mask = odezoo.data.ornstein_uhlenbeck(8, 10, key=jax.random.key(0))
    model = LatentSDE(1, latent_size=2, hidden_size=8, key=jax.random.key(1))
    elbo, stats = model.elbo(as_series(times, values, mask), key=jax.random.key(2))  # (8,)
    paths = model.sample(jnp.linspace(0.0, 2.0, 10), 16, key=jax.random.key(3))   # (16, 10, 1)
    ```
    """

    encoder: eqx.nn.GRUCell
    encoder_head: eqx.nn.Linear
    prior: eqx.Module
    posterior: eqx.nn.MLP
    diffusion: eqx.Module
    z0_mean: Array
    z0_log_std: Array
    readout: eqx.nn.Linear
    solver: Solver
    in_shape: tuple[int, ...] = eqx.field(static=True)
    latent_size: int = eqx.field(static=True)
    context_size: int = eqx.field(static=True)
    obs_std: float = eqx.field(static=True)
    t0: float = eqx.field(static=True)

    def __init__(
        self,
        data_size: int,
        latent_size: int = 4,
        hidden_size: int = 16,
        context_size: int = 8,
        *,
        width_size: int = 32,
        depth: int = 1,
        activation: Callable = jax.nn.softplus,
        drift=None,
        diffusion=None,
        obs_std: float = 0.1,
        t0: float = 0.0,
        solver: Solver | None = None,
        key: PRNGKeyArray,
    ):
        if not obs_std > 0:
            raise InputError(f"obs_std must be positive, got {obs_std!r}")
        keys = jax.random.split(key, 6)
        act = activation
        self.encoder = eqx.nn.GRUCell(2 * data_size + 1, hidden_size, key=keys[0])
        self.encoder_head = eqx.nn.Linear(hidden_size, 2 * latent_size + context_size, key=keys[1])
        if drift is None:
            mlp = eqx.nn.MLP(
                latent_size + 1, latent_size, width_size, depth, activation=act, key=keys[2]
            )
            self.prior = PriorDrift(mlp)
        else:
            self.prior = _user_field(drift, latent_size, "LatentSDE drift")
        self.posterior = eqx.nn.MLP(
            latent_size + 1 + context_size,
            latent_size,
            width_size,
            depth,
            activation=act,
            key=keys[3],
        )
        if diffusion is None:
            self.diffusion = DiagonalDiffusion(latent_size, width_size, key=keys[4])
        else:
            self.diffusion = _user_field(diffusion, latent_size, "LatentSDE diffusion")
        self.z0_mean = jnp.zeros(latent_size)
        self.z0_log_std = jnp.zeros(latent_size)
        self.readout = eqx.nn.Linear(latent_size, data_size, key=keys[5])
        self.solver = (
            Solver(solver=diffrax.ReversibleHeun(), dt0=0.05) if solver is None else solver
        )
        self.in_shape = (data_size,)
        self.latent_size = latent_size
        self.context_size = context_size
        self.obs_std = float(obs_std)
        self.t0 = float(t0)

    @property
    def name(self) -> str:
        return f"LatentSDE(data_size={self.in_shape[0]}, latent_size={self.latent_size})"

    def encode(self, series: IrregularSeries) -> tuple[Array, Array, Array]:
        """`(mean (B, L), std (B, L), contexts (B, T, K))`: a GRU over the observations,
        backwards in time, reading `[values * mask, mask, t]`. `contexts[:, j]` is the
        head of the GRU state after reading observations `j, ..., T-1` (unobserved times
        keep the state of the next observed one, or the zero state after the last);
        `q(z0 | series)` is `N(mean, std**2)` from the state after the whole series."""
        times, values, mask = as_series(series, data_size=self.in_shape[0])
        inputs = jnp.concatenate([values, mask, times[..., None]], axis=-1)
        observed = jnp.any(mask > 0, axis=-1)

        def step(h, x):
            inp, obs = x
            h_new = jnp.where(obs[:, None], jax.vmap(self.encoder)(inp, h), h)
            return h_new, h_new

        h0 = jnp.zeros((times.shape[0], self.encoder.hidden_size), values.dtype)
        xs = (jnp.swapaxes(inputs, 0, 1)[::-1], observed.T[::-1])
        h, hs = jax.lax.scan(step, h0, xs)
        out = jax.vmap(self.encoder_head)(h)
        L = self.latent_size
        head = jax.vmap(jax.vmap(self.encoder_head))(jnp.swapaxes(hs[::-1], 0, 1))
        contexts = head[..., 2 * L :]
        return out[:, :L], jax.nn.softplus(out[:, L : 2 * L]) + 1e-4, contexts

    def _t1(self, last):
        return jnp.maximum(last, self.t0 + self.solver.dt0)

    def posterior_paths(
        self, series: IrregularSeries, query_times: Array, *, key: PRNGKeyArray
    ) -> tuple[Array, Array, Array, Array, SolveStats]:
        """One posterior sample at each series' `query_times` `(B, Tq)`: returns
        `(z (B, Tq, latent), path_kl (B,), mean, std, stats)`."""
        zkey, bkey = jax.random.split(key)
        series = as_series(series, data_size=self.in_shape[0])
        mean, std, contexts = self.encode(series)
        z0 = mean + std * standard_normal(zkey, mean.shape, mean.dtype)
        y0 = jnp.concatenate([z0, jnp.zeros_like(z0[:, :1])], axis=1)
        u, index = union_times(jnp.asarray(query_times))
        t1 = self._t1(u[-1])
        ys, stats = solve_sde(
            self.solver,
            _PosteriorDrift(self.prior, self.posterior, self.diffusion),
            _PosteriorDiffusion(self.diffusion),
            y0,
            key=bkey,
            t0=self.t0,
            t1=t1,
            ts=u,
            batched=True,
            example_args=(series.times, contexts),
        )
        ys = check_solution(ys, stats, what=self.name, solver=self.solver, t0=self.t0, t1=t1)
        y = gather_union(ys, index)
        return y[..., :-1], ys[-1, :, -1], mean, std, stats

    def elbo(
        self,
        series: IrregularSeries,
        targets: IrregularSeries | None = None,
        *,
        key: PRNGKeyArray,
    ) -> tuple[Array, SolveStats]:
        """The evidence lower bound per series `(B,)` (one posterior sample) of `targets`
        (default: the series itself) given `series`."""
        series = as_series(series, data_size=self.in_shape[0])
        targets = series if targets is None else as_series(targets, data_size=self.in_shape[0])
        z, path_kl, mean, std, stats = self.posterior_paths(series, targets.times, key=key)
        pred = jax.vmap(jax.vmap(self.readout))(z)
        ll = gaussian_log_likelihood(targets.values, pred, targets.mask, self.obs_std)
        kl0 = gaussian_kl(mean, std, self.z0_mean, jnp.exp(self.z0_log_std))
        return ll - kl0 - path_kl, stats

    def apply(self, xs, *, key: PRNGKeyArray | None = None) -> tuple[Array, SolveStats]:
        """One posterior reconstruction `(B, T, C)` of a batch at its own times (with
        `key=None`, the Brownian path and `z0` noise of `jax.random.key(0)`)."""
        series = as_series(xs, data_size=self.in_shape[0])
        key = jax.random.key(0) if key is None else key
        z, _, _, _, stats = self.posterior_paths(series, series.times, key=key)
        return jax.vmap(jax.vmap(self.readout))(z), stats

    def sample(self, ts: Array, n: int, *, key: PRNGKeyArray, latent: bool = False) -> Array:
        """`n` paths of the prior SDE at times `ts` (increasing, `>= t0`): the values
        `(n, T, C)`, or the latent states `(n, T, latent_size)` when `latent`."""
        zkey, bkey = jax.random.split(key)
        ts = jnp.asarray(ts)
        eps = standard_normal(zkey, (n, self.latent_size), self.z0_mean.dtype)
        z0 = self.z0_mean + jnp.exp(self.z0_log_std) * eps
        t1 = self._t1(ts[-1])
        zs, stats = solve_sde(
            self.solver,
            self.prior,
            self.diffusion,
            z0,
            key=bkey,
            t0=self.t0,
            t1=t1,
            ts=ts,
            batched=True,
        )
        zs = check_solution(zs, stats, what=self.name, solver=self.solver, t0=self.t0, t1=t1)
        zs = jnp.swapaxes(zs, 0, 1)
        return zs if latent else jax.vmap(jax.vmap(self.readout))(zs)

    def ode(self, x) -> ODEProblem:
        """The prior's drift alone (the noise-free ODE) from the series' posterior means,
        over `[t0, last time]`."""
        series = as_series(x, data_size=self.in_shape[0])
        mean, _, _ = self.encode(series)
        return ODEProblem(self.prior, mean, self.t0, float(jnp.max(series.times)), True)
