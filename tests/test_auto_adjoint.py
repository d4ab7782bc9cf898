"""The `"auto"` adjoint: `fit` checks reversibility every `check_every` steps and trains
with backsolve or checkpointing on what it finds.

The fit tests share compiled steps (the same loss and optimiser objects, model
structure and solver settings): the `"checked"`, `"backsolve"` and `"checkpoint"`
variants are compiled once for the whole module.
"""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import odezoo
from odezoo.losses import mse
from odezoo.train import fit
from odezoo.train._checkpoint import read_header


class Decay(eqx.Module):
    """f(t, y) = -rate * y: reversible for a small rate; for a large one the reverse
    solve amplifies the forward solve's errors by exp(rate) and the check fails.
    `push` (frozen) is how hard the loss pushes `rate` up."""

    rate: jax.Array
    push: jax.Array

    def __call__(self, t, y):
        return -self.rate * y


def _net(rate, push=0.0, **solver):
    # Strongly typed (NumPy) scalars: a resumed run's frozen `push`, loaded from its
    # checkpoint, is strongly typed, and must not compile the steps again.
    dynamics = Decay(jnp.asarray(np.float64(rate)), jnp.asarray(np.float64(push)))
    net = odezoo.ODENet(2, dynamics=dynamics, key=jax.random.key(0))
    if solver.get("adjoint", "auto") == "auto":
        solver = {"adjoint": "auto", "check_every": 2, **solver}
    return net.with_solver(**solver)


def pushed_mse(model, batch, key):
    """The squared error, minus `push * rate`: SGD raises the rate by `lr * push` a step."""
    value, stats = mse(model, batch, key)
    return value - model.dynamics.push * model.dynamics.rate, stats


SGD = optax.sgd(1.0)
RATE = lambda m: m.dynamics.rate


def _data():
    x = np.array([[1.0, -0.5], [0.3, 2.0], [-1.0, 0.7], [0.4, -0.2]])
    return x, 0.8 * x


def _fit(net, steps, **kw):
    return fit(
        net,
        _data(),
        loss=pushed_mse,
        optimizer=SGD,
        trainable=RATE,
        steps=steps,
        key=jax.random.key(1),
        **kw,
    )


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _adjoints(result):
    return [r["adjoint"] for r in result.history]


def test_auto_outside_fit_is_checkpointing(x64):
    net = _net(0.5)
    x = jnp.asarray(_data()[0])

    @eqx.filter_jit
    def grad(m):
        def loss(m):
            y, stats = m.apply(x)
            return jnp.sum(y**2), stats

        g, stats = eqx.filter_grad(loss, has_aux=True)(m)
        return g.dynamics.rate, stats

    g_auto, stats = grad(net)
    g_ckpt, ckpt_stats = grad(net.with_solver(adjoint="checkpoint"))
    g_back, _ = grad(net.with_solver(adjoint="backsolve"))
    assert float(g_auto) == float(g_ckpt)
    assert abs(float(g_back) - float(g_ckpt)) > 1e-9 * abs(float(g_ckpt))  # they differ
    assert int(stats.nfe_backward) == int(ckpt_stats.nfe_backward) > 0
    assert int(stats.fell_back) == 0 and np.isnan(float(stats.reversibility_error))


@pytest.mark.slow
def test_auto_in_fit_trains_with_backsolve_on_a_reversible_problem(x64, tmp_path, capsys):
    auto = _fit(_net(0.5), 4, run_dir=tmp_path / "run")
    back = _fit(_net(0.5, adjoint="backsolve"), 4)
    ckpt = _fit(_net(0.5, adjoint="checkpoint"), 4)
    assert _adjoints(auto) == ["checked", "backsolve", "checked", "backsolve"]
    # Every step's gradient was backsolve's: the checked steps passed their check. The
    # rates agree with plain backsolve's far more closely than backsolve's agree with
    # checkpointing's, so a checkpointed step would show.
    r_auto, r_back, r_ckpt = (float(r.model.dynamics.rate) for r in (auto, back, ckpt))
    assert abs(r_auto - r_back) < 1e-3 * abs(r_back - r_ckpt), (r_auto, r_back, r_ckpt)
    checks = auto.adjoint_checks
    assert [(c["step"], c["adjoint"], c["switched"]) for c in checks] == [
        (1, "backsolve", False),
        (3, "backsolve", False),
    ]
    assert all(c["reversibility_error"] < 10.0 for c in checks)
    logged = _lines(tmp_path / "run" / "metrics.jsonl")
    assert [r for r in logged if r["kind"] == "adjoint"] == checks
    assert [r["adjoint"] for r in logged if r["kind"] == "train"] == _adjoints(auto)
    assert auto.summary["adjoint_steps"] == {"checked": 2, "backsolve": 2}
    # The first decision is said once; no switch followed.
    err = capsys.readouterr().err
    assert err.count("adjoint 'auto'") == 1 and "chose backsolve" in err
    # The result and the saved files keep adjoint="auto".
    assert auto.model.solver.adjoint.name == "auto"
    saved = odezoo.train.load_model(tmp_path / "run" / "model.eqx", like=_net(0.5))
    assert saved.solver.adjoint.name == "auto"
    assert float(saved.dynamics.rate) == r_auto


