"""Latent ODE (Rubanova et al. 2019): an ODE-RNN encoder run backwards in time, a
latent ODE decoder, trained by the ELBO."""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._errors import InputError
from .._random import standard_normal
from .._solve import check_solution, solve
from .._solver import Solver
from .._stats import SolveStats
from ._base import AbstractForecaster, AbstractLatentModel, ODEProblem
from ._irregular import IrregularSeries, as_series, gather_union, union_times
from ._ode_rnn import ODERNN, HiddenField, hidden_dynamics


def gaussian_log_likelihood(x: Array, mean: Array, mask: Array, std: float) -> Array:
    """`sum over observed entries of log N(x | mean, std**2)`, per series: `(B,)`."""
    logp = -0.5 * ((x - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)
    return jnp.sum(jnp.where(mask > 0, logp, 0.0), axis=tuple(range(1, x.ndim)))


def gaussian_kl(mean: Array, std: Array, prior_mean=0.0, prior_std=1.0) -> Array:
    """`KL(N(mean, std**2) || N(prior_mean, prior_std**2))` summed over the last axis."""
    var, pvar = std**2, jnp.asarray(prior_std) ** 2
    kl = jnp.log(prior_std / std) + (var + (mean - prior_mean) ** 2) / (2 * pvar) - 0.5
    return jnp.sum(kl, axis=-1)


class LatentODE(AbstractLatentModel, AbstractForecaster):
    """Latent ODE (Rubanova et al. 2019; Chen et al. 2018): a variational autoencoder of
    irregular time series. An [`ODERNN`][odezoo.nn.ODERNN] encoder reads the observations
    backwards in time, down to `t0`, giving `q(z0) = N(mean, std**2)`; the decoder
    integrates `dz/dt = f(z)` from `z0` to any query times and reads out the values
    linearly. Trained by the ELBO: a Gaussian likelihood with fixed `obs_std` of the
    observed entries, minus `KL(q(z0) || N(0, I))`.

    Interpolation: encode all observations and reconstruct them. Extrapolation: encode
    the observations before a time and predict those after it
    ([`odezoo.data.split_series`][odezoo.data.split_series]).

    Batching: the decoder solves the whole batch once from `t0`, saving at the sorted
    union of every series' query times, and gathers each series' own times
    ([`IrregularSeries.union_times`][odezoo.nn.IrregularSeries]): one solve per batch,
    not per series. The encoder takes one batched solve per observation index (see
    `ODERNN`). All times must be `>= t0`.

    Arguments:

    - `data_size`: channels `C` per observation.
    - `latent_size`: size of `z`.
    - `hidden_size`: the encoder's GRU state.
    - `width_size`, `depth`, `activation`: the MLPs of the encoder's and the decoder's
      dynamics (activation by name).
    - `dynamics`: custom decoder dynamics `f(t, z)` on the latent state instead of the
      default MLP: an equinox module, a `flax.nnx.Module`, or a plain function bound to
      its parameters by [`as_dynamics`][odezoo.nn.as_dynamics].
    - `obs_std`: the fixed observation noise of the likelihood.
    - `t0`: the time of `z0`, where the decoder starts.
    - `solver`: a [`Solver`][odezoo.Solver] for the encoder and the decoder.
    - `key`: a JAX PRNG key.

    Example:

    ```python
    import jax, odezoo
    from odezoo.nn import LatentODE, as_series

    times, values, mask = odezoo.data.periodic(4, 10, key=jax.random.key(0))
    model = LatentODE(1, latent_size=4, hidden_size=8, key=jax.random.key(1))
    series = as_series(times, values, mask)
    recon, stats = model.apply(series)                         # (4, 10, 1)
    elbo, _ = model.elbo(series, key=jax.random.key(2))        # (4,)
    ```
    """

    encoder: ODERNN
    decoder: eqx.Module
    readout: eqx.nn.Linear
    solver: Solver
    in_shape: tuple[int, ...] = eqx.field(static=True)
    latent_size: int = eqx.field(static=True)
    obs_std: float = eqx.field(static=True)
    t0: float = eqx.field(static=True)

    def __init__(
        self,
        data_size: int,
        latent_size: int = 4,
        hidden_size: int = 20,
        *,
        width_size: int = 32,
        depth: int = 1,
        activation: Callable = jnp.tanh,
        dynamics=None,
        obs_std: float = 0.01,
        t0: float = 0.0,
        solver: Solver | None = None,
        key: PRNGKeyArray,
    ):
        if not obs_std > 0:
            raise InputError(f"obs_std must be positive, got {obs_std!r}")
        ekey, dkey, rkey = jax.random.split(key, 3)
        solver = Solver() if solver is None else solver
        self.encoder = ODERNN(
            data_size,
            hidden_size,
            width_size=width_size,
            depth=depth,
            activation=activation,
            out_size=2 * latent_size,
            solver=solver,
            key=ekey,
        )
        self.decoder = hidden_dynamics(
            dynamics, latent_size, width_size, depth, activation, key=dkey, what="LatentODE"
        )
        self.readout = eqx.nn.Linear(latent_size, data_size, key=rkey)
        self.solver = solver
        self.in_shape = (data_size,)
        self.latent_size = latent_size
        self.obs_std = float(obs_std)
        self.t0 = float(t0)

    @property
    def name(self) -> str:
        return f"LatentODE(data_size={self.in_shape[0]}, latent_size={self.latent_size})"

    def posterior(self, series: IrregularSeries) -> tuple[Array, Array, SolveStats]:
        """`(mean, std, stats)` of `q(z0 | series)`, each `(B, latent_size)`.

        The encoder runs backwards over the observations and on to `t0` (as a last,
        unobserved, time)."""
        series = as_series(series, data_size=self.in_shape[0])
        times, values, mask = series
        b = times.shape[0]
        start = jnp.full((b, 1), self.t0, times.dtype)
        padded = IrregularSeries(
            jnp.concatenate([start, times], axis=1),
            jnp.concatenate([jnp.zeros_like(values[:, :1]), values], axis=1),
            jnp.concatenate([jnp.zeros_like(mask[:, :1]), mask], axis=1),
        )
        if not isinstance(times, jax.core.Tracer) and np.any(np.asarray(times) < self.t0):
            raise InputError(f"{self.name}: every time must be >= t0 = {self.t0:g}")
        _, h, stats = self.encoder.hidden_states(padded, reverse=True)
        out = jax.vmap(self.encoder.head)(h)
        mean, raw = out[:, : self.latent_size], out[:, self.latent_size :]
        return mean, jax.nn.softplus(raw) + 1e-4, stats

    def decode(self, z0: Array, query_times: Array) -> tuple[Array, SolveStats]:
        """The values `(B, Tq, C)` at each series' `query_times` `(B, Tq)` (all `>= t0`)
        from latent initial states `z0` `(B, latent_size)`: one batched solve."""
        query_times = jnp.asarray(query_times)
        u, index = union_times(query_times)
        t1 = jnp.maximum(u[-1], self.t0 + 1e-6)
        zs, stats = solve(
            self.solver, HiddenField(self.decoder), z0, t0=self.t0, t1=t1, ts=u, batched=True
        )
        zs = check_solution(zs, stats, what=self.name, solver=self.solver, t0=self.t0, t1=t1)
        z = gather_union(zs, index)
        return jax.vmap(jax.vmap(self.readout))(z), stats

    def _z0(self, mean, std, key):
        if key is None:
            return mean
        return mean + std * standard_normal(key, mean.shape, mean.dtype)

    def predict(
        self, series: IrregularSeries, query_times: Array, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, SolveStats]:
        """Encode `series` and decode at `query_times` `(B, Tq)`: interpolation (times
        inside the observed window) or extrapolation (beyond it). With a `key`, `z0` is
        sampled from the posterior; without one, its mean is used."""
        mean, std, enc = self.posterior(series)
        xs, dec = self.decode(self._z0(mean, std, key), query_times)
        return xs, SolveStats.combine([enc, dec])

    def apply(self, xs, *, key: PRNGKeyArray | None = None) -> tuple[Array, SolveStats]:
        """The reconstruction `(B, T, C)` of a batch at its own times."""
        series = as_series(xs, data_size=self.in_shape[0])
        return self.predict(series, series.times, key=key)

    def elbo(
        self,
        series: IrregularSeries,
        targets: IrregularSeries | None = None,
        *,
        key: PRNGKeyArray,
    ) -> tuple[Array, SolveStats]:
        """The evidence lower bound per series, `(B,)` (one sample of `z0`), of the
        `targets` given `series` (default: the series itself, interpolation).

        `log p(targets | z0)` (Gaussian, std `obs_std`, observed entries only)
        `- KL(q(z0 | series) || N(0, I))`.
        """
        series = as_series(series, data_size=self.in_shape[0])
        targets = series if targets is None else as_series(targets, data_size=self.in_shape[0])
        mean, std, enc = self.posterior(series)
        pred, dec = self.decode(self._z0(mean, std, key), targets.times)
        ll = gaussian_log_likelihood(targets.values, pred, targets.mask, self.obs_std)
        return ll - gaussian_kl(mean, std), SolveStats.combine([enc, dec])

    def sample(self, ts: Array, n: int, *, key: PRNGKeyArray, latent: bool = False) -> Array:
        """`n` paths from the prior, `z0 ~ N(0, I)` decoded at times `ts` (increasing,
        `>= t0`): the values `(n, T, C)`, or the latent states `(n, T, latent_size)`
        when `latent`."""
        ts = jnp.asarray(ts)
        z0 = standard_normal(key, (n, self.latent_size), self.readout.weight.dtype)
        t1 = jnp.maximum(ts[-1], self.t0 + 1e-6)
        zs, stats = solve(
            self.solver, HiddenField(self.decoder), z0, t0=self.t0, t1=t1, ts=ts, batched=True
        )
        zs = jnp.swapaxes(
            check_solution(zs, stats, what=self.name, solver=self.solver, t0=self.t0, t1=t1), 0, 1
        )
        return zs if latent else jax.vmap(jax.vmap(self.readout))(zs)

    def ode(self, x) -> ODEProblem:
        """The decoder's latent ODE from the posterior mean of `z0`, over `[t0, last time]`."""
        series = as_series(x, data_size=self.in_shape[0])
        mean, _, _ = self.posterior(series)
        return ODEProblem(
            HiddenField(self.decoder), mean, self.t0, float(jnp.max(series.times)), True
        )
