"""The DiffEqFlux spiral: the neural-ODE training benchmark of DiffEqFlux.jl's
documentation ('Neural Ordinary Differential Equations' benchmark, also torchdiffeq's
`ode_demo.py`): fit the trajectory of `du/dt = (u^3)ᵀ A` with
`A = [[-0.1, 2.0], [-2.0, -0.1]]`, `u(0) = [2, 0]`, at 30 save points on `[0, 1.5]`."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from odezoo._solve import solve
from odezoo._solver import Solver

SPIRAL_A = ((-0.1, 2.0), (-2.0, -0.1))
"""The true ODE's matrix `A` (the state is a row vector: `du/dt = u**3 @ A`)."""
SPIRAL_U0 = (2.0, 0.0)
SPIRAL_T1 = 1.5
SPIRAL_POINTS = 30


def spiral_times() -> jax.Array:
    """The 30 save points on `[0, 1.5]` (the first is `t = 0`)."""
    return jnp.linspace(0.0, SPIRAL_T1, SPIRAL_POINTS)


class SpiralDynamics(eqx.Module):
    """DiffEqFlux's neural field: `Dense(2, 50, tanh) -> Dense(50, 2)` applied to `u**3`
    (no time input): `f(t, u) = W2 tanh(W1 u**3 + b1) + b2`.

    Arguments:

    - `width`: the hidden width (50 in the benchmark).
    - `key`: a JAX PRNG key.
    """

    layers: tuple[eqx.nn.Linear, eqx.nn.Linear]

    def __init__(self, width: int = 50, *, key):
        k1, k2 = jax.random.split(key)
        self.layers = (eqx.nn.Linear(2, width, key=k1), eqx.nn.Linear(width, 2, key=k2))

    def __call__(self, t, y):
        return self.layers[1](jnp.tanh(self.layers[0](y**3)))


def true_spiral(tol: float = 1e-12) -> np.ndarray:
    """The true trajectory at the save points, shape `(30, 2)`: a float64 Tsit5 solve of
    the true ODE at `rtol = atol = tol` (float32 result)."""
    import diffrax

    with jax.enable_x64(True):
        a = jnp.asarray(SPIRAL_A, jnp.float64)
        solver = Solver(solver=diffrax.Tsit5(), rtol=tol, atol=tol, max_steps=1_000_000)
        ys, stats = solve(
            solver,
            lambda t, y, args: (y**3) @ a,
            jnp.asarray(SPIRAL_U0, jnp.float64),
            t0=0.0,
            t1=SPIRAL_T1,
            ts=jnp.asarray(spiral_times(), jnp.float64),
        )
        if int(stats.failed):  # pragma: no cover - a fixed, smooth problem
            raise RuntimeError("the reference solve of the true spiral failed")
        return np.asarray(ys, np.float32)
