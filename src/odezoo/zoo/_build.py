"""Turning a finished training run into a zoo entry: its weights and training log copied
in, its headline metrics and tolerance sweep measured, its figures drawn, and its
`metrics.json` and `card.md` written."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from .._errors import ConfigError, MissingFileError
from ..nn import count_parameters
from ..train._tolerance import solver_of
from . import _figures
from ._card import render_card
from ._card_tolerance import floor, read_tolerances
from ._compare import refresh_dependents
from ._evaluate import eval_changes, headline_metrics, tolerance_sweep
from ._figure_registry import figures_for
from ._provenance import hardware, source_version
from ._registry import (
    CARD,
    CONFIG,
    METRICS,
    TRAINING_LOG,
    WEIGHTS,
    card_meta,
    config,
    entry_dir,
    load,
    names,
    searching,
)


def build_entry(
    name: str,
    run_dir: str | os.PathLike,
    *,
    into: str | os.PathLike | None = None,
    sweep: bool = True,
) -> dict:
    """Make zoo entry `name` from a finished training run: copy its weights and training
    log, evaluate the headline metrics and a tolerance sweep, draw the figures and
    write `metrics.json` and `card.md`.

    Arguments:

    - `name`: the entry. Without `into`, its `config.json` must already be on the
      search path (the maintainers' `zoo/`, or a folder of `$ODEZOO_ZOO_PATH`).
    - `run_dir`: the run directory `odezoo train name --out run_dir` wrote.
    - `into`: a folder of the user's own entries: the entry is built in `into/name`,
      with the run's config when that folder has none yet (a name the search path
      already defines elsewhere is an error). Find it again with `zoo=into` (or
      `--zoo DIR`, `$ODEZOO_ZOO_PATH`).
    - `sweep`: whether to run the test-time tolerance sweep (ODE models).

    Returns:

    The entry's `metrics.json` as a dict.
    """
    if into is None:
        return _build(name, run_dir, sweep)
    with searching(into):
        _place(name, Path(run_dir), Path(into))
        return _build(name, run_dir, sweep)


def _place(name: str, run: Path, into: Path) -> None:
    """Start entry `name` in the user's folder `into` with the run's config, unless it
    is there already."""
    folder = into / name
    if (folder / CONFIG).is_file():
        return
    if name in names():
        raise ConfigError(
            f"zoo entry {name!r} already exists at {entry_dir(name)}: build yours under "
            "another name"
        )
    if not (run / CONFIG).is_file():
        raise MissingFileError(f"{run} has no {CONFIG}: it is not a finished training run")
    cfg = json.loads((run / CONFIG).read_text())
    cfg["name"] = name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG).write_text(json.dumps(cfg, indent=2) + "\n")


def _build(name: str, run_dir: str | os.PathLike, sweep: bool) -> dict:
    folder = entry_dir(name)
    # A rebuilt entry keeps the tolerances its card states (measured for its recipe by
    # benchmarks/isa_spread.py; rerun it after a rebuild that changes the recipe).
    previous = read_tolerances(name) if (folder / METRICS).is_file() else {}
    run = Path(run_dir)
    run_cfg = json.loads((run / CONFIG).read_text())
    entry_cfg = config(name)
    for section in ("model",):
        if run_cfg.get(section, {}) != _filled(entry_cfg, section):
            raise ConfigError(
                f"run {run} was trained with a different {section} section than entry {name}"
            )
    shutil.copyfile(run / WEIGHTS, folder / WEIGHTS)
    shutil.copyfile(run / "metrics.jsonl", folder / TRAINING_LOG)
    summary = json.loads((run / METRICS).read_text())
    model = load(name)
    metrics: dict[str, Any] = {
        "entry": name,
        "metrics": headline_metrics(name, model),
        "eval_solver": solver_of(model.with_solver(**eval_changes(entry_cfg))).to_config()
        if solver_of(model) is not None
        else None,
        "parameters": count_parameters(model),
        "training": {
            k: summary.get(k)
            for k in (
                "steps",
                "final_loss",
                "compile_time_s",
                "step_time_median_s",
                "total_time_s",
                "nfe_forward_final",
                "nfe_backward_final",
                "jax_version",
                "backend",
            )
        },
        "hardware": hardware(),
        "built_with": source_version(),
    }
    # A new metric gets the least tolerance a card allows until
    # benchmarks/isa_spread.py measures how far it moves.
    metrics["tolerances"] = {k: previous.get(k) or floor(k) for k in metrics["metrics"]}
    # The sweep trades accuracy for forward NFE: it needs an evaluation that counts them
    # (a sampling SDE compared with a known law does not, and steps at a fixed dt0).
    if sweep and solver_of(model) is not None and "nfe_forward" in metrics["metrics"]:
        metrics["tolerance_sweep"] = tolerance_sweep(model, entry_cfg)
    else:
        (folder / "tolerance.png").unlink(missing_ok=True)
    (folder / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    figures = figures_for(name, entry_cfg, model, folder)
    if "tolerance_sweep" in metrics:
        target = (card_meta(entry_cfg).get("target") or {}).get("metric")
        key = next(k for k in (target, "accuracy", "loss") if k in metrics["metrics"])
        _figures.tolerance_figure(metrics["tolerance_sweep"], key, folder / "tolerance.png")
        figures.append(("tolerance.png", f"Test {key} against forward NFE as rtol = atol loosen."))
    (folder / CARD).write_text(render_card(name, entry_cfg, metrics, figures))
    refresh_dependents(name)  # regularised entries' cards compare themselves with this one
    return metrics


def _filled(cfg: dict, section: str) -> dict:
    from ..config import full_config

    return full_config(cfg).get(section, {})
