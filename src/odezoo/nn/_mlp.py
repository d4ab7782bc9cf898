"""Multilayer perceptron (the seed chapter's baseline and building block)."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._errors import InputError
from ._arguments import as_float, as_int
from ._base import AbstractModel


def init_linear(
    in_size: int, out_size: int, *, init: str, scale: float, key: PRNGKeyArray
) -> eqx.nn.Linear:
    """An `eqx.nn.Linear`, with equinox's default init or N(0, 1) x `scale` (the seed's)."""
    if init not in ("default", "normal"):
        raise InputError(f"unknown init {init!r}; choose 'default' or 'normal'")
    wkey, bkey, lkey = jax.random.split(key, 3)
    layer = eqx.nn.Linear(in_size, out_size, key=lkey)
    if init == "normal":
        weight = scale * jax.random.normal(wkey, (out_size, in_size))
        bias = scale * jax.random.normal(bkey, (out_size,))
        layer = eqx.tree_at(lambda lin: (lin.weight, lin.bias), layer, (weight, bias))
    return layer


def linear_stack(
    sizes: list[int], *, init: str, scale: float, key: PRNGKeyArray
) -> tuple[eqx.nn.Linear, ...]:
    """Linear layers `sizes[0] -> sizes[1] -> ...`, initialised by `init_linear`."""
    scale = as_float("init_scale", scale)
    keys = jax.random.split(key, len(sizes) - 1)
    return tuple(
        init_linear(a, b, init=init, scale=scale, key=k)
        for a, b, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
    )


class DenseStack(eqx.Module):
    """Linear layers with `activation` between them, on one example, without an input
    check: the layers of an [`MLP`][odezoo.MLP], as a block inside another model (a
    [`ResNet`][odezoo.ResNet]'s default blocks)."""

    layers: tuple[eqx.nn.Linear, ...]
    activation: Callable = eqx.field(static=True)

    def __call__(self, x: Array) -> Array:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


class MLP(AbstractModel):
    """A multilayer perceptron on vectors.

    Arguments:

    - `in_size`, `out_size`: input and output sizes.
    - `width_size`: hidden width.
    - `depth`: number of hidden layers (`depth=1` is the seed's `[in, width, out]`).
    - `activation`: hidden activation (default `tanh`).
    - `init`: `"default"` (equinox's) or `"normal"`: weights and biases N(0, 1) x
      `init_scale`, as in the seed chapter.
    - `init_scale`: the scale of `"normal"` init.
    - `key`: a JAX PRNG key.

    `__call__` takes one example of shape `(in_size,)`; `batch` takes `(B, in_size)`.

    Example:

    ```python
    import jax, odezoo

    mlp = odezoo.MLP(1, 1, width_size=20, depth=1, key=jax.random.key(0))
    y = mlp.batch(jax.numpy.ones((10, 1)))   # (10, 1)
    ```
    """

    layers: tuple[eqx.nn.Linear, ...]
    activation: Callable = eqx.field(static=True)
    in_size: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        out_size: int,
        width_size: int = 20,
        depth: int = 1,
        *,
        activation: Callable = jnp.tanh,
        init: str = "default",
        init_scale: float = 1.0,
        key: PRNGKeyArray,
    ):
        in_size = as_int("in_size", in_size, minimum=1)
        out_size = as_int("out_size", out_size, minimum=1)
        depth = as_int("depth", depth, minimum=0)
        if depth > 0:
            width_size = as_int("width_size", width_size, minimum=1)
        sizes = [in_size] + [width_size] * depth + [out_size]
        self.layers = linear_stack(sizes, init=init, scale=init_scale, key=key)
        self.activation = activation
        self.in_size = in_size
        self.out_size = out_size

    @property
    def name(self) -> str:
        return f"MLP(in_shape={self.in_shape})"

    @property
    def in_shape(self) -> tuple[int, ...]:
        """The shape of one example, `(in_size,)`."""
        return (self.in_size,)

    def forward(self, x: Array) -> Array:
        """The output for one example, without the input check (for use inside other
        models, e.g. as a [`ResNet`][odezoo.ResNet]'s block)."""
        return DenseStack(self.layers, self.activation)(x)

    def __call__(self, x: Array) -> Array:
        """The output for one example of shape `(in_size,)`."""
        return self.forward(self.check_input(x, batched=False))

    def apply(self, xs: Array, *, key: PRNGKeyArray | None = None) -> tuple[Array, None]:
        """Batched forward pass: `(outputs, None)` (no solver statistics for an MLP)."""
        return jax.vmap(self.forward)(self.check_input(xs, batched=True)), None
