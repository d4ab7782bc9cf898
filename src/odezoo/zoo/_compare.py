"""Regularised zoo entries against their unregularised siblings: the card section, the
docs table and the figure of metric against NFE.

A regularised entry is one whose config has `train.regularisation` and names its
unregularised sibling in `meta.card.sibling`. Everything here is read from the two
entries' `metrics.json` when it runs, so a rebuilt sibling moves the comparison with it
([`refresh_comparisons`][odezoo.zoo.refresh_comparisons] re-renders it in the cards).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

from .._format import format_number
from ._registry import config, entry_dir, names

NFE_FACTOR = 2.0
"""The target: at least this many times fewer test-time forward NFE than the sibling."""

WITHIN = {"loss": 0.02, "accuracy": 0.005}
"""The target: the metric at most this much worse than the sibling's (0.02 nat of
negative log-likelihood; 0.5 percentage points of accuracy)."""

HEADING = "## Against its unregularised sibling"

METHODS = {
    "kinetic": "RNODE",
    "jacobian": "RNODE",
    "taylor": "TayNODE",
    "steer": "STEER",
    "error": "ERNODE",
}


def _metrics_file(name: str) -> Path:
    return entry_dir(name) / "metrics.json"


def read_metrics(name: str) -> dict | None:
    """Entry `name`'s `metrics.json` as a dict, or `None` when it has none (untrained)."""
    path = _metrics_file(name)
    return json.loads(path.read_text()) if path.is_file() else None


def sibling_of(cfg: dict) -> str | None:
    """The unregularised sibling a config names in `meta.card.sibling`, or `None`."""
    return ((cfg.get("meta") or {}).get("card") or {}).get("sibling")


def describe_regularisation(reg: dict | None) -> str:
    """The switched-on regularisers of a `train.regularisation` section, in words,
    e.g. `"RNODE (kinetic 0.01, jacobian 0.01)"`; `"none"` when none is on."""
    order = (reg or {}).get("taylor_order") or 2
    reg = {k: v for k, v in (reg or {}).items() if k in METHODS and v}
    if not reg:
        return "none"
    methods = list(dict.fromkeys(METHODS[k] for k in reg))
    weights = []
    for k, v in reg.items():
        text = f"{k} {v:g}"
        if k == "taylor":
            text += f" (order {order})"
        weights.append(text)
    return " + ".join(methods) + " (" + ", ".join(weights) + ")"


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A regularised entry's card numbers against its sibling's, and the verdict.

    Fields:

    - `metric`: the metric compared: `"accuracy"` where both entries have one, else
      `"loss"` (the held-out negative log-likelihood of a CNF).
    - `value`, `sibling_value`: that metric, this entry's and the sibling's.
    - `nfe`, `sibling_nfe`: the test-time forward NFE at the card's tolerance.
    - `nfe_ratio`: `nfe / sibling_nfe` (the target is `<= 1 / NFE_FACTOR`).
    - `within`: whether the metric is within `WITHIN[metric]` of the sibling's (or
      better).
    - `fewer`: whether the NFE are at least `NFE_FACTOR` times fewer.
    - `reached`: `within and fewer`.
    """

    metric: str
    value: float
    sibling_value: float
    nfe: float
    sibling_nfe: float
    nfe_ratio: float
    within: bool
    fewer: bool
    reached: bool

    @property
    def metric_change(self) -> float:
        """How much worse the metric is than the sibling's (negative: better)."""
        if self.metric == "accuracy":
            return self.sibling_value - self.value
        return self.value - self.sibling_value


def compare(metrics: dict, sibling: dict) -> Comparison:
    """Compare two `metrics.json` dicts: a regularised entry's and its sibling's.

    Arguments:

    - `metrics`: the regularised entry's `metrics.json`.
    - `sibling`: its unregularised sibling's.

    Returns:

    A [`Comparison`][odezoo.zoo.Comparison].

    Example:

    ```python
    from odezoo.zoo import compare

    plain = {"metrics": {"loss": 2.42, "nfe_forward": 141}}
    rnode = {"metrics": {"loss": 2.43, "nfe_forward": 57}}
    print(compare(rnode, plain).reached)  # True: 0.01 nat worse, 2.5x fewer NFE
    ```
    """
    m, s = metrics["metrics"], sibling["metrics"]
    key = "accuracy" if "accuracy" in m and "accuracy" in s else "loss"
    value, base = float(m[key]), float(s[key])
    worse = base - value if key == "accuracy" else value - base
    within = worse <= WITHIN[key] + 1e-12
    nfe, base_nfe = float(m["nfe_forward"]), float(s["nfe_forward"])
    ratio = nfe / base_nfe
    fewer = nfe * NFE_FACTOR <= base_nfe
    return Comparison(key, value, base, nfe, base_nfe, ratio, within, fewer, within and fewer)


