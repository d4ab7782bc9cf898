"""Run odezoo's benchmarks of the built-in workloads, from a checkout.

Examples:

    python benchmarks/run.py adjoints --quick          # checks the harness in minutes
    python benchmarks/run.py all --out benchmarks/results --force   # refresh the committed results
    python benchmarks/run.py peers --workloads mlp,conv --torch-threads 1

The harness lives in `benchmarks/_harness/` (`python benchmarks/run.py --help`); a zoo
entry's or your own model's adjoints are the package's (`odezoo bench adjoints --entry
NAME`, `odezoo.bench.benchmark_adjoints`). See docs/benchmarks.md.
"""

import sys

from _harness.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
