"""Formatting of numbers and shapes for odezoo's messages, cards and command-line output.

One helper per kind of value, shared by every module (instead of a private `_fmt` in each).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def format_number(value: Any, spec: str = ".4g", traced: str = "?") -> str:
    """A number as text: `format(float(value), spec)` for a float (Python, NumPy, or a
    concrete 0-d array), `str(value)` for an int, a bool, `None` or anything else.

    Arguments:

    - `value`: what to format.
    - `spec`: the format spec for floats (default `".4g"`).
    - `traced`: the text for a value JAX is tracing (no number exists yet), e.g. `"t"`.

    Example:

    ```python
    from odezoo._format import format_number

    assert format_number(0.123456) == "0.1235"
    assert format_number(3) == "3"
    assert format_number(1.0, "g") == "1"
    ```
    """
    if value is None or isinstance(value, bool | str | int | np.integer):
        return str(value)
    if isinstance(value, float | np.floating):
        return format(float(value), spec)
    try:
        if np.ndim(value) == 0:
            number = np.asarray(value).item()
            return format(float(number), spec) if isinstance(number, float) else str(number)
    except Exception:  # a tracer has no value: `np.asarray` fails on it
        return traced
    return str(value)


def format_shape(shape: Sequence[int]) -> str:
    """A shape as Python writes a tuple: `(3,)`, `(2, 8, 8)`, `()`.

    Example:

    ```python
    from odezoo._format import format_shape

    assert format_shape([10]) == "(10,)"
    ```
    """
    shape = tuple(shape)
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
