"""odezoo's reverse-solve solver for backsolve (src/odezoo/_backsolve.py): the same
gradients as diffrax's `BacksolveAdjoint` with its own solver, without ever evaluating
diffrax's `AdjointTerm.vf` (a `jax.jacfwd` of a VJP, dearer than the VJP on a CNF:
benchmarks/results/speed_leads/speed_cnf.json),
for the fields that differentiate themselves."""

import traceback

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from diffrax._term import AdjointTerm

import odezoo
from odezoo._backsolve import AdjointSolver, UnitControlTerm
from odezoo._solve import BatchField


def _cnf_field():
    cnf = odezoo.CNF(2, hidden=(8,), trace="exact", key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (6, 2))
    field, y0, *_ = cnf.ode(x)
    return BatchField(field, False), y0


def test_unit_control_term_equals_diffrax_adjoint_term(x64):
    field, y0 = _cnf_field()
    term = AdjointTerm(diffrax.ODETerm(field))
    params = eqx.filter(term.term, eqx.is_inexact_array)
    a_y = jax.tree_util.tree_map(lambda v: jnp.cos(v + 1.0), y0)
    aug = (y0, a_y, None, jax.tree_util.tree_map(jnp.zeros_like, params))
    # Compiled: op by op, the Jacobian form of the CNF's adjoint field takes seconds.
    expected = eqx.filter_jit(lambda tm, a: tm.vf(0.3, a, None))(term, aug)
    got = eqx.filter_jit(lambda tm, a: UnitControlTerm(tm).vf(0.3, a, None))(term, aug)
    leaves = jax.tree_util.tree_leaves
    for e, g in zip(leaves(expected), leaves(got), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)
    dt = jnp.asarray(-0.05)
    prod = UnitControlTerm(term).prod(got, dt)
    for e, g in zip(leaves(term.prod(expected, dt)), leaves(prod), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)


def _gradient(field, y0, solver, backward_solver, ts=None, seminorm=False, trace_only=False):
    norm = {"norm": diffrax.adjoint_rms_seminorm} if seminorm else {}
    adaptive = isinstance(solver, diffrax.AbstractAdaptiveSolver)
    controller = diffrax.PIDController(1e-6, 1e-6) if adaptive else diffrax.ConstantStepSize()
    back = diffrax.PIDController(1e-6, 1e-6, **norm) if adaptive else controller
    adjoint = diffrax.BacksolveAdjoint(solver=backward_solver, stepsize_controller=back)
    params, static = eqx.partition(field, eqx.is_inexact_array)
    saveat = diffrax.SaveAt(ts=ts) if ts is not None else diffrax.SaveAt(t1=True)

    def loss(p, y):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(eqx.combine(p, static)),
            solver,
            0.0,
            1.0,
            0.1 if ts is None or not adaptive else None,
            y,
            saveat=saveat,
            stepsize_controller=controller,
            adjoint=adjoint,
        )
        return sum(jnp.sum(jnp.sin(v)) for v in jax.tree_util.tree_leaves(sol.ys))

    grad = jax.grad(loss, argnums=(0, 1))
    return jax.make_jaxpr(grad)(params, y0) if trace_only else jax.jit(grad)(params, y0)


@pytest.mark.parametrize(
    "solver, ts, seminorm",
    [
        (diffrax.Tsit5(), 4, False),
        (diffrax.Dopri5(), None, True),
        (diffrax.Euler(), None, False),
    ],
    ids=["tsit5-ts", "dopri5-seminorm", "euler"],
)
def test_gradient_equals_diffrax_backsolve(x64, solver, ts, seminorm):
    field, y0 = _cnf_field()
    ts = None if ts is None else jnp.linspace(0.2, 1.0, ts)  # float64 here
    expected = _gradient(field, y0, solver, solver, ts, seminorm)
    got = _gradient(field, y0, solver, AdjointSolver(solver), ts, seminorm)
    flat = lambda g: np.concatenate([np.ravel(v) for v in jax.tree_util.tree_leaves(g)])
    np.testing.assert_allclose(flat(got), flat(expected), rtol=1e-9, atol=1e-12)


