"""Gradient accuracy against solver tolerance, per adjoint strategy."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from odezoo.bench._measure import relative_error
from odezoo.bench._strategies import Strategy

from .defaults import TOLERANCES
from .measure import reference_gradient
from .workloads import Workload


def run_accuracy(
    workloads: Iterable[Workload],
    strategies: Iterable[Strategy],
    tolerances: Iterable[float] = TOLERANCES,
    *,
    reference_tol: float = 1e-10,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Relative L2 error of the float32 parameter gradient against the float64
    reference (`reference_gradient`), with
    `rtol = atol = tol` for each tolerance and strategy; also the loss and the forward
    steps and NFE.

    Returns `{"tolerances": [...], "rows": [...]}`, a row per (workload, strategy, tol).
    """
    tolerances = [float(t) for t in tolerances]
    strategies = list(strategies)
    rows = []
    for wl in workloads:
        weights = wl.weights()
        data = {k: jnp.asarray(v) for k, v in wl.data().items()}
        _, ref, _ = reference_gradient(wl, weights, tol=reference_tol)
        for st in strategies:
            for tol in tolerances:
                row: dict[str, Any] = {"workload": wl.name, "strategy": st.name, "tol": tol}
                try:
                    solver = st.apply(wl.solver().replace(rtol=tol, atol=tol))
                    model = wl.build(weights, solver)
                    params, static = eqx.partition(model, eqx.is_array)
                    fn = jax.jit(
                        jax.value_and_grad(
                            lambda p, d, static=static: wl.loss(eqx.combine(p, static), d),
                            has_aux=True,
                        )
                    )
                    (loss, stats), grads = fn(params, data)
                    stats = stats.to_dict()
                    row.update(
                        loss=float(loss),
                        grad_error=relative_error(grads, ref),
                        steps=stats["num_steps"],
                        nfe_forward=stats["nfe"],
                        fell_back=stats["fell_back"],
                    )
                    log(
                        f"[accuracy] {wl.name} {st.name} tol {tol:g}: "
                        f"grad err {row['grad_error']:.2e}, {row['steps']} steps"
                    )
                except Exception as e:
                    row["error"] = f"{type(e).__name__}: {e}"
                    log(f"[accuracy] {wl.name} {st.name} tol {tol:g}: FAILED {row['error'][:200]}")
                rows.append(row)
    return {"tolerances": tolerances, "reference_tol": reference_tol, "rows": rows}
