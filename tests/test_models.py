import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import odezoo


def test_mlp_shapes_and_seed_init():
    mlp = odezoo.MLP(
        1, 1, width_size=20, depth=1, init="normal", init_scale=1.0, key=jax.random.key(0)
    )
    assert mlp(jnp.ones(1)).shape == (1,)
    assert mlp.batch(jnp.ones((10, 1))).shape == (10, 1)
    assert [lin.weight.shape for lin in mlp.layers] == [(20, 1), (1, 20)]
    big = odezoo.MLP(50, 50, 200, init="normal", init_scale=0.5, key=jax.random.key(1))
    assert abs(float(jnp.std(big.layers[0].weight)) - 0.5) < 0.02
    with pytest.raises(ValueError, match="unknown init"):
        odezoo.MLP(1, 1, init="xavier", key=jax.random.key(0))


def test_resnet_chains_its_blocks():
    net = odezoo.ResNet(3, depth=3, width_size=8, key=jax.random.key(0))
    x = jnp.array([0.3, -0.2, 1.0])
    h = x
    for block in net.blocks:
        h = h + block(h)
    np.testing.assert_allclose(net(x), h, rtol=1e-6)
    unchained = x + sum(block(x) for block in net.blocks)
    assert not np.allclose(net(x), unchained)
    assert net.trajectory(x).shape == (4, 3)
    np.testing.assert_allclose(net.batch(x[None])[0], net(x), rtol=1e-6)


def test_odenet_call_batch_and_trajectory_agree():
    net = odezoo.ODENet(1, width_size=20, key=jax.random.key(0)).with_solver(rtol=1e-7, atol=1e-7)
    xs = jnp.linspace(-2, 2, 10)[:, None]
    out = net.batch(xs)
    assert out.shape == (10, 1)
    np.testing.assert_allclose(out, jax.vmap(net)(xs), rtol=1e-5, atol=1e-6)
    ts = jnp.linspace(0.0, 1.0, 200)
    traj = net.trajectory(xs, ts)
    assert traj.shape == (200, 10, 1)
    np.testing.assert_allclose(traj[0], xs, atol=1e-6)
    np.testing.assert_allclose(traj[-1], out, rtol=1e-5, atol=1e-6)
    # 1-D trajectories cannot cross: the order of the inputs is kept at every time.
    assert bool(jnp.all(jnp.diff(traj[..., 0], axis=1) > 0))


def test_anode_augmented_dimensions_start_at_zero_and_are_dropped():
    net = odezoo.ODENet(2, augment=3, width_size=8, key=jax.random.key(0))
    assert net.state_shape == (5,)
    x = jnp.array([[0.5, -1.0], [2.0, 0.1]])
    traj = net.trajectory(x, jnp.linspace(0, 1, 5))
    assert traj.shape == (5, 2, 5)
    np.testing.assert_array_equal(traj[0, :, 2:], 0.0)
    np.testing.assert_allclose(traj[0, :, :2], x)
    assert bool(jnp.any(traj[-1, :, 2:] != 0.0))  # the extra dimensions are used
    out = net.batch(x)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out, traj[-1, :, :2], rtol=1e-5, atol=1e-6)
    headed = odezoo.ODENet(2, augment=3, out_size=1, key=jax.random.key(0))
    assert headed.batch(x).shape == (2, 1)
    with pytest.raises(ValueError, match="augment"):
        odezoo.ODENet(2, augment=-1, key=jax.random.key(0))


def test_anode_on_images_augments_channels():
    k1, k2 = jax.random.split(jax.random.key(0))
    dyn = odezoo.nn.ConvDynamics(3, 4, key=k1)  # 1 data channel + 2 augmented
    net = odezoo.ODENet((1, 5, 5), augment=2, dynamics=dyn, key=k2)
    x = jnp.ones((2, 1, 5, 5))
    traj = net.trajectory(x, jnp.array([0.0, 1.0]))
    assert traj.shape == (2, 2, 3, 5, 5)
    np.testing.assert_array_equal(traj[0, :, 1:], 0.0)
    assert net.batch(x).shape == (2, 1, 5, 5)


def test_conv_matches_lax_convolution():
    from odezoo.nn._dynamics import _Conv

    conv = _Conv(3, 4, 3, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3, 6, 5))
    ref = (
        jax.lax.conv_general_dilated(
            x[None], conv.weight, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")
        )[0]
        + conv.bias[:, None, None]
    )
    np.testing.assert_allclose(conv(x), ref, rtol=1e-5, atol=1e-5)


