#!/usr/bin/env bash
# Issue 12, lead 4: every zoo entry's first training step, compiled cold (an empty
# persistent compilation cache) and again from the cache, each in a fresh process:
# `odezoo train NAME --steps 2`, with the compile time that `fit` reports apart from the
# step time (metrics.json: compile_time_s). Writes benchmarks/results/compile_times.md.
#
#     bash benchmarks/compile_times.sh [OUT_MD]
set -euo pipefail
out_md=${1:-benchmarks/results/compile_times.md}
work=$(mktemp -d)
rows=()
for e in $(odezoo list | awk 'NR>1{print $1}'); do
  row="$e"
  for i in 1 2; do
    ODEZOO_JAX_CACHE_DIR="$work/cache/$e" odezoo train "$e" --steps 2 \
      --out "$work/runs/$e-$i" --no-progress > "$work/$e-$i.log" 2>&1
    row="$row $(python -c "import json; print(round(json.load(open('$work/runs/$e-$i/metrics.json'))['compile_time_s'], 2))")"
  done
  rows+=("$row")
done
python - "$out_md" "${rows[@]}" <<'PY'
import sys
from odezoo.bench._report import environment, hardware_line
env = environment()
lines = [
    "## Compile time of every zoo entry's first training step",
    "",
    f"{hardware_line(env)} `bash benchmarks/compile_times.sh`: `odezoo train NAME "
    "--steps 2` in a fresh process with an empty persistent compilation cache (cold), "
    "then again from that cache (cached); the compile time `fit` reports apart from "
    "the step time. Target (issue 12, lead 4): cold under 15 s, cached under 2 s.",
    "",
    "| entry | cold s | cached s |",
    "|---|---|---|",
]
for row in sys.argv[2:]:
    name, cold, cached = row.split()
    lines.append(f"| {name} | {cold} | {cached} |")
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY
echo "wrote $out_md"
