"""The initial step of an adaptive solve, chosen by odezoo (diffrax's own selection
does not run: see `initial_step`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

if TYPE_CHECKING:
    from ._solver import Solver

# Evaluations of the field by `initial_step`, made without gradient.
INITIAL_STEP_EVALS = 2


def initial_step(solver: Solver, field, y0, args, t0, t1, controlled=None) -> Array:
    """The initial step of Hairer, Nørsett and Wanner (Solving ODEs I, sec. II.4), as
    torchdiffeq and diffrax's `PIDController` define it: two evaluations of `field`.

    odezoo computes it itself because diffrax 0.7 wraps the terms before its controller
    sees them, so its own selection never runs and every adaptive solve starts at
    `dt0 = 0.01`, growing at most 10x a step: one or two wasted steps per solve
    (the `checkpoint-unfixed` rows of benchmarks/results/adjoints.md). No gradient flows
    through it.
    `controlled` picks the part of the state that controls the steps (as in `solve`).
    """
    order = solver.solver.error_order(diffrax.ODETerm(field))
    dynamic, static = eqx.partition((field, y0, args), eqx.is_array)
    field, y0, args = eqx.combine(jax.lax.stop_gradient(dynamic), static)
    leaves = jax.tree_util.tree_leaves(y0)
    dtype = jnp.result_type(*leaves) if leaves else jnp.float32
    direction = jnp.where(jnp.asarray(t1) >= jnp.asarray(t0), 1.0, -1.0).astype(dtype)
    part = (lambda tree: tree) if controlled is None else controlled
    scale = jax.tree_util.tree_map(lambda v: solver.atol + solver.rtol * jnp.abs(v), part(y0))
    scaled = lambda x: rms(jax.tree_util.tree_map(lambda a, b: a / b, part(x), scale))
    f0 = field(t0, y0, args)
    d0, d1 = scaled(y0), scaled(f0)
    h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / jnp.where(d1 > 0, d1, 1.0))
    y1 = jax.tree_util.tree_map(lambda a, b: a + direction * h0 * b, y0, f0)
    f1 = field(t0 + direction * h0, y1, args)
    d2 = scaled(jax.tree_util.tree_map(jnp.subtract, f1, f0)) / h0
    max_d = jnp.maximum(d1, d2)
    h1 = jnp.where(
        max_d <= 1e-15,
        jnp.maximum(1e-6, h0 * 1e-3),
        (0.01 / jnp.where(max_d > 0, max_d, 1.0)) ** (1.0 / order),
    )
    return jax.lax.stop_gradient(direction * jnp.minimum(100 * h0, h1))


def rms(x: PyTree) -> Array:
    """The root mean square of every element of `x`'s leaves."""
    leaves = [jnp.ravel(v) for v in jax.tree_util.tree_leaves(x)]
    flat = jnp.concatenate(leaves)
    return jnp.sqrt(jnp.mean(flat**2))
