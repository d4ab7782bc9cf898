"""Checking an entry's card against its shipped weights: each headline metric recomputed
and compared with the card's value, within the tolerance the card states."""

from __future__ import annotations

import dataclasses
import json
import math

from .._errors import CardMismatchError
from .._format import format_number
from ._card_tolerance import read_tolerances, tolerance_bound
from ._evaluate import headline_metrics
from ._registry import METRICS, entry_dir, with_zoo


@dataclasses.dataclass(frozen=True)
class CardCheck:
    """What [`check_entry`][odezoo.zoo.check_entry] found.

    Fields:

    - `name`: the entry.
    - `stated`: the card's metrics (`metrics.json`).
    - `measured`: the metrics recomputed from the shipped weights.
    - `bounds`: for each card metric, the largest `|measured - stated|` its tolerance
      accepts.
    """

    name: str
    stated: dict
    measured: dict
    bounds: dict

    def failures(self) -> list[str]:
        """The metrics outside their tolerance, one phrase each."""
        bad = []
        for key, want in self.stated.items():
            got = self.measured.get(key)
            if got is None:
                bad.append(f"{key}: card says {format_number(want)}, not measured")
            elif not within(got, want, self.bounds[key]):
                bad.append(
                    f"{key}: card says {format_number(want)}, weights give "
                    f"{format_number(got)} (tolerance ±{format_number(self.bounds[key])})"
                )
        return bad

    @property
    def ok(self) -> bool:
        return not self.failures()

    def __str__(self) -> str:
        parts = [
            f"{k} {format_number(self.measured.get(k))} (card {format_number(v)} "
            f"±{format_number(self.bounds[k])})"
            for k, v in self.stated.items()
        ]
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: " + ", ".join(parts)


@with_zoo
def check_entry(name: str, *, throw: bool = True) -> CardCheck:
    """Recompute an entry's headline metrics from its shipped weights and compare each
    with its card's value, within the tolerance the card states for it
    (`metrics.json`'s `tolerances`; see `odezoo.internal.tolerance_bound`).

    Arguments:

    - `name`: a zoo entry with shipped weights and a card.
    - `throw`: whether a metric outside its tolerance raises
      [`CardMismatchError`][odezoo.zoo.CardMismatchError] (naming each such metric,
      with both values and the tolerance). With `throw=False` the result says so
      instead (`.ok`, `.failures()`).

    Returns a [`CardCheck`][odezoo.zoo.CardCheck]; `str()` of it is one line with each
    metric's recomputed value, the card's value and its tolerance.

    Example:

    ```python
    from odezoo.zoo import check_entry

    print(check_entry("seed-cubic-resnet"))
    ```
    """
    folder = entry_dir(name)
    stated = json.loads((folder / METRICS).read_text())["metrics"]
    tolerances = read_tolerances(name)
    bounds = {k: tolerance_bound(v, tolerances[k]) for k, v in stated.items()}
    result = CardCheck(name, stated, headline_metrics(name), bounds)
    bad = result.failures()
    if bad and throw:
        raise CardMismatchError(f"zoo entry {name!r} disagrees with its card: " + "; ".join(bad))
    return result


def within(got, want, bound: float) -> bool:
    """Whether a measured metric `got` is finite and within `bound` of the stated `want`."""
    return got is not None and math.isfinite(got) and abs(got - want) <= bound
