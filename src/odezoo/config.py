"""Run configs: plain JSON data that rebuilds a model, its data, loss and optimiser.

A config is what a run directory's `config.json` and a zoo entry hold. It is data, not
code: every choice is a name or a number, and [`full_config`][odezoo.config.full_config]
fills in every default so that a run's `config.json` spells out all of it.

```json
{
  "name": "seed-cubic-odenet",
  "description": "The seed chapter's ODE-Net on the cubic toy.",
  "seed": 0,
  "model": {"type": "odenet", "in_size": 1, "width": 20, "depth": 1,
            "init": "normal", "init_scale": 1.0},
  "solver": {"solver": "Dopri5", "rtol": 0.001, "atol": 1e-06, "adjoint": "checkpoint"},
  "data": {"name": "cubic", "n": 10},
  "train": {"steps": 1000, "batch_size": 10, "optimizer": "sgd", "lr": 0.01,
            "loss": "mse"}
}
```

Sections:

- `seed`: an int; the model is initialised from `fold_in(key(seed), 0)` and trained
  with `fold_in(key(seed), 1)`.
- `model`: `{"type": ...}` with `type` one of `MODEL_TYPES`; the other keys per type are
  listed in `MODEL_KEYS` (sizes, activation by name, init, ...). A `"classifier"` nests
  a `stem`, a `block` (itself a model config) and a `head`.
- `solver`: [`Solver.to_config`][odezoo.Solver.to_config] (solver by diffrax class name,
  tolerances, adjoint, ...); for ODE models only.
- `data`: `{"name": ...}` with `name` one of `DATA_NAMES`, plus its options.
- `train`: steps, batch size, optimiser, learning rate, loss, logging, checkpoints and an
  optional tolerance schedule (`[[step, {"rtol": ..., "atol": ...}], ...]`).
- `name`, `description`, `notes`, `meta`: free-form, ignored by the builders.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._errors import ConfigError as ConfigError
from ._errors import SolverError
from ._solver import Solver
from .nn import CNF, MLP, Classifier, ODENet, ResNet
from .nn._dynamics import ConvBlock, ConvDynamics

CONFIG_VERSION = 1


ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "softplus": jax.nn.softplus,
    "elu": jax.nn.elu,
    "sigmoid": jax.nn.sigmoid,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "gelu": jax.nn.gelu,
    "identity": lambda x: x,
}

_COMMON = {"activation": "tanh", "init": "default", "init_scale": 1.0}
MODEL_KEYS: dict[str, dict[str, Any]] = {
    "mlp": {"in_size": None, "out_size": None, "width": 20, "depth": 1, **_COMMON},
    "resnet": {
        "size": None,
        "depth": 5,
        "width": 20,
        "block_depth": 1,
        "dynamics": None,
        **_COMMON,
    },
    "odenet": {
        "in_size": None,
        "width": 20,
        "depth": 1,
        "augment": 0,
        "out_size": None,
        "t0": 0.0,
        "t1": 1.0,
        "dynamics": None,
        **_COMMON,
    },
    "anode": {
        "in_size": None,
        "width": 20,
        "depth": 1,
        "augment": 5,
        "out_size": None,
        "t0": 0.0,
        "t1": 1.0,
        "dynamics": None,
        **_COMMON,
    },
    "cnf": {
        "data_size": None,
        "hidden": [64, 64, 64],
        "num_blocks": 1,
        "time": 0.5,
        "learn_time": True,
        "trace": "auto",
        "probe": "rademacher",
        "kinetic": 0.0,
        "jacobian": 0.0,
    },
    "classifier": {
        "in_shape": None,
        "num_classes": None,
        "stem": None,
        "block": None,
        "head": None,
    },
}
MODEL_TYPES = tuple(MODEL_KEYS)
ODE_TYPES = ("odenet", "anode", "cnf")

STEM_KEYS = {
    "identity": {},
    "linear": {"out_size": None, "activation": None},
    "flatten_linear": {"out_size": None, "activation": None},
    "conv": {"channels": None, "kernel_size": 3, "stride": 1, "activation": "relu"},
}
HEAD_KEYS = {"linear": {}, "pool_linear": {}, "flatten_linear": {}}
DYNAMICS_KEYS = {
    "conv": {"hidden_channels": 32, "kernel_size": 3, "depth": 1, "activation": "tanh"},
}

DATA_KEYS: dict[str, dict[str, Any]] = {
    "cubic": {"n": 10, "low": -2.0, "high": 2.0},
    "spheres": {
        "dim": 2,
        "n_inner": 500,
        "n_outer": 1500,
        "labels": "pm1",
        "seed": 0,
        "test_seed": 1,
    },
    "toy2d": {"density": None, "eval_samples": 1000, "eval_seed": 12345},
    "digits": {"flatten": False, "test_fraction": 0.2, "split_seed": 0, "augment_shift": 0},
    "mnist": {"path": None, "flatten": False},
}
DATA_NAMES = tuple(DATA_KEYS)

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
}
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = (None, "constant", "cosine", "warmup_cosine")
LOSS_NAMES = ("mse", "cross_entropy", "huber", "nll")
_TOP = (
    "name",
    "description",
    "notes",
    "meta",
    "seed",
    "model",
    "solver",
    "data",
    "train",
    "version",
)


# -- reading and editing ----------------------------------------------------------------


def load_config(source: str | os.PathLike | dict) -> dict:
    """A config from a dict (copied), a JSON file, or a directory holding `config.json`.

    Example:

    ```python
    from odezoo.config import load_config

    cfg = load_config({"model": {"type": "mlp", "in_size": 1, "out_size": 1},
                       "data": {"name": "cubic"}, "train": {"steps": 10}})
    ```
    """
    if isinstance(source, dict):
        return copy.deepcopy(source)
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


def set_value(cfg: dict, dotted: str, value: Any) -> dict:
    """A copy of `cfg` with `value` at the dotted path, e.g. `"model.width"` or
    `"solver.rtol"` (intermediate sections are created).

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
    out = copy.deepcopy(cfg)
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


