"""`fit`: the one training loop of odezoo, for every model, the CLI and the zoo."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PRNGKeyArray
from tqdm.auto import tqdm

from .._counting import count_evaluations
from .._errors import TrainingError
from .._solver import Solver, SolveStats
from ._checkpoint import load_checkpoint, save_checkpoint, save_model
from ._data import BatchSource, Draw, all_finite
from ._freeze import count_trainable, partition, trainable_spec
from ._losses import Loss, get_loss
from ._rundir import RunDir, config_hash
from ._sharding import batch_sharded, data_mesh, localize, replicate, replicated
from ._tolerance import ToleranceSchedule, piecewise_tolerance, resolve_changes

_CAUSES = {
    1: (
        "bad_batch",
        "the batch contains NaN or inf (bad data); check the dataset or the sampler",
    ),
    2: (
        "nonfinite_loss",
        "the loss is not finite (divergence); lower the learning rate, clip gradients "
        "(optax.clip_by_global_norm) or tighten the solver tolerances",
    ),
    3: (
        "nonfinite_grad",
        "a gradient is not finite (divergence); lower the learning rate or clip gradients "
        "(optax.clip_by_global_norm)",
    ),
}


@dataclasses.dataclass
class TrainResult:
    """What [`fit`][odezoo.train.fit] returns.

    Fields:

    - `model`: the trained model.
    - `opt_state`: the optimiser state (of the trained part of the model), to continue
      training with the same optimiser.
    - `step`: the number of completed training steps (including resumed ones).
    - `key`: the raw data of the training PRNG key after the last step.
    - `history`: the logged training records (dicts with `step`, `loss`,
      `nfe_forward`, `nfe_backward`, `step_time`, ...), as in `metrics.jsonl`.
    - `evals`: the evaluation records.
    - `summary`: the final summary, as in `metrics.json`.
    """

    model: Any
    opt_state: Any
    step: int
    key: Any
    history: list[dict]
    evals: list[dict]
    summary: dict

    @property
    def losses(self) -> np.ndarray:
        """The logged training losses, in step order."""
        return np.array([r["loss"] for r in self.history], dtype=float)


def _key_parts(key):
    if not isinstance(key, jax.Array):
        raise TypeError(f"key must be a JAX PRNG key (jax.random.key(seed)), got {key!r}")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key), jax.random.key_impl(key)
    if key.dtype == jnp.uint32:  # a legacy jax.random.PRNGKey
        return key, None
    raise TypeError(f"key must be a JAX PRNG key, got an array of dtype {key.dtype}")


def find_solver(model) -> Solver | None:
    """The first [`Solver`][odezoo.Solver] inside `model` (`None` for MLP/ResNet)."""
    for node in jax.tree_util.tree_leaves(model, is_leaf=lambda x: isinstance(x, Solver)):
        if isinstance(node, Solver):
            return node
    return None


def _is_solver(x) -> bool:
    return isinstance(x, Solver)


def _swap_solvers(tree, changes: dict):
    """`tree` with every `Solver` node in it replaced by `solver.replace(**changes)`.

    Applied alike to the trained part, the rest of the model and the optimiser state
    (whose moment trees mirror the model, solver included), so their structures agree.
    """
    return jax.tree_util.tree_map(
        lambda x: x.replace(**changes) if _is_solver(x) else x, tree, is_leaf=_is_solver
    )


def _strong(tree):
    """`tree` with every weakly typed array made strongly typed (same dtype and value)."""

    def fix(x):
        if isinstance(x, jax.Array) and getattr(x, "weak_type", False):
            return jnp.array(x, dtype=x.dtype)
        return x

    return jax.tree_util.tree_map(fix, tree)


def _backward_evaluations(model, solver: Solver, stats, nfe):
    """Vector-field VJPs of one backward pass, for the `"checkpoint"`/`"direct"` adjoints.

    Differentiating through the solver differentiates every forward evaluation once,
    except those that only choose the initial step size (no gradient flows through
    it). A `SolveStats.nfe_backward` from the core is used when it exists; otherwise,
    when the core chooses the initial step itself (2 evaluations per solve, see
    `odezoo._solver._initial_step`), those are subtracted from the forward count.
    """
    if nfe is None:
        return None
    exact = getattr(stats, "nfe_backward", None)
    if exact is not None:
        return _number(exact)
    from .. import _solver as core

    auto_dt0 = getattr(core, "_auto_dt0", None)
    if auto_dt0 is None or not auto_dt0(solver):
        return nfe
    fields = getattr(model, "fields", None)  # a CNF solves once per block
    solves = len(fields) if isinstance(fields, tuple) else 1
    return nfe - 2 * solves


def _solver_failure(err: Exception, step: int, steps: int, checkpoint_note: str):
    text = str(err)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if "hit max_steps" in text:
        cause = "max_steps"
        what = next((ln for ln in lines if "hit max_steps" in ln), "the solver hit max_steps")
    elif "NaN or inf" in text:
        cause = "solver_nonfinite"
        what = next((ln for ln in lines if "NaN or inf" in ln), "the solve returned NaN/inf")
    else:
        return None
    what = what.removeprefix("equinox.EquinoxRuntimeError: ").rstrip(".")
    message = f"training stopped at step {step} of {steps}: {what}{checkpoint_note}"
    return TrainingError(message, step=step, cause=cause)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Everything static about a train step. Hashable: `fit` calls with equal plans (same
    loss function, optimiser object, batch rule and mesh) share compiled steps."""

    loss: Callable
    optimizer: optax.GradientTransformation
    draw: Draw
    impl: Any
    replicated: jax.sharding.NamedSharding
    sharded: jax.sharding.NamedSharding


