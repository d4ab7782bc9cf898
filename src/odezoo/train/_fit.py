"""`fit`: the one training loop of odezoo, for every model, the CLI and the zoo."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
from jaxtyping import PRNGKeyArray
from tqdm.auto import tqdm

from .._adjoint import AutoAdjoint, parse_adjoint
from .._counting import count_evaluations
from .._errors import InputError, TrainingError
from ._checkpoint import save_checkpoint, save_model
from ._failure import Failure, failure_name
from ._fit_setup import (
    Setup,
    State,
    auto_adjoint_of,
    count_arg,
    finished_summary,
    initial_state,
    open_run,
    prepare,
    say,
)
from ._losses import Loss
from ._rundir import RunDir, json_number
from ._sharding import localize
from ._step import train_step
from ._tolerance import (
    ToleranceSchedule,
    resolve_changes,
    solver_of,
    swap_solvers,
)


@dataclasses.dataclass
class TrainResult:
    """What [`fit`][odezoo.train.fit] returns.

    Fields:

    - `model`: the trained model.
    - `opt_state`: the optimiser state (of the trained part of the model), to continue
      training with the same optimiser.
    - `step`: the number of completed training steps (including resumed ones).
    - `key`: the raw data of the training PRNG key after the last step.
    - `history`: the training records logged by this call (dicts with `step`, `loss`,
      `nfe_forward`, `nfe_backward`, `step_time`, ...), as in `metrics.jsonl`.
    - `evals`: the evaluation records of this call.
    - `adjoint_checks`: for a model whose solver has `adjoint="auto"`, the records of
      this call's reversibility checks (`"kind": "adjoint"`, as in `metrics.jsonl`):
      `step` (completed steps after the checked step), `adjoint` (the choice for the
      steps until the next check), `reversibility_error` and `switched`; empty
      otherwise.
    - `summary`: the final summary, as in `metrics.json`.
    - `steps_run`: the steps this call took: 0 when `resume` found a finished run
      (nothing was left to do, and its files were left as they were).
    """

    model: Any
    opt_state: Any
    step: int
    key: Any
    history: list[dict]
    evals: list[dict]
    summary: dict
    steps_run: int = 0
    adjoint_checks: list[dict] = dataclasses.field(default_factory=list)

    @property
    def losses(self) -> np.ndarray:
        """The logged training losses, in step order."""
        return np.array([r["loss"] for r in self.history], dtype=float)


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

    A step whose batch holds NaN/inf, whose loss or gradient is not finite, or whose ODE
    solve fails (`max_steps` reached, a stalled or diverging solve) leaves the model
    untouched and stops the run with a [`TrainingError`][odezoo.train.TrainingError]
    naming the step and the cause, a [`Failure`][odezoo.train.Failure] member. The last
    good checkpoint is never overwritten.

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
      [`odezoo.losses.mse`][odezoo.losses.mse] and friends).
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
      reuse their compiled step); change tolerances rarely. A schedule may not change
      the adjoint of a model whose adjoint is `"auto"`.

    - `evaluate`: a function `model -> dict of metrics`, called every `eval_every`
      steps and at the end; its results go to `metrics.jsonl` (`"kind": "eval"`) and
      to the summary.
    - `eval_every`: steps between evaluations (`None`: only at the end).
    - `log_every`: steps between logged training records.
    - `callback`: `callback(step, record, model)` after every step; returning `True`
      stops training early (with a checkpoint, so the run can be resumed). The model
      passed is valid until the next step (its buffers are donated).
    - `run_dir`: a new or empty directory for the run's files: `config.json`,
      `metrics.jsonl`, `metrics.json`, `training.png`, `checkpoint.ckpt`, `model.eqx`
      (see [`RunDir`][odezoo.train.RunDir]). Files already there are never
      overwritten: a directory holding anything else raises
      [`RunDirError`][odezoo.RunDirError] (see
      `check_run_dir`). `None`: nothing is written.
    - `config`: the run's config (see `odezoo.config`), written to `config.json`; its
      hash is stored in checkpoints and checked on resume. Without it no `config.json`
      is written, so `odezoo eval` and `odezoo.zoo.load` cannot rebuild the model; load
      its weights with [`load_model`][odezoo.train.load_model]`(run_dir / "model.eqx",
      like=model)`.
    - `checkpoint_every`: steps between checkpoints (`None`: only at the end).
    - `resume`: continue the run in `run_dir` from its checkpoint, exactly as if never
      interrupted (same parameters bit for bit); a run that stopped before its first
      checkpoint starts again from step 0. A finished run (`steps` already taken) is
      left as it is and returned with `steps_run == 0`; `steps` below the steps taken,
      or a directory with nothing to resume, raise [`RunDirError`][odezoo.RunDirError].
    - `mesh`: the device mesh (default [`data_mesh`][odezoo.train.data_mesh]).
    - `progress`: show a tqdm progress bar with the loss and NFE.

    A model whose solver has `adjoint="auto"` (see [`Solver`][odezoo.Solver]) is
    trained with the adjoint chosen by a reversibility check: the step taken when the
    number of completed steps is a multiple of the solver's `check_every` (step 0
    included) runs as `"checked"` (its gradient is backsolve's if the reverse
    reconstruction passed, checkpointing's otherwise), and the steps until the next
    check use `"backsolve"` if it passed and `"checkpoint"` if it fell back. Each check
    is logged (a `"kind": "adjoint"` record in `metrics.jsonl` and
    `TrainResult.adjoint_checks`; train records carry the step's `"adjoint"`), the
    first decision and every switch are printed, and each of the three adjoints
    compiles the step once. Checkpoints, the saved model and the result keep
    `adjoint="auto"`; a resumed run continues with the choice in force at its
    checkpoint, bit for bit as if never interrupted.

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
    steps = count_arg("steps", steps, minimum=0)
    log_every = count_arg("log_every", log_every, minimum=1)
    eval_every = count_arg("eval_every", eval_every, minimum=1, optional=True)
    checkpoint_every = count_arg("checkpoint_every", checkpoint_every, minimum=1, optional=True)
    if resume and run_dir is None:
        raise InputError("resume=True needs the run_dir to resume from")
    optimizer = optax.adam(1e-3) if optimizer is None else optimizer
    setup = Setup(
        steps=steps,
        evaluate=evaluate,
        eval_every=eval_every,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
        callback=callback,
        **prepare(model, data, loss, optimizer, batch_size, key, trainable, tolerance, mesh),
        auto=auto_adjoint_of(model),
        throw=solver_of(model) is None or solver_of(model).throw,
        **open_run(run_dir, config, resume, steps),
    )
    state = initial_state(setup, model, trainable, optimizer, key, resume)
    if state.resumed_from == steps and finished_summary(setup) is not None:
        return _result(setup, state, finished_summary(setup), steps_run=0)
    bar = tqdm(total=steps, initial=state.step, disable=not (progress and setup.main), desc="train")
    try:
        while state.step < steps:
            _change_tolerance(setup, state)
            _choose_adjoint(setup, state)
            record = _take_step(setup, state)
            if state.checking:
                _log_check(setup, state, record)
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4g}", nfe=record["nfe_forward"], refresh=False)
            if evaluate is not None and _due(state.step, setup.eval_every):
                _evaluate(setup, state)
            stop = None
            if callback is not None:
                stop = callback(state.step, record, state.public(setup)[0])
            if _due(state.step, setup.checkpoint_every):
                _checkpoint(setup, state)
            if stop is True:
                state.status = "stopped"
                break
    except TrainingError as e:
        _write_failure(setup, state, e)
        raise
    finally:
        bar.close()
    return _finish(setup, state)


# -- the steps of the loop ------------------------------------------------------------


def _due(step: int, every: int | None) -> bool:
    return every is not None and step % every == 0


def _change_tolerance(setup: Setup, state: State) -> None:
    """Apply the tolerance schedule's solver changes for this step, if they changed."""
    changes = resolve_changes(setup.schedule, state.step)
    if changes is not None and changes != state.changes:
        _check_schedule(setup, changes, state.step)
        state.params, state.static, state.opt_state = swap_solvers(
            (state.params, state.static, state.opt_state), changes
        )
        state.changes = changes