def _check_keys(section: dict, allowed, where: str) -> None:
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in {where}; valid keys: {', '.join(sorted(allowed))}"
        )


def _with_defaults(section: dict, defaults: dict, where: str, required=()) -> dict:
    _check_keys(section, defaults, where)
    out = {**copy.deepcopy(defaults), **section}
    for key in required:
        if out.get(key) is None:
            raise ConfigError(f"{where} needs {key!r}")
    return out


def _section(cfg: dict, name: str) -> dict:
    value = cfg.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"config section {name!r} must be an object")
    return value


# -- normalisation ----------------------------------------------------------------------


def _full_model(m: dict, where: str = "model") -> dict:
    if not isinstance(m, dict) or "type" not in m:
        raise ConfigError(f"{where} needs a 'type', one of {', '.join(MODEL_TYPES)}")
    kind = m["type"]
    if kind not in MODEL_KEYS:
        raise ConfigError(f"unknown {where} type {kind!r}; valid: {', '.join(MODEL_TYPES)}")
    rest = {k: v for k, v in m.items() if k != "type"}
    required = {
        "mlp": ("in_size", "out_size"),
        "resnet": ("size",),
        "odenet": ("in_size",),
        "anode": ("in_size",),
        "cnf": ("data_size",),
        "classifier": ("in_shape", "num_classes", "block"),
    }[kind]
    if where != "model" and kind != "classifier":
        required = ()  # a classifier's block takes its size from the stem
    full = _with_defaults(rest, MODEL_KEYS[kind], f"{where} ({kind})", required)
    if "activation" in full and full["activation"] not in ACTIVATIONS:
        raise ConfigError(
            f"unknown activation {full['activation']!r} in {where}; valid: {', '.join(ACTIVATIONS)}"
        )
    if kind == "anode" and not full["augment"] > 0:
        raise ConfigError(f"{where} (anode) needs augment > 0 (use type 'odenet' for none)")
    if kind in ("odenet", "anode", "resnet") and full["dynamics"] is not None:
        d = full["dynamics"]
        if not isinstance(d, dict) or d.get("type") not in DYNAMICS_KEYS:
            raise ConfigError(f"{where}.dynamics needs a type, one of {list(DYNAMICS_KEYS)}")
        dk = {k: v for k, v in d.items() if k != "type"}
        full["dynamics"] = {
            "type": d["type"],
            **_with_defaults(dk, DYNAMICS_KEYS[d["type"]], f"{where}.dynamics"),
        }
    if kind == "classifier":
        stem = full["stem"] or {"type": "identity"}
        if stem.get("type") not in STEM_KEYS:
            raise ConfigError(f"{where}.stem needs a type, one of {list(STEM_KEYS)}")
        sk = {k: v for k, v in stem.items() if k != "type"}
        full["stem"] = {
            "type": stem["type"],
            **_with_defaults(sk, STEM_KEYS[stem["type"]], f"{where}.stem"),
        }
        head = full["head"] or {"type": "linear"}
        if head.get("type") not in HEAD_KEYS:
            raise ConfigError(f"{where}.head needs a type, one of {list(HEAD_KEYS)}")
        full["head"] = {"type": head["type"]}
        block = full["block"]
        if not isinstance(block, dict) or block.get("type") not in (
            "odenet",
            "anode",
            "resnet",
            "mlp",
        ):
            raise ConfigError(f"{where}.block must be an odenet, anode, resnet or mlp config")
        full["block"] = _full_model(block, f"{where}.block")
    return {"type": kind, **full}


