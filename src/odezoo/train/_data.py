"""Where training batches come from: arrays sampled in minibatches, or a sampler."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import InputError


class BatchSource:
    """Draws one training batch per step from `data`, inside the jitted train step.

    `data` is either a tuple of arrays `(x,)` or `(x, y)` with a common leading axis,
    from which `batch_size` distinct examples are drawn per step (the whole set, in
    order, when `batch_size` is `None` or equals its size), or a callable
    `sample(key, batch_size) -> batch` (an array or a tuple of arrays) for infinite
    data such as the 2-D toy densities; the sampler must be traceable by JAX
    (built from `jax.random`), since it runs inside the compiled step.
    """

    def __init__(self, data: Any, batch_size: int | None):
        if callable(data):
            if batch_size is None:
                raise InputError("batch_size is required when data is a sampler function")
            self.sampler: Callable | None = data
            self.arrays: tuple = ()
            self.size = None
        else:
            if isinstance(data, list):
                data = tuple(data)
            if not isinstance(data, tuple):
                data = (data,)
            if not data:
                raise InputError("data must hold at least one array: (x,) or (x, y)")
            arrays = tuple(np.asarray(a) if not isinstance(a, jax.Array) else a for a in data)
            sizes = {int(a.shape[0]) if a.ndim else -1 for a in arrays}
            if len(sizes) != 1 or -1 in sizes:
                shapes = [tuple(a.shape) for a in arrays]
                raise InputError(f"data arrays need a common leading (example) axis; got {shapes}")
            self.sampler = None
            self.arrays = arrays
            self.size = sizes.pop()
            if batch_size is None:
                batch_size = self.size
            if batch_size > self.size:
                raise InputError(
                    f"batch_size {batch_size} exceeds the {self.size} training examples"
                )
        if not (isinstance(batch_size, int | np.integer) and batch_size > 0):
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        self.batch_size = int(batch_size)

    @property
    def full_batch(self) -> bool:
        """Whether every step sees the whole dataset (in order)."""
        return self.sampler is None and self.batch_size == self.size

    @property
    def draw(self) -> Draw:
        """The (hashable) rule that draws one batch inside the compiled step."""
        return Draw(self.sampler, self.size, self.batch_size)


@dataclasses.dataclass(frozen=True)
class Draw:
    """Draws the batch of one step (traced): `Draw(...)(arrays, key) -> tuple of arrays`.

    Hashable, so that compiled train steps are shared between `fit` calls that draw
    batches the same way.
    """

    sampler: Callable | None
    size: int | None
    batch_size: int

    def __call__(self, arrays: tuple, key) -> tuple:
        if self.sampler is not None:
            batch = self.sampler(key, self.batch_size)
            batch = tuple(batch) if isinstance(batch, tuple | list) else (batch,)
            for leaf in batch:
                if leaf.shape[:1] != (self.batch_size,):
                    raise InputError(
                        f"the sampler returned an array of shape {leaf.shape} for "
                        f"batch_size {self.batch_size}"
                    )
            return batch
        if self.batch_size == self.size:
            return tuple(arrays)
        idx = jax.random.choice(key, self.size, (self.batch_size,), replace=False)
        return tuple(jnp.take(a, idx, axis=0) for a in arrays)
