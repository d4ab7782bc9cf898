#!/usr/bin/env bash
# The full benchmark and the work-precision diagrams on a lent GPU, in one command
# (about 8 minutes on one GPU; each part is time-boxed so the whole run fits):
#
#   OUT=/some/folder bash benchmarks/gpu.sh            # on the GPU machine
#   bash benchmarks/gpu.sh --quick                     # CPU dry run: tiny sizes, minutes
#
# Writes under $OUT (default: runs/gpu-<time>): gpu.txt (nvidia-smi, jax.devices(), the
# library versions), peers/, precision/, adjoints/ (JSON, markdown, figures; every
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

if [ -n "$QUICK" ]; then  # seconds per part on a CPU
  T_PEERS=300; T_PREC=300; T_ADJ=300; BUDGET=0.2
  TOLS="1e-3,1e-5"; ADJ_STRATS="checkpoint,backsolve"; PREC_STRATS="checkpoint,backsolve"
  WLS="toy,spiral"
else  # about 8 minutes in all on one GPU (compilation dominates)
  T_PEERS=170; T_PREC=170; T_ADJ=130; BUDGET=1.0
  TOLS="1e-3,1e-5,1e-7"; ADJ_STRATS="checkpoint,backsolve,backsolve-seminorm,checked"
  PREC_STRATS="checkpoint,backsolve,checked"
  WLS="toy,mlp,cnf,conv,spiral"
fi

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
part() {  # part NAME SECONDS ARGS...: one experiment, time-boxed, logged
  local name=$1 secs=$2
  shift 2
  echo "== $name (at most $secs s): odezoo bench $*" | tee -a "$LOG"
  local t0=$SECONDS
  timeout --signal=INT "$secs" "$PY" -m odezoo.bench "$@" --out "$OUT/$name" --force \
    >> "$LOG" 2>&1
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$LOG"
  [ $rc -eq 0 ] || status=1
}

part peers "$T_PEERS" peers $QUICK --workloads "$WLS" --budget "$BUDGET"
part precision "$T_PREC" precision $QUICK --workloads "$WLS" --strategies "$PREC_STRATS" \
  --tolerances "$TOLS" --budget "$BUDGET"
part adjoints "$T_ADJ" adjoints $QUICK --workloads "$WLS" --strategies "$ADJ_STRATS" \
  --budget "$BUDGET" --no-count
echo "results in $OUT (exit $status)"
exit $status
