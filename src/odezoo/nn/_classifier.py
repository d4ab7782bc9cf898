"""A stem, a block (e.g. an ODE block) and a head, composed into one classifier."""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import Array, PRNGKeyArray


class Classifier(eqx.Module):
    """`head(block(stem(x)))`: an ODE block (or a ResNet, or an MLP) inside a network.

    Chen et al.'s MNIST ODE-Net is a convolutional stem, an ODE block on the feature
    maps, and a pooling + linear head. The block is any odezoo model with an
    `apply(xs) -> (ys, stats)` batched entry point, so its batch is solved as one ODE
    during training, while `stem` and `head` are ordinary per-example modules.

    Arguments:

    - `stem`: a per-example module (e.g. `eqx.nn.Conv2d`, `eqx.nn.Linear` or
      `eqx.nn.Sequential`).
    - `block`: an odezoo model ([`ODENet`][odezoo.ODENet], [`ResNet`][odezoo.ResNet],
      [`MLP`][odezoo.MLP]).
    - `head`: a per-example module producing the logits.

    Example:

    ```python
    import equinox as eqx, jax, odezoo

    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    net = odezoo.Classifier(
        stem=eqx.nn.Conv2d(1, 8, 3, padding=1, key=k1),
        block=odezoo.ODENet((8, 8, 8), dynamics=odezoo.nn.ConvDynamics(8, 16, key=k2),
                            key=k3),
        head=eqx.nn.Sequential([eqx.nn.Lambda(lambda h: h.mean(axis=(1, 2))),
                                eqx.nn.Linear(8, 10, key=k4)]),
    )
    logits = net.batch(jax.numpy.zeros((4, 1, 8, 8)))   # (4, 10)
    ```
    """

    stem: eqx.Module
    block: eqx.Module
    head: eqx.Module

    def __call__(self, x: Array) -> Array:
        return self.head(self.block(self.stem(x)))

    def apply(self, xs: Array, *, key: PRNGKeyArray | None = None):
        """Logits for a batch, and the block's solve statistics (or `None`)."""
        h = jax.vmap(self.stem)(xs)
        h, stats = self.block.apply(h)
        return jax.vmap(self.head)(h), stats

    def batch(self, xs: Array) -> Array:
        """Logits for a batch."""
        return self.apply(xs)[0]

    def with_solver(self, solver=None, **changes) -> Classifier:
        """A copy whose ODE block uses another solver (see `ODENet.with_solver`)."""
        return eqx.tree_at(lambda m: m.block, self, self.block.with_solver(solver, **changes))
