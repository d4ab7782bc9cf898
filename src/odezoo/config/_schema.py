"""Reading, editing and normalising configs: the one frozen, fully-defaulted
[`Config`][odezoo.config.Config] that every builder takes."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax

from .._errors import ConfigError, InputError
from .._regularisation import Regularisation
from .._solver import Solver
from ..train._losses import LOSSES
from ._data import normalise_data
from ._models import default_solver, model_is_ode, normalise_model
from ._optim import check_optimizer
from ._signature import check_keys

CONFIG_VERSION = 1

TRAIN_KEYS: dict[str, Any] = {
    "steps": None,
    "batch_size": None,
    "optimizer": "adam",
    "lr": 1e-3,
    "momentum": None,
    "weight_decay": 0.0,
    "clip_norm": None,
    "lr_schedule": None,
    "warmup_steps": 0,
    "loss": None,
    "log_every": 10,
    "eval_every": None,
    "eval_batch_size": 1024,
    "checkpoint_every": 100,
    "tolerance_schedule": None,
    "regularisation": None,
}
_FREE = ("name", "description", "notes", "meta")
_TOP = (*_FREE, "seed", "model", "solver", "data", "train", "version")


# -- the frozen config --------------------------------------------------------------------


def _read_only(self, *args, **kwargs):
    raise TypeError(
        "a normalised config is read-only: edit a copy (cfg.to_dict(), or "
        "odezoo.config.set_value(cfg, key, value))"
    )


class _FrozenList(list):
    """A read-only list (a JSON array of a [`Config`][odezoo.config.Config])."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = extend = insert = pop = remove = clear = sort = reverse = _read_only

    def __copy__(self):
        return thaw(self)

    def __deepcopy__(self, memo):
        return thaw(self)

    def __reduce__(self):
        return (freeze, (thaw(self),))


class Config(dict):
    """A normalised config: checked, with every default filled in, and read-only.

    What [`full_config`][odezoo.config.full_config] returns and every `build_*`
    function takes without normalising again. It is a `dict` (nested sections too), so
    it compares equal to the plain dict and is written as JSON as it is; a copy
    (`copy.deepcopy`, [`to_dict`][odezoo.config.Config.to_dict],
    [`set_value`][odezoo.config.set_value]) is a plain, editable dict.

    Example:

    ```python
    from odezoo.config import full_config

    cfg = full_config({"model": {"type": "mlp", "in_size": 1, "out_size": 1},
                       "data": {"name": "cubic"}, "train": {"steps": 10}})
    plain = cfg.to_dict()
    plain["train"]["lr"] = 0.1
    assert full_config(plain)["train"]["lr"] == 0.1 and cfg["train"]["lr"] == 0.001
    ```
    """

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def to_dict(self) -> dict:
        """A plain, editable deep copy."""
        return thaw(self)

    def __copy__(self):
        return thaw(self)

    def __deepcopy__(self, memo):
        return thaw(self)

    def __reduce__(self):
        return (_config, (thaw(self),))