def _is_ode(model_cfg: dict) -> bool:
    if model_cfg["type"] == "classifier":
        return model_cfg["block"]["type"] in ODE_TYPES
    return model_cfg["type"] in ODE_TYPES


def _default_loss(model_cfg: dict, data_cfg: dict) -> str:
    if model_cfg["type"] == "cnf":
        return "nll"
    if model_cfg["type"] == "classifier":
        return "cross_entropy"
    if data_cfg.get("name") == "spheres" and data_cfg.get("labels", "pm1") == "pm1":
        return "huber"
    return "mse"


def full_config(cfg: dict) -> dict:
    """`cfg` checked, with every default filled in (what a run writes to `config.json`).

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
    cfg = load_config(cfg)
    _check_keys(cfg, _TOP, "the config (top level)")
    out: dict[str, Any] = {k: cfg[k] for k in ("name", "description", "notes", "meta") if k in cfg}
    out["version"] = CONFIG_VERSION
    seed = cfg.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an int, got {seed!r}")
    out["seed"] = seed
    model = _full_model(cfg.get("model") or {})
    out["model"] = model
    if _is_ode(model):
        # The models' own defaults: a CNF solves at rtol = atol = 1e-5.
        defaults = Solver(rtol=1e-5, atol=1e-5) if model["type"] == "cnf" else Solver()
        solver_cfg = {**defaults.to_config(), **_section(cfg, "solver")}
        try:
            out["solver"] = Solver.from_config(solver_cfg).to_config()
        except (TypeError, ValueError) as e:
            raise ConfigError(f"bad solver config: {e}") from None
    elif cfg.get("solver"):
        raise ConfigError(f"model type {model['type']!r} has no ODE solver; remove 'solver'")
    data = _section(cfg, "data")
    name = data.get("name")
    if name not in DATA_KEYS:
        raise ConfigError(f"data needs a 'name', one of {', '.join(DATA_NAMES)}; got {name!r}")
    required = {"toy2d": ("density",), "mnist": ("path",)}.get(name, ())
    data_full = _with_defaults(
        {k: v for k, v in data.items() if k != "name"},
        DATA_KEYS[name],
        f"data ({name})",
        required,
    )
    out["data"] = {"name": name, **data_full}
    train = _with_defaults(_section(cfg, "train"), TRAIN_KEYS, "train", ("steps",))
    if train["loss"] is None:
        train["loss"] = _default_loss(model, out["data"])
    if train["loss"] not in LOSS_NAMES:
        raise ConfigError(f"unknown loss {train['loss']!r}; valid: {', '.join(LOSS_NAMES)}")
    if train["optimizer"] not in OPTIMIZERS:
        raise ConfigError(
            f"unknown optimizer {train['optimizer']!r}; valid: {', '.join(OPTIMIZERS)}"
        )
    if train["lr_schedule"] not in LR_SCHEDULES:
        raise ConfigError(
            f"unknown lr_schedule {train['lr_schedule']!r}; valid: "
            f"{', '.join(str(s) for s in LR_SCHEDULES)}"
        )
    for key in ("steps", "log_every", "eval_batch_size"):
        _positive_int(train[key], f"train.{key}", allow_zero=key == "steps")
    for key in ("batch_size", "eval_every", "checkpoint_every"):
        if train[key] is not None:
            _positive_int(train[key], f"train.{key}")
    if not (isinstance(train["lr"], int | float) and train["lr"] > 0):
        raise ConfigError(f"train.lr must be a positive number, got {train['lr']!r}")
    if train["tolerance_schedule"] is not None and not _is_ode(model):
        raise ConfigError("train.tolerance_schedule needs an ODE model")
    out["train"] = train
    return out


def _positive_int(value, where: str, allow_zero: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or value < (0 if allow_zero else 1):
        raise ConfigError(
            f"{where} must be a {'non-negative' if allow_zero else 'positive'} int, got {value!r}"
        )


# -- builders ---------------------------------------------------------------------------


def build_solver(cfg: dict) -> Solver | None:
    """The [`Solver`][odezoo.Solver] of a config (`None` for MLP/ResNet models)."""
    cfg = full_config(cfg)
    return Solver.from_config(cfg["solver"]) if "solver" in cfg else None


def _in_shape(value) -> tuple[int, ...]:
    return (value,) if isinstance(value, int) else tuple(value)


def _build(m: dict, solver: Solver | None, key, in_shape=None):
    kind = m["type"]
    act = ACTIVATIONS.get(m.get("activation") or "tanh")
    common = dict(
        activation=act, init=m.get("init", "default"), init_scale=m.get("init_scale", 1.0)
    )
    if kind == "mlp":
        in_size = m["in_size"] if m["in_size"] is not None else _flat(in_shape)
        out_size = m["out_size"] if m["out_size"] is not None else in_size
        return MLP(in_size, out_size, m["width"], m["depth"], key=key, **common)
    if kind == "resnet":
        if m.get("dynamics") is not None:  # conv residual blocks on image features
            shape = _in_shape(m["size"]) if m["size"] is not None else in_shape
            d = m["dynamics"]
            blocks = [
                ConvBlock(
                    shape[0],
                    d["hidden_channels"],
                    d["kernel_size"],
                    d["depth"],
                    activation=ACTIVATIONS[d["activation"]],
                    key=k,
                )
                for k in jax.random.split(key, m["depth"])
            ]
            return ResNet(shape, blocks=blocks)
        size = m["size"] if m["size"] is not None else _flat(in_shape)
        return ResNet(size, m["depth"], m["width"], m["block_depth"], key=key, **common)
    if kind in ("odenet", "anode"):
        shape = _in_shape(m["in_size"]) if m["in_size"] is not None else in_shape
        dkey, key = jax.random.split(key)
        dynamics = None
        if m["dynamics"] is not None:
            d = m["dynamics"]
            dynamics = ConvDynamics(
                shape[0] + m["augment"],
                d["hidden_channels"],
                d["kernel_size"],
                d["depth"],
                activation=ACTIVATIONS[d["activation"]],
                key=dkey,
            )
        return ODENet(
            shape,
            width_size=m["width"],
            depth=m["depth"],
            augment=m["augment"],
            out_size=m["out_size"],
            dynamics=dynamics,
            solver=solver,
            t0=m["t0"],
            t1=m["t1"],
            key=key,
            **common,
        )
    if kind == "cnf":
        return CNF(
            m["data_size"],
            tuple(m["hidden"]),
            num_blocks=m["num_blocks"],
            time=m["time"],
            learn_time=m["learn_time"],
            trace=m["trace"],
            probe=m["probe"],
            kinetic=m["kinetic"],
            jacobian=m["jacobian"],
            solver=solver,
            key=key,
        )
    if kind == "classifier":
        return _build_classifier(m, solver, key)
    raise AssertionError(kind)


def _flat(shape) -> int:
    if shape is None:
        raise ConfigError("a model size is missing")
    return int(np.prod(shape))


def _build_classifier(m: dict, solver, key):
    skey, bkey, hkey = jax.random.split(key, 3)
    shape = _in_shape(m["in_shape"])
    stem_cfg = m["stem"]
    kind = stem_cfg["type"]
    layers: list = []
    if kind == "identity":
        feat = shape
    elif kind in ("linear", "flatten_linear"):
        if kind == "flatten_linear" or len(shape) > 1:
            layers.append(eqx.nn.Lambda(jnp.ravel))
        layers.append(eqx.nn.Linear(_flat(shape), stem_cfg["out_size"], key=skey))
        feat = (stem_cfg["out_size"],)
    else:  # conv
        if len(shape) != 3:
            raise ConfigError(f"a conv stem needs image inputs (C, H, W), got {shape}")
        k, s = stem_cfg["kernel_size"], stem_cfg["stride"]
        layers.append(
            eqx.nn.Conv2d(shape[0], stem_cfg["channels"], k, stride=s, padding=k // 2, key=skey)
        )
        size = lambda n: (n + 2 * (k // 2) - k) // s + 1
        feat = (stem_cfg["channels"], size(shape[1]), size(shape[2]))
    if stem_cfg.get("activation"):
        layers.append(eqx.nn.Lambda(ACTIVATIONS[stem_cfg["activation"]]))
    stem = eqx.nn.Sequential(layers) if layers else eqx.nn.Identity()
    block = _build(m["block"], solver, bkey, in_shape=feat)
    out_feat = _block_out_shape(m["block"], feat)
    head_kind = m["head"]["type"]
    head_layers: list = []
    if head_kind == "pool_linear":
        if len(out_feat) < 2:
            raise ConfigError("a pool_linear head needs image features; use 'linear'")
        head_layers.append(eqx.nn.Lambda(_spatial_mean))
        n_in = out_feat[0]
    else:
        if len(out_feat) > 1 or head_kind == "flatten_linear":
            head_layers.append(eqx.nn.Lambda(jnp.ravel))
        n_in = _flat(out_feat)
    head_layers.append(eqx.nn.Linear(n_in, m["num_classes"], key=hkey))
    return Classifier(stem=stem, block=block, head=eqx.nn.Sequential(head_layers), in_shape=shape)


def _spatial_mean(h):
    return jnp.mean(h, axis=tuple(range(1, h.ndim)))


def _block_out_shape(b: dict, feat: tuple[int, ...]) -> tuple[int, ...]:
    if b["type"] in ("odenet", "anode"):
        if b.get("out_size") is not None:
            return (b["out_size"],)
        return feat
    if b["type"] == "mlp":
        return (b["out_size"] if b["out_size"] is not None else _flat(feat),)
    return feat


def model_key(cfg: dict):
    """The PRNG key a config's model is initialised with: `fold_in(key(seed), 0)`."""
    return jax.random.fold_in(jax.random.key(full_config(cfg)["seed"]), 0)


