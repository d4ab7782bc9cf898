#!/usr/bin/env bash
# The full benchmark and the work-precision diagrams on a lent GPU, in one command
# (about 8 minutes on one GPU; each part is time-boxed so the whole run fits):
#
#   OUT=/some/folder bash benchmarks/gpu.sh            # on the GPU machine
#   bash benchmarks/gpu.sh --quick                     # CPU dry run: tiny sizes, minutes
#
# Writes under $OUT (default: runs/gpu-<time>): gpu.txt (nvidia-smi, jax.devices(), the
# library versions), peers-W/, precision-W/, adjoints-W/ per workload W (JSON, markdown,
# figures; merge with benchmarks/merge_parts.py where it applies; every
# result file records the accelerator by name), and log.txt. Needs a Python with
# jax[cuda], diffrax, equinox, optax and (for the peers) torch, torchdiffeq, torchode;
# nothing is downloaded. Set PYTHON to choose the interpreter.
set -u
QUICK=""
if [ "${1:-}" = "--quick" ]; then QUICK="--quick"; fi
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
OUT="${OUT:-runs/gpu-$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
LOG="$OUT/log.txt"
: > "$LOG"
# A GPU run uses the GPU's share of memory as it needs it, not 75% up front.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

if [ -n "$QUICK" ]; then  # a few minutes on a CPU
  TOTAL=900; MAXPART=300; MINPART=20; BUDGET=0.2
  TOLS="1e-3,1e-5"; ADJ_STRATS="checkpoint,backsolve"; PREC_STRATS="checkpoint,backsolve"
  WLS="spiral toy"
else  # about 8 minutes in all on one GPU (compilation dominates)
  TOTAL=470; MAXPART=90; MINPART=15; BUDGET=1.0
  TOLS="1e-3,1e-5,1e-7"; ADJ_STRATS="checkpoint,backsolve,backsolve-seminorm,checked"
  PREC_STRATS="checkpoint,backsolve,checked"
  WLS="spiral toy mlp conv cnf"  # the CNF (slowest to compile) last
fi
# Each (experiment, workload) is its own run writing its own folder, so a part cut off by
# its time box loses only itself. A part may use up to MAXPART seconds of what is left of
# TOTAL after MINPART seconds are kept for each later part; unused time passes on.
DEADLINE=$((SECONDS + TOTAL))
{
  echo "# gpu.sh ${QUICK:-full} run, $(date -u +%FT%TZ)"
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  else
    echo "nvidia-smi: not found (no GPU on this machine)"
  fi
  "$PY" - <<'PY'
import importlib.metadata as md
import jax
print("jax.devices():", jax.devices())
print("device kind:", jax.devices()[0].device_kind)
for name in ("jax", "jaxlib", "diffrax", "equinox", "torch", "torchdiffeq", "torchode"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "not installed")
PY
} > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"

status=0
after=0  # parts still to run after the current one
part() {  # part NAME ARGS...: one run, time-boxed, logged
  local name=$1
  shift
  local remaining=$((DEADLINE - SECONDS))
  local secs=$((remaining - MINPART * after))  # leave each later part MINPART seconds
  [ $secs -gt $MAXPART ] && secs=$MAXPART
  after=$((after - 1))
  if [ $secs -lt 15 ]; then
    echo "== $name: skipped, the run's time is spent" | tee -a "$LOG"
    status=1
    return
  fi
  echo "== $name (at most $secs s): python benchmarks/run.py $*" | tee -a "$LOG"
  local t0=$SECONDS
  timeout --signal=INT "$secs" "$PY" benchmarks/run.py "$@" --out "$OUT/$name" --force \
    >> "$LOG" 2>&1
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$LOG"
  [ $rc -eq 0 ] || status=1
}

n=$(echo $WLS | wc -w)
after=$((3 * n - 1))
for wl in $WLS; do
  part "peers-$wl" peers $QUICK --workloads "$wl" --budget "$BUDGET"
done
for wl in $WLS; do
  part "precision-$wl" precision $QUICK --workloads "$wl" \
    --strategies "$PREC_STRATS" --tolerances "$TOLS" --budget "$BUDGET"
done
for wl in $WLS; do
  part "adjoints-$wl" adjoints $QUICK --workloads "$wl" \
    --strategies "$ADJ_STRATS" --budget "$BUDGET" --no-count
done
# One report per experiment from the per-workload parts: OUT/peers, OUT/precision, ...
"$PY" benchmarks/merge_runs.py "$OUT" >> "$LOG" 2>&1 || status=1
echo "results in $OUT (exit $status)"
exit $status