@eqx.filter_jit(donate="all-except-first")
def _train_step(const, params, opt_state, kd):
    plan, static, arrays = const
    if plan.impl is None:
        k = jax.random.wrap_key_data(kd)
    else:
        k = jax.random.wrap_key_data(kd, impl=plan.impl)
    k, batch_key, loss_key = jax.random.split(k, 3)
    batch = plan.draw(arrays, batch_key)
    batch = jax.lax.with_sharding_constraint(batch, plan.sharded)
    batch_ok = all_finite(batch)
    # A bad batch is replaced by zeros so that the step runs harmlessly (no solver error
    # on NaN input); its update is discarded below and the run stops on the host.
    batch = jax.tree_util.tree_map(
        lambda b: (
            jnp.where(batch_ok, b, jnp.zeros_like(b)) if jnp.issubdtype(b.dtype, jnp.inexact) else b
        ),
        batch,
    )

    def objective(p):
        return plan.loss(eqx.combine(p, static), batch, loss_key)

    (value, stats), grads = eqx.filter_value_and_grad(objective, has_aux=True)(params)
    updates, new_opt = plan.optimizer.update(grads, opt_state, params)
    new_params = eqx.apply_updates(params, updates)
    loss_ok = jnp.all(jnp.isfinite(value))
    grad_ok = all_finite(grads)
    solve_ok = jnp.asarray(True)
    if isinstance(stats, SolveStats):
        # With equinox's errors as NaN (see `errors_as_nan`), a failed solve shows up
        # here rather than as an exception.
        solve_ok = stats.failed == 0
    ok = batch_ok & loss_ok & grad_ok & solve_ok
    cause = jnp.select([~batch_ok, ~solve_ok, ~loss_ok, ~grad_ok], [1, 4, 2, 3], default=0)
    keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)
    new_params, new_opt = keep(new_params, params), keep(new_opt, opt_state)
    new_params, new_opt = jax.lax.with_sharding_constraint((new_params, new_opt), plan.replicated)
    return new_params, new_opt, jax.random.key_data(k), (value, stats, cause)


