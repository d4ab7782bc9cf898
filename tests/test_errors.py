"""Bad input to the losses and to reversibility_error gets a clear odezoo error."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odezoo
from odezoo.train import cross_entropy, huber, mse


class Fixed(odezoo.nn.AbstractModel):
    """A model that returns fixed outputs, whatever its input."""

    out: jax.Array
    in_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, out):
        self.out = out
        self.in_shape = (1,)

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
