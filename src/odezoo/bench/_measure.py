"""Measurements of one training step: time, memory, NFE and gradient error."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import numpy as np
import optax

from .._counting import count_evaluations
from .._errors import InputError


@dataclasses.dataclass
class Memory:
    """Memory of a compiled function.

    On every platform, from XLA's compiled memory analysis, which is deterministic:
    `temp_bytes` (scratch buffers: activations, checkpoints, solver state),
    `argument_bytes`, `output_bytes` and `peak_bytes` (XLA's estimate of the peak of
    all live buffers, `None` where the backend does not report it). On a GPU,
    `device_peak_bytes` is the device's `peak_bytes_in_use` after the runs (cumulative
    over the process, so an upper bound); `None` elsewhere.
    """

    temp_bytes: int
    argument_bytes: int
    output_bytes: int
    peak_bytes: int | None
    device_peak_bytes: int | None = None


def compile_fn(fn: Callable, *args) -> tuple[Any, float]:
    """`(compiled, seconds)`: `jax.jit(fn)` lowered and compiled for `args`."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def memory_of(compiled) -> Memory:
    """The `Memory` of a compiled function (no run needed, except
    for the GPU's device statistics)."""
    ma = compiled.memory_analysis()
    peak = getattr(ma, "peak_memory_in_bytes", None)
    device_peak = None
    dev = jax.devices()[0]
    if dev.platform == "gpu":  # pragma: no cover - no GPU in CI
        stats = dev.memory_stats() or {}
        device_peak = stats.get("peak_bytes_in_use")
    return Memory(
        temp_bytes=int(ma.temp_size_in_bytes),
        argument_bytes=int(ma.argument_size_in_bytes),
        output_bytes=int(ma.output_size_in_bytes),
        peak_bytes=None if peak is None else int(peak),
        device_peak_bytes=device_peak,
    )


def interleaved_timing(
    contenders: dict[str, Callable[[], Any]],
    *,
    warmup: int = 2,
    rounds: int | None = None,
    budget_s: float = 20.0,
    min_rounds: int = 5,
    max_rounds: int = 50,
) -> dict[str, dict[str, float]]:
    """Time several callables in alternation (one call of each per round), so that a
    change of machine load hits all of them alike; each call must block until done.

    Returns `{name: {"median_ms", "min_ms", "p25_ms", "p75_ms", "rounds"}}`.
    """
    per_call = {}
    for name, fn in contenders.items():
        for _ in range(warmup):
            t0 = time.perf_counter()
            fn()
            per_call[name] = time.perf_counter() - t0
    if rounds is None:
        total = sum(per_call.values()) or 1e-6
        rounds = int(min(max_rounds, max(min_rounds, budget_s / total)))
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds):
        names = list(contenders)
        if r % 2:
            names.reverse()
        for name in names:
            t0 = time.perf_counter()
            contenders[name]()
            times[name].append((time.perf_counter() - t0) * 1e3)
    out = {}
    for name, ts in times.items():
        q = np.percentile(ts, [25, 50, 75])
        out[name] = {
            "median_ms": float(q[1]),
            "min_ms": float(min(ts)),
            "p25_ms": float(q[0]),
            "p75_ms": float(q[2]),
            "rounds": rounds,
        }
    return out


# -- training step ----------------------------------------------------------------------


def loss_train_step(
    loss: Callable, model: eqx.Module, data: Any, optimizer: optax.GradientTransformation
) -> tuple[Callable, tuple]:
    """A training step and its arguments: `step(params, opt_state, data)` computes
    `loss(model, data) -> (scalar, stats)`, its gradient and the optimizer update.

    Returns `(step, (params, opt_state, data))`; `step` returns
    `(new_params, new_opt_state, loss, grads, stats)` and is meant to be jitted
    (see `compile_fn`). The gradient is returned too, so the
    timed step also gives the gradient whose error is reported.
    """
    params, static = eqx.partition(model, eqx.is_array)

    def step(params, opt_state, data):
        def loss_fn(p):
            return loss(eqx.combine(p, static), data)

        (value, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value, grads, stats

    return step, (params, optimizer.init(params), data)


def make_optimizer(name: str = "sgd", learning_rate: float = 1e-3):
    """`optax.sgd` or `optax.adam` at `learning_rate`."""
    if name == "sgd":
        return optax.sgd(learning_rate)
    if name == "adam":
        return optax.adam(learning_rate)
    raise InputError(f"unknown optimizer {name!r}; choose 'sgd' or 'adam'")


# -- NFE ------------------------------------------------------------------------------


def count_loss_nfe(loss: Callable, model: eqx.Module, data: Any) -> dict[str, int]:
    """Evaluations of the vector field in one computation of `loss(model, data)` and its
    gradient, counted by [`count_evaluations`][odezoo.count_evaluations] in a separate
    run (the counting callbacks are slow, so never in a timed run). `model`'s solvers
    must have `count_evals=True`.

    Returns `{"total_evals": ..., "vjps": ...}`: every evaluation of `f` (forward solve,
    recomputation and reverse solves, and the reconstruction check of `"checked"`) and
    every vector-Jacobian product of `f`. With `batching="vmap"` one evaluation of the
    vectorised loop counts once.
    """
    params, static = eqx.partition(model, eqx.is_array)
    grad = jax.jit(jax.grad(lambda p, d: loss(eqx.combine(p, static), d)[0]))
    compiled = grad.lower(params, data).compile()
    with count_evaluations() as n:
        jax.block_until_ready(compiled(params, data))
    return {"total_evals": n.forward, "vjps": n.vjp}


# -- gradient error ---------------------------------------------------------------------


def flat_gradient(grads) -> np.ndarray:
    """All leaves of a gradient pytree (`None`s dropped) as one float64 NumPy vector."""
    leaves = [np.ravel(np.asarray(g, np.float64)) for g in jax.tree_util.tree_leaves(grads)]
    return np.concatenate(leaves) if leaves else np.zeros(0)


def relative_error(grad, reference) -> float:
    """Relative L2 error `|g - g_ref| / |g_ref|` of two gradient pytrees or vectors."""
    g = flat_gradient(grad) if not isinstance(grad, np.ndarray) else grad.astype(np.float64)
    r = flat_gradient(reference) if not isinstance(reference, np.ndarray) else reference
    if g.shape != r.shape:
        raise InputError(f"gradient sizes differ: {g.shape} vs {r.shape}")
    denom = np.linalg.norm(r)
    if denom == 0:
        return float(np.linalg.norm(g))
    return float(np.linalg.norm(g - r) / denom)


def loss_reference_gradient(loss: Callable, model: eqx.Module, data: Any) -> tuple[float, Any]:
    """`(loss, gradient pytree, stats)` of `loss(model, data)`, compiled once: the
    reference computation, for a float64 `model` at a tight tolerance (call it inside
    `jax.enable_x64(True)`)."""
    params, static = eqx.partition(model, eqx.is_array)

    @jax.jit
    def value_and_grad(p, d):
        return jax.value_and_grad(lambda q: loss(eqx.combine(q, static), d), has_aux=True)(p)

    (value, stats), grads = value_and_grad(params, data)
    return float(value), grads, stats
