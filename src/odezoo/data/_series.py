"""Seeded, irregularly sampled time series and stochastic processes with known laws.

Every generator takes its sizes as arguments and its `key` keyword-only, and returns
JAX arrays `(times (B, T), values (B, T, C), mask (B, T, C), ...)`: the first three are
a batch of irregular series (see `odezoo.nn.as_series`). Unobserved values are stored
as zeros.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._errors import InputError


def _check_sizes(**sizes) -> None:
    for name, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputError(f"`{name}` must be a positive int, got {n!r}")


def _irregular_times(key, n_series: int, n_times: int, t_max: float) -> Array:
    """Sorted uniform times on `[0, t_max]` per series, the first one at 0."""
    u = jax.random.uniform(key, (n_series, n_times - 1), minval=0.0, maxval=t_max)
    return jnp.concatenate([jnp.zeros((n_series, 1)), jnp.sort(u, axis=1)], axis=1)


def periodic(
    n_series: int,
    n_times: int = 100,
    *,
    key: PRNGKeyArray,
    t_max: float = 5.0,
    observed: float = 0.5,
    noise: float = 0.01,
    freq_range: tuple[float, float] = (0.5, 1.0),
) -> tuple[Array, Array, Array]:
    """Rubanova et al. 2019's periodic toy: 1-D sinusoids `sin(2 pi f t + phase)` with a
    random frequency and phase per series, at irregular times, each time observed with
    probability `observed`, with Gaussian noise.

    Arguments:

    - `n_series`, `n_times`: batch size `B` and time slots `T` per series.
    - `key`: a JAX PRNG key.
    - `t_max`: times lie in `[0, t_max]` (the first at 0).
    - `observed`: probability that a time is observed (mask 1).
    - `noise`: standard deviation of the observation noise.
    - `freq_range`: frequencies `f` are uniform on this range.

    Returns:

    `(times (B, T), values (B, T, 1), mask (B, T, 1))`, float32.

    Example:

    ```python
    import jax, odezoo

    times, values, mask = odezoo.data.periodic(8, 50, key=jax.random.key(0))
    ```
    """
    _check_sizes(n_series=n_series, n_times=n_times)
    tkey, fkey, pkey, nkey, mkey = jax.random.split(key, 5)
    times = _irregular_times(tkey, n_series, n_times, t_max)
    f = jax.random.uniform(fkey, (n_series, 1), minval=freq_range[0], maxval=freq_range[1])
    phase = jax.random.uniform(pkey, (n_series, 1), maxval=2 * jnp.pi)
    clean = jnp.sin(2 * jnp.pi * f * times + phase)
    values = clean + noise * jax.random.normal(nkey, clean.shape)
    mask = jax.random.bernoulli(mkey, observed, times.shape).astype(jnp.float32)
    mask = mask.at[:, 0].set(1.0)  # every series has at least one observation
    return times, (values * mask)[..., None], mask[..., None]


def spirals(
    n_series: int,
    n_times: int = 100,
    *,
    key: PRNGKeyArray,
    t_max: float = 6.0,
    observed: float = 1.0,
    noise: float = 0.05,
) -> tuple[Array, Array, Array, Array]:
    """Chen et al. 2018's 2-D spirals (the latent ODE figure): Archimedean spirals
    `r = 0.5 + 0.3 theta`, `theta = theta0 + t`, half of them clockwise (the mirror
    image), each from a random starting angle, at irregular times.

    Arguments:

    - `n_series`, `n_times`: batch size `B` and time slots `T`.
    - `key`: a JAX PRNG key.
    - `t_max`: times lie in `[0, t_max]` (radians travelled).
    - `observed`: probability that a time is observed.
    - `noise`: standard deviation of the observation noise.

    Returns:

    `(times (B, T), values (B, T, 2), mask (B, T, 2), clockwise (B,))`, the last one
    int32 (1 for clockwise). For extrapolation, encode the observations before a time
    and predict those after it: see [`split_series`][odezoo.data.split_series].

    Example:

    ```python
    import jax, odezoo

    times, values, mask, clockwise = odezoo.data.spirals(8, 40, key=jax.random.key(0))
    ```
    """
    _check_sizes(n_series=n_series, n_times=n_times)
    tkey, akey, dkey, nkey, mkey = jax.random.split(key, 5)
    times = _irregular_times(tkey, n_series, n_times, t_max)
    theta = jax.random.uniform(akey, (n_series, 1), maxval=2 * jnp.pi) + times
    clockwise = jax.random.bernoulli(dkey, 0.5, (n_series,)).astype(jnp.int32)
    r = 0.5 + 0.3 * (theta - theta[:, :1])
    sign = jnp.where(clockwise[:, None] == 1, -1.0, 1.0)
    xy = jnp.stack([sign * r * jnp.cos(theta), r * jnp.sin(theta)], axis=-1)
    values = xy + noise * jax.random.normal(nkey, xy.shape)
    mask = jax.random.bernoulli(mkey, observed, times.shape).astype(jnp.float32)
    mask = jnp.broadcast_to(mask.at[:, 0].set(1.0)[..., None], values.shape)
    return times, values * mask, mask, clockwise


def spirals_classification(
    n_series: int,
    n_times: int = 50,
    *,
    key: PRNGKeyArray,
    drop: float = 0.0,
    noise: float = 0.05,
) -> tuple[Array, Array, Array, Array]:
    """Spirals to classify, clockwise or not (the neural CDE task of Kidger et al.
    2020), optionally with a fraction `drop` of each series' observations removed at
    random (mask 0), as in that paper's irregular variant (`drop=0.3`).

    Arguments:

    - `n_series`, `n_times`: batch size `B` and time slots `T`.
    - `key`: a JAX PRNG key.
    - `drop`: fraction of the `T` observations of each series dropped (exactly
      `floor(drop * T)` of them, chosen at random; never the first).
    - `noise`: observation noise.

    Returns:

    `(times (B, T), values (B, T, 2), mask (B, T, 2), labels (B,))` with int32 labels
    (1 for clockwise).

    Example:

    ```python
    import jax, odezoo

    times, values, mask, labels = odezoo.data.spirals_classification(
        16, 30, key=jax.random.key(0), drop=0.3)
    ```
    """
    _check_sizes(n_series=n_series, n_times=n_times)
    if not 0.0 <= drop < 1.0:
        raise InputError(f"`drop` must be in [0, 1), got {drop!r}")
    skey, dkey = jax.random.split(key)
    times, values, mask, labels = spirals(n_series, n_times, key=skey, t_max=4.0, noise=noise)
    n_drop = int(drop * n_times)
    if n_drop:
        ranks = jax.vmap(lambda k: jax.random.permutation(k, n_times - 1))(
            jax.random.split(dkey, n_series)
        )
        keep = jnp.concatenate([jnp.ones((n_series, 1), bool), ranks >= n_drop], axis=1)
        mask = mask * keep[..., None].astype(mask.dtype)
    return times, values * mask, mask, labels


def split_series(
    times: Array, values: Array, mask: Array, t_split: float
) -> tuple[Array, Array, Array, Array, Array, Array]:
    """Split a batch for extrapolation: observations before `t_split` to encode, those
    from `t_split` on as targets to predict.

    Arguments:

    - `times`, `values`, `mask`: a batch of irregular series.
    - `t_split`: the time dividing observed from predicted.

    Returns:

    `(times, values, mask_before, times, values, mask_after)`: the same arrays with the
    masks split, a 6-tuple that `odezoo.losses.elbo_loss` reads as (observed, targets).

    Example:

    ```python
    import jax, odezoo

    times, values, mask = odezoo.data.periodic(8, 50, key=jax.random.key(0))
    batch = odezoo.data.split_series(times, values, mask, 2.5)
    ```
    """
    before = (times < t_split)[..., None].astype(mask.dtype)
    m0, m1 = mask * before, mask * (1 - before)
    return times, values * m0, m0, times, values * m1, m1


def _grid(n_paths: int, n_times: int, t_max: float) -> Array:
    return jnp.broadcast_to(jnp.linspace(0.0, t_max, n_times), (n_paths, n_times))


def ornstein_uhlenbeck(
    n_paths: int,
    n_times: int = 50,
    *,
    key: PRNGKeyArray,
    t_max: float = 2.0,
    theta: float = 1.0,
    mu: float = 0.0,
    sigma: float = 0.5,
    x0: float = 1.0,
) -> tuple[Array, Array, Array]:
    """Exact samples of the Ornstein-Uhlenbeck process `dX = theta (mu - X) dt + sigma dW`,
    `X(0) = x0`, on an even grid (drawn from the exact Gaussian transitions, no
    discretisation error). Its marginals are in [`ou_moments`][odezoo.data.ou_moments].

    Arguments:

    - `n_paths`, `n_times`: number of paths and of grid times (`0` to `t_max`).
    - `key`: a JAX PRNG key.
    - `t_max`, `theta`, `mu`, `sigma`, `x0`: the process and its window.

    Returns:

    `(times (n, T), values (n, T, 1), mask (n, T, 1))` (mask all ones).

    Example:

    ```python
    import jax, odezoo

    times, values, mask = odezoo.data.ornstein_uhlenbeck(100, 20, key=jax.random.key(0))
    mean, var = odezoo.data.ou_moments(times[0])
    ```
    """
    _check_sizes(n_paths=n_paths, n_times=n_times)
    times = _grid(n_paths, n_times, t_max)
    dt = t_max / max(n_times - 1, 1)
    decay = jnp.exp(-theta * dt)
    std = sigma * jnp.sqrt((1 - decay**2) / (2 * theta))
    noise = jax.random.normal(key, (n_times - 1, n_paths))

    def step(x, z):
        x = mu + (x - mu) * decay + std * z
        return x, x

    _, xs = jax.lax.scan(step, jnp.full((n_paths,), x0, jnp.float32), noise)
    values = jnp.concatenate([jnp.full((1, n_paths), x0), xs], axis=0).T[..., None]
    return times, values, jnp.ones_like(values)


def ou_moments(
    t: Array, *, theta: float = 1.0, mu: float = 0.0, sigma: float = 0.5, x0: float = 1.0
) -> tuple[Array, Array]:
    """The exact mean and variance of the Ornstein-Uhlenbeck process at times `t`:
    `mu + (x0 - mu) exp(-theta t)` and `sigma**2 (1 - exp(-2 theta t)) / (2 theta)`; the
    marginal is Gaussian.

    Arguments:

    - `t`: times (any shape).
    - `theta`, `mu`, `sigma`, `x0`: as for [`ornstein_uhlenbeck`][odezoo.data.ornstein_uhlenbeck].

    Example:

    ```python
    import jax.numpy as jnp, odezoo

    mean, var = odezoo.data.ou_moments(jnp.linspace(0.0, 2.0, 5))
    ```
    """
    t = jnp.asarray(t)
    mean = mu + (x0 - mu) * jnp.exp(-theta * t)
    var = sigma**2 * (1 - jnp.exp(-2 * theta * t)) / (2 * theta)
    return mean, var


def geometric_brownian_motion(
    n_paths: int,
    n_times: int = 50,
    *,
    key: PRNGKeyArray,
    t_max: float = 1.0,
    mu: float = 0.5,
    sigma: float = 0.5,
    x0: float = 1.0,
) -> tuple[Array, Array, Array]:
    """Exact samples of geometric Brownian motion `dX = mu X dt + sigma X dW` (Itô),
    `X(t) = x0 exp((mu - sigma**2 / 2) t + sigma W(t))`, on an even grid. Its marginals
    (log-normal) are in [`gbm_moments`][odezoo.data.gbm_moments].

    Arguments:

    - `n_paths`, `n_times`: number of paths and of grid times (`0` to `t_max`).
    - `key`: a JAX PRNG key.
    - `t_max`, `mu`, `sigma`, `x0`: the process and its window.

    Returns:

    `(times (n, T), values (n, T, 1), mask (n, T, 1))` (mask all ones).

    Example:

    ```python
    import jax, odezoo

    times, values, mask = odezoo.data.geometric_brownian_motion(100, 20, key=jax.random.key(0))
    ```
    """
    _check_sizes(n_paths=n_paths, n_times=n_times)
    times = _grid(n_paths, n_times, t_max)
    dt = t_max / max(n_times - 1, 1)
    dw = jnp.sqrt(dt) * jax.random.normal(key, (n_paths, n_times - 1))
    w = jnp.concatenate([jnp.zeros((n_paths, 1)), jnp.cumsum(dw, axis=1)], axis=1)
    values = x0 * jnp.exp((mu - sigma**2 / 2) * times + sigma * w)
    return times, values[..., None], jnp.ones((n_paths, n_times, 1))


def gbm_moments(
    t: Array, *, mu: float = 0.5, sigma: float = 0.5, x0: float = 1.0
) -> tuple[Array, Array]:
    """The exact mean `x0 exp(mu t)` and variance `x0**2 exp(2 mu t) (exp(sigma**2 t) - 1)`
    of geometric Brownian motion at times `t` (the marginal is log-normal:
    `log X(t) ~ N(log x0 + (mu - sigma**2 / 2) t, sigma**2 t)`).

    Arguments:

    - `t`: times (any shape).
    - `mu`, `sigma`, `x0`: as for
      [`geometric_brownian_motion`][odezoo.data.geometric_brownian_motion].

    Example:

    ```python
    import jax.numpy as jnp, odezoo

    mean, var = odezoo.data.gbm_moments(jnp.linspace(0.0, 1.0, 5))
    ```
    """
    t = jnp.asarray(t)
    mean = x0 * jnp.exp(mu * t)
    return mean, x0**2 * jnp.exp(2 * mu * t) * (jnp.exp(sigma**2 * t) - 1)