def train_key(cfg: dict):
    """The PRNG key a config's training run uses: `fold_in(key(seed), 1)`."""
    return jax.random.fold_in(jax.random.key(full_config(cfg)["seed"]), 1)


def build_model(cfg: dict, key=None):
    """The (untrained) model a config describes.

    Arguments:

    - `cfg`: a config (dict, file or run directory; see the module docs).
    - `key`: the initialisation key (default [`model_key`][odezoo.config.model_key]).

    Example:

    ```python
    from odezoo.config import build_model

    net = build_model({"model": {"type": "odenet", "in_size": 1, "init": "normal"},
                       "data": {"name": "cubic"}, "train": {"steps": 1}})
    ```
    """
    cfg = full_config(cfg)
    key = model_key(cfg) if key is None else key
    solver = Solver.from_config(cfg["solver"]) if "solver" in cfg else None
    return _build(cfg["model"], solver, key)


@dataclasses.dataclass
class DataBundle:
    """What [`build_data`][odezoo.config.build_data] returns.

    Fields:

    - `train`: what [`fit`][odezoo.train.fit] takes: a tuple of arrays, or a sampler
      `sample(key, n)` for infinite data.
    - `test`: held-out arrays for evaluation (a fresh sample for a density), or `None`.
    - `name`: the dataset's name.
    """

    train: tuple | Callable
    test: tuple | None
    name: str


