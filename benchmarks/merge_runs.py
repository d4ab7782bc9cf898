"""Merge per-workload runs into one report per experiment.

`python benchmarks/merge_runs.py DIR` reads `DIR/<experiment>-<workload>/<experiment>.json`
(as `benchmarks/gpu.sh` writes them) and writes `DIR/<experiment>/<experiment>.{json,md}`
(and the figures), for `peers`, `precision` and `adjoints`: rows concatenated in the
order the parts ran, per-workload tables (workloads, references, skipped) joined, the
environment of the first part kept and each part's own listed under `parts`.
"""

import json
import sys
from pathlib import Path

from _harness.report import write_report

EXPERIMENTS = ("peers", "precision", "adjoints")


def merge(parts: list[dict]) -> dict:
    merged = dict(parts[0])
    merged["rows"] = [r for p in parts for r in p.get("rows", [])]
    for key in ("workloads", "references", "skipped", "strategies"):
        if any(key in p for p in parts):
            merged[key] = {k: v for p in parts for k, v in p.get(key, {}).items()}
    merged["seconds"] = sum(p.get("seconds") or 0 for p in parts)
    merged["parts"] = [
        {
            "workloads": sorted({r["workload"] for r in p.get("rows", [])}),
            "env": p.get("environment"),
        }
        for p in parts
    ]
    return merged


def main(root: Path) -> int:
    for exp in EXPERIMENTS:
        files = sorted(root.glob(f"{exp}-*/{exp}.json"), key=lambda f: f.stat().st_mtime)
        if not files:
            print(f"{exp}: no parts under {root}")
            continue
        result = merge([json.loads(f.read_text()) for f in files])
        for path in write_report(exp, result, root / exp):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
