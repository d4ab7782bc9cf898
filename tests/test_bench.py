"""The benchmark harness (odezoo.bench): structure of its output, gradient errors, memory
analysis, the scaling experiment and peer skipping. Tiny sizes; no timings are checked."""

import dataclasses
import json
import tempfile

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odezoo
from odezoo import bench
from odezoo.bench import _cli, _peers
from odezoo.bench._measure import compile_fn, memory_of, relative_error


def test_relative_error_of_pytrees_and_vectors():
    ref = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([[4.0]])}
    assert relative_error(ref, ref) == 0.0
    off = {"a": jnp.array([3.0, 0.5]), "b": jnp.array([[4.0]])}
    assert relative_error(off, ref) == pytest.approx(0.5 / 5.0)
    assert relative_error(np.array([1.0, 1.0]), np.array([1.0, 0.0])) == 1.0
    with pytest.raises(ValueError, match="sizes differ"):
        relative_error(np.ones(2), np.ones(3))


def test_memory_analysis_returns_deterministic_numbers():
    f = lambda x: jnp.tanh(x @ x.T).sum()
    x = jnp.ones((64, 32))
    compiled, seconds = compile_fn(jax.grad(f), x)
    mem = memory_of(compiled)
    assert seconds > 0
    assert isinstance(mem.temp_bytes, int) and mem.temp_bytes > 0
    assert mem.argument_bytes == 64 * 32 * 4 and mem.output_bytes == 64 * 32 * 4
    assert mem == memory_of(compile_fn(jax.grad(f), x)[0])


def test_workload_weights_load_into_the_model_exactly():
    wl = bench.workloads(quick=True)["mlp"]
    weights = wl.weights()
    assert all(v.dtype == np.float32 for v in weights.values())
    model = wl.build(weights)
    name = ".dynamics.layers[1].weight"
    np.testing.assert_array_equal(model.dynamics.layers[1].weight, weights[name])
    with pytest.raises(ValueError, match="do not match"):
        wl.build({k: v for k, v in weights.items() if k != name})
    np.testing.assert_array_equal(wl.weights()[name], weights[name])  # deterministic