def test_auto_stays_on_checkpointing_when_the_check_fails(x64):
    result = _fit(_net(40.0), 4)
    ckpt = _fit(_net(40.0, adjoint="checkpoint"), 4)
    assert _adjoints(result) == ["checked", "checkpoint", "checked", "checkpoint"]
    assert [c["adjoint"] for c in result.adjoint_checks] == ["checkpoint", "checkpoint"]
    assert all(c["reversibility_error"] > 1e3 for c in result.adjoint_checks)
    assert not any(c["switched"] for c in result.adjoint_checks)
    assert [r["fell_back"] for r in result.history if r["adjoint"] == "checked"] == [1, 1]
    assert float(result.model.dynamics.rate) == pytest.approx(
        float(ckpt.model.dynamics.rate), rel=1e-12
    )


def test_auto_switches_when_the_dynamics_stop_being_reversible(x64, capsys):
    # SGD raises the rate by 10 a step: 0.5 (reversible), 10.5, 20.5 (not), 30.5, 40.5.
    result = _fit(_net(0.5, push=10.0), 5)
    assert _adjoints(result) == ["checked", "backsolve", "checked", "checkpoint", "checked"]
    checks = [(c["step"], c["adjoint"], c["switched"]) for c in result.adjoint_checks]
    assert checks == [(1, "backsolve", False), (3, "checkpoint", True), (5, "checkpoint", False)]
    err = capsys.readouterr().err
    assert "chose backsolve" in err and "switched backsolve -> checkpoint" in err
    assert err.count("adjoint 'auto'") == 2


class Killed(Exception):
    pass


def test_resume_restores_the_adjoint_in_force_bit_identically(x64, tmp_path):
    common = dict(checkpoint_every=3)
    full = _fit(_net(0.5, push=10.0), 5, run_dir=tmp_path / "full", **common)

    def kill_at_5(step, record, model):
        if step == 5:
            raise Killed

    # Killed after step 5: the checkpoint is at step 3, taken with "checkpoint" chosen by
    # the check at step 3 (the step after it is not a check).
    with pytest.raises(Killed):
        _fit(_net(0.5, push=10.0), 5, run_dir=tmp_path / "killed", callback=kill_at_5, **common)
    run = tmp_path / "killed"
    assert read_header(run / "checkpoint.ckpt")[0]["step"] == 3
    resumed = _fit(_net(0.5, push=10.0), 5, run_dir=run, resume=True, **common)
    assert resumed.summary["resumed_from"] == 3
    assert _adjoints(resumed) == ["checkpoint", "checked"]
    assert float(resumed.model.dynamics.rate) == float(full.model.dynamics.rate)
    full_opt = jax.tree_util.tree_leaves(full.opt_state)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree_util.tree_leaves(resumed.opt_state), full_opt, strict=True)
    )
    logged = _lines(run / "metrics.jsonl")
    full_log = _lines(tmp_path / "full" / "metrics.jsonl")
    drop = lambda rs: [{k: v for k, v in r.items() if k != "step_time"} for r in rs]
    assert drop(logged) == drop(full_log)
    assert resumed.model.solver.adjoint.name == "auto"


def test_a_tolerance_schedule_composes_but_may_not_change_the_adjoint(x64):
    result = _fit(_net(0.5), 2, tolerance=[(1, {"rtol": 1e-4, "atol": 1e-7})])
    assert _adjoints(result) == ["checked", "backsolve"]
    assert result.history[-1]["solver_rtol"] == 1e-4
    assert result.model.solver.rtol == 1e-4 and result.model.solver.adjoint.name == "auto"
    with pytest.raises(odezoo.InputError, match="auto"):
        _fit(_net(0.5), 2, tolerance=[(1, {"adjoint": "checkpoint"})])


def test_check_every_is_validated_and_round_trips_through_the_config():
    with pytest.raises(odezoo.ConfigError, match="check_every"):
        odezoo.Solver(adjoint="auto", check_every=0)
    with pytest.raises(odezoo.ConfigError, match="check_every"):
        odezoo.Solver(check_every=2.5)
    solver = odezoo.Solver(adjoint="auto", check_every=np.int64(7), seminorm=True)
    assert solver.adjoint.check_every == 7
    assert odezoo.Solver.from_config(solver.to_config()) == solver
    # At its default it is left out of configs, so that older runs keep their hashes.
    assert "check_every" not in odezoo.Solver().to_config()
    from odezoo import zoo
    from odezoo.config import full_config

    base = zoo.config("seed-cubic-odenet")
    cfg = full_config({**base, "solver": {"adjoint": "auto", "check_every": 5}})
    assert cfg["solver"]["adjoint"] == "auto" and cfg["solver"]["check_every"] == 5
    assert full_config(cfg) == cfg
    with pytest.raises(odezoo.ConfigError, match="check_every"):
        full_config({**base, "solver": {"check_every": -1}})
