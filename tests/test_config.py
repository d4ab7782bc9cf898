"""odezoo.config (the run-config schema and its builders) and the odezoo.zoo registry."""

import json

import equinox as eqx
import jax
import numpy as np
import optax
import pytest

import odezoo
from odezoo import zoo
from odezoo.config import (
    ConfigError,
    build_data,
    build_evaluate,
    build_loss,
    build_model,
    build_optimizer,
    build_tolerance,
    full_config,
    parse_value,
    set_value,
)
from odezoo.train import fit, mse
from odezoo.train._rundir import config_hash

MLP_CFG = {
    "model": {"type": "mlp", "in_size": 1, "out_size": 1, "width": 4},
    "data": {"name": "cubic", "n": 8},
    "train": {"steps": 2},
}


def test_full_config_spells_out_every_default_and_is_idempotent():
    cfg = full_config(zoo.config("seed-cubic-odenet"))
    assert cfg["model"]["augment"] == 0 and cfg["model"]["t1"] == 1.0
    assert cfg["solver"] == odezoo.Solver().to_config()
    assert cfg["train"]["loss"] == "mse" and cfg["train"]["tolerance_schedule"] is None
    assert full_config(cfg) == cfg
    json.dumps(cfg)  # plain JSON data
    cnf = full_config(
        {
            "model": {"type": "cnf", "data_size": 2},
            "data": {"name": "toy2d", "density": "moons"},
            "train": {"steps": 1},
        }
    )
    assert cnf["solver"]["rtol"] == 1e-5 and cnf["train"]["loss"] == "nll"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("model.widht", 3), "unknown key(s) ['widht'] in model (mlp)"),
        (("model.type", "transformer"), "unknown model type 'transformer'"),
        (("model.activation", "mish"), "unknown activation 'mish'"),
        (("data.name", "imagenet"), "data needs a 'name'"),
        (("train.optimizer", "lion"), "unknown optimizer 'lion'"),
        (("train.steps", -1), "train.steps must be a non-negative int"),
        (("train.lr", 0), "train.lr must be a positive number"),
        (("solver.rtol", 1e-3), "has no ODE solver"),
        (("train.tolerance_schedule", [[0, {"rtol": 1e-3}]]), "needs an ODE model"),
        (("seed", "zero"), "seed must be an int"),
    ],
)
def test_bad_configs_name_the_problem(change, message):
    with pytest.raises(ConfigError, match=".*".join(map(_escape, message.split("*")))):
        full_config(set_value(MLP_CFG, *change))


