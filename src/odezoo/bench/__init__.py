"""Benchmarks of odezoo's adjoint strategies: time, memory, NFE and gradient accuracy;
scaling with the number of solver steps; and a comparison with torchdiffeq and
`jax.experimental.ode` on the same weights.

Run from the command line (`odezoo bench adjoints --quick --out DIR`, or
`python -m odezoo.bench ...`), or from Python:

```python
import tempfile
from odezoo import bench

wls = bench.workloads(quick=True)
result = bench.run_adjoints(
    [wls["toy"]], [bench.strategies()["checkpoint"]], budget_s=0.0, min_reps=1, max_reps=1,
    count=False,
)
bench.write_report("adjoints", result, tempfile.mkdtemp())
```

Benchmark your own model (any odezoo model with an ODE, a batch and a loss) with
`benchmark_adjoints`, or a zoo entry with its own data and loss with `entry_problem`
(`odezoo bench adjoints --entry NAME` on the command line).

The public surface is what a user calls: the five experiments (`run_adjoints`,
`run_scaling`, `run_peers`, `run_accuracy`, and `run_precision` for work-precision
diagrams), their inputs (`workloads`, `strategies`,
`scaling_workload`, `scaling_strategies` and the `Workload`/`Strategy` classes), the
report (`write_report`, `environment`) and the command line (`main`). The measuring
tools live in the private modules. The measured numbers are summarised in
`docs/benchmarks.md`. Nothing is imported until first use (no JAX for `odezoo --help`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from ._cli import main as main

if TYPE_CHECKING:  # the lazy exports below, spelled out for type checkers and the docs
    from ._accuracy import run_accuracy as run_accuracy
    from ._adjoints import run_adjoints as run_adjoints
    from ._peers import run_peers as run_peers
    from ._precision import run_precision as run_precision
    from ._report import environment as environment
    from ._report import write_report as write_report
    from ._scaling import run_scaling as run_scaling
    from ._scaling import scaling_strategies as scaling_strategies
    from ._scaling import scaling_workload as scaling_workload
    from ._strategies import Strategy as Strategy
    from ._strategies import strategies as strategies
    from ._user import benchmark_adjoints as benchmark_adjoints
    from ._user import entry_problem as entry_problem
    from ._workloads import Workload as Workload
    from ._workloads import workloads as workloads

_EXPORTS = {
    "run_accuracy": "._accuracy",
    "run_adjoints": "._adjoints",
    "run_peers": "._peers",
    "run_precision": "._precision",
    "environment": "._report",
    "write_report": "._report",
    "run_scaling": "._scaling",
    "scaling_strategies": "._scaling",
    "scaling_workload": "._scaling",
    "Strategy": "._strategies",
    "strategies": "._strategies",
    "Workload": "._workloads",
    "workloads": "._workloads",
    "benchmark_adjoints": "._user",
    "entry_problem": "._user",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
