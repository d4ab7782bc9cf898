"""Exact counts of vector-field evaluations, forward and backward, by host callbacks."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import warnings
from collections.abc import Callable, Iterator

import equinox as eqx
import jax


@dataclasses.dataclass
class EvaluationCount:
    """What [`count_evaluations`][odezoo.count_evaluations] counted.

    Fields:

    - `forward`: evaluations of the vector field `f` itself (in the forward solve, and any
      recomputation or reverse solve during the backward pass).
    - `vjp`: vector-Jacobian products of `f` computed in the backward pass. One VJP of
      a batch solved as one ODE counts once.
    """

    forward: int = 0
    vjp: int = 0


# Callbacks run on XLA's threads, not the caller's: the active counters are global.
_stack: list[EvaluationCount] = []
_lock = threading.Lock()


def _bump(name: str) -> None:
    with _lock:
        for counter in _stack:
            setattr(counter, name, getattr(counter, name) + 1)


def _forward_tick() -> None:
    _bump("forward")


def _vjp_tick() -> None:
    _bump("vjp")


@jax.custom_vjp
def _tap(y):
    jax.debug.callback(_forward_tick)
    return y


def _tap_fwd(y):
    jax.debug.callback(_forward_tick)
    return y, None


def _tap_bwd(_, g):
    jax.debug.callback(_vjp_tick)
    return (g,)


_tap.defvjp(_tap_fwd, _tap_bwd)


class CountedField(eqx.Module):
    """Wraps a vector field so that each evaluation and each VJP is counted."""

    field: Callable

    def __call__(self, t, y, args):
        out = self.field(t, y, args)
        leaves, treedef = jax.tree_util.tree_flatten(out)
        # One tick per evaluation: tap the first leaf only.
        leaves[0] = _tap(leaves[0])
        return jax.tree_util.tree_unflatten(treedef, leaves)


@contextlib.contextmanager
def count_evaluations() -> Iterator[EvaluationCount]:
    """Count vector-field evaluations and VJPs of solves made with `count_evals=True`.

    diffrax reports steps, not evaluations, and nothing at all for the backward solve of
    `BacksolveAdjoint`. A solver built with `Solver(count_evals=True)` wraps its vector
    field in a counter (a `jax.debug.callback` per evaluation), so the backward NFE of
    every adjoint can be measured exactly.

    !!! warning

        Each callback costs tens of microseconds on the host, so a counting solver is for
        measurement (benchmarks, tests), not for training runs.

    Example:

    ```python
    import jax, jax.numpy as jnp
    import odezoo

    solver = odezoo.Solver(adjoint="backsolve", count_evals=True)
    loss = lambda y0: jnp.sum(odezoo.solve(solver, lambda t, y, a: -y, y0)[0])
    with odezoo.count_evaluations() as n:
        jax.block_until_ready(jax.grad(loss)(jnp.ones(3)))
    print(n.forward, n.vjp)
    ```
    """
    counter = EvaluationCount()
    jax.effects_barrier()  # callbacks of earlier work are not ours
    with _lock:
        _stack.append(counter)
    completed = False
    try:
        yield counter
        completed = True
    finally:
        jax.effects_barrier()
        with _lock:
            _stack.remove(counter)
    if completed and counter.forward == 0 and counter.vjp == 0:
        warnings.warn(
            "count_evaluations() counted no evaluation: only solves whose solver has "
            "count_evals=True are counted, e.g. `model.with_solver(count_evals=True)` or "
            "`odezoo.Solver(..., count_evals=True)`.",
            UserWarning,
            stacklevel=3,
        )
