"""Why jax.experimental.ode's CNF gradient is inaccurate (issue 12): its loss and
gradient on the benchmark's exact-trace CNF workload against odezoo's float64
reference (Dopri5 at rtol = atol = 1e-10, checkpointed), in float64 and float32 at
several tolerances, next to odezoo's own. Agreement at 1e-10 shows both solve the same
problem; the errors at looser tolerances are then each solver's own.

    python benchmarks/jax_ode_cnf_accuracy.py

Prints one line per solve (results in benchmarks/results/speed_leads/jax_ode_cnf_accuracy.txt).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp

from odezoo.bench._measure import make_optimizer, relative_error

from _harness.measure import reference_gradient, train_step
from _harness.peers import jax_ode_step
from _harness.workloads import workloads


def jax_ode(wl, weights, dtype):
    step, args = jax_ode_step(wl, weights, dtype=dtype)
    out = eqx.filter_jit(step)(*args)
    return float(out[2]), out[3]


def odezoo_float32(wl, weights, dtype):
    step, args = train_step(wl, wl.build(weights, wl.solver()), make_optimizer())
    out = eqx.filter_jit(step)(*args)
    return float(out[2]), out[3]


def odezoo_float64(wl, weights, dtype):
    loss, grad, _ = reference_gradient(wl, weights, tol=wl.rtol)
    return loss, grad


def main():
    wl = workloads()["cnf"]
    weights = wl.weights()
    _, ref, _ = reference_gradient(wl, weights, tol=1e-10)
    runs = [
        ("jode", jax_ode, jnp.float64, 1e-10),
        ("jode", jax_ode, jnp.float64, 1e-5),
        ("jode", jax_ode, jnp.float32, 1e-5),
        ("jode", jax_ode, jnp.float64, 1e-7),
        ("odezoo", odezoo_float64, jnp.float64, 1e-5),
        ("odezoo", odezoo_float32, jnp.float32, 1e-5),
        ("odezoo", odezoo_float64, jnp.float64, 1e-7),
    ]
    for name, solve, dtype, tol in runs:
        at = dataclasses.replace(wl, rtol=tol, atol=tol)
        with jax.enable_x64(dtype == jnp.float64):
            value, grad = solve(at, weights, dtype)
        error = relative_error(grad, ref)
        print(name, dtype.__name__, tol, "loss", value, f"err vs odezoo f64 1e-10: {error:.2e}")


if __name__ == "__main__":
    main()
