"""The benchmark harness (odezoo.bench): structure of its output, gradient errors, memory
analysis, the scaling experiment and peer skipping. Tiny sizes; no timings are checked."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
    assert solver.checkpoints == 4 * 90  # diffrax's default for max_steps=4096 is 90


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
    out = bench.run_peers([], log=lambda _: None)
    assert set(out["skipped"]) == {"torchdiffeq-odeint", "torchdiffeq-adjoint"}
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
        "workloads",
        "Workload",
        "strategies",
        "Strategy",
        "scaling_workload",
        "scaling_strategies",
        "write_report",
        "environment",
    }
    assert callable(bench.main)  # the command line; 13 names in all (there were 26)
    for tool in ("interleaved_timing", "compile_fn", "add_parser", "prepare_pair"):
        assert not hasattr(bench, tool)
