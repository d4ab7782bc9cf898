"""Held-out evaluation, scored with the training losses."""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from .._errors import SolverError
from .._result import SolveResult, result_name, result_of_code
from ..train._losses import Loss, cross_entropy, get_loss, huber
from ._marginals import GaussianMarginals, evaluate_marginals
from ._series import series_metrics


class _Outputs(eqx.Module):
    """A stand-in model that returns outputs computed beforehand: the training losses
    score a whole test set through it, although the model ran on it in chunks."""

    out: Array

    def apply(self, xs, *, key=None):
        return self.out, None

    def regularized(self, xs, *, key=None):
        # `nll` scores `-log p`; the RNODE penalty is a training regulariser, not part of
        # the held-out likelihood, so it is zero here.
        return self.out, jnp.zeros_like(self.out), None


@eqx.filter_jit
def _forward(model, x, key):
    out, stats = model.apply(x, key=key)
    if stats is None:
        return out, None, None
    return out, stats.nfe, stats.failed


def _chunks(x: np.ndarray, size: int):
    """`(start, chunk, m)`: chunks of `size` examples, the last one padded with copies of
    its first example so that one compiled shape serves them all; `m` real examples."""
    n = len(x)
    size = min(size, n)
    for i in range(0, n, size):
        xb = x[i : i + size]
        m = len(xb)
        if m < size:
            xb = np.concatenate([xb, np.repeat(xb[:1], size - m, axis=0)])
        yield i, xb, m


def _raise_if_failed(failed, start: str) -> None:
    """A [`SolverError`][odezoo.SolverError] naming how the solve of the test batch
    starting at `start` ended, if it failed (`failed` as a solve's statistics carry it)."""
    if failed is not None and int(failed):
        result = result_of_code(failed)
        raise SolverError(
            f"evaluation failed on the test batch starting at {start}: {SolveResult[result]}",
            cause=result_name(result),
        )


