"""An entry's model card (`card.md`), in markdown, from its config and its measured
metrics."""

from __future__ import annotations

import re

from .._format import format_number
from ._card_tolerance import metrics_section
from ._compare import sibling_section
from ._provenance import describe_version
from ._registry import card_meta, names


def _link_entries(text: str, name: str, entries: set[str]) -> str:
    """Turn every other zoo entry named in backticks into a link to its card (a path
    relative to this card, `../OTHER/card.md`; the docs hook maps it to the site's page)."""

    def link(match: re.Match) -> str:
        other = match.group(1)
        if other == name or other not in entries:
            return match.group(0)
        return f"[`{other}`](../{other}/card.md)"

    return re.sub(r"(?<![\[\w])`([a-z0-9][a-z0-9-]*)`(?![\]\w])", link, text)


def render_card(name: str, cfg: dict, metrics: dict, figures: list[tuple[str, str]]) -> str:
    """The model card, in markdown, from the entry's config and measured metrics."""
    meta = card_meta(cfg)
    m = metrics["metrics"]
    t = metrics["training"]
    entries = set(names())
    linked = lambda text: _link_entries(text, name, entries)
    lines = [f"# {name}", "", linked(cfg.get("description", "")), ""]
    if meta.get("reproduces"):
        lines += ["## What it reproduces", "", linked(meta["reproduces"]), ""]
    lines += ["## Metrics", ""]
    solver = metrics.get("eval_solver")
    if solver:
        lines.append(
            f"Measured on the held-out data with {solver['solver']} at "
            f"rtol={solver['rtol']:g}, atol={solver['atol']:g}:"
        )
        lines.append("")
    lines += metrics_section(metrics)
    lines.append("")
    target = meta.get("target")
    if target:
        value = m[target["metric"]]
        ok = value <= target["max"] if "max" in target else value >= target["min"]
        bound = f"<= {target['max']:g}" if "max" in target else f">= {target['min']:g}"
        verdict = "reached" if ok else "**not reached**"
        lines += [
            f"Target: {target['metric']} {bound} ({target.get('why', '')}): {verdict}, "
            f"measured {format_number(value)}.",
            "",
        ]
    if meta.get("notes"):
        lines += [linked(meta["notes"]), ""]
    others = [o for o in meta.get("compare_with", []) if o in entries and o != name]
    if others:
        lines += ["Compare with: " + ", ".join(linked(f"`{o}`") for o in others) + ".", ""]
    lines += sibling_section(name, cfg, metrics)
    lines += [
        "## Training",
        "",
        f"- Steps: {t.get('steps')}, final training loss {format_number(t.get('final_loss'))}.",
    ]
    if t.get("nfe_forward_final") is None and t.get("nfe_backward_final") is None:
        lines.append("- No ODE solve, so no function evaluations (NFE) to report.")
    else:
        lines.append(
            f"- Forward / backward NFE at the end of training: {t.get('nfe_forward_final')} / "
            f"{t.get('nfe_backward_final')}."
        )
    lines += [
        f"- Time: {format_number(t.get('total_time_s'))} s in all, "
        f"compile {format_number(t.get('compile_time_s'))} s, "
        f"median step {format_number(t.get('step_time_median_s'))} s.",
        f"- Hardware: {metrics['hardware']} (jax {t.get('jax_version')}). "
        + (meta.get("hardware_note") or ""),
        f"- Built with: {describe_version(metrics.get('built_with'))}.",
        "",
        "Reproduce with:",
        "",
        "```bash",
        f"odezoo train {name} --out runs/{name}",
        f"odezoo zoo build {name} runs/{name}",
        "```",
        "",
        f"Check the shipped weights against this card: `odezoo eval {name} --check`. "
        f"Retrain in a temporary folder and compare with this card: "
        f"`odezoo zoo reproduce {name}`"
        + (" (CI does, on every run)." if meta.get("reproduce_in_ci") else "."),
        "",
    ]
    sweep = metrics.get("tolerance_sweep")
    if sweep:
        rest = [k for k in sweep[0] if k not in ("rtol", "atol", "nfe_forward", "accuracy")]
        keys = [k for k in ("accuracy", *rest) if k in sweep[0]]
        lines += [
            "## Test-time tolerance",
            "",
            "The same weights evaluated as the solver's tolerance loosens:",
            "",
            "| rtol = atol | " + " | ".join(keys) + " | forward NFE |",
            "|---|" + "---|" * (len(keys) + 1),
        ]
        for row in sweep:
            vals = " | ".join(format_number(row[k]) for k in keys)
            lines.append(f"| {row['rtol']:g} | {vals} | {format_number(row['nfe_forward'])} |")
        lines.append("")
    if figures:
        lines += ["## Figures", ""]
        for file, caption in figures:
            lines += [f"![{caption}]({file})", "", caption, ""]
    return "\n".join(lines).rstrip() + "\n"