def test_conv_dynamics_matches_lax_convolutions():
    # the stack runs channels-last inside; compare with NCHW convolutions on [y, t]
    dyn = odezoo.nn.ConvDynamics(3, 5, 3, 2, key=jax.random.key(2))
    y = jax.random.normal(jax.random.key(3), (3, 6, 4))
    t = 0.7
    h = y
    for i, conv in enumerate(dyn.convs):
        h = jnp.concatenate([h, jnp.full((1, 6, 4), t)], axis=0)
        h = (
            jax.lax.conv_general_dilated(
                h[None], conv.weight, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")
            )[0]
            + conv.bias[:, None, None]
        )
        h = jnp.tanh(h) if i < len(dyn.convs) - 1 else h
    np.testing.assert_allclose(dyn(t, y), h, rtol=1e-5, atol=1e-5)


def test_classifier_with_ode_block():
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    net = odezoo.Classifier(
        stem=eqx.nn.Conv2d(1, 4, 3, padding=1, key=k1),
        block=odezoo.ODENet((4, 8, 8), dynamics=odezoo.nn.ConvDynamics(4, 8, key=k2), key=k3),
        head=eqx.nn.Sequential(
            [eqx.nn.Lambda(lambda h: h.mean(axis=(1, 2))), eqx.nn.Linear(4, 10, key=k4)]
        ),
    )
    x = jnp.ones((3, 1, 8, 8))
    logits, stats = net.apply(x)
    assert logits.shape == (3, 10) and int(stats.nfe) > 0
    np.testing.assert_allclose(net(x[0]), logits[0], rtol=1e-4, atol=1e-5)
    assert net.with_solver(rtol=1e-2).block.solver.rtol == 1e-2


def test_with_solver_trades_precision_for_speed():
    net = odezoo.ODENet(2, width_size=16, init="normal", key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (8, 2))
    _, tight = net.with_solver(rtol=1e-8, atol=1e-8).apply(x)
    _, loose = net.with_solver(rtol=1e-2, atol=1e-2).apply(x)
    assert int(loose.nfe) < int(tight.nfe)
    assert net.solver.rtol == 1e-3  # the original is unchanged
    with pytest.raises(ValueError, match="not both"):
        net.with_solver(odezoo.Solver(), rtol=1.0)


@pytest.mark.parametrize(
    "make, bad, match",
    [
        (lambda k: odezoo.ODENet(2, key=k), jnp.ones((3,)), r"shape \(2,\)"),
        (lambda k: odezoo.ODENet(2, key=k), jnp.ones((4, 2)), "looks like a batch"),
        (lambda k: odezoo.ODENet(2, key=k), jnp.ones((2,), jnp.int32), "floating-point"),
        (lambda k: odezoo.MLP(3, 1, key=k), jnp.ones((2,)), r"shape \(3,\)"),
        (lambda k: odezoo.ResNet(3, key=k), jnp.ones((1, 3)), "looks like a batch"),
        (lambda k: odezoo.CNF(2, hidden=(4,), key=k), jnp.ones((3,)), r"shape \(2,\)"),
    ],
)
def test_wrong_input_shapes_and_dtypes_raise(make, bad, match):
    model = make(jax.random.key(0))
    fn = model.log_prob if isinstance(model, odezoo.CNF) else model
    with pytest.raises(ValueError, match=match):
        fn(bad)


def test_wrong_batch_shape_raises():
    net = odezoo.ODENet(2, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"shape \(B, 2\)"):
        net.batch(jnp.ones((4, 3)))
    with pytest.raises(ValueError, match="single example"):
        net.batch(jnp.ones((2,)))


def test_invalid_model_configuration():
    with pytest.raises(ValueError, match="trace"):
        odezoo.CNF(2, trace="magic", key=jax.random.key(0))
    with pytest.raises(ValueError, match="probe"):
        odezoo.CNF(2, probe="uniform", key=jax.random.key(0))
    with pytest.raises(ValueError, match="dynamics"):
        odezoo.ODENet((1, 4, 4), key=jax.random.key(0))
    with pytest.raises(ValueError, match="key"):
        odezoo.CNF(20, hidden=(4,), key=jax.random.key(0)).log_prob(jnp.zeros(20))


class _Linear(eqx.Module):
    A: jax.Array

    def __call__(self, t, z):
        return self.A @ z


