"""Measurements of a built-in workload's training step (the package's
`odezoo.bench._measure` measures any model's): fixed-repetition timing, the training
step, NFE and the float64 reference gradient of a `Workload`."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from odezoo._solver import Solver
from odezoo.bench._measure import count_loss_nfe, flat_gradient, loss_train_step

from .workloads import Workload


@dataclasses.dataclass
class Timing:
    """Wall-clock timing of a compiled function.

    Fields:

    - `compile_s`: seconds to trace, lower and compile (`jax.jit(f).lower(...).compile()`).
    - `first_call_s`: seconds of the first call of the compiled function.
    - `median_ms`: median milliseconds per call over `reps` calls after warm-up.
    - `min_ms`, `p25_ms`, `p75_ms`: the fastest call and the quartiles.
    - `reps`: calls timed.
    """

    compile_s: float
    first_call_s: float
    median_ms: float
    min_ms: float
    p25_ms: float
    p75_ms: float
    reps: int


def time_compiled(
    compiled: Callable,
    args: tuple,
    *,
    compile_s: float = float("nan"),
    warmup: int = 2,
    min_reps: int = 5,
    max_reps: int = 50,
    budget_s: float = 5.0,
) -> Timing:
    """Time a compiled function: one first call, `warmup` calls, then as many timed
    calls as fit in `budget_s` (between `min_reps` and `max_reps`); every call blocks
    until its result is ready. All calls get the same `args`, so the work (e.g. the
    number of solver steps) is the same in each."""
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    first = time.perf_counter() - t0
    est = first
    for _ in range(warmup):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        est = time.perf_counter() - t0
    reps = int(min(max_reps, max(min_reps, budget_s / max(est, 1e-6))))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append((time.perf_counter() - t0) * 1e3)
    q = np.percentile(times, [25, 75])
    return Timing(
        compile_s=compile_s,
        first_call_s=first,
        median_ms=statistics.median(times),
        min_ms=min(times),
        p25_ms=float(q[0]),
        p75_ms=float(q[1]),
        reps=reps,
    )


def train_step(
    workload: Workload, model: eqx.Module, optimizer: optax.GradientTransformation
) -> tuple[Callable, tuple]:
    """A training step of `workload` and its arguments; see `loss_train_step`."""
    data = {k: jnp.asarray(v) for k, v in workload.data().items()}
    return loss_train_step(workload.loss, model, data, optimizer)


def count_nfe(workload: Workload, weights: dict[str, np.ndarray], solver: Solver) -> dict[str, int]:
    """Evaluations of the vector field in one loss-and-gradient computation of
    `workload`; see `count_loss_nfe`."""
    model = workload.build(weights, solver.replace(count_evals=True))
    data = {k: jnp.asarray(v) for k, v in workload.data().items()}
    return count_loss_nfe(workload.loss, model, data)


def reference_gradient(
    workload: Workload,
    weights: dict[str, np.ndarray],
    tol: float = 1e-10,
    max_steps: int = 100_000,
) -> tuple[float, np.ndarray, int]:
    """The float64 reference: loss and parameter gradient with the same weights cast to
    float64, Dopri5 at `rtol = atol = tol`, checkpointed adjoint (the exact gradient of a
    very accurate discretisation).

    Returns `(loss, flat gradient, steps)`.
    """
    data_np = workload.data()
    with jax.enable_x64(True):
        solver = Solver(rtol=tol, atol=tol, max_steps=max_steps)
        model = workload.build(weights, solver, dtype=jnp.float64)
        params, static = eqx.partition(model, eqx.is_array)
        data = {k: jnp.asarray(v, jnp.float64) for k, v in data_np.items()}

        @jax.jit
        def value_and_grad(p, d):
            return jax.value_and_grad(
                lambda q: workload.loss(eqx.combine(q, static), d), has_aux=True
            )(p)

        (loss, stats), grads = value_and_grad(params, data)
        return float(loss), flat_gradient(grads), int(stats.num_steps)
