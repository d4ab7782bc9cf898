"""Speed regularisers: closed forms on linear fields, estimators' means, gradients."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import odezoo
from odezoo import InputError, Regularisation, penalised_solve, taylor_derivative

A = np.array([[-0.3, 1.0], [-0.8, -0.1]])
Y0 = np.array([1.0, -0.5])
T1 = 1.3


class Linear(eqx.Module):
    a: jax.Array

    def __call__(self, t, y, args):
        return self.a @ y


class Tanh(eqx.Module):
    """A small nonlinear field with parameters (for gradients)."""

    mlp: eqx.nn.MLP

    def __call__(self, t, y, args):
        return self.mlp(jnp.concatenate([y, jnp.reshape(t, (1,))]))


def _integral(integrand, t1=T1, n=400):
    """Gauss-Legendre quadrature of integrand(t) over [0, t1] (exact to ~1e-14 here)."""
    x, w = np.polynomial.legendre.leggauss(n)
    ts = 0.5 * t1 * (x + 1)
    return 0.5 * t1 * sum(wi * integrand(ti) for ti, wi in zip(ts, w, strict=True))


def _y(t):
    return scipy.linalg.expm(A * t) @ Y0


TIGHT = odezoo.Solver(rtol=1e-10, atol=1e-10)
# Compiled: op by op, one solve at rtol=1e-10 takes several seconds.
_penalised_solve = eqx.filter_jit(penalised_solve)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_closed_forms_on_a_linear_field(x64, order):
    reg = Regularisation(kinetic=1.0, jacobian=1.0, taylor=1.0, taylor_order=order)
    y1, values, _ = _penalised_solve(
        TIGHT, Linear(jnp.asarray(A)), jnp.asarray(Y0), regularisation=reg, t1=T1
    )
    ak = np.linalg.matrix_power(A, order)
    np.testing.assert_allclose(y1, _y(T1), rtol=1e-8)
    kinetic = _integral(lambda t: np.sum((A @ _y(t)) ** 2))
    taylor = _integral(lambda t: np.sum((ak @ _y(t)) ** 2))
    np.testing.assert_allclose(values["kinetic"], kinetic, rtol=1e-7)
    np.testing.assert_allclose(values["jacobian"], np.sum(A**2) * T1, rtol=1e-8)
    np.testing.assert_allclose(values["taylor"], taylor, rtol=1e-7)


def test_taylor_derivative_of_a_linear_field_is_a_matrix_power(x64):
    y = jnp.asarray(Y0)
    for k in range(1, 5):
        got = taylor_derivative(lambda t, z: jnp.asarray(A) @ z, 0.3, y, k)
        np.testing.assert_allclose(got, np.linalg.matrix_power(A, k) @ Y0, rtol=1e-12)


def test_batched_values_are_per_example(x64):
    reg = Regularisation(kinetic=1.0, jacobian=1.0)
    ys = jnp.stack([jnp.asarray(Y0), 2 * jnp.asarray(Y0)])
    for batching in ("batch", "vmap"):
        solver = TIGHT.replace(batching=batching)
        _, values, _ = _penalised_solve(
            solver, Linear(jnp.asarray(A)), ys, regularisation=reg, t1=T1, batched=True
        )
        assert values["kinetic"].shape == (2,)
        np.testing.assert_allclose(values["kinetic"][1], 4 * values["kinetic"][0], rtol=1e-7)
        np.testing.assert_allclose(values["jacobian"], np.sum(A**2) * T1, rtol=1e-8)


def test_hutchinson_jacobian_mean_matches_the_exact_value(x64):
    reg = Regularisation(jacobian=1.0)
    field = Linear(jnp.asarray(A))
    solver = odezoo.Solver(rtol=1e-6, atol=1e-6)

    def one(key):
        return penalised_solve(solver, field, jnp.asarray(Y0), regularisation=reg, t1=T1, key=key)[
            1
        ]["jacobian"]

    samples = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), 2000)))
    exact = np.sum(A**2) * T1
    se = samples.std() / np.sqrt(len(samples))
    assert abs(samples.mean() - exact) < 4 * se


def test_error_estimate_penalty_grows_with_the_stiffness_of_the_field(x64):
    reg = Regularisation(error=1.0)
    solver = odezoo.Solver(rtol=1e-4, atol=1e-4)
    values = []
    for scale in (1.0, 4.0):
        _, v, stats = _penalised_solve(
            solver, Linear(jnp.asarray(scale * A)), jnp.asarray(Y0), regularisation=reg, t1=T1
        )
        values.append(float(v["error"]))
        assert float(stats.failed) == 0
    assert 0 < values[0] < values[1]


def test_error_estimate_needs_a_discretised_adjoint():
    reg = Regularisation(error=1.0)
    with pytest.raises(InputError, match="checkpoint"):
        penalised_solve(
            odezoo.Solver(adjoint="backsolve"),
            Linear(jnp.asarray(A)),
            jnp.ones(2),
            regularisation=reg,
        )
    with pytest.raises(InputError, match="adaptive"):
        penalised_solve(
            odezoo.Solver(solver=diffrax.Euler(), dt0=0.1),
            Linear(jnp.asarray(A)),
            jnp.ones(2),
            regularisation=reg,
        )


def test_error_accumulator_does_not_change_the_solution(x64):
    field = Tanh(eqx.nn.MLP(3, 2, 8, 1, activation=jnp.tanh, key=jax.random.key(0)))
    solver = odezoo.Solver(rtol=1e-5, atol=1e-5)
    y_plain, stats_plain = eqx.filter_jit(odezoo.solve)(solver, field, jnp.asarray(Y0), t1=T1)
    y_reg, _, stats_reg = _penalised_solve(
        solver, field, jnp.asarray(Y0), regularisation=Regularisation(error=1.0), t1=T1
    )
    np.testing.assert_allclose(y_reg, y_plain, rtol=1e-12)
    assert int(stats_reg.num_steps) == int(stats_plain.num_steps)


def test_steer_end_times_stay_in_their_interval():
    reg = Regularisation(steer=0.25)
    assert reg.end_time(0.0, 1.0, None) == 1.0
    keys = jax.random.split(jax.random.key(0), 2000)
    ends = np.asarray(jax.vmap(lambda k: reg.end_time(0.0, 1.0, k))(keys))
    assert ends.min() >= 0.75 and ends.max() <= 1.25
    assert ends.min() < 0.76 and ends.max() > 1.24  # the whole interval is used
    with pytest.raises(InputError, match="smaller"):
        Regularisation(steer=2.0).end_time(0.0, 1.0, jax.random.key(0))


@pytest.mark.parametrize(
    "name, kwargs",
    [("kinetic", {}), ("jacobian", {}), ("taylor", {"taylor_order": 2})],
)
def test_regulariser_gradients_match_finite_differences(x64, name, kwargs):
    reg = Regularisation(**{name: 1.0}, **kwargs)
    field = Tanh(eqx.nn.MLP(3, 2, 6, 1, activation=jnp.tanh, key=jax.random.key(1)))
    params, static = eqx.partition(field, eqx.is_inexact_array)
    # The discretised (checkpoint) and continuous (backsolve) adjoints; "direct"
    # differentiates the same discretisation as checkpointing (checked for the error
    # penalty below).
    adjoints = ["checkpoint", "backsolve"]
    direction = jax.tree_util.tree_map(
        lambda p: jax.random.normal(jax.random.key(2), p.shape, p.dtype), params
    )

    def value(p, adjoint):
        solver = odezoo.Solver(rtol=1e-10, atol=1e-10, adjoint=adjoint)
        f = eqx.combine(p, static)
        y1, values, _ = penalised_solve(solver, f, jnp.asarray(Y0), regularisation=reg, t1=T1)
        return values[name] + 0.1 * jnp.sum(y1)

    eps = 1e-5
    shift = lambda s: jax.tree_util.tree_map(lambda p, d: p + s * d, params, direction)
    # Compiled: op by op, a solve at rtol=1e-10 takes seconds.
    value_jit = jax.jit(value, static_argnums=1)
    grad_jit = jax.jit(jax.grad(value), static_argnums=1)
    fd = (value_jit(shift(eps), "checkpoint") - value_jit(shift(-eps), "checkpoint")) / (2 * eps)
    for adjoint in adjoints:
        grad = grad_jit(params, adjoint)
        directional = sum(
            jnp.sum(g * d)
            for g, d in zip(
                jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(direction), strict=True
            )
        )
        np.testing.assert_allclose(directional, fd, rtol=1e-6, err_msg=adjoint)


def test_error_estimate_gradient_at_fixed_steps_matches_finite_differences(x64):
    """The error penalty's gradient flows through the error estimates at the steps taken
    (the step sizes themselves are not differentiated): checked on a fixed step
    sequence, where finite differences see the same steps."""
    field = Tanh(eqx.nn.MLP(3, 2, 6, 1, activation=jnp.tanh, key=jax.random.key(1)))
    params, static = eqx.partition(field, eqx.is_inexact_array)
    direction = jax.tree_util.tree_map(
        lambda p: jax.random.normal(jax.random.key(2), p.shape, p.dtype), params
    )
    solver = odezoo.internal.ErrorAccumulator(diffrax.Dopri5(), 1e-6, 1e-6)
    steps = jnp.array([0.0, 0.1, 0.3, 0.6, 1.0, T1])

    def value(p, adjoint):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, s, a: (eqx.combine(p, static)(t, s[0], a), 0.0 * s[1])),
            solver, 0.0, T1, None, (jnp.asarray(Y0), jnp.zeros(())),
            stepsize_controller=diffrax.StepTo(ts=steps), adjoint=adjoint,
        )  # fmt: skip
        return sol.ys[1][-1]

    eps = 1e-5
    shift = lambda s: jax.tree_util.tree_map(lambda p, d: p + s * d, params, direction)
    checkpoint = diffrax.RecursiveCheckpointAdjoint()
    value_jit, grad_jit = eqx.filter_jit(value), eqx.filter_jit(jax.grad(value))
    fd = (value_jit(shift(eps), checkpoint) - value_jit(shift(-eps), checkpoint)) / (2 * eps)
    assert abs(float(fd)) > 1e-3  # the estimates depend on the parameters
    for adjoint in (checkpoint, diffrax.DirectAdjoint()):
        grad = grad_jit(params, adjoint)
        directional = sum(
            jnp.sum(g * d)
            for g, d in zip(
                jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(direction), strict=True
            )
        )
        np.testing.assert_allclose(directional, fd, rtol=1e-6)


def test_regularisation_validates_its_weights():
    with pytest.raises(InputError):
        Regularisation(kinetic=-1.0)
    with pytest.raises(InputError):
        Regularisation(jacobian=float("nan"))
    with pytest.raises(InputError):
        Regularisation(taylor_order=0)
    assert not Regularisation().active
    assert Regularisation(kinetic=np.float32(0.5)).channels == ("kinetic",)


def test_training_with_a_regulariser_needs_fewer_evaluations():
    """The point of the regularisers: the seed ODE-Net trained with TayNODE's penalty
    ends with fewer forward NFE than without (NFE are deterministic: no timing)."""
    import optax

    from odezoo.losses import penalised
    from odezoo.train import fit

    x, y = odezoo.data.cubic()
    final = {}
    for name, loss in (
        ("plain", "mse"),
        ("taynode", penalised("mse", Regularisation(taylor=0.01, taylor_order=2))),
    ):
        net = odezoo.ODENet(
            1, init="normal", solver=odezoo.Solver(rtol=1e-6, atol=1e-6), key=jax.random.key(0)
        )
        result = fit(
            net, (x, y), loss=loss, optimizer=optax.adam(1e-2), steps=100,
            key=jax.random.key(1), log_every=100,
        )  # fmt: skip
        final[name] = result.history[-1]["nfe_forward"]
        if name == "taynode":
            assert result.history[-1]["penalty_taylor"] > 0
    assert final["taynode"] < 0.9 * final["plain"], final


def test_random_draws_are_the_same_in_float32_and_float64():
    # jax.random draws other numbers in float64; a float64 check of a float32 model
    # (Hutchinson probes, reparameterisation noise, steering) must see the same noise.
    from odezoo._random import standard_normal, uniform

    key = jax.random.key(3)
    for draw in (
        lambda dtype: standard_normal(key, (4, 3), dtype),
        lambda dtype: uniform(key, (5,), dtype, -0.2, 0.3),
    ):
        with jax.enable_x64(True):
            p64 = draw(jnp.float64)
        p32 = draw(jnp.float32)
        assert p64.dtype == jnp.float64 and p32.dtype == jnp.float32
        np.testing.assert_array_equal(np.asarray(p64), np.asarray(p32, np.float64))
