"""Checks of the models' construction arguments: sizes, times and weights.

Python, NumPy and JAX scalars (`3`, `np.int64(3)`, `jnp.asarray(3)`) are accepted alike
and returned as Python numbers, so that models store plain `int`s and `float`s in their
static fields. A bad value raises [`InputError`][odezoo.InputError] naming the argument,
what it must be, and what it got.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from .._errors import InputError


def _shown(value) -> str:
    if isinstance(value, np.ndarray | np.generic) or type(value).__module__.startswith("jax"):
        try:
            return f"{value!r} ({np.asarray(value).item()!r})"
        except Exception:  # a traced value
            return f"{type(value).__name__}"
    return repr(value)


def _is_bool(value) -> bool:
    return isinstance(value, bool | np.bool_) or np.asarray(value).dtype == np.bool_


def as_int(name: str, value, *, minimum: int) -> int:
    """`value` as a Python `int` of at least `minimum`, or an `InputError`."""
    what = {0: "a non-negative integer", 1: "a positive integer"}.get(
        minimum, f"an integer >= {minimum}"
    )
    try:
        if _is_bool(value):
            raise TypeError
        number = operator.index(value)
    except Exception:
        raise InputError(f"{name} must be {what}, got {_shown(value)}") from None
    if number < minimum:
        raise InputError(f"{name} must be {what}, got {number}")
    return number


def as_float(name: str, value, *, positive: bool = False, nonnegative: bool = False) -> float:
    """`value` as a finite Python `float` (positive or non-negative if asked), or an
    `InputError`."""
    what = "a finite number"
    if positive:
        what = "a positive finite number"
    elif nonnegative:
        what = "a non-negative finite number"
    try:
        if _is_bool(value) or isinstance(value, str) or np.ndim(value) != 0:
            raise TypeError
        number = float(value)
    except Exception:
        raise InputError(f"{name} must be {what}, got {_shown(value)}") from None
    if not math.isfinite(number) or (positive and number <= 0) or (nonnegative and number < 0):
        raise InputError(f"{name} must be {what}, got {number!r}")
    return number


def as_shape(name: str, value) -> tuple[int, ...]:
    """`value` (an int, or a sequence of ints) as a non-empty tuple of positive ints."""
    if np.ndim(value) == 0 and not isinstance(value, tuple | list):
        return (as_int(name, value, minimum=1),)
    try:
        items = tuple(value)
    except TypeError:
        raise InputError(
            f"{name} must be a size or a shape of positive integers, got {_shown(value)}"
        ) from None
    if not items:
        raise InputError(f"{name} must be a non-empty shape, got {items}")
    return tuple(as_int(f"{name}[{i}]", s, minimum=1) for i, s in enumerate(items))


def as_bool(name: str, value) -> bool:
    """`value` as a Python `bool` (a Python or NumPy bool), or an `InputError`."""
    if not isinstance(value, bool | np.bool_):
        raise InputError(f"{name} must be True or False, got {_shown(value)}")
    return bool(value)
