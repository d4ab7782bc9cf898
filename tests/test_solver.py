import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import odezoo
from odezoo._solver import _EVALS


def linear_field(t, y, args):
    return args @ y


def test_linear_field_matches_expm(x64):
    A = jnp.array([[-0.5, 1.0, 0.0], [-1.0, -0.2, 0.3], [0.1, 0.0, -0.4]])
    y0 = jnp.array([1.0, -2.0, 0.5])
    solver = odezoo.Solver(rtol=1e-10, atol=1e-10)
    y1, stats = odezoo.solve(solver, linear_field, y0, A, t0=0.0, t1=1.5)
    expected = scipy.linalg.expm(1.5 * np.asarray(A)) @ np.asarray(y0)
    np.testing.assert_allclose(y1, expected, rtol=1e-8, atol=1e-9)
    assert int(stats.failed) == 0 and float(stats.t_reached) == 1.5
    assert int(stats.num_steps) == int(stats.num_accepted_steps) + int(stats.num_rejected_steps)


@pytest.mark.parametrize("batching", ["batch", "vmap"])
def test_batched_linear_field_and_trajectory(x64, batching):
    A = jnp.array([[0.0, 1.0], [-1.0, 0.0]])  # rotation: exact solution known
    Y0 = jnp.stack([jnp.array([1.0, 0.0]), jnp.array([0.3, -0.7]), jnp.array([2.0, 1.0])])
    ts = jnp.linspace(0.0, 2.0, 7)
    solver = odezoo.Solver(rtol=1e-10, atol=1e-10, batching=batching)
    ys, stats = odezoo.solve(solver, linear_field, Y0, A, t0=0.0, t1=2.0, ts=ts, batched=True)
    assert ys.shape == (7, 3, 2)
    for i, t in enumerate(np.asarray(ts)):
        expected = np.asarray(Y0) @ scipy.linalg.expm(t * np.asarray(A)).T
        np.testing.assert_allclose(ys[i], expected, rtol=1e-8, atol=1e-9)


def test_backwards_in_time(x64):
    y1, _ = odezoo.solve(
        odezoo.Solver(rtol=1e-10, atol=1e-10), lambda t, y, a: -y, jnp.ones(2), t0=1.0, t1=0.0
    )
    np.testing.assert_allclose(y1, np.e * np.ones(2), rtol=1e-8)


@pytest.mark.parametrize("solver_cls", sorted(_EVALS, key=lambda c: c.__name__))
@pytest.mark.parametrize("dt0", [None, 0.1])
def test_forward_nfe_formula_matches_counted_evaluations(solver_cls, dt0):
    if dt0 is None and not issubclass(solver_cls, diffrax.AbstractAdaptiveSolver):
        pytest.skip("fixed-step solvers need dt0")
    solver = odezoo.Solver(solver=solver_cls(), rtol=1e-6, atol=1e-6, dt0=dt0, count_evals=True)
    A = jnp.array([[-0.5, 2.0], [-2.0, -0.1]])
    with odezoo.count_evaluations() as count:
        _, stats = jax.jit(lambda y: odezoo.solve(solver, linear_field, y, A))(jnp.ones(2))
        jax.block_until_ready(stats)
    assert int(stats.nfe) == count.forward
    assert count.vjp == 0


@pytest.mark.parametrize("adjoint", ["checkpoint", "backsolve", "direct"])
def test_backward_evaluations_are_counted(adjoint):
    solver = odezoo.Solver(rtol=1e-6, atol=1e-6, adjoint=adjoint, count_evals=True)

    def loss(A):
        y, _ = odezoo.solve(solver, linear_field, jnp.ones(2), A)
        return jnp.sum(y**2)

    A = jnp.array([[-0.5, 2.0], [-2.0, -0.1]])
    _, stats = odezoo.solve(solver.replace(count_evals=False), linear_field, jnp.ones(2), A)
    with odezoo.count_evaluations() as count:
        jax.block_until_ready(jax.grad(loss)(A))
    assert count.vjp > 0
    if adjoint == "checkpoint":
        # Each forward evaluation is differentiated once, except the two of the
        # initial-step selection (no gradient flows through the step size).
        assert count.vjp == int(stats.nfe) - 2
        # ... and recomputed twice: once when the step is recomputed from its checkpoint,
        # once by diffrax's checkpointed stage loop (tests/test_bench.py: a batch too).
        assert count.forward == int(stats.nfe) + 2 * count.vjp


