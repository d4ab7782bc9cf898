"""The adjoint benchmark of one problem: each strategy's training step prepared, checked
and timed in alternation (`benchmark_adjoints` on a user's model; the built-in
workloads' `run_adjoints` is in `benchmarks/_harness/adjoints.py`)."""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import equinox as eqx
import jax
import numpy as np

from .._adjoint import AbstractAdjoint, AutoAdjoint
from ..train._tolerance import solver_of, swap_solvers
from ._measure import (
    compile_fn,
    count_loss_nfe,
    interleaved_timing,
    loss_train_step,
    make_optimizer,
    memory_of,
    relative_error,
)
from ._strategies import BASELINE, Strategy


def prepare_step(
    name: str,
    strategy: Strategy,
    model: eqx.Module,
    loss: Callable,
    data: Any,
    reference: np.ndarray | None,
    *,
    optimizer: str = "sgd",
    counted_model: eqx.Module | None = None,
) -> tuple[dict[str, Any], Callable[[], Any]]:
    """Compile and check one training step: `loss(model, data) -> (scalar, SolveStats)`,
    its gradient and an optimizer update, `model` carrying `strategy`'s solver.

    Returns `(row, run)`: `run()` calls the compiled step once and blocks (time it with
    `interleaved_timing`), and `row` is a JSON-able
    dict: `loss`; `compile_s` and `first_call_s`; `memory` (XLA's compiled memory
    analysis, see `Memory`); `nfe` (`forward` and `steps` from
    the solve's statistics, `backward_evals` and `backward_vjps` from a separate counted
    run of `counted_model` (the same model with `count_evals=True`), when given;
    `backward_evals` is every evaluation of `f` beyond the forward solve:
    recomputation, reverse solves, reconstruction checks); `grad_error` (relative L2
    error against `reference`); `fell_back` and `reversibility_error` (the checked
    adjoint's decision).

    A model whose solver has `adjoint="auto"` is measured as `fit` trains it: see
    `prepare_auto`.
    """
    solver = solver_of(model)
    if isinstance(solver.adjoint, AutoAdjoint):
        return prepare_auto(
            name,
            strategy,
            model,
            loss,
            data,
            reference,
            optimizer=optimizer,
            counted_model=counted_model,
        )
    step, args = loss_train_step(loss, model, data, make_optimizer(optimizer))
    compiled, compile_s = compile_fn(step, *args)
    memory = memory_of(compiled)
    t0 = time.perf_counter()
    _, _, value, grads, stats = jax.block_until_ready(compiled(*args))
    first_call_s = time.perf_counter() - t0
    stats = stats.to_dict()
    nfe: dict[str, Any] = {"forward": stats["nfe"], "steps": stats["num_steps"]}
    if counted_model is not None:
        counted = count_loss_nfe(loss, counted_model, data)
        nfe["backward_evals"] = counted["total_evals"] - stats["nfe"]
        nfe["backward_vjps"] = counted["vjps"]
    row = {
        "workload": name,
        "strategy": strategy.name,
        "adjoint": strategy.adjoint,
        "batching": strategy.batching,
        "solver": solver.describe(),
        "checkpoints": solver.to_config()["checkpoints"],
        "loss": float(value),
        "compile_s": compile_s,
        "first_call_s": first_call_s,
        "memory": dataclasses.asdict(memory),
        "nfe": nfe,
        "grad_error": None if reference is None else relative_error(grads, reference),
        "fell_back": stats["fell_back"],
        "reversibility_error": stats["reversibility_error"],
        "failed": stats["failed"],
    }
    return row, lambda: jax.block_until_ready(compiled(*args))


def _with_adjoint(tree, adjoint: AbstractAdjoint):
    return None if tree is None else swap_solvers(tree, {"adjoint": adjoint})


def prepare_auto(
    name: str,
    strategy: Strategy,
    model: eqx.Module,
    loss: Callable,
    data: Any,
    reference: np.ndarray | None,
    *,
    optimizer: str = "sgd",
    counted_model: eqx.Module | None = None,
) -> tuple[dict[str, Any], Callable[[], Any]]:
    """`prepare_step` for a model whose solver has `adjoint="auto"`: what `fit` runs,
    a block of `check_every` training steps, the first with `"checked"`, the others with
    the adjoint that check chose (`"backsolve"` if it passed, `"checkpoint"` if it fell
    back; read from each block's check, as `fit` reads it).

    `run()` runs one block (time it; the row's `steps_per_call` is `check_every`, by
    which `measure_strategies` divides its times). The row is that of the chosen
    adjoint's step (its `grad_error`: the gradient of the steps between checks), with
    `chosen_adjoint`, `check_every`, the check's `fell_back`, `reversibility_error` and
    gradient error (`check_grad_error`), NFE per step averaged over the block, the
    compile times of both steps added up and the larger of their memories.
    """
    solver = solver_of(model)
    auto = solver.adjoint
    every = auto.check_every
    variant = lambda adjoint: prepare_step(
        name,
        strategy,
        _with_adjoint(model, adjoint),
        loss,
        data,
        reference,
        optimizer=optimizer,
        counted_model=_with_adjoint(counted_model, adjoint),
    )
    check_row, check_run = variant(auto.check)
    chosen = auto.choice(check_row["fell_back"]).name
    rows, runs = {}, {}
    rows[chosen], runs[chosen] = variant(auto.choices[chosen])

    def block():
        out = check_run()
        adjoint = auto.choice(int(out[-1].fell_back)).name
        if adjoint not in runs:  # the check decided otherwise than at preparation
            rows[adjoint], runs[adjoint] = variant(auto.choices[adjoint])
        for _ in range(every - 1):
            out = runs[adjoint]()
        return out

    row = dict(rows[chosen])
    per_step = lambda a, b: (
        None if a is None or b is None else round((a + (every - 1) * b) / every, 1)
    )
    row["nfe"] = {k: per_step(check_row["nfe"].get(k), v) for k, v in row["nfe"].items()}
    row["memory"] = {
        k: None if v is None else max(v, check_row["memory"][k] or 0)
        for k, v in row["memory"].items()
    }
    row.update(
        adjoint="auto",
        solver=solver.describe(),
        chosen_adjoint=chosen,
        check_every=every,
        steps_per_call=every,
        compile_s=row["compile_s"] + check_row["compile_s"],
        first_call_s=row["first_call_s"] + check_row["first_call_s"],
        fell_back=check_row["fell_back"],
        reversibility_error=check_row["reversibility_error"],
        check_grad_error=check_row["grad_error"],
    )
    return row, block


