"""The run directory: config, metrics log, summary, figure, checkpoint and weights."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from ._checkpoint import atomic_write_bytes

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
    - `metrics.jsonl`: one JSON object per logged step (`"kind": "train"`) and per
      evaluation (`"kind": "eval"`).
    - `metrics.json`: the final summary.
    - `training.png`: loss and NFE against step.
    - `checkpoint.ckpt`: the latest checkpoint.
    - `model.eqx`: the final weights.

    Only one process (process 0) of a multi-process run writes (`enabled=False` on
    the others).
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
