"""A diffrax solver wrapper that accumulates the local error estimates of its steps.

Used by the error-estimate regulariser of Pal et al. (2021), "Opening the Blackbox:
Accelerating Neural Differential Equations by Regularizing Internal Solver Heuristics":
the adaptive solver computes an error estimate at every step anyway, and its sum over the
accepted steps, weighted by the step sizes, measures how hard the dynamics are to solve.
"""

from __future__ import annotations

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from ._wrapped import AbstractDelegatingSolver


class ErrorAccumulator(diffrax.AbstractAdaptiveSolver, AbstractDelegatingSolver):
    """Wraps an adaptive diffrax solver; the last component of the state (a tuple)
    accumulates `E * |dt|` over the steps, where `E` is the RMS of the wrapped solver's
    local error estimate of the other components in units of the tolerance,
    `atol + rtol * max(|y0|, |y1|)`, as the step-size controller measures it (so that
    `E <= 1` on an accepted step, whatever the tolerance).

    The accumulator's own error estimate is zero, so it never changes the step size;
    a rejected step's contribution is discarded with the step. The accumulator's shape is
    the batch shape: `()` for one example, `(B,)` for a batch solved as one ODE, where
    each example gets the RMS of its own part of the error estimate.

    Its vector field component must be zero (the accumulator changes only here), and it
    is differentiable only by differentiating through the solver steps
    (checkpointed or direct adjoint), never by a continuous (backsolve) adjoint.
    """

    solver: diffrax.AbstractAdaptiveSolver
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)

    def __init__(self, solver: diffrax.AbstractAdaptiveSolver, rtol: float, atol: float):
        # diffrax's DirectAdjoint sets a Runge-Kutta solver's `scan_kind` to "bounded"
        # (for forward-mode support) through `tree_at`, which cannot reach through this
        # wrapper: do it here, on the wrapped solver, as it would.
        if isinstance(solver, diffrax.AbstractRungeKutta) and solver.scan_kind is None:
            solver = eqx.tree_at(lambda s: s.scan_kind, solver, "bounded", is_leaf=_is_none)
        self.solver = solver
        self.rtol = rtol
        self.atol = atol

    @property
    def scan_kind(self):
        return self.solver.scan_kind

    def init(self, terms, t0, t1, y0, args):
        return self.solver.init(terms, t0, t1, y0, args)

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        y1, y_error, dense_info, solver_state, result = self.solver.step(
            terms, t0, t1, y0, args, solver_state, made_jump
        )
        *rest, acc = y1
        *rest_error, _ = y_error
        scale = jax.tree_util.tree_map(
            lambda a, b: self.atol + self.rtol * jnp.maximum(jnp.abs(a), jnp.abs(b)),
            tuple(y0[:-1]),
            tuple(rest),
        )
        scaled = jax.tree_util.tree_map(lambda e, s_: e / s_, tuple(rest_error), scale)
        estimate = _rms_per_example(scaled, jnp.ndim(acc))
        acc = acc + estimate * jnp.abs(t1 - t0)
        y1 = (*rest, acc)
        y_error = (*rest_error, jnp.zeros_like(acc))
        return y1, y_error, dense_info, solver_state, result


def _rms_per_example(tree, batch_ndim: int):
    """The RMS over every axis after the first `batch_ndim` of every leaf of `tree`."""
    leaves = jax.tree_util.tree_leaves(tree)
    total = 0.0
    count = 0
    for leaf in leaves:
        axes = tuple(range(batch_ndim, leaf.ndim))
        total = total + jnp.sum(leaf**2, axis=axes)
        count += math.prod(leaf.shape[batch_ndim:])
    return jnp.sqrt(total / max(count, 1))


def _is_none(x) -> bool:
    return x is None
