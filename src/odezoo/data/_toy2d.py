import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._errors import InputError

TOY2D_NAMES: tuple[str, ...] = (
    "swissroll",
    "circles",
    "rings",
    "moons",
    "8gaussians",
    "pinwheel",
    "2spirals",
    "checkerboard",
)

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_GAUSSIAN_CENTRES = np.array(
    [
        (1.0, 0.0),
        (-1.0, 0.0),
        (0.0, 1.0),
        (0.0, -1.0),
        (_SQRT_HALF, _SQRT_HALF),
        (_SQRT_HALF, -_SQRT_HALF),
        (-_SQRT_HALF, _SQRT_HALF),
        (-_SQRT_HALF, -_SQRT_HALF),
    ]
)
# As in FFJORD: centres scaled by 4, noise of std 0.5, then everything divided by 1.414.
_GAUSSIAN_SCALE = 4.0 / 1.414
_GAUSSIAN_SIGMA = 0.5 / 1.414

# Differential entropies (nats) of the densities with a closed form.
TRUE_ENTROPY: dict[str, float] = {
    # Uniform on 8 squares of side 2: area 32.
    "checkerboard": math.log(32.0),
    # Eight nearly disjoint isotropic Gaussians (neighbours 6.1 sigma apart): log 8 plus the
    # entropy of one component. Their slight overlap makes the true value about 0.007 lower
    # (Monte Carlo with 1e6 samples: 2.831 +- 0.001), well inside the 0.02 tolerance.
    "8gaussians": math.log(8.0) + math.log(2 * math.pi * math.e * _GAUSSIAN_SIGMA**2),
}


def _check_name(name: str) -> None:
    if name not in TOY2D_NAMES:
        raise InputError(f"Unknown toy density {name!r}; valid names are {TOY2D_NAMES}.")


def _swissroll(key, n):
    key_t, key_noise = jax.random.split(key)
    # sklearn.datasets.make_swiss_roll(noise=1.0), keeping coordinates (x, z).
    t = 1.5 * jnp.pi * (1 + 2 * jax.random.uniform(key_t, (n,)))
    x = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=1)
    x = x + jax.random.normal(key_noise, (n, 2))
    return x / 5


