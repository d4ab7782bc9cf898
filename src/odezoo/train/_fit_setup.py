"""What `fit` sets up before its loop: the run's fixed `Setup` (what was asked,
checked) and its host-side `State` (what the loop changes), and the functions that
check `fit`'s arguments and build both."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from .._adjoint import AbstractAdjoint, AutoAdjoint
from .._errors import InputError
from .._solver import Solver
from ._checkpoint import load_checkpoint
from ._data import BatchSource
from ._freeze import count_trainable, partition, trainable_spec
from ._losses import get_loss
from ._rundir import RunDir, check_run_dir, config_hash
from ._sharding import batch_sharded, data_mesh, replicate, replicated
from ._step import Plan
from ._tolerance import ToleranceSchedule, piecewise_tolerance, solver_of, swap_solvers


@dataclasses.dataclass(frozen=True)
class Setup:
    """What `fit` was asked to do, checked, and fixed for the whole run."""

    steps: int
    plan: Plan
    arrays: tuple
    schedule: ToleranceSchedule | None
    evaluate: Callable[[Any], dict] | None
    eval_every: int | None
    log_every: int
    checkpoint_every: int | None
    callback: Callable | None
    run: RunDir | None
    config_hash: str | None
    main: bool
    config: dict | None
    mesh: jax.sharding.Mesh
    batch_size: int
    trainable_parameters: int
    auto: AutoAdjoint | None  # the model's adjoint, when it is "auto"
    throw: bool  # the model's solver's `throw` (the steps solve with throw=False)


@dataclasses.dataclass
class State:
    """The host-side state of a run: everything the loop changes."""

    params: Any
    static: Any
    opt_state: Any
    key_data: Any
    step: int
    start: int
    resumed_from: int | None
    last_saved: int | None
    changes: dict | None = None  # the solver changes in force (tolerance schedule)
    adjoint: AbstractAdjoint | None = None  # "auto": the adjoint the last check chose
    checking: bool = False  # "auto": whether the step being taken is a check
    status: str = "completed"
    history: list[dict] = dataclasses.field(default_factory=list)
    evals: list[dict] = dataclasses.field(default_factory=list)
    adjoint_checks: list[dict] = dataclasses.field(default_factory=list)
    adjoint_steps: dict[str, int] = dataclasses.field(default_factory=dict)
    times: list[float] = dataclasses.field(default_factory=list)
    t_start: float = dataclasses.field(default_factory=time.perf_counter)

    @property
    def model(self):
        return eqx.combine(self.params, self.static)

    @property
    def solver(self) -> Solver | None:
        return solver_of(self.static)

    def public(self, setup: Setup) -> tuple[Any, Any]:
        """`(model, opt_state)` with the user's solver (for checkpoints, the saved
        model, the result, callbacks and evaluations): an `"auto"` adjoint, swapped to
        the adjoint of the step for training, is swapped back, and so is `throw` (the
        steps solve with `throw=False`)."""
        model, opt_state = self.model, self.opt_state
        if self.solver is None:
            return model, opt_state
        changes = {"throw": setup.throw}
        if setup.auto is not None:
            changes["adjoint"] = setup.auto
        return swap_solvers((model, opt_state), changes)


# -- before the loop ------------------------------------------------------------------


def count_arg(name: str, value, *, minimum: int, optional: bool = False) -> int | None:
    """`value` as an int (NumPy and 0-d JAX integers too), checked against `minimum`."""
    if value is None and optional:
        return None
    if isinstance(value, jax.Array | np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        kind = "a non-negative" if minimum == 0 else "a positive"
        raise InputError(
            f"{name} must be {kind} int{' or None' if optional else ''}, got {value!r}"
        )
    return int(value)


def key_parts(key):
    if not isinstance(key, jax.Array):
        raise InputError(f"key must be a JAX PRNG key (jax.random.key(seed)), got {key!r}")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key), jax.random.key_impl(key)
    if key.dtype == jnp.uint32:  # a legacy jax.random.PRNGKey
        return key, None
    raise InputError(f"key must be a JAX PRNG key, got an array of dtype {key.dtype}")


def auto_adjoint_of(model) -> AutoAdjoint | None:
    """The model's adjoint when it is `"auto"` (the adjoint `fit`'s checks choose)."""
    solver = solver_of(model)
    if solver is not None and isinstance(solver.adjoint, AutoAdjoint):
        return solver.adjoint
    return None


def prepare(model, data, loss, optimizer, batch_size, key, trainable, tolerance, mesh) -> dict:
    """The loss, optimiser, data and mesh, checked; the compiled step's `Plan`."""
    loss_fn = get_loss(loss)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise InputError(f"optimizer must be an optax.GradientTransformation, got {optimizer!r}")
    source = BatchSource(data, batch_size)
    mesh = data_mesh(source.batch_size) if mesh is None else mesh
    if source.batch_size % mesh.size:
        raise InputError(
            f"batch_size {source.batch_size} is not divisible by the mesh's {mesh.size} devices"
        )
    if tolerance is not None and solver_of(model) is None:
        raise InputError(
            f"a tolerance schedule needs a model with an ODE solver; {type(model).__name__} "
            "has none"
        )
    schedule = tolerance
    if schedule is not None and not callable(schedule):
        schedule = piecewise_tolerance(schedule)
    _, impl = key_parts(key)
    n = count_trainable(partition(model, trainable_spec(model, trainable))[0])
    if n == 0:
        raise InputError("nothing to train: `trainable` selects no floating-point arrays")
    return dict(
        plan=Plan(loss_fn, optimizer, source.draw, impl, replicated(mesh), batch_sharded(mesh)),
        arrays=replicate(source.arrays, mesh),
        schedule=schedule,
        mesh=mesh,
        batch_size=source.batch_size,
        trainable_parameters=n,
    )


