"""Input validation shared by the models: wrong shapes and dtypes fail loudly."""

from __future__ import annotations

import jax.numpy as jnp


def check_input(x, example_shape: tuple[int, ...], what: str, *, batched: bool):
    """Return `x` as an array after checking its shape (and that it is floating point).

    Shapes are static in JAX, so this raises `ValueError` at trace time, before any work.
    """
    x = jnp.asarray(x)
    expected = ("B",) + tuple(example_shape) if batched else tuple(example_shape)
    ok_rank = x.ndim == len(expected)
    ok_shape = ok_rank and tuple(x.shape[1:] if batched else x.shape) == tuple(example_shape)
    if not ok_shape:
        hint = ""
        if not batched and x.ndim == len(example_shape) + 1:
            hint = " (this looks like a batch: use `.batch(x)` for batches)"
        elif batched and x.ndim == len(example_shape):
            hint = " (this looks like a single example: call the model directly)"
        raise ValueError(
            f"{what} expected input of shape {_fmt(expected)}, got {tuple(x.shape)}{hint}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{what} expected a floating-point input, got dtype {x.dtype}")
    return x


def _fmt(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