def build_data(cfg: dict) -> DataBundle:
    """The training and evaluation data of a config.

    Example:

    ```python
    from odezoo.config import build_data

    data = build_data({"model": {"type": "mlp", "in_size": 1, "out_size": 1},
                       "data": {"name": "cubic", "n": 10}, "train": {"steps": 1}})
    x, y = data.train
    ```
    """
    from . import data as datasets

    cfg = full_config(cfg)
    d = cfg["data"]
    name = d["name"]
    if name == "cubic":
        xy = datasets.cubic(d["n"], d["low"], d["high"])
        return DataBundle(xy, xy, name)
    if name == "spheres":
        kw = dict(dim=d["dim"], n_inner=d["n_inner"], n_outer=d["n_outer"], labels=d["labels"])
        train = datasets.concentric_spheres(jax.random.key(d["seed"]), **kw)
        test = datasets.concentric_spheres(jax.random.key(d["test_seed"]), **kw)
        return DataBundle(train, test, name)
    if name == "toy2d":
        density = d["density"]
        if density not in datasets.TOY2D_NAMES:
            raise ConfigError(
                f"unknown toy density {density!r}; valid: {', '.join(datasets.TOY2D_NAMES)}"
            )
        sampler = _ToySampler(density)
        test = (datasets.toy2d(density, jax.random.key(d["eval_seed"]), d["eval_samples"]),)
        return DataBundle(sampler, test, name)
    if name == "digits":
        kw = dict(test_fraction=d["test_fraction"], seed=d["split_seed"], flatten=d["flatten"])
        train = datasets.digits("train", **kw)
        if d["augment_shift"]:
            if d["flatten"]:
                raise ConfigError("data.augment_shift needs image digits (flatten: false)")
            train = _ShiftSampler(*train, max_shift=int(d["augment_shift"]))
        return DataBundle(train, datasets.digits("test", **kw), name)
    if name == "mnist":
        raw = datasets.load_mnist(d["path"])
        fix = (lambda x: x.reshape(len(x), -1)) if d["flatten"] else (lambda x: x)
        return DataBundle(
            (fix(raw["x_train"]), raw["y_train"]), (fix(raw["x_test"]), raw["y_test"]), name
        )
    raise AssertionError(name)


