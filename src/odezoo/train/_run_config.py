"""Training a config into a run directory: the pipeline behind `odezoo train` and
`odezoo zoo reproduce`, from a config to the model, data, loss and optimiser it names, and
through [`fit`][odezoo.train.fit] into a run directory, resumable."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import jax

from .._errors import ConfigError, error_line
from ._cache import cache_in_use, compilation_cache_off, enable_compilation_cache
from ._fit import TrainResult, fit
from ._rundir import check_run_dir


def _override_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def train_config(
    config: str | os.PathLike | Mapping[str, Any],
    out: str | os.PathLike,
    *,
    overrides: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
    resume: bool = False,
    progress: bool = False,
    compilation_cache: bool | None = None,
    log: Callable[[str], Any] | None = None,
) -> TrainResult:
    """Train a config into run directory `out`, as `odezoo train` does: build the model,
    data, loss, optimiser, tolerance schedule and evaluation the config names, and
    [`fit`][odezoo.train.fit] them, writing `config.json` (every default spelled out),
    `metrics.jsonl`, `metrics.json` (the final summary), `training.png`,
    `checkpoint.ckpt` and `model.eqx`.

    Nothing a user wrote is overwritten: without `resume`, `out` must be missing or
    empty; with it, `out` must hold a run of the same config to continue exactly where
    it stopped. Either way a [`RunDirError`][odezoo.RunDirError] says what to do
    otherwise, before anything is built.

    Arguments:

    - `config`: a config (see `odezoo.config`), a zoo entry name, the path of a config
      `.json` file, or a run directory (whose `config.json` is used).
    - `out`: the run directory.
    - `overrides`: config values to change first, `{dotted key: value}` (or
      `(key, value)` pairs, applied in order), as `odezoo train --set key=value` and
      `--steps` give them: e.g. `{"train.steps": 100, "solver.rtol": 1e-4}`.
    - `resume`: continue the run in `out` from its checkpoint (a finished run is left
      as it is: `steps_run` is 0).
    - `progress`: show a progress bar.
    - `compilation_cache`: JAX's persistent compilation cache for this run: `None`, as
      this process has it; `True`, enabled in its default directory
      ([`enable_compilation_cache`][odezoo.train.enable_compilation_cache]) once `out`
      is checked, as `odezoo train` does; `False`, off: every program is compiled
      afresh, as `odezoo zoo reproduce` does.
    - `log`: called with one line saying what the run does (training, resuming, or
      nothing left to do), by process 0 only; default silent. `odezoo train` prints it.

    Returns:

    `fit`'s [`TrainResult`][odezoo.train.TrainResult]; `summary` is the run's
    `metrics.json`.

    Raises [`ConfigError`][odezoo.ConfigError] for a config that cannot build its model
    (naming the model overrides), and whatever `fit` raises, e.g. a
    [`TrainingError`][odezoo.TrainingError].

    Example:

    ```python
    from odezoo.train import train_config
    from odezoo.zoo import load

    result = train_config("seed-cubic-resnet", "run", overrides={"train.steps": 3})
    print(result.summary["final_loss"])
    model = load("run")                                 # the trained weights
    again = train_config("seed-cubic-resnet", "run", overrides={"train.steps": 5},
                         resume=True)                   # two more steps
    assert again.steps_run == 2
    ```
    """
    from ..config import (
        build_data,
        build_evaluate,
        build_loss,
        build_model,
        build_optimizer,
        build_tolerance,
        full_config,
        load_config,
        set_value,
    )
    from ..config._schema import train_key
    from ..zoo._registry import named_config

    if isinstance(config, Mapping):
        cfg = load_config(config)
        name = cfg.get("name") or Path(out).name
    else:
        cfg, name = named_config(config)
    changes = list(overrides.items() if isinstance(overrides, Mapping) else overrides)
    for key, value in changes:
        cfg = set_value(cfg, key, value)
    cfg = full_config(cfg)
    out = Path(out)
    t = cfg["train"]
    start = check_run_dir(out, resume=resume, steps=t["steps"])
    if compilation_cache:
        enable_compilation_cache()
    fresh = compilation_cache_off() if compilation_cache is False else contextlib.nullcontext()
    with fresh:
        data = build_data(cfg)
        try:  # a bad model setting fails here, before "training ..." is said
            model = build_model(cfg)
        except Exception as e:  # e.g. a negative width: the model's own InputError
            mine = [f"{k}={_override_text(v)}" for k, v in changes if k.startswith("model.")]
            where = f" (--set {' '.join(mine)})" if mine else ""
            raise ConfigError(
                f"cannot build the model from the config{where}: {error_line(e)}"
            ) from e
        if log is not None and jax.process_index() == 0:
            cache = cache_in_use()
            where = f", compilation cache {cache}" if cache else ""
            if start is None:
                doing = f"training {name} for {t['steps']} steps into {out}"
            elif start >= t["steps"]:
                doing = f"{out} holds a finished run of {t['steps']} steps: nothing left to do"
                where = ""
            else:
                doing = f"resuming {name} from step {start} of {t['steps']} in {out}"
            log(doing + where)
        return fit(
            model,
            data.train,
            loss=build_loss(cfg),
            optimizer=build_optimizer(cfg),
            steps=t["steps"],
            batch_size=t["batch_size"],
            key=train_key(cfg),
            tolerance=build_tolerance(cfg),
            evaluate=build_evaluate(cfg, data),
            eval_every=t["eval_every"],
            log_every=t["log_every"],
            run_dir=out,
            config=cfg,
            checkpoint_every=t["checkpoint_every"],
            resume=resume,
            progress=progress,
        )
