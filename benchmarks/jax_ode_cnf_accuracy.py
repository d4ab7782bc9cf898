"""Why jax.experimental.ode's CNF gradient is inaccurate (issue 12): its loss and
gradient on the benchmark's exact-trace CNF workload against odezoo's float64
reference (Dopri5 at rtol = atol = 1e-10, checkpointed), in float64 and float32 at
several tolerances, next to odezoo's own. Agreement at 1e-10 shows both solve the same
problem; the errors at looser tolerances are then each solver's own.

    python benchmarks/jax_ode_cnf_accuracy.py

Prints one line per solve (results in benchmarks/results/speed_leads/jax_ode_cnf_accuracy.txt).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.ode import odeint

from odezoo.bench._workloads import workloads

jax.config.update("jax_enable_x64", True)
wl = workloads()["cnf"]
w = wl.weights()


def grads_jode(dtype, tol):
    model = wl.build(w, dtype=dtype)
    x = jnp.asarray(wl.data()["x"], dtype)
    field, y0, t0, t1, _ = model.ode(x)
    p, static = eqx.partition(field, eqx.is_array)

    def loss(p):
        func = lambda y, t, q: jax.vmap(lambda yi: eqx.combine(q, static)(t, yi, None))(y)
        ys = odeint(func, y0, jnp.array([t0, t1], dtype), p, rtol=tol, atol=tol)
        y1 = jax.tree_util.tree_map(lambda v: v[-1], ys)
        return -jnp.mean(wl.cnf_log_prob(y1[0], y1[1]))

    value, g = jax.jit(jax.value_and_grad(loss))(p)
    return float(value), np.concatenate(
        [np.ravel(np.asarray(v, np.float64)) for v in jax.tree_util.tree_leaves(g)]
    )


def grads_odezoo(dtype, tol):
    s = wl.solver(rtol=tol, atol=tol)
    model = wl.build(w, s, dtype=dtype)
    x = jnp.asarray(wl.data()["x"], dtype)
    p, static = eqx.partition(model, eqx.is_array)
    nll = lambda q: -jnp.mean(eqx.combine(q, static).apply(x)[0])
    value, g = jax.jit(jax.value_and_grad(nll))(p)
    g = g.fields[0]
    return float(value), np.concatenate(
        [np.ravel(np.asarray(v, np.float64)) for v in jax.tree_util.tree_leaves(g)]
    )


ref_l, ref = grads_odezoo(jnp.float64, 1e-10)
e = lambda g: np.linalg.norm(g - ref) / np.linalg.norm(ref)
for name, fn in (("jode", grads_jode), ("odezoo", grads_odezoo)):
    for dt, tol in (
        (jnp.float64, 1e-10),
        (jnp.float64, 1e-5),
        (jnp.float32, 1e-5),
        (jnp.float64, 1e-7),
    ):
        value, g = fn(dt, tol)
        print(name, dt.__name__, tol, "loss", value, "err vs odezoo f64 1e-10:", f"{e(g):.2e}")
