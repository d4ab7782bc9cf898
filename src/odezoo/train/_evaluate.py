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
from .._solver import SolveStatus
from ._losses import Loss, cross_entropy, get_loss, huber
from ._marginals import GaussianMarginals, evaluate_marginals
from ._series_losses import series_cross_entropy, series_mse

# How many leading arrays of a batch are the model's input, for the losses whose input is
# more than one array: a series batch is `(times, values, mask, y)`. Every other loss
# reads `(x, y)` or `(x,)`.
_INPUT_ARRAYS = {series_cross_entropy: 3, series_mse: 3}


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


def _chunks(xs: tuple[np.ndarray, ...], size: int):
    """`(start, chunk, m)`: chunks of `size` examples of the arrays `xs` (a common
    leading axis), the last one padded with copies of its first example so that one
    compiled shape serves them all; `m` real examples."""
    n = len(xs[0])
    size = min(size, n)
    for i in range(0, n, size):
        chunk = []
        for x in xs:
            xb = x[i : i + size]
            m = len(xb)
            if m < size:
                xb = np.concatenate([xb, np.repeat(xb[:1], size - m, axis=0)])
            chunk.append(xb)
        yield i, tuple(chunk), m


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
    [`get_loss`][odezoo.train.get_loss]) then scores all of its outputs at once.

    Metrics:

    - `loss`: the training loss on the data; for `nll`, the mean negative
      log-likelihood in nats (without a CNF's RNODE penalty, which regularises training
      but is no part of the likelihood).
    - `accuracy`: for `cross_entropy` and `series_cross_entropy`, the share of argmax
      predictions equal to the labels; for `huber` (±1 targets), the share of outputs
      with the target's sign.
    - `nfe_forward`: the mean forward evaluations per batch, for ODE models.

    Non-finite values are `None`.

    Arguments:

    - `model`: an odezoo model (`model.apply(x, key=key) -> (out, stats)`).
    - `data`: `(x, y)`, or `(x,)` for a density; `(times, values, mask, y)` for the
      series losses (`series_cross_entropy`, `series_mse`); or a known law,
      [`GaussianMarginals`][odezoo.train.GaussianMarginals], which a sampling model is
      compared with by [`evaluate_marginals`][odezoo.train.evaluate_marginals] (the
      loss is not used then).
    - `loss`: a loss name (`"mse"`, `"huber"`, `"cross_entropy"`, `"nll"`) or a loss
      function `loss(model, batch, key) -> (scalar, stats)`.
    - `batch_size`: examples per model call.
    - `key`: passed to the model on every batch (e.g. a Hutchinson CNF's probes;
      default `jax.random.key(0)`).

    Raises [`SolverError`][odezoo.SolverError] when a solve fails on a batch (reached
    when equinox's checks return NaN instead of raising, as under
    [`errors_as_nan`][odezoo.train.errors_as_nan]).

    Example:

    ```python
    import jax, odezoo
    from odezoo.train import evaluate

    x, y = odezoo.data.cubic()
    net = odezoo.MLP(1, 1, key=jax.random.key(0))
    metrics = evaluate(net, (x, y), "mse")
    ```
    """
    if isinstance(data, GaussianMarginals):
        return evaluate_marginals(model, data, key=key)
    loss_fn = get_loss(loss)
    key = jax.random.key(0) if key is None else key
    inputs = tuple(np.asarray(a) for a in data[: _INPUT_ARRAYS.get(loss_fn, 1)])
    outs, nfes = [], []
    for i, xb, m in _chunks(inputs, batch_size):
        xb = tuple(jnp.asarray(a) for a in xb)
        out, nfe, failed = _forward(model, xb[0] if len(xb) == 1 else xb, key)
        if failed is not None and int(failed):
            advice = SolveStatus(int(failed)).advice
            raise SolverError(
                f"evaluation failed on the test batch starting at example {i}. {advice}"
            )
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
    elif loss_fn is cross_entropy or loss_fn is series_cross_entropy:
        labels = np.asarray(data[len(inputs)]).reshape(-1).astype(int)
        metrics["accuracy"] = float(np.mean(out.argmax(axis=1) == labels))
    if nfes:
        metrics["nfe_forward"] = float(np.mean(nfes))
    return {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}
