import os

# The suite is dominated by XLA compiling many small solves (half of a gradient test's
# time is in `backend_compile`), not by running them. LLVM at -O0 compiles them faster, so
# the whole suite runs faster on a 2-core machine like CI's (its times with and without:
# `git log -S xla_backend_optimization_level -- tests/conftest.py`; no results file). It
# changes the generated code's speed, not what it computes; set XLA_FLAGS to override.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

import sys
from pathlib import Path

import jax
import pytest

# The benchmark harness of the built-in workloads lives in the checkout, not the package
# (benchmarks/_harness, run as `python benchmarks/run.py`): its tests import it from there,
# as the scripts next to it do.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

# Strict dtype promotion: mixing dtypes (a float32 array with a float64 one, an int array
# with a float array) raises instead of silently promoting, so a model cannot quietly
# compute in another precision than asked; Python scalars still combine with arrays (weak
# types). The one exception is optax's own update (train/_step.py says why).
# ODEZOO_STRICT_DTYPES=0 runs the suite with JAX's standard promotion instead.
if os.environ.get("ODEZOO_STRICT_DTYPES", "1") != "0":
    jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def x64():
    """Run a test in float64 (for finite-difference and closed-form comparisons)."""
    with jax.enable_x64(True):
        yield


# The heaviest files first: with `--dist loadfile` each file runs on one worker, in the
# order collected, so a heavy file collected last would leave the other worker idle at
# the end (the longest-first rule keeps the two workers' loads within one small file).
_HEAVY_FIRST = [
    "test_series.py",
    "test_docs.py",
    "test_bench.py",
    "test_models.py",
    "test_solver.py",
    "test_regularisation.py",
    "test_train.py",
]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
