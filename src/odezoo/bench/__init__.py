"""Benchmarks of odezoo's adjoint strategies: time, memory, NFE and gradient accuracy;
scaling with the number of solver steps; and a comparison with torchdiffeq and
`jax.experimental.ode` on the same weights.

Run from the command line (`python -m odezoo.bench adjoints --quick`, or
`odezoo bench ...`), or from Python:

```python
from odezoo import bench

wls = bench.workloads(quick=True)
result = bench.run_adjoints([wls["toy"]], [bench.strategies()["checkpoint"]])
```

Results (JSON, markdown tables, plots) go to `benchmarks/results/`; the measured numbers
are summarised in `docs/benchmarks.md`.
"""

from ._accuracy import run_accuracy as run_accuracy
from ._adjoints import prepare_pair as prepare_pair
from ._adjoints import run_adjoints as run_adjoints
from ._cli import add_parser as add_parser
from ._cli import main as main
from ._measure import Memory as Memory
from ._measure import Timing as Timing
from ._measure import compile_fn as compile_fn
from ._measure import count_nfe as count_nfe
from ._measure import interleaved_timing as interleaved_timing
from ._measure import memory_of as memory_of
from ._measure import reference_gradient as reference_gradient
from ._measure import relative_error as relative_error
from ._measure import time_compiled as time_compiled
from ._measure import train_step as train_step
from ._peers import run_peers as run_peers
from ._peers import torch_euler_check as torch_euler_check
from ._report import environment as environment
from ._report import write_report as write_report
from ._scaling import run_scaling as run_scaling
from ._scaling import scaling_strategies as scaling_strategies
from ._scaling import scaling_workload as scaling_workload
from ._strategies import Strategy as Strategy
from ._strategies import strategies as strategies
from ._workloads import Workload as Workload
from ._workloads import workloads as workloads
