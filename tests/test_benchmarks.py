"""The benchmark harness of the built-in workloads (benchmarks/_harness, run from a
checkout as `python benchmarks/run.py`): its workloads, the adjoint, scaling, peer and
work-precision experiments, their reports and command line. Tiny sizes; no timings are
checked. conftest.py puts benchmarks/ on sys.path."""

import dataclasses
import json
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odezoo
from odezoo.bench._measure import relative_error

from _harness import cli, peers
from _harness.peers import run_peers
from _harness.report import write_report
from _harness.scaling import run_scaling, scaling_strategies, scaling_workload
from _harness.workloads import workloads


def test_workload_weights_load_into_the_model_exactly():
    wl = workloads(quick=True)["mlp"]
    weights = wl.weights()
    assert all(v.dtype == np.float32 for v in weights.values())
    model = wl.build(weights)
    name = ".dynamics.layers[1].weight"
    np.testing.assert_array_equal(model.dynamics.layers[1].weight, weights[name])
    with pytest.raises(ValueError, match="do not match"):
        wl.build({k: v for k, v in weights.items() if k != name})
    np.testing.assert_array_equal(wl.weights()[name], weights[name])  # deterministic


@pytest.mark.slow
def test_adjoints_quick_cli_writes_json_markdown_and_sane_numbers(tmp_path):
    argv = [
        "adjoints",
        "--quick",
        "--workloads",
        "toy",
        "--strategies",
        "checkpoint",
        "--out",
        str(tmp_path),
    ]
    assert cli.main(argv) == 0
    result = json.loads((tmp_path / "adjoints.json").read_text())
    assert "| toy | checkpoint |" in (tmp_path / "adjoints.md").read_text()
    env = result["environment"]
    assert env["versions"]["jax"] == jax.__version__ and env["cpu_count"] >= 1
    assert result["references"]["toy"]["steps"] > 0
    (row,) = result["rows"]
    assert row["strategy"] == "checkpoint" and row["ratio"] == 1.0
    assert row["timing"]["median_ms"] > 0 and row["timing"]["rounds"] >= 2
    assert row["timing"]["compile_s"] > 0
    assert row["memory"]["temp_bytes"] > 0  # numbers, not timings
    # float32 at tolerance 1e-6 against float64 at 1e-10
    assert 0 < row["grad_error"] < 1e-3
    nfe = row["nfe"]
    assert nfe["forward"] == 3 + 6 * nfe["steps"]  # Dopri5 + initial-step selection
    # Checkpointing differentiates each evaluation but the initial-step selection's
    # two, and recomputes each twice (the step from its checkpoint, then each stage in
    # diffrax's checkpointed stage loop).
    assert nfe["backward_vjps"] == nfe["forward"] - 2
    assert nfe["backward_evals"] == 2 * nfe["backward_vjps"]


@pytest.mark.slow
def test_scaling_backsolve_memory_is_flat_and_checkpointing_grows():
    wl = scaling_workload(quick=True)
    strategies = scaling_strategies()
    result = run_scaling(
        wl,
        [strategies["checkpoint-all"], strategies["backsolve"]],
        [4, 16, 64],
        budget_s=0.0,
        min_reps=1,
        max_reps=1,
        log=lambda _: None,
    )
    mem = {(r["strategy"], r["steps"]): r["memory"]["temp_bytes"] for r in result["rows"]}
    assert all(r["num_steps"] == r["steps"] for r in result["rows"])
    assert mem["backsolve", 64] == mem["backsolve", 4]
    # Storing every step: memory grows linearly in the steps, above a fixed overhead
    # (the solve's own buffers): 48 more steps cost 4x what 12 more steps cost.
    early = mem["checkpoint-all", 16] - mem["checkpoint-all", 4]
    late = mem["checkpoint-all", 64] - mem["checkpoint-all", 16]
    assert early > 0 and late == pytest.approx(4 * early, rel=0.25)


def test_peers_skip_cleanly_without_torch(monkeypatch):
    monkeypatch.setattr(peers, "torch_available", lambda: "ModuleNotFoundError: no torch")
    monkeypatch.setattr(peers, "torchode_available", lambda: "ModuleNotFoundError: no torch")
    out = run_peers([], log=lambda _: None)
    assert set(out["skipped"]) == {"torchdiffeq-odeint", "torchdiffeq-adjoint", "torchode"}
    assert peers.INSTALL in out["skipped"]["torchdiffeq-odeint"]
    assert out["rows"] == []


def test_write_report_from_python_records_the_environment(monkeypatch, tmp_path):
    # A result straight from run_* has no "environment" (the command line used to add
    # it): write_report raised KeyError: 'environment'.
    monkeypatch.setattr(peers, "torch_available", lambda: "ModuleNotFoundError: no torch")
    result = run_peers([], log=lambda _: None)
    assert "environment" not in result
    paths = write_report("peers", result, tmp_path)
    assert {p.name for p in paths} == {"peers.json", "peers.md"}
    written = json.loads((tmp_path / "peers.json").read_text())
    assert written["environment"]["versions"]["jax"] == jax.__version__
    assert "Hardware:" in (tmp_path / "peers.md").read_text()
    assert "environment" not in result  # the caller's dict is left alone


