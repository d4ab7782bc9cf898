"""Residual network: a chain of residual blocks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._errors import InputError
from ._arguments import as_int, as_shape
from ._base import AbstractModel
from ._mlp import MLP, DenseStack


class ResNet(AbstractModel):
    """A chain of residual blocks, `x <- x + block_k(x)` for k = 1..depth.

    The discrete ancestor of the ODE-Net: each block is one Euler step of size 1. Unlike
    the seed chapter's `resnet` (which fed the original input to every block), the blocks
    are chained, so depth matters.

    Arguments:

    - `size`: input size, equal to the output size (vector inputs, MLP blocks).
    - `depth`: number of residual blocks.
    - `width_size`: hidden width of each block's MLP.
    - `block_depth`: hidden layers per block (the seed's `[1, 20, 1]` is 1).
    - `activation`, `init`, `init_scale`: as for [`MLP`][odezoo.MLP].
    - `blocks`: instead of MLP blocks, any residual blocks `x -> dx` of one example
      (e.g. [`ConvBlock`][odezoo.nn.ConvBlock]s for image features); then `size` is the
      example shape and `depth`, `width_size`, `block_depth` are ignored.
    - `key`: a JAX PRNG key (unused with `blocks`).

    Example:

    ```python
    import jax, odezoo

    net = odezoo.ResNet(1, depth=5, width_size=20, key=jax.random.key(0))
    y = net(jax.numpy.array([0.5]))
    keys = jax.random.split(jax.random.key(1), 3)
    conv = odezoo.ResNet((8, 6, 6), blocks=[odezoo.nn.ConvBlock(8, 16, key=k) for k in keys])
    ```
    """

    blocks: tuple[eqx.Module, ...]
    in_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        size: int | tuple[int, ...],
        depth: int = 5,
        width_size: int = 20,
        block_depth: int = 1,
        *,
        activation: Callable = jnp.tanh,
        init: str = "default",
        init_scale: float = 1.0,
        blocks: Sequence[eqx.Module] | None = None,
        key: PRNGKeyArray | None = None,
    ):
        self.in_shape = as_shape("size", size)
        if blocks is not None:
            if len(blocks) < 1:
                raise InputError("blocks must hold at least one block")
            self.blocks = tuple(blocks)
            return
        depth = as_int("depth", depth, minimum=1)
        if len(self.in_shape) != 1:
            raise InputError(f"MLP blocks need vector inputs; for {self.in_shape} pass blocks=")
        if key is None:
            raise InputError("a key is needed to initialise the blocks")
        keys = jax.random.split(key, depth)
        mlps = (
            MLP(
                self.in_shape[0],
                self.in_shape[0],
                width_size,
                block_depth,
                activation=activation,
                init=init,
                init_scale=init_scale,
                key=k,
            )
            for k in keys
        )
        self.blocks = tuple(DenseStack(m.layers, m.activation) for m in mlps)

    @property
    def name(self) -> str:
        return f"ResNet(in_shape={self.in_shape})"

    @property
    def size(self) -> int:
        """The input size (first dimension of the example shape)."""
        return self.in_shape[0]

    def _forward(self, x: Array) -> Array:
        for block in self.blocks:
            x = x + block(x)
        return x

    def __call__(self, x: Array) -> Array:
        """The output for one example of shape `in_shape`."""
        return self._forward(self.check_input(x, batched=False))

    def apply(self, xs: Array, *, key: PRNGKeyArray | None = None) -> tuple[Array, None]:
        """Batched forward pass: `(outputs, None)`."""
        return jax.vmap(self._forward)(self.check_input(xs, batched=True)), None

    def trajectory(self, x: Array) -> Array:
        """The hidden state after each block, `(depth + 1, *in_shape)`, input first."""
        x = self.check_input(x, batched=False)
        states = [x]
        for block in self.blocks:
            x = x + block(x)
            states.append(x)
        return jnp.stack(states)
