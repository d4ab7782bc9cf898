"""A stem, a block (e.g. an ODE block) and a head, composed into one classifier."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._errors import InputError
from .._regularisation import Regularisation
from .._stats import SolveStats
from ._arguments import as_shape
from ._base import AbstractModel, AbstractODEModel


def _stem_in_shape(stem, block: AbstractModel) -> tuple[int, ...] | None:
    """The input shape a stem tells by itself (an identity, or a leading Linear)."""
    if isinstance(stem, eqx.nn.Sequential) and len(stem.layers) > 0:
        return _stem_in_shape(stem.layers[0], block)
    if isinstance(stem, eqx.nn.Identity):
        return block.in_shape
    if isinstance(stem, eqx.nn.Linear):
        return () if stem.in_features == "scalar" else (int(stem.in_features),)
    return None


class Classifier(AbstractModel):
    """`head(block(stem(x)))`: an ODE block (or a ResNet, or an MLP) inside a network.

    Chen et al.'s MNIST ODE-Net is a convolutional stem, an ODE block on the feature
    maps, and a pooling + linear head. The block is any odezoo model, whose batched
    `apply` solves the batch as one ODE during training, while `stem` and `head` are
    ordinary per-example modules.

    Arguments:

    - `stem`: a per-example module (e.g. `eqx.nn.Conv2d`, `eqx.nn.Linear` or
      `eqx.nn.Sequential`).
    - `block`: an odezoo model ([`ODENet`][odezoo.ODENet], [`ResNet`][odezoo.ResNet],
      [`MLP`][odezoo.MLP]).
    - `head`: a per-example module producing the logits.
    - `in_shape`: the shape of one input example, e.g. `(1, 8, 8)`. It may be left out
      when the stem tells it (an `eqx.nn.Linear` or `eqx.nn.Identity` first).

    Inputs are checked against `in_shape` (shape, floating-point dtype, finite values)
    before the stem, and the stem's output shape against the block's `in_shape` when
    the classifier is built. `ode_model()` is the block's ODE (or `None`), and
    `with_solver` changes the block's solver.

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
        in_shape=(1, 8, 8),
    )
    logits = net.batch(jax.numpy.zeros((4, 1, 8, 8)))   # (4, 10)
    loose = net.with_solver(rtol=1e-2, atol=1e-2)        # the ODE block's solver
    ```
    """

    stem: eqx.Module
    block: AbstractModel
    head: eqx.Module
    in_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        stem: eqx.Module,
        block: AbstractModel,
        head: eqx.Module,
        *,
        in_shape: int | tuple[int, ...] | None = None,
    ):
        if not isinstance(block, AbstractModel):
            raise InputError(
                "block must be an odezoo model (ODENet, ResNet, MLP, ...), got "
                f"{type(block).__name__}"
            )
        if in_shape is None:
            in_shape = _stem_in_shape(stem, block)
            if in_shape is None:
                raise InputError(
                    "pass in_shape=, the shape of one input example (e.g. (1, 28, 28)): "
                    f"it cannot be told from a {type(stem).__name__} stem"
                )
        in_shape = as_shape("in_shape", in_shape)
        try:
            out = jax.eval_shape(stem, jax.ShapeDtypeStruct(in_shape, jnp.float32))
        except Exception as e:
            raise InputError(f"the stem does not take inputs of shape {in_shape}: {e}") from None
        if tuple(out.shape) != tuple(block.in_shape):
            raise InputError(
                f"the stem maps inputs of shape {in_shape} to {tuple(out.shape)}, but the "
                f"block expects {tuple(block.in_shape)}"
            )
        self.stem = stem
        self.block = block
        self.head = head
        self.in_shape = in_shape

    @property
    def name(self) -> str:
        return f"Classifier(in_shape={self.in_shape})"

    def ode_model(self) -> AbstractODEModel | None:
        """The block's ODE model (`None` when the block solves no ODE)."""
        return self.block.ode_model()

    def __call__(self, x: Array) -> Array:
        """Logits for one example of shape `in_shape`."""
        return self.head(self.block(self.stem(self.check_input(x, batched=False))))

    def apply(
        self, xs: Array, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, SolveStats | None]:
        """Logits for a batch `(B, *in_shape)`, and the block's solve statistics (or
        `None`)."""
        h = jax.vmap(self.stem)(self.check_input(xs, batched=True))
        h, stats = self.block.apply(h)
        return jax.vmap(self.head)(h), stats

    def apply_regularised(
        self, xs: Array, regularisation: Regularisation, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, dict[str, Array], SolveStats | None]:
        """`apply` with the block's speed regularisers: `(logits, penalties, stats)`."""
        h = jax.vmap(self.stem)(self.check_input(xs, batched=True))
        h, values, stats = self.block.apply_regularised(h, regularisation, key=key)
        return jax.vmap(self.head)(h), values, stats
