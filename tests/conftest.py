import jax
import pytest


@pytest.fixture
def x64():
    """Run a test in float64 (for finite-difference and closed-form comparisons)."""
    with jax.enable_x64(True):
        yield
