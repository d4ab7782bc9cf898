"""The run directory: config, metrics log, summary, figure, checkpoint and weights."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from .._errors import RunDirError
from ._checkpoint import atomic_write_bytes, read_header

# Settings that may change between a run and its resumption without changing the result
# of the steps already taken.
_VOLATILE = {
    "train": ("steps", "log_every", "eval_every", "checkpoint_every", "progress"),
}
_VOLATILE_TOP = ("name", "description", "notes")


def config_hash(config: dict | None) -> str | None:
    """A fingerprint of a run's config, ignoring settings that may change on resume
    (the number of steps, logging and checkpoint intervals, names and descriptions)."""
    if config is None:
        return None
    cfg = {k: v for k, v in config.items() if k not in _VOLATILE_TOP}
    for section, keys in _VOLATILE.items():
        if isinstance(cfg.get(section), dict):
            cfg[section] = {k: v for k, v in cfg[section].items() if k not in keys}
    text = json.dumps(cfg, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def json_number(x: Any) -> Any:
    """A number as JSON shows it: an `int` when integral, a `float` otherwise, `None`
    for NaN/inf (and for `None`); anything that is not a number is returned as is."""
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return x
    if not math.isfinite(v):
        return None
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


def to_jsonable(value: Any) -> Any:
    """Python numbers for JSON (non-finite floats become `None`)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "size", 2) == 1:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


