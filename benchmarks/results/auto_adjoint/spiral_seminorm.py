"""The spiral's adjoints with the seminorm (printed, not saved); see README.md."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/, for _harness

from odezoo.bench._strategies import Strategy, strategies  # noqa: E402

from _harness.adjoints import run_adjoints  # noqa: E402
from _harness.workloads import workloads  # noqa: E402

S = strategies()
sts = [
    S["checkpoint"],
    S["backsolve-seminorm"],
    S["auto"],
    Strategy("auto-seminorm", {"adjoint": "auto", "seminorm": True}),
]
r = run_adjoints([workloads()["spiral"]], sts, count=True, log=lambda m: None)
for row in r["rows"]:
    print(
        row["strategy"],
        round(row["timing"]["median_ms"], 3),
        round(row["ratio"], 2),
        row["nfe"],
        "{:.1e}".format(row["grad_error"]),
        row.get("chosen_adjoint"),
    )
