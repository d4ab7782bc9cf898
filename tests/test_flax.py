"""Dynamics from Flax NNX and from plain functions (`odezoo.nn.as_dynamics`): the same
numbers, NFE and gradients as the equinox dynamics with the same weights, under every
adjoint and both batching modes; training, saving and bad input."""

import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

import odezoo
from odezoo.nn import ODERNN, LatentODE, LatentSDE, NeuralCDE, as_series
from odezoo.train import fit, load_model, save_model

ADJOINTS = ["checkpoint", "backsolve", "direct", "checked"]
FIT_ADJOINTS = [*ADJOINTS, "auto"]
TIGHT = dict(rtol=1e-10, atol=1e-10)


class NNXConcatMLP(nnx.Module):
    """The NNX twin of `odezoo.nn.ConcatMLP` (one hidden layer): `MLP([y, t])`."""

    def __init__(self, size, width, *, rngs, out_size=None, param_dtype=jnp.float32):
        out_size = size if out_size is None else out_size
        self.hidden = nnx.Linear(size + 1, width, rngs=rngs, param_dtype=param_dtype)
        self.out = nnx.Linear(width, out_size, rngs=rngs, param_dtype=param_dtype)

    def __call__(self, t, y):
        h = jnp.concatenate([y, jnp.reshape(jnp.asarray(t, y.dtype), (1,))])
        return self.out(jnp.tanh(self.hidden(h)))


def seed_mlp(params, inputs):
    """The seed chapter's `mlp`, verbatim."""
    for w, b in params:
        outputs = jnp.dot(inputs, w) + b
        inputs = jnp.tanh(outputs)
    return outputs


def nn_dynamics(state, time, params):
    """The seed chapter's `nn_dynamics`, verbatim."""
    state_and_time = jnp.hstack([state, jnp.array(time)])
    return seed_mlp(params, state_and_time)


def init_random_params(scale, layer_sizes, rng=None):
    """The seed chapter's `init_random_params` (NumPy's `RandomState(0)` by default)."""
    rng = np.random.RandomState(0) if rng is None else rng
    return [
        (scale * rng.randn(m, n), scale * rng.randn(n))
        for m, n in zip(layer_sizes[:-1], layer_sizes[1:], strict=True)
    ]


def _seed_params_of(concat):
    """The seed's `[(w, b), ...]` holding an equinox `ConcatMLP`'s weights."""
    return [(layer.weight.T, layer.bias) for layer in concat.layers]


def _nnx_of(concat):
    """An `NNXConcatMLP` holding an equinox `ConcatMLP`'s weights."""
    hidden, out = concat.layers
    m = NNXConcatMLP(out.out_features, hidden.out_features, rngs=nnx.Rngs(0))
    m.hidden.kernel[...], m.hidden.bias[...] = hidden.weight.T, hidden.bias
    m.out.kernel[...], m.out.bias[...] = out.weight.T, out.bias
    return m


def _twins(size=1, width=8, solver=None, key=0):
    """An equinox ODE-Net and its NNX and seed-function twins (the same weights)."""
    net = odezoo.ODENet(size, width_size=width, solver=solver, key=jax.random.key(key))
    f_nnx = _nnx_of(net.dynamics)
    f_fn = odezoo.nn.as_dynamics(nn_dynamics, _seed_params_of(net.dynamics), time_first=False)
    make = lambda dyn: odezoo.ODENet(size, dynamics=dyn, solver=solver, key=jax.random.key(key))
    return {"equinox": net, "nnx": make(f_nnx), "function": make(f_fn)}


def test_import_odezoo_never_imports_flax():
    code = "import sys, odezoo, odezoo.nn; assert 'flax' not in sys.modules, 'flax imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_nnx_parameters_are_model_leaves():
    nets = _twins()
    counts = {k: odezoo.nn.count_parameters(n) for k, n in nets.items()}
    assert counts["nnx"] == counts["equinox"] == counts["function"], counts
    assert isinstance(nets["nnx"].dynamics, odezoo.nn.NNXDynamics)
    # The NNX module comes back with the model's (e.g. trained) parameters.
    scaled = jax.tree_util.tree_map(lambda a: 2 * a, nets["nnx"])
    np.testing.assert_array_equal(
        scaled.dynamics.module.hidden.kernel[...],
        2 * nets["nnx"].dynamics.module.hidden.kernel[...],
    )


@pytest.mark.parametrize("batching", ["batch", "vmap"])
def test_outputs_and_nfe_match_the_equinox_twin(batching):
    solver = odezoo.Solver(batching=batching)
    nets = _twins(solver=solver)
    x = jnp.linspace(-2.0, 2.0, 10)[:, None]
    ref, ref_stats = jax.jit(lambda m: m.apply(x))(nets["equinox"])
    for kind in ("nnx", "function"):
        out, stats = jax.jit(lambda m: m.apply(x))(nets[kind])
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6, err_msg=kind)
        np.testing.assert_array_equal(stats.nfe, ref_stats.nfe, err_msg=kind)


