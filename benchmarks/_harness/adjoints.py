"""The adjoint benchmark of the built-in workloads: every (workload, strategy) pair,
measured in one run, through the package's `prepare_step` and `measure_strategies`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

import jax.numpy as jnp
import numpy as np

from odezoo.bench._adjoints import add_ratios, measure_strategies, prepare_step
from odezoo.bench._strategies import BASELINE, Strategy

from .measure import reference_gradient
from .workloads import Workload


def prepare_pair(
    workload: Workload,
    strategy: Strategy,
    weights: dict[str, np.ndarray],
    reference: np.ndarray | None,
    *,
    optimizer: str = "sgd",
    count: bool = True,
) -> tuple[dict[str, Any], Callable[[], Any]]:
    """Compile and check one training step of `workload` with `strategy`; see
    `prepare_step`."""
    solver = strategy.apply(workload.solver())
    data = {k: jnp.asarray(v) for k, v in workload.data().items()}
    counted = workload.build(weights, solver.replace(count_evals=True)) if count else None
    return prepare_step(
        workload.name,
        strategy,
        workload.build(weights, solver),
        workload.loss,
        data,
        reference,
        optimizer=optimizer,
        counted_model=counted,
    )


def run_adjoints(
    workloads: Iterable[Workload],
    strategies: Iterable[Strategy],
    *,
    optimizer: str = "sgd",
    budget_s: float = 5.0,
    min_reps: int = 5,
    max_reps: int = 50,
    count: bool = True,
    reference_tol: float = 1e-10,
    skip: Iterable[tuple[str, str]] = (),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure every (workload, strategy) pair; see `prepare_pair`.

    Per workload: the float64 reference gradient is computed once; every strategy's
    step is compiled; then all are timed in alternation
    (`interleaved_timing`, about `budget_s` seconds
    per strategy), so a change of machine load hits them alike. Each row gets `timing`
    and `ratio`, its median step time over that of `"checkpoint"` (odezoo's default) on
    the same workload. A pair that raises is recorded with its `error`; the run goes on.
    Pairs `(workload, strategy)` in `skip` are not run (recorded as skipped).

    Returns `{"workloads": {...}, "strategies": {...}, "references": {...}, "rows": [...]}`.
    """
    workloads = list(workloads)
    strategies = list(strategies)
    skip = set(map(tuple, skip))
    rows: list[dict[str, Any]] = []
    references: dict[str, Any] = {}
    for wl in workloads:
        weights = wl.weights()
        t0 = time.perf_counter()
        ref_loss, ref_grad, ref_steps = reference_gradient(wl, weights, tol=reference_tol)
        references[wl.name] = {
            "loss": ref_loss,
            "steps": ref_steps,
            "tol": reference_tol,
            "seconds": time.perf_counter() - t0,
        }
        log(f"[{wl.name}] float64 reference: loss {ref_loss:.6g}, {ref_steps} steps")
        rows += measure_strategies(
            wl.name,
            strategies,
            lambda st, wl=wl, weights=weights, ref_grad=ref_grad: prepare_pair(
                wl, st, weights, ref_grad, optimizer=optimizer, count=count
            ),
            skip={st for w, st in skip if w == wl.name},
            budget_s=budget_s,
            min_reps=min_reps,
            max_reps=max_reps,
            log=log,
        )
    add_ratios(rows, "ratio", BASELINE)
    return {
        "workloads": {
            w.name: {**dataclasses.asdict(w), "description": w.describe()} for w in workloads
        },
        "strategies": {
            s.name: {
                "changes": s.changes,
                "description": s.description,
                "checkpoint_factor": s.checkpoint_factor,
            }
            for s in strategies
        },
        "optimizer": optimizer,
        "references": references,
        "rows": rows,
    }
