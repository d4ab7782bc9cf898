"""A GRU encoder-decoder of irregular series fed with time gaps: the discrete-time
baseline of the latent ODE (Rubanova et al. 2019's RNN-VAE, without the variational
part)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._errors import InputError
from ._base import AbstractForecaster
from ._irregular import IrregularSeries, as_series


class GRUSeq2Seq(AbstractForecaster):
    """A GRU encoder-decoder for irregular series, with the time gaps as inputs: the
    recurrent baseline of the latent ODE (Rubanova et al. 2019 compare the latent ODE
    with this "RNN-VAE"; here it is deterministic and trained on the squared error, the
    strongest form of that baseline for point forecasts).

    The encoder, a `eqx.nn.GRUCell`, reads `[values * mask, mask, dt]` forwards over the
    observations, `dt` being the time since the last observed time (a time with no
    observed channel leaves its state unchanged). Its final state, mapped by a linear
    layer and `tanh`, starts the decoder, a second GRU that steps through the query
    times from `t0`, fed only the gap to the previous query time; a linear readout gives
    the values. Like the latent ODE, it decodes any query times, inside the observed
    window (interpolation) or beyond it (extrapolation), but its state changes only in
    discrete steps.

    No ODE is solved: its statistics are `None`.

    Arguments:

    - `data_size`: channels `C` per observation.
    - `hidden_size`: the size of both GRU states.
    - `t0`: the decoder's start time (query times must be `>= t0`).
    - `key`: a JAX PRNG key.

    Example:

    ```python
    import jax, odezoo
    from odezoo.nn import GRUSeq2Seq, as_series

    times, values, mask = odezoo.data.periodic(4, 10, key=jax.random.key(0))
    rnn = GRUSeq2Seq(1, hidden_size=8, key=jax.random.key(1))
    series = as_series(times, values, mask)
    future, _ = rnn.predict(series, times + 5.0)      # (4, 10, 1)
    ```
    """

    encoder: eqx.nn.GRUCell
    bridge: eqx.nn.Linear
    decoder: eqx.nn.GRUCell
    readout: eqx.nn.Linear
    in_shape: tuple[int, ...] = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    t0: float = eqx.field(static=True)

    def __init__(
        self, data_size: int, hidden_size: int = 20, *, t0: float = 0.0, key: PRNGKeyArray
    ):
        ekey, bkey, dkey, rkey = jax.random.split(key, 4)
        self.encoder = eqx.nn.GRUCell(2 * data_size + 1, hidden_size, key=ekey)
        self.bridge = eqx.nn.Linear(hidden_size, hidden_size, key=bkey)
        self.decoder = eqx.nn.GRUCell(1, hidden_size, key=dkey)
        self.readout = eqx.nn.Linear(hidden_size, data_size, key=rkey)
        self.in_shape = (data_size,)
        self.hidden_size = hidden_size
        self.t0 = float(t0)

    @property
    def name(self) -> str:
        return f"GRUSeq2Seq(data_size={self.in_shape[0]}, hidden_size={self.hidden_size})"

    def encode(self, series: IrregularSeries) -> Array:
        """The encoder's final state `(B, hidden_size)`."""
        times, values, mask = as_series(series, data_size=self.in_shape[0])
        observed = jnp.any(mask > 0, axis=-1)
        xs = (times.T, jnp.swapaxes(jnp.concatenate([values, mask], -1), 0, 1), observed.T)
        h0 = jnp.zeros((times.shape[0], self.hidden_size), values.dtype)

        def step(carry, x):
            h, t_last = carry
            t, inp, obs = x
            dt = (t - t_last)[:, None]
            h_new = jax.vmap(self.encoder)(jnp.concatenate([inp, dt], -1), h)
            h = jnp.where(obs[:, None], h_new, h)
            return (h, jnp.where(obs, t, t_last)), None

        (h, _), _ = jax.lax.scan(step, (h0, jnp.full_like(times[:, 0], self.t0)), xs)
        return h

    def predict(
        self, series: IrregularSeries, query_times: Array, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, None]:
        """Encode `series` and decode at `query_times` `(B, Tq)` (non-decreasing, `>= t0`
        along each series); `key` is unused (the model is deterministic)."""
        query_times = jnp.asarray(query_times)
        h_enc = self.encode(series)
        if query_times.ndim != 2 or query_times.shape[0] != h_enc.shape[0]:
            raise InputError(
                f"{self.name}: query_times must have shape (B, Tq) with B = "
                f"{h_enc.shape[0]}, got {tuple(query_times.shape)}"
            )
        h0 = jnp.tanh(jax.vmap(self.bridge)(h_enc))

        def step(carry, t):
            h, t_prev = carry
            h = jax.vmap(self.decoder)((t - t_prev)[:, None], h)
            return (h, t), jax.vmap(self.readout)(h)

        start = jnp.full_like(query_times[:, 0], self.t0)
        _, out = jax.lax.scan(step, (h0, start), query_times.T)
        return jnp.swapaxes(out, 0, 1), None

    def apply(self, xs, *, key: PRNGKeyArray | None = None) -> tuple[Array, None]:
        """The reconstruction `(B, T, C)` of a batch at its own times."""
        series = as_series(xs, data_size=self.in_shape[0])
        return self.predict(series, series.times)
