"""Config keys read from signatures: a constructor's (or dataset builder's) named
arguments are the keys of its config section, its defaults the section's defaults and its
simple annotations (`int`, `float`, `bool`, `str`) the types its values are checked
against."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from .._errors import ConfigError

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

# Arguments the builder passes itself, never config keys.
_BUILDER_ARGS = ("self", "key", "solver")


def check_keys(section: Mapping, allowed, where: str) -> None:
    """Raise a `ConfigError` naming the keys of `section` that are not in `allowed`."""
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in {where}; valid keys: {', '.join(sorted(allowed))}"
        )


def _activation_name(fn) -> str | None:
    for name, candidate in ACTIVATIONS.items():
        if candidate is fn:
            return name
    return None


def _to_json(value, what: str):
    """A signature default as config data: activations by name, tuples as lists."""
    if callable(value) and _activation_name(value) is not None:
        return _activation_name(value)
    if isinstance(value, tuple | list):
        return [_to_json(v, what) for v in value]
    try:
        json.dumps(value)
    except TypeError:
        raise ConfigError(
            f"{what} has a default ({value!r}) that is not JSON data: exclude it from the "
            "config (register_model(..., exclude=(...)))"
        ) from None
    return value


def _to_argument(value):
    """Config data as a constructor argument: JSON arrays become tuples."""
    if isinstance(value, list):
        return tuple(_to_argument(v) for v in value)
    return value


def signature_options(
    constructor: Callable, *, rename: Mapping[str, str] | None = None, exclude=()
) -> dict[str, tuple[str, Any]]:
    """`{config key: (argument, default)}` read from `constructor`'s signature.

    Every named argument is a config key except `self`, `key`, `solver` and those in
    `exclude`; `rename` maps config keys to argument names where they differ. A default
    that is an activation function (e.g. `jnp.tanh`) becomes its name in
    [`ACTIVATIONS`][odezoo.config.ACTIVATIONS]; a required argument has the default
    `inspect.Parameter.empty`.
    """
    to_key = {arg: key for key, arg in (rename or {}).items()}
    params = inspect.signature(constructor).parameters
    unknown = sorted((set(to_key) | set(exclude)) - set(params))
    if unknown:
        raise ConfigError(f"{constructor!r} has no argument(s) {unknown} to rename or exclude")
    out = {}
    for arg, p in params.items():
        if arg in _BUILDER_ARGS or arg in exclude:
            continue
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        default = p.default
        if default is not inspect.Parameter.empty:
            default = _to_json(default, f"argument {arg!r} of {constructor!r}")
        out[to_key.get(arg, arg)] = (arg, default)
    return out


_SIMPLE = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "None": ()}


def _simple_type(annotation) -> tuple[type, ...] | None:
    """The JSON types an annotation such as `int`, `float` or `"int | None"` allows
    (`None` itself is always allowed), or `None` where it says more (tuples, literals...)."""
    if isinstance(annotation, type):
        annotation = annotation.__name__
    if not isinstance(annotation, str):
        return None
    parts = [p.strip() for p in annotation.split("|")]
    if not all(p in _SIMPLE for p in parts):
        return None
    return tuple(t for p in parts for t in _SIMPLE[p])


def signature_types(
    constructor: Callable, *, rename: Mapping[str, str] | None = None
) -> dict[str, tuple[type, ...]]:
    """`{config key: allowed JSON types}` for the arguments annotated `int`, `float`,
    `bool` or `str` (optionally `| None`)."""
    to_key = {arg: key for key, arg in (rename or {}).items()}
    out = {}
    for arg, p in inspect.signature(constructor).parameters.items():
        types = _simple_type(p.annotation)
        if types:
            out[to_key.get(arg, arg)] = types
    return out


def _type_words(allowed: tuple[type, ...]) -> str:
    if float in allowed:
        return "a number"
    words = {int: "an int", bool: "true or false", str: "a string"}
    return " or ".join(words[t] for t in allowed)


def check_types(full: Mapping, types: Mapping[str, tuple[type, ...]], where: str) -> None:
    """Raise a `ConfigError` for a value of the wrong JSON type (`None` passes: a
    missing value is reported, or filled in, elsewhere)."""
    for key, allowed in types.items():
        value = full.get(key)
        if value is None:
            continue
        if isinstance(value, bool) and bool not in allowed:
            ok = False
        else:
            ok = isinstance(value, allowed)
        if not ok:
            raise ConfigError(f"{where}.{key} must be {_type_words(allowed)}, got {value!r}")


def _is_activation_key(key: str) -> bool:
    # `activation`, and the likes of the neural CDE's `final_activation`
    return key == "activation" or key.endswith("_activation")


def check_activations(full: Mapping, where: str) -> None:
    for key, value in full.items():
        if _is_activation_key(key) and value is not None and value not in ACTIVATIONS:
            raise ConfigError(
                f"unknown activation {value!r} in {where}; valid: {', '.join(ACTIVATIONS)}"
            )


def arguments_from(options: Mapping[str, tuple[str, Any]], section: Mapping) -> dict:
    """Constructor keyword arguments from a normalised section."""
    kwargs = {}
    for key, (arg, _) in options.items():
        value = section[key]
        if _is_activation_key(key) and value is not None:
            value = ACTIVATIONS[value]
        kwargs[arg] = _to_argument(value)
    return kwargs
