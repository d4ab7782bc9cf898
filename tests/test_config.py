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
    set_value,
)
from odezoo.internal import parse_value
from odezoo.losses import mse
from odezoo.train import fit
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
        # Types from the constructor's (and the dataset builder's) annotations.
        (("model.width", "twenty"), "model.width must be an int, got 'twenty'"),
        (("model.init_scale", "big"), "model.init_scale must be a number"),
        (("data.n", 2.5), "data.n must be an int, got 2.5"),
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
        # optax mixes dtypes in its own update (as fit's train step says): standard
        # promotion for that call alone, not the suite's strict one.
        with jax.numpy_dtype_promotion("standard"):
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


# -- the registries -----------------------------------------------------------------------


class _Scale(eqx.Module):
    """A toy model family: `x * weight`, `weight = init * ones(size)`."""

    weight: jax.Array

    def __init__(self, size: int, init: float = 1.5, activation=jax.numpy.tanh, *, key):
        self.weight = init * jax.numpy.ones(size)  # (the activation is unused)

    def apply(self, xs, *, key=None):
        return xs * self.weight, None


_NOT_JSON = object()
_SCALE_CFG = {"model": {"type": "scale"}, "data": {"name": "cubic", "n": 4}, "train": {"steps": 1}}


@pytest.fixture
def registries(monkeypatch):
    """Registrations made by a test are undone after it."""
    from odezoo.config import _data, _models

    monkeypatch.setattr(_models, "MODEL_FAMILIES", dict(_models.MODEL_FAMILIES))
    monkeypatch.setattr(_data, "DATA_BUILDERS", dict(_data.DATA_BUILDERS))


def test_a_family_registers_in_one_line_and_trains_end_to_end(registries):
    from odezoo.config import model_types, register_model

    register_model("scale", _Scale)
    assert "scale" in model_types()
    cfg = full_config(set_value(_SCALE_CFG, "model.size", 1))
    # Keys and defaults from the signature; the activation default by name.
    assert cfg["model"] == {"type": "scale", "size": 1, "init": 1.5, "activation": "tanh"}
    assert "solver" not in cfg  # the constructor takes no solver: not an ODE model
    net = build_model(cfg)
    assert isinstance(net, _Scale) and np.array_equal(net.weight, [1.5])
    data = build_data(cfg)
    result = fit(net, data.train, steps=2, key=jax.random.key(0), config=cfg)
    assert result.summary["steps"] == 2 and build_evaluate(cfg, data)(result.model)["loss"] >= 0
    with pytest.raises(ConfigError, match=r"model \(scale\) needs 'size'"):
        full_config(_SCALE_CFG)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['width'\] in model \(scale\)"):
        full_config(set_value(set_value(_SCALE_CFG, "model.size", 1), "model.width", 3))
    with pytest.raises(ConfigError, match="already registered"):
        register_model("scale", _Scale)


def test_defaults_are_read_from_the_constructor_signature(registries):
    from odezoo.config import register_model

    class Scale3(_Scale):
        def __init__(self, size: int, init: float = 3.0, activation=jax.nn.relu, *, key):
            super().__init__(size, init, activation, key=key)

    register_model("scale", Scale3)
    cfg = full_config(set_value(_SCALE_CFG, "model.size", 2))
    assert cfg["model"]["init"] == 3.0 and cfg["model"]["activation"] == "relu"
    assert np.array_equal(build_model(cfg).weight, [3.0, 3.0])
    # The built-in families too: ODENet's own defaults are the config's.
    import inspect

    params = inspect.signature(odezoo.ODENet).parameters
    m = full_config({**MLP_CFG, "model": {"type": "odenet", "in_size": 1}})["model"]
    assert m["width"] == params["width_size"].default and m["t1"] == params["t1"].default


def test_renamed_and_excluded_arguments(registries):
    from odezoo.config import register_model

    register_model("scale", _Scale, rename={"n": "size", "scale": "init"}, exclude=("activation",))
    cfg = full_config({**_SCALE_CFG, "model": {"type": "scale", "n": 2, "scale": 0.5}})
    assert cfg["model"] == {"type": "scale", "n": 2, "scale": 0.5}
    assert np.array_equal(build_model(cfg).weight, [0.5, 0.5])
    with pytest.raises(ConfigError, match="no argument"):
        register_model("bad", _Scale, rename={"n": "sizee"})

    class Holder(eqx.Module):
        part: object

        def __init__(self, part=_NOT_JSON, *, key):
            self.part = part

    with pytest.raises(ConfigError, match="not JSON data"):
        register_model("holder", Holder)


