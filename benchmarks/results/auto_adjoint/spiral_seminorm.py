from odezoo.bench._adjoints import run_adjoints
from odezoo.bench._strategies import Strategy, strategies
from odezoo.bench._workloads import workloads

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