def test_strategy_checkpoint_factor():
    s = bench.strategies()["checkpoint-4x"]
    solver = s.apply(bench.workloads(quick=True)["toy"].solver())
    assert solver.adjoint.checkpoints == 4 * 90  # diffrax's default for max_steps=4096 is 90


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
    assert bench.main(argv) == 0
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
    wl = bench.scaling_workload(quick=True)
    strategies = bench.scaling_strategies()
    result = bench.run_scaling(
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
    monkeypatch.setattr(_peers, "torch_available", lambda: "ModuleNotFoundError: no torch")
    monkeypatch.setattr(_peers, "torchode_available", lambda: "ModuleNotFoundError: no torch")
    out = bench.run_peers([], log=lambda _: None)
    assert set(out["skipped"]) == {"torchdiffeq-odeint", "torchdiffeq-adjoint", "torchode"}
    assert "pip install odezoo[peers]" in out["skipped"]["torchdiffeq-odeint"]
    assert out["rows"] == []


def test_write_report_from_python_records_the_environment(monkeypatch, tmp_path):
    # A result straight from run_* has no "environment" (the command line used to add
    # it): write_report raised KeyError: 'environment'.
    monkeypatch.setattr(_peers, "torch_available", lambda: "ModuleNotFoundError: no torch")
    result = bench.run_peers([], log=lambda _: None)
    assert "environment" not in result
    paths = bench.write_report("peers", result, tmp_path)
    assert {p.name for p in paths} == {"peers.json", "peers.md"}
    written = json.loads((tmp_path / "peers.json").read_text())
    assert written["environment"]["versions"]["jax"] == jax.__version__
    assert "Hardware:" in (tmp_path / "peers.md").read_text()
    assert "environment" not in result  # the caller's dict is left alone


def test_bench_never_writes_into_existing_results_unless_forced(tmp_path, monkeypatch, capsys):
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "adjoints.md").write_text("committed")
    argv = ["adjoints", "--quick", "--workloads", "toy", "--strategies", "checkpoint"]
    assert bench.main([*argv, "--out", str(results)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("odezoo bench: error: --out ") and "--force" in err
    assert len(err.splitlines()) == 1
    assert (results / "adjoints.md").read_text() == "committed"
    assert sorted(p.name for p in results.iterdir()) == ["adjoints.md"]

    # Without --out: a new folder under runs/, never benchmarks/results.
    monkeypatch.chdir(tmp_path)
    from odezoo.cli import build_parser

    args = build_parser().parse_args(["bench", *argv])
    out = _cli.output_dir(args)
    assert out.parts[0] == "runs" and out.name.startswith("bench-adjoints-quick-")
    assert not out.exists()
    out.mkdir(parents=True)
    assert _cli.output_dir(args) != out  # a second run gets its own folder
    forced = build_parser().parse_args(["bench", *argv, "--out", str(results), "--force"])
    assert _cli.output_dir(forced) == results


def test_bench_exports_what_a_user_calls():
    assert set(bench._EXPORTS) == {
        "run_adjoints",
        "run_scaling",
        "run_peers",
        "run_accuracy",
        "run_precision",
        "workloads",
        "Workload",
        "strategies",
        "Strategy",
        "scaling_workload",
        "scaling_strategies",
        "write_report",
        "environment",
        "benchmark_adjoints",
        "entry_problem",
    }
    assert callable(bench.main)  # the command line; 16 names in all (there were 26)
    for tool in ("interleaved_timing", "compile_fn", "add_parser", "prepare_pair"):
        assert not hasattr(bench, tool)


# -- benchmark the user's own model -------------------------------------------------------


class _Cubic(eqx.Module):
    """A user-defined vector field f(t, y) (no odezoo class)."""

    linear: eqx.nn.Linear

    def __call__(self, t, y):
        return jnp.tanh(self.linear(y**3))


def _user_model(rtol):
    k1, k2 = jax.random.split(jax.random.key(0))
    solver = odezoo.Solver(rtol=rtol, atol=rtol)
    return odezoo.ODENet(2, dynamics=_Cubic(eqx.nn.Linear(2, 2, key=k1)), solver=solver, key=k2)


@pytest.mark.slow
def test_benchmark_adjoints_on_a_user_defined_model():
    x = jax.random.normal(jax.random.key(1), (8, 2))
    batch = (x, 0.5 * x)
    loose, tight = (
        bench.benchmark_adjoints(
            _user_model(tol),
            batch,
            "mse",
            strategies=["checkpoint", "backsolve"],
            budget_s=0.0,
            min_reps=1,
            max_reps=2,
            count=tol == 1e-3,
            reference_tol=1e-9,
        )
        for tol in (1e-3, 1e-7)
    )
    rows = {r["strategy"]: r for r in loose["rows"]}
    assert set(rows) == {"checkpoint", "backsolve"}
    assert rows["checkpoint"]["ratio"] == 1.0 and rows["backsolve"]["ratio"] > 0
    for r in rows.values():
        assert r["timing"]["median_ms"] > 0 and r["memory"]["temp_bytes"] > 0
        assert r["nfe"]["forward"] == 3 + 6 * r["nfe"]["steps"]  # Dopri5 + dt0 selection
    # Checkpointing differentiates every forward evaluation but dt0 selection's two.
    assert rows["checkpoint"]["nfe"]["backward_vjps"] == rows["checkpoint"]["nfe"]["forward"] - 2
    # The gradient error is against an independent float64 solve: it shrinks with the
    # tolerance, and is tiny for checkpointing at 1e-7 (float32 round-off level).
    tight_rows = {r["strategy"]: r for r in tight["rows"]}
    assert tight_rows["checkpoint"]["grad_error"] < 1e-4
    assert rows["checkpoint"]["grad_error"] > 10 * tight_rows["checkpoint"]["grad_error"]
    assert tight["references"]["model"]["steps"] > 0
    md = bench.write_report("adjoints", tight, tempfile.mkdtemp())[1].read_text()
    assert "| model | backsolve |" in md and "ODENet" in md


def test_benchmark_adjoints_refuses_a_model_without_an_ode():
    net = odezoo.MLP(2, 2, key=jax.random.key(0))
    with pytest.raises(odezoo.InputError, match="solves no ODE"):
        bench.benchmark_adjoints(net, (jnp.ones((2, 2)), jnp.ones((2, 2))))
    with pytest.raises(odezoo.InputError, match="unknown strategy"):
        bench.benchmark_adjoints(_user_model(1e-3), (jnp.ones((2, 2)),) * 2, strategies=["x"])


@pytest.mark.slow
def test_benchmark_adjoints_on_a_regularised_loss():
    # A penalised loss returns LossAux, not SolveStats (the rnode entries failed with an
    # AttributeError). With a key, its Jacobian penalty uses Hutchinson probes, which the
    # float64 reference must draw alike: other probes showed as a 15% "gradient error".
    from odezoo.train import penalised

    x = jax.random.normal(jax.random.key(1), (8, 2))
    loss = penalised("mse", odezoo.Regularisation(kinetic=0.1, jacobian=0.1))
    result = bench.benchmark_adjoints(
        _user_model(1e-7), (x, 0.5 * x), loss, strategies=["checkpoint"],
        budget_s=0.0, min_reps=1, max_reps=1, count=False, reference_tol=1e-9,
    )  # fmt: skip
    (row,) = result["rows"]
    assert "error" not in row
    assert row["grad_error"] < 1e-4


@pytest.mark.slow
def test_benchmark_adjoints_on_an_sde_entry_times_without_a_reference(tmp_path):
    # A float64 solve of an SDE draws other Brownian increments (the reference used to
    # crash on the SDE's required dt0): time, memory and VJPs, but no gradient error.
    model, batch, loss, _ = bench.entry_problem("latent-sde-ou", batch_size=2)
    result = bench.benchmark_adjoints(
        model, batch, loss, strategies=["checkpoint"], budget_s=0.0, min_reps=1,
        max_reps=1, count=False,
    )  # fmt: skip
    (row,) = result["rows"]
    assert "error" not in row and row["grad_error"] is None and row["timing"]["median_ms"] > 0
    assert "SDE" in result["references"]["model"]["skipped"]
    bench.write_report("adjoints", result, tmp_path)
    assert "no float64 reference" in (tmp_path / "adjoints.md").read_text()


@pytest.mark.slow
def test_bench_adjoints_entry_quick_through_the_cli(tmp_path, capsys):
    from odezoo.cli import main

    out = tmp_path / "out"
    argv = ["bench", "adjoints", "--entry", "seed-cubic-odenet", "--quick", "--out", str(out)]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    result = json.loads((out / "adjoints.json").read_text())
    assert result["quick"] and result["entry"]["batch_size"] == 8
    rows = {r["strategy"]: r for r in result["rows"]}
    assert set(rows) == {"checkpoint", "backsolve"}
    assert all(0 < r["grad_error"] < 0.1 and r["timing"]["median_ms"] > 0 for r in rows.values())
    assert rows["checkpoint"]["nfe"]["backward_vjps"] == rows["checkpoint"]["nfe"]["forward"] - 2
    assert "| seed-cubic-odenet | checkpoint |" in (out / "adjoints.md").read_text()


# An ANODE and a conv Classifier in the default run; the CNF, the regularised CNF, the
# latent ODE and the neural CDE (each a loss of its own kind) in the slow one.
@pytest.mark.parametrize(
    "entry",
    ["anode-spheres", "odenet-digits"]
    + [
        pytest.param(e, marks=pytest.mark.slow)
        for e in ("ffjord-moons", "ffjord-moons-rnode", "latent-ode-spirals", "ncde-spirals")
    ],
)
def test_entry_problem_of_every_model_type_traces(entry):
    # One entry per model type (ANODE, CNF, conv Classifier): the batch, the loss and the
    # strategies' solver swap trace (shapes only, no compile; the full --quick run is
    # tested on seed-cubic-odenet above).
    from odezoo.bench._user import replace_solvers

    model, batch, loss, info = bench.entry_problem(entry, batch_size=4)
    assert info["batch_size"] == 4
    # Tracing a CNF's gradient takes seconds, so two strategies: "checked" traces both
    # backsolve and checkpointing (its two branches), "backsolve-vmap" the per-example
    # batching; the others change only numbers (checkpoint counts, dt0), which trace alike.
    every = bench.strategies()
    for st in (every["checked"], every["backsolve-vmap"]):
        m = replace_solvers(model, st.apply)
        params, static = eqx.partition(m, eqx.is_array)
        grad = jax.grad(lambda p: loss(eqx.combine(p, static), batch, jax.random.key(0))[0])
        shapes = jax.eval_shape(grad, params)
        assert jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(params)


def test_bench_adjoints_entry_refuses_a_model_without_an_ode(tmp_path, capsys):
    from odezoo.cli import main

    argv = ["bench", "adjoints", "--entry", "seed-cubic-resnet", "--quick", "--out", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "solves no ODE" in err and len(err.strip().splitlines()) == 1


# -- the DiffEqFlux spiral, torchode, work-precision -----------------------------------


@pytest.mark.slow
def test_spiral_true_trajectory_and_loss():
    from odezoo.bench._spiral import true_spiral

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
    wl = bench.workloads(quick=True)["spiral"]
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
    from odezoo.bench._measure import reference_gradient
    from odezoo.bench._peers import torch_euler_check, torchode_contender

    wl = bench.workloads(quick=True)["spiral"]
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
    assert bench.main(argv) == 0
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

    from odezoo.bench._report import precision_front

    rows = [
        {"contender": "a", "median_ms": 1.0, "grad_error": 1e-3},
        {"contender": "b", "median_ms": 2.0, "grad_error": 1e-5},
        {"contender": "c", "median_ms": 2.0, "grad_error": 1e-3},  # dominated by a
        {"contender": "d", "median_ms": None, "grad_error": 1e-9},  # no time: ignored
    ]
    assert [r["contender"] for r in precision_front(rows)] == ["a", "b"]


@pytest.mark.slow
def test_auto_is_timed_as_fit_runs_it():
    # A block of check_every steps per timed call: the first checked, the others with the
    # chosen adjoint; the row is the chosen adjoint's, its times per step.
    x = jax.random.normal(jax.random.key(1), (8, 2))
    auto = bench.Strategy("auto-3", {"adjoint": "auto", "check_every": 3})
    result = bench.benchmark_adjoints(
        _user_model(1e-3),
        (x, 0.5 * x),
        "mse",
        strategies=["checked", "backsolve", auto],
        budget_s=0.0,
        min_reps=1,
        max_reps=2,
        count=False,
        reference_tol=1e-9,
    )
    rows = {r["strategy"]: r for r in result["rows"]}
    row = rows["auto-3"]
    assert row["adjoint"] == "auto" and row["steps_per_call"] == row["check_every"] == 3
    assert row["fell_back"] == rows["checked"]["fell_back"] == 0
    assert row["chosen_adjoint"] == "backsolve"
    assert row["grad_error"] == rows["backsolve"]["grad_error"]
    assert row["check_grad_error"] == pytest.approx(rows["checked"]["grad_error"], rel=1e-3)
    t = row["timing"]
    checked, back = (rows[s]["timing"]["median_ms"] for s in ("checked", "backsolve"))
    assert t["predicted_ms"] == pytest.approx((checked + 2 * back) / 3)
    assert 0 < t["median_ms"] < 3 * max(checked, back)  # per step, not per block
    md = bench.write_report("adjoints", result, tempfile.mkdtemp())[1].read_text()
    assert "| model | auto-3 |" in md and "Chosen: model: backsolve" in md


@pytest.mark.slow
def test_auto_peer_is_timed_in_blocks_as_fit_runs_it():
    # At 1e-3 the toy's reverse solve reconstructs its input (at its own 1.4e-8 it does
    # not, in float32), so auto's check chooses backsolve: the default's loss, per step.
    wl = dataclasses.replace(bench.workloads(quick=True)["toy"], rtol=1e-3, atol=1e-3)
    result = bench.run_peers(
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
    md = bench.write_report("peers", result, tempfile.mkdtemp())[1].read_text()
    assert "| toy | odezoo-auto (backsolve) |" in md
