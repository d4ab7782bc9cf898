"""Bad input to the losses and to reversibility_error gets a clear odezoo error."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odezoo
from odezoo.losses import cross_entropy, huber, mse


class Fixed(odezoo.nn.AbstractModel):
    """A model that returns fixed outputs, whatever its input."""

    out: jax.Array
    in_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, out):
        self.out = out
        self.in_shape = (1,)

    name = "Fixed"

    def apply(self, xs, *, key=None):
        return self.out, None


X = jnp.zeros((10, 1))


@pytest.mark.parametrize("loss", [mse, huber])
@pytest.mark.parametrize("target_shape", [(10,), (10, 2), (5, 1), (10, 1, 1)])
def test_regression_losses_refuse_targets_of_another_shape(loss, target_shape):
    model = Fixed(jnp.zeros((10, 1)))
    match = r"targets of shape .* for outputs of shape \(10, 1\)"
    with pytest.raises(odezoo.InputError, match=match):
        loss(model, (X, jnp.ones(target_shape)))


def test_the_shape_error_says_how_to_reshape():
    with pytest.raises(odezoo.InputError, match=r"y\.reshape\(10, 1\)"):
        mse(Fixed(jnp.zeros((10, 1))), (X, jnp.ones(10)))


@pytest.mark.parametrize("loss", [mse, huber])
def test_regression_losses_of_matching_shapes_are_unchanged(loss):
    pred = jnp.linspace(-2.0, 2.0, 10).reshape(10, 1)
    y = jnp.linspace(1.0, -1.5, 10).reshape(10, 1)
    value, _ = loss(Fixed(pred), (X, y))
    err = np.asarray(pred - y)
    if loss is mse:
        expected = np.mean(np.sum(err**2, axis=1))
    else:
        a = np.abs(err)
        expected = np.mean(np.where(a <= 1, 0.5 * a**2, a - 0.5))
    np.testing.assert_allclose(value, expected, rtol=1e-6)


LOGITS = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 3.0], [1.0, 0.0, 0.0]])


def test_cross_entropy_of_good_labels():
    labels = jnp.array([0, 1, 2, 0])
    value, _ = cross_entropy(Fixed(LOGITS), (X, labels))
    logp = jax.nn.log_softmax(LOGITS)
    np.testing.assert_allclose(value, -np.mean(logp[np.arange(4), labels]), rtol=1e-6)


@pytest.mark.parametrize("bad", [-1, 3])
def test_cross_entropy_refuses_labels_out_of_range(bad):
    labels = jnp.array([0, bad, 2, 0])
    with pytest.raises(odezoo.InputError, match=r"label outside \[0, 3\).*Found \[" + str(bad)):
        cross_entropy(Fixed(LOGITS), (X, labels))
    # Traced labels (as in training) are checked at run time.
    run = eqx.filter_jit(lambda m, x, y: cross_entropy(m, (x, y))[0])
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"label outside \[0, 3\)"):
        jax.block_until_ready(run(Fixed(LOGITS), X, labels))
    assert np.isfinite(float(run(Fixed(LOGITS), X, jnp.array([0, 1, 2, 0]))))


def test_cross_entropy_refuses_float_labels_and_wrong_shapes():
    with pytest.raises(odezoo.InputError, match="integer class labels"):
        cross_entropy(Fixed(LOGITS), (X, jnp.array([0.0, 1.0, 2.0, 0.0])))
    with pytest.raises(odezoo.InputError, match=r"labels \(B,\)"):
        cross_entropy(Fixed(LOGITS), (X, jnp.array([0, 1, 2])))


def test_reversibility_error_applies_to_ode_models_only():
    with pytest.raises(odezoo.InputError, match="applies to ODE models"):
        odezoo.reversibility_error(Fixed(jnp.zeros((2, 1))), jnp.ones((2, 1)))


def _series_batch():
    from odezoo.nn import as_series

    times = jnp.array([[0.1, 0.4, 0.9, 1.3], [0.2, 0.5, 0.7, 1.2]])
    values = jnp.sin(times)[..., None]
    return as_series(times, values, jnp.ones_like(values))


def _failing(name):
    """Every ODE family with a solver that runs out of steps, and a call of a public
    method on valid input."""
    import diffrax

    from odezoo.nn import ODERNN, LatentODE, LatentSDE, NeuralCDE

    key = jax.random.key(0)
    one_step = odezoo.Solver(max_steps=1)
    x2 = jnp.ones((3, 2))
    if name == "odenet":
        model = odezoo.ODENet(2, solver=one_step, key=key)
        return lambda: model.batch(x2)
    if name == "cnf":
        model = odezoo.CNF(2, hidden=(8,), solver=one_step, key=key)
        return lambda: model.log_prob(x2[0])
    if name == "classifier":
        model = odezoo.zoo.create("odenet-digits", key=key).with_solver(max_steps=1)
        return lambda: model.batch(jnp.ones((3, 1, 8, 8)))
    if name == "ode_rnn":
        model = ODERNN(1, 4, width_size=8, solver=one_step, key=key)
        return lambda: model.apply(_series_batch())
    if name == "latent_ode":
        model = LatentODE(1, 2, 4, width_size=8, solver=one_step, key=key)
        return lambda: model.predict(_series_batch(), jnp.ones((2, 3)))
    if name == "neural_cde":
        model = NeuralCDE(1, 4, 1, width_size=8, solver=one_step, key=key)
        return lambda: model.apply(_series_batch())
    if name == "latent_sde":
        euler = odezoo.Solver(solver=diffrax.Euler(), dt0=0.01, max_steps=2)
        model = LatentSDE(1, 2, 4, 4, width_size=8, solver=euler, key=key)
        return lambda: model.sample(jnp.linspace(0, 1, 3), 4, key=key)
    raise AssertionError(name)


@pytest.mark.parametrize(
    "name",
    ["odenet", "cnf", "classifier", "ode_rnn", "latent_ode", "neural_cde", "latent_sde"],
)
def test_a_failed_solve_is_a_solver_error_for_every_family(name):
    """The base class wraps every public method of every family: a solve out of
    steps, outside `jit`, raises `odezoo.SolverError` with odezoo's message alone."""
    with pytest.raises(odezoo.SolverError, match="max_steps") as info:
        _failing(name)()
    assert "EquinoxRuntimeError" not in str(info.value)


def test_every_public_model_method_is_wrapped_once():
    import inspect

    from odezoo import nn

    families = [c for c in vars(nn).values() if isinstance(c, type)]
    families = [c for c in families if issubclass(c, nn.AbstractModel)]
    assert len(families) >= 10
    for cls in families:
        for name, value in vars(cls).items():
            if inspect.isfunction(value) and (name == "__call__" or not name.startswith("_")):
                assert getattr(value, "__odezoo_errors__", False), (cls, name)
                assert not getattr(value.__wrapped__, "__odezoo_errors__", False), (cls, name)