# What a tolerance schedule may not change under "auto": the adjoint and its options.
_AUTO_FIELDS = ("adjoint", *(f.name for f in dataclasses.fields(AutoAdjoint)))


def _check_schedule(setup: Setup, changes: dict, step: int) -> None:
    """A tolerance schedule may not fight the `"auto"` adjoint's choices."""
    touched = [k for k in _AUTO_FIELDS if k in changes]
    to_auto = "adjoint" in changes and isinstance(parse_adjoint(changes["adjoint"]), AutoAdjoint)
    if (setup.auto is not None and touched) or to_auto:
        raise InputError(
            f"the tolerance schedule changes {touched} at step {step}, but the adjoint "
            "'auto' chooses the adjoint itself: set adjoint='auto' (and check_every) on the "
            "model's solver and leave them out of the schedule, or use another adjoint"
        )


def _choose_adjoint(setup: Setup, state: State) -> None:
    """For `"auto"`: swap the solvers to the adjoint of the step about to be taken,
    `"checked"` at a check (every `check_every` completed steps, and whenever no choice
    is in force), else the last check's choice."""
    if setup.auto is None:
        return
    state.checking = state.adjoint is None or state.step % setup.auto.check_every == 0
    adjoint = setup.auto.check if state.checking else state.adjoint
    if state.solver.adjoint != adjoint:
        state.params, state.static, state.opt_state = swap_solvers(
            (state.params, state.static, state.opt_state), {"adjoint": adjoint}
        )
    state.adjoint_steps[adjoint.name] = state.adjoint_steps.get(adjoint.name, 0) + 1