def open_run(run_dir, config, resume: bool, steps: int) -> dict:
    """The run directory, checked (only process 0 writes, and checks, it)."""
    main = jax.process_index() == 0
    run = None
    if run_dir is not None:
        if main:
            check_run_dir(run_dir, resume=resume, steps=steps)
        run = RunDir(run_dir, enabled=main)
    return dict(run=run, config_hash=config_hash(config), main=main, config=config)


def initial_state(setup: Setup, model, trainable, optimizer, key, resume: bool) -> State:
    """The starting state, from `model` or the run directory's checkpoint, placed on the
    mesh."""
    spec = trainable_spec(model, trainable)
    params, static = partition(model, spec)
    opt_state = setup.plan.optimizer.init(params)
    key_data, _ = key_parts(key)
    run, start, resumed_from = setup.run, 0, None
    if run is not None and resume:
        if run.checkpoint.exists():
            ck = load_checkpoint(
                run.checkpoint,
                model=model,
                opt_state=opt_state,
                key=key_data,
                config_hash=setup.config_hash,
            )
            params, static = partition(ck.model, spec)
            opt_state, key_data, start = ck.opt_state, ck.key, ck.step
        resumed_from = start
        if start < setup.steps:
            run.truncate_metrics(start)  # drop records written after the last checkpoint
    if run is not None and setup.config is not None and start < setup.steps:
        run.write_config(setup.config)
    # A failed solve in a step is read from its statistics (the step's `Failure`), not
    # raised; `State.public` gives the user's solvers back.
    params, static, opt_state = swap_solvers((params, static, opt_state), {"throw": False})
    # Copies: the train step donates these buffers, which must not delete the caller's.
    # Strong types: a weakly typed leaf (e.g. `jnp.asarray(0.5)`) comes back strongly
    # typed from the first step, which would compile the step a second time.
    params, opt_state = strong_types((params, opt_state))
    params, opt_state, key_data = replicate((params, opt_state, key_data), setup.mesh, copy=True)
    last_saved = start if resumed_from is not None and run.checkpoint.exists() else None
    return State(
        params=params,
        static=replicate(static, setup.mesh),
        opt_state=opt_state,
        key_data=key_data,
        step=start,
        start=start,
        resumed_from=resumed_from,
        last_saved=last_saved,
        adjoint=adjoint_in_force(setup, start),
    )


def adjoint_in_force(setup: Setup, step: int) -> AbstractAdjoint | None:
    """For `"auto"`, the adjoint chosen by the last check at or before `step`, from the
    run's log (`None`: a fresh run, or no check logged; the next step checks)."""
    if setup.auto is None or step == 0 or setup.run is None:
        return None
    checks = [r for r in setup.run.records() if r.get("kind") == "adjoint" and r["step"] <= step]
    if checks:
        return setup.auto.choices[checks[-1]["adjoint"]]
    if step % setup.auto.check_every:
        say(
            setup,
            f"fit: resuming at step {step}: metrics.jsonl holds no adjoint check of "
            "adjoint='auto', so the next step checks again (the run will not be bit-identical "
            "to an uninterrupted one)",
        )
    return None


def strong_types(tree):
    """`tree` with every weakly typed array made strongly typed (same dtype and value)."""
    fix = lambda x: jnp.array(x, dtype=x.dtype) if isinstance(x, jax.Array) and x.weak_type else x
    return jax.tree_util.tree_map(fix, tree)


def finished_summary(setup: Setup) -> dict | None:
    """The summary of a finished run in the run directory (`None` if it has none)."""
    summary = setup.run.read_summary() if setup.run is not None else None
    if summary is None or summary.get("status") != "completed":
        return None
    return summary if summary.get("steps") == setup.steps else None


def say(setup: Setup, message: str) -> None:
    """A message to the user on stderr (through tqdm, so that a progress bar stays intact)."""
    if setup.main:
        tqdm.write(message, file=sys.stderr)