def evaluate(
    model,
    data: tuple,
    loss: str | Loss = "mse",
    *,
    batch_size: int = 1024,
    key: Array | None = None,
) -> dict[str, float | None]:
    """A model's metrics on held-out data, scored with the training loss.

    The model runs on batches of `batch_size` examples (one compiled shape; an ODE
    model solves each batch as its solver says), and the training loss (see
    [`get_loss`][odezoo.losses.get_loss]) then scores all of its outputs at once.

    Metrics:

    - `loss`: the training loss on the data; for `nll`, the mean negative
      log-likelihood in nats (without a CNF's RNODE penalty, which regularises training
      but is no part of the likelihood).
    - `accuracy`: for `cross_entropy`, the share of argmax predictions equal to the
      labels; for `huber` (±1 targets), the share of outputs with the target's sign.
    - `nfe_forward`: the mean forward evaluations per batch, for ODE models.

    Irregular series (a loss with series metrics, see
    [`register_metrics`][odezoo.metrics.register_metrics]) are scored by those metrics,
    on chunks of every array of `data` (a tuple with a leading series axis), summed
    over series: for `"elbo"` the negative ELBO as `loss` and, for a forecaster (a
    latent ODE) on batches with targets, `interp_mse` and `extrap_mse` (see
    [`forecast_errors`][odezoo.metrics.forecast_errors]); the same errors for
    `"forecast_mse"`; `loss` and `accuracy` for `"series_cross_entropy"`; `loss` for
    `"series_mse"`. A metric with nothing to count (no target after the observed
    window) is left out.

    Non-finite values are `None`.

    Arguments:

    - `model`: an odezoo model (`model.apply(x, key=key) -> (out, stats)`).
    - `data`: `(x, y)`, or `(x,)` for a density; for series, the tuple of arrays its
      loss takes (e.g. `(times, values, mask, labels)`); or a known law,
      [`GaussianMarginals`][odezoo.metrics.GaussianMarginals], which a sampling model is
      compared with by [`evaluate_marginals`][odezoo.metrics.evaluate_marginals] (the
      loss is not used then).
    - `loss`: a loss name (`"mse"`, `"huber"`, `"cross_entropy"`, `"nll"`, or a series
      loss) or a loss function `loss(model, batch, key) -> (scalar, stats)`.
    - `batch_size`: examples per model call.
    - `key`: passed to the model on every batch (e.g. a Hutchinson CNF's probes;
      default `jax.random.key(0)`).

    Raises [`SolverError`][odezoo.SolverError] when a solve fails on a batch (reached
    when equinox's checks return NaN instead of raising, as under
    [`errors_as_nan`][odezoo.train.errors_as_nan]).

    Example:

    ```python
    import jax, odezoo
    from odezoo.metrics import evaluate

    x, y = odezoo.data.cubic()
    net = odezoo.MLP(1, 1, key=jax.random.key(0))
    metrics = evaluate(net, (x, y), "mse")
    ```
    """
    if isinstance(data, GaussianMarginals):
        return evaluate_marginals(model, data, key=key)
    loss_fn = get_loss(loss)
    key = jax.random.key(0) if key is None else key
    per_series = series_metrics(loss_fn)
    if per_series is not None:
        return _evaluate_series(model, data, per_series, batch_size, key)
    x = np.asarray(data[0])
    outs, nfes = [], []
    for i, xb, m in _chunks(x, batch_size):
        out, nfe, failed = _forward(model, jnp.asarray(xb), key)
        _raise_if_failed(failed, f"example {i}")
        outs.append(np.asarray(out)[:m])
        if nfe is not None:
            nfes.append(float(nfe))
    out = np.concatenate(outs)
    batch = tuple(jnp.asarray(a) for a in data)
    value, _ = loss_fn(_Outputs(jnp.asarray(out)), batch, key)
    metrics: dict[str, Any] = {"loss": float(value)}
    if loss_fn is huber:
        y = np.asarray(data[1]).reshape(out.shape)
        metrics["accuracy"] = float(np.mean(np.sign(out) == np.sign(y)))
    elif loss_fn is cross_entropy:
        labels = np.asarray(data[1]).reshape(-1).astype(int)
        metrics["accuracy"] = float(np.mean(out.argmax(axis=1) == labels))
    if nfes:
        metrics["nfe_forward"] = float(np.mean(nfes))
    return {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}


@eqx.filter_jit
def _series_forward(metrics, model, batch, weight, key):
    sums, stats = metrics(model, batch, key)
    total = {k: (jnp.sum(num * weight), jnp.sum(den * weight)) for k, (num, den) in sums.items()}
    if stats is None:
        return total, None, None
    return total, stats.nfe, stats.failed


def _evaluate_series(model, data: tuple, metrics, batch_size: int, key) -> dict:
    """Series metrics summed over chunks of `batch_size` series (the last one padded
    with copies of its first series, weighted 0)."""
    arrays = [np.asarray(a) for a in data]
    n = len(arrays[0])
    size = min(batch_size, n)
    totals: dict[str, list[float]] = {}
    nfes = []
    for i in range(0, n, size):
        chunk = []
        for a in arrays:
            part = a[i : i + size]
            if len(part) < size:
                part = np.concatenate([part, np.repeat(part[:1], size - len(part), axis=0)])
            chunk.append(jnp.asarray(part))
        m = min(size, n - i)
        weight = jnp.asarray(np.arange(size) < m, dtype=chunk[1].dtype)
        sums, nfe, failed = _series_forward(metrics, model, tuple(chunk), weight, key)
        _raise_if_failed(failed, f"series {i}")
        for k, (num, den) in sums.items():
            acc = totals.setdefault(k, [0.0, 0.0])
            acc[0] += float(num)
            acc[1] += float(den)
        if nfe is not None:
            nfes.append(float(nfe))
    order = sorted(totals, key=lambda k: (k != "loss", k))  # the loss first
    out: dict[str, Any] = {k: totals[k][0] / totals[k][1] for k in order if totals[k][1] > 0}
    if nfes:
        out["nfe_forward"] = float(np.mean(nfes))
    return {k: (v if math.isfinite(v) else None) for k, v in out.items()}