def _log_check(setup: Setup, state: State, record: dict) -> None:
    """Record the check just taken and the adjoint it chooses for the next steps."""
    error = record.get("reversibility_error")
    adjoint = setup.auto.choice(record.get("fell_back"))
    previous, state.adjoint = state.adjoint, adjoint
    switched = previous is not None and previous != adjoint
    rec = {
        "kind": "adjoint",
        "step": state.step,
        "adjoint": adjoint.name,
        "reversibility_error": error,
        "check_threshold": setup.auto.check_threshold,
        "switched": switched,
    }
    state.adjoint_checks.append(rec)
    if setup.run is not None:
        setup.run.append(rec)
    if previous is None or switched:
        threshold = f"check_threshold {setup.auto.check_threshold:g}"
        if error is None:
            why = "reversibility error not finite"
        else:
            why = f"reversibility error {error:.3g} {'<=' if adjoint.name == 'backsolve' else '>'} "
            why += threshold
        what = f"chose {adjoint.name}"
        if switched:
            what = f"switched {previous.name} -> {adjoint.name}"
        every = setup.auto.check_every
        say(
            setup,
            f"fit: step {state.step}: adjoint 'auto' {what} ({why}); next check at step "
            f"{(state.step - 1) // every * every + every + 1}",
        )


def _take_step(setup: Setup, state: State) -> dict:
    """Run one train step; raise `TrainingError` if it failed, else record it."""
    solver = state.solver
    counting = solver is not None and solver.count_evals
    t0 = time.perf_counter()
    with count_evaluations() if counting else contextlib.nullcontext() as counter:
        state.params, state.opt_state, state.key_data, out = train_step(
            (setup.plan, state.static, setup.arrays),
            state.params,
            state.opt_state,
            state.key_data,
        )
        jax.block_until_ready((state.params, state.opt_state, state.key_data, out))
    dt = time.perf_counter() - t0
    value, stats, penalties, failure = out
    if failure != Failure.successful:
        stopped = (failure == Failure.max_steps) | (failure == Failure.solve_diverged)
        detail = f"it stopped at t={json_number(stats.t_reached)}" if bool(stopped) else None
        raise _training_error(setup, state, failure, detail=detail)
    state.step += 1
    state.times.append(dt)
    return _record(setup, state, value, stats, penalties, dt, counter.vjp if counting else None)


def _training_error(setup, state, failure, *, detail: str | None) -> TrainingError:
    """The `TrainingError` of a failed step, with the model as it was before it."""
    state.status = "failed"
    step, solver = state.step + 1, state.solver
    what = Failure[failure]
    if detail is not None:  # where the solve stopped, and with which solver
        with_solver = f", with {solver.describe()}" if solver is not None else ""
        what = f"{what} ({detail}{with_solver})"
    run = setup.run
    if run is None:
        note = "No checkpoint is kept (pass run_dir to keep one)."
    elif state.last_saved is None:
        note = f"No checkpoint had been written yet in {run.path}."
    else:
        note = f"The last good checkpoint (step {state.last_saved}) is kept at {run.checkpoint}."
    return TrainingError(
        f"training stopped at step {step} of {setup.steps}: {what}; the model was not updated "
        f"by this step. {note}",
        step=step,
        cause=failure_name(failure),
        checkpoint=str(run.checkpoint)
        if run is not None and state.last_saved is not None
        else None,
        model=localize(state.public(setup)[0]),
    )


def _record(
    setup: Setup, state: State, value, stats, penalties: dict, dt: float, vjps: int | None
) -> dict:
    """The training record of the step just taken; logged every `log_every` steps."""
    rec = {"kind": "train", "step": state.step, "loss": float(value), "step_time": dt}
    rec["nfe_forward"] = rec["nfe_backward"] = None
    solver = state.solver
    if stats is not None:
        rec["nfe_forward"] = json_number(stats.nfe)
        rec["nfe_backward"] = vjps if vjps is not None else json_number(stats.nfe_backward)
        rec["solver_steps"] = json_number(stats.num_steps)
        rec["rejected_steps"] = json_number(stats.num_rejected_steps)
        if solver is not None and solver.adjoint.checks_reversibility:
            rec["fell_back"] = json_number(stats.fell_back)
            rec["reversibility_error"] = json_number(stats.reversibility_error)
    if setup.auto is not None:
        rec["adjoint"] = solver.adjoint.name
    rec.update({f"penalty_{name}": json_number(v) for name, v in penalties.items()})
    if state.changes is not None:
        rec.update({f"solver_{k}": json_number(v) for k, v in state.changes.items()})
    if _due(state.step, setup.log_every) or state.step == setup.steps:
        state.history.append(rec)
        if setup.run is not None:
            setup.run.append(rec)
    return rec


