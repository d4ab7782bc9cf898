"""Merge the per-workload adjoint runs (run as parallel processes) into one report.

Reads `results/parts/adjoints-<workload>/adjoints.json`, replaces any rows listed in
`RERUNS` by those re-measured in `results/parts/adjoints-<workload>-vmap-rerun/`, and
writes `results/adjoints.{json,md}`.
"""

import json
from pathlib import Path

from odezoo.bench import write_report

ROOT = Path(__file__).resolve().parent / "results"
# (workload, strategy) rows to take from a re-run; none since toy, MLP and conv were
# re-measured whole after the return to diffrax's stage loop.
RERUNS: tuple[tuple[str, str], ...] = ()


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
    for wl, st in RERUNS:
        path = ROOT / "parts" / f"adjoints-{wl}-vmap-rerun" / "adjoints.json"
        if not path.exists():
            print("no rerun for", wl, st)
            continue
        rerun = json.loads(path.read_text())
        new = next(r for r in rerun["rows"] if r["strategy"] == st)
        new["rerun"] = "re-measured after per-example solves went back to checkpointed stages"
        merged["rows"] = [
            new if (r["workload"], r["strategy"]) == (wl, st) else r for r in merged["rows"]
        ]
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
