"""Reproducing an entry's card by retraining it from its config, in this process with a
fresh compile, and comparing the retrained model's metrics with the card's, within the
reproduce tolerances."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

from .._errors import error_line
from .._format import format_number
from ._check import within
from ._evaluate import headline_metrics
from ._provenance import describe_version, source_version
from ._registry import METRICS, card_meta, config, entry_dir, load, names, with_zoo

# A retrained entry must agree with its card within these bounds: relative for losses and
# forward NFE, absolute for accuracies (see `reproduce_entry`).
REPRODUCE_RTOL = {"loss": 0.05, "nfe_forward": 0.25}
REPRODUCE_ATOL = {"accuracy": 0.005}
# Metrics not listed above: this relative tolerance.
REPRODUCE_DEFAULT_RTOL = 0.05


@dataclasses.dataclass(frozen=True)
class Reproduction:
    """What [`reproduce_entry`][odezoo.zoo.reproduce_entry] found.

    Fields:

    - `name`: the entry.
    - `reproduced`: whether every card metric was measured again within its bound.
    - `stated`: the card's metrics (`metrics.json`).
    - `measured`: the retrained model's metrics, at the card's evaluation settings
      (empty when training failed).
    - `bounds`: for each card metric, the largest `|measured - stated|` accepted.
    - `seconds`: wall time of the retraining and evaluation.
    - `card_version`: the odezoo version and commit that built the card (`None` for a
      card built before odezoo recorded it).
    - `version`: the odezoo version and commit that retrained it now.
    - `error`: why training failed, or `None`.
    """

    name: str
    reproduced: bool
    stated: dict
    measured: dict
    bounds: dict
    seconds: float
    card_version: dict | None
    version: dict
    error: str | None = None

    def __str__(self) -> str:
        verdict = "reproduced" if self.reproduced else "NOT reproduced"
        if self.error is not None:
            return f"{verdict} {self.name}: retraining failed: {self.error}"
        parts = []
        for key, want in self.stated.items():
            got = self.measured.get(key)
            if got is None:
                parts.append(f"{key} not measured (card {format_number(want)})")
                continue
            bound = self.bounds[key]
            ok = within(got, want, bound)
            parts.append(
                f"{key} {format_number(got)} vs card {format_number(want)} "
                f"(|diff| {format_number(abs(got - want))} {'<=' if ok else '>'} "
                f"{format_number(bound)})"
            )
        return (
            f"{verdict} {self.name}: "
            + ", ".join(parts)
            + f"; retrained in {self.seconds:.0f} s with {describe_version(self.version)}"
            + f"; card built with {describe_version(self.card_version)}"
        )


def _bound(key: str, want: float, tolerance: float | None, entry_rtol: dict) -> float:
    atol = REPRODUCE_ATOL.get(key, 0.0)
    if tolerance is not None:
        return tolerance * abs(want) + atol
    default = 0.0 if key in REPRODUCE_ATOL else REPRODUCE_DEFAULT_RTOL
    rtol = entry_rtol.get(key, REPRODUCE_RTOL.get(key, default))
    return rtol * abs(want) + atol


@with_zoo
def reproduce_entry(
    name: str,
    *,
    tolerance: float | None = None,
    out: str | os.PathLike | None = None,
) -> Reproduction:
    """Retrain zoo entry `name` from its config, as its card says (`odezoo train NAME`:
    [`train_config`][odezoo.train.train_config], in this process, with every program
    compiled afresh, never loaded from the persistent compilation cache), and compare the
    retrained model's metrics with the card's.

    Where [`check_entry`][odezoo.zoo.check_entry] asks whether the shipped weights give
    the card's numbers, this asks whether today's code still trains those weights' numbers
    from the config: a change to the solver or the fit loop that moves the result shows
    up here and nowhere else.

    Arguments:

    - `name`: a zoo entry with a card (`metrics.json`).
    - `tolerance`: the relative tolerance for every metric (plus 0.005 absolute on an
      accuracy). `None` (the default) takes the entry's own `meta.card.reproduce_rtol`
      (a relative tolerance per metric, for entries whose training amplifies rounding)
      where it has one, else `REPRODUCE_RTOL`: 5% on a loss, 25% on the forward NFE, and
      0.005 absolute on an accuracy.
    - `out`: the run directory to train into (kept afterwards, so that
      `odezoo zoo build NAME OUT` can rebuild the entry from it); default a
      temporary directory, removed afterwards.

    Returns:

    A [`Reproduction`][odezoo.zoo.Reproduction]; `str()` of it is one line starting with
    "reproduced" or "NOT reproduced" and giving each metric, the card's value and the
    bound. A failed retraining (any exception) is not raised: its one-line message is
    the result's `error`.

    Why these tolerances: training is bit-deterministic on one machine (two runs of the
    same config give identical weights), but XLA rounds differently on another CPU or at
    another optimisation level, and a training run carries each difference through every
    later step. Retraining the fast entries with XLA at `-O0`
    (`XLA_FLAGS=--xla_backend_optimization_level=0`) and limited to SSE4.2
    (`--xla_cpu_max_isa=SSE4_2`, as on an older CPU), against the default, moved their
    held-out losses by at most 2.5% (seed-cubic-anode, 0.00700 to 0.00717; the other
    seed-cubic entries at their recipe and anode-spheres by less), so 5% leaves room for
    other CPUs and still catches a change of code
    that matters (the solver change that moved seed-cubic-anode's loss from 0.0096 to
    0.19, or seed-cubic-odenet's from 0.13 to 0.21). Where training amplifies rounding
    more (node-spheres: 37%), the entry states its own, measured tolerance in
    `meta.card.reproduce_rtol`, and its card says so. The forward NFE is an integer that
    moves by whole solver steps (6 evaluations each for Dopri5), hence 25%; an accuracy
    on 2000 test points moves by 0.0005 a point, hence 0.005.

    !!! warning

        It trains the entry, which takes about as long as the run it shipped from took
        (`total_time_s` in the entry's `metrics.json`).

    Example:

    ```python
    from odezoo.zoo import reproduce_entry

    result = reproduce_entry("seed-cubic-resnet")
    print(result)
    assert result.reproduced
    ```
    """
    from ..train import train_config

    folder = entry_dir(name)
    if not (folder / METRICS).is_file():
        raise FileNotFoundError(
            f"zoo entry {name!r} has no card ({folder / METRICS}) to reproduce; train and "
            f"build it first: odezoo train {name} --out DIR, then "
            f"odezoo zoo build {name} DIR"
        )
    card = json.loads((folder / METRICS).read_text())
    stated = card["metrics"]
    entry_rtol = dict(card_meta(config(name)).get("reproduce_rtol") or {})
    bounds = {k: _bound(k, v, tolerance, entry_rtol) for k, v in stated.items()}
    version = source_version()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"odezoo-reproduce-{name}-") as tmp:
        run = Path(out) if out is not None else Path(tmp) / name
        try:
            # Compiled here and now: never an executable of another build from the cache.
            train_config(name, run, compilation_cache=False)
        except Exception as e:  # noqa: BLE001 -- any failure is the reproduction's answer
            return Reproduction(
                name, False, stated, {}, bounds, time.perf_counter() - start,
                card.get("built_with"), version, error_line(e),
            )  # fmt: skip
        measured = headline_metrics(name, load(run))
    ok = all(within(measured.get(k), v, bounds[k]) for k, v in stated.items())
    return Reproduction(
        name, ok, stated, measured, bounds, time.perf_counter() - start,
        card.get("built_with"), version,
    )  # fmt: skip


def fast_entries() -> list[str]:
    """The entries whose config marks them as quick to retrain
    (`meta.card.reproduce_in_ci: true`: about a minute or less on 2 CPU cores), which CI
    reproduces on every run."""
    return [n for n in names() if card_meta(config(n)).get("reproduce_in_ci")]
