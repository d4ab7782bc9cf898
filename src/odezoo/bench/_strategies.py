"""Adjoint strategies: named changes to a model's [`Solver`][odezoo.Solver]."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .._solver import Solver


def default_checkpoints(max_steps: int) -> int:
    """The number of checkpoints diffrax's `RecursiveCheckpointAdjoint(checkpoints=None)`
    uses for `max_steps` (equinox's online-treeverse rule, about `sqrt(2 * max_steps)`:
    90 for the default 4096)."""
    if max_steps == 1:
        return 1
    return min(max_steps, math.floor(-1.5 + math.sqrt(2 * max_steps + 0.25)) + 1)


@dataclasses.dataclass(frozen=True)
class Strategy:
    """How gradients are computed: an adjoint, its options and a batching mode.

    Fields:

    - `name`: the strategy's name in tables and on the command line.
    - `changes`: fields of [`Solver`][odezoo.Solver] to set, e.g.
      `{"adjoint": "backsolve", "seminorm": True}`.
    - `checkpoint_factor`: for `"checkpoint"`, use this many times diffrax's default
      number of checkpoints (which depends on `max_steps`); `None` keeps the default.
    - `description`: one line for the report.

    Example:

    ```python
    import odezoo
    from odezoo.bench import Strategy

    s = Strategy("backsolve-seminorm", {"adjoint": "backsolve", "seminorm": True})
    solver = s.apply(odezoo.Solver(rtol=1e-5, atol=1e-5))
    ```
    """

    name: str
    changes: dict[str, Any]
    checkpoint_factor: float | None = None
    description: str = ""

    @property
    def adjoint(self) -> str:
        """The adjoint's name (`"checkpoint"` when `changes` does not set one)."""
        return self.changes.get("adjoint", "checkpoint")

    @property
    def batching(self) -> str:
        """`"batch"` (the batch solved as one ODE) or `"vmap"` (one solve per example)."""
        return self.changes.get("batching", "batch")

    def apply(self, solver: Solver) -> Solver:
        """`solver` with this strategy's changes."""
        changes = dict(self.changes)
        if self.checkpoint_factor is not None:
            base = default_checkpoints(changes.get("max_steps", solver.max_steps))
            changes["checkpoints"] = max(1, round(self.checkpoint_factor * base))
        return solver.replace(**changes)


def strategies() -> dict[str, Strategy]:
    """The issue's strategies, by name; `"checkpoint"` is odezoo's default and the
    baseline of every ratio.

    - `checkpoint`: `RecursiveCheckpointAdjoint` at diffrax's default checkpoint count.
    - `checkpoint-4x`: four times as many checkpoints.
    - `backsolve`, `backsolve-seminorm`: the continuous adjoint, plain and with the
      seminorm of Kidger et al. (2021) in its backward step-size control.
    - `direct`: `DirectAdjoint`.
    - `checked`: backsolve after a reverse-reconstruction check, falling back to
      checkpointing.
    - `auto`: what `fit` runs for `adjoint="auto"`: every 50th step checked, the others
      with the adjoint the check chose (timed as a block of 50 steps).
    - `checkpoint-unfixed`: `checkpoint` as odezoo ran it before this benchmark's
      initial-step fix (see `docs/benchmarks.md`): `dt0 = 0.01`, which is what diffrax
      0.7 uses when asked to choose.
    - `checkpoint-vmap`, `backsolve-vmap`: one solve per example (`batching="vmap"`).
    """
    out = [
        Strategy("checkpoint", {}, description="RecursiveCheckpointAdjoint, default checkpoints"),
        Strategy(
            "checkpoint-4x",
            {},
            checkpoint_factor=4.0,
            description="RecursiveCheckpointAdjoint, 4x the default checkpoints",
        ),
        Strategy("backsolve", {"adjoint": "backsolve"}, description="BacksolveAdjoint"),
        Strategy(
            "backsolve-seminorm",
            {"adjoint": "backsolve", "seminorm": True},
            description="BacksolveAdjoint, seminorm backward step control",
        ),
        Strategy("direct", {"adjoint": "direct"}, description="DirectAdjoint"),
        Strategy(
            "checked",
            {"adjoint": "checked"},
            description="backsolve after a reversibility check, else checkpoint",
        ),
        Strategy(
            "auto",
            {"adjoint": "auto"},
            description="fit's auto adjoint: a checked step every 50, backsolve between "
            "checks if it passed, else checkpoint",
        ),
        Strategy(
            "checkpoint-unfixed",
            {"dt0": 0.01},
            description="checkpoint as odezoo ran it before the benchmark's initial-step "
            "fix: diffrax's effective dt0 = 0.01",
        ),
        Strategy(
            "checkpoint-vmap",
            {"batching": "vmap"},
            description="checkpoint, one solve per example (vmap)",
        ),
        Strategy(
            "backsolve-vmap",
            {"adjoint": "backsolve", "batching": "vmap"},
            description="backsolve, one solve per example (vmap)",
        ),
    ]
    return {s.name: s for s in out}


BASELINE = "checkpoint"
