"""Training losses: `loss(model, batch, key) -> (scalar, stats_or_None)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray

from .._errors import ConfigError, InputError
from .._format import format_shape
from ._series_losses import elbo_loss, forecast_mse, series_cross_entropy, series_mse

Loss = Callable[[Any, tuple, PRNGKeyArray], tuple[Array, Any]]


def _pair(batch, name: str):
    if not (isinstance(batch, tuple) and len(batch) == 2):
        raise InputError(f"the {name} loss needs batches (x, y); got {_describe(batch)}")
    return batch


def _same_shape(pred: Array, y: Array, name: str) -> Array:
    """`y` as an array, after checking (at trace time) that it has `pred`'s shape:
    never broadcast targets against outputs."""
    y = jnp.asarray(y)
    if y.shape != pred.shape:
        hint = ""
        if y.size == pred.size:
            hint = f" (reshape them: `y.reshape{format_shape(pred.shape)}`)"
        raise InputError(
            f"the {name} loss got targets of shape {format_shape(y.shape)} for outputs of "
            f"shape {format_shape(pred.shape)}: they must have the same shape, since "
            f"otherwise they broadcast silently{hint}."
        )
    return y


def _labels(logits: Array, labels: Array) -> tuple[Array, Array | None, str]:
    """Integer labels `(B,)` for logits `(B, C)`, checked: dtype and shape at trace time,
    the range `[0, C)` at trace time when known. Returns `(labels, out_of_range,
    message)`, `out_of_range` being `None` when checked already, else a traced flag."""
    if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise InputError(
            f"the cross_entropy loss needs integer class labels, got dtype "
            f"{jnp.result_type(labels)} (convert them, e.g. `labels.astype(jnp.int32)`)."
        )
    labels = jnp.asarray(labels)
    if logits.ndim != 2 or labels.shape not in ((logits.shape[0],), (logits.shape[0], 1)):
        raise InputError(
            f"the cross_entropy loss needs logits (B, num_classes) and labels (B,); got "
            f"logits {format_shape(logits.shape)} and labels {format_shape(labels.shape)}."
        )
    labels = jnp.reshape(labels, (-1,))
    classes = logits.shape[1]
    message = (
        f"the cross_entropy loss got a label outside [0, {classes}): the model has "
        f"{classes} classes, numbered 0 to {classes - 1}."
    )
    if not isinstance(labels, jax.core.Tracer):
        values = np.asarray(labels)
        if values.size and (values.min() < 0 or values.max() >= classes):
            bad = values[(values < 0) | (values >= classes)]
            raise InputError(f"{message} Found {sorted(set(bad.tolist()))[:5]}.")
        return labels.astype(jnp.int32), None, message
    return labels.astype(jnp.int32), jnp.any((labels < 0) | (labels >= classes)), message


def _describe(batch) -> str:
    if isinstance(batch, tuple):
        return f"a tuple of {len(batch)} array(s)"
    return type(batch).__name__


def mse(model, batch: tuple[Array, Array], key: PRNGKeyArray | None = None):
    """Squared error summed over output features, averaged over the batch.

    The seed chapter's `mean(sum((pred - y)**2, axis=1))`.

    Arguments:

    - `model`: any odezoo model (`model.apply(x, key=key) -> (pred, stats)`).
    - `batch`: `(x, y)` with `pred` and `y` of the same shape (anything else raises
      [`InputError`][odezoo.InputError] rather than broadcast).
    - `key`: passed on to the model (unused by deterministic models).

    Returns:

    `(loss, stats)`, `stats` being the model's solve statistics or `None`.

    Example:

    ```python
    import jax, odezoo
    from odezoo.losses import mse

    x, y = odezoo.data.cubic()
    net = odezoo.MLP(1, 1, key=jax.random.key(0))
    value, _ = mse(net, (x, y))
    ```
    """
    x, y = _pair(batch, "mse")
    pred, stats = model.apply(x, key=key)
    err = jnp.reshape(pred - _same_shape(pred, y, "mse"), (pred.shape[0], -1))
    return jnp.mean(jnp.sum(err**2, axis=1)), stats


def cross_entropy(model, batch: tuple[Array, Array], key: PRNGKeyArray | None = None):
    """Softmax cross-entropy of the model's logits against integer class labels.

    Arguments:

    - `model`: a model whose outputs are logits `(B, num_classes)`.
    - `batch`: `(x, labels)`, integer labels in `[0, num_classes)` of shape `(B,)`. A
      float dtype, another shape or a label out of range raises
      [`InputError`][odezoo.InputError] (at run time, inside `jit`, an
      `equinox.EquinoxRuntimeError`): a label of -1 would otherwise wrap to the last
      class.
    - `key`: passed on to the model.

    Returns:

    `(mean cross-entropy, stats)`.

    Example:

    ```python
    import jax, jax.numpy as jnp, odezoo
    from odezoo.losses import cross_entropy

    net = odezoo.MLP(2, 3, key=jax.random.key(0))
    value, _ = cross_entropy(net, (jnp.ones((4, 2)), jnp.array([0, 1, 2, 0])))
    ```
    """
    x, labels = _pair(batch, "cross_entropy")
    logits, stats = model.apply(x, key=key)
    labels, out_of_range, message = _labels(logits, labels)
    value = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    if out_of_range is not None:
        # On the loss, not the labels: with equinox's errors as NaN (as `fit` runs), a
        # bad label makes the loss NaN instead of wrapping to another class.
        value = eqx.error_if(value, out_of_range, message)
    return value, stats


def huber(model, batch: tuple[Array, Array], key: PRNGKeyArray | None = None):
    """Huber loss (delta 1, i.e. PyTorch's `SmoothL1Loss`) on regression targets, such as
    the ±1 labels of ANODE's concentric spheres; averaged over all elements.

    Arguments:

    - `model`: a model whose outputs have the shape of the targets.
    - `batch`: `(x, y)`, `y` of the outputs' shape.
    - `key`: passed on to the model.

    Returns:

    `(mean Huber loss, stats)`.

    Example:

    ```python
    import jax, odezoo
    from odezoo.losses import huber

    x, y = odezoo.data.concentric_spheres(n_inner=8, n_outer=8, key=jax.random.key(0))
    net = odezoo.MLP(2, 1, key=jax.random.key(1))
    value, _ = huber(net, (x, y))
    ```
    """
    x, y = _pair(batch, "huber")
    pred, stats = model.apply(x, key=key)
    y = _same_shape(pred, y, "huber")
    return jnp.mean(optax.huber_loss(pred, y, delta=1.0)), stats


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
    from odezoo.losses import nll

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
    # The time-series losses (`_series_losses.py`), on batches of irregular series.
    "elbo": elbo_loss,
    "forecast_mse": forecast_mse,
    "series_cross_entropy": series_cross_entropy,
    "series_mse": series_mse,
}


def get_loss(loss: str | Loss) -> Loss:
    """A loss by name (`"mse"`, `"cross_entropy"`, `"huber"`, `"nll"`; for irregular
    series `"elbo"`, `"forecast_mse"`, `"series_cross_entropy"`, `"series_mse"`), or
    `loss` itself when it is already a callable
    `loss(model, batch, key) -> (scalar, stats_or_None)`.

    Example:

    ```python
    from odezoo.losses import get_loss

    loss = get_loss("mse")
    ```
    """
    if callable(loss):
        return loss
    try:
        return LOSSES[loss]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}") from None
