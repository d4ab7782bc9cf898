"""Residual network: a chain of residual MLP blocks."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from ._checks import check_input
from ._mlp import MLP


class ResNet(eqx.Module):
    """A chain of residual MLP blocks, `x <- x + block_k(x)` for k = 1..depth.

    The discrete ancestor of the ODE-Net: each block is one Euler step of size 1. Unlike
    the seed chapter's `resnet` (which fed the original input to every block), the blocks
    are chained, so depth matters.

    Arguments:

    - `size`: input size, equal to the output size.
    - `depth`: number of residual blocks.
    - `width_size`: hidden width of each block's MLP.
    - `block_depth`: hidden layers per block (the seed's `[1, 20, 1]` is 1).
    - `activation`, `init`, `init_scale`: as for [`MLP`][odezoo.MLP].
    - `key`: a JAX PRNG key.

    Example:

    ```python
    import jax, odezoo

    net = odezoo.ResNet(1, depth=5, width_size=20, key=jax.random.key(0))
    y = net(jax.numpy.array([0.5]))
    ```
    """

    blocks: tuple[MLP, ...]
    size: int = eqx.field(static=True)

    def __init__(
        self,
        size: int,
        depth: int = 5,
        width_size: int = 20,
        block_depth: int = 1,
        *,
        activation: Callable = jnp.tanh,
        init: str = "default",
        init_scale: float = 1.0,
        key: PRNGKeyArray,
    ):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        keys = jax.random.split(key, depth)
        self.blocks = tuple(
            MLP(
                size,
                size,
                width_size,
                block_depth,
                activation=activation,
                init=init,
                init_scale=init_scale,
                key=k,
            )
            for k in keys
        )
        self.size = size

    def _forward(self, x: Array) -> Array:
        for block in self.blocks:
            x = x + block._forward(x)
        return x

    def __call__(self, x: Array) -> Array:
        return self._forward(check_input(x, (self.size,), "ResNet", batched=False))

    def apply(self, xs: Array, *, key: PRNGKeyArray | None = None):
        """Batched forward pass: `(outputs, None)`."""
        xs = check_input(xs, (self.size,), "ResNet", batched=True)
        return jax.vmap(self._forward)(xs), None

    def batch(self, xs: Array) -> Array:
        """Outputs for a batch of shape `(B, size)`."""
        return self.apply(xs)[0]

    def trajectory(self, x: Array) -> Array:
        """The hidden state after each block, `(depth + 1, size)`, input first."""
        x = check_input(x, (self.size,), "ResNet", batched=False)
        states = [x]
        for block in self.blocks:
            x = x + block._forward(x)
            states.append(x)
        return jnp.stack(states)
