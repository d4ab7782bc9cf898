"""Work-precision diagrams: time per training step against gradient error, across
tolerances, for odezoo's strategies and the peers, on the same weights."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np

from odezoo.bench._measure import compile_fn, interleaved_timing, relative_error
from odezoo.bench._report import cpu_count
from odezoo.bench._strategies import Strategy

from .adjoints import prepare_pair
from .defaults import PRECISION_TOLERANCES
from .measure import reference_gradient
from .peers import (
    INSTALL,
    TORCHODE_MODE,
    jax_ode_available,
    jax_ode_step,
    torch_available,
    torch_contenders,
    torchode_available,
    torchode_contender,
    use_torch_device,
)
from .workloads import Workload

PRECISION_PEERS: tuple[str, ...] = (
    "jax-experimental-ode",
    "torchdiffeq-odeint",
    "torchdiffeq-adjoint",
    "torchode",
)
"""The peers drawn in the work-precision diagrams (when installed)."""


def _peer_contender(name: str, wl: Workload, weights, optimizer: str, torchode_mode: str):
    """`(run, grad_vector, loss)` of a peer's training step at `wl`'s tolerances."""
    if name == "jax-experimental-ode":
        step, args = jax_ode_step(wl, weights, optimizer)
        compiled, _ = compile_fn(step, *args)
        out = jax.block_until_ready(compiled(*args))
        leaves = [np.ravel(np.asarray(g, np.float64)) for g in jax.tree_util.tree_leaves(out[3])]
        return (lambda: jax.block_until_ready(compiled(*args))), np.concatenate(leaves), out[2]
    if name == "torchode":
        c = torchode_contender(wl, weights, optimizer=optimizer, mode=torchode_mode)
    else:
        c = torch_contenders(wl, weights, optimizer=optimizer)[name]
    loss = c["run"]()
    return c["run"], c["grad"](), loss


def run_precision(
    workloads: Iterable[Workload],
    strategies: Iterable[Strategy],
    tolerances: Iterable[float] = PRECISION_TOLERANCES,
    *,
    peers: Iterable[str] = PRECISION_PEERS,
    optimizer: str = "sgd",
    budget_s: float = 2.0,
    min_rounds: int = 3,
    max_rounds: int = 20,
    reference_tol: float = 1e-10,
    torchode_mode: str = TORCHODE_MODE,
    torch_threads: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Work-precision data: for each workload and tolerance (`rtol = atol = tol`), the
    median time of one training step (loss, gradient, SGD update) and the relative L2
    error of its parameter gradient against the float64 reference at `reference_tol`
    (see `run_adjoints`), for each odezoo strategy and each
    installed peer, all on the same weights. The contenders of one (workload,
    tolerance) are timed in alternation (`interleaved_timing`). `torch_threads`: as in
    `run_peers` (use 1 on a loaded machine).

    A contender on the front of a panel (no other both faster and more accurate) is
    the one to pick at that accuracy; a ratio at one tolerance can hide a solver that
    is fast because it is inaccurate.

    Returns `{"tolerances", "reference_tol", "skipped", "rows"}`, a row per (workload,
    contender, tol) with `median_ms`, `grad_error`, `loss` (and `error` on failure).
    """
    tolerances = [float(t) for t in tolerances]
    strategies = list(strategies)
    skipped: dict[str, str] = {}
    why = {
        "jax-experimental-ode": jax_ode_available(),
        "torchdiffeq-odeint": torch_available(),
        "torchdiffeq-adjoint": torch_available(),
        "torchode": torchode_available(),
    }
    wanted = []
    for name in peers:
        if name not in why:
            raise ValueError(f"unknown peer {name!r}; choose from {sorted(why)}")
        if why[name] is None:
            wanted.append(name)
        else:
            skipped[name] = f"not installed ({INSTALL}): {why[name]}"
            log(f"precision: skipping {name}: {why[name]}")
    if torch_available() is None:
        import torch

        torch.set_num_threads(torch_threads or max(1, cpu_count()))
        log(f"precision: PyTorch on {use_torch_device()}")
    rows: list[dict[str, Any]] = []
    for wl in workloads:
        weights = wl.weights()
        _, ref, ref_steps = reference_gradient(wl, weights, tol=reference_tol)
        log(f"[precision] {wl.name}: float64 reference, {ref_steps} steps")
        for tol in tolerances:
            at = dataclasses.replace(wl, rtol=tol, atol=tol)
            runs: dict[str, Callable[[], Any]] = {}
            cur: dict[str, dict[str, Any]] = {}
            for st in strategies:
                name = f"odezoo-{st.name}"
                row = cur[name] = {"workload": wl.name, "contender": name, "tol": tol}
                try:
                    info, runs[name] = prepare_pair(
                        at, st, weights, ref, optimizer=optimizer, count=False
                    )
                    row.update(
                        loss=info["loss"],
                        grad_error=info["grad_error"],
                        nfe_forward=info["nfe"]["forward"],
                        fell_back=info["fell_back"],
                    )
                except Exception as e:
                    row["error"] = f"{type(e).__name__}: {e}"
            for name in wanted:
                row = cur[name] = {"workload": wl.name, "contender": name, "tol": tol}
                try:
                    runs[name], grad, loss = _peer_contender(
                        name, at, weights, optimizer, torchode_mode
                    )
                    row.update(loss=float(loss), grad_error=relative_error(grad, ref))
                except Exception as e:
                    row["error"] = f"{type(e).__name__}: {e}"
            timing = interleaved_timing(
                runs,
                warmup=1,
                budget_s=budget_s * max(1, len(runs)),
                min_rounds=min_rounds,
                max_rounds=max_rounds,
            )
            for name, row in cur.items():
                if name in timing:
                    row.update(median_ms=timing[name]["median_ms"], rounds=timing[name]["rounds"])
                if "error" in row:
                    log(f"[precision] {wl.name} tol {tol:g} {name}: FAILED {row['error'][:200]}")
                else:
                    log(
                        f"[precision] {wl.name} tol {tol:g} {name}: "
                        f"{row.get('median_ms', float('nan')):.3g} ms, "
                        f"grad err {row['grad_error']:.2e}"
                    )
                rows.append(row)
    return {
        "tolerances": tolerances,
        "reference_tol": reference_tol,
        "torchode_mode": torchode_mode,
        "skipped": skipped,
        "rows": rows,
    }
