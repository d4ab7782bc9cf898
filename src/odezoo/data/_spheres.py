import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._errors import InputError

_LABELS = ("pm1", "classes")


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    return int(value)


def _check_radius(name: str, radius) -> tuple[float, float]:
    try:
        r_min, r_max = (float(r) for r in radius)
    except (TypeError, ValueError):
        raise InputError(
            f"`{name}` must be a pair `(r_min, r_max)` of numbers, got {radius!r}."
        ) from None
    if not (np.isfinite(r_min) and np.isfinite(r_max)):
        raise InputError(f"`{name}` must be finite, got {radius!r}.")
    if r_min < 0 or r_max < r_min:
        raise InputError(f"`{name}` must satisfy 0 <= r_min <= r_max, got {radius!r}.")
    return r_min, r_max


def _sample_shell(key, n: int, dim: int, r_min: float, r_max: float):
    key_dir, key_rad = jax.random.split(key)
    u = jax.random.normal(key_dir, (n, dim), dtype=jnp.float32)
    direction = u / jnp.linalg.norm(u, axis=1, keepdims=True)
    uniform = jax.random.uniform(key_rad, (n, 1), dtype=jnp.float32)
    radius = (r_max - r_min) * uniform ** (1.0 / dim) + r_min
    return radius * direction


def concentric_spheres(
    dim: int = 2,
    n_inner: int = 500,
    n_outer: int = 1500,
    inner_radius: tuple[float, float] = (0.0, 0.5),
    outer_radius: tuple[float, float] = (1.0, 1.5),
    labels: Literal["pm1", "classes"] = "pm1",
    *,
    key: PRNGKeyArray,
) -> tuple[Array, Array]:
    """The concentric-spheres dataset of Augmented Neural ODEs (Dupont et al., 2019).

    The inner class is a ball (or shell) of radii `inner_radius`; the outer class is the
    shell of radii `outer_radius` around it. A point is `r * u / |u|` with `u ~ N(0, I)`
    and `r = (r_max - r_min) * U**(1 / dim) + r_min`, `U ~ Uniform[0, 1)`. A plain ODE
    flow cannot map one class across the other, so this is the standard failure case for
    neural ODEs that augmentation fixes.

    **Arguments:**

    - `dim`: the dimension of the space. Must be at least 1.
    - `n_inner`: the number of points of the inner class.
    - `n_outer`: the number of points of the outer class.
    - `inner_radius`: `(r_min, r_max)` of the inner class.
    - `outer_radius`: `(r_min, r_max)` of the outer class. It must start at or beyond the
        end of `inner_radius`, so that the classes do not overlap.
    - `labels`: `"pm1"` for regression targets -1 (inner) and +1 (outer), or `"classes"`
        for integer classes 0 (inner) and 1 (outer).
    - `key`: a JAX random key (keyword-only, as for every random dataset in
        `odezoo.data`). The same key always gives the same dataset.

    **Returns:**

    A pair `(x, y)` with the points shuffled by `key`: `x` is a float32 JAX array of shape
    `(n_inner + n_outer, dim)`; `y` is a float32 array of shape `(n, 1)` when
    `labels="pm1"` and an int32 array of shape `(n,)` when `labels="classes"`.

    !!! Example

        ```python
        >>> import jax
        >>> from odezoo.data import concentric_spheres
        >>> x, y = concentric_spheres(dim=2, n_inner=10, n_outer=30, key=jax.random.key(0))
        >>> x.shape, y.shape, int((y == -1).sum())
        ((40, 2), (40, 1), 10)

        ```
    """
    if isinstance(dim, jax.Array) and jax.dtypes.issubdtype(dim.dtype, jax.dtypes.prng_key):
        raise TypeError(
            "concentric_spheres takes the key by keyword: concentric_spheres(..., key=key)."
        )
    dim = _check_count("dim", dim, 1)
    n_inner = _check_count("n_inner", n_inner, 0)
    n_outer = _check_count("n_outer", n_outer, 0)
    if n_inner + n_outer == 0:
        raise InputError("`n_inner + n_outer` must be positive, got 0 points in total.")
    inner = _check_radius("inner_radius", inner_radius)
    outer = _check_radius("outer_radius", outer_radius)
    if outer[0] < inner[1]:
        raise InputError(
            "The classes overlap: `outer_radius[0]` must be >= `inner_radius[1]`, "
            f"got inner_radius={inner_radius!r} and outer_radius={outer_radius!r}."
        )
    if labels not in _LABELS:
        raise InputError(f"`labels` must be one of {_LABELS}, got {labels!r}.")

    x, is_outer = _sample(key, dim, n_inner, n_outer, inner, outer)
    if labels == "pm1":
        y = jnp.where(is_outer, 1.0, -1.0).astype(jnp.float32)[:, None]
    else:
        y = is_outer.astype(jnp.int32)
    return x, y


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _sample(key, dim, n_inner, n_outer, inner, outer):
    key_inner, key_outer, key_perm = jax.random.split(key, 3)
    x = jnp.concatenate(
        [
            _sample_shell(key_inner, n_inner, dim, *inner),
            _sample_shell(key_outer, n_outer, dim, *outer),
        ]
    )
    is_outer = jnp.arange(n_inner + n_outer) >= n_inner
    perm = jax.random.permutation(key_perm, n_inner + n_outer)
    x = x[perm]
    return x, is_outer[perm]