def test_odezoo_backsolve_never_evaluates_the_jacobian_adjoint_field(monkeypatch):
    # diffrax's AdjointTerm.vf is a jax.jacfwd of a VJP (dearer on the benchmark's CNF:
    # benchmarks/results/speed_leads/); odezoo's reverse solve must go through the VJP only.
    # (diffeqsolve's term-compatibility check traces it once for its output's shape:
    # not an evaluation, so not counted.)
    calls = []
    original = AdjointTerm.vf

    def counted(self, t, y, args):
        names = [frame.name for frame in traceback.extract_stack()]
        if "_assert_term_compatible" not in names:
            calls.append(1)
        return original(self, t, y, args)

    monkeypatch.setattr(AdjointTerm, "vf", counted)
    cnf = odezoo.CNF(2, hidden=(8,), trace="exact", key=jax.random.key(0))
    cnf = cnf.with_solver(adjoint="backsolve")
    x = jax.random.normal(jax.random.key(1), (4, 2))
    params, static = eqx.partition(cnf, eqx.is_inexact_array)
    loss = lambda p: -jnp.mean(eqx.combine(p, static).apply(x)[0])
    # The count is of the traced evaluations, so tracing the gradient is enough (the
    # gradient's value is test_gradient_equals_diffrax_backsolve's business).
    jax.make_jaxpr(jax.grad(loss))(params)
    assert calls == []
    # ... and diffrax's own solver does (so this test sees the difference).
    field, y0 = _cnf_field()
    _gradient(field, y0, diffrax.Dopri5(), diffrax.Dopri5(), trace_only=True)
    assert calls


def test_first_order_fields_keep_diffraxs_reverse_solver():
    # On an MLP field diffrax's Jacobian form measured faster than the VJP form
    # (benchmarks/results/speed_leads/reverse_solver_ratios.txt): only fields marked
    # AbstractDerivativeField get AdjointSolver.
    from odezoo._solve import _differentiates_itself

    net = odezoo.ODENet(2, width_size=8, key=jax.random.key(0))
    cnf = odezoo.CNF(2, hidden=(8,), key=jax.random.key(0))
    x = jnp.ones((3, 2))
    assert not _differentiates_itself(BatchField(net.ode(x)[0], False))
    assert _differentiates_itself(BatchField(cnf.ode(x)[0], False))
    solver = odezoo.Solver(adjoint="backsolve")
    first_order = solver.adjoint.diffrax_adjoint(solver, False)
    assert not isinstance(first_order.kwargs["solver"], AdjointSolver)
    assert isinstance(solver.adjoint.diffrax_adjoint(solver, True).kwargs["solver"], AdjointSolver)


@pytest.mark.slow
def test_penalties_that_differentiate_the_field_get_the_vjp_reverse_solver(x64, monkeypatch):
    # A Jacobian (or Taylor) penalty differentiates the field in every evaluation, as a
    # CNF's trace does, so its reverse solve takes one VJP per stage; a kinetic penalty
    # on a first-order field keeps diffrax's reverse solver. The gradient equals the one
    # diffrax's reverse solver gives.
    import odezoo._solve as solver_module
    from odezoo._regularisation import DerivativePenaltyField, PenaltyField, _penalty_field_class

    net = odezoo.ODENet(2, width_size=8, key=jax.random.key(0))
    cnf = odezoo.CNF(2, hidden=(8,), key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (5, 2))
    field, cnf_field = net.ode(x)[0], cnf.ode(x)[0]
    assert _penalty_field_class(field, ("kinetic",)) is PenaltyField
    assert _penalty_field_class(field, ("kinetic", "jacobian")) is DerivativePenaltyField
    assert _penalty_field_class(field, ("taylor",)) is DerivativePenaltyField
    assert _penalty_field_class(cnf_field, ("kinetic",)) is DerivativePenaltyField

    net = net.with_solver(adjoint="backsolve", rtol=1e-7, atol=1e-7)
    reg = odezoo.Regularisation(kinetic=0.1, jacobian=0.1)
    params, static = eqx.partition(net, eqx.is_inexact_array)

    def loss(p):
        out, values, _ = eqx.combine(p, static).apply_regularised(x, reg)
        return jnp.sum(jnp.sin(out)) + reg.penalty(values)

    flat = lambda g: np.concatenate([np.ravel(v) for v in jax.tree_util.tree_leaves(g)])
    got = flat(jax.jit(jax.grad(loss))(params))
    monkeypatch.setattr(solver_module, "_differentiates_itself", lambda field: False)
    expected = flat(jax.jit(jax.grad(loss))(params))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert np.max(np.abs(got)) > 0
