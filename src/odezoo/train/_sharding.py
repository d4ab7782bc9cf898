"""Data parallelism: one mesh over all devices, the batch split on its `"data"` axis."""

from __future__ import annotations

import warnings

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .._errors import InputError

DATA_AXIS = "data"


def data_mesh(batch_size: int | None = None, devices=None) -> Mesh:
    """A one-axis `jax.sharding.Mesh` named `"data"` over all devices (of all processes).

    The batch is split along this axis and the parameters are replicated, so the same
    code runs on one CPU, several GPUs, TPU cores, or several hosts.

    Arguments:

    - `batch_size`: if given and not divisible by the number of devices, a single
      process uses the largest number of devices that divides it (with a warning);
      several processes raise `ValueError` instead, since every process must take part.
    - `devices`: the devices to use (default `jax.devices()`).

    Example:

    ```python
    from odezoo.train import data_mesh

    mesh = data_mesh(batch_size=64)
    print(mesh.shape)     # {'data': number of devices}
    ```
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if batch_size is not None and batch_size % n:
        if jax.process_count() > 1:
            raise InputError(
                f"batch_size {batch_size} is not divisible by the {n} devices of this "
                "multi-process run; choose a multiple of the device count"
            )
        k = max(d for d in range(1, n + 1) if batch_size % d == 0)
        warnings.warn(
            f"batch_size {batch_size} is not divisible by the {n} devices; training on {k} of them",
            stacklevel=2,
        )
        devices = devices[:k]
    return Mesh(np.array(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that keeps a full copy on every device of `mesh`."""
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """The sharding that splits the leading (batch) axis over the `"data"` axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicate(tree, mesh: Mesh, *, copy: bool = False):
    """Place every array leaf of `tree` on all devices of `mesh` (also across processes).

    Every process must pass the same values. With `copy=True` the result never shares
    buffers with `tree` (so it can be donated without deleting the caller's arrays).
    """
    sharding = replicated(mesh)

    def put(x):
        if not isinstance(x, jax.Array | np.ndarray | np.generic):
            return x
        if jax.process_count() == 1:
            return jax.device_put(x, sharding, may_alias=False if copy else None)
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree_util.tree_map(put, tree)


def localize(tree):
    """A copy of `tree` whose array leaves live on one local device: the first local
    shard of each (the whole value, for replicated arrays)."""

    def get(x):
        if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1:
            return x.addressable_data(0)
        return x

    return jax.tree_util.tree_map(get, tree)
