"""Fine-tuning: which parts of a model are trained, and which stay frozen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax

from .._errors import InputError


def trainable_spec(model, trainable: Any = None):
    """A filter spec (pytree of bools, shaped like `model`) marking the trained leaves.

    Only floating-point arrays are ever trained; everything else is left alone.

    Arguments:

    - `model`: the model.
    - `trainable`: what to train:
        - `None`: every floating-point array;
        - a filter spec: a pytree of bools (or callables `leaf -> bool`) with the
          structure of `model`, or a prefix of it, as for `equinox.partition`;
        - a function `model -> sub-tree(s)` naming the parts to train, e.g.
          `lambda m: m.head` or `lambda m: (m.stem, m.head)`.

    Example:

    ```python
    import equinox as eqx, jax, odezoo
    from odezoo.train import trainable_spec

    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    net = odezoo.Classifier(eqx.nn.Linear(4, 3, key=k1),
                            odezoo.ODENet(3, key=k2), eqx.nn.Linear(3, 2, key=k3))
    spec = trainable_spec(net, lambda m: m.head)     # train the head only
    ```
    """
    if trainable is None:
        return jax.tree_util.tree_map(eqx.is_inexact_array, model)
    if callable(trainable) and not isinstance(trainable, eqx.Module):
        where: Callable = trainable
        false = jax.tree_util.tree_map(lambda _: False, model)
        try:
            spec = eqx.tree_at(
                where, false, replace_fn=lambda node: jax.tree_util.tree_map(lambda _: True, node)
            )
        except Exception as e:
            raise InputError(
                f"`trainable` must pick parts of the model (e.g. `lambda m: m.head`): {e}"
            ) from e
    else:
        spec = trainable
    params, _ = partition(model, spec)
    return jax.tree_util.tree_map(lambda x: x is not None, params, is_leaf=lambda x: x is None)


def partition(model, spec):
    """Split `model` into `(trained, rest)` with `equinox.partition`, keeping only
    floating-point arrays in `trained`. `equinox.combine(trained, rest)` rebuilds it."""
    params, static = eqx.partition(model, spec)
    params, other = eqx.partition(params, eqx.is_inexact_array)
    return params, eqx.combine(other, static)


def count_trainable(params) -> int:
    """The number of scalars in the trained part."""
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