def test_cnf_with_linear_dynamics_matches_change_of_variables(x64):
    A = jnp.array([[-0.3, 0.8], [-0.5, 0.2]])
    flow = odezoo.CNF(
        2,
        dynamics=(_Linear(A),),
        time=0.7,
        trace="exact",
        solver=odezoo.Solver(rtol=1e-10, atol=1e-10),
        key=jax.random.key(0),
    )
    x = jnp.array([[0.4, -1.2], [1.5, 0.3], [0.0, 0.0]])
    z = x @ scipy.linalg.expm(0.7 * np.asarray(A)).T
    expected = -0.5 * np.sum(z**2, axis=1) - np.log(2 * np.pi) + 0.7 * np.trace(A)
    np.testing.assert_allclose(flow.batch(x), expected, rtol=1e-8)
    np.testing.assert_allclose(flow.log_prob(x[0]), expected[0], rtol=1e-8)
    # Sampling inverts the flow: base samples pushed back through exp(-A T).
    samples = flow.sample(jax.random.key(1), 4)
    base = jax.random.normal(jax.random.key(1), (4, 2))
    np.testing.assert_allclose(
        samples, base @ scipy.linalg.expm(-0.7 * np.asarray(A)).T, rtol=1e-7, atol=1e-9
    )


def test_random_2d_cnf_density_integrates_to_one():
    flow = odezoo.CNF(2, hidden=(16, 16), time=0.5, key=jax.random.key(3))
    grid = jnp.linspace(-7.0, 7.0, 141)
    xx, yy = jnp.meshgrid(grid, grid)
    pts = jnp.stack([xx.ravel(), yy.ravel()], axis=1)
    logp = eqx.filter_jit(lambda m, p: m.batch(p))(flow, pts)
    mass = float(jnp.sum(jnp.exp(logp)) * (grid[1] - grid[0]) ** 2)
    assert abs(mass - 1.0) < 0.01, mass


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_estimator_is_unbiased(probe):
    flow = odezoo.CNF(3, hidden=(16,), trace="exact", probe=probe, key=jax.random.key(0))
    flow = flow.with_solver(rtol=1e-6, atol=1e-6)
    x = jnp.array([0.3, -0.5, 1.1])
    exact = float(flow.log_prob(x))
    hutch = flow.with_trace("hutchinson")
    assert hutch.trace == "hutchinson"
    # One batched solve, a different probe per row: the estimates of log p(x).
    estimates = hutch.batch(jnp.tile(x, (4000, 1)), key=jax.random.key(1))
    mean, se = float(jnp.mean(estimates)), float(jnp.std(estimates) / np.sqrt(4000))
    assert float(jnp.std(estimates)) > 1e-4  # it really is an estimate
    assert abs(mean - exact) < 4 * se + 1e-4, (mean, exact, se)


def test_cnf_regularized_penalty_and_learnable_time():
    flow = odezoo.CNF(2, hidden=(8,), kinetic=0.1, jacobian=0.2, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (6, 2))
    logp, penalty, stats = flow.regularized(x)
    assert logp.shape == penalty.shape == (6,)
    assert bool(jnp.all(penalty > 0))
    np.testing.assert_allclose(logp, flow.batch(x), rtol=1e-5)
    g = eqx.filter_grad(lambda m: -jnp.mean(m.batch(x)))(flow)
    assert float(jnp.abs(g.fields[0].sqrt_time)) > 0  # integration time is learned
    frozen = odezoo.CNF(2, hidden=(8,), learn_time=False, key=jax.random.key(0))
    g = eqx.filter_grad(lambda m: -jnp.mean(m.batch(x)))(frozen)
    assert float(g.fields[0].sqrt_time) == 0.0
    np.testing.assert_allclose(flow.times, [0.5], rtol=1e-6)


def test_resnet_with_conv_blocks():
    keys = jax.random.split(jax.random.key(0), 3)
    blocks = [odezoo.nn.ConvBlock(4, 8, key=k) for k in keys]
    net = odezoo.ResNet((4, 6, 6), blocks=blocks)
    x = jax.random.normal(jax.random.key(1), (2, 4, 6, 6))
    h = x[0]
    for block in blocks:
        h = h + block(h)
    np.testing.assert_allclose(net(x[0]), h, rtol=1e-5, atol=1e-6)
    assert net.batch(x).shape == (2, 4, 6, 6)
    with pytest.raises(ValueError, match="pass blocks="):
        odezoo.ResNet((4, 6, 6), key=jax.random.key(0))