def _metric_text(key: str, value: float) -> str:
    return f"{100 * value:.2f}%" if key == "accuracy" else format_number(value)


def verdict_line(c: Comparison) -> str:
    """One sentence: whether the target was reached, with the numbers."""
    if c.metric == "accuracy":
        change = f"{100 * abs(c.metric_change):.2f} percentage points"
        bound = f"{100 * WITHIN['accuracy']:.1f} percentage points"
    else:
        change = f"{abs(c.metric_change):.4f} nat"
        bound = f"{WITHIN['loss']:g} nat"
    if c.metric_change == 0:
        change = "the same"
    else:
        change += " worse" if c.metric_change > 0 else " better"
    head = "**reached**" if c.reached else "**not reached**"
    return (
        f"Target ({NFE_FACTOR:g}x fewer test-time forward NFE, with the {c.metric} within "
        f"{bound} of the sibling's): {head}. {c.metric} {_metric_text(c.metric, c.value)} "
        f"against {_metric_text(c.metric, c.sibling_value)} ({change}"
        f"{'' if c.within else ', outside the bound'}); forward NFE "
        f"{format_number(c.nfe)} against {format_number(c.sibling_nfe)} "
        f"({c.sibling_nfe / c.nfe:.2f}x fewer"
        f"{'' if c.fewer else f', short of {NFE_FACTOR:g}x'})."
    )


def _time(t: dict) -> str:
    v = t.get("total_time_s")
    return "–" if v is None else f"{format_number(v)} s"


def _step(t: dict) -> str:
    c, m = t.get("compile_time_s"), t.get("step_time_median_s")
    return "–" if m is None else f"{format_number(c)} s / {format_number(m)} s"


def _train_nfe(t: dict) -> str:
    f, b = t.get("nfe_forward_final"), t.get("nfe_backward_final")
    return "–" if f is None else f"{f} / {b}"


def comparison_section(
    name: str, cfg: dict, metrics: dict, sibling: str, sibling_metrics: dict | None
) -> list[str]:
    """The card's section comparing entry `name` with its unregularised sibling, as
    markdown lines (empty-handed but explicit when the sibling has no `metrics.json`).

    Arguments:

    - `name`: the regularised entry.
    - `cfg`: its config (for the regularisation it trained with).
    - `metrics`: its `metrics.json`.
    - `sibling`: the sibling's name.
    - `sibling_metrics`: the sibling's `metrics.json`, or `None`.
    """
    reg = describe_regularisation((cfg.get("train") or {}).get("regularisation"))
    lines = [HEADING, ""]
    if sibling_metrics is None:
        return lines + [f"{sibling} has no card yet (no metrics.json) to compare with.", ""]
    link = f"[`{sibling}`](../{sibling}/card.md)"  # as render_card links other entries
    c = compare(metrics, sibling_metrics)
    solver = metrics.get("eval_solver") or {}
    tol = f" at rtol={solver['rtol']:g}, atol={solver['atol']:g}" if solver else ""
    t, ts = metrics["training"], sibling_metrics["training"]
    lines += [
        f"Trained as {link} is, plus {reg}. Both read from their `metrics.json` "
        "when this card was rendered:",
        "",
        f"| | {link} | `{name}` |",
        "|---|---|---|",
        f"| test {c.metric} | {_metric_text(c.metric, c.sibling_value)} "
        f"| {_metric_text(c.metric, c.value)} |",
        f"| test forward NFE{tol} | {format_number(c.sibling_nfe)} | {format_number(c.nfe)} |",
        f"| training forward / backward NFE at the end | {_train_nfe(ts)} | {_train_nfe(t)} |",
        f"| total training time | {_time(ts)} | {_time(t)} |",
        f"| compile time / median training step | {_step(ts)} | {_step(t)} |",
        "",
        verdict_line(c),
        "",
    ]
    mine = {r["rtol"]: r for r in metrics.get("tolerance_sweep") or []}
    theirs = {r["rtol"]: r for r in sibling_metrics.get("tolerance_sweep") or []}
    common = [tol for tol in mine if tol in theirs and c.metric in mine[tol]]
    if common:
        lines += [
            "The tolerance sweep, side by side:",
            "",
            f"| rtol = atol | {link} {c.metric} | NFE | `{name}` {c.metric} | NFE |",
            "|---|---|---|---|---|",
        ]
        for tol in common:
            a, b = theirs[tol], mine[tol]
            lines.append(
                f"| {tol:g} | {_metric_text(c.metric, a[c.metric])} "
                f"| {format_number(a['nfe_forward'])} | {_metric_text(c.metric, b[c.metric])} "
                f"| {format_number(b['nfe_forward'])} |"
            )
        lines.append("")
    lines += [
        "Training times are wall-clock seconds on a 2-core machine shared with other "
        "training jobs, which slowed some runs more than others (the median step is the "
        "steadier of the times); the NFE are deterministic and the fairer comparison.",
        "",
    ]
    return lines