@dataclasses.dataclass(frozen=True)
class _ToySampler:
    """`sample(key, n)` for a 2-D toy density (hashable, so compiled steps are shared)."""

    density: str

    def __call__(self, key, n: int):
        from .data import toy2d

        return toy2d(self.density, key, n)


@dataclasses.dataclass(frozen=True, eq=False)
class _ShiftSampler:
    """`sample(key, n)`: `n` training images drawn at random, each shifted by up to
    `max_shift` pixels in each direction (zero fill): data augmentation for small image
    sets. Hashed by identity, so one compiled step serves one dataset."""

    x: np.ndarray
    y: np.ndarray
    max_shift: int

    def __call__(self, key, n: int):
        k_idx, k_shift = jax.random.split(key)
        idx = jax.random.randint(k_idx, (n,), 0, len(self.x))
        x, y = jnp.asarray(self.x)[idx], jnp.asarray(self.y)[idx]
        s = self.max_shift
        shifts = jax.random.randint(k_shift, (n, 2), 0, 2 * s + 1)
        padded = jnp.pad(x, ((0, 0), (0, 0), (s, s), (s, s)))
        size = x.shape[1:]

        def crop(img, sh):
            return jax.lax.dynamic_slice(img, (0, sh[0], sh[1]), size)

        return jax.vmap(crop)(padded, shifts), y


def build_loss(cfg: dict):
    """The loss function of a config (see [`odezoo.train.get_loss`][odezoo.train.get_loss])."""
    from .train import get_loss

    return get_loss(full_config(cfg)["train"]["loss"])


def build_optimizer(cfg: dict) -> optax.GradientTransformation:
    """The optax optimiser of a config: `adam`, `adamw` or `sgd` (with `momentum`), a
    learning-rate schedule (`cosine`, `warmup_cosine` with `warmup_steps`), decoupled
    `weight_decay` and global-norm clipping `clip_norm`.

    Example:

    ```python
    from odezoo.config import build_optimizer

    opt = build_optimizer({"model": {"type": "mlp", "in_size": 1, "out_size": 1},
                           "data": {"name": "cubic"},
                           "train": {"steps": 100, "optimizer": "sgd", "lr": 0.01}})
    ```
    """
    t = full_config(cfg)["train"]
    lr: Any = t["lr"]
    if t["lr_schedule"] == "cosine":
        lr = optax.cosine_decay_schedule(t["lr"], max(t["steps"], 1))
    elif t["lr_schedule"] == "warmup_cosine":
        lr = optax.warmup_cosine_decay_schedule(
            0.0, t["lr"], t["warmup_steps"], max(t["steps"], t["warmup_steps"] + 1)
        )
    if t["optimizer"] == "adam":
        opt = optax.adam(lr)
        if t["weight_decay"]:
            opt = optax.chain(optax.add_decayed_weights(t["weight_decay"]), opt)
    elif t["optimizer"] == "adamw":
        opt = optax.adamw(lr, weight_decay=t["weight_decay"])
    else:
        opt = optax.sgd(lr, momentum=t["momentum"])
        if t["weight_decay"]:
            opt = optax.chain(optax.add_decayed_weights(t["weight_decay"]), opt)
    if t["clip_norm"] is not None:
        opt = optax.chain(optax.clip_by_global_norm(t["clip_norm"]), opt)
    return opt


