"""An entry's metrics on its held-out data: the headline metrics its card states (at the
card's evaluation solver settings) and the test-time tolerance sweep."""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from ._registry import card_meta, config, load

DEFAULT_SWEEP = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def eval_changes(cfg: dict) -> dict:
    """Solver changes for the card's headline metrics (e.g. a tighter tolerance)."""
    return dict(card_meta(cfg).get("eval_solver") or {})


def evaluate(model, cfg: dict, **changes: Any) -> dict:
    """The entry's metrics on its held-out data (see `odezoo.config.build_evaluate`),
    with the solver changed as `changes` says."""
    from ..config import build_evaluate

    if changes:
        model = model.with_solver(**changes)
    return {k: _py(v) for k, v in build_evaluate(cfg)(model).items()}


def headline_metrics(name: str | os.PathLike, model=None) -> dict:
    """The metrics a card states: at the card's evaluation solver settings."""
    cfg = config(name)
    model = load(name) if model is None else model
    return evaluate(model, cfg, **eval_changes(cfg))


def _py(v):
    if isinstance(v, jax.Array | np.ndarray | np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**31:
        return int(v)
    return v


def tolerance_sweep(model, cfg: dict, tolerances=DEFAULT_SWEEP) -> list[dict]:
    """The metrics at each test-time tolerance `rtol = atol = tol` (the seed's
    speed/precision trade, measured)."""
    rows = []
    for tol in tolerances:
        row = {"rtol": tol, "atol": tol}
        row.update(evaluate(model, cfg, rtol=tol, atol=tol))
        rows.append(row)
    return rows
