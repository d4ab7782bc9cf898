"""Backsolve on the regularised zoo entries: odezoo's VJP-form reverse solver (the
penalised field marked `DerivativePenaltyField` when its penalty or its field
differentiates) against diffrax's own reverse solver, one training gradient each on the
entry's trained weights and a batch of its training data, compiled apart and timed in
alternation in one process; with the relative difference of the two gradients.

    python benchmarks/regularised_backsolve.py ffjord-moons-rnode odenet-digits-rnode

Writes `benchmarks/results/speed_leads/regularised_backsolve.json`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

import odezoo._solve as solver_module
from odezoo import bench
from odezoo.bench._measure import interleaved_timing
from odezoo.bench._report import environment
from odezoo.bench._user import replace_solvers


def measure(name: str, rounds: int = 40) -> dict:
    model, batch, loss, info = bench.entry_problem(name)
    model = replace_solvers(model, lambda s: s.replace(adjoint="backsolve"))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    key = jax.random.key(0)
    value = lambda p: loss(eqx.combine(p, static), batch, key)[0]
    marked = solver_module._differentiates_itself
    fns, grads = {}, {}
    for label, rule in (("vjp form", marked), ("diffrax form", lambda field: False)):
        solver_module._differentiates_itself = rule  # read when the solve is traced
        try:  # a new jit each time: a jit reuses its trace
            compiled = jax.jit(jax.value_and_grad(value)).lower(params).compile()
        finally:
            solver_module._differentiates_itself = marked
        leaves = jax.tree_util.tree_leaves(compiled(params)[1])
        grads[label] = np.concatenate([np.ravel(v) for v in leaves])
        fns[label] = lambda c=compiled: jax.block_until_ready(c(params))
    timing = interleaved_timing(fns, rounds=rounds)
    a, b = grads["vjp form"], grads["diffrax form"]
    return {
        "batch": info["batch_size"],
        "median_ms": {k: v["median_ms"] for k, v in timing.items()},
        "grad_rel_diff": float(np.linalg.norm(a - b) / np.linalg.norm(b)),
    }


def main():
    result = {"environment": environment(), "entries": {}}
    for name in sys.argv[1:] or ["ffjord-moons-rnode", "odenet-digits-rnode"]:
        result["entries"][name] = measure(name)
        print(name, result["entries"][name], flush=True)
    out = Path("benchmarks/results/speed_leads/regularised_backsolve.json")
    out.write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
