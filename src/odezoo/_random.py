"""Random draws that do not depend on the floating-point dtype.

`jax.random.normal(key, shape, dtype)` draws other numbers in float64 than in float32
from the same key. A float64 check of a float32 computation (a gradient check, the
benchmarks' float64 reference) must see the same noise: Hutchinson probes, a VAE's
reparameterisation noise, a randomised end time. So every draw odezoo's models make
in their forward pass is made in float32 and cast. (An SDE's Brownian motion is
diffrax's `VirtualBrownianTree`, drawn in the state's dtype: the benchmarks give SDE
models no float64 reference for that reason.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray


def standard_normal(key: PRNGKeyArray, shape: tuple[int, ...], dtype) -> Array:
    """Standard normal samples drawn in float32 and cast to `dtype` (the same numbers
    for float32 and float64, up to the cast)."""
    return jax.random.normal(key, shape, jnp.float32).astype(dtype)


def uniform(key: PRNGKeyArray, shape: tuple[int, ...], dtype, minval, maxval) -> Array:
    """Uniform samples in `[minval, maxval)` drawn in float32 and cast to `dtype`."""
    return jax.random.uniform(key, shape, jnp.float32, minval, maxval).astype(dtype)
