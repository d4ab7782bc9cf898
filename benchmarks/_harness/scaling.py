"""Scaling: memory and time of a training step as the number of solver steps grows."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import diffrax

from odezoo._solver import Solver
from odezoo.bench._measure import compile_fn, make_optimizer, memory_of
from odezoo.bench._strategies import Strategy

from .defaults import STEPS
from .measure import time_compiled, train_step
from .workloads import Workload


def scaling_workload(quick: bool = False) -> Workload:
    """The scaling experiment's workload: a small MLP ODE-Net (state 16, width 64 x 2,
    batch 64; tiny with `quick`), small enough for 4096 steps on a 2-core CPU."""
    if quick:
        return Workload("mlp-scaling", "mlp", batch=4, state=4, width=8, depth=1)
    return Workload("mlp-scaling", "mlp", batch=64, state=16, width=64, depth=2)


def scaling_strategies() -> dict[str, Strategy]:
    """Strategies compared by `run_scaling`.

    - `checkpoint`: diffrax's default checkpoint count for `max_steps`, about
      `sqrt(2 * max_steps)`, with recomputation beyond it.
    - `checkpoint-all`: one checkpoint per step (no recomputation, memory linear).
    - `backsolve`: the continuous adjoint (constant memory).
    - `direct`: `DirectAdjoint`.
    """
    out = [
        Strategy("checkpoint", {}, description="default checkpoints, ~sqrt(2 max_steps)"),
        Strategy("checkpoint-all", {}, checkpoint_factor=None, description="a checkpoint per step"),
        Strategy("backsolve", {"adjoint": "backsolve"}, description="BacksolveAdjoint"),
        Strategy("direct", {"adjoint": "direct"}, description="DirectAdjoint"),
    ]
    return {s.name: s for s in out}


def fixed_step_solver(strategy: Strategy, steps: int, span: float) -> Solver:
    """Euler with `dt0 = span / steps`, so the solve takes exactly `steps` steps, and
    `max_steps = steps` (the least that works: what a user would set to save memory)."""
    solver = Solver(solver=diffrax.Euler(), dt0=span / steps, max_steps=steps)
    solver = strategy.apply(solver)
    if strategy.name == "checkpoint-all":
        solver = solver.replace(checkpoints=steps)
    return solver


def run_scaling(
    workload: Workload,
    strategies: Iterable[Strategy],
    steps: Iterable[int] = STEPS,
    *,
    optimizer: str = "sgd",
    budget_s: float = 3.0,
    min_reps: int = 3,
    max_reps: int = 20,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Time and memory of one training step of `workload` for each strategy, as the
    number of (fixed, Euler) solver steps grows.

    Memory is XLA's compiled memory analysis (`Memory`),
    deterministic and independent of machine load. Returns
    `{"workload": ..., "steps": [...], "rows": [...]}`, a row per (steps, strategy).
    """
    weights = workload.weights()
    rows = []
    steps = [int(n) for n in steps]
    for n in steps:
        for st in strategies:
            solver = fixed_step_solver(st, n, workload.t1)
            row: dict[str, Any] = {
                "steps": n,
                "strategy": st.name,
                "checkpoints": solver.to_config()["checkpoints"],
                "max_steps": solver.max_steps,
            }
            try:
                model = workload.build(weights, solver)
                step, args = train_step(workload, model, make_optimizer(optimizer))
                compiled, compile_s = compile_fn(step, *args)
                row["memory"] = dataclasses.asdict(memory_of(compiled))
                row["timing"] = dataclasses.asdict(
                    time_compiled(
                        compiled,
                        args,
                        compile_s=compile_s,
                        budget_s=budget_s,
                        min_reps=min_reps,
                        max_reps=max_reps,
                    )
                )
                row["num_steps"] = int(compiled(*args)[4].num_steps)
                log(
                    f"[scaling] {n} steps, {st.name}: {row['timing']['median_ms']:.3g} ms, "
                    f"temp {row['memory']['temp_bytes'] / 2**20:.2f} MiB"
                )
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {e}"
                log(f"[scaling] {n} steps, {st.name}: FAILED {row['error'][:200]}")
            rows.append(row)
    return {
        "workload": {**dataclasses.asdict(workload), "description": workload.describe()},
        "solver": "Euler, dt0 = t1 / steps, max_steps = steps",
        "steps": steps,
        "rows": rows,
    }
