"""The shipped zoo: every entry's card agrees with its weights; packaging; fine-tuning."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import odezoo
from odezoo import zoo
from odezoo.train import fit
from odezoo.zoo._build import METRICS, CardMismatchError, check_entry

ROOT = Path(__file__).resolve().parents[1]
CHEAP = ["seed-cubic-odenet", "seed-cubic-resnet", "seed-cubic-anode"]


def test_every_entry_has_config_and_trained_entries_have_cards():
    names = zoo.names()
    for name in CHEAP + ["node-spheres", "anode-spheres"]:
        assert name in names
    for name in names:
        folder = zoo.entry_dir(name)
        if zoo.has_weights(name):
            card = (folder / "card.md").read_text()
            metrics = json.loads((folder / METRICS).read_text())
            assert f"odezoo train {name}" in card  # the command that reproduces it
            for key, value in metrics["metrics"].items():
                assert key in card
                assert np.isfinite(value)
            for figure in folder.glob("*.png"):
                assert figure.name in card


@pytest.mark.parametrize("name", CHEAP)
def test_cheap_entries_reproduce_their_cards(name):
    check_entry(name)


def test_a_card_that_disagrees_with_its_weights_is_caught(tmp_path, monkeypatch):
    src = zoo.entry_dir("seed-cubic-resnet")
    dst = tmp_path / "seed-cubic-resnet"
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    metrics = json.loads((dst / METRICS).read_text())
    metrics["metrics"]["loss"] *= 0.5
    (dst / METRICS).write_text(json.dumps(metrics))
    monkeypatch.setenv("ODEZOO_ZOO_PATH", str(tmp_path))
    with pytest.raises(CardMismatchError, match="loss: card says"):
        check_entry("seed-cubic-resnet")


def test_load_create_and_unknown_names():
    net = zoo.load("seed-cubic-odenet")
    fresh = zoo.create("seed-cubic-odenet", key=jax.random.key(0))
    assert isinstance(net, odezoo.ODENet) and isinstance(fresh, odezoo.ODENet)
    x = jnp.linspace(-2, 2, 10)[:, None]
    assert float(jnp.mean((net.batch(x) - (x**3 + 0.1 * x)) ** 2)) < 0.5
    with pytest.raises(KeyError, match="valid names: .*seed-cubic-odenet"):
        zoo.load("no-such-model")


def test_fine_tune_a_pretrained_entry_with_frozen_dynamics():
    """Load the pretrained seed ODE-Net and fine-tune only its dynamics' last layer on a
    shifted target with a new optimiser; the rest stays bit-identical."""
    net = zoo.load("seed-cubic-odenet")
    x = jnp.linspace(-2, 2, 10)[:, None]
    y = x**3 + 0.1 * x + 1.0
    last = lambda m: m.dynamics.layers[-1]
    before = float(jnp.mean(jnp.sum((net.batch(x) - y) ** 2, axis=1)))
    result = fit(
        net,
        (x, y),
        loss="mse",
        optimizer=optax.adam(1e-2),
        steps=60,
        trainable=last,
        key=jax.random.key(0),
    )
    tuned = result.model
    after = float(jnp.mean(jnp.sum((tuned.batch(x) - y) ** 2, axis=1)))
    assert after < 0.5 * before
    first_before = net.dynamics.layers[0]
    first_after = tuned.dynamics.layers[0]
    np.testing.assert_array_equal(first_before.weight, first_after.weight)
    np.testing.assert_array_equal(first_before.bias, first_after.bias)
    assert not np.array_equal(last(net).weight, last(tuned).weight)


def test_non_editable_install_ships_the_zoo(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("odezoo-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    for entry in (ROOT / "zoo").iterdir():
        for f in entry.iterdir():
            assert f"odezoo/zoo_entries/{entry.name}/{f.name}" in shipped, f


def test_mismatched_weights_give_a_clear_error(tmp_path):
    from odezoo.train import CheckpointError, load_model

    weights = zoo.entry_dir("seed-cubic-odenet") / "model.eqx"
    wider = odezoo.ODENet(1, width_size=30, key=jax.random.key(0))
    with pytest.raises(CheckpointError):
        load_model(weights, wider)
    assert eqx.tree_equal(
        load_model(weights, zoo.create("seed-cubic-odenet")), zoo.load("seed-cubic-odenet")
    )


def test_cli_eval_check(capsys, tmp_path, monkeypatch):
    from odezoo.cli import main

    assert main(["eval", "seed-cubic-resnet", "--check"]) == 0
    assert "card confirmed" in capsys.readouterr().out
    # an entry with a config but no weights yet: a clear error, exit status 1
    folder = tmp_path / "untrained-cubic"
    folder.mkdir()
    cfg = json.loads((zoo.entry_dir("seed-cubic-resnet") / "config.json").read_text())
    cfg["name"] = "untrained-cubic"
    (folder / "config.json").write_text(json.dumps(cfg))
    monkeypatch.setenv("ODEZOO_ZOO_PATH", str(tmp_path))
    assert not zoo.has_weights("untrained-cubic")
    assert main(["eval", "untrained-cubic", "--check"]) == 1
    assert "no card" in capsys.readouterr().err