def test_an_ode_family_gets_the_config_solver(registries):
    from odezoo.config import register_model

    register_model("scaled_ode", odezoo.ODENet, rename={"n": "in_shape"})
    cfg = full_config(
        {**MLP_CFG, "model": {"type": "scaled_ode", "n": 1}, "solver": {"rtol": 1e-4}}
    )
    assert cfg["solver"]["rtol"] == 1e-4 and cfg["model"]["width_size"] == 20
    net = eqx.filter_eval_shape(build_model, cfg)
    assert net.solver.rtol == 1e-4


def test_a_dataset_registers_in_one_line(registries):
    from odezoo.config import data_names, register_data

    def line(n: int, slope: float = 2.0):
        x = jax.numpy.linspace(0.0, 1.0, n)[:, None]
        return (x, slope * x), None

    register_data("line", line)
    assert "line" in data_names()
    cfg = full_config({**MLP_CFG, "data": {"name": "line", "n": 3}})
    assert cfg["data"] == {"name": "line", "n": 3, "slope": 2.0}
    data = build_data(cfg)
    assert data.name == "line" and data.test is None and data.train[1].shape == (3, 1)
    with pytest.raises(ConfigError, match=r"data \(line\) needs 'n'"):
        full_config({**MLP_CFG, "data": {"name": "line"}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['m'\] in data \(line\)"):
        full_config({**MLP_CFG, "data": {"name": "line", "n": 3, "m": 1}})


# -- normalised once ----------------------------------------------------------------------


def test_the_normalised_config_is_read_only_json_data():
    import copy
    import pickle

    from odezoo.config import Config

    cfg = full_config(zoo.config("ffjord-moons"))
    assert isinstance(cfg, Config) and isinstance(cfg, dict)
    for edit in (
        lambda: cfg.__setitem__("seed", 1),
        lambda: cfg["train"].update(lr=1.0),
        lambda: cfg["model"]["hidden"].append(3),
        lambda: cfg.pop("seed"),
    ):
        with pytest.raises(TypeError, match="read-only"):
            edit()
    plain = cfg.to_dict()
    assert type(plain) is dict and type(plain["model"]["hidden"]) is list and plain == cfg
    plain["train"]["lr"] = 0.5  # a copy is editable
    assert cfg["train"]["lr"] != 0.5 and type(copy.deepcopy(cfg)) is dict
    assert json.loads(json.dumps(cfg)) == cfg
    assert full_config(plain) == {**cfg, "train": {**cfg["train"], "lr": 0.5}}
    again = pickle.loads(pickle.dumps(cfg))
    assert isinstance(again, Config) and again == cfg
    assert set_value(cfg, "train.lr", 0.1)["train"]["lr"] == 0.1  # set_value copies


def test_builders_take_the_config_without_normalising_again(monkeypatch):
    from odezoo.config import _schema

    calls = []
    original = _schema.normalise_model
    monkeypatch.setattr(
        _schema, "normalise_model", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    raw = zoo.config("seed-cubic-odenet")
    cfg = full_config(raw)
    assert len(calls) == 1 and full_config(cfg) is cfg
    data = build_data(cfg)
    build_model(cfg)
    build_loss(cfg)
    build_optimizer(cfg)
    build_tolerance(cfg)
    build_evaluate(cfg, data)
    odezoo.internal.model_key(cfg)
    odezoo.internal.train_key(cfg)
    assert len(calls) == 1
    build_model(raw)  # a raw dict is normalised, once per call
    assert len(calls) == 2


# -- evaluation with the training losses --------------------------------------------------


def test_evaluation_scores_with_the_training_losses(monkeypatch):
    from odezoo.losses import huber
    from odezoo.metrics import evaluate
    from odezoo.train._losses import LOSSES

    x, y = odezoo.data.concentric_spheres(n_inner=7, n_outer=6, key=jax.random.key(0))
    net = odezoo.MLP(2, 1, key=jax.random.key(1))
    # Batches of 5 (the last padded) score the same as the training loss on all 13 points.
    metrics = evaluate(net, (x, y), "huber", batch_size=5)
    assert metrics["loss"] == pytest.approx(float(huber(net, (x, y))[0]), rel=1e-6)
    pred = np.asarray(net.batch(x))
    assert metrics["accuracy"] == np.mean(np.sign(pred) == np.sign(np.asarray(y)))
    # The loss is the training loss registered under that name, called on the outputs.
    seen = []

    def spy(model, batch, key=None):
        seen.append(batch[1].shape)
        return huber(model, batch, key)

    monkeypatch.setitem(LOSSES, "huber", spy)
    cfg = {
        "model": {"type": "mlp", "in_size": 2, "out_size": 1},
        "data": {"name": "spheres", "n_inner": 7, "n_outer": 6},
        "train": {"steps": 1, "eval_batch_size": 4},
    }
    assert full_config(cfg)["train"]["loss"] == "huber"
    build_evaluate(cfg)(build_model(cfg))
    assert seen == [(13, 1)]  # once, on every held-out example


def test_evaluation_cross_entropy_and_nll_match_training():
    from odezoo.losses import cross_entropy, nll
    from odezoo.metrics import evaluate

    x, labels = odezoo.data.concentric_spheres(
        n_inner=5, n_outer=4, labels="classes", key=jax.random.key(0)
    )
    net = odezoo.MLP(2, 2, key=jax.random.key(1))
    metrics = evaluate(net, (x, labels), "cross_entropy", batch_size=4)
    assert metrics["loss"] == pytest.approx(float(cross_entropy(net, (x, labels))[0]), rel=1e-6)
    logits = np.asarray(net.batch(x))
    assert metrics["accuracy"] == np.mean(logits.argmax(axis=1) == np.asarray(labels))
    flow = odezoo.CNF(2, hidden=(8,), key=jax.random.key(2))
    sample = odezoo.data.toy2d("moons", 6, key=jax.random.key(3))
    metrics = evaluate(flow, (sample,), "nll")
    assert metrics["loss"] == pytest.approx(float(nll(flow, (sample,))[0]), rel=1e-5)
    assert metrics["nfe_forward"] > 0


@pytest.mark.parametrize(
    "section",
    [
        {"type": "ode_rnn", "data_size": 2, "hidden_size": 8},
        {"type": "latent_ode", "data_size": 1, "latent_size": 4, "hidden_size": 8},
        {"type": "neural_cde", "data_size": 2, "hidden_size": 8, "out_size": 2},
        {"type": "latent_sde", "data_size": 1, "latent_size": 2, "hidden_size": 8,
         "context_size": 4},
    ],
)  # fmt: skip
def test_the_series_families_build_from_their_one_line_registration(section):
    cfg = {"model": section, "data": {"name": "cubic"}, "train": {"steps": 1}}
    if section["type"] == "latent_sde":
        cfg["solver"] = {"solver": "ReversibleHeun", "dt0": 0.05}
    full = full_config(cfg)
    assert isinstance(full["model"]["activation"], str)  # JSON data, by name
    model = build_model(full)
    assert type(model).__name__.lower().replace("_", "") == section["type"].replace("_", "")
    assert isinstance(model, odezoo.nn.AbstractODEModel)


def test_train_regularisation_is_checked_and_builds_a_penalised_loss():
    base = {"model": {"type": "odenet", "in_size": 1}, "data": {"name": "cubic"}}
    cfg = {**base, "train": {"steps": 1, "regularisation": {"taylor": 0.1, "steer": 0.2}}}
    full = full_config(cfg)["train"]["regularisation"]
    assert full["taylor"] == 0.1 and full["taylor_order"] == 2 and full["kinetic"] == 0.0
    x, y = odezoo.data.cubic()
    net = build_model(cfg)
    value, aux = build_loss(cfg)(net, (x, y), jax.random.key(0))
    assert set(aux.penalties) == {"taylor"} and float(aux.penalties["taylor"]) > 0
    assert build_loss({**base, "train": {"steps": 1}}) is odezoo.losses.mse
    for bad, message in (
        ({"kinetc": 1.0}, "unknown key"),
        ({"kinetic": -1.0}, "kinetic must be"),
        (3, "must be an object"),
    ):
        with pytest.raises(ConfigError, match=message):
            full_config({**base, "train": {"steps": 1, "regularisation": bad}})
    mlp = {"type": "mlp", "in_size": 1, "out_size": 1}
    with pytest.raises(ConfigError, match="needs an ODE model"):
        full_config({**base, "model": mlp, "train": {"steps": 1, "regularisation": {"kinetic": 1}}})