def _same(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


def _escape(text):
    import re

    return re.escape(text)


def test_set_value_and_parse_value():
    cfg = set_value(MLP_CFG, "solver.rtol", parse_value("1e-4"))
    assert cfg["solver"] == {"rtol": 1e-4} and "solver" not in MLP_CFG
    assert parse_value("[64, 64]") == [64, 64] and parse_value("adam") == "adam"
    assert parse_value("null") is None and parse_value("true") is True
    with pytest.raises(ConfigError, match="unknown config section"):
        set_value(MLP_CFG, "modle.width", 3)


def test_config_hash_ignores_steps_and_logging_only():
    base = full_config(MLP_CFG)
    assert config_hash(base) == config_hash(set_value(base, "train.steps", 99))
    assert config_hash(base) == config_hash(set_value(base, "train.log_every", 1))
    assert config_hash(base) != config_hash(set_value(base, "train.lr", 0.5))


def test_build_model_for_every_type():
    def build(model, data=None, real=False):
        cfg = {"model": model, "data": data or {"name": "cubic"}, "train": {"steps": 1}}
        # Abstract (shape-only) models: building them runs no computation.
        return build_model(cfg) if real else eqx.filter_eval_shape(build_model, cfg)

    assert isinstance(build({"type": "mlp", "in_size": 1, "out_size": 1}), odezoo.MLP)
    assert len(build({"type": "resnet", "size": 1, "depth": 3}).blocks) == 3
    ode = build({"type": "odenet", "in_size": 1, "init": "normal"}, real=True)
    assert isinstance(ode, odezoo.ODENet) and ode.augment == 0
    assert build({"type": "anode", "in_size": 2, "out_size": 1}).augment == 5
    cnf = build(
        {"type": "cnf", "data_size": 2, "hidden": [8, 8], "num_blocks": 2},
        {"name": "toy2d", "density": "moons"},
    )
    assert isinstance(cnf, odezoo.CNF) and len(cnf.fields) == 2
    # MNIST-style: conv stem, conv ODE block, pooled linear head, on (1, 8, 8) digits.
    clf_cfg = {
        "model": {
            "type": "classifier",
            "in_shape": [1, 8, 8],
            "num_classes": 10,
            "stem": {"type": "conv", "channels": 4, "stride": 2},
            "block": {"type": "odenet", "dynamics": {"type": "conv", "hidden_channels": 8}},
            "head": {"type": "pool_linear"},
        },
        "solver": {"solver": "Euler", "dt0": 0.5},
        "data": {"name": "digits"},
        "train": {"steps": 1},
    }
    clf = eqx.filter_eval_shape(build_model, clf_cfg)
    assert clf.block.in_shape == (4, 4, 4) and clf.block.solver.dt0 == 0.5
    images = jax.ShapeDtypeStruct((3, 1, 8, 8), np.float32)
    out = jax.eval_shape(lambda x: build_model(clf_cfg).batch(x), images)
    assert out.shape == (3, 10)
    flat = build(
        {
            "type": "classifier",
            "in_shape": 64,
            "num_classes": 10,
            "stem": {"type": "linear", "out_size": 16, "activation": "tanh"},
            "block": {"type": "resnet", "depth": 2},
        },
        {"name": "digits", "flatten": True},
    )
    assert flat.block.size == 16
    # The same config and seed give the same weights.
    again = build({"type": "odenet", "in_size": 1, "init": "normal"}, real=True)
    assert _same(ode, again)


def test_build_data_optimizer_loss_and_tolerance():
    x, y = build_data(MLP_CFG).train
    assert x.shape == (8, 1) and y.shape == (8, 1)
    spheres = build_data({**MLP_CFG, "data": {"name": "spheres", "n_inner": 4, "n_outer": 4}})
    assert spheres.train[0].shape == (8, 2) and not np.array_equal(
        spheres.train[0], spheres.test[0]
    )
    toy = build_data({**MLP_CFG, "data": {"name": "toy2d", "density": "rings", "eval_samples": 10}})
    assert toy.train(jax.random.key(0), 5).shape == (5, 2) and toy.test[0].shape == (10, 2)
    assert hash(toy.train) == hash(
        build_data({**MLP_CFG, "data": {"name": "toy2d", "density": "rings"}}).train
    )
    assert build_loss(MLP_CFG) is mse
    params = eqx.filter(eqx.filter_eval_shape(build_model, MLP_CFG), eqx.is_inexact_array)
    for train in (
        {"optimizer": "adam", "weight_decay": 1e-4, "clip_norm": 1.0},
        {"optimizer": "adamw", "weight_decay": 1e-4, "lr_schedule": "cosine"},
        {"optimizer": "sgd", "momentum": 0.9, "lr_schedule": "warmup_cosine", "warmup_steps": 1},
    ):
        opt = build_optimizer({**MLP_CFG, "train": {"steps": 5, **train}})
        assert isinstance(opt, optax.GradientTransformation)
        eqx.filter_eval_shape(lambda o=opt: o.update(params, o.init(params), params))
    ode_cfg = {
        **MLP_CFG,
        "model": {"type": "odenet", "in_size": 1},
        "train": {"steps": 3, "tolerance_schedule": [[0, {"rtol": 1e-2}], [2, {"rtol": 1e-4}]]},
    }
    assert build_tolerance(ode_cfg)(2) == {"rtol": 1e-4}


def test_zoo_registry_and_loading_a_run(tmp_path, monkeypatch):
    assert "seed-cubic-odenet" in zoo.names()
    with pytest.raises(zoo.UnknownEntryError) as info:
        zoo.config("nope")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert "seed-cubic-odenet" in str(info.value)
    assert isinstance(zoo.create("seed-cubic-odenet", jax.random.key(0)), odezoo.ODENet)

    # Extra entries from $ODEZOO_ZOO_PATH; a run directory loads like an entry.
    entry = tmp_path / "entries" / "tiny-mlp"
    entry.mkdir(parents=True)
    (entry / "config.json").write_text(json.dumps(MLP_CFG))
    monkeypatch.setenv("ODEZOO_ZOO_PATH", str(tmp_path / "entries"))
    assert {"tiny-mlp", "seed-cubic-odenet"} <= set(zoo.names())
    with pytest.raises(FileNotFoundError, match="no trained weights"):
        zoo.load("tiny-mlp")
    cfg = full_config(zoo.config("tiny-mlp"))
    data = build_data(cfg)
    run = tmp_path / "run"
    result = fit(
        build_model(cfg),
        data.train,
        steps=2,
        key=jax.random.key(0),
        run_dir=run,
        config=cfg,
        evaluate=build_evaluate(cfg, data),
    )
    loaded = zoo.load(run)
    assert _same(loaded, result.model)
    assert result.summary["eval"]["loss"] == pytest.approx(build_evaluate(cfg)(loaded)["loss"])


def test_digits_shift_augmentation_sampler():
    import jax
    import numpy as np

    from odezoo.config import ConfigError, build_data

    base = {
        "model": {"type": "mlp", "in_size": 64, "out_size": 10},
        "train": {"steps": 1, "loss": "cross_entropy"},
    }
    data = build_data({**base, "data": {"name": "digits", "augment_shift": 1}})
    x, y = data.train(jax.random.key(0), 256)
    assert x.shape == (256, 1, 8, 8) and y.shape == (256,)
    train_x, train_y = build_data({**base, "data": {"name": "digits"}}).train
    # Every augmented image is a training image shifted by at most one pixel.
    pad = np.pad(np.asarray(train_x), ((0, 0), (0, 0), (1, 1), (1, 1)))
    for img, label in zip(np.asarray(x[:20]), np.asarray(y[:20]), strict=True):
        found = any(
            np.array_equal(pad[i, :, a : a + 8, b : b + 8], img) and train_y[i] == label
            for i in range(len(train_x))
            for a in range(3)
            for b in range(3)
        )
        assert found
    assert data.test[0].shape[1:] == (1, 8, 8)  # held-out images are not augmented
    with pytest.raises(ConfigError, match="augment_shift"):
        build_data({**base, "data": {"name": "digits", "augment_shift": 1, "flatten": True}})