def test_vmap_and_batch_modes_agree():
    net = odezoo.ODENet(2, width_size=8, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (5, 2))
    tight = net.with_solver(rtol=1e-7, atol=1e-7)
    a = tight.batch(x)
    b = tight.with_solver(batching="vmap").batch(x)
    c = jax.vmap(tight)(x)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b, c, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rtol=-1e-3), "rtol must be a positive"),
        (dict(atol=0.0), "atol must be a positive"),
        (dict(adjoint="magic"), "unknown adjoint"),
        (dict(batching="loop"), "unknown batching"),
        (dict(max_steps=0), "max_steps"),
        (dict(dt0=-0.1), "dt0"),
        (dict(checkpoints=0), "checkpoints"),
        (dict(seminorm=True), "seminorm"),
        (dict(solver=diffrax.Euler()), "give dt0"),
        (dict(solver="Dopri5"), "diffrax solver instance"),
    ],
)
def test_invalid_configuration_fails_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        odezoo.Solver(**kwargs)


def test_replace_and_config_roundtrip():
    s = odezoo.Solver(rtol=1e-4, adjoint="backsolve", seminorm=True, batching="vmap")
    assert odezoo.Solver.from_config(s.to_config()) == s
    assert s.replace(rtol=1e-2).rtol == 1e-2
    with pytest.raises(ValueError, match="unknown Solver field"):
        s.replace(tolerance=1e-3)
    with pytest.raises(ValueError, match="unknown diffrax solver"):
        odezoo.Solver.from_config({"solver": "NotASolver"})
    with pytest.raises(ValueError, match="rtol"):
        s.replace(rtol=-1.0)


def test_max_steps_gives_a_clear_error():
    # y' = y^2 from y=1 blows up at t=1: the solver cannot reach t1=2.
    field = lambda t, y, a: y**2
    solver = odezoo.Solver(max_steps=64)
    y, stats = odezoo.solve(solver, field, jnp.ones(1), t0=0.0, t1=2.0)
    assert int(stats.failed) == 1
    assert 0.9 < float(stats.t_reached) <= 1.0
    with pytest.raises(eqx.EquinoxRuntimeError) as info:
        odezoo.check_solution(y, stats, what="Blowup", solver=solver, t0=0.0, t1=2.0)
    msg = str(info.value)
    for needle in ["Blowup", "max_steps", "rtol=0.001", "t between 0.9 and 1", "Raise max_steps"]:
        assert needle in msg, needle


def test_max_steps_error_from_a_model_under_jit():
    class Blowup(eqx.Module):
        def __call__(self, t, y):
            return y**2

    net = odezoo.ODENet(1, dynamics=Blowup(), t1=2.0, key=jax.random.key(0))
    net = net.with_solver(max_steps=50)
    with pytest.raises(eqx.EquinoxRuntimeError, match="ODENet.*hit max_steps"):
        jax.block_until_ready(eqx.filter_jit(net.batch)(jnp.ones((2, 1))))
    # Under plain jax.jit JAX wraps the error, but the message is the same.
    with pytest.raises(jax.errors.JaxRuntimeError, match="ODENet.*hit max_steps"):
        jax.block_until_ready(jax.jit(net.batch)(jnp.ones((2, 1))))


def test_nan_is_never_passed_on():
    net = odezoo.ODENet(2, width_size=4, key=jax.random.key(0))
    with pytest.raises(odezoo.InputError, match="NaN"):
        jax.block_until_ready(net.batch(jnp.array([[jnp.nan, 0.0], [1.0, 1.0]])))
