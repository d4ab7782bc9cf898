"""Training losses: `loss(model, batch, key) -> (scalar, stats_or_None)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray

Loss = Callable[[Any, tuple, PRNGKeyArray], tuple[Array, Any]]


def _pair(batch, name: str):
    if not (isinstance(batch, tuple) and len(batch) == 2):
        raise ValueError(f"the {name} loss needs batches (x, y); got {_describe(batch)}")
    return batch


def _describe(batch) -> str:
    if isinstance(batch, tuple):
        return f"a tuple of {len(batch)} array(s)"
    return type(batch).__name__


def mse(model, batch: tuple[Array, Array], key: PRNGKeyArray | None = None):
    """Squared error summed over output features, averaged over the batch.

    The seed chapter's `mean(sum((pred - y)**2, axis=1))`.

    Arguments:

    - `model`: any odezoo model (`model.apply(x, key=key) -> (pred, stats)`).
    - `batch`: `(x, y)` with `pred` and `y` of the same shape.
    - `key`: passed on to the model (unused by deterministic models).

    Returns:

    `(loss, stats)`, `stats` being the model's solve statistics or `None`.

    Example:

    ```python
    import jax, odezoo
    from odezoo.train import mse

    x, y = odezoo.data.cubic()
    net = odezoo.MLP(1, 1, key=jax.random.key(0))
    value, _ = mse(net, (x, y))
    ```
    """
    x, y = _pair(batch, "mse")
    pred, stats = model.apply(x, key=key)
    err = jnp.reshape(pred - y, (pred.shape[0], -1))
    return jnp.mean(jnp.sum(err**2, axis=1)), stats


def cross_entropy(model, batch: tuple[Array, Array], key: PRNGKeyArray | None = None):
    """Softmax cross-entropy of the model's logits against integer class labels.

    Arguments:

    - `model`: a model whose outputs are logits `(B, num_classes)`.
    - `batch`: `(x, labels)`, integer labels of shape `(B,)`.
    - `key`: passed on to the model.

    Returns:

    `(mean cross-entropy, stats)`.

    Example:

    ```python
    import jax, jax.numpy as jnp, odezoo
    from odezoo.train import cross_entropy

    net = odezoo.MLP(2, 3, key=jax.random.key(0))
    value, _ = cross_entropy(net, (jnp.ones((4, 2)), jnp.array([0, 1, 2, 0])))
    ```
    """
    x, labels = _pair(batch, "cross_entropy")
    logits, stats = model.apply(x, key=key)
    labels = jnp.reshape(labels, (-1,)).astype(jnp.int32)
    value = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return jnp.mean(value), stats


def huber(model, batch: tuple[Array, Array], key: PRNGKeyArray | None = None):
    """Huber loss (delta 1, i.e. PyTorch's `SmoothL1Loss`) on regression targets, such as
    the ±1 labels of ANODE's concentric spheres; averaged over all elements.

    Arguments:

    - `model`: a model whose outputs have the shape of the targets.
    - `batch`: `(x, y)`.
    - `key`: passed on to the model.

    Returns:

    `(mean Huber loss, stats)`.

    Example:

    ```python
    import jax, odezoo
    from odezoo.train import huber

    x, y = odezoo.data.concentric_spheres(n_inner=8, n_outer=8, key=jax.random.key(0))
    net = odezoo.MLP(2, 1, key=jax.random.key(1))
    value, _ = huber(net, (x, y))
    ```
    """
    x, y = _pair(batch, "huber")
    pred, stats = model.apply(x, key=key)
    return jnp.mean(optax.huber_loss(pred, jnp.reshape(y, pred.shape), delta=1.0)), stats


def nll(model, batch, key: PRNGKeyArray | None = None):
    """Negative log-likelihood of a [`CNF`][odezoo.CNF] plus its RNODE penalty.

    `mean(-log p(x) + penalty(x))` from `model.regularized`; the penalty is zero unless
    the CNF was built with `kinetic`/`jacobian` weights. A Hutchinson-trace CNF draws
    its probes from `key`.

    Arguments:

    - `model`: a `CNF`.
    - `batch`: `(x,)` or `x`, of shape `(B, data_size)`.
    - `key`: PRNG key for the Hutchinson probes.

    Returns:

    `(mean NLL in nats, stats)`.

    Example:

    ```python
    import jax, odezoo
    from odezoo.train import nll

    flow = odezoo.CNF(2, hidden=(16,), key=jax.random.key(0))
    x = odezoo.data.toy2d("moons", 32, key=jax.random.key(1))
    value, stats = nll(flow, (x,))
    ```
    """
    x = batch[0] if isinstance(batch, tuple) else batch
    logp, penalty, stats = model.regularized(x, key=key)
    return jnp.mean(-logp + penalty), stats


LOSSES: dict[str, Loss] = {
    "mse": mse,
    "cross_entropy": cross_entropy,
    "huber": huber,
    "nll": nll,
}


def get_loss(loss: str | Loss) -> Loss:
    """A loss by name (`"mse"`, `"cross_entropy"`, `"huber"`, `"nll"`), or `loss` itself
    when it is already a callable `loss(model, batch, key) -> (scalar, stats_or_None)`.

    Example:

    ```python
    from odezoo.train import get_loss

    loss = get_loss("mse")
    ```
    """
    if callable(loss):
        return loss
    try:
        return LOSSES[loss]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}") from None
