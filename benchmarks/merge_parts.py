"""Merge the per-workload adjoint runs (run as parallel processes) into one report.

Reads `results/parts/adjoints-<workload>/adjoints.json` and writes
`results/adjoints.{json,md}`.
"""

import json
from pathlib import Path

from _harness.report import write_report

ROOT = Path(__file__).resolve().parent / "results"


def main() -> None:
    merged = None
    for wl in ("toy", "mlp", "cnf", "conv"):
        path = ROOT / "parts" / f"adjoints-{wl}" / "adjoints.json"
        if not path.exists():
            print("missing", path)
            continue
        part = json.loads(path.read_text())
        if merged is None:
            merged = part
            merged["environments"] = [part["environment"]]
            continue
        for key in ("workloads", "strategies", "references"):
            merged[key].update(part[key])
        merged["rows"] += part["rows"]
        merged["environments"].append(part["environment"])
        merged["seconds"] = max(merged["seconds"], part["seconds"])
    merged["note"] = (
        "Each workload ran in its own process: toy, MLP and conv as three parallel processes "
        "on the otherwise idle 2-core machine (after odezoo went back to diffrax's stage "
        "loop), CNF earlier on the shared machine; absolute times are inflated, ratios "
        "compare strategies timed in alternation in one process."
    )
    for path in write_report("adjoints", merged, ROOT):
        print("wrote", path)


if __name__ == "__main__":
    main()
