"""Benchmark odezoo's adjoint strategies on your own model: time, memory, NFE and
gradient accuracy of one training step per strategy.

`benchmark_adjoints` measures any odezoo model with an ODE, a batch and a loss, and
`entry_problem` gives a zoo entry's (or run directory's) model, a batch of its own data
and its loss; on the command line, `odezoo bench adjoints --entry NAME` (or
`python -m odezoo.bench adjoints --entry NAME`) does both:

```python
import tempfile
import jax, jax.numpy as jnp, odezoo
from odezoo import bench

model = odezoo.ODENet(2, key=jax.random.key(0))
x = jnp.ones((4, 2))
result = bench.benchmark_adjoints(
    model, (x, 0.5 * x), "mse", strategies=["checkpoint"], budget_s=0.0, min_reps=1,
    max_reps=1, count=False,
)
bench.write_report("adjoints", result, tempfile.mkdtemp())   # adjoints.json, adjoints.md
```

The public surface is what a user calls: `benchmark_adjoints` and `entry_problem`, the
strategies (`strategies`, `Strategy`) and the report (`write_report`; the machine it
records is `odezoo.internal.environment`).
The measuring tools live in the private modules. The benchmarks of the built-in
workloads (scaling, gradient accuracy, the comparison with torchdiffeq, torchode and
`jax.experimental.ode`, the work-precision diagrams) are scripts run from a checkout,
`python benchmarks/run.py`, built on these tools; the installed package never imports
PyTorch. The measured numbers are summarised in `docs/benchmarks.md`. Nothing is
imported until first use (no JAX for `odezoo --help`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports, type_checking_exports

if TYPE_CHECKING:  # the lazy exports, imported on first use (read by type_checking_exports)
    from ._report import write_report as write_report
    from ._strategies import Strategy as Strategy
    from ._strategies import strategies as strategies
    from ._user import benchmark_adjoints as benchmark_adjoints
    from ._user import entry_problem as entry_problem

_EXPORTS = type_checking_exports(__file__)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