def sibling_section(name: str, cfg: dict, metrics: dict) -> list[str]:
    """`comparison_section` for a card, with the sibling's `metrics.json` read now; no
    lines for an entry without `meta.card.sibling`."""
    sibling = sibling_of(cfg)
    if sibling is None:
        return []
    return comparison_section(name, cfg, metrics, sibling, read_metrics(sibling))


def regularised_entries() -> list[str]:
    """The zoo entries that name an unregularised sibling (`meta.card.sibling`)."""
    return [n for n in names() if sibling_of(config(n)) is not None]


def refresh_comparisons(entries: list[str] | None = None) -> list[str]:
    """Re-render the sibling comparison in the cards of `entries` (default: every
    regularised entry with a card), from the entries' current `metrics.json`, in place.
    Cheap (no evaluation): run it after rebuilding a sibling. Returns the cards changed.

    The section runs from its heading to the next `## ` heading; a card without one
    (built before the section existed) gets it before `## Training`.
    """
    changed = []
    for name in regularised_entries() if entries is None else entries:
        card, metrics = entry_dir(name) / "card.md", read_metrics(name)
        if metrics is None or not card.is_file():
            continue
        text = card.read_text()
        section = "\n".join(sibling_section(name, config(name), metrics)) + "\n"
        pattern = re.compile(re.escape(HEADING) + r"\n.*?(?=^## )", re.S | re.M)
        if pattern.search(text):
            new = pattern.sub(lambda _: section, text, count=1)
        else:
            new = text.replace("## Training\n", section + "## Training\n", 1)
        if new != text:
            card.write_text(new)
            changed.append(name)
    return changed


def refresh_dependents(sibling: str) -> list[str]:
    """Re-render the comparison in the cards of the regularised entries whose sibling
    is `sibling` (what `build_entry` does after rebuilding an entry). Returns the cards
    changed."""
    return refresh_comparisons(
        [n for n in regularised_entries() if sibling_of(config(n)) == sibling]
    )


def comparison_rows(entries: list[str] | None = None) -> list[dict]:
    """One row per entry of the docs table: each sibling (regulariser `none`) followed
    by its regularised entries, all from the entries' `metrics.json`. Entries without
    a card are left out."""
    groups: dict[str, list[str]] = {}
    for name in regularised_entries() if entries is None else entries:
        if read_metrics(name) is not None:
            groups.setdefault(sibling_of(config(name)), []).append(name)
    rows = []
    for sibling, members in groups.items():
        base = read_metrics(sibling)
        if base is None:
            continue
        key = compare(base, base).metric
        rows.append(_row(sibling, sibling, "none", base, base, key))
        for name in members:
            reg = (config(name).get("train") or {}).get("regularisation")
            rows.append(
                _row(name, sibling, describe_regularisation(reg), read_metrics(name), base, key)
            )
    return rows


def _row(name, sibling, reg, m, base, key) -> dict:
    c = compare(m, base)
    t, tb = m["training"], base["training"]
    time, time_base = t.get("total_time_s"), tb.get("total_time_s")
    return {
        "entry": name,
        "sibling": sibling,
        "regularisation": reg,
        "metric": key,
        "value": m["metrics"][key],
        "nfe": m["metrics"]["nfe_forward"],
        "nfe_ratio": c.nfe_ratio,
        "train_nfe": t.get("nfe_forward_final"),
        "time_s": time,
        "time_ratio": None if not (time and time_base) else time / time_base,
        "step_ratio": None
        if not (t.get("step_time_median_s") and tb.get("step_time_median_s"))
        else t["step_time_median_s"] / tb["step_time_median_s"],
        "train_nfe_ratio": None
        if not (t.get("nfe_forward_final") and tb.get("nfe_forward_final"))
        else t["nfe_forward_final"] / tb["nfe_forward_final"],
        "reached": None if name == sibling else c.reached,
    }