def _circles(key, n):
    key_angle, key_noise, key_perm = jax.random.split(key, 3)
    # sklearn.datasets.make_circles(factor=0.5, noise=0.08): n // 2 on the outer circle.
    radius = jnp.where(jnp.arange(n) < n // 2, 1.0, 0.5)
    radius = jax.random.permutation(key_perm, radius)
    angle = jax.random.uniform(key_angle, (n,), maxval=2 * jnp.pi)
    x = radius[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)
    x = x + 0.08 * jax.random.normal(key_noise, (n, 2))
    return 3 * x


def _rings(key, n):
    key_angle, key_noise, key_perm = jax.random.split(key, 3)
    # n // 4 points on each of the radii 1, 0.75, 0.5; the rest on radius 0.25.
    ring = jnp.minimum(jnp.arange(n) // (n // 4), 3) if n >= 4 else jnp.full((n,), 3)
    radius = jnp.array([1.0, 0.75, 0.5, 0.25])[ring]
    radius = jax.random.permutation(key_perm, radius)
    angle = jax.random.uniform(key_angle, (n,), maxval=2 * jnp.pi)
    x = 3 * radius[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)
    return x + 0.08 * jax.random.normal(key_noise, (n, 2))


def _moons(key, n):
    key_angle, key_noise, key_perm = jax.random.split(key, 3)
    # sklearn.datasets.make_moons(noise=0.1): n // 2 points on the outer moon.
    outer = jax.random.permutation(key_perm, jnp.arange(n) < n // 2)
    theta = jax.random.uniform(key_angle, (n,), maxval=jnp.pi)
    c, s = jnp.cos(theta), jnp.sin(theta)
    x = jnp.where(outer[:, None], jnp.stack([c, s], 1), jnp.stack([1 - c, 1 - s - 0.5], 1))
    x = x + 0.1 * jax.random.normal(key_noise, (n, 2))
    return 2 * x + jnp.array([-1.0, -0.2])


def _8gaussians(key, n):
    key_centre, key_noise = jax.random.split(key)
    centre = 4.0 * jnp.asarray(_GAUSSIAN_CENTRES, jnp.float32)
    idx = jax.random.randint(key_centre, (n,), 0, 8)
    x = centre[idx] + 0.5 * jax.random.normal(key_noise, (n, 2))
    return x / 1.414


def _pinwheel(key, n):
    key_arm, key_features = jax.random.split(key)
    arm = jax.random.randint(key_arm, (n,), 0, 5)
    features = jax.random.normal(key_features, (n, 2)) * jnp.array([0.3, 0.1])
    features = features + jnp.array([1.0, 0.0])
    angle = 2 * jnp.pi * arm.astype(features.dtype) / 5 + 0.25 * jnp.exp(features[:, 0])
    c, s = jnp.cos(angle), jnp.sin(angle)
    # FFJORD's convention: the row vector (r, t) times [[c, -s], [s, c]].
    r, t = features[:, 0], features[:, 1]
    x = jnp.stack([r * c + t * s, -r * s + t * c], axis=1)
    return 2 * x


def _2spirals(key, n):
    key_n, key_u1, key_u2, key_noise, key_perm = jax.random.split(key, 5)
    length = jnp.sqrt(jax.random.uniform(key_n, (n,))) * 540 * (2 * jnp.pi) / 360
    dx = -jnp.cos(length) * length + 0.5 * jax.random.uniform(key_u1, (n,))
    dy = jnp.sin(length) * length + 0.5 * jax.random.uniform(key_u2, (n,))
    # The first ceil(n / 2) points on one spiral, the rest mirrored through the origin.
    sign = jax.random.permutation(key_perm, jnp.where(jnp.arange(n) < n - n // 2, 1.0, -1.0))
    x = sign[:, None] * jnp.stack([dx, dy], axis=1) / 3
    return x + 0.1 * jax.random.normal(key_noise, (n, 2))


def _checkerboard(key, n):
    key_x1, key_x2, key_b = jax.random.split(key, 3)
    x1 = jax.random.uniform(key_x1, (n,), minval=-2.0, maxval=2.0)
    b = jax.random.bernoulli(key_b, 0.5, (n,)).astype(jnp.float32)
    x2 = jax.random.uniform(key_x2, (n,)) - 2 * b + jnp.mod(jnp.floor(x1), 2)
    return 2 * jnp.stack([x1, x2], axis=1)


_SAMPLERS = {
    "swissroll": _swissroll,
    "circles": _circles,
    "rings": _rings,
    "moons": _moons,
    "8gaussians": _8gaussians,
    "pinwheel": _pinwheel,
    "2spirals": _2spirals,
    "checkerboard": _checkerboard,
}


def toy2d(name: str, n: int, *, key: PRNGKeyArray) -> Array:
    """Samples from one of the eight 2-D toy densities of FFJORD (Grathwohl et al., 2019).

    The densities follow FFJORD's `toy_data.py`, rewritten in pure JAX:

    - `"swissroll"`: sklearn's `make_swiss_roll(noise=1.0)`, coordinates `(x, z)`, / 5.
    - `"circles"`: sklearn's `make_circles(factor=0.5, noise=0.08)` with uniform angles, * 3.
    - `"rings"`: circles of radii 1, 0.75, 0.5, 0.25 with equal shares of the points, * 3,
        plus `N(0, 0.08²)` noise.
    - `"moons"`: sklearn's `make_moons(noise=0.1)` with uniform angles, * 2 + (-1, -0.2).
    - `"8gaussians"`: eight Gaussians of std 0.5 at 4 * (the 8 compass points), / 1.414.
    - `"pinwheel"`: five arms (radial std 0.3, tangential std 0.1, rate 0.25), * 2. The
        point `(r, t)` of arm `k` is turned by `2πk/5 + 0.25 exp(r)` as FFJORD does it, as
        the row vector times `[[cos, -sin], [sin, cos]]` (so clockwise).
    - `"2spirals"`: two interleaved spirals, / 3, plus `N(0, 0.1²)` noise.
    - `"checkerboard"`: uniform on the 8 "black" squares of side 2 in `[-4, 4]²`.

    Where a density splits its points between parts of fixed share (the two circles, the
    four rings, the two moons, the two spirals), the split is exact and the points are
    shuffled by `key`. Sampling is a pure function of `key`, and can be jitted with `name`
    and `n` static: `jax.jit(toy2d, static_argnums=(0, 1))`.

    **Arguments:**

    - `name`: one of [`odezoo.data.TOY2D_NAMES`][].
    - `n`: the number of samples, a positive int.
    - `key`: a JAX random key (keyword-only, as for every random dataset in
        `odezoo.data`).

    **Returns:**

    A float32 JAX array of shape `(n, 2)`.

    !!! Example

        ```python
        >>> import jax
        >>> from odezoo.data import toy2d
        >>> x = toy2d("checkerboard", 256, key=jax.random.key(0))
        >>> x.shape, str(x.dtype), bool((abs(x) <= 4).all())
        ((256, 2), 'float32', True)

        ```
    """
    _check_name(name)
    if isinstance(n, jax.Array) and jax.dtypes.issubdtype(n.dtype, jax.dtypes.prng_key):
        raise TypeError("toy2d takes the key by keyword, after n: toy2d(name, n, key=key).")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InputError(f"`n` must be a positive int, got {n!r}.")
    return _sample(name, key, int(n))


@functools.partial(jax.jit, static_argnums=(0, 2))
def _sample(name, key, n):
    # One compilation per (name, n) rather than one per primitive when called eagerly.
    return _SAMPLERS[name](key, n).astype(jnp.float32)


def _log_density_8gaussians(x):
    centre = jnp.asarray(_GAUSSIAN_SCALE * _GAUSSIAN_CENTRES, x.dtype)
    sq_dist = jnp.sum((x[..., None, :] - centre) ** 2, axis=-1)
    log_norm = math.log(8.0) + math.log(2 * math.pi * _GAUSSIAN_SIGMA**2)
    return jax.nn.logsumexp(-0.5 * sq_dist / _GAUSSIAN_SIGMA**2, axis=-1) - log_norm


def _log_density_checkerboard(x):
    inside = jnp.all((x >= -4) & (x < 4), axis=-1)
    cell = jnp.floor(x / 2)
    black = jnp.mod(cell[..., 0] + cell[..., 1], 2) == 0
    return jnp.where(inside & black, -math.log(32.0), -jnp.inf).astype(x.dtype)


_LOG_DENSITIES = {
    "checkerboard": _log_density_checkerboard,
    "8gaussians": _log_density_8gaussians,
}


def toy2d_log_density(name: str, x: Array) -> Array:
    """The exact log-density of a toy density, for the two that have a closed form.

    Only `"checkerboard"` (uniform on an area of 32, so `-log 32` on its support and
    `-inf` off it) and `"8gaussians"` (an equal mixture of 8 isotropic Gaussians of std
    `0.5 / 1.414` centred at `4 / 1.414` times the compass points) are available. These
    are the densities used to check learned flows against [`odezoo.data.TRUE_ENTROPY`][].

    **Arguments:**

    - `name`: `"checkerboard"` or `"8gaussians"`.
    - `x`: points, an array whose last axis has size 2.

    **Returns:**

    An array of shape `x.shape[:-1]` with the log-density at each point.

    !!! Example

        ```python
        >>> import jax.numpy as jnp
        >>> from odezoo.data import toy2d_log_density
        >>> x = jnp.array([[1.0, 1.0], [1.0, 3.0]])
        >>> toy2d_log_density("checkerboard", x)  # the second point is on a white square
        Array([-3.465736,      -inf], dtype=float32)

        ```
    """
    if name not in _LOG_DENSITIES:
        _check_name(name)
        raise InputError(
            f"No closed-form log-density for {name!r}; only for {tuple(_LOG_DENSITIES)}."
        )
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    if x.ndim < 1 or x.shape[-1] != 2:
        raise InputError(f"`x` must have a last axis of size 2, got shape {x.shape}.")
    return _log_density(name, x)


@functools.partial(jax.jit, static_argnums=0)
def _log_density(name, x):
    return _LOG_DENSITIES[name](x)
