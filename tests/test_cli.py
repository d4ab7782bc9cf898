"""The `odezoo` command line: help, one-line errors, list/info, and a train + eval round trip."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from odezoo.cli import main

SRC = Path(__file__).parent.parent / "src"
ENTRY = Path(__file__).parent.parent / "zoo" / "seed-cubic-odenet"


def _run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "command",
    [[], ["list"], ["info"], ["train"], ["eval"], ["zoo"], ["zoo", "check"], ["bench"]],
)
def test_help_on_every_command(command, capsys):
    code, out, _ = _run([*command, "--help"], capsys)
    assert code == 0
    assert out.startswith("usage: odezoo")


@pytest.mark.parametrize(
    "argv",
    [
        ["bogus"],
        ["train"],
        ["train", "seed-cubic-odenet", "--steps", "-1"],
        ["train", "seed-cubic-odenet", "--lr", "zero"],
        ["train", "seed-cubic-odenet", "--batch-size", "0"],
        ["train", "seed-cubic-odenet", "--set", "novalue"],
        ["train", "seed-cubic-odenet", "--frobnicate"],
        ["eval", "seed-cubic-odenet", "--rtol", "-1"],
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(argv, capsys):
    code, out, err = _run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "no-such-entry"], "unknown zoo entry 'no-such-entry' (valid names:"),
        (["info", "seed-cubic-odnet"], "did you mean 'seed-cubic-odenet'?"),
        (["eval", "seed-cubic-odnet"], "did you mean 'seed-cubic-odenet'?"),
        (["zoo", "check", "seed-cubic-odnet"], "did you mean 'seed-cubic-odenet'?"),
        (["eval", "{untrained}", "--check"], "is a run directory, not a zoo entry"),
        (["info", "{no_config}"], "has no config.json, so odezoo cannot rebuild its model"),
        (["eval", "{no_config}"], "has no config.json, so odezoo cannot rebuild its model"),
        (["info", "{empty}"], "is not a run directory or zoo entry: it has no config.json"),
        (
            ["train", "seed-cubic-odenet", "--set", "model.width=twenty"],
            'model.width takes a number (it is 20), got "twenty"',
        ),
        (
            ["train", "seed-cubic-odenet", "--set", "model.activation=3"],
            'model.activation takes a string (it is "tanh"), got 3',
        ),
        (
            ["train", "seed-cubic-odenet", "--set", "model.width=-5", "--steps", "1"],
            "cannot build the model from the config (--set model.width=-5)",
        ),
        (
            ["eval", "seed-cubic-odenet", "--rtol", "1e-14", "--atol", "1e-14", "--max-steps", "8"],
            "hit max_steps",
        ),
        (["info", "no-such-entry"], "seed-cubic-odenet"),
        (["train", "seed-cubic-odenet", "--set", "model.widht=3"], "unknown key(s) ['widht']"),
        (["train", "seed-cubic-odenet", "--set", "train.loss=l9"], "unknown loss 'l9'"),
        (["train", "seed-cubic-odenet", "--set", "solver.solver=Nope"], "unknown diffrax solver"),
        (["train", "seed-cubic-odenet", "--num-processes", "2"], "--coordinator-address"),
        (["train", "missing/config.json"], "no config file"),
        (["eval", "{untrained}"], "no trained weights"),
    ],
)
def test_failures_give_one_line_and_exit_1(argv, message, capsys, tmp_path):
    untrained = tmp_path / "untrained"  # a run directory with a config but no weights
    untrained.mkdir()
    (untrained / "config.json").write_text((ENTRY / "config.json").read_text())
    no_config = tmp_path / "no_config"  # as Python's fit(run_dir=...) without config=
    no_config.mkdir()
    (no_config / "model.eqx").write_bytes((ENTRY / "model.eqx").read_bytes())
    empty = tmp_path / "empty"
    empty.mkdir()
    dirs = {"untrained": untrained, "no_config": no_config, "empty": empty}
    argv = [a.format(**dirs) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "run")]
    code, _, err = _run(argv, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_unexpected_errors_are_one_line_unless_debugging(monkeypatch, capsys):
    import odezoo.cli

    def boom(args):
        raise RuntimeError("boom\n  second line")

    monkeypatch.setattr(odezoo.cli, "_cmd_list", boom)
    code, _, err = _run(["list"], capsys)
    assert code == 1
    assert err == (
        "odezoo list: error: unexpected RuntimeError: boom second line "
        "(set ODEZOO_DEBUG=1 to see the traceback)\n"
    )
    monkeypatch.setenv("ODEZOO_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["list"])


def test_errors_are_caught_by_type_not_by_name(monkeypatch, capsys):
    import odezoo.cli

    class ConfigError(Exception):  # the name of an odezoo error, but not one
        pass

    def fail(args):
        raise ConfigError("not odezoo's")

    monkeypatch.setattr(odezoo.cli, "_cmd_list", fail)
    _, _, err = _run(["list"], capsys)
    assert "unexpected ConfigError: not odezoo's" in err
    assert not hasattr(odezoo.cli, "_EXPECTED")


def test_a_run_directory_loads_like_a_name_and_a_bare_one_says_what_it_lacks(tmp_path):
    import odezoo

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.eqx").write_bytes((ENTRY / "model.eqx").read_bytes())
    with pytest.raises(odezoo.MissingFileError, match="has no config.json") as info:
        odezoo.zoo.load(run)
    assert isinstance(info.value, FileNotFoundError)
    assert "odezoo.train.load_model(" in str(info.value)
    (run / "config.json").write_text((ENTRY / "config.json").read_text())
    assert odezoo.zoo.config(run)["name"] == "seed-cubic-odenet"
    with pytest.raises(odezoo.UnknownEntryError, match="did you mean 'seed-cubic-odenet'"):
        odezoo.zoo.load("seed-cubic-odnet")


def test_list_is_a_table_that_fits_the_terminal(monkeypatch, capsys):
    from odezoo import zoo

    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = _run(["list"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "MODEL", "DATA", "METRIC", "NFE", "WEIGHTS", "DESCRIPTION"]
    assert len(lines) == len(zoo.names()) + 1
    assert all(len(line) <= 200 for line in lines), max(lines, key=len)
    start = lines[0].index("DESCRIPTION")
    for line in lines[1:]:
        name = line.split()[0]
        full = " ".join(zoo.config(name)["description"].split())
        shown = line[start:]
        # shortened on a word boundary (never mid-word, never at a stray ". ")
        assert shown == full or (
            shown.endswith(" ...") and (full + " ").startswith(shown[: -len(" ...")] + " ")
        ), (shown, full)
    # At 80 columns the data's name gives way first, then the description.
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = _run(["list"], capsys)
    assert out.splitlines()[0].split() == ["NAME", "MODEL", "METRIC", "NFE", "WEIGHTS"]
    assert all(len(line) <= 80 for line in out.splitlines())


def test_list_shows_what_an_entry_is_worth_and_sorts(capsys):
    from odezoo import zoo

    code, out, _ = _run(["list", "--json", "--sort", "nfe"], capsys)
    rows = json.loads(out)
    assert code == 0 and [r["name"] for r in rows] == [s.name for s in zoo.summaries("nfe")]
    nfes = [r["nfe"] for r in rows]
    known = [n for n in nfes if n is not None]
    assert known == sorted(known) and nfes[: len(known)] == known  # no NFE sorts last
    by_name = {r["name"]: r for r in rows}
    card = json.loads((zoo.entry_dir("odenet-digits") / "metrics.json").read_text())["metrics"]
    assert by_name["odenet-digits"]["metric"] == "accuracy"
    assert by_name["odenet-digits"]["value"] == card["accuracy"]
    assert by_name["odenet-digits"]["nfe"] == card["nfe_forward"]
    assert by_name["ffjord-moons"]["metric"] == "NLL (nats)"  # its loss, named
    assert by_name["ffjord-moons"]["higher_is_better"] is False
    assert by_name["seed-cubic-resnet"]["nfe"] is None  # no ODE solve
    code, out, _ = _run(["list", "--json", "--sort", "metric"], capsys)
    accuracy = [r["value"] for r in json.loads(out) if r["metric"] == "accuracy"]
    assert accuracy == sorted(accuracy, reverse=True)  # best first
    code, out, err = _run(["list", "--sort", "speed"], capsys)
    assert code == 2 and "speed" in err


def _in_subprocess(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["list"], ["list", "--json"], ["info", "seed-cubic-odenet"], ["zoo", "--help"]],
)
def test_help_list_and_info_do_not_import_jax(argv):
    code = (
        "import sys\n"
        "from odezoo.cli import main\n"
        f"status = main({argv!r})\n"
        "heavy = sorted(m for m in ('jax', 'equinox', 'diffrax', 'numpy') if m in sys.modules)\n"
        "print('HEAVY', heavy, status)\n"
    )
    proc = _in_subprocess(code)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY [] 0" in proc.stdout, proc.stdout[-500:]


def test_import_odezoo_gives_the_zoo_and_a_version():
    import importlib.metadata

    code = (
        "import sys, odezoo\n"
        "assert 'jax' not in sys.modules\n"
        "m = odezoo.zoo.load('seed-cubic-odenet')\n"
        "print(type(m).__name__, odezoo.__version__)\n"
    )
    proc = _in_subprocess(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["ODENet", importlib.metadata.version("odezoo")]


def test_version_without_an_install_reads_pyproject(monkeypatch):
    import importlib.metadata

    import odezoo

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert odezoo._version() == "0.1.0+source"  # from this checkout's pyproject.toml


@pytest.mark.parametrize("package", ["odezoo", "odezoo.zoo", "odezoo.bench", "odezoo.internal"])
def test_lazy_exports_match_their_type_checking_imports(package):
    import ast
    import importlib

    mod = importlib.import_module(package)
    tree = ast.parse(Path(mod.__file__).read_text())
    (block,) = [n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n)]
    spelled = {a.asname or a.name for n in block.body for a in n.names}
    assert spelled == set(mod._EXPORTS)
    for name in sorted(spelled):
        assert getattr(mod, name) is not None
    assert set(mod._EXPORTS) <= set(dir(mod))
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        mod.nope  # noqa: B018


def test_zoo_commands_have_one_implementation():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", "odezoo.zoo", "check", "seed-cubic-odnet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("odezoo zoo check: error: unknown zoo entry 'seed-cubic-odnet'")
    assert len(proc.stderr.splitlines()) == 1


def test_list_and_info(capsys):
    code, out, _ = _run(["list"], capsys)
    assert code == 0 and "seed-cubic-odenet" in out
    code, out, _ = _run(["list", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["seed-cubic-odenet"]["model"] == "odenet"
    code, out, _ = _run(["info", "seed-cubic-odenet"], capsys)
    assert code == 0
    assert re.search(r"^parameters: +\d+$", out, re.MULTILINE)
    code, out, _ = _run(["info", "seed-cubic-odenet", "--json"], capsys)
    cfg = json.loads(out)
    assert cfg["solver"]["solver"] == "Dopri5" and cfg["train"]["optimizer"] == "sgd"


def _cli(args, env, cwd):
    return subprocess.run(
        [sys.executable, "-m", "odezoo.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_train_then_eval_round_trip(tmp_path, capsys):
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env["ODEZOO_JAX_CACHE_DIR"] = str(tmp_path / "cache")
    run = tmp_path / "run"
    args = ["train", "seed-cubic-odenet", "--steps", "3", "--out", str(run), "--no-progress"]
    proc = _cli([*args, "--set", "train.log_every=1"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done: 3 steps" in proc.stdout
    names = {p.name for p in run.iterdir()}
    assert {
        "config.json",
        "metrics.jsonl",
        "metrics.json",
        "training.png",
        "checkpoint.ckpt",
        "model.eqx",
    } <= names
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["steps"] == 3 and cfg["train"]["log_every"] == 1  # overrides recorded
    assert {"rtol", "atol", "max_steps", "adjoint"} <= set(cfg["solver"])  # all spelled out
    assert {"augment", "t0", "t1", "activation"} <= set(cfg["model"])
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["steps"] == 3 and summary["compile_time_s"] > 0
    assert summary["nfe_forward_final"] > 0 and summary["eval"]["loss"] > 0
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3]
    assert any((tmp_path / "cache").iterdir())  # the persistent compilation cache was used

    # `eval` changes no global state, so it runs in this process.
    code, out, err = _run(["eval", str(run), "--rtol", "1e-6", "--atol", "1e-6", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["solver"]["rtol"] == 1e-6
    assert report["metrics"]["loss"] > 0 and report["metrics"]["nfe_forward"] > 0


def test_a_run_directory_with_a_corrupt_checkpoint_is_refused(tmp_path, capsys):
    # (A directory holding a real run needs --resume: see the next test.)
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.ckpt").write_bytes(b"")
    code, _, err = _run(["train", "seed-cubic-odenet", "--out", str(run)], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "is not an odezoo checkpoint" in err and "start a fresh run" in err


def test_train_says_what_it_does_with_the_run_directory(tmp_path, capsys):
    out = str(tmp_path / "run")
    base = ["train", "seed-cubic-resnet", "--out", out, "--no-progress", "--no-cache"]
    assert main([*base, "--steps", "4"]) == 0
    assert "training seed-cubic-resnet for 4 steps" in capsys.readouterr().err
    assert main([*base, "--steps", "4"]) == 1  # never overwritten without --resume
    assert "already holds a run" in capsys.readouterr().err
    summary = (tmp_path / "run" / "metrics.json").read_text()
    assert main([*base, "--steps", "4", "--resume"]) == 0
    captured = capsys.readouterr()
    assert "nothing left to do" in captured.err and "unchanged" in captured.out
    assert (tmp_path / "run" / "metrics.json").read_text() == summary
    assert main([*base, "--steps", "6", "--resume"]) == 0
    assert "resuming seed-cubic-resnet from step 4 of 6" in capsys.readouterr().err
    assert main(["train", "seed-cubic-resnet", "--out", str(tmp_path / "none"), "--resume"]) == 1
    assert "nothing to resume" in capsys.readouterr().err


def test_pyproject_ships_every_subpackage():
    # The packages are listed by hand (the zoo entries ship from the top-level zoo/);
    # a missing one breaks only non-editable installs, as `odezoo.config` once did.
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(
        tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(root / "src").parts)
        for p in (root / "src" / "odezoo").rglob("__init__.py")
    }
    assert found <= listed, sorted(found - listed)
