"""The model section of a config: a registry `{type: family}` whose keys and defaults are
read from the constructors' signatures, and the builders of the models."""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._errors import ConfigError
from .._solver import Solver
from ..nn import (
    CNF,
    MLP,
    ODERNN,
    Classifier,
    ConvBlock,
    ConvDynamics,
    GRUSeq2Seq,
    LatentODE,
    LatentSDE,
    NeuralCDE,
    ODENet,
    ResNet,
)
from ._signature import (
    ACTIVATIONS,
    arguments_from,
    check_activations,
    check_keys,
    check_types,
    signature_options,
    signature_types,
)


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    """A model `type` of the config: its constructor and how config keys map to its
    arguments. Made by [`register_model`][odezoo.config.register_model].

    Fields:

    - `name`: the config's `model.type`.
    - `constructor`: the model class (or any callable returning a model). Its named
      arguments are the config keys, its defaults the config's defaults.
    - `rename`: `{config key: constructor argument}` where they differ.
    - `exclude`: constructor arguments that are not config keys (modules, callables).
    - `solver`: the default [`Solver`][odezoo.Solver] of an ODE family (one whose
      constructor takes `solver`), when it is not `Solver()`.
    """

    name: str
    constructor: Callable
    rename: Mapping[str, str] = dataclasses.field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    solver: Solver | None = None

    # Whether a classifier may use this family as its `block` (it then infers its input
    # size from the stem's features).
    can_be_block: ClassVar[bool] = False

    @functools.cached_property
    def options(self) -> dict[str, tuple[str, Any]]:
        """`{config key: (constructor argument, default)}`, from the signature."""
        return signature_options(self.constructor, rename=self.rename, exclude=self.exclude)

    def defaults(self) -> dict[str, Any]:
        """`{config key: default}`; `None` for a required key."""
        return {
            k: (None if d is inspect.Parameter.empty else d) for k, (_, d) in self.options.items()
        }

    def required(self) -> tuple[str, ...]:
        return tuple(k for k, (_, d) in self.options.items() if d is inspect.Parameter.empty)

    def takes_solver(self) -> bool:
        return "solver" in inspect.signature(self.constructor).parameters

    def is_ode(self, section: Mapping) -> bool:
        """Whether the model a (normalised) section describes solves an ODE."""
        return self.takes_solver()

    def default_solver(self, section: Mapping) -> Solver:
        return Solver() if self.solver is None else self.solver

    def normalise(self, section: Mapping, where: str, *, nested: bool = False) -> dict:
        """`section` checked, every default filled in. `nested` (a classifier's block):
        sizes may be left out, to be inferred from the features."""
        rest = {k: v for k, v in section.items() if k != "type"}
        defaults = self.defaults()
        check_keys(rest, defaults, f"{where} ({self.name})")
        full = {**copy.deepcopy(defaults), **rest}
        if not nested:
            for key in self.required():
                if full[key] is None:
                    raise ConfigError(f"{where} ({self.name}) needs {key!r}")
        check_types(full, signature_types(self.constructor, rename=self.rename), where)
        check_activations(full, where)
        return {"type": self.name, **full}

    def arguments(self, section: Mapping, *, key, in_shape=None) -> dict:
        """The constructor's keyword arguments (without `solver`) for a normalised section."""
        kwargs = arguments_from(self.options, section)
        if "key" in inspect.signature(self.constructor).parameters:
            kwargs["key"] = key
        return kwargs

    def build(self, section: Mapping, solver: Solver | None, key, in_shape=None):
        """The model of a normalised section."""
        kwargs = self.arguments(section, key=key, in_shape=in_shape)
        if self.takes_solver():
            kwargs["solver"] = solver
        return self.constructor(**kwargs)

    def out_shape(self, section: Mapping, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output shape of one example (for a classifier's head)."""
        raise ConfigError(f"model type {self.name!r} cannot be a classifier block")


MODEL_FAMILIES: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily, *, replace: bool = False) -> ModelFamily:
    """Add a [`ModelFamily`][odezoo.config.ModelFamily] (or a subclass that overrides how
    its section is normalised or built) to the registry."""
    if family.name in MODEL_FAMILIES and not replace:
        raise ConfigError(
            f"model type {family.name!r} is already registered; pass replace=True to replace it"
        )
    family.options  # noqa: B018  (reads the signature now: a bad default fails at registration)
    MODEL_FAMILIES[family.name] = family
    return family


def register_model(
    name: str,
    constructor: Callable,
    *,
    rename: Mapping[str, str] | None = None,
    exclude: tuple[str, ...] = (),
    solver: Solver | None = None,
    replace: bool = False,
) -> ModelFamily:
    """Make `constructor` the config's model type `name`.

    The config keys are the constructor's named arguments, with its defaults; `key` and
    `solver` are passed by [`build_model`][odezoo.config.build_model] (the solver from
    the config's `solver` section, for constructors that take one). An activation
    argument is given by name (see [`ACTIVATIONS`][odezoo.config.ACTIVATIONS]); JSON
    arrays become tuples.

    Arguments:

    - `name`: the `model.type` of the config.
    - `constructor`: the model class, or any callable returning a model.
    - `rename`: `{config key: constructor argument}` where the config spells an argument
      differently (e.g. `{"width": "width_size"}`).
    - `exclude`: constructor arguments that are not config keys (modules, callables).
    - `solver`: the family's default solver, when it is not `odezoo.Solver()`.
    - `replace`: replace an existing registration of `name`.

    Returns:

    The registered [`ModelFamily`][odezoo.config.ModelFamily].

    Example:

    ```python
    import equinox as eqx, jax, jax.numpy as jnp
    from odezoo.config import build_model, register_model

    class Scale(eqx.Module):
        weight: jax.Array

        def __init__(self, size: int, init: float = 1.0, *, key):
            self.weight = jnp.full((size,), init)

        def apply(self, xs, *, key=None):
            return xs * self.weight, None

    register_model("scale", Scale, replace=True)
    net = build_model({"model": {"type": "scale", "size": 3},
                       "data": {"name": "cubic"}, "train": {"steps": 1}})
    ```
    """
    family = ModelFamily(name, constructor, dict(rename or {}), tuple(exclude), solver)
    return register_family(family, replace=replace)


def model_types() -> tuple[str, ...]:
    """The registered model types."""
    return tuple(MODEL_FAMILIES)


def family_of(section: Mapping, where: str = "model") -> ModelFamily:
    """The family of a model section, or a `ConfigError`."""
    if not isinstance(section, Mapping) or "type" not in section:
        raise ConfigError(f"{where} needs a 'type', one of {', '.join(MODEL_FAMILIES)}")
    kind = section["type"]
    if kind not in MODEL_FAMILIES:
        raise ConfigError(f"unknown {where} type {kind!r}; valid: {', '.join(MODEL_FAMILIES)}")
    return MODEL_FAMILIES[kind]


def normalise_model(section: Mapping, where: str = "model", *, nested: bool = False) -> dict:
    """A model section checked, with every default filled in."""
    return family_of(section, where).normalise(section, where, nested=nested)


def model_is_ode(section: Mapping) -> bool:
    """Whether a normalised model section describes an ODE model."""
    return family_of(section).is_ode(section)


def default_solver(section: Mapping) -> Solver:
    """The default solver of a normalised (ODE) model section."""
    return family_of(section).default_solver(section)


def build_model_section(section: Mapping, solver: Solver | None, key, in_shape=None):
    """The model of a normalised model section."""
    return family_of(section).build(section, solver, key, in_shape)


# -- the built-in families ----------------------------------------------------------------


def _in_shape(value) -> tuple[int, ...]:
    return (value,) if isinstance(value, int) else tuple(value)


def _flat(shape) -> int:
    if shape is None:
        raise ConfigError("a model size is missing")
    return int(np.prod(shape))


# Conv dynamics of ODE-Nets and ResNets on image features: `{type: (ODE-Net dynamics,
# ResNet block)}`, whose keys and defaults are read from the ODE-Net dynamics'
# signature (the first argument, the channels, comes from the features).
_DYNAMICS = {"conv": (ConvDynamics, ConvBlock)}


def _normalise_dynamics(d, where: str):
    if d is None:
        return None
    if not isinstance(d, Mapping) or d.get("type") not in _DYNAMICS:
        raise ConfigError(f"{where}.dynamics needs a type, one of {list(_DYNAMICS)}")
    options = signature_options(_DYNAMICS[d["type"]][0], exclude=("channels",))
    rest = {k: v for k, v in d.items() if k != "type"}
    check_keys(rest, options, f"{where}.dynamics")
    full = {k: default for k, (_, default) in options.items()} | rest
    check_activations(full, f"{where}.dynamics")
    return {"type": d["type"], **full}


def _dynamics(d: Mapping, channels: int, key, *, block: bool):
    constructor = _DYNAMICS[d["type"]][1 if block else 0]
    options = signature_options(_DYNAMICS[d["type"]][0], exclude=("channels",))
    return constructor(channels, **arguments_from(options, d), key=key)


class _MLPFamily(ModelFamily):
    can_be_block = True

    def arguments(self, section, *, key, in_shape=None):
        kwargs = super().arguments(section, key=key, in_shape=in_shape)
        if kwargs["in_size"] is None:
            kwargs["in_size"] = _flat(in_shape)
        if kwargs["out_size"] is None:
            kwargs["out_size"] = kwargs["in_size"]
        return kwargs

    def out_shape(self, section, in_shape):
        return (section["out_size"] if section["out_size"] is not None else _flat(in_shape),)


class _ResNetFamily(ModelFamily):
    """ResNet, plus a config-only `dynamics` key: conv residual blocks on image features
    (the constructor's `blocks`)."""

    can_be_block = True

    def defaults(self):
        return {**super().defaults(), "dynamics": None}

    def normalise(self, section, where, *, nested=False):
        full = super().normalise(section, where, nested=nested)
        full["dynamics"] = _normalise_dynamics(full["dynamics"], where)
        return full

    def build(self, section, solver, key, in_shape=None):
        if section["dynamics"] is None:
            kwargs = self.arguments(section, key=key, in_shape=in_shape)
            if kwargs["size"] is None:
                kwargs["size"] = _flat(in_shape)
            return ResNet(**kwargs)
        shape = _in_shape(section["size"]) if section["size"] is not None else in_shape
        keys = jax.random.split(key, section["depth"])
        blocks = [_dynamics(section["dynamics"], shape[0], k, block=True) for k in keys]
        return ResNet(shape, blocks=blocks)

    def out_shape(self, section, in_shape):
        return in_shape


@dataclasses.dataclass(frozen=True)
class _ODENetFamily(ModelFamily):
    """ODENet: `dynamics` is a conv dynamics config instead of a module; `min_augment`
    (the ANODE family: at least one extra dimension)."""

    min_augment: int = 0
    can_be_block = True

    def normalise(self, section, where, *, nested=False):
        full = super().normalise(section, where, nested=nested)
        if full["augment"] < self.min_augment:
            raise ConfigError(
                f"{where} ({self.name}) needs augment > 0 (use type 'odenet' for none)"
            )
        full["dynamics"] = _normalise_dynamics(full["dynamics"], where)
        return full

    def arguments(self, section, *, key, in_shape=None):
        dkey, key = jax.random.split(key)
        kwargs = super().arguments(section, key=key, in_shape=in_shape)
        if kwargs["in_shape"] is None:
            kwargs["in_shape"] = in_shape
        shape = _in_shape(kwargs["in_shape"])
        if section["dynamics"] is not None:
            channels = shape[0] + section["augment"]
            kwargs["dynamics"] = _dynamics(section["dynamics"], channels, dkey, block=False)
        return kwargs

    def out_shape(self, section, in_shape):
        return (section["out_size"],) if section["out_size"] is not None else in_shape


# A classifier has no constructor to read its keys from: stem and head are small tables
# of their own, the block is a model section.
_STEM_KEYS = {
    "identity": {},
    "linear": {"out_size": None, "activation": None},
    "flatten_linear": {"out_size": None, "activation": None},
    "conv": {"channels": None, "kernel_size": 3, "stride": 1, "activation": "relu"},
}
_HEAD_KEYS = {"linear": {}, "pool_linear": {}, "flatten_linear": {}}
_CLASSIFIER_KEYS = {
    "in_shape": None,
    "num_classes": None,
    "stem": None,
    "block": None,
    "head": None,
}


def _spatial_mean(h):
    return jnp.mean(h, axis=tuple(range(1, h.ndim)))


def _sub(section, kind_keys: dict, default_type: str, where: str) -> dict:
    section = section or {"type": default_type}
    if section.get("type") not in kind_keys:
        raise ConfigError(f"{where} needs a type, one of {list(kind_keys)}")
    rest = {k: v for k, v in section.items() if k != "type"}
    check_keys(rest, kind_keys[section["type"]], where)
    return {"type": section["type"], **copy.deepcopy(kind_keys[section["type"]]), **rest}


class _ClassifierFamily(ModelFamily):
    def defaults(self):
        return dict(_CLASSIFIER_KEYS)

    def required(self):
        return ("in_shape", "num_classes", "block")

    def is_ode(self, section):
        return model_is_ode(section["block"])

    def default_solver(self, section):
        return default_solver(section["block"])

    def normalise(self, section, where, *, nested=False):
        full = super().normalise(section, where)
        full["stem"] = _sub(full["stem"], _STEM_KEYS, "identity", f"{where}.stem")
        check_activations(full["stem"], f"{where}.stem")
        full["head"] = {"type": _sub(full["head"], _HEAD_KEYS, "linear", f"{where}.head")["type"]}
        block = full["block"]
        blocks = [name for name, f in MODEL_FAMILIES.items() if f.can_be_block]
        if not (isinstance(block, Mapping) and block.get("type") in blocks):
            raise ConfigError(f"{where}.block must be an {', '.join(blocks)} config")
        full["block"] = normalise_model(block, f"{where}.block", nested=True)
        return full

    def build(self, section, solver, key, in_shape=None):
        skey, bkey, hkey = jax.random.split(key, 3)
        shape = _in_shape(section["in_shape"])
        stem, feat = self._stem(section["stem"], shape, skey)
        block = build_model_section(section["block"], solver, bkey, in_shape=feat)
        out_feat = family_of(section["block"]).out_shape(section["block"], feat)
        head = self._head(section["head"]["type"], out_feat, section["num_classes"], hkey)
        return Classifier(stem=stem, block=block, head=head, in_shape=shape)

    @staticmethod
    def _stem(cfg: Mapping, shape: tuple[int, ...], key):
        kind = cfg["type"]
        layers: list = []
        if kind == "identity":
            feat = shape
        elif kind in ("linear", "flatten_linear"):
            if kind == "flatten_linear" or len(shape) > 1:
                layers.append(eqx.nn.Lambda(jnp.ravel))
            layers.append(eqx.nn.Linear(_flat(shape), cfg["out_size"], key=key))
            feat = (cfg["out_size"],)
        else:  # conv
            if len(shape) != 3:
                raise ConfigError(f"a conv stem needs image inputs (C, H, W), got {shape}")
            k, s = cfg["kernel_size"], cfg["stride"]
            layers.append(
                eqx.nn.Conv2d(shape[0], cfg["channels"], k, stride=s, padding=k // 2, key=key)
            )
            size = lambda n: (n + 2 * (k // 2) - k) // s + 1
            feat = (cfg["channels"], size(shape[1]), size(shape[2]))
        if cfg.get("activation"):
            layers.append(eqx.nn.Lambda(ACTIVATIONS[cfg["activation"]]))
        return (eqx.nn.Sequential(layers) if layers else eqx.nn.Identity()), feat

    @staticmethod
    def _head(kind: str, feat: tuple[int, ...], num_classes: int, key):
        layers: list = []
        if kind == "pool_linear":
            if len(feat) < 2:
                raise ConfigError("a pool_linear head needs image features; use 'linear'")
            layers.append(eqx.nn.Lambda(_spatial_mean))
            n_in = feat[0]
        else:
            if len(feat) > 1 or kind == "flatten_linear":
                layers.append(eqx.nn.Lambda(jnp.ravel))
            n_in = _flat(feat)
        layers.append(eqx.nn.Linear(n_in, num_classes, key=key))
        return eqx.nn.Sequential(layers)


_WIDTH = {"width": "width_size"}
register_family(_MLPFamily("mlp", MLP, _WIDTH))
register_family(_ResNetFamily("resnet", ResNet, _WIDTH, exclude=("blocks",)))
register_family(_ODENetFamily("odenet", ODENet, {**_WIDTH, "in_size": "in_shape"}))
register_family(
    _ODENetFamily(
        "anode",
        functools.partial(ODENet, augment=5),
        {**_WIDTH, "in_size": "in_shape"},
        min_augment=1,
    )
)
register_model("cnf", CNF, exclude=("dynamics",), solver=Solver(rtol=1e-5, atol=1e-5))
register_family(_ClassifierFamily("classifier", Classifier))
# The continuous-time series families: their config keys are their constructors' own
# keyword arguments, so each registers in one line; custom dynamics (Python objects,
# odezoo.nn.as_dynamics) are not config keys.
register_model("ode_rnn", ODERNN, exclude=("dynamics",))
register_model("latent_ode", LatentODE, exclude=("dynamics",))
register_model("neural_cde", NeuralCDE, exclude=("field",))
register_model("latent_sde", LatentSDE, exclude=("drift", "diffusion"))
register_model("gru_seq2seq", GRUSeq2Seq)