def freeze(value):
    """JSON data as read-only data: dicts as `Config`, lists as read-only lists."""
    if isinstance(value, Mapping):
        return Config({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return _FrozenList(freeze(v) for v in value)
    return value


def thaw(value):
    """Read-only data as plain, editable dicts and lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return copy.deepcopy(value)


def _config(plain: dict) -> Config:
    out = freeze(plain)
    assert isinstance(out, Config)
    return out


# -- reading and editing ------------------------------------------------------------------


def load_config(source: str | os.PathLike | Mapping) -> dict:
    """A config from a dict (copied), a JSON file, or a directory holding `config.json`.

    Example:

    ```python
    from odezoo.config import load_config

    cfg = load_config({"model": {"type": "mlp", "in_size": 1, "out_size": 1},
                       "data": {"name": "cubic"}, "train": {"steps": 10}})
    ```
    """
    if isinstance(source, Mapping):
        return thaw(source)
    path = Path(source)
    if path.is_dir():
        path = path / "config.json"
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no config file at {path}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return cfg


def parse_value(text: str) -> Any:
    """A `--set` value: JSON if it parses (`3`, `1e-4`, `true`, `null`, `[64, 64]`),
    else the string itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def set_value(cfg: Mapping, dotted: str, value: Any) -> dict:
    """A copy of `cfg` (a plain dict) with `value` at the dotted path, e.g.
    `"model.width"` or `"solver.rtol"` (intermediate sections are created).

    Example:

    ```python
    from odezoo.config import set_value

    cfg = set_value({"train": {"lr": 0.1}}, "train.lr", 0.01)
    ```
    """
    parts = dotted.split(".")
    if not dotted or any(not p for p in parts):
        raise ConfigError(f"bad config key {dotted!r}: use dotted names like model.width")
    if parts[0] not in _TOP:
        raise ConfigError(f"unknown config section {parts[0]!r}; valid: {', '.join(_TOP)}")
    out = thaw(cfg)
    node = out
    for p in parts[:-1]:
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {dotted!r}: {p!r} is not a section")
        node = nxt
    node[parts[-1]] = value
    return out


# -- normalisation ------------------------------------------------------------------------


def _section(cfg: Mapping, name: str) -> Mapping:
    value = cfg.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"config section {name!r} must be an object")
    return value


def _positive_int(value, where: str, allow_zero: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or value < (0 if allow_zero else 1):
        raise ConfigError(
            f"{where} must be a {'non-negative' if allow_zero else 'positive'} int, got {value!r}"
        )


def _default_loss(model: Mapping, data: Mapping) -> str:
    if model["type"] == "cnf":
        return "nll"
    if model["type"] == "classifier":
        return "cross_entropy"
    if data.get("name") == "spheres" and data.get("labels", "pm1") == "pm1":
        return "huber"
    return "mse"


def _solver_section(cfg: Mapping, model: Mapping) -> dict | None:
    if not model_is_ode(model):
        if cfg.get("solver"):
            raise ConfigError(f"model type {model['type']!r} has no ODE solver; remove 'solver'")
        return None
    solver_cfg = {**default_solver(model).to_config(), **_section(cfg, "solver")}
    try:
        return Solver.from_config(solver_cfg).to_config()
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bad solver config: {e}") from None


def _train_section(cfg: Mapping, model: Mapping, data: Mapping) -> dict:
    section = _section(cfg, "train")
    check_keys(section, TRAIN_KEYS, "train")
    train = {**copy.deepcopy(TRAIN_KEYS), **section}
    if train["steps"] is None:
        raise ConfigError("train needs 'steps'")
    if train["loss"] is None:
        train["loss"] = _default_loss(model, data)
    if train["loss"] not in LOSSES:
        raise ConfigError(f"unknown loss {train['loss']!r}; valid: {', '.join(LOSSES)}")
    check_optimizer(train)
    for key in ("steps", "log_every", "eval_batch_size"):
        _positive_int(train[key], f"train.{key}", allow_zero=key == "steps")
    for key in ("batch_size", "eval_every", "checkpoint_every"):
        if train[key] is not None:
            _positive_int(train[key], f"train.{key}")
    if train["tolerance_schedule"] is not None and not model_is_ode(model):
        raise ConfigError("train.tolerance_schedule needs an ODE model")
    if train["regularisation"] is not None:
        train["regularisation"] = _regularisation(train["regularisation"], model)
    return train


def _regularisation(section: Any, model: Mapping) -> dict:
    """`train.regularisation`: the [`Regularisation`][odezoo.Regularisation] weights,
    every one spelled out."""
    if not isinstance(section, Mapping):
        raise ConfigError(
            "train.regularisation must be an object of weights, e.g. "
            '{"kinetic": 0.01, "jacobian": 0.01}'
        )
    fields = [f.name for f in dataclasses.fields(Regularisation)]
    check_keys(section, fields, "train.regularisation")
    try:
        reg = Regularisation(**section)
    except (InputError, TypeError) as e:
        raise ConfigError(f"bad train.regularisation: {e}") from None
    if reg.active and not model_is_ode(model):
        raise ConfigError("train.regularisation needs an ODE model (it penalises its dynamics)")
    return {name: getattr(reg, name) for name in fields}


def full_config(cfg: Mapping | str | os.PathLike) -> Config:
    """`cfg` checked, with every default filled in: the read-only
    [`Config`][odezoo.config.Config] that a run writes to `config.json` and every
    `build_*` function takes. A `Config` is returned as it is (normalised once).

    Raises [`ConfigError`][odezoo.config.ConfigError] naming any unknown key, type or
    name, or a missing required value.

    Example:

    ```python
    from odezoo.config import full_config

    cfg = full_config({"model": {"type": "odenet", "in_size": 1},
                       "data": {"name": "cubic"}, "train": {"steps": 100}})
    print(cfg["solver"]["rtol"], cfg["train"]["optimizer"])
    ```
    """
    if isinstance(cfg, Config):
        return cfg
    cfg = load_config(cfg)
    check_keys(cfg, _TOP, "the config (top level)")
    out: dict[str, Any] = {k: cfg[k] for k in _FREE if k in cfg}
    out["version"] = CONFIG_VERSION
    seed = cfg.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an int, got {seed!r}")
    out["seed"] = seed
    model = normalise_model(cfg.get("model") or {})
    out["model"] = model
    solver = _solver_section(cfg, model)
    if solver is not None:
        out["solver"] = solver
    out["data"] = normalise_data(_section(cfg, "data"))
    out["train"] = _train_section(cfg, model, out["data"])
    return _config(out)


def model_key(cfg: Mapping | str | os.PathLike):
    """The PRNG key a config's model is initialised with: `fold_in(key(seed), 0)`."""
    return jax.random.fold_in(jax.random.key(full_config(cfg)["seed"]), 0)


def train_key(cfg: Mapping | str | os.PathLike):
    """The PRNG key a config's training run uses: `fold_in(key(seed), 1)`."""
    return jax.random.fold_in(jax.random.key(full_config(cfg)["seed"]), 1)