def build_tolerance(cfg: dict):
    """The tolerance schedule of a config (`None` if it has none)."""
    from .train import piecewise_tolerance

    sched = full_config(cfg)["train"]["tolerance_schedule"]
    return None if sched is None else piecewise_tolerance(sched)


def build_evaluate(cfg: dict, data: DataBundle | None = None, *, key=None):
    """A function `model -> dict of metrics` on the config's held-out data.

    Metrics: `loss` (the training loss on the test set; mean NLL in nats for a CNF),
    `accuracy` for classification (argmax) and ±1 targets (sign), and `nfe_forward`
    (mean forward evaluations per batch) for ODE models. Batches of
    `train.eval_batch_size` examples are compiled once.

    Example:

    ```python
    import jax
    from odezoo.config import build_evaluate, build_model

    cfg = {"model": {"type": "mlp", "in_size": 1, "out_size": 1},
           "data": {"name": "cubic"}, "train": {"steps": 1}}
    metrics = build_evaluate(cfg)(build_model(cfg))
    ```
    """
    cfg = full_config(cfg)
    data = build_data(cfg) if data is None else data
    loss_name = cfg["train"]["loss"]
    chunk = cfg["train"]["eval_batch_size"]
    key = jax.random.key(0) if key is None else key
    test = data.test
    if test is None:
        return lambda model: {}

    @eqx.filter_jit
    def forward(model, x):
        if loss_name == "nll":
            out, stats = model.apply(x, key=key)
        else:
            out, stats = model.apply(x)
        if stats is None:
            return out, None, None
        return out, stats.nfe, stats.failed

    def evaluate(model) -> dict:
        x = np.asarray(test[0])
        n = len(x)
        outs, nfes = [], []
        for i in range(0, n, chunk):
            xb = x[i : i + chunk]
            m = len(xb)
            if m < min(chunk, n):  # pad the last chunk so that one compiled shape serves
                xb = np.concatenate([xb, np.repeat(xb[:1], min(chunk, n) - m, axis=0)])
            out, nfe, failed = forward(model, jnp.asarray(xb))
            if failed is not None and int(failed):
                # Reached only when equinox's checks return NaN instead of raising
                # (`odezoo.train.errors_as_nan`, as in the CLI).
                raise SolverError(
                    f"evaluation failed: the ODE solve hit max_steps on the test batch "
                    f"starting at example {i}. Raise solver.max_steps or loosen rtol/atol."
                )
            outs.append(np.asarray(out)[:m])
            if nfe is not None:
                nfes.append(float(nfe))
        out = np.concatenate(outs)
        metrics: dict[str, Any] = {}
        if loss_name == "nll":
            metrics["loss"] = float(-np.mean(out))
        else:
            y = np.asarray(test[1])
            if loss_name == "mse":
                err = (out - y).reshape(n, -1)
                metrics["loss"] = float(np.mean(np.sum(err**2, axis=1)))
            elif loss_name == "huber":
                r = np.abs(out - y.reshape(out.shape))
                metrics["loss"] = float(np.mean(np.where(r < 1, 0.5 * r**2, r - 0.5)))
                same = np.sign(out) == np.sign(y.reshape(out.shape))
                metrics["accuracy"] = float(np.mean(same))
            else:
                z = out - out.max(axis=1, keepdims=True)
                logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
                labels = y.reshape(-1).astype(int)
                metrics["loss"] = float(-np.mean(logp[np.arange(n), labels]))
                metrics["accuracy"] = float(np.mean(out.argmax(axis=1) == labels))
        if nfes:
            metrics["nfe_forward"] = float(np.mean(nfes))
        return {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}

    return evaluate