def _evaluate(setup: Setup, state: State) -> None:
    metrics = setup.evaluate(localize(state.public(setup)[0]))
    rec = {"kind": "eval", "step": state.step, **{k: json_number(v) for k, v in metrics.items()}}
    state.evals.append(rec)
    if setup.run is not None:
        setup.run.append(rec)


def _checkpoint(setup: Setup, state: State) -> None:
    if setup.run is None:
        return
    if setup.main:
        model, opt_state = state.public(setup)
        save_checkpoint(
            setup.run.checkpoint,
            model=model,
            opt_state=opt_state,
            step=state.step,
            key=state.key_data,
            config_hash=setup.config_hash,
        )
    state.last_saved = state.step


# -- after the loop -------------------------------------------------------------------


def _write_failure(setup: Setup, state: State, err: TrainingError) -> None:
    run = setup.run
    if run is not None:
        run.write_summary(_summary(setup, state, error=str(err), cause=err.cause))
        run.write_figure(title=f"{run.path.name} (failed at step {err.step})")


def _finish(setup: Setup, state: State) -> TrainResult:
    """The final evaluation, checkpoint, weights, summary and figure."""
    if setup.evaluate is not None and not (state.evals and state.evals[-1]["step"] == state.step):
        _evaluate(setup, state)
    if state.last_saved != state.step:
        _checkpoint(setup, state)
    summary = _summary(setup, state)
    run = setup.run
    if run is not None:
        if setup.main:
            save_model(run.file(RunDir.MODEL), localize(state.public(setup)[0]))
        run.write_summary(summary)
        run.write_figure(title=Path(run.path).name)
    return _result(setup, state, summary, steps_run=state.step - state.start)


def _result(setup: Setup, state: State, summary: dict, steps_run: int) -> TrainResult:
    model, opt_state = state.public(setup)
    return TrainResult(
        model=localize(model),
        opt_state=localize(opt_state),
        step=state.step,
        key=localize(state.key_data),
        history=state.history,
        evals=state.evals,
        summary=summary,
        steps_run=steps_run,
        adjoint_checks=state.adjoint_checks,
    )


def _summary(setup: Setup, state: State, **extra) -> dict:
    times, history = state.times, state.history
    rest = times[1:]
    median = statistics.median(rest) if rest else None
    first = times[0] if times else None
    nfes = [r["nfe_forward"] for r in history if r.get("nfe_forward") is not None]
    if history:
        last = history[-1]
    else:  # a resumed run that took no step: its last logged record
        logged = setup.run.records() if setup.run is not None else []
        last = next((r for r in reversed(logged) if r.get("kind") == "train"), {})
    evals = state.evals
    out = {
        "status": state.status,
        "steps": state.step,
        "resumed_from": state.resumed_from,
        "steps_this_process": state.step - state.start,
        "final_loss": last.get("loss"),
        "nfe_forward_final": last.get("nfe_forward"),
        "nfe_backward_final": last.get("nfe_backward"),
        "nfe_forward_mean": statistics.fmean(nfes) if nfes else None,
        # The first step of a process compiles the train step (or loads it from the
        # persistent cache); it is reported apart from the steady-state step time.
        "first_step_time_s": first,
        "compile_time_s": None if first is None else max(first - (median or 0.0), 0.0),
        "step_time_median_s": median,
        "total_time_s": time.perf_counter() - state.t_start,
        "batch_size": setup.batch_size,
        "trainable_parameters": setup.trainable_parameters,
        "num_devices": int(setup.mesh.size),
        "num_processes": jax.process_count(),
        "backend": jax.default_backend(),
        "jax_version": jax.__version__,
        "eval": {k: v for k, v in evals[-1].items() if k != "kind"} if evals else None,
    }
    if setup.auto is not None:
        # Steps this process took with each adjoint, and its checks' choices.
        out["adjoint_steps"] = dict(state.adjoint_steps)
        out["adjoint_checks"] = len(state.adjoint_checks)
        out["adjoint_final"] = None if state.adjoint is None else state.adjoint.name
    out.update(extra)
    return out
