"""Block-timing effect: the same step timed as single interleaved calls and as blocks of 50."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/, for _harness

from odezoo.bench._measure import interleaved_timing  # noqa: E402
from odezoo.bench._strategies import strategies  # noqa: E402

from _harness.adjoints import prepare_pair  # noqa: E402
from _harness.workloads import workloads  # noqa: E402

N = 50
out = {}
for name in sys.argv[1].split(","):
    wl = workloads(False)[name]
    w = wl.weights()
    contenders = {}
    for st in ("checkpoint", "backsolve"):
        row, run = prepare_pair(wl, strategies()[st], w, None, count=False)
        contenders[st] = run

        def block(run=run):
            for _ in range(N):
                run()

        contenders[st + "-block"] = block
    t = interleaved_timing(contenders, warmup=1, budget_s=60, min_rounds=5, max_rounds=30)
    res = {k: v["median_ms"] / (N if k.endswith("block") else 1) for k, v in t.items()}
    res["rounds"] = t["checkpoint"]["rounds"]
    out[name] = res
    print(name, res, flush=True)
json.dump(out, open("/tmp/blockfx/out.json", "w"), indent=1)
