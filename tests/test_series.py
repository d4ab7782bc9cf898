"""Time-series families (issue 14): ODE-RNN, latent ODE, neural CDE, latent SDE, and the
SDE path of the solver. Small sizes and one compile per (model, adjoint): the same
compiled value-and-gradient serves the finite differences and the mask checks."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odezoo
from odezoo import ConfigError, InputError
from odezoo.losses import elbo_loss, series_cross_entropy, series_mse
from odezoo.nn import ODERNN, LatentODE, LatentSDE, NeuralCDE, as_series


def _f64(tree):
    return jax.tree_util.tree_map(
        lambda x: x.astype(jnp.float64) if eqx.is_inexact_array(x) else x, tree
    )


def _batch(key, n=3, t=5, channels=1):
    """Irregular float64 series with a per-channel mask holding some zeros."""
    k1, k2, k3 = jax.random.split(key, 3)
    times = jnp.sort(jax.random.uniform(k1, (n, t), jnp.float64, 0.1, 1.5), axis=1)
    values = jax.random.normal(k2, (n, t, channels), jnp.float64)
    mask = jax.random.bernoulli(k3, 0.7, (n, t, channels)).astype(jnp.float64)
    mask = mask.at[:, 0].set(1.0)
    return times, values * mask, mask


# -- closed forms -----------------------------------------------------------------------


def test_ode_rnn_with_zero_dynamics_is_a_gru(x64):
    rnn = _f64(ODERNN(2, 4, width_size=5, key=jax.random.key(0)))
    last = rnn.dynamics.net.layers[-1]
    rnn = eqx.tree_at(
        lambda m: (m.dynamics.net.layers[-1].weight, m.dynamics.net.layers[-1].bias),
        rnn,
        (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)),
    )
    times, values, _ = _batch(jax.random.key(1), channels=2)
    mask = jnp.ones_like(values)
    hs, h, _ = eqx.filter_jit(rnn.hidden_states)(as_series(times, values, mask))

    def gru(carry, x):
        carry = jax.vmap(rnn.cell)(x, carry)
        return carry, carry

    inputs = jnp.swapaxes(jnp.concatenate([values, mask], -1), 0, 1)
    h_ref, hs_ref = jax.lax.scan(gru, jnp.zeros((3, 4)), inputs)
    np.testing.assert_allclose(hs, jnp.swapaxes(hs_ref, 0, 1), rtol=0, atol=1e-13)
    np.testing.assert_allclose(h, h_ref, rtol=0, atol=1e-13)


@pytest.mark.parametrize("interpolation", ["cubic", "linear"])
def test_linear_cde_on_linear_control_matches_closed_form(x64, interpolation):
    """`dy = W y dX` with `X(t) = (t, a + v t)`: every increment of `X` is parallel to
    `d = (1, v)`, so `y(t_end) = expm(M (t_end - t_start)) y(t_start)`,
    `M[i, k] = sum_j W[i, j, k] d[j]`, whatever the (irregular) times."""
    hidden, channels = 3, 2
    solver = odezoo.Solver(rtol=1e-13, atol=1e-13, max_steps=10000)
    cde = NeuralCDE(
        1,
        hidden,
        1,
        depth=0,
        final_activation="identity",
        interpolation=interpolation,
        solver=solver,
        key=jax.random.key(0),
    )
    cde = _f64(cde)
    layer = cde.field.net.net.layers[0]
    cde = eqx.tree_at(lambda m: m.field.net.net.layers[0].bias, cde, jnp.zeros_like(layer.bias))
    times = jnp.array([[0.0, 0.2, 0.5, 0.6, 1.3], [0.1, 0.4, 0.45, 0.9, 1.0]])
    v, a = 0.7, -0.3
    values = (a + v * times)[..., None]
    y1, _ = eqx.filter_jit(cde.hidden)(as_series(times, values))
    w = cde.field.net.net.layers[0].weight.reshape(hidden, channels, hidden)
    m = jnp.einsum("ijk,j->ik", w, jnp.array([1.0, v]))
    for b in range(2):
        x0 = jnp.array([times[b, 0], values[b, 0, 0]])
        y0 = cde.initial(x0)
        exact = jax.scipy.linalg.expm(m * (times[b, -1] - times[b, 0])) @ y0
        np.testing.assert_allclose(y1[b], exact, rtol=0, atol=1e-9)  # error ~ tolerance


# -- gradients against finite differences, and masks, one compile per (model, adjoint) --


def _models(adjoint):
    ode = odezoo.Solver(rtol=1e-9, atol=1e-9, adjoint=adjoint)
    sde = odezoo.Solver(solver=diffrax.ReversibleHeun(), dt0=0.1, adjoint=adjoint)
    small = dict(width_size=4, key=jax.random.key(3))
    return {
        "ode_rnn": (ODERNN(1, 3, out_size=2, solver=ode, **small), series_cross_entropy, 1),
        "latent_ode": (LatentODE(1, 2, 3, solver=ode, obs_std=0.5, **small), elbo_loss, 0),
        # The CDE's global error is far above its local tolerance (its control varies fast
        # in the index parametrisation): 1e-12 keeps finite differences at 1e-7 relative.
        "cde": (
            NeuralCDE(1, 3, 1, solver=ode.replace(rtol=1e-12, atol=1e-12), **small),
            series_mse,
            1,
        ),
        "latent_sde": (LatentSDE(1, 2, 3, 2, solver=sde, obs_std=0.5, **small), elbo_loss, 0),
    }


def _labels(name, n):
    if name == "ode_rnn":
        return (jnp.array([0, 1, 1])[:n],)
    if name == "cde":
        return (jnp.linspace(-1.0, 1.0, n)[:, None],)
    return ()


@pytest.mark.parametrize("adjoint", ["checkpoint", "backsolve"])
@pytest.mark.parametrize("name", ["ode_rnn", "latent_ode", "cde", "latent_sde"])
def test_gradients_and_masks(x64, name, adjoint):
    model, loss, _ = _models(adjoint)[name]
    model = _f64(model)
    times, values, mask = _batch(jax.random.key(4))
    labels = _labels(name, 3)
    key = jax.random.key(5)

    @eqx.filter_jit
    def value_and_grad(model, values):
        return eqx.filter_value_and_grad(lambda m: loss(m, (times, values, mask, *labels), key)[0])(
            model
        )

    value, grads = value_and_grad(model, values)
    params = eqx.filter(model, eqx.is_inexact_array)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(6), len(leaves))
    direction = treedef.unflatten(
        [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)]
    )
    eps = 1e-4
    shifted = lambda s: eqx.apply_updates(model, jax.tree_util.tree_map(lambda d: s * d, direction))
    fd = (value_and_grad(shifted(eps), values)[0] - value_and_grad(shifted(-eps), values)[0]) / (
        2 * eps
    )
    exact = sum(
        jnp.vdot(g, d)
        for g, d in zip(
            jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(direction), strict=True
        )
    )
    # Checkpointing differentiates the discretised solve exactly; backsolve solves the
    # adjoint equation, to the tolerance (1e-9) for ODEs, and with an O(dt0) error for SDEs
    # (reversible Heun reconstructs the forward path, not the discrete gradient): 5% at
    # dt0 = 0.1 here; test_sde_backsolve_reversible_heun_against_checkpoint checks that it
    # shrinks with dt0.
    rtol = 0.1 if (name == "latent_sde" and adjoint == "backsolve") else 1e-5
    np.testing.assert_allclose(exact, fd, rtol=rtol, atol=1e-6)

    # A masked observation has no effect on the loss or its gradient: not even NaN.
    garbage = jnp.where(mask > 0, values, jnp.nan)
    value2, grads2 = value_and_grad(model, garbage)
    assert float(value2) == float(value)
    assert bool(eqx.tree_equal(grads, grads2))

    # Changing an observed value does change it (the check above can fail).
    value3, _ = value_and_grad(model, values + mask)
    assert float(value3) != float(value)


class _Drift(eqx.Module):
    a: jax.Array

    def __call__(self, t, y, args):
        return -self.a * y + jnp.sin(t)


class _Diffusion(eqx.Module):
    b: jax.Array

    def __call__(self, t, y, args):
        return self.b * (1.0 + 0.5 * jnp.tanh(y))


@pytest.mark.slow
def test_sde_backsolve_reversible_heun_against_checkpoint(x64):
    """Backsolve with reversible Heun against checkpointing (the discrete gradient) on
    an SDE with multiplicative noise, saved at irregular times: they agree to O(dt0)
    (reversible Heun reconstructs the forward path; the adjoint SDE still has its own
    discretisation error), and closer as dt0 shrinks."""
    ts = jnp.array([0.1, 0.35, 0.35, 0.8, 1.0])
    y0 = jnp.array([[1.0, -0.5], [0.2, 0.3]])
    params = (_Drift(jnp.array(0.7)), _Diffusion(jnp.array(0.4)))
    gaps = []
    for dt0 in (0.1, 0.02):
        grads = []
        for adjoint in ("checkpoint", "backsolve"):
            s = odezoo.Solver(solver=diffrax.ReversibleHeun(), dt0=dt0, adjoint=adjoint)

            def loss(p, s=s):
                ys, _ = odezoo.solve_sde(
                    s, p[0], p[1], y0, ts=ts, batched=True, key=jax.random.key(0)
                )
                return jnp.sum(ys**2)

            grads.append(jnp.stack(jax.tree_util.tree_leaves(jax.jit(jax.grad(loss))(params))))
        gaps.append(float(jnp.max(jnp.abs(grads[0] - grads[1]) / jnp.abs(grads[0]))))
    assert gaps[1] < gaps[0] / 2 and gaps[1] < 1e-2, gaps


# -- SDE solvers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("solver", "ito", "order"),
    [(diffrax.Euler(), True, 0.5), (diffrax.Heun(), False, 1.0)],
)
def test_sde_strong_convergence_on_gbm(x64, solver, ito, order):
    """Mean absolute error at `T = 1` against the exact solution on the same Brownian
    path, `y0 exp((mu - sigma**2 / 2) T + sigma W_T)` (Itô; Euler-Maruyama, strong order
    1/2) or `y0 exp(mu T + sigma W_T)` (Stratonovich; Heun, strong order 1 for scalar
    noise)."""
    mu, sigma, tol = 0.5, 0.8, 2.0**-12
    keys = jax.random.split(jax.random.key(0), 400)
    drift = lambda t, y, args: mu * y
    diffusion = lambda t, y, args: sigma * y
    y0 = jnp.ones(1)

    def exact(key):
        bm = diffrax.VirtualBrownianTree(0.0, 1.0, tol, jax.ShapeDtypeStruct((1,), y0.dtype), key)
        w = bm.evaluate(0.0, 1.0)
        return y0 * jnp.exp((mu - sigma**2 / 2 if ito else mu) + sigma * w)

    truth = jax.vmap(exact)(keys)
    dts = [2.0**-k for k in range(3, 7)]
    errors = []
    for dt in dts:
        s = odezoo.Solver(solver=solver, dt0=dt)
        one = lambda k: odezoo.solve_sde(s, drift, diffusion, y0, key=k, brownian_tol=tol)[0]
        ys = jax.jit(jax.vmap(one))(keys)
        errors.append(float(jnp.mean(jnp.abs(ys - truth))))
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert errors[-1] < errors[0]
    assert abs(slope - order) < 0.25, (errors, slope)


def test_latent_sde_context_is_that_of_the_next_observation():
    """Li et al. 2020's time-varying context: at time `t` the posterior drift reads the
    context of the first observation at or after `t`, which the backward encoder built
    from that observation and the later ones only."""
    from odezoo.nn._latent_sde import _PosteriorDrift, context_at

    times = jnp.array([0.5, 1.0, 2.0])
    contexts = jnp.array([[1.0], [2.0], [3.0]])
    for t, c in [(0.0, 1), (0.5, 1), (0.7, 2), (1.0, 2), (1.5, 3), (2.0, 3), (3.0, 3)]:
        assert float(context_at(times, contexts, t)[0]) == c, t

    model = LatentSDE(1, 2, 3, 2, width_size=4, key=jax.random.key(0))
    times = jnp.array([[0.2, 0.6, 0.9, 1.4]])
    values = jnp.array([[[0.3], [-0.5], [0.8], [0.1]]])
    mask = jnp.array([[1.0, 1.0, 0.0, 1.0]])  # the third time is not observed
    _, _, ctx = model.encode(as_series(times, values, mask))
    assert ctx.shape == (1, 4, 2)
    # An unobserved time keeps the context of the next observed one.
    np.testing.assert_array_equal(ctx[0, 2], ctx[0, 3])
    # The context at an observation reads that observation and the later ones only.
    _, _, ctx2 = model.encode(as_series(times, values.at[0, 0, 0].set(5.0), mask))
    np.testing.assert_array_equal(ctx2[0, 1:], ctx[0, 1:])
    assert not np.allclose(ctx2[0, 0], ctx[0, 0])
    _, _, ctx3 = model.encode(as_series(times, values.at[0, 3, 0].set(5.0), mask))
    assert not np.allclose(ctx3[0, :3], ctx[0, :3])

    drift = _PosteriorDrift(model.prior, model.posterior, model.diffusion)
    z = jnp.array([0.1, -0.2])
    y = jnp.concatenate([z, jnp.zeros(1)])
    for t, j in [(0.0, 0), (0.2, 0), (0.4, 1), (0.6, 1), (0.7, 2), (1.0, 3), (2.0, 3)]:
        expected = model.posterior(jnp.concatenate([z, jnp.array([t]), ctx[0, j]]))
        got = drift(t, y, (None, (times[0], ctx[0])))[:-1]
        np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=str(t))
    assert not np.allclose(ctx[0, 0], ctx[0, 1])  # so that the checks above can fail


def test_sde_solver_validation():
    drift = diffusion = lambda t, y, args: y
    with pytest.raises(ConfigError, match="dt0"):
        odezoo.solve_sde(odezoo.Solver(), drift, diffusion, jnp.ones(1), key=jax.random.key(0))
    euler = odezoo.Solver(solver=diffrax.Euler(), dt0=0.1, adjoint="backsolve")
    with pytest.raises(ConfigError, match="Stratonovich"):
        odezoo.solve_sde(euler, drift, diffusion, jnp.ones(1), key=jax.random.key(0))
    checked = odezoo.Solver(solver=diffrax.Heun(), dt0=0.1, adjoint="checked")
    with pytest.raises(ConfigError, match="not available for SDEs"):
        odezoo.solve_sde(checked, drift, diffusion, jnp.ones(1), key=jax.random.key(0))


# -- bad input ------------------------------------------------------------------------------


def test_bad_series_input():
    times = np.sort(np.random.default_rng(0).uniform(0, 1, (3, 5)), axis=1).astype(np.float32)
    values = np.ones((3, 5, 1), np.float32)
    mask = np.ones((3, 5, 1), np.float32)
    mask[:, 2] = 0.0
    with pytest.raises(InputError, match="values must have shape"):
        as_series(times[:, :-1], values, mask)
    with pytest.raises(InputError, match="mask must have the shape"):
        as_series(times, values, mask[:, :-1])
    with pytest.raises(InputError, match="non-decreasing.*series 1"):
        as_series(times[:, [0, 2, 1, 3, 4]] * [[0], [1], [1]], values, mask)
    bad = values.copy()
    bad[2, 0, 0] = np.nan  # observed
    with pytest.raises(InputError, match="series 2, time index 0"):
        as_series(times, bad, mask)
    with pytest.raises(InputError, match="expects 2 channel"):
        as_series(times, values, mask, data_size=2)
    # NaN where the mask is off is fine, and is zeroed.
    masked = np.where(mask > 0, values, np.nan)
    assert np.all(np.isfinite(as_series(times, masked, mask).values))
    with pytest.raises(InputError, match=r"\(times, values, mask, y\)"):
        series_mse(None, (times, values, mask), None)


# -- generators -----------------------------------------------------------------------------


def test_generators_shapes_and_laws():
    t, v, m = odezoo.data.periodic(5, 20, key=jax.random.key(0))
    assert t.shape == (5, 20) and v.shape == m.shape == (5, 20, 1)
    assert np.all(np.diff(np.asarray(t), axis=1) >= 0)
    as_series(t, v, m)
    t, v, m, cw = odezoo.data.spirals_classification(6, 10, key=jax.random.key(1), drop=0.3)
    assert v.shape == (6, 10, 2) and cw.shape == (6,)
    assert np.all(np.asarray(m[..., 0]).sum(axis=1) == 10 - 3)
    # Exact samplers against their moments (2000 paths: 5 standard errors).
    n = 2000
    t, v, _ = odezoo.data.ornstein_uhlenbeck(n, 5, key=jax.random.key(2))
    mean, var = odezoo.data.ou_moments(t[0])
    np.testing.assert_allclose(v[:, :, 0].mean(0), mean, atol=5 * float(jnp.sqrt(var.max() / n)))
    np.testing.assert_allclose(v[:, 1:, 0].var(0), var[1:], rtol=0.15)
    t, v, _ = odezoo.data.geometric_brownian_motion(n, 5, key=jax.random.key(3))
    mean, var = odezoo.data.gbm_moments(t[0])
    np.testing.assert_allclose(v[:, :, 0].mean(0), mean, atol=5 * float(jnp.sqrt(var.max() / n)))
    np.testing.assert_allclose(v[:, 1:, 0].var(0), var[1:], rtol=0.2)


# -- the one fit loop trains every family ------------------------------------------------------


@pytest.mark.slow
def test_fit_runs_each_family():
    key = jax.random.key(0)
    periodic = odezoo.data.periodic(4, 6, key=key)
    spirals = odezoo.data.spirals_classification(4, 6, key=key)
    ou = odezoo.data.ornstein_uhlenbeck(4, 6, key=key)
    small = dict(width_size=4, key=key)
    fast = odezoo.Solver(rtol=1e-2, atol=1e-2)
    cases = [
        (ODERNN(2, 3, out_size=2, solver=fast, **small), spirals, series_cross_entropy),
        (LatentODE(1, 2, 3, solver=fast, **small), periodic, elbo_loss),
        (NeuralCDE(2, 3, 2, solver=fast, **small), spirals, series_cross_entropy),
        (LatentSDE(1, 2, 3, 2, **small), ou, elbo_loss),
    ]
    for model, data, loss in cases:
        result = odezoo.train.fit(model, data, loss=loss, steps=3, key=jax.random.key(1))
        assert result.step == 3 and np.all(np.isfinite(result.losses))


# -- the zoo entries' hooks: distances to a known law, series data and metrics in configs ------


def test_wasserstein1_and_ks_to_a_gaussian_against_closed_forms():
    import math

    from odezoo.metrics import ks_gaussian, wasserstein1_gaussian, wasserstein1_noise_floor

    mu, s = 0.3, 1.7
    # one sample c: W1 = E|c - X| = (c - mu)(2 Phi(d) - 1) + 2 s phi(d), d = (c - mu) / s
    for c in (mu, mu + 0.4, mu - 3.0):
        d = (c - mu) / s
        phi = math.exp(-d * d / 2) / math.sqrt(2 * math.pi)
        exact = (c - mu) * math.erf(d / math.sqrt(2)) + 2 * s * phi
        assert wasserstein1_gaussian([c], mu, s) == pytest.approx(exact, rel=1e-12)
    assert ks_gaussian([mu], mu, s) == pytest.approx(0.5, abs=1e-12)
    # equal variances: W1(N(m1, s^2), N(m2, s^2)) = |m1 - m2|; N(m1, s^2) by its quantiles
    n = 4000
    from statistics import NormalDist

    q = np.array([NormalDist(1.0, s).inv_cdf((i + 0.5) / n) for i in range(n)])
    assert wasserstein1_gaussian(q, 1.0 + 0.8, s) == pytest.approx(0.8, abs=2e-3)
    assert wasserstein1_gaussian(q, 1.0 - 2.5, s) == pytest.approx(2.5, abs=2e-3)
    assert wasserstein1_gaussian(q, 1.0, s) < 2e-3
    # KS: the textbook statistic (scipy's), and a sample of the law itself at its floor
    scipy_stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(0).normal(mu, s, 500)
    want = scipy_stats.kstest(x, scipy_stats.norm(mu, s).cdf).statistic
    assert ks_gaussian(x, mu, s) == pytest.approx(want, rel=1e-9)
    floor = wasserstein1_noise_floor(500)
    assert 0.5 * floor < wasserstein1_gaussian(x, mu, s) / s < 2.0 * floor
    ratio = wasserstein1_noise_floor(100) / wasserstein1_noise_floor(1600)
    assert ratio == pytest.approx(4, rel=0.2)
    with pytest.raises(InputError, match="non-finite"):
        wasserstein1_gaussian([0.0, np.nan], 0.0, 1.0)
    with pytest.raises(InputError, match="positive std"):
        ks_gaussian([0.0], 0.0, 0.0)


def _exact_ou_sde(theta, mu, sigma, x0, dt0):
    """A LatentSDE whose prior is exactly the OU process `dX = theta (mu - X) dt + sigma dW`."""
    model = LatentSDE(
        1, latent_size=1, hidden_size=2, context_size=1, depth=0, width_size=2,
        solver=odezoo.Solver(solver=diffrax.ReversibleHeun(), dt0=dt0), key=jax.random.key(0),
    )  # fmt: skip
    lin = model.prior.net.layers[0]
    model = eqx.tree_at(lambda m: m.prior.net.layers[0].weight, model, jnp.array([[-theta, 0.0]]))
    model = eqx.tree_at(lambda m: m.prior.net.layers[0].bias, model, jnp.array([theta * mu]))
    assert lin.weight.shape == (1, 2)
    last = lambda m: m.diffusion.nets.layers[-1]
    b = float(np.log(np.expm1(sigma - 1e-3)))  # softplus(b) + 1e-3 = sigma
    model = eqx.tree_at(lambda m: last(m).weight, model, jnp.zeros_like(last(model).weight))
    model = eqx.tree_at(lambda m: last(m).bias, model, jnp.full_like(last(model).bias, b))
    model = eqx.tree_at(lambda m: m.readout.weight, model, jnp.ones((1, 1)))
    model = eqx.tree_at(lambda m: m.readout.bias, model, jnp.zeros(1))
    model = eqx.tree_at(lambda m: m.z0_mean, model, jnp.array([x0]))
    return eqx.tree_at(lambda m: m.z0_log_std, model, jnp.array([-12.0]))


def test_ou_marginals_of_an_exact_sde_sit_at_the_noise_floor():
    from odezoo.metrics import GaussianMarginals, evaluate, evaluate_marginals

    model = _exact_ou_sde(1.0, 0.0, 0.5, 1.0, dt0=0.01)
    times = (0.25, 0.5, 1.0)
    mean, var = odezoo.data.ou_moments(jnp.asarray(times))
    law = GaussianMarginals(times, mean, var**0.5, samples=800)
    metrics = evaluate(model, law, "elbo")  # the law, not the loss, decides
    assert set(metrics) == {"w1_t0.25", "w1_floor_t0.25", "w1_t0.5", "w1_floor_t0.5",
                            "w1_t1", "w1_floor_t1", "ks_max", "w1_ratio_max"}  # fmt: skip
    assert metrics["w1_ratio_max"] < 2.5 and metrics["ks_max"] < 0.07
    shifted = GaussianMarginals(times, mean + 0.2, var**0.5, samples=800)
    far = evaluate_marginals(model, shifted)
    for t in times:
        assert far[f"w1_t{t:g}"] == pytest.approx(0.2, abs=0.05)
    assert far["w1_ratio_max"] > 5
    with pytest.raises(InputError, match="increasing"):
        GaussianMarginals((1.0, 0.5), (0.0, 0.0), (1.0, 1.0))
    with pytest.raises(InputError, match="LatentSDE"):
        evaluate_marginals(NeuralCDE(1, 2, key=jax.random.key(0)), law)


def test_series_datasets_through_a_config():
    from odezoo.config import build_data
    from odezoo.metrics import GaussianMarginals

    base = {"model": {"type": "neural_cde", "data_size": 2, "out_size": 2}, "train": {"steps": 1}}
    data = build_data(
        {**base, "data": {"name": "spirals_classification", "n_train": 6, "n_test": 5,
                          "n_times": 10, "drop": 0.3}}
    )  # fmt: skip
    times, values, mask, labels = data.train
    assert times.shape == (6, 10) and values.shape == mask.shape == (6, 10, 2)
    assert labels.shape == (6,) and data.test[0].shape == (5, 10)
    np.testing.assert_array_equal(mask[..., 0].sum(axis=1), 7)  # 3 of 10 dropped per series
    ou = build_data(
        {"model": {"type": "latent_sde", "data_size": 1}, "train": {"steps": 1},
         "data": {"name": "ornstein_uhlenbeck", "n_paths": 4, "n_times": 5, "sigma": 0.3}}
    )  # fmt: skip
    assert ou.train[1].shape == (4, 5, 1)
    assert isinstance(ou.test, GaussianMarginals) and ou.test.times == (0.5, 1.0, 2.0)
    mean, var = odezoo.data.ou_moments(jnp.asarray(ou.test.times), sigma=0.3)
    np.testing.assert_allclose(ou.test.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(ou.test.std, np.sqrt(var), rtol=1e-6)


def test_series_accuracy_in_chunks_equals_the_whole_batch():
    import optax

    from odezoo.config import build_evaluate
    from odezoo.metrics import evaluate

    batch = odezoo.data.spirals_classification(7, 8, key=jax.random.key(0), drop=0.3)
    # fixed steps: the outputs do not depend on the batch a series is solved in
    solver = odezoo.Solver(solver=diffrax.Euler(), dt0=1.0)
    cde = NeuralCDE(2, 3, 2, width_size=4, solver=solver, key=jax.random.key(1))
    logits, _ = eqx.filter_jit(lambda m, s: m.apply(s))(cde, batch[:3])
    labels = np.asarray(batch[3])
    want = float(np.mean(np.asarray(logits).argmax(1) == labels))
    assert 0 < want < 1  # an untrained model: some right, some wrong
    metrics = evaluate(cde, batch, "series_cross_entropy", batch_size=3)  # 3 + 3 + 1 padded
    assert metrics["accuracy"] == pytest.approx(want)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch[3]).mean()
    assert metrics["loss"] == pytest.approx(float(loss), rel=1e-5)
    cfg = {"model": {"type": "neural_cde", "data_size": 2, "hidden_size": 3, "out_size": 2,
                     "width_size": 4},
           "data": {"name": "spirals_classification", "n_train": 4, "n_test": 5, "n_times": 8},
           "solver": {"solver": "Euler", "dt0": 1.0},
           "train": {"steps": 1, "loss": "series_cross_entropy", "eval_batch_size": 3}}  # fmt: skip
    assert set(build_evaluate(cfg)(cde)) == {"loss", "accuracy", "nfe_forward"}