def fit(
    model,
    data,
    *,
    loss: str | Loss = "mse",
    optimizer: optax.GradientTransformation | None = None,
    steps: int,
    batch_size: int | None = None,
    key: PRNGKeyArray,
    trainable: Any = None,
    tolerance: ToleranceSchedule | list | None = None,
    evaluate: Callable[[Any], dict] | None = None,
    eval_every: int | None = None,
    log_every: int = 1,
    callback: Callable[[int, dict, Any], Any] | None = None,
    run_dir: str | os.PathLike | None = None,
    config: dict | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    mesh: jax.sharding.Mesh | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train any odezoo model (or any equinox model with `apply(xs, key=...)`) with optax.

    One jitted train step (`equinox.filter_jit` with donated parameter, optimiser-state
    and key buffers, `equinox.filter_value_and_grad`) draws a batch, evaluates the
    loss, and applies the optimiser's update. The batch is sharded over a
    `jax.sharding.Mesh` of all devices (axis `"data"`) and the parameters are
    replicated, so the same call trains on one CPU, several GPUs or several hosts
    (see [`initialize_distributed`][odezoo.train.initialize_distributed]).

    A step whose batch holds NaN/inf, or whose loss or gradient is not finite, leaves
    the model untouched and stops the run with a [`TrainingError`][odezoo.train.TrainingError]
    naming the step and the cause; so does an ODE solve failing mid-training
    (`max_steps` reached). The last good checkpoint is never overwritten.

    Arguments:

    - `model`: the model to train, e.g. [`ODENet`][odezoo.ODENet], [`CNF`][odezoo.CNF],
      [`Classifier`][odezoo.Classifier], [`MLP`][odezoo.MLP]; or a trained one, to
      fine-tune.
    - `data`: a tuple of arrays `(x,)` or `(x, y)` with a common leading axis, from which
      `batch_size` distinct examples are drawn at random each step (all of them, in
      order, when `batch_size` is `None` or the dataset size); or a sampler
      `sample(key, batch_size) -> batch` traceable by JAX, for infinite data.
    - `loss`: `"mse"`, `"cross_entropy"`, `"huber"`, `"nll"` (CNF), or any
      `loss(model, batch, key) -> (scalar, stats_or_None)` (see
      [`odezoo.train.mse`][odezoo.train.mse] and friends).
    - `optimizer`: any `optax.GradientTransformation` (default `optax.adam(1e-3)`);
      schedules and clipping via `optax.chain`. A new optimiser can continue training a
      trained model: pass the model and the new optimiser.
    - `steps`: the total number of training steps (a resumed run continues up to it).
    - `batch_size`: examples per step (required for a sampler). Must be divisible by
      the number of devices (a single process otherwise uses fewer devices).
    - `key`: a PRNG key for batches, and for models that need one (Hutchinson probes).
    - `trainable`: which parts to train; the rest stays frozen, bit for bit. `None`
      (all floating-point arrays), a filter spec (pytree of bools shaped like the
      model), or a function picking sub-trees, e.g. `lambda m: m.head`. See
      [`trainable_spec`][odezoo.train.trainable_spec].
    - `tolerance`: a tolerance schedule: a function `step -> changes` where `step` is
      the number of completed steps and `changes` a dict of solver fields (e.g.
      `{"rtol": 1e-3, "atol": 1e-3}`), a pair `(rtol, atol)`, or `None` (no change);
      or a list `[(step, changes), ...]` (see
      [`piecewise_tolerance`][odezoo.train.piecewise_tolerance]). The solver's fields are
      static, so every new value compiles the step again (once: values seen before
      reuse their compiled step); change tolerances rarely.
    - `evaluate`: a function `model -> dict of metrics`, called every `eval_every`
      steps and at the end; its results go to `metrics.jsonl` (`"kind": "eval"`) and
      to the summary.
    - `eval_every`: steps between evaluations (`None`: only at the end).
    - `log_every`: steps between logged training records.
    - `callback`: `callback(step, record, model)` after every step; returning `True`
      stops training early (with a checkpoint, so the run can be resumed). The model
      passed is valid until the next step (its buffers are donated).
    - `run_dir`: a directory for the run's files: `config.json`, `metrics.jsonl`,
      `metrics.json`, `training.png`, `checkpoint.ckpt`, `model.eqx` (see
      [`RunDir`][odezoo.train.RunDir]). `None`: nothing is written.
    - `config`: the run's config (see `odezoo.config`), written to `config.json`; its
      hash is stored in checkpoints and checked on resume.
    - `checkpoint_every`: steps between checkpoints (`None`: only at the end).
    - `resume`: continue from `run_dir`'s checkpoint, exactly as if never interrupted
      (same parameters bit for bit). Without it, a `run_dir` holding a checkpoint is an
      error.
    - `mesh`: the device mesh (default [`data_mesh`][odezoo.train.data_mesh]).
    - `progress`: show a tqdm progress bar with the loss and NFE.

    Returns:

    A [`TrainResult`][odezoo.train.TrainResult].

    Example:

    ```python
    import jax, optax, odezoo
    from odezoo.train import fit

    x, y = odezoo.data.cubic()
    net = odezoo.ODENet(1, width_size=20, init="normal", key=jax.random.key(0))
    result = fit(net, (x, y), loss="mse", optimizer=optax.sgd(0.01), steps=100,
                 key=jax.random.key(1))
    print(result.losses[-1], result.history[-1]["nfe_forward"])
    ```
    """
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    steps = int(steps)
    for name, value in (
        ("log_every", log_every),
        ("eval_every", eval_every),
        ("checkpoint_every", checkpoint_every),
    ):
        if value is not None and not (isinstance(value, int | np.integer) and value > 0):
            raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    if resume and run_dir is None:
        raise ValueError("resume=True needs the run_dir to resume from")
    loss_fn = get_loss(loss)
    optimizer = optax.adam(1e-3) if optimizer is None else optimizer
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax.GradientTransformation, got {optimizer!r}")
    source = BatchSource(data, batch_size)
    mesh = data_mesh(source.batch_size) if mesh is None else mesh
    if source.batch_size % mesh.size:
        raise ValueError(
            f"batch_size {source.batch_size} is not divisible by the mesh's {mesh.size} devices"
        )
    schedule = tolerance
    if schedule is not None and not callable(schedule):
        schedule = piecewise_tolerance(schedule)
    key_data, impl = _key_parts(key)
    main = jax.process_index() == 0

    spec = trainable_spec(model, trainable)
    params, static = partition(model, spec)
    n_trainable = count_trainable(params)
    if n_trainable == 0:
        raise ValueError("nothing to train: `trainable` selects no floating-point arrays")
    opt_state = optimizer.init(params)

    run = RunDir(run_dir, enabled=main) if run_dir is not None else None
    chash = config_hash(config)
    start = 0
    resumed_from = None
    if run is not None:
        if run.checkpoint.exists():
            if not resume:
                raise FileExistsError(
                    f"run directory {run.path} already holds a checkpoint: pass resume=True "
                    "(CLI: --resume) to continue it, or choose another directory"
                )
            ck = load_checkpoint(
                run.checkpoint, model=model, opt_state=opt_state, key=key_data, config_hash=chash
            )
            params, static = partition(ck.model, spec)
            opt_state, key_data, start = ck.opt_state, ck.key, ck.step
            resumed_from = start
            run.truncate_metrics(start)
        if config is not None:
            run.write_config(config)

    def checkpoint_note(saved: int | None) -> str:
        if run is None:
            return ". No checkpoint is kept (pass run_dir to keep one)."
        if saved is None:
            return f". No checkpoint had been written yet in {run.path}."
        return f". The last good checkpoint (step {saved}) is kept at {run.checkpoint}."

    last_saved = start if resumed_from is not None else None

    # -- place everything on the mesh -------------------------------------------------
    # Copies: the train step donates these buffers, which must not delete the caller's.
    # Strong types: a weakly typed leaf (e.g. `jnp.asarray(0.5)`) comes back strongly
    # typed from the first step, which would compile the step a second time.
    params, opt_state = _strong((params, opt_state))
    params, opt_state, key_data = replicate((params, opt_state, key_data), mesh, copy=True)
    static = replicate(static, mesh)
    arrays = replicate(source.arrays, mesh)
    plan = _Plan(loss_fn, optimizer, source.draw, impl, replicated(mesh), batch_sharded(mesh))

    solver = find_solver(model)
    counting = solver is not None and solver.count_evals
    exact_backward = solver is not None and solver.adjoint in ("checkpoint", "direct")

    history: list[dict] = []
    evals: list[dict] = []
    times: list[float] = []
    current: dict | None = None
    step = start
    status = "completed"
    t_start = time.perf_counter()
    bar = tqdm(
        total=steps,
        initial=start,
        disable=not (progress and main),
        dynamic_ncols=True,
        desc="train",
        leave=True,
    )

    def current_model():
        return eqx.combine(params, static)

    def run_eval():
        metrics = evaluate(localize(current_model()))
        rec = {"kind": "eval", "step": step, **{k: _number(v) for k, v in metrics.items()}}
        evals.append(rec)
        if run is not None:
            run.append(rec)
        return rec

    def save():
        nonlocal last_saved
        if run is None:
            return
        if main:
            save_checkpoint(
                run.checkpoint,
                model=current_model(),
                opt_state=opt_state,
                step=step,
                key=key_data,
                config_hash=chash,
            )
        last_saved = step

    try:
        while step < steps:
            changes = resolve_changes(schedule, step)
            if changes is not None and changes != current:
                if solver is None:
                    raise ValueError(
                        "a tolerance schedule needs a model with an ODE solver; "
                        f"{type(model).__name__} has none"
                    )
                params, static, opt_state = _swap_solvers((params, static, opt_state), changes)
                current = changes
                solver = find_solver(static)
                exact_backward = solver.adjoint in ("checkpoint", "direct")
            t0 = time.perf_counter()
            ctx = count_evaluations() if counting else contextlib.nullcontext()
            with ctx as counter:
                try:
                    params, opt_state, key_data, out = _train_step(
                        (plan, static, arrays), params, opt_state, key_data
                    )
                    jax.block_until_ready((params, opt_state, key_data, out))
                except eqx.EquinoxRuntimeError as e:
                    err = _solver_failure(e, step + 1, steps, checkpoint_note(last_saved))
                    if err is None:
                        raise
                    err.checkpoint = str(run.checkpoint) if last_saved is not None else None
                    status = "failed"
                    raise err from e
            dt = time.perf_counter() - t0
            value, stats, cause = out
            cause = int(cause)
            if cause == 4:
                status = "failed"
                raise TrainingError(
                    f"training stopped at step {step + 1} of {steps}: the ODE solve hit "
                    f"max_steps (or its step size collapsed) and stopped at "
                    f"t={_number(stats.t_reached)}"
                    + (f" with {find_solver(static).describe()}" if find_solver(static) else "")
                    + ". Raise max_steps (config: solver.max_steps), loosen rtol/atol, or "
                    "regularise the dynamics; the model was not updated by this step"
                    + checkpoint_note(last_saved),
                    step=step + 1,
                    cause="max_steps",
                    checkpoint=str(run.checkpoint) if last_saved is not None else None,
                    model=localize(current_model()),
                )
            if cause:
                code, what = _CAUSES[cause]
                status = "failed"
                raise TrainingError(
                    f"training stopped at step {step + 1} of {steps}: {what}; the model was "
                    f"not updated by this step{checkpoint_note(last_saved)}",
                    step=step + 1,
                    cause=code,
                    checkpoint=str(run.checkpoint) if last_saved is not None else None,
                    model=localize(current_model()),
                )
            step += 1
            times.append(dt)
            rec = {"kind": "train", "step": step, "loss": float(value), "step_time": dt}
            if stats is not None:
                nfe = _number(stats.nfe)
                rec["nfe_forward"] = nfe
                if counting:
                    rec["nfe_backward"] = counter.vjp
                elif exact_backward:
                    rec["nfe_backward"] = _backward_evaluations(static, solver, stats, nfe)
                else:
                    rec["nfe_backward"] = None
                rec["solver_steps"] = _number(stats.num_steps)
                rec["rejected_steps"] = _number(stats.num_rejected_steps)
                if solver is not None and solver.adjoint == "checked":
                    rec["fell_back"] = _number(stats.fell_back)
            else:
                rec["nfe_forward"] = rec["nfe_backward"] = None
            if current is not None:
                rec.update({f"solver_{k}": _number(v) for k, v in current.items()})
            if step % log_every == 0 or step == steps:
                history.append(rec)
                if run is not None:
                    run.append(rec)
                post = {"loss": f"{rec['loss']:.4g}"}
                if rec["nfe_forward"] is not None:
                    post["nfe"] = rec["nfe_forward"]
                bar.set_postfix(post, refresh=False)
            bar.update(1)
            if evaluate is not None and eval_every is not None and step % eval_every == 0:
                run_eval()
            stop = callback(step, rec, current_model()) if callback is not None else None
            if checkpoint_every is not None and step % checkpoint_every == 0:
                save()
            if stop is True:
                status = "stopped"
                break
    except TrainingError as e:
        if run is not None:
            run.write_summary(
                _summary(
                    "failed",
                    step,
                    start,
                    resumed_from,
                    history,
                    evals,
                    times,
                    t_start,
                    mesh,
                    source,
                    n_trainable,
                    error=str(e),
                    cause=e.cause,
                )
            )
            run.write_figure(title=f"{run.path.name} (failed at step {e.step})")
        raise
    finally:
        bar.close()

    if evaluate is not None and not (evals and evals[-1]["step"] == step):
        run_eval()
    if last_saved != step:
        save()
    model = localize(current_model())
    summary = _summary(
        status, step, start, resumed_from, history, evals, times, t_start, mesh, source, n_trainable
    )
    if run is not None:
        if main:
            save_model(run.file(RunDir.MODEL), model)
        run.write_summary(summary)
        run.write_figure(title=Path(run.path).name)
    return TrainResult(
        model=model,
        opt_state=localize(opt_state),
        step=step,
        key=localize(key_data),
        history=history,
        evals=evals,
        summary=summary,
    )


def _number(x):
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return x
    if not math.isfinite(v):
        return None
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


def _summary(
    status,
    step,
    start,
    resumed_from,
    history,
    evals,
    times,
    t_start,
    mesh,
    source,
    n_trainable,
    **extra,
):
    rest = times[1:]
    median = statistics.median(rest) if rest else None
    first = times[0] if times else None
    nfes = [r["nfe_forward"] for r in history if r.get("nfe_forward") is not None]
    last = history[-1] if history else {}
    out = {
        "status": status,
        "steps": step,
        "resumed_from": resumed_from,
        "steps_this_process": step - start,
        "final_loss": last.get("loss"),
        "nfe_forward_final": last.get("nfe_forward"),
        "nfe_backward_final": last.get("nfe_backward"),
        "nfe_forward_mean": statistics.fmean(nfes) if nfes else None,
        # The first step of a process compiles the train step (or loads it from the
        # persistent cache); it is reported apart from the steady-state step time.
        "first_step_time_s": first,
        "compile_time_s": None if first is None else max(first - (median or 0.0), 0.0),
        "step_time_median_s": median,
        "total_time_s": time.perf_counter() - t_start,
        "batch_size": source.batch_size,
        "trainable_parameters": n_trainable,
        "num_devices": int(mesh.size),
        "num_processes": jax.process_count(),
        "backend": jax.default_backend(),
        "jax_version": jax.__version__,
        "eval": {k: v for k, v in evals[-1].items() if k != "kind"} if evals else None,
    }
    out.update(extra)
    return out