def comparison_table(entries: list[str] | None = None) -> str:
    """The docs' table of entries x regularisers, in markdown, from the `metrics.json`
    files (see [`comparison_rows`][odezoo.zoo.comparison_rows])."""
    lines = [
        "| entry | regularisation | test metric | test NFE | NFE vs sibling "
        "| training NFE at the end | training time | time vs sibling | target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in comparison_rows(entries):
        ratio = lambda v: "–" if v is None else f"{v:.2f}x"
        target = {None: "–", True: "reached", False: "not reached"}[r["reached"]]
        time = "–" if r["time_s"] is None else f"{format_number(r['time_s'])} s"
        lines.append(
            f"| [`{r['entry']}`](zoo/{r['entry']}/index.md) | {r['regularisation']} "
            f"| {r['metric']} {_metric_text(r['metric'], r['value'])} "
            f"| {format_number(r['nfe'])} | {ratio(r['nfe_ratio'])} | {r['train_nfe']} "
            f"| {time} | {ratio(r['time_ratio'])} | {target} |"
        )
    return "\n".join(lines) + "\n"


CLAIMS = (
    (
        "RNODE",
        "Finlay et al. 2020: FFJORD trains about 2.8x faster at equal bits/dim",
        "time_ratio",
    ),
    (
        "ERNODE",
        "Pal et al. 2021: 0.56-0.73x the function evaluations of the unregularised model",
        "nfe_ratio",
    ),
)
"""The papers' own claims, each with the column of ours it is to be read against."""


def claims_table(entries: list[str] | None = None) -> str:
    """The papers' claims beside our ratios (regularised / sibling) for the entries that
    use each method, in markdown."""
    lines = [
        "| method | the paper's claim | ours, regularised / sibling |",
        "|---|---|---|",
    ]
    rows = [r for r in comparison_rows(entries) if r["reached"] is not None]
    for method, claim, _ in CLAIMS:
        ours = [
            f"`{r['entry']}`: test NFE {r['nfe_ratio']:.2f}x, training NFE "
            + ("–" if r["train_nfe_ratio"] is None else f"{r['train_nfe_ratio']:.2f}x")
            + ", training time "
            + ("–" if r["time_ratio"] is None else f"{r['time_ratio']:.2f}x")
            + " (median step "
            + ("–" if r["step_ratio"] is None else f"{r['step_ratio']:.2f}x")
            + ")"
            for r in rows
            if method in r["regularisation"].split(" (")[0].split(" + ")
        ]
        lines.append(f"| {method} | {claim} | {'; '.join(ours) or 'no entry yet'} |")
    return "\n".join(lines) + "\n"


def docs_block(entries: list[str] | None = None) -> str:
    """What `write_docs` puts between the page's markers: the comparison table and the
    papers' claims beside our numbers."""
    return comparison_table(entries) + "\n" + claims_table(entries)


TABLE_START = "<!-- comparison table: generated by `odezoo zoo compare`, do not edit -->"
TABLE_END = "<!-- end of comparison table -->"


def write_docs(page: str | os.PathLike) -> bool:
    """Regenerate the comparison table between the markers in the docs page `page`.
    Returns whether the page changed."""
    page = Path(page)
    text = page.read_text()
    start, end = text.index(TABLE_START), text.index(TABLE_END)
    new = text[: start + len(TABLE_START)] + "\n\n" + docs_block() + "\n" + text[end:]
    if new != text:
        page.write_text(new)
        return True
    return False


def comparison_figure(path: str | os.PathLike, entries: list[str] | None = None) -> None:
    """One panel per sibling: its test metric against test-time forward NFE over the
    tolerance sweep, next to each regularised entry's; the card's own tolerance marked."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[str]] = {}
    for name in regularised_entries() if entries is None else entries:
        if read_metrics(name) is not None:
            groups.setdefault(sibling_of(config(name)), []).append(name)
    groups = {s: m for s, m in groups.items() if read_metrics(s) is not None}
    n = max(len(groups), 1)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    for ax, (sibling, members) in zip(axes.flat, groups.items(), strict=False):
        key = compare(read_metrics(sibling), read_metrics(sibling)).metric
        for name in [sibling, *members]:
            m = read_metrics(name)
            sweep = m.get("tolerance_sweep") or []
            xs = [r["nfe_forward"] for r in sweep]
            ys = [r[key] for r in sweep]
            (line,) = ax.plot(xs, ys, "o-", ms=3, label=name, alpha=0.8)
            ax.plot(
                m["metrics"]["nfe_forward"], m["metrics"][key], "*", ms=14, color=line.get_color()
            )
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        ax.set_xticks([v for v in (10, 15, 20, 30, 50, 70, 100, 150, 250, 400) if lo <= v <= hi])
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("test-time forward NFE")
        ax.set_ylabel(f"test {key}" + (" (NLL, nat)" if key == "loss" else ""))
        ax.set_title(sibling)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    fig.suptitle("Tolerance sweeps, rtol = atol from 1e-1 to 1e-6 (star: the card's)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