def measure_strategies(
    name: str,
    strategies: Iterable[Strategy],
    prepare: Callable[[Strategy], tuple[dict[str, Any], Callable[[], Any]]],
    *,
    skip: Iterable[str] = (),
    budget_s: float = 5.0,
    min_reps: int = 5,
    max_reps: int = 50,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """The rows of one problem `name`: `prepare(strategy) -> (row, run)` for each strategy
    (see `prepare_step`), then all `run`s timed in alternation (`interleaved_timing`,
    about `budget_s` seconds per strategy), so that a change of machine load hits them
    alike. A strategy that raises is recorded with its `error`; the others go on.
    Strategies named in `skip` are recorded as skipped. A row with `steps_per_call`
    (`"auto"`: one call is a block of steps) has its times divided by it: ms per step."""
    skip = set(skip)
    rows, runs = [], {}
    for st in strategies:
        base = {"workload": name, "strategy": st.name, "adjoint": st.adjoint}
        base["batching"] = st.batching
        if st.name in skip:
            rows.append({**base, "skipped": "skipped by request (--skip)"})
            continue
        try:
            row, runs[st.name] = prepare(st)
        except Exception as e:  # record and go on: one failure must not lose the run
            row = {
                **base,
                "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(limit=3),
            }
            log(f"[{name}] {st.name}: FAILED {row['error'][:200]}")
        else:
            err = row["grad_error"]
            log(
                f"[{name}] {st.name}: compiled in {row['compile_s']:.1f} s, first call "
                f"{row['first_call_s']:.3g} s, temp {row['memory']['temp_bytes']} B, "
                f"NFE {row['nfe']}, grad err {'-' if err is None else f'{err:.2e}'}"
            )
        rows.append(row)
    timing = interleaved_timing(
        runs,
        warmup=1,
        budget_s=budget_s * max(1, len(runs)),
        min_rounds=min_reps,
        max_rounds=max_reps,
    )
    for row in rows:
        if row["strategy"] in timing:
            per_call = row.get("steps_per_call", 1)
            times = {
                k: v / per_call if k.endswith("_ms") else v
                for k, v in timing[row["strategy"]].items()
            }
            row["timing"] = {
                "compile_s": row["compile_s"],
                "first_call_s": row["first_call_s"],
                **times,
            }
            log(f"[{name}] {row['strategy']}: {row['timing']['median_ms']:.4g} ms/step")
    _predict_blocks(rows)
    return rows


def _predict_blocks(rows: list[dict[str, Any]]) -> None:
    """For an `"auto"` row timed in blocks, `timing["predicted_ms"]`: the block's cost
    predicted from the single-call medians of `checked` and of the chosen adjoint in the
    same run, `(checked + (N - 1) * chosen) / N` (when both were timed). Consecutive calls
    of one compiled step run faster than calls alternating with other steps, so the
    measured block can come out below the prediction."""
    median = {r["strategy"]: r["timing"]["median_ms"] for r in rows if "timing" in r}
    for r in rows:
        every = r.get("steps_per_call")
        if not every or "timing" not in r:
            continue
        checked, chosen = median.get("checked"), median.get(r["chosen_adjoint"])
        if checked is not None and chosen is not None:
            r["timing"]["predicted_ms"] = (checked + (every - 1) * chosen) / every


def add_ratios(rows: list[dict[str, Any]], key: str = "ratio", baseline: str = BASELINE) -> None:
    """Set `row[key]`: the row's median step time over that of `baseline` on the same
    workload (`None` where either has no timing)."""
    base = {
        r["workload"]: r["timing"]["median_ms"]
        for r in rows
        if r["strategy"] == baseline and "timing" in r
    }
    for r in rows:
        b = base.get(r["workload"])
        r[key] = r["timing"]["median_ms"] / b if (b and "timing" in r) else None
