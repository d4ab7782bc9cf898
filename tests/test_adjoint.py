"""reversibility_error and the checked backsolve adjoint."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odezoo


class Decay(eqx.Module):
    """f(t, y) = -rate * y: gentle for a small rate; for a large rate the forward solve
    contracts by exp(-rate), so the reverse solve amplifies its errors by exp(rate)."""

    rate: jax.Array

    def __call__(self, t, y):
        return -self.rate * y


def _net(rate, **solver):
    net = odezoo.ODENet(2, dynamics=Decay(jnp.asarray(rate)), key=jax.random.key(0))
    return net.with_solver(**solver) if solver else net


X = jnp.array([[1.0, -0.5], [0.3, 2.0], [-1.0, 0.7]])


def _reversibility_error(net, x):
    return float(eqx.filter_jit(odezoo.reversibility_error)(net, x))


def test_reversibility_error_is_small_for_a_gentle_field_and_large_for_a_hard_one():
    gentle = _reversibility_error(_net(0.5), X)
    hard = _reversibility_error(_net(40.0), X)
    assert gentle < 10.0, gentle
    assert hard > 1e3, hard
    # One example, and per-example batching, work too.
    assert _reversibility_error(_net(0.5), X[0]) < 10.0
    per_example = _net(40.0, batching="vmap")
    assert _reversibility_error(per_example, X) > 1e3


def test_reversibility_error_of_a_random_odenet_is_small():
    net = odezoo.ODENet(2, width_size=16, key=jax.random.key(0))
    assert _reversibility_error(net, X) < 10.0


def _grad(net, x):
    loss = lambda m: jnp.sum(m.apply(x)[0] ** 2)
    return eqx.filter_jit(eqx.filter_grad(loss))(net).dynamics.rate


def _stats(net, x):
    return eqx.filter_jit(lambda m: m.apply(x)[1])(net)


@pytest.mark.parametrize("batching", ["batch", pytest.param("vmap", marks=pytest.mark.slow)])
def test_checked_adjoint_uses_backsolve_when_reversible(batching):
    net = _net(0.5, adjoint="checked", batching=batching)
    stats = _stats(net, X)
    assert int(stats.fell_back) == 0
    assert float(stats.reversibility_error) < net.solver.adjoint.check_threshold
    g_checked = _grad(net, X)
    g_back = _grad(net.with_solver(adjoint="backsolve"), X)
    np.testing.assert_allclose(g_checked, g_back, rtol=1e-6)


@pytest.mark.parametrize("batching", ["batch", pytest.param("vmap", marks=pytest.mark.slow)])
def test_checked_adjoint_falls_back_to_checkpointing(batching):
    net = _net(40.0, adjoint="checked", batching=batching)
    stats = _stats(net, X)
    assert int(stats.fell_back) == 1
    assert float(stats.reversibility_error) > net.solver.adjoint.check_threshold
    g_checked = _grad(net, X)
    g_ckpt = _grad(net.with_solver(adjoint="checkpoint"), X)
    np.testing.assert_allclose(g_checked, g_ckpt, rtol=1e-6)
    # The true gradient, -2 exp(-80) sum(x^2), is ~0; checkpointing gets it to within the
    # solver's atol, while the unchecked backsolve's reverse solve blows up.
    g_back = _grad(net.with_solver(adjoint="backsolve"), X)
    assert abs(float(g_ckpt)) < 1e-10
    assert abs(float(g_back)) > 1e4 * abs(float(g_ckpt))


def test_threshold_controls_the_fallback():
    strict = _net(0.5, adjoint="checked", check_threshold=1e-9)
    assert int(_stats(strict, X).fell_back) == 1
    with pytest.raises(ValueError, match="check_threshold"):
        odezoo.Solver(adjoint="checked", check_threshold=0.0)


def test_checked_adjoint_with_a_plain_function_field():
    solver = odezoo.Solver(adjoint="checked")

    def loss(a):
        y, stats = odezoo.solve(solver, lambda t, y, args: -args * y, jnp.ones(2), a)
        return jnp.sum(y), stats

    # Compiled: op by op, diffrax's loops take seconds.
    (value, stats), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(jnp.asarray(0.5))
    assert int(stats.fell_back) == 0
    np.testing.assert_allclose(g, -2 * np.exp(-0.5), rtol=1e-3)
