"""What a card promises: each metric with the tolerance `odezoo zoo check` allows it.

An adaptive solver's step count moves with the last bits of the arithmetic, and those
move with the CPU: XLA chooses FMA contraction, vector width and reduction order for the
machine it runs on. So the same weights evaluate to a slightly different loss, and
sometimes one solver step more or less, on another CPU. A card states each metric with a
tolerance, `{"rtol": r, "atol": a}` in its `metrics.json` (`tolerances`): a recomputed
value is accepted when `|value - card| <= atol + rtol * |card|`.

The tolerances are set from measurement: `benchmarks/isa_spread.py` recomputes every
card under several code-generation settings (`XLA_FLAGS=--xla_cpu_max_isa=...`), and
[`tolerance_from_spread`][odezoo.internal.tolerance_from_spread] takes twice the spread it
found, or the floor below where that is smaller. The measured table is on the docs' zoo
page (`benchmarks/results/isa_spread.md`).
"""

from __future__ import annotations

import json
import math
import os
import re

from .._errors import ConfigError
from .._format import format_number
from ._registry import CARD, METRICS, entry_dir

# The least a card allows, whatever the measured spread: XLA's code for CPUs that were
# not measured may round differently again.
# - A loss (and any error, NLL, ELBO or MSE) evaluated at a loose training tolerance
#   moves with where the solver steps: 3% relative.
# - The forward NFE moves by whole solver steps: one step (6 evaluations of Dopri5 or
#   Tsit5) plus 5%.
# - An accuracy moves by whole test points: 0.003 absolute.
# - Anything else (sample statistics of an SDE at fixed steps): 1e-3 relative.
FLOORS: dict[str, dict[str, float]] = {
    "nfe_forward": {"rtol": 0.05, "atol": 6.0},
    "accuracy": {"atol": 0.003},
}
_LOSS_FLOOR = {"rtol": 0.03}
_OTHER_FLOOR = {"rtol": 1e-3}
_LOSS_LIKE = re.compile(r"(^|_)(loss|mse|nll|elbo)($|_)")
# How much wider than the measured spread a tolerance is.
SPREAD_FACTOR = 2.0


def floor(key: str) -> dict[str, float]:
    """The least tolerance a card allows metric `key` (see `FLOORS`)."""
    if key in FLOORS:
        return dict(FLOORS[key])
    return dict(_LOSS_FLOOR if _LOSS_LIKE.search(key) else _OTHER_FLOOR)


def tolerance_bound(want: float, tolerance: dict | None) -> float:
    """The largest `|value - want|` that `tolerance` (`{"rtol", "atol"}`) accepts.

    Example:

    ```python
    from odezoo.internal import tolerance_bound

    assert tolerance_bound(100.0, {"rtol": 0.05, "atol": 6}) == 11.0
    ```
    """
    tolerance = tolerance or {}
    return float(tolerance.get("atol", 0.0)) + float(tolerance.get("rtol", 0.0)) * abs(want)


def _round_up(x: float) -> float:
    """`x` rounded up to two significant digits (a tolerance reads better so)."""
    if x <= 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(x)) - 1)
    return round(math.ceil(x / scale - 1e-9) * scale, 12)


def tolerance_from_spread(key: str, want: float, spread: float) -> dict[str, float]:
    """The tolerance for metric `key` of a card stating `want`, from the largest
    `|value - want|` measured across code-generation settings (`spread`): the floor
    (`floor(key)`) where that already allows `SPREAD_FACTOR` times the spread, else that
    much, relative to `want` (absolute for an accuracy and for a value of 0).

    Arguments:

    - `key`: the metric's name, as in the card.
    - `want`: the card's value.
    - `spread`: the largest distance from `want` measured.

    Example:

    ```python
    from odezoo.internal import tolerance_from_spread

    assert tolerance_from_spread("nfe_forward", 69, 0) == {"rtol": 0.05, "atol": 6.0}
    assert tolerance_from_spread("nfe_forward", 400, 30) == {"rtol": 0.15}
    ```
    """
    base = floor(key)
    need = SPREAD_FACTOR * spread
    if tolerance_bound(want, base) >= need:
        return base
    if "rtol" in base and want != 0:
        return {"rtol": _round_up(need / abs(want))}
    return {"atol": _round_up(need)}


def read_tolerances(name: str | os.PathLike) -> dict[str, dict[str, float]]:
    """The tolerances entry `name`'s card states for each metric (`metrics.json`'s
    `tolerances`); a metric the card states none for gets its floor."""
    card = json.loads((entry_dir(name) / METRICS).read_text())
    stated = card.get("tolerances") or {}
    return {k: dict(stated.get(k) or floor(k)) for k in card["metrics"]}


def describe_tolerance(want: float, tolerance: dict) -> str:
    """`tolerance` as a card shows it: `±bound` and, where both parts are set, how."""
    bound = tolerance_bound(want, tolerance)
    parts = []
    if tolerance.get("rtol"):
        parts.append(f"{100 * tolerance['rtol']:g}%")
    if tolerance.get("atol"):
        parts.append(format_number(tolerance["atol"]))
    how = " + ".join(parts)
    return f"±{format_number(bound)}" + (f" ({how})" if len(parts) > 1 else "")


# Under every card's metrics table.
TOLERANCE_NOTE = (
    "`odezoo zoo check` accepts a value recomputed on another machine within the "
    "tolerance: the solver's step count, and so every metric, moves with the CPU's "
    "arithmetic (the measured spread is on the docs' zoo page)."
)


def metrics_section(metrics: dict) -> list[str]:
    """A card's metrics table (each metric, its value and the tolerance the card states
    for it in `metrics.json`'s `tolerances`, then the parameter count) and the note on
    what the tolerance is for."""
    tolerances = metrics.get("tolerances") or {}
    lines = ["| metric | value | tolerance |", "|---|---|---|"]
    for k, v in metrics["metrics"].items():
        tolerance = describe_tolerance(v, tolerances.get(k) or floor(k))
        lines.append(f"| {k} | {format_number(v)} | {tolerance} |")
    lines.append(f"| parameters | {metrics['parameters']} | exact |")
    return lines + ["", TOLERANCE_NOTE]


# A card's metrics section, as `metrics_section` writes it (or a card written before
# cards stated tolerances: its table alone).
_SECTION = re.compile(
    r"^\| metric \| value \|.*?\n(?=\n)(\n" + re.escape(TOLERANCE_NOTE) + r"\n)?", re.S | re.M
)


def write_card_tolerances(name: str | os.PathLike, tolerances: dict[str, dict]) -> None:
    """Record `tolerances` in entry `name`'s `metrics.json` and re-render its card's
    metrics section with them; the rest of the card stays as it is.

    Arguments:

    - `name`: a zoo entry with a card.
    - `tolerances`: `{"rtol": r, "atol": a}` (either part may be left out) for every
      metric the card states.
    """
    folder = entry_dir(name)
    card = json.loads((folder / METRICS).read_text())
    missing = set(card["metrics"]) - set(tolerances)
    if missing:
        raise ConfigError(f"no tolerance for {sorted(missing)} of {name}")
    text = (folder / CARD).read_text()
    if not _SECTION.search(text):
        raise ConfigError(f"{folder / CARD} has no metrics table to update")
    card["tolerances"] = {k: tolerances[k] for k in card["metrics"]}
    (folder / METRICS).write_text(json.dumps(card, indent=2) + "\n")
    rendered = "\n".join(metrics_section(card)) + "\n"
    (folder / CARD).write_text(_SECTION.sub(lambda _: rendered, text, count=1))
