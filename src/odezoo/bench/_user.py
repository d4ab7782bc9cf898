"""Benchmark the adjoint strategies on any odezoo model: the user's own, or a zoo entry
with its own data and loss."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._adjoint import CheckpointAdjoint
from .._errors import InputError
from .._solver import Solver
from ._adjoints import add_ratios, measure_strategies, prepare_step
from ._measure import flat_gradient, loss_reference_gradient
from ._strategies import BASELINE, Strategy
from ._strategies import strategies as all_strategies

USER_STRATEGIES: tuple[str, ...] = (
    "checkpoint",
    "checkpoint-4x",
    "backsolve",
    "backsolve-seminorm",
    "direct",
    "checked",
    "auto",
)
"""The strategies [`benchmark_adjoints`][odezoo.bench.benchmark_adjoints] measures by
default (the one-solve-per-example `"*-vmap"` ones are left out: ask for them by name)."""


def _is_solver(x) -> bool:
    return isinstance(x, Solver)


def replace_solvers(model, change: Callable[[Solver], Solver]):
    """`model` with every [`Solver`][odezoo.Solver] in it replaced by `change(solver)`
    (a Classifier's ODE block, each block of a stacked CNF, ...)."""
    return jax.tree_util.tree_map(
        lambda x: change(x) if _is_solver(x) else x, model, is_leaf=_is_solver
    )


def _solvers(model) -> list[Solver]:
    leaves = jax.tree_util.tree_leaves(model, is_leaf=_is_solver)
    return [x for x in leaves if _is_solver(x)]


def _solves_sdes(model) -> bool:
    from ..nn import AbstractSDEModel

    is_sde = lambda x: isinstance(x, AbstractSDEModel)
    return any(is_sde(x) for x in jax.tree_util.tree_leaves(model, is_leaf=is_sde))


def _cast(tree, dtype):
    """Floating-point arrays of `tree` cast to `dtype`; everything else unchanged."""

    def cast(x):
        if isinstance(x, jax.Array | np.ndarray) and jnp.issubdtype(x.dtype, jnp.floating):
            return jnp.asarray(x, dtype)
        return x

    return jax.tree_util.tree_map(cast, tree)


def reference_solver(solver: Solver, tol: float, max_steps: int) -> Solver:
    """The float64 reference's solver for `solver`: the same diffrax method when it is
    adaptive (Dopri5 otherwise), `rtol = atol = tol`, checkpointed adjoint."""
    return solver.replace(
        solver=solver.solver if solver.adaptive else diffrax.Dopri5(),
        rtol=tol,
        atol=tol,
        dt0=None,
        max_steps=max_steps,
        adjoint=CheckpointAdjoint(),
        count_evals=False,
    )


def _pick_strategies(names) -> list[Strategy]:
    available = all_strategies()
    if names is None:
        names = USER_STRATEGIES
    out = []
    for s in names:
        if isinstance(s, Strategy):
            out.append(s)
        elif s in available:
            out.append(available[s])
        else:
            raise InputError(f"unknown strategy {s!r}; choose from {sorted(available)}")
    return out


def benchmark_adjoints(
    model: eqx.Module,
    batch: Any,
    loss: str | Callable = "mse",
    *,
    strategies: Iterable[str | Strategy] | None = None,
    key: jax.Array | None = None,
    name: str = "model",
    optimizer: str = "sgd",
    budget_s: float = 5.0,
    min_reps: int = 5,
    max_reps: int = 50,
    count: bool = True,
    reference_tol: float = 1e-10,
    reference_max_steps: int = 100_000,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Benchmark the adjoint strategies on your own model: one training step (loss,
    gradient, optimizer update) per strategy, in the table
    `python benchmarks/run.py adjoints` gives for the built-in workloads.

    Per strategy: the median step time after warm-up (all strategies timed in
    alternation, so that a change of machine load hits them alike; `ratio` is over
    `"checkpoint"`, odezoo's default), the compile time apart, XLA's memory of the
    compiled step, forward NFE (from the solve's statistics), backward evaluations and
    VJPs (counted in a separate run), and the relative L2 error of the parameter
    gradient against a float64 reference: the same model and batch cast to float64,
    solved at `rtol = atol = reference_tol` with the model's own diffrax method
    (Dopri5 for a fixed-step one, so that the error of a fixed step shows) and the
    checkpointed adjoint.

    Each strategy changes every [`Solver`][odezoo.Solver] in the model (see
    [`strategies`][odezoo.bench.strategies]); the model's tolerances are kept.

    A model that solves SDEs (a [`LatentSDE`][odezoo.nn.LatentSDE]) gets no gradient
    error (`None`, with the reason in the result's `references`): a float64 solve draws
    other Brownian increments than the float32 step, and a finer step refines the
    Brownian path, so neither is a reference for the same path.

    Arguments:

    - `model`: an odezoo model that solves an ODE: an `ODENet`, `CNF`, a `Classifier`
      with an ODE block, or any module holding an `odezoo.Solver` whose forward pass
      `model.apply(x, key=key)` returns `(out, SolveStats)`.
    - `batch`: one batch as the loss takes it, e.g. `(x, y)` for `"mse"`.
    - `loss`: a loss name (`"mse"`, `"cross_entropy"`, `"huber"`, `"nll"`) or a function
      `loss(model, batch, key) -> (scalar, SolveStats)` as in `odezoo.train`.
    - `strategies`: strategy names or [`Strategy`][odezoo.bench.Strategy] objects
      (default: `checkpoint`, `checkpoint-4x`, `backsolve`, `backsolve-seminorm`,
      `direct`, `checked`).
    - `key`: the PRNG key handed to the loss (e.g. for Hutchinson probes); the same for
      every strategy and the reference. Default `jax.random.key(0)`.
    - `name`: the problem's name in the table.
    - `optimizer`: `"sgd"` or `"adam"` (learning rate 1e-3), part of the timed step.
    - `budget_s`, `min_reps`, `max_reps`: about `budget_s` seconds of timed steps per
      strategy, at least `min_reps` and at most `max_reps` of them.
    - `count`: run the counted (slow, untimed) gradient that gives the backward NFE.
    - `reference_tol`, `reference_max_steps`: the float64 reference's tolerance and
      step limit.
    - `log`: a function called with progress lines (default: silent).

    Returns:

    `{"workloads", "strategies", "optimizer", "references", "rows"}`, a row per
    strategy (as in the built-in workloads' table); pass it to
    [`write_report`][odezoo.bench.write_report]`("adjoints", result, folder)` for the
    JSON and markdown table. A strategy that fails is recorded with its `error`.

    !!! warning
        Time the step on a quiet machine: other work slows all strategies, and the
        alternation only protects their ratios. The first call of each strategy is
        compiled, and that time is reported apart, not in the median.

    Example, on a user-defined vector field:

    ```python
    import equinox as eqx, jax, jax.numpy as jnp, odezoo
    from odezoo import bench

    class Cubic(eqx.Module):           # your own dynamics: f(t, y) on one example
        linear: eqx.nn.Linear

        def __call__(self, t, y):
            return jnp.tanh(self.linear(y**3))

    k1, k2 = jax.random.split(jax.random.key(0))
    model = odezoo.ODENet(2, dynamics=Cubic(eqx.nn.Linear(2, 2, key=k1)), key=k2)
    x = jax.random.normal(jax.random.key(1), (16, 2))
    result = bench.benchmark_adjoints(
        model, (x, 0.5 * x), "mse", strategies=["checkpoint", "backsolve"],
        budget_s=0.0, min_reps=1, max_reps=2, count=False,
    )
    for row in result["rows"]:
        print(row["strategy"], row["timing"]["median_ms"], row["grad_error"])
    ```
    """
    from ..losses import get_loss
    from ..train._penalised import split_aux

    log = log or (lambda _: None)
    chosen = _pick_strategies(strategies)
    if not chosen:
        raise InputError("give at least one strategy")
    solvers = _solvers(model)
    if not solvers:
        raise InputError(
            f"{type(model).__name__} holds no odezoo.Solver, so it solves no ODE and has no "
            "adjoint to benchmark (give an ODENet, CNF, or a Classifier with an ODE block)"
        )
    try:
        user_loss = get_loss(loss)
    except ValueError as e:
        raise InputError(str(e)) from None
    key = jax.random.key(0) if key is None else key
    batch = jax.tree_util.tree_map(jnp.asarray, batch)

    def objective(m, data):
        value, aux = user_loss(m, data[0], data[1])
        stats, _ = split_aux(aux)  # a penalised (regularised) loss returns LossAux
        if stats is None:
            raise InputError(
                "the loss returned no SolveStats: give a loss that returns the model's "
                "solve statistics, `(value, stats)` from `model.apply`"
            )
        return value, stats

    data = (batch, key)

    t0 = time.perf_counter()
    if _solves_sdes(model):
        ref_grad = None
        reference = {"skipped": "an SDE: no float64 or finer-step solve follows the same path"}
        log(f"[{name}] no float64 reference for an SDE model: gradient errors are not measured")
    else:
        with jax.enable_x64(True):
            ref_model = replace_solvers(
                _cast(model, jnp.float64),
                lambda s: reference_solver(s, reference_tol, reference_max_steps),
            )
            ref_loss, ref_grads, ref_stats = loss_reference_gradient(
                objective, ref_model, (_cast(batch, jnp.float64), key)
            )
            ref_grad = flat_gradient(ref_grads)
            ref_steps = int(ref_stats.num_steps)
        reference = {
            "loss": ref_loss,
            "steps": ref_steps,
            "tol": reference_tol,
            "seconds": time.perf_counter() - t0,
        }
        log(f"[{name}] float64 reference: loss {ref_loss:.6g}, {ref_steps} steps")

    def prepare(st: Strategy):
        m = replace_solvers(model, st.apply)
        counted = replace_solvers(m, lambda s: s.replace(count_evals=True)) if count else None
        return prepare_step(
            name, st, m, objective, data, ref_grad, optimizer=optimizer, counted_model=counted
        )

    rows = measure_strategies(
        name, chosen, prepare, budget_s=budget_s, min_reps=min_reps, max_reps=max_reps, log=log
    )
    add_ratios(rows, "ratio", BASELINE)
    first = solvers[0]
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array)))
    leaves = jax.tree_util.tree_leaves(batch)
    size = leaves[0].shape[0] if leaves and leaves[0].ndim else 1
    loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "custom")
    return {
        "workloads": {
            name: {
                "name": name,
                "description": f"{type(model).__name__} ({n_params} parameters), batch {size}, "
                f"loss {loss_name}",
                "solver": first.describe(),
                "rtol": first.rtol,
                "atol": first.atol,
                "note": "" if len(solvers) == 1 else f"{len(solvers)} solves per step",
            }
        },
        "strategies": {
            s.name: {
                "changes": s.changes,
                "description": s.description,
                "checkpoint_factor": s.checkpoint_factor,
            }
            for s in chosen
        },
        "optimizer": optimizer,
        "references": {name: reference},
        "rows": rows,
    }


def entry_problem(
    name: str | os.PathLike, *, batch_size: int | None = None, key: jax.Array | None = None
) -> tuple[eqx.Module, Any, Callable, dict[str, Any]]:
    """A zoo entry's (or run directory's) benchmark problem: its model (trained weights
    when it has them, else initialised from its config), one batch of its training data
    (the first `batch_size` examples, or a draw from its sampler with `key`; default
    the config's `train.batch_size`) and its training loss.

    Returns `(model, batch, loss, info)`; `info` records the entry, the weights used,
    the batch size and the loss name.

    ```python
    from odezoo.bench import benchmark_adjoints, entry_problem

    model, batch, loss, info = entry_problem("seed-cubic-odenet")
    ```
    """
    from .. import zoo
    from ..config import build_data, build_loss, full_config

    cfg = full_config(zoo.config(name))
    trained = zoo.has_weights(name)
    model = zoo.load(name) if trained else zoo.create(name)
    n = int(batch_size or cfg["train"]["batch_size"])
    train = build_data(cfg).train
    key = jax.random.key(0) if key is None else key
    if callable(train):
        batch = train(key, n)
    else:
        batch = tuple(np.asarray(a)[:n] for a in train)
    if not isinstance(batch, tuple):
        batch = (batch,)
    info = {
        "entry": str(name),
        "weights": "trained (model.eqx)" if trained else "untrained (initialised from config)",
        "batch_size": int(jnp.shape(batch[0])[0]),
        "loss": cfg["train"]["loss"],
        "model": cfg["model"]["type"],
    }
    return model, batch, build_loss(cfg), info