def test_harness_never_writes_into_existing_results_unless_forced(tmp_path, capsys):
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "peers.md").write_text("committed")
    argv = ["peers", "--quick", "--workloads", "toy", "--out", str(results)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("python benchmarks/run.py: error: --out ") and "--force" in err
    assert len(err.splitlines()) == 1
    assert sorted(p.name for p in results.iterdir()) == ["peers.md"]
    assert cli.main(["bogus"]) == 2
    assert cli.main(["--help"]) == 0


# -- the DiffEqFlux spiral, torchode, work-precision -----------------------------------


@pytest.mark.slow
def test_spiral_true_trajectory_and_loss():
    from _harness.spiral import true_spiral

    ys = true_spiral()
    assert ys.shape == (30, 2)
    np.testing.assert_array_equal(ys[0], [2.0, 0.0])
    # converged: a much looser solve agrees to its tolerance
    np.testing.assert_allclose(true_spiral(1e-7), ys, atol=1e-5)
    # d/dt sum(u^4)/4 = u^3 A (u^3)^T = -0.1 |u^3|^2: the skew part of A turns, the
    # diagonal dissipates, so sum(u^4) falls at exactly that rate
    energy = np.sum(ys.astype(np.float64) ** 4, axis=1) / 4
    rate = -0.1 * np.sum(ys.astype(np.float64) ** 6, axis=1)
    dt = 1.5 / 29
    np.testing.assert_allclose(np.diff(energy) / dt, (rate[1:] + rate[:-1]) / 2, rtol=0.05)
    wl = workloads(quick=True)["spiral"]
    data = {k: jnp.asarray(v) for k, v in wl.data().items()}
    model = wl.build(wl.weights())
    loss, stats = wl.loss(model, data)
    pred, _ = odezoo.solve(
        model.solver,
        lambda t, y, a: model.dynamics(t, y),
        data["x"][0],
        t1=1.5,
        ts=jnp.linspace(0, 1.5, 30),
    )
    np.testing.assert_allclose(loss, np.sum((np.asarray(pred) - ys) ** 2), rtol=1e-5)
    assert int(stats.failed) == 0


def test_spiral_and_torchode_on_the_same_weights():
    pytest.importorskip("torchdiffeq")
    pytest.importorskip("torchode")
    from _harness.measure import reference_gradient
    from _harness.peers import torch_euler_check, torchode_contender

    wl = workloads(quick=True)["spiral"]
    weights = wl.weights()
    check = torch_euler_check(wl, weights)  # same discretisation in odezoo and torch
    assert check["loss_rel_diff"] < 1e-5 and check["grad_rel_diff"] < 1e-5
    # torchode's gradient (eager, per-example steps) against the float64 reference
    _, ref, _ = reference_gradient(wl, weights, tol=1e-10)
    tight = dataclasses.replace(wl, rtol=1e-7, atol=1e-7)
    grad = torchode_contender(tight, weights, mode="eager")["grad"]()
    assert relative_error(grad, ref) < 1e-4


@pytest.mark.slow
def test_precision_quick_cli_and_front(tmp_path):
    argv = ["precision", "--quick", "--workloads", "spiral", "--strategies", "checkpoint"]
    argv += ["--peers", "jax-experimental-ode", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    result = json.loads((tmp_path / "precision.json").read_text())
    assert result["tolerances"] == [1e-3, 1e-5]
    names = {(r["contender"], r["tol"]) for r in result["rows"]}
    assert names == {
        (c, t) for c in ("odezoo-checkpoint", "jax-experimental-ode") for t in (1e-3, 1e-5)
    }
    for r in result["rows"]:
        assert r["median_ms"] > 0 and 0 < r["grad_error"] < 1e-2
    err = {(r["contender"], r["tol"]): r["grad_error"] for r in result["rows"]}
    assert err["odezoo-checkpoint", 1e-5] < err["odezoo-checkpoint", 1e-3]
    assert (tmp_path / "precision.png").stat().st_size > 0
    assert "**" in (tmp_path / "precision.md").read_text()  # the front is marked

    from _harness.report import precision_front

    rows = [
        {"contender": "a", "median_ms": 1.0, "grad_error": 1e-3},
        {"contender": "b", "median_ms": 2.0, "grad_error": 1e-5},
        {"contender": "c", "median_ms": 2.0, "grad_error": 1e-3},  # dominated by a
        {"contender": "d", "median_ms": None, "grad_error": 1e-9},  # no time: ignored
    ]
    assert [r["contender"] for r in precision_front(rows)] == ["a", "b"]


@pytest.mark.slow
def test_auto_peer_is_timed_in_blocks_as_fit_runs_it():
    # At 1e-3 the toy's reverse solve reconstructs its input (at its own 1.4e-8 it does
    # not, in float32), so auto's check chooses backsolve: the default's loss, per step.
    wl = dataclasses.replace(workloads(quick=True)["toy"], rtol=1e-3, atol=1e-3)
    result = run_peers(
        [wl], include=["odezoo", "odezoo-auto"], budget_s=0.0, min_rounds=2, max_rounds=2,
        log=lambda _: None,
    )  # fmt: skip
    auto = result["rows"][0]["contenders"]["odezoo-auto"]
    default = result["rows"][0]["contenders"]["odezoo"]
    assert auto["steps_per_call"] == auto["check_every"] == 50
    assert auto["chosen_adjoint"] == "backsolve" and auto["reversibility_error"] < 10
    assert auto["loss"] == pytest.approx(default["loss"], rel=1e-6)
    # per step, not per block of 50
    assert 0 < auto["median_ms"] < 5 * default["median_ms"]
    md = write_report("peers", result, tempfile.mkdtemp())[1].read_text()
    assert "| toy | odezoo-auto (backsolve) |" in md
