"""The model contract as the base classes state it: latent models sample and have an
ELBO, SDE models are marked, `with_solver` is final, `name` abstract; ResNet blocks and
user-reachable argument errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import odezoo
from odezoo.metrics import GaussianMarginals, evaluate_marginals
from odezoo.nn import AbstractLatentModel, AbstractSDEModel, LatentODE, LatentSDE
from odezoo.train import fit


def test_latent_models_implement_the_latent_interface():
    key = jax.random.key(0)
    ode, sde = LatentODE(1, 3, 6, key=key), LatentSDE(1, 2, 6, key=key)
    assert isinstance(ode, AbstractLatentModel) and not isinstance(ode, AbstractSDEModel)
    assert isinstance(sde, AbstractSDEModel)
    assert not isinstance(odezoo.ODENet(1, key=key), AbstractLatentModel)


def test_latent_ode_samples_its_prior():
    # At t0 the sampled latent states are z0 ~ N(0, I) itself: check the estimator's mean
    # and standard deviation against the exact ones (3-sigma bands for n = 4000).
    model = LatentODE(1, 3, 6, key=jax.random.key(0))
    ts = jnp.linspace(0.0, 2.0, 5)
    z = model.sample(ts, 4000, key=jax.random.key(1), latent=True)
    assert z.shape == (4000, 5, 3)
    z0 = np.asarray(z[:, 0])
    np.testing.assert_allclose(z0.mean(axis=0), 0.0, atol=3 / np.sqrt(4000))
    np.testing.assert_allclose(z0.std(axis=0), 1.0, atol=3 * np.sqrt(0.5 / 4000))
    values = model.sample(ts, 7, key=jax.random.key(1))
    assert values.shape == (7, 5, 1) and np.all(np.isfinite(values))
    # The same key, the same paths: the values are the readout of the latent states.
    z7 = model.sample(ts, 7, key=jax.random.key(1), latent=True)
    np.testing.assert_allclose(values, jax.vmap(jax.vmap(model.readout))(z7), rtol=1e-5, atol=1e-6)


def test_marginals_take_any_latent_model_and_refuse_others():
    mean, var = odezoo.data.ou_moments(jnp.asarray((0.5, 1.0)))
    law = GaussianMarginals((0.5, 1.0), mean, var**0.5, samples=64)
    metrics = evaluate_marginals(LatentODE(1, 2, 4, key=jax.random.key(0)), law)
    assert set(metrics) >= {"w1_t0.5", "w1_t1", "ks_max", "w1_ratio_max"}
    with pytest.raises(odezoo.InputError, match="latent model that samples paths"):
        evaluate_marginals(odezoo.ODENet(1, key=jax.random.key(0)), law)


def test_with_solver_changes_every_solver_of_the_ode_part():
    model = LatentODE(1, 3, 6, key=jax.random.key(0))
    loose = model.with_solver(rtol=1e-2, atol=1e-2)
    assert loose.solver.rtol == loose.encoder.solver.rtol == 1e-2
    assert model.encoder.solver.rtol != 1e-2  # the original is unchanged
    # A Classifier's ODE block changes, its stem and head do not hold solvers.
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    clf = odezoo.Classifier(
        stem=eqx.nn.Linear(2, 4, key=k1),
        block=odezoo.ODENet(4, key=k2),
        head=eqx.nn.Linear(4, 2, key=k3),
        in_shape=(2,),
    )
    assert clf.with_solver(rtol=1e-4).block.solver.rtol == 1e-4
    # No model overrides it: it is written once, on the base.
    for cls in (odezoo.ODENet, odezoo.CNF, LatentODE, LatentSDE, odezoo.Classifier):
        assert "with_solver" not in vars(cls), cls


def test_name_is_abstract():
    class Nameless(odezoo.nn.AbstractModel):
        in_shape: tuple[int, ...] = (1,)

        def apply(self, xs, *, key=None):
            return xs, None

    with pytest.raises(TypeError, match="name"):
        Nameless()
    assert odezoo.ResNet(2, depth=1, key=jax.random.key(0)).name == "ResNet(in_shape=(2,))"
    assert odezoo.MLP(2, 1, key=jax.random.key(0)).name == "MLP(in_shape=(2,))"


def test_resnet_blocks_are_dense_stacks_with_the_mlps_weights():
    net = odezoo.ResNet(1, depth=2, width_size=4, init="normal", key=jax.random.key(0))
    keys = jax.random.split(jax.random.key(0), 2)
    mlps = [odezoo.MLP(1, 1, 4, 1, init="normal", key=k) for k in keys]
    x = jnp.array([0.3])
    for block, mlp in zip(net.blocks, mlps, strict=True):
        np.testing.assert_array_equal(block(x), mlp(x))
    # It trains as before: the loss falls.
    xs = jnp.linspace(-1, 1, 8)[:, None]
    result = fit(net, (xs, xs**3), optimizer=optax.sgd(0.01), steps=5, key=jax.random.key(1))
    assert result.losses[-1] < result.losses[0]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: odezoo.data.cubic(0), "positive int"),
        (
            lambda: fit(
                odezoo.MLP(1, 1, key=jax.random.key(0)), (), steps=1, key=jax.random.key(0)
            ),
            "at least one array",
        ),
        (lambda: LatentODE(1, obs_std=0.0, key=jax.random.key(0)), "obs_std"),
    ],
)
def test_argument_errors_are_odezoo_input_errors(call, match):
    with pytest.raises(odezoo.InputError, match=match):
        call()
