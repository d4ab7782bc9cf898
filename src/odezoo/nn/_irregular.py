"""A batch of irregularly sampled, partly observed time series, and its validation."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._errors import InputError


class IrregularSeries(NamedTuple):
    """A batch of `B` time series, each observed at its own `T` times, with a mask of
    which channels were observed at each time (Rubanova et al. 2019's input format).

    A `NamedTuple` of three arrays, so it is what the train loop's batches are: pass
    `tuple(series)` (or the arrays) as `data` to [`fit`][odezoo.train.fit].

    Fields:

    - `times`: `(B, T)`, non-decreasing along `T` for each series. A series with fewer
      than `T` observations is padded by repeating its last time with the mask off.
    - `values`: `(B, T, C)`; entries where `mask` is off are ignored (they may hold
      anything, NaN included, but the train loop rejects batches holding NaN, so
      store zeros there).
    - `mask`: `(B, T, C)`, 1 (or `True`) where a value was observed, 0 where missing.

    Use [`as_series`][odezoo.nn.as_series] to build and check one.
    """

    times: Array
    values: Array
    mask: Array

    @property
    def n_channels(self) -> int:
        return self.values.shape[-1]

    def union_times(self) -> tuple[Array, Array]:
        """All `B * T` times of the batch sorted, and where each one went: `(u, index)`
        with `u` of shape `(B * T,)` and `index` `(B, T)` such that
        `u[index[b, j]] == times[b, j]`. Solving a batch once with `SaveAt(ts=u)` and
        gathering with `index` gives each series its own times without one solve per
        series."""
        return union_times(self.times)


def union_times(times: Array) -> tuple[Array, Array]:
    """`(u, index)` for times `(B, T)`: see
    [`IrregularSeries.union_times`][odezoo.nn.IrregularSeries]."""
    flat = times.reshape(-1)
    order = jnp.argsort(flat)
    index = jnp.zeros_like(order).at[order].set(jnp.arange(flat.shape[0]))
    return flat[order], index.reshape(times.shape)


def gather_union(ys: Array, index: Array) -> Array:
    """From a batched solve saved at the union times (`ys` of shape `(B*T, B, ...)`, time
    first), each series' own times: `(B, T, ...)`."""
    return jax.vmap(lambda idx, b: ys[idx, b])(index, jnp.arange(index.shape[0]))


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def as_series(times, values=None, mask=None, *, data_size: int | None = None) -> IrregularSeries:
    """Check a batch of irregular series and return it as an
    [`IrregularSeries`][odezoo.nn.IrregularSeries], with float masks and the unobserved
    values set to zero (so that they cannot reach an output or a gradient).

    Shapes are checked always (they are static under `jit`); the values (finite times,
    sorted times, finite observed values) are checked when the arrays are concrete, that
    is outside `jit` (inside the train loop, NaN batches are caught by the loop itself).

    Arguments:

    - `times`: `(B, T)`; or an `IrregularSeries`, or a tuple whose first three entries
      are `(times, values, mask)` (then `values` and `mask` are not given).
    - `values`: `(B, T, C)`.
    - `mask`: `(B, T, C)` or `(B, T)` (one flag per time, for all channels); default:
      everything observed.
    - `data_size`: the number of channels `C` a model expects, checked when given.

    Raises [`InputError`][odezoo.InputError] with what is wrong and what to do.

    Example:

    ```python
    import jax.numpy as jnp
    from odezoo.nn import as_series

    times = jnp.array([[0.0, 0.3, 1.0], [0.0, 0.5, 0.5]])   # second series padded
    values = jnp.ones((2, 3, 1))
    mask = jnp.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])[..., None]
    series = as_series(times, values, mask)
    ```
    """
    if values is None and isinstance(times, tuple):
        if len(times) < 3:
            raise InputError(
                f"a batch of irregular series needs (times, values, mask); got a tuple of "
                f"{len(times)} array(s)"
            )
        times, values, mask = times[0], times[1], times[2]
    if values is None:
        raise InputError("as_series needs values of shape (B, T, C) as well as times")
    times, values = jnp.asarray(times), jnp.asarray(values)
    if times.ndim != 2:
        raise InputError(f"times must have shape (B, T), got {tuple(times.shape)}")
    if values.ndim != 3 or values.shape[:2] != times.shape:
        raise InputError(
            f"values must have shape (B, T, C) matching times {tuple(times.shape)}, got "
            f"{tuple(values.shape)} (one row of values per observation time)"
        )
    if data_size is not None and values.shape[-1] != data_size:
        raise InputError(f"the model expects {data_size} channel(s), got {values.shape[-1]}")
    for name, x in (("times", times), ("values", values)):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise InputError(f"{name} must be floating point, got dtype {x.dtype}")
    if mask is None:
        mask = jnp.ones(values.shape, values.dtype)
    mask = jnp.asarray(mask)
    if mask.shape == times.shape:
        mask = jnp.broadcast_to(mask[..., None], values.shape)
    if mask.shape != values.shape:
        raise InputError(
            f"mask must have the shape of values {tuple(values.shape)} (or of times), got "
            f"{tuple(mask.shape)}"
        )
    observed = mask > 0
    if _concrete(times):
        t = np.asarray(times)
        if not np.all(np.isfinite(t)):
            raise InputError(
                "times hold NaN or inf; every time must be finite (pad with the last time)"
            )
        bad = np.argwhere(np.diff(t, axis=1) < 0)
        if bad.size:
            b, j = bad[0]
            raise InputError(
                f"times must be non-decreasing along each series: series {b} has "
                f"times[{j}] = {t[b, j]:g} > times[{j + 1}] = {t[b, j + 1]:g}. Sort each "
                "series by time (values and mask with it)"
            )
    if _concrete(values) and _concrete(observed):
        v, o = np.asarray(values), np.asarray(observed)
        bad = np.argwhere(o & ~np.isfinite(v))
        if bad.size:
            b, j, c = bad[0]
            raise InputError(
                f"values hold NaN or inf where the mask says observed (first at series {b}, "
                f"time index {j}, channel {c}); set the mask to 0 for missing values"
            )
    values = jnp.where(observed, values, jnp.zeros((), values.dtype))
    return IrregularSeries(times, values, observed.astype(values.dtype))
