"""What an entry is worth at a glance: its headline metric and test NFE, read from its
`metrics.json` (JSON only, no JAX), for `odezoo list` and the docs' zoo overview."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from .._errors import ConfigError
from ._registry import METRICS, config, entry_dir, has_weights, names, with_zoo

# The metric an entry is judged by, the first of these its card has: (key in
# metrics.json, label, whether higher is better). An entry with none of them is judged
# by its test loss, labelled by the loss it trains with (_LOSS_LABELS).
_HEADLINES = (
    ("accuracy", "accuracy", True),
    ("w1_ratio_max", "W1/floor", False),
    ("extrap_mse", "extrap MSE", False),
)
_LOSS_LABELS = {
    "nll": "NLL (nats)",
    "mse": "MSE",
    "huber": "Huber",
    "cross_entropy": "cross-entropy",
    "elbo": "neg. ELBO",
    "forecast_mse": "forecast MSE",
    "series_mse": "MSE",
    "series_cross_entropy": "cross-entropy",
}
SORT_KEYS = ("name", "model", "data", "metric", "nfe", "parameters")


@dataclasses.dataclass(frozen=True)
class EntrySummary:
    """One zoo entry at a glance, as `odezoo list` shows it.

    Fields:

    - `name`, `model`, `data`: the entry's name, model type and dataset.
    - `weights`: whether it ships trained weights.
    - `metric`: the label of its headline metric (test accuracy where it has one; the
      latent SDE's worst Wasserstein-1 distance over its noise floor; a forecaster's
      extrapolation MSE; else its test loss, named by the loss it trains with, e.g.
      `"NLL (nats)"`), or `None` for an untrained entry.
    - `value`: that metric's value on the test set.
    - `higher_is_better`: whether a larger `value` is better.
    - `nfe`: the forward NFE of one test solve (mean over test batches), or `None` for
      a model without an ODE solve.
    - `parameters`: the number of trained parameters.
    - `description`: the config's one-line description.
    """

    name: str
    model: str
    data: str
    weights: bool
    metric: str | None
    value: float | None
    higher_is_better: bool | None
    nfe: float | None
    parameters: int | None
    description: str

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict."""
        return dataclasses.asdict(self)


@with_zoo
def entry_summary(name: str) -> EntrySummary:
    """The [`EntrySummary`][odezoo.zoo.EntrySummary] of entry `name`, from its config and
    `metrics.json` (no JAX).

    Example:

    ```python
    from odezoo import zoo

    s = zoo.entry_summary("seed-cubic-odenet")
    print(s.metric, s.value, s.nfe)
    ```
    """
    cfg = config(name)
    path = entry_dir(name) / METRICS
    card = json.loads(path.read_text()) if path.is_file() else {}
    metrics = card.get("metrics") or {}
    metric, value, higher = _headline(metrics, str((cfg.get("train") or {}).get("loss", "")))
    nfe = metrics.get("nfe_forward")
    return EntrySummary(
        name=name,
        model=str((cfg.get("model") or {}).get("type", "")),
        data=str((cfg.get("data") or {}).get("name", "")),
        weights=has_weights(name),
        metric=metric,
        value=value,
        higher_is_better=higher,
        nfe=float(nfe) if isinstance(nfe, int | float) else None,
        parameters=card.get("parameters"),
        description=" ".join(str(cfg.get("description", "")).split()),
    )


@with_zoo
def summaries(sort: str = "name") -> list[EntrySummary]:
    """The summaries of every entry on the search path, sorted by `sort`.

    Arguments:

    - `sort`: `"name"`, `"model"`, `"data"`, `"nfe"` (cheapest first), `"parameters"`
      (smallest first) or `"metric"` (grouped by headline metric, best first). Entries
      without the value sort last.
    """
    if sort not in SORT_KEYS:
        raise ConfigError(f"unknown sort key {sort!r}; choose one of {', '.join(SORT_KEYS)}")
    rows = [entry_summary(name) for name in names()]
    return sorted(rows, key=lambda s: _sort_key(s, sort))


def _headline(metrics: dict, loss: str) -> tuple[str | None, float | None, bool | None]:
    for key, label, higher in _HEADLINES:
        if _number(metrics.get(key)):
            return label, float(metrics[key]), higher
    if _number(metrics.get("loss")):
        return _LOSS_LABELS.get(loss, f"{loss} loss"), float(metrics["loss"]), False
    return None, None, None


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _sort_key(s: EntrySummary, sort: str) -> tuple:
    if sort in ("name", "model", "data"):
        return (getattr(s, sort), s.name)
    if sort == "metric":
        missing = s.value is None
        best_first = 0.0 if missing else (-s.value if s.higher_is_better else s.value)
        return (missing, s.metric or "", best_first, s.name)
    value = getattr(s, sort)
    return (value is None, value if value is not None else 0, s.name)
