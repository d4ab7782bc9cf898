"""Held-out metrics of the time-series models, summed over series: a registry from a
training loss to the metrics its batches are scored by.

A metric function is `metrics(model, batch, key) -> (sums, stats)`: `sums` maps each
metric's name to `(numerator, denominator)`, two arrays of shape `(B,)` (one entry per
series of the batch), and the metric is `sum(numerator) / sum(denominator)` over the
whole held-out set. [`evaluate`][odezoo.metrics.evaluate] runs it on chunks of the series
and adds the sums up, so a metric is exact whatever the chunk size: a mean per series
has denominator 1, a mean per observed entry counts the entries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray

from .._errors import ConfigError
from ..nn import AbstractForecaster, IrregularSeries, as_series
from ..train._losses import Loss, get_loss
from ..train._series_losses import (
    elbo_loss,
    forecast_mse,
    observed_and_targets,
    series_cross_entropy,
    series_mse,
)

Sums = dict[str, tuple[Array, Array]]
SeriesMetrics = Callable[[Any, tuple, PRNGKeyArray], tuple[Sums, Any]]

SERIES_METRICS: dict[Loss, SeriesMetrics] = {}


def register_metrics(loss: str | Loss, metrics: SeriesMetrics, *, replace: bool = False) -> None:
    """Score the held-out data of models trained with `loss` by `metrics`, summed over
    series (see the module docs): [`evaluate`][odezoo.metrics.evaluate] then runs
    `metrics` on chunks of the data, all of whose arrays have a leading series axis,
    instead of scoring the model's outputs with the loss.

    Arguments:

    - `loss`: a loss name (see [`get_loss`][odezoo.losses.get_loss]) or function.
    - `metrics`: `metrics(model, batch, key) -> (sums, stats)`, `sums` mapping each
      metric name to `(numerator (B,), denominator (B,))`; include `"loss"`.
    - `replace`: replace an existing registration.

    Example:

    ```python
    import jax.numpy as jnp
    from odezoo.metrics import register_metrics, series_metrics

    def last_value(model, batch, key):
        times, values, mask, y = batch
        pred, stats = model.apply((times, values, mask), key=key)
        err = jnp.sum((pred - y) ** 2, axis=-1)
        return {"loss": (err, jnp.ones_like(err))}, stats

    old = series_metrics("series_mse")
    register_metrics("series_mse", last_value, replace=True)
    register_metrics("series_mse", old, replace=True)      # as it was
    ```
    """
    loss_fn = get_loss(loss)
    if loss_fn in SERIES_METRICS and not replace:
        raise ConfigError(
            f"the loss {loss!r} has series metrics already; pass replace=True to replace them"
        )
    SERIES_METRICS[loss_fn] = metrics


def series_metrics(loss: str | Loss) -> SeriesMetrics | None:
    """The series metrics registered for `loss` (see
    [`register_metrics`][odezoo.metrics.register_metrics]), or `None`."""
    return SERIES_METRICS.get(get_loss(loss))


def _ones(x: Array) -> Array:
    return jnp.ones(x.shape[:1], x.dtype)


def _per_series(x: Array) -> Array:
    return jnp.sum(x, axis=tuple(range(1, x.ndim)))


def forecast_errors(pred: Array, series: IrregularSeries, targets: IrregularSeries) -> Sums:
    """The squared errors of predictions `pred` `(B, Tq, C)` of `targets`, split into
    `interp_mse` (target times up to each series' last observation in `series`, the
    observed window) and `extrap_mse` (after it), each per observed target entry.

    Arguments:

    - `pred`: predictions at `targets.times`.
    - `series`: what the model observed (its window is `[t0, last observed time]`).
    - `targets`: the values to predict, with their mask.

    Example:

    ```python
    import jax.numpy as jnp
    from odezoo.nn import as_series
    from odezoo.metrics import forecast_errors

    t = jnp.array([[0.0, 1.0, 2.0]])
    seen = as_series(t[:, :2], jnp.zeros((1, 2, 1)), jnp.ones((1, 2, 1)))
    target = as_series(t, jnp.array([[[0.0], [1.0], [2.0]]]), jnp.ones((1, 3, 1)))
    sums = forecast_errors(jnp.zeros((1, 3, 1)), seen, target)
    num, den = sums["extrap_mse"]       # 4.0 / 1.0 (the time 2 is after the window)
    ```
    """
    observed = jnp.any(series.mask > 0, axis=-1)
    last = jnp.max(jnp.where(observed, series.times, -jnp.inf), axis=1)
    inside = (targets.times <= last[:, None])[..., None]
    seen = targets.mask > 0
    sq = jnp.where(seen, (pred - targets.values) ** 2, 0.0)
    out = {}
    for name, part in (("interp_mse", inside), ("extrap_mse", ~inside)):
        count = (seen & part).astype(pred.dtype)
        out[name] = (_per_series(jnp.where(part, sq, 0.0)), _per_series(count))
    return out


def _forecast_sums(model, batch: tuple) -> tuple[Sums, Any]:
    """Interpolation and extrapolation errors of a forecaster on a 6-tuple batch, or
    its reconstruction error (`mse`) on `(times, values, mask)`."""
    series, targets = observed_and_targets(batch, "forecast")
    if targets is not None:
        pred, stats = model.predict(series, targets.times)
        return forecast_errors(pred, series, targets), stats
    pred, stats = model.predict(series, series.times)
    sq = jnp.where(series.mask > 0, (pred - series.values) ** 2, 0.0)
    return {"mse": (_per_series(sq), _per_series(series.mask))}, stats


def elbo_metrics(model, batch: tuple, key: PRNGKeyArray) -> tuple[Sums, Any]:
    """`loss`: the negative ELBO per series (one posterior sample from `key`); for an
    [`AbstractForecaster`][odezoo.nn.AbstractForecaster] (a latent ODE), also the
    errors of its posterior-mean predictions (see
    [`forecast_errors`][odezoo.metrics.forecast_errors]), whose solve statistics are the
    ones reported."""
    series, targets = observed_and_targets(batch, "elbo")
    elbo, stats = model.elbo(series, targets, key=key)
    sums: Sums = {"loss": (-elbo, _ones(elbo))}
    if isinstance(model, AbstractForecaster):
        errors, stats = _forecast_sums(model, batch)
        sums.update(errors)
    return sums, stats


def forecast_metrics(model, batch: tuple, key: PRNGKeyArray | None = None) -> tuple[Sums, Any]:
    """`loss` (the [`forecast_mse`][odezoo.losses.forecast_mse] over every target
    entry) and `interp_mse`, `extrap_mse` (see
    [`forecast_errors`][odezoo.metrics.forecast_errors])."""
    sums, stats = _forecast_sums(model, batch)
    num = sum(n for n, _ in sums.values())
    den = sum(d for _, d in sums.values())
    return {"loss": (num, den), **sums}, stats


def cross_entropy_metrics(model, batch: tuple, key: PRNGKeyArray | None = None):
    """`loss` (cross-entropy per series) and `accuracy` of a series classifier on
    `(times, values, mask, labels)`."""
    logits, stats = model.apply(as_series(batch[:3]), key=key)
    labels = jnp.reshape(batch[3], (-1,)).astype(jnp.int32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    right = (jnp.argmax(logits, axis=-1) == labels).astype(ce.dtype)
    return {"loss": (ce, _ones(ce)), "accuracy": (right, _ones(ce))}, stats


def regression_metrics(model, batch: tuple, key: PRNGKeyArray | None = None):
    """`loss`: the squared error summed over outputs, per series, of a series
    regressor on `(times, values, mask, y)`."""
    pred, stats = model.apply(as_series(batch[:3]), key=key)
    err = _per_series((pred - jnp.reshape(batch[3], pred.shape)) ** 2)
    return {"loss": (err, _ones(err))}, stats


register_metrics(elbo_loss, elbo_metrics)
register_metrics(forecast_mse, forecast_metrics)
register_metrics(series_cross_entropy, cross_entropy_metrics)
register_metrics(series_mse, regression_metrics)
