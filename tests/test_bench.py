"""The package's benchmark of the adjoints (odezoo.bench): a user's own model and a zoo
entry (`odezoo bench adjoints --entry`), the measuring tools, the report, the command
line and what the package never imports. The built-in workloads' harness under
`benchmarks/` is tested in test_benchmarks.py. Tiny sizes; no timings are checked."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odezoo
from odezoo import bench
from odezoo.bench import _cli
from odezoo.bench._measure import compile_fn, memory_of, relative_error

SRC = Path(__file__).parent.parent / "src"


def _env_with_src() -> dict[str, str]:
    """The environment for a fresh interpreter that imports this checkout's odezoo."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    return env


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


def test_strategy_checkpoint_factor():
    s = bench.strategies()["checkpoint-4x"]
    solver = s.apply(odezoo.Solver(max_steps=4096))
    assert solver.adjoint.checkpoints == 4 * 90  # diffrax's default for max_steps=4096 is 90


def test_bench_never_writes_into_existing_results_unless_forced(tmp_path, monkeypatch, capsys):
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "adjoints.md").write_text("committed")
    argv = ["adjoints", "--entry", "seed-cubic-odenet", "--quick", "--strategies", "checkpoint"]
    from odezoo.cli import build_parser, main

    assert main(["bench", *argv, "--out", str(results)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("odezoo bench: error: --out ") and "--force" in err
    assert len(err.splitlines()) == 1
    assert (results / "adjoints.md").read_text() == "committed"
    assert sorted(p.name for p in results.iterdir()) == ["adjoints.md"]

    # Without --out: a new folder under runs/, never benchmarks/results.
    monkeypatch.chdir(tmp_path)
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
        "strategies",
        "Strategy",
        "write_report",
        "benchmark_adjoints",
        "entry_problem",
    }
    # The machine a report records is odezoo's internals', not a user's call.
    from odezoo import internal
    from odezoo.bench import _report

    assert internal.environment is _report.environment and not hasattr(bench, "environment")
    # The command line is odezoo's (`odezoo bench`; `python -m odezoo.bench` calls
    # odezoo.cli.main); the built-in workloads' experiments are benchmarks/run.py's.
    for tool in ("interleaved_timing", "compile_fn", "add_parser", "prepare_pair", "main"):
        assert not hasattr(bench, tool)
    for moved in ("run_adjoints", "run_peers", "run_precision", "workloads", "Workload"):
        assert not hasattr(bench, moved)
    with pytest.raises(odezoo.InputError, match="odezoo.bench writes 'adjoints'"):
        bench.write_report("peers", {"rows": []}, tempfile.mkdtemp())


def test_installed_package_never_imports_torch():
    # Every module of odezoo, imported in a fresh interpreter: none imports PyTorch, nor
    # tries to (a finder records every attempt, so the test holds without torch too).
    code = """
import importlib, importlib.abc, pkgutil, sys

tried = []


class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchdiffeq", "torchode"):
            tried.append(name)
        return None


sys.meta_path.insert(0, Watch())
import odezoo

names = ["odezoo"] + [
    m.name
    for m in pkgutil.walk_packages(odezoo.__path__, "odezoo.")
    if not m.name.endswith(".__main__")  # runs a command
]
for name in names:
    importlib.import_module(name)
assert "odezoo.bench._cli" in sys.modules and len(names) > 40, names
assert "torch" not in sys.modules, sorted(m for m in sys.modules if "torch" in m)
assert not tried, tried
"""
    env = _env_with_src()
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr


def test_bench_cli_does_not_import_odezoo_cli():
    # The bench command registers itself with odezoo.cli (add_parser), never the other way
    # round: importing it leaves odezoo.cli unloaded.
    code = "import sys, odezoo.bench._cli; assert 'odezoo.cli' not in sys.modules"
    env = _env_with_src()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


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
    from odezoo.losses import penalised

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


def test_python_m_odezoo_bench_is_odezoo_bench():
    # `python -m odezoo.bench ARGS` runs `odezoo bench ARGS` through odezoo.cli.main: the
    # same parser, the same one-line errors; without --entry it says where the built-in
    # workloads went.
    env = _env_with_src()

    def bench(*args):
        command = [sys.executable, "-m", "odezoo.bench", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    proc = bench("adjoints")
    assert proc.returncode == 1
    assert proc.stderr.startswith("odezoo bench: error: give --entry NAME_OR_RUN_DIR")
    assert "python benchmarks/run.py adjoints" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    # Its --help is odezoo bench's, and __main__ calls odezoo.cli.main (no import circle
    # between odezoo.cli and odezoo.bench).
    helped = bench("--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: odezoo bench"), helped.stdout[:200]
    main = (SRC / "odezoo" / "bench" / "__main__.py").read_text()
    assert "from ..cli import main" in main
