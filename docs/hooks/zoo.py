"""mkdocs hook: publish each zoo entry's card (and figures) as a docs page.

The cards live in the top-level zoo/ folder, next to the weights they describe; this
hook adds them to the site at build time, so they are never copied into docs/. A card links
another entry as `../OTHER/card.md` (right in the repository); on the site that page is
`zoo/OTHER/index.md`, so the links are rewritten. (This file itself is kept out of the site
by `exclude_docs` in mkdocs.yml.)
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

from odezoo.zoo import entry_summary

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / "zoo"
# The measured spread of every card's metrics across CPU code generation.
SPREAD = ROOT / "benchmarks" / "results" / "isa_spread.md"


def _entries() -> list[Path]:
    return [d for d in sorted(ZOO.iterdir()) if (d / "card.md").is_file()]


def on_config(config):
    pages = [{"Overview": "zoo/index.md"}]
    pages += [{d.name: f"zoo/{d.name}/index.md"} for d in _entries()]
    config["nav"].append({"Model zoo": pages})
    return config


def _overview() -> str:
    lines = [
        "# Model zoo",
        "",
        "Every entry ships its config, weights, metrics, figures and card. Load one with",
        "`odezoo.zoo.load(name)`, retrain it with `odezoo train NAME`, and check the shipped",
        "weights against the card with `odezoo zoo check NAME` (CI does this for every",
        "entry).",
        "",
        "Training times in the cards were measured on a 2-core CPU that was shared with other",
        "jobs while the zoo was trained, so they are upper bounds.",
        "",
        "| entry | model | data | test metric | test NFE | parameters |",
        "|---|---|---|---|---|---|",
    ]
    for d in _entries():
        s = entry_summary(d.name)
        metric = "–" if s.metric is None else f"{s.metric} {s.value:.4g}"
        nfe = "–" if s.nfe is None else f"{s.nfe:.4g}"
        lines.append(
            f"| [{d.name}]({d.name}/index.md) | {s.model} | {s.data} | {metric} | {nfe} | "
            f"{s.parameters} |"
        )
    lines += [
        "",
        "The test metric is an entry's accuracy where it has one, the latent SDE's worst "
        "Wasserstein-1 distance over its noise floor, a forecaster's extrapolation MSE, "
        "and otherwise its test loss, named by the loss it trains with (NLL in nats for "
        "the flows). The test NFE is the forward evaluations of one test solve. "
        "`odezoo list` prints the same table (`--sort metric|nfe|parameters`, `--json`).",
    ]
    untrained = [d.name for d in sorted(ZOO.iterdir()) if not (d / "card.md").is_file()]
    if untrained:
        lines += ["", "Configured but not yet trained: " + ", ".join(untrained) + "."]
    lines += [
        "",
        "## How far a card's numbers move from one CPU to another",
        "",
        "An adaptive solver's step count, and so every metric evaluated through it, moves",
        "with the last bits of the arithmetic, which XLA chooses for the CPU it runs on",
        "(FMA contraction, vector width, reduction order). Each card therefore states every",
        "metric with a tolerance (its `metrics.json` `tolerances`, shown in its metrics",
        "table): twice the largest spread measured below, and never less than 3% on a loss,",
        "one solver step plus 5% on the forward NFE, or 0.003 on an accuracy.",
        "`odezoo zoo check` prints each recomputed value with the card's value and that",
        "tolerance. CI runs the check, and retrains the fast entries, under",
        "`XLA_FLAGS=--xla_cpu_max_isa=SSE4_2` and `AVX2` as well as the default.",
        "",
        SPREAD.read_text().strip(),
    ]
    return "\n".join(lines) + "\n"


def on_files(files, config):
    files.append(File.generated(config, "zoo/index.md", content=_overview()))
    for d in _entries():
        card = re.sub(
            r"\(\.\./([a-z0-9-]+)/card\.md\)", r"(../\1/index.md)", (d / "card.md").read_text()
        )
        files.append(File.generated(config, f"zoo/{d.name}/index.md", content=card))
        for f in sorted(d.glob("*.png")):
            files.append(File.generated(config, f"zoo/{d.name}/{f.name}", abs_src_path=str(f)))
    return files
