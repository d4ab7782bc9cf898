"""odezoo.train: the fit loop, losses, freezing, sharding, checkpoints, failures, run dirs.

Compiling an ODE train step takes seconds on a small CPU, so the tests share compiled
steps where they can: `fit` reuses a compiled step when the loss, the optimiser object,
the batch rule and the model's static settings are the same (hence the module-level
optimisers and models below).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import odezoo
from odezoo.losses import nll
from odezoo.train import (
    CheckpointError,
    Failure,
    RunDirError,
    TrainingError,
    fit,
    load_model,
    piecewise_tolerance,
    save_model,
    trainable_spec,
)
from odezoo.train import _checkpoint as checkpoint_module
from odezoo.train._checkpoint import load_checkpoint, read_header, save_checkpoint

HERE = Path(__file__).parent
ADAM = optax.adam(1e-2)
SGD = optax.sgd(0.01)
EULER = odezoo.Solver(solver=diffrax.Euler(), dt0=0.25, max_steps=5)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))]


def _identical(a, b) -> bool:
    la, lb = _leaves(a), _leaves(b)
    return len(la) == len(lb) and all(
        x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
        for x, y in zip(la, lb, strict=True)
    )


def _cubic_small():
    x = np.linspace(-1, 1, 8, dtype=np.float32)[:, None]
    return x, x**3 + 0.1 * x


def _euler_odenet():
    return odezoo.ODENet(1, width_size=8, solver=EULER, key=jax.random.key(0))


def _classifier(key=0):
    k1, k2, k3 = jax.random.split(jax.random.key(key), 3)
    return odezoo.Classifier(
        stem=eqx.nn.Linear(2, 4, key=k1),
        block=odezoo.MLP(4, 4, width_size=8, key=k2),
        head=eqx.nn.Linear(4, 2, key=k3),
    )


# -- losses and model types -------------------------------------------------------------


@pytest.mark.slow
def test_odenet_regression_with_tolerance_schedule_and_run_dir(tmp_path):
    x, y = odezoo.data.cubic()
    net = odezoo.ODENet(1, width_size=20, init="normal", key=jax.random.key(0))
    schedule = [(0, {"rtol": 1e-2, "atol": 1e-2}), (3, {"rtol": 1e-6, "atol": 1e-6})]
    evaluate = lambda m: {"rtol": m.solver.rtol, "t1": m.t1}
    run = tmp_path / "run"
    result = fit(
        net,
        (x, y),
        loss="mse",
        optimizer=SGD,
        steps=6,
        key=jax.random.key(1),
        tolerance=schedule,
        evaluate=evaluate,
        eval_every=3,
        run_dir=run,
        config={"name": "test"},
        checkpoint_every=2,
    )
    h = result.history
    assert [r["step"] for r in h] == [1, 2, 3, 4, 5, 6]
    assert [r["solver_rtol"] for r in h] == [1e-2] * 3 + [1e-6] * 3
    assert result.losses[-1] < result.losses[0]
    # Tighter tolerances need more evaluations; the checkpointed adjoint differentiates
    # each forward evaluation once (bar those choosing the initial step, if counted).
    assert min(r["nfe_forward"] for r in h[3:]) > max(r["nfe_forward"] for r in h[:3])
    assert all(r["nfe_forward"] - 2 <= r["nfe_backward"] <= r["nfe_forward"] for r in h)
    assert all(r["step_time"] > 0 for r in h)
    assert result.model.solver.rtol == 1e-6  # the schedule's last value

    names = {p.name for p in run.iterdir()}
    expected = {"config.json", "metrics.jsonl", "metrics.json", "training.png"}
    assert expected | {"checkpoint.ckpt", "model.eqx"} <= names
    assert not [n for n in names if ".tmp" in n]
    assert json.loads((run / "config.json").read_text()) == {"name": "test"}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [(r["step"], r["rtol"]) for r in evals] == [(3, 1e-2), (6, 1e-6)]
    assert {"loss", "nfe_forward", "nfe_backward", "step_time"} <= set(records[0])
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 6
    assert summary["compile_time_s"] > 0 and summary["step_time_median_s"] > 0
    assert summary["eval"] == {"step": 6, "rtol": 1e-6, "t1": 1.0}
    assert (run / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_header(run / "checkpoint.ckpt")[0]["step"] == 6
    assert _identical(load_model(run / "model.eqx", net), result.model)


@pytest.mark.slow
def test_max_steps_mid_training_stops_with_step_and_keeps_checkpoint(tmp_path):
    x, y = _cubic_small()
    run = tmp_path / "run"
    # Euler with dt0 = 0.25 takes 4 steps; from the third training step on, dt0 = 0.1
    # needs 10, above max_steps = 5.
    with pytest.raises(TrainingError) as info:
        fit(
            _euler_odenet(),
            (x, y),
            optimizer=ADAM,
            steps=6,
            batch_size=4,
            key=jax.random.key(0),
            tolerance=[(2, {"dt0": 0.1})],
            run_dir=run,
            checkpoint_every=1,
        )
    err = info.value
    assert err.step == 3 and err.cause == "max_steps"
    assert "step 3" in str(err) and "max_steps" in str(err)
    assert "checkpoint (step 2)" in str(err)
    ck = load_checkpoint(
        run / "checkpoint.ckpt",
        model=_euler_odenet(),
        opt_state=ADAM.init(eqx.filter(_euler_odenet(), eqx.is_inexact_array)),
        key=jax.random.key_data(jax.random.key(0)),
    )
    assert ck.step == 2
    assert json.loads((run / "metrics.json").read_text())["status"] == "failed"


def test_solve_failures_from_statistics_when_errors_are_nan(background):
    # The CLI's mode (EQX_ON_ERROR=nan: no host callbacks, so the persistent compilation
    # cache can store the step), in a fresh process since equinox reads it at import:
    # the failure is read from the solve statistics, and the model survives in memory.
    report = background.result("nan")
    budget, diverged = report["max_steps"], report["diverged"]
    assert budget["cause"] == "max_steps" and budget["step"] == 3
    assert "step 3" in budget["message"] and "Raise max_steps" in budget["message"]
    assert "dt0=0.05" in budget["message"]
    # A diverging run is not reported as a step budget to raise.
    assert diverged["cause"] == "solve_diverged"
    assert "Raising max_steps will not help" in diverged["message"]
    assert "learning rate" in diverged["message"]
    assert budget["model_finite"] and diverged["model_finite"]


def test_failure_is_an_enumeration_with_messages():
    from odezoo.train._failure import failure_name, first_failure

    names = ["bad_batch", "nonfinite_loss", "nonfinite_grad", "max_steps", "solve_diverged"]
    for name in names + ["solve_nonfinite"]:
        member = getattr(Failure, name)
        assert failure_name(member) == name and Failure[member]
    assert Failure[Failure.successful] == ""

    @jax.jit
    def pick(flags):  # the first failed check wins, inside jit
        return first_failure([(flags[i], getattr(Failure, n)) for i, n in enumerate(names)])

    assert failure_name(pick(jnp.array([False, True, True, False, False]))) == "nonfinite_loss"
    assert failure_name(pick(jnp.zeros(5, bool))) == "successful"


def test_classification_cross_entropy_and_no_nfe_for_plain_networks():
    x, labels = odezoo.data.concentric_spheres(
        n_inner=64, n_outer=64, labels="classes", key=jax.random.key(0)
    )
    result = fit(
        _classifier(),
        (x, labels),
        loss="cross_entropy",
        optimizer=ADAM,
        steps=40,
        batch_size=32,
        key=jax.random.key(1),
    )
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5])
    assert result.history[0]["nfe_forward"] is None
    assert result.history[0]["nfe_backward"] is None
    logits = result.model.batch(x)
    assert float(jnp.mean(jnp.argmax(logits, axis=1) == labels)) > 0.6


def test_mse_is_the_seed_formula_and_custom_losses_work():
    x, y = _cubic_small()
    net = odezoo.MLP(1, 1, width_size=4, key=jax.random.key(0))
    first = fit(net, (x, y), loss="mse", optimizer=SGD, steps=1, key=jax.random.key(0))
    pred = net.batch(x)
    assert first.losses[0] == pytest.approx(float(jnp.mean(jnp.sum((pred - y) ** 2, axis=1))))

    def l1(model, batch, key):
        xb, yb = batch
        out, stats = model.apply(xb, key=key)
        return jnp.mean(jnp.abs(out - yb)), stats

    result = fit(net, (x, y), loss=l1, optimizer=SGD, steps=20, key=jax.random.key(0))
    assert result.losses[0] == pytest.approx(float(jnp.mean(jnp.abs(pred - y))))
    assert result.losses[-1] < result.losses[0]


def test_cnf_negative_log_likelihood_with_hutchinson_and_sampler():
    flow = odezoo.CNF(
        2,
        hidden=(8,),
        trace="hutchinson",
        kinetic=0.01,
        jacobian=0.01,
        solver=odezoo.Solver(solver=diffrax.Euler(), dt0=0.25),
        key=jax.random.key(0),
    )
    sample = lambda key, n: odezoo.data.toy2d("8gaussians", n, key=key)
    traces = []

    def counted_nll(model, batch, key):  # runs once per trace of the train step
        traces.append(1)
        return nll(model, batch, key)

    result = fit(
        flow,
        sample,
        loss=counted_nll,
        optimizer=ADAM,
        steps=3,
        batch_size=16,
        key=jax.random.key(1),
    )
    # One compiled step serves every step (the flow's weakly typed time parameter must
    # not make the second step compile again).
    assert len(traces) == 1
    assert np.all(np.isfinite(result.losses))
    assert result.history[0]["nfe_forward"] == 4  # Euler: 4 steps of one evaluation
    assert result.history[0]["nfe_backward"] == 4
    assert result.summary["trainable_parameters"] > 0


# -- fine-tuning ----------------------------------------------------------------------------


def test_freezing_keeps_frozen_leaves_bit_identical_and_new_optimizer_continues():
    x, labels = odezoo.data.concentric_spheres(
        n_inner=32, n_outer=32, labels="classes", key=jax.random.key(0)
    )
    trained = fit(
        _classifier(),
        (x, labels),
        loss="cross_entropy",
        optimizer=ADAM,
        steps=5,
        batch_size=16,
        key=jax.random.key(1),
    ).model

    # Train only the head, with a new optimiser.
    head_only = fit(
        trained,
        (x, labels),
        loss="cross_entropy",
        optimizer=optax.sgd(0.5),
        steps=5,
        batch_size=16,
        key=jax.random.key(2),
        trainable=lambda m: m.head,
    ).model
    assert _identical(head_only.stem, trained.stem)
    assert _identical(head_only.block, trained.block)
    assert not _identical(head_only.head, trained.head)

    # Train only the block, with a filter spec (a pytree of bools).
    spec = jax.tree_util.tree_map(lambda _: False, trained)
    spec = eqx.tree_at(
        lambda s: s.block, spec, replace=jax.tree_util.tree_map(lambda _: True, spec.block)
    )
    block_only = fit(
        trained,
        (x, labels),
        loss="cross_entropy",
        optimizer=ADAM,
        steps=3,
        batch_size=16,
        key=jax.random.key(3),
        trainable=spec,
    ).model
    assert _identical(block_only.stem, trained.stem)
    assert _identical(block_only.head, trained.head)
    assert not _identical(block_only.block, trained.block)

    assert jax.tree_util.tree_leaves(trainable_spec(trained, lambda m: m.head)).count(True) == 2
    with pytest.raises(ValueError, match="nothing to train"):
        fit(
            trained,
            (x, labels),
            steps=1,
            key=jax.random.key(0),
            trainable=jax.tree_util.tree_map(lambda _: False, trained),
        )


# -- checkpoints and resume ---------------------------------------------------------------


class Killed(Exception):
    pass


def test_resume_after_kill_is_bit_identical(tmp_path):
    x, y = _cubic_small()
    common = dict(optimizer=ADAM, steps=8, batch_size=4, key=jax.random.key(5), checkpoint_every=2)
    full = fit(_euler_odenet(), (x, y), run_dir=tmp_path / "full", **common)

    def kill_at_5(step, record, model):
        if step == 5:
            raise Killed

    with pytest.raises(Killed):
        fit(_euler_odenet(), (x, y), run_dir=tmp_path / "killed", callback=kill_at_5, **common)
    assert read_header(tmp_path / "killed" / "checkpoint.ckpt")[0]["step"] == 4
    with pytest.raises(FileExistsError, match="resume"):
        fit(_euler_odenet(), (x, y), run_dir=tmp_path / "killed", **common)
    resumed = fit(_euler_odenet(), (x, y), run_dir=tmp_path / "killed", resume=True, **common)
    assert resumed.summary["resumed_from"] == 4 and resumed.step == 8
    assert _identical(resumed.model, full.model)
    assert _identical(resumed.opt_state, full.opt_state)
    np.testing.assert_array_equal(resumed.losses, full.losses[4:])
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(1, 9))

    # Stopping after 3 steps (callback returns True) and resuming gives the same, too.
    stop = lambda step, record, model: step == 3
    fit(_euler_odenet(), (x, y), run_dir=tmp_path / "stopped", callback=stop, **common)
    again = fit(_euler_odenet(), (x, y), run_dir=tmp_path / "stopped", resume=True, **common)
    assert again.summary["resumed_from"] == 3
    assert _identical(again.model, full.model)


def _state(width=4, opt=ADAM):
    net = odezoo.MLP(1, 1, width_size=width, key=jax.random.key(0))
    return (
        net,
        opt.init(eqx.filter(net, eqx.is_inexact_array)),
        jax.random.key_data(jax.random.key(1)),
    )


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.ckpt"
    net, opt_state, key = _state()
    save_checkpoint(path, model=net, opt_state=opt_state, step=1, key=key)

    def half_then_fail(f, data):
        f.write(data[: len(data) // 2])
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoint_module, "_write_all", half_then_fail)
    changed = eqx.tree_at(lambda m: m.layers[0].bias, net, net.layers[0].bias + 1)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, model=changed, opt_state=opt_state, step=2, key=key)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.ckpt"]  # no temp file left
    ck = load_checkpoint(path, model=net, opt_state=opt_state, key=key)
    assert ck.step == 1 and _identical(ck.model, net)


def test_corrupt_truncated_and_mismatched_checkpoints_raise_clear_errors(tmp_path):
    path = tmp_path / "checkpoint.ckpt"
    net, opt_state, key = _state()
    save_checkpoint(path, model=net, opt_state=opt_state, step=3, key=key, config_hash="abc")
    data = path.read_bytes()
    load = lambda p, **kw: load_checkpoint(p, model=net, opt_state=opt_state, key=key, **kw)

    (tmp_path / "cut.ckpt").write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        load(tmp_path / "cut.ckpt")
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF
    (tmp_path / "flip.ckpt").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupt"):
        load(tmp_path / "flip.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"hello")
    with pytest.raises(CheckpointError, match="not an odezoo checkpoint"):
        load(tmp_path / "junk.ckpt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load(tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="another config"):
        load(path, config_hash="xyz")

    wide, wide_state, _ = _state(width=5)
    with pytest.raises(CheckpointError, match=r"architecture.*layers\[0\]\.weight"):
        load_checkpoint(path, model=wide, opt_state=wide_state, key=key)
    _, sgd_state, _ = _state(opt=optax.sgd(0.1, momentum=0.9))
    with pytest.raises(CheckpointError, match="optimiser"):
        load_checkpoint(path, model=net, opt_state=sgd_state, key=key)

    save_model(tmp_path / "model.eqx", net)
    with pytest.raises(CheckpointError, match="another architecture"):
        load_model(tmp_path / "model.eqx", wide)
    (tmp_path / "short.eqx").write_bytes((tmp_path / "model.eqx").read_bytes()[:20])
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "short.eqx", net)

    # Resuming a run directory with another architecture fails the same way.
    x, y = _cubic_small()
    run = tmp_path / "run"
    fit(net, (x, y), optimizer=SGD, steps=1, key=jax.random.key(0), run_dir=run)
    with pytest.raises(CheckpointError, match="architecture"):
        fit(wide, (x, y), optimizer=SGD, steps=2, key=jax.random.key(0), run_dir=run, resume=True)


def test_weights_load_under_x64_and_bad_files_say_what_is_wrong(tmp_path):
    net, _, _ = _state()
    path = tmp_path / "model.eqx"
    save_model(path, net)
    data = path.read_bytes()
    # float32 weights load into a model built under x64, widened with the same values.
    with jax.enable_x64(True):
        like = odezoo.MLP(1, 1, width_size=4, key=jax.random.key(3))
        assert jax.tree_util.tree_leaves(like)[0].dtype == jnp.float64
        wide = load_model(path, like)
        for a, b in zip(_leaves(wide), _leaves(net), strict=True):
            assert a.dtype == np.float64 and np.array_equal(a, b.astype(np.float64))
        save_model(tmp_path / "f64.eqx", wide)
    # float64 weights are not narrowed silently.
    with pytest.raises(CheckpointError, match="saved as float64.*jax_enable_x64"):
        load_model(tmp_path / "f64.eqx", net)

    (tmp_path / "empty.eqx").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_model(tmp_path / "empty.eqx", net)
    for cut in (3, 100, len(data) - 3):
        (tmp_path / "cut.eqx").write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated") as info:
            load_model(tmp_path / "cut.eqx", net)
        assert "architecture" not in str(info.value)
    (tmp_path / "junk.eqx").write_bytes(b"not weights at all" * 20)
    with pytest.raises(CheckpointError, match="not an equinox weights file"):
        load_model(tmp_path / "junk.eqx", net)
    with pytest.raises(CheckpointError, match=r"layers\[0\]\.weight.*another architecture"):
        load_model(path, odezoo.MLP(1, 1, width_size=5, key=jax.random.key(0)))


def test_zoo_entries_load_under_x64(x64):
    from odezoo import zoo

    model = zoo.load("seed-cubic-odenet")
    assert all(leaf.dtype == jnp.float64 for leaf in _leaves(model) if leaf.dtype.kind == "f")


# -- run directories never lose a user's files -------------------------------------------


def _mlp_fit(run, **kw):
    x, y = _cubic_small()
    net = odezoo.MLP(1, 1, width_size=4, key=jax.random.key(0))
    args = dict(optimizer=SGD, steps=4, batch_size=4, key=jax.random.key(0), run_dir=run)
    return fit(net, (x, y), **{**args, **kw})


def _files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_directory_that_is_not_a_resumable_run_is_never_overwritten(tmp_path):
    done = tmp_path / "done"
    _mlp_fit(done, config={"name": "x"})
    (done / "checkpoint.ckpt").unlink()  # e.g. a copy of a zoo entry: weights, no checkpoint
    before = _files(done)
    with pytest.raises(RunDirError, match="not empty.*overwrite"):
        _mlp_fit(done)
    with pytest.raises(RunDirError, match="nothing to resume"):
        _mlp_fit(done, resume=True)
    assert _files(done) == before
    with pytest.raises(RunDirError, match="does not exist"):
        _mlp_fit(tmp_path / "missing", resume=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="is empty"):
        _mlp_fit(tmp_path / "empty", resume=True)
    assert not (tmp_path / "missing").exists() and not list((tmp_path / "empty").iterdir())


def test_resume_of_a_finished_run_keeps_its_summary(tmp_path):
    run = tmp_path / "run"
    first = _mlp_fit(run)
    before = _files(run)
    again = _mlp_fit(run, resume=True)  # nothing left to do
    assert again.steps_run == 0 and again.step == 4
    assert again.summary == first.summary and again.summary["final_loss"] is not None
    assert _identical(again.model, first.model)
    assert _files(run) == before
    with pytest.raises(RunDirError, match="already taken 4 steps"):
        _mlp_fit(run, resume=True, steps=np.int64(2))
    assert _files(run) == before
    more = _mlp_fit(run, resume=True, steps=6)  # more steps continue the run
    assert more.steps_run == 2 and more.summary["resumed_from"] == 4
    assert more.summary["steps"] == 6 and more.summary["final_loss"] is not None
    steps = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert steps == list(range(1, 7))


def test_restart_before_the_first_checkpoint_logs_each_step_once(tmp_path):
    run = tmp_path / "run"

    def kill_at_3(step, record, model):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        _mlp_fit(run, callback=kill_at_3, config={"name": "x"})
    assert not (run / "checkpoint.ckpt").exists()
    with pytest.raises(RunDirError, match="before its first checkpoint.*resume"):
        _mlp_fit(run)
    result = _mlp_fit(run, resume=True, config={"name": "x"})
    assert result.summary["resumed_from"] == 0 and result.step == 4
    steps = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert steps == [1, 2, 3, 4]


def test_numpy_and_jax_integers_are_accepted():
    x, y = _cubic_small()
    net = odezoo.MLP(1, 1, width_size=4, key=jax.random.key(0))
    result = fit(
        net,
        (x, y),
        optimizer=SGD,
        steps=np.int64(3),
        batch_size=np.int32(4),
        log_every=jnp.asarray(1),
        eval_every=np.int64(3),
        evaluate=lambda m: {"one": 1},
        key=jax.random.key(0),
    )
    assert result.step == 3 and len(result.history) == 3
    with pytest.raises(odezoo.InputError, match="steps must be a non-negative int"):
        fit(net, (x, y), steps=np.float32(3), key=jax.random.key(0))
    with pytest.raises(odezoo.InputError, match="log_every must be a positive int"):
        fit(net, (x, y), steps=3, log_every=0, key=jax.random.key(0))


# -- bad data and divergence ----------------------------------------------------------------


def test_nan_batch_stops_naming_the_step_and_keeps_last_good_checkpoint(tmp_path):
    x, y = _cubic_small()
    x[0, 0] = np.nan  # drawn for the first time at step 6 with this key
    net = odezoo.MLP(1, 1, width_size=4, key=jax.random.key(0))
    run = tmp_path / "run"
    with pytest.raises(TrainingError) as info:
        fit(
            net,
            (x, y),
            optimizer=optax.sgd(0.1),
            steps=20,
            batch_size=2,
            key=jax.random.key(4),
            run_dir=run,
            checkpoint_every=1,
        )
    err = info.value
    assert err.cause == "bad_batch" and err.step == 6
    assert "step 6" in str(err) and "NaN" in str(err)
    _, opt_state, key = _state(opt=optax.sgd(0.1))
    ck = load_checkpoint(run / "checkpoint.ckpt", model=net, opt_state=opt_state, key=key)
    assert ck.step == 5
    assert all(np.all(np.isfinite(leaf)) for leaf in _leaves(ck.model))
    assert _identical(err.model, ck.model)  # the step did not touch the model
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "failed" and summary["cause"] == "bad_batch"


def test_divergence_stops_naming_the_step(tmp_path):
    x, y = _cubic_small()
    net = odezoo.MLP(1, 1, width_size=4, key=jax.random.key(0))
    run = tmp_path / "run"
    with pytest.raises(TrainingError) as info:
        fit(
            net,
            (x, y),
            optimizer=optax.sgd(1e20),
            steps=10,
            key=jax.random.key(0),
            run_dir=run,
            checkpoint_every=1,
        )
    err = info.value
    assert err.cause in ("nonfinite_loss", "nonfinite_grad") and err.step >= 2
    assert f"step {err.step}" in str(err)
    assert read_header(run / "checkpoint.ckpt")[0]["step"] == err.step - 1


def test_bad_arguments_are_reported_before_training():
    x, y = _cubic_small()
    net = odezoo.MLP(1, 1, width_size=4, key=jax.random.key(0))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="batch_size"):
        fit(net, (x, y), steps=1, batch_size=100, key=key)
    with pytest.raises(ValueError, match="leading"):
        fit(net, (x, y[:3]), steps=1, key=key)
    with pytest.raises(ValueError, match="batch_size is required"):
        fit(net, lambda k, n: x, steps=1, key=key)
    with pytest.raises(ValueError, match="needs the run_dir"):
        fit(net, (x, y), steps=1, key=key, resume=True)
    with pytest.raises(ValueError, match="unknown loss"):
        fit(net, (x, y), loss="l7", steps=1, key=key)
    with pytest.raises(ValueError, match="ODE solver"):
        fit(net, (x, y), steps=1, key=key, tolerance=lambda s: (1e-3, 1e-3))


def test_piecewise_tolerance():
    sched = piecewise_tolerance([(0, {"rtol": 1e-2}), (10, {"rtol": 1e-4})])
    assert sched(0) == {"rtol": 1e-2} and sched(9) == {"rtol": 1e-2}
    assert sched(10) == {"rtol": 1e-4}
    assert piecewise_tolerance([(5, {"rtol": 1e-3})])(0) is None
    with pytest.raises(ValueError, match="increasing"):
        piecewise_tolerance([(5, {}), (1, {})])


# -- devices and hosts (fresh processes) ----------------------------------------------------
#
# The sharded run (4 CPU devices) and the two-process run are started in the background
# when this module starts, so that they overlap with the tests above; the tests at the
# end wait for them.


def _env(**extra):
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent / "src"), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


class _Background:
    def __init__(self, folder: Path):
        self.folder = folder
        self.procs: dict[str, subprocess.Popen] = {}

    def _start(self, name, args, env):
        # The child writes its own copy of the handle; ours is closed at once.
        with open(self.folder / f"{name}.log", "w") as log:
            self.procs[name] = subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "_train_worker.py"),
                    str(self.folder / f"{name}.json"),
                    *args,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start(self):
        self._start(
            "sharded", ["sharded"], _env(XLA_FLAGS="--xla_force_host_platform_device_count=4")
        )
        port = str(_free_port())
        for i in range(2):
            self._start(f"dist{i}", ["dist", port, str(i)], _env(EQX_ON_ERROR="nan"))

    def start_nan(self):
        self._start("nan", ["nan"], _env(EQX_ON_ERROR="nan"))

    def result(self, name, timeout=300):
        proc = self.procs[name]
        try:
            proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
        log = (self.folder / f"{name}.log").read_text()
        assert proc.returncode == 0, f"{name} failed:\n{log[-3000:]}"
        return json.loads((self.folder / f"{name}.json").read_text())

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module", autouse=True)
def background(request, tmp_path_factory):
    bg = _Background(tmp_path_factory.mktemp("background"))
    names = [item.name for item in request.session.items]
    if any(n.startswith(("test_sharded", "test_two_processes")) for n in names):
        bg.start()
    if any(n.startswith("test_solve_failures_from_statistics") for n in names):
        bg.start_nan()
    yield bg
    bg.stop()


def test_sharded_training_matches_single_device(background):
    report = background.result("sharded")
    single, sharded = report["single"], report["sharded"]
    assert single["devices"] == 1 and sharded["devices"] == 4
    np.testing.assert_allclose(sharded["losses"], single["losses"], rtol=1e-5, atol=1e-6)
    assert sharded["nfe"] == single["nfe"]
    assert sharded["params"] == pytest.approx(single["params"], rel=1e-5)


def test_two_processes_agree_with_a_single_process(background):
    single = background.result("sharded")["single"]
    reports = [background.result(f"dist{i}") for i in range(2)]
    for r in reports:
        assert r["processes"] == 2 and r["devices"] == 2
        np.testing.assert_allclose(r["losses"], single["losses"], rtol=1e-5, atol=1e-6)
        assert r["params"] == pytest.approx(single["params"], rel=1e-5)
    assert reports[0]["losses"] == reports[1]["losses"]