def _directional_fd(model, x, weights):
    params, static = eqx.partition(model, eqx.is_inexact_array)
    assert all(leaf.dtype == jnp.float64 for leaf in jax.tree_util.tree_leaves(params))

    def loss(params, adjoint, batching):
        m = eqx.combine(params, static).with_solver(adjoint=adjoint, batching=batching, **TIGHT)
        out, _ = m.apply(x)
        return jnp.sum(weights * out)

    flat, unravel = ravel_pytree(params)
    v = jax.random.normal(jax.random.key(3), flat.shape)
    h = 1e-5
    f = jax.jit(lambda p: loss(unravel(p), "checkpoint", "batch"))
    fd = (f(flat + h * v) - f(flat - h * v)) / (2 * h)
    grad = jax.jit(jax.grad(loss), static_argnums=(1, 2))
    return params, grad, v, fd


@pytest.mark.parametrize("kind", ["nnx", "function"])
def test_gradients_match_finite_differences_for_every_adjoint_and_batching(x64, kind):
    if kind == "function":
        # The seed's own dynamics and initialisation, unchanged.
        f = odezoo.nn.as_dynamics(nn_dynamics, init_random_params(0.5, [3, 6, 2]), time_first=False)
    else:
        f = NNXConcatMLP(2, 6, rngs=nnx.Rngs(params=1), param_dtype=jnp.float64)
    model = odezoo.ODENet(2, dynamics=f, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3, 2))
    weights = jax.random.normal(jax.random.key(2), (3, 2))
    params, grad, v, fd = _directional_fd(model, x, weights)
    for adjoint in ADJOINTS:
        for batching in ("batch", "vmap"):
            g = ravel_pytree(grad(params, adjoint, batching))[0]
            np.testing.assert_allclose(
                jnp.vdot(g, v), fd, rtol=1e-5, atol=1e-7, err_msg=f"{adjoint}, {batching}"
            )


def test_cnf_with_nnx_dynamics_matches_its_equinox_twin():
    flow = odezoo.CNF(2, hidden=(8,), key=jax.random.key(0))
    f = odezoo.nn.as_dynamics(
        lambda t, z, p: odezoo.nn.ConcatSquashMLP.__call__(p, t, z), flow.fields[0].dynamics
    )
    twin = odezoo.CNF(2, dynamics=(f,), key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (5, 2))
    (ref, s_ref), (out, s_out) = flow.apply(x), twin.apply(x)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(s_out.nfe, s_ref.nfe)
    nnx_flow = odezoo.CNF(
        2, dynamics=(NNXConcatMLP(2, 8, rngs=nnx.Rngs(0)),), key=jax.random.key(0)
    )
    assert np.isfinite(nnx_flow.log_prob(jnp.zeros(2)))


@pytest.mark.parametrize("adjoint", FIT_ADJOINTS)
def test_fit_trains_nnx_and_seed_function_to_the_equinox_loss(adjoint):
    # The seed's cubic task, the seed's optimiser (gradient descent, step 0.01).
    x = np.linspace(-2.0, 2.0, 10, dtype=np.float32)[:, None]
    y = x**3 + 0.1 * x
    solver = odezoo.Solver(adjoint=adjoint)
    losses = {}
    for kind, net in _twins(width=20, solver=solver).items():
        result = fit(net, (x, y), optimizer=optax.sgd(0.01), steps=20, key=jax.random.key(0))
        losses[kind] = np.asarray(result.losses)
    assert losses["equinox"][-1] < losses["equinox"][0]
    for kind in ("nnx", "function"):
        np.testing.assert_allclose(losses[kind], losses["equinox"], rtol=1e-4, err_msg=kind)


def test_save_load_and_resume_with_nnx_dynamics(tmp_path):
    x = np.linspace(-1.0, 1.0, 8, dtype=np.float32)[:, None]
    y = x**3
    make = lambda: odezoo.ODENet(
        1, dynamics=NNXConcatMLP(1, 8, rngs=nnx.Rngs(0)), key=jax.random.key(0)
    )
    common = dict(optimizer=optax.adam(1e-2), steps=6, key=jax.random.key(1), checkpoint_every=2)
    full = fit(make(), (x, y), run_dir=tmp_path / "full", **common)

    def stop_at_3(step, record, model):
        return step == 3

    fit(make(), (x, y), run_dir=tmp_path / "stopped", callback=stop_at_3, **common)
    resumed = fit(make(), (x, y), run_dir=tmp_path / "stopped", resume=True, **common)
    assert resumed.step == 6
    for a, b in zip(
        jax.tree_util.tree_leaves(resumed.model), jax.tree_util.tree_leaves(full.model), strict=True
    ):
        np.testing.assert_array_equal(a, b)

    save_model(tmp_path / "model.eqx", full.model)
    loaded = load_model(tmp_path / "model.eqx", like=make())
    np.testing.assert_array_equal(loaded.batch(x), full.model.batch(x))
    np.testing.assert_array_equal(
        load_model(tmp_path / "full" / "model.eqx", like=make()).batch(x), full.model.batch(x)
    )


