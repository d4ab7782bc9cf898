"""Run odezoo's benchmarks: a thin wrapper around `python -m odezoo.bench`.

Examples:

    python benchmarks/run.py adjoints --quick          # checks the harness in minutes
    python benchmarks/run.py all --out benchmarks/results --force   # refresh the committed results
    python benchmarks/run.py peers --workloads mlp,conv

Everything lives in `odezoo.bench` (src/odezoo/bench/); see docs/benchmarks.md.
"""

import sys

from odezoo.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
