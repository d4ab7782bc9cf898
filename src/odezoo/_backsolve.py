"""The solver of backsolve's reverse (adjoint) solve: evaluates diffrax's adjoint
vector field as one vector-Jacobian product instead of a Jacobian of one.

diffrax's `BacksolveAdjoint` integrates the adjoint ODE with an `AdjointTerm`. A
first-same-as-last Runge-Kutta solver (Dopri5, Tsit5, Bosh3) evaluates a term's vector
field `vf`, and `AdjointTerm.vf` computes it as `jax.jacfwd` of its product with the
control, `vf_prod` (a VJP of the forward field), with respect to the control: a
forward-mode derivative through the whole VJP. For an ODE the control is the scalar
step `dt`, and `vf_prod` is linear in it, so the vector field is `vf_prod` at a unit
control: one VJP, which makes an adjoint step cheaper on a field that differentiates
itself (measured on the benchmark's exact-trace CNF: docs/benchmarks.md, "Backsolve on
the exact-trace CNF"; raw results in benchmarks/results/speed_leads/speed_cnf.json).
On first-order fields (an MLP) the Jacobian form measured *faster*
(benchmarks/results/speed_leads/reverse_solver_ratios.txt), so odezoo uses
`AdjointSolver` only for fields that differentiate themselves, marked by subclassing
`AbstractDerivativeField`.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._wrapped import AbstractDelegatingSolver


class AbstractDerivativeField(eqx.Module):
    """Marks a vector field that differentiates itself in every evaluation (a CNF's
    trace of its Jacobian, exact or by Hutchinson's estimator): backsolve's reverse
    solve then evaluates its adjoint with `AdjointSolver`, one VJP per stage instead of
    diffrax's `jax.jacfwd` of one (the dearer form for such fields; see the module's
    docstring for where it is measured). A marker without
    fields: subclassing it changes neither the pytree nor the numerics of the forward
    solve."""


class UnitControlTerm(diffrax.AbstractTerm):
    """A term with one scalar control, linear in it (an ODE's `dt`), whose vector field
    is evaluated as `term.vf_prod(t, y, args, 1)`, and whose product with a control is
    the vector field times that control. Equal to `term` up to round-off; for terms
    such as `diffrax.AdjointTerm`, whose `vf` is a Jacobian of `vf_prod`, much cheaper.
    """

    term: diffrax.AbstractTerm

    def _unit(self, t):
        shape = jax.eval_shape(lambda: self.term.contr(t, t))
        return jnp.ones(shape.shape, shape.dtype)

    def vf(self, t, y, args):
        return self.term.vf_prod(t, y, args, self._unit(t))

    def contr(self, t0, t1, **kwargs):
        return self.term.contr(t0, t1, **kwargs)

    def prod(self, vf, control):
        return jax.tree_util.tree_map(lambda v: (v * control).astype(v.dtype), vf)

    def vf_prod(self, t, y, args, control):
        return self.term.vf_prod(t, y, args, control)

    def is_vf_expensive(self, t0, t1, y, args) -> bool:
        return False


def has_scalar_control(terms, t0, t1) -> bool:
    """Whether `terms` is one term whose control is a single scalar (an ODE)."""
    if not isinstance(terms, diffrax.AbstractTerm) or isinstance(terms, diffrax.MultiTerm):
        return False
    leaves = jax.tree_util.tree_leaves(eqx.filter_eval_shape(terms.contr, t0, t1))
    return len(leaves) == 1 and int(np.prod(leaves[0].shape)) == 1


class AdjointSolver(AbstractDelegatingSolver):
    """Wraps the diffrax solver of backsolve's reverse solve: an ODE's adjoint term is
    evaluated through `UnitControlTerm` (one VJP per stage, and the wrapped solver's
    own first-same-as-last reuse), any other term as it comes. Otherwise it is the
    wrapped solver (the same steps, error estimates and dense output). odezoo uses it
    for fields that subclass `AbstractDerivativeField`."""

    solver: diffrax.AbstractSolver

    def _wrap(self, terms, t0, t1):
        return UnitControlTerm(terms) if has_scalar_control(terms, t0, t1) else terms

    def init(self, terms, t0, t1, y0, args):
        return self.solver.init(self._wrap(terms, t0, t1), t0, t1, y0, args)

    def func(self, terms, t0, y0, args):
        return self.solver.func(self._wrap(terms, t0, t0), t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        terms = self._wrap(terms, t0, t1)
        return self.solver.step(terms, t0, t1, y0, args, solver_state, made_jump)
