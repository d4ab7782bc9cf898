"""The static (Python) values odezoo's modules hold: converting NumPy and concrete JAX
scalars to Python numbers, and checking them."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np


def field_names(module) -> list[str]:
    """A dataclass's fields (not its ClassVars, which `__dataclass_fields__` also lists)."""
    return [f.name for f in dataclasses.fields(module)]


def python_number(value) -> Any:
    """A number or an array of them as Python numbers: `int` where integral, else
    `float` (a list for an array)."""
    array = np.asarray(value)
    if array.ndim > 0:
        return [python_number(v) for v in array]
    number = float(array)
    return int(number) if number.is_integer() else number


def as_python(value: Any) -> Any:
    """A NumPy or concrete JAX real scalar (`np.float32(1e-3)`, `np.int64(100)`, a 0-d
    array) as the Python number it writes as: static fields must be hashable Python
    values. Anything else is returned unchanged, for `__check_init__` to judge."""
    # (np.float64 is a subclass of float: test for NumPy scalars first.)
    if not isinstance(value, np.generic) and (
        value is None or isinstance(value, bool | int | float | str)
    ):
        return value
    try:
        array = np.asarray(value)
    except Exception:  # a traced value: rejected by the check
        return value
    if array.ndim != 0:  # not a number: rejected by the check, shown as a list
        return array.tolist()
    if np.issubdtype(array.dtype, np.integer):
        return int(array)
    if np.issubdtype(array.dtype, np.floating):
        # The shortest text of the number in its own dtype: np.float32(1e-3) -> 0.001.
        return float(np.format_float_scientific(array[()], unique=True))
    return value


def is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def is_positive_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > 0
        and math.isfinite(value)
    )