def test_series_models_take_nnx_and_function_dynamics():
    times, values, mask = odezoo.data.periodic(4, 10, key=jax.random.key(0))
    series = as_series(times, values, mask)
    key = jax.random.key(1)
    rnn = ODERNN(1, 8, out_size=2, dynamics=NNXConcatMLP(8, 16, rngs=nnx.Rngs(0)), key=key)
    assert rnn.apply(series)[0].shape == (4, 2)
    latent = LatentODE(1, 4, 8, dynamics=NNXConcatMLP(4, 16, rngs=nnx.Rngs(1)), key=key)
    assert latent.apply(series)[0].shape == (4, 10, 1)
    field = odezoo.nn.as_dynamics(
        lambda s, y, w: jnp.tanh(w @ y).reshape(8, 2), 0.1 * jnp.ones((16, 8))
    )
    cde = NeuralCDE(1, hidden_size=8, out_size=2, field=field, key=key)
    assert cde.apply(series)[0].shape == (4, 2)

    class Positive(NNXConcatMLP):
        def __call__(self, t, y):
            return jax.nn.softplus(super().__call__(t, y))

    sde = LatentSDE(
        1,
        latent_size=2,
        hidden_size=8,
        drift=NNXConcatMLP(2, 8, rngs=nnx.Rngs(2)),
        diffusion=Positive(2, 8, rngs=nnx.Rngs(3)),
        key=key,
    )
    elbo, _ = sde.elbo(series, key=jax.random.key(2))
    assert elbo.shape == (4,) and np.all(np.isfinite(elbo))
    # Gradients reach the NNX parameters of each.
    for model in (rnn, latent):
        grads = eqx.filter_grad(lambda m: jnp.sum(m.apply(series)[0] ** 2))(model)
        dyn = grads.dynamics if model is rnn else grads.decoder
        assert float(jnp.abs(dyn.state["hidden"]["kernel"][...]).sum()) > 0


def test_default_series_models_are_unchanged_by_the_adapter():
    # The default dynamics are wrapped (time unused) without changing leaves or numbers.
    times, values, mask = odezoo.data.periodic(3, 6, key=jax.random.key(0))
    series = as_series(times, values, mask)
    rnn = ODERNN(1, 6, out_size=2, key=jax.random.key(1))
    mlp = rnn.dynamics.net
    assert isinstance(mlp, eqx.nn.MLP)
    h = jnp.ones(6)
    np.testing.assert_array_equal(rnn.dynamics(0.3, h), mlp(h))
    assert rnn.apply(series)[0].shape == (3, 2)


def test_bad_dynamics_raise_odezoo_errors_that_say_what_to_change():
    key = jax.random.key(0)
    wrong_out = NNXConcatMLP(1, 8, out_size=3, rngs=nnx.Rngs(0))
    with pytest.raises(odezoo.InputError, match=r"return shape \(3,\).*state of shape \(1,\)"):
        odezoo.ODENet(1, dynamics=wrong_out, key=key)
    tuple_fn = odezoo.nn.as_dynamics(lambda t, y, p: (y, p), ())
    with pytest.raises(odezoo.InputError, match="return a tuple; they must return one array"):
        odezoo.ODENet(1, dynamics=tuple_fn, key=key)
    with pytest.raises(odezoo.InputError, match=r"params\[0\]\[0\] has dtype int32.*float"):
        odezoo.nn.as_dynamics(nn_dynamics, [(np.ones((2, 1), np.int32), np.ones(1))])
    with pytest.raises(odezoo.InputError, match="needs its parameters"):
        odezoo.ODENet(1, dynamics=nn_dynamics, key=key)
    with pytest.raises(odezoo.InputError, match="must be an equinox.Module, a flax.nnx.Module"):
        odezoo.ODENet(1, dynamics="mlp", key=key)
    with pytest.raises(odezoo.InputError, match="CNF block 0"):
        odezoo.CNF(2, dynamics=(wrong_out,), key=key)
    with pytest.raises(odezoo.InputError, match="NeuralCDE field"):
        NeuralCDE(1, hidden_size=4, field=NNXConcatMLP(4, 8, rngs=nnx.Rngs(0)), key=key)


def test_custom_dynamics_are_not_config_keys():
    # A config holds data; a Python module or function cannot be one of its values.
    from odezoo.config._models import MODEL_FAMILIES

    for family in ("cnf", "ode_rnn", "latent_ode", "neural_cde", "latent_sde"):
        keys = set(MODEL_FAMILIES[family].defaults())
        assert not keys & {"dynamics", "field", "drift", "diffusion"}, (family, keys)
