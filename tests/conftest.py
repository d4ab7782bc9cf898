import os

# The suite is dominated by XLA compiling many small solves (half of a gradient test's
# time is in `backend_compile`), not by running them. LLVM at -O0 compiles them faster:
# 8 min 51 s -> 6 min 29 s for the whole suite on a 2-core machine like CI's. It changes the
# generated code's speed, not what it computes; set XLA_FLAGS yourself to override.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

import jax
import pytest


@pytest.fixture
def x64():
    """Run a test in float64 (for finite-difference and closed-form comparisons)."""
    with jax.enable_x64(True):
        yield