class RunDir:
    """Files of one training run.

    - `config.json`: the run's config (rebuilds model, data and loss; see `odezoo.config`).
    - `metrics.jsonl`: one JSON object per logged step (`"kind": "train"`), per
      evaluation (`"kind": "eval"`) and, for `adjoint="auto"`, per reversibility check
      (`"kind": "adjoint"`).
    - `metrics.json`: the final summary.
    - `training.png`: loss and NFE against step.
    - `checkpoint.ckpt`: the latest checkpoint.
    - `model.eqx`: the final weights.

    Only one process (process 0) of a multi-process run writes (`enabled=False` on
    the others).

    A directory written by `fit` without a `config` has no `config.json`: the CLI and
    `odezoo.zoo.load` cannot rebuild its model, but its weights load into a model built
    the same way with [`load_model`][odezoo.train.load_model]`(path / "model.eqx", like=model)`.
    """

    CONFIG = "config.json"
    METRICS = "metrics.jsonl"
    SUMMARY = "metrics.json"
    FIGURE = "training.png"
    CHECKPOINT = "checkpoint.ckpt"
    MODEL = "model.eqx"

    def __init__(self, path: str | os.PathLike, *, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.mkdir(parents=True, exist_ok=True)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint(self) -> Path:
        return self.file(self.CHECKPOINT)

    def names(self) -> list[str]:
        """The files in the directory (not hidden ones, such as a killed write's
        temporary file); empty when it does not exist."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if not p.name.startswith("."))

    def checkpoint_step(self) -> int | None:
        """The step of the directory's checkpoint, or `None` when it has none. Raises
        [`CheckpointError`][odezoo.train.CheckpointError] for a corrupt one."""
        if not self.checkpoint.exists():
            return None
        return int(read_header(self.checkpoint)[0]["step"])

    def read_summary(self) -> dict | None:
        p = self.file(self.SUMMARY)
        try:
            return json.loads(p.read_text()) if p.exists() else None
        except json.JSONDecodeError:
            return None

    def read_config(self) -> dict | None:
        p = self.file(self.CONFIG)
        return json.loads(p.read_text()) if p.exists() else None

    def write_config(self, config: dict) -> None:
        if self.enabled:
            text = json.dumps(to_jsonable(config), indent=2) + "\n"
            atomic_write_bytes(self.file(self.CONFIG), text.encode())

    def truncate_metrics(self, last_step: int) -> None:
        """Drop records beyond `last_step` (written by a run that died after its last
        checkpoint), so a resumed run's log has each step once."""
        p = self.file(self.METRICS)
        if not (self.enabled and p.exists()):
            return
        keep = [r for r in read_jsonl(p) if r.get("step", 0) <= last_step]
        text = "".join(json.dumps(r) + "\n" for r in keep)
        atomic_write_bytes(p, text.encode())

    def append(self, record: dict) -> None:
        if self.enabled:
            with open(self.file(self.METRICS), "a") as f:
                f.write(json.dumps(to_jsonable(record)) + "\n")

    def records(self) -> list[dict]:
        p = self.file(self.METRICS)
        return read_jsonl(p) if p.exists() else []

    def write_summary(self, summary: dict) -> None:
        if self.enabled:
            text = json.dumps(to_jsonable(summary), indent=2) + "\n"
            atomic_write_bytes(self.file(self.SUMMARY), text.encode())

    def write_figure(self, title: str | None = None) -> None:
        if not self.enabled:
            return
        from ..plot import plot_training

        plot_training(self.records(), self.file(self.FIGURE), title=title)


# The files a run writes before its first checkpoint (and after a failure there).
_UNSAVED_RUN = {RunDir.CONFIG, RunDir.METRICS, RunDir.SUMMARY, RunDir.FIGURE}


def _unsaved_run(run: RunDir, names: list[str]) -> bool:
    """Whether `names` are the files of a run that stopped before its first checkpoint."""
    if not set(names) <= _UNSAVED_RUN:
        return False
    summary = run.read_summary()
    return summary is None or summary.get("status") == "failed"


def check_run_dir(path: str | os.PathLike, *, resume: bool, steps: int) -> int | None:
    """Check that [`fit`][odezoo.train.fit] may write its run into `path`, and return
    the step it starts from: `None` for a fresh run, else the completed steps to resume
    from (0 for a run that stopped before its first checkpoint; `steps` itself when the
    run is finished and there is nothing left to do).

    Nothing a user wrote is ever overwritten: without `resume`, `path` must be missing
    or empty; with it, `path` must hold a run to resume (a checkpoint, or the files of a
    run that stopped before its first checkpoint), with no more steps than `steps`.

    Raises [`RunDirError`][odezoo.RunDirError] saying what to do otherwise.
    """
    run = RunDir(path, enabled=False)
    names = run.names()
    done = run.checkpoint_step()
    if not resume:
        if done is not None:
            raise RunDirError(
                f"run directory {run.path} already holds a run (checkpoint at step {done}): "
                "pass resume=True (CLI: --resume) to continue it, or choose another directory"
            )
        if not names:
            return None
        if _unsaved_run(run, names):
            raise RunDirError(
                f"run directory {run.path} holds a run that stopped before its first "
                "checkpoint: pass resume=True (CLI: --resume) to start it again from step 0 "
                "(its metrics are replaced), or choose another directory"
            )
        raise RunDirError(
            f"run directory {run.path} is not empty ({', '.join(names[:6])}"
            f"{', ...' if len(names) > 6 else ''}) and holds no checkpoint to resume: a new "
            "run would overwrite these files. Choose a new or empty directory, or move the "
            "files away"
        )
    if done is None:
        if not names:
            what = "does not exist" if not run.path.exists() else "is empty"
            raise RunDirError(
                f"nothing to resume: run directory {run.path} {what}. Start a fresh run "
                "(without resume / --resume)"
            )
        if _unsaved_run(run, names):
            return 0  # stopped before its first checkpoint: start again from step 0
        raise RunDirError(
            f"nothing to resume in {run.path}: it holds no checkpoint ({RunDir.CHECKPOINT}), "
            f"only {', '.join(names[:6])}. Its files are kept; train into another directory"
        )
    if done > steps:
        raise RunDirError(
            f"the run in {run.path} has already taken {done} steps, more than steps={steps}: "
            f"ask for more than {done} steps to continue it (exactly {done}: it is finished)"
        )
    return done


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The records of a `metrics.jsonl` file (a torn last line is skipped)."""
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
