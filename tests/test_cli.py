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


@pytest.mark.parametrize("command", [[], ["list"], ["info"], ["train"], ["eval"]])
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
        (["train", "no-such-entry"], "unknown zoo entry 'no-such-entry'; valid names:"),
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
    argv = [a.format(untrained=untrained) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "run")]
    code, _, err = _run(argv, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


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


def test_existing_run_needs_resume(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.ckpt").write_bytes(b"")
    code, _, err = _run(["train", "seed-cubic-odenet", "--out", str(run)], capsys)
    assert code == 1
    assert err.strip().endswith("pass --resume to continue it, or choose another --out")
