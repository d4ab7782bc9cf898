"""Losses of the time-series models, in the convention of `odezoo.losses`:
`loss(model, batch, key) -> (scalar, stats_or_None)`, with batches as the train loop
draws them (tuples of arrays with a leading series axis)."""

from __future__ import annotations

import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray

from .._errors import InputError
from ..nn import IrregularSeries, as_series


def _split(batch: tuple, extra: int, name: str):
    if not isinstance(batch, tuple) or len(batch) != 3 + extra:
        got = (
            f"a tuple of {len(batch)} array(s)"
            if isinstance(batch, tuple)
            else type(batch).__name__
        )
        want = "(times, values, mask" + (", y)" if extra == 1 else ")")
        raise InputError(f"the {name} loss needs batches {want}; got {got}")
    return as_series(batch[:3]), batch[3:]


def elbo_loss(model, batch: tuple, key: PRNGKeyArray):
    """The negative ELBO per series, averaged over the batch, of a
    [`LatentODE`][odezoo.nn.LatentODE] or [`LatentSDE`][odezoo.nn.LatentSDE].

    Arguments:

    - `model`: a `LatentODE` or `LatentSDE`.
    - `batch`: `(times, values, mask)` to encode and reconstruct (interpolation), or
      `(times, values, mask, target_times, target_values, target_mask)` to encode the
      first three and predict the last three (extrapolation; see
      [`odezoo.data.split_series`][odezoo.data.split_series]).
    - `key`: PRNG key for the posterior sample (and the Brownian motion of an SDE).

    Returns:

    `(mean negative ELBO in nats per series, solve statistics)`.

    Example:

    ```python
    import jax, odezoo
    from odezoo.nn import LatentODE
    from odezoo.losses import elbo_loss

    times, values, mask = odezoo.data.periodic(4, 10, key=jax.random.key(0))
    model = LatentODE(1, latent_size=2, hidden_size=8, key=jax.random.key(1))
    value, stats = elbo_loss(model, (times, values, mask), jax.random.key(2))
    ```
    """
    series, targets = observed_and_targets(batch, "elbo")
    elbo, stats = model.elbo(series, targets, key=key)
    return -jnp.mean(elbo), stats


def observed_and_targets(
    batch: tuple, name: str = "elbo"
) -> tuple[IrregularSeries, IrregularSeries | None]:
    """The two layouts of a batch of series, read in one place: `(times, values, mask)`
    gives `(series, None)` (reconstruct the series itself), and the 6-tuple of
    [`odezoo.data.split_series`][odezoo.data.split_series] gives `(observed, targets)`
    (encode the first, predict the second). Anything else raises an
    [`InputError`][odezoo.InputError] naming the `name` loss or metric."""
    if isinstance(batch, tuple) and len(batch) == 6:
        return split_batch(batch, name)
    series, _ = _split(batch, 0, name)
    return series, None


def split_batch(batch: tuple, name: str = "forecast") -> tuple[IrregularSeries, IrregularSeries]:
    """`(observed, targets)` of a forecasting batch: the 6-tuple `(times, values, mask,
    target_times, target_values, target_mask)` (see
    [`odezoo.data.split_series`][odezoo.data.split_series]), each half checked by
    [`as_series`][odezoo.nn.as_series]."""
    if not (isinstance(batch, tuple) and len(batch) == 6):
        got = type(batch).__name__
        if isinstance(batch, tuple):
            got = f"a tuple of {len(batch)} array(s)"
        raise InputError(
            f"the {name} loss needs batches (times, values, mask, target_times, "
            f"target_values, target_mask); got {got}"
        )
    return as_series(batch[:3]), as_series(batch[3:])


def forecast_mse(model, batch: tuple, key: PRNGKeyArray | None = None):
    """The squared error of a forecaster's predictions at the target times, averaged
    over the observed target entries (the MSE of Rubanova et al. 2019's tables).

    Arguments:

    - `model`: an [`AbstractForecaster`][odezoo.nn.AbstractForecaster] (e.g. a
      [`GRUSeq2Seq`][odezoo.nn.GRUSeq2Seq]); it predicts without a key.
    - `batch`: `(times, values, mask, target_times, target_values, target_mask)`: the
      observations to encode and the targets to predict.
    - `key`: unused (the prediction is deterministic).

    Returns:

    `(mean squared error per observed target entry, stats)`.

    Example:

    ```python
    import jax, odezoo
    from odezoo.nn import GRUSeq2Seq
    from odezoo.losses import forecast_mse

    times, values, mask = odezoo.data.periodic(4, 10, key=jax.random.key(0))
    batch = odezoo.data.split_series(times, values, mask, 2.5)
    value, _ = forecast_mse(GRUSeq2Seq(1, 8, key=jax.random.key(1)), batch)
    ```
    """
    series, targets = split_batch(batch, "forecast_mse")
    pred, stats = model.predict(series, targets.times)
    err = jnp.where(targets.mask > 0, pred - targets.values, 0.0)
    return jnp.sum(err**2) / jnp.maximum(jnp.sum(targets.mask), 1.0), stats


def series_cross_entropy(model, batch: tuple, key: PRNGKeyArray | None = None):
    """Softmax cross-entropy of a series classifier's logits (e.g. a
    [`NeuralCDE`][odezoo.nn.NeuralCDE] or [`ODERNN`][odezoo.nn.ODERNN] with `out_size`
    classes) against integer labels.

    Arguments:

    - `model`: a model mapping a batch of irregular series to logits `(B, classes)`.
    - `batch`: `(times, values, mask, labels)`, labels of shape `(B,)`.
    - `key`: passed on to the model.

    Returns:

    `(mean cross-entropy, stats)`.

    Example:

    ```python
    import jax, odezoo
    from odezoo.nn import NeuralCDE
    from odezoo.losses import series_cross_entropy

    batch = odezoo.data.spirals_classification(4, 8, key=jax.random.key(0))
    cde = NeuralCDE(2, hidden_size=4, out_size=2, key=jax.random.key(1))
    value, stats = series_cross_entropy(cde, batch)
    ```
    """
    series, (labels,) = _split(batch, 1, "series_cross_entropy")
    logits, stats = model.apply(series, key=key)
    labels = jnp.reshape(labels, (-1,)).astype(jnp.int32)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels)), stats


def series_mse(model, batch: tuple, key: PRNGKeyArray | None = None):
    """Squared error of a series regressor's outputs, summed over outputs and averaged
    over the batch.

    Arguments:

    - `model`: a model mapping a batch of irregular series to `(B, out)`.
    - `batch`: `(times, values, mask, y)` with `y` of shape `(B, out)`.
    - `key`: passed on to the model.

    Returns:

    `(mean squared error, stats)`.

    Example:

    ```python
    import jax, jax.numpy as jnp, odezoo
    from odezoo.nn import NeuralCDE
    from odezoo.losses import series_mse

    times, values, mask = odezoo.data.periodic(4, 8, key=jax.random.key(0))
    cde = NeuralCDE(1, hidden_size=4, out_size=1, key=jax.random.key(1))
    value, stats = series_mse(cde, (times, values, mask, jnp.zeros((4, 1))))
    ```
    """
    series, (y,) = _split(batch, 1, "series_mse")
    pred, stats = model.apply(series, key=key)
    err: Array = jnp.reshape(pred - jnp.reshape(y, pred.shape), (pred.shape[0], -1))
    return jnp.mean(jnp.sum(err**2, axis=1)), stats
