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
        in_shape=(1, 8, 8),
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
    logp, penalty, stats = eqx.filter_jit(flow.regularized)(x)
    assert logp.shape == penalty.shape == (6,)
    assert bool(jnp.all(penalty > 0))
    # Compiled: op by op, the exact trace's solve and its gradient take seconds.
    grad = eqx.filter_jit(eqx.filter_grad(lambda m: -jnp.mean(m.batch(x))))
    np.testing.assert_allclose(logp, eqx.filter_jit(flow.batch)(x), rtol=1e-5)
    g = grad(flow)
    assert float(jnp.abs(g.fields[0].sqrt_time)) > 0  # integration time is learned
    frozen = odezoo.CNF(2, hidden=(8,), learn_time=False, key=jax.random.key(0))
    g = grad(frozen)
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


# -- the interfaces (issue 10) and trust (issue 11) -------------------------------------


def _conv_classifier(key=0):
    k1, k2, k3, k4 = jax.random.split(jax.random.key(key), 4)
    return odezoo.Classifier(
        stem=eqx.nn.Conv2d(1, 4, 3, padding=1, key=k1),
        block=odezoo.ODENet((4, 8, 8), dynamics=odezoo.nn.ConvDynamics(4, 8, key=k2), key=k3),
        head=eqx.nn.Sequential(
            [eqx.nn.Lambda(lambda h: h.mean(axis=(1, 2))), eqx.nn.Linear(4, 10, key=k4)]
        ),
        in_shape=(1, 8, 8),
    )


def _vector_classifier(block="ode"):
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    inner = (
        odezoo.ODENet(4, width_size=4, key=k2)
        if block == "ode"
        else odezoo.MLP(4, 4, width_size=4, key=k2)
    )
    return odezoo.Classifier(eqx.nn.Linear(2, 4, key=k1), inner, eqx.nn.Linear(4, 3, key=k3))


_MODELS = {
    "mlp": lambda: odezoo.MLP(2, 1, width_size=4, key=jax.random.key(0)),
    "resnet": lambda: odezoo.ResNet(2, depth=2, width_size=4, key=jax.random.key(0)),
    "odenet": lambda: odezoo.ODENet(2, width_size=4, key=jax.random.key(0)),
    "cnf": lambda: odezoo.CNF(2, hidden=(4,), key=jax.random.key(0)),
    "classifier": _vector_classifier,
}


def test_every_model_implements_the_interfaces():
    models = {name: make() for name, make in _MODELS.items()}
    for name, model in models.items():
        assert isinstance(model, odezoo.nn.AbstractModel), name
        assert model.in_shape == (2,), name
        out, stats = model.apply(jnp.ones((3, 2)))
        assert out.shape[0] == 3
        np.testing.assert_array_equal(model.batch(jnp.ones((3, 2))), out)
    for name in ("odenet", "cnf"):
        model = models[name]
        assert isinstance(model, odezoo.nn.AbstractODEModel)
        assert model.ode_model() is model
        problem = model.ode(jnp.ones((3, 2)))
        assert isinstance(problem, odezoo.nn.ODEProblem) and problem.batched
        field, y0, t0, t1, batched = problem  # still unpacks
        assert (t0, t1) == (0.0, 1.0)
    assert models["mlp"].ode_model() is None and models["resnet"].ode_model() is None
    clf = models["classifier"]
    assert not isinstance(clf, odezoo.nn.AbstractODEModel)
    assert clf.ode_model() is clf.block
    assert _vector_classifier("mlp").ode_model() is None


def test_count_parameters_counts_array_leaves_also_under_eval_shape():
    mlp = odezoo.MLP(2, 1, width_size=4, key=jax.random.key(0))
    assert odezoo.nn.count_parameters(mlp) == (2 * 4 + 4) + (4 + 1)
    clf = eqx.filter_eval_shape(_conv_classifier)
    assert odezoo.nn.count_parameters(clf) == odezoo.nn.count_parameters(_conv_classifier())


@pytest.mark.parametrize(
    "bad, match",
    [
        (jnp.ones((2, 8, 8, 1)), "channels-last"),
        (jnp.ones((2, 1, 8, 8), jnp.uint8), "floating-point"),
        (jnp.ones((2, 1, 28, 28)), r"shape \(B, 1, 8, 8\)"),
        (jnp.ones((1, 8, 8)), "single example"),
    ],
)
def test_classifier_checks_its_input(bad, match):
    clf = _conv_classifier()
    assert clf.in_shape == (1, 8, 8)
    with pytest.raises(odezoo.InputError, match=match):
        clf.batch(bad)


def test_classifier_construction_checks_the_stem_and_block():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    conv = eqx.nn.Conv2d(1, 4, 3, padding=1, key=k1)
    block = odezoo.ODENet((4, 8, 8), dynamics=odezoo.nn.ConvDynamics(4, 8, key=k2), key=k3)
    head = eqx.nn.Lambda(lambda h: h.mean(axis=(1, 2)))
    with pytest.raises(odezoo.InputError, match="pass in_shape="):
        odezoo.Classifier(conv, block, head)
    with pytest.raises(odezoo.InputError, match=r"to \(4, 6, 6\), but the block expects"):
        odezoo.Classifier(conv, block, head, in_shape=(1, 6, 6))
    with pytest.raises(odezoo.InputError, match="block must be an odezoo model"):
        odezoo.Classifier(conv, eqx.nn.Identity(), head, in_shape=(1, 8, 8))


def test_shipped_classifier_shows_and_checks_its_input_shape():
    from odezoo import zoo

    for name in ("odenet-digits", "resnet-digits"):
        model = zoo.load(name)  # the static in_shape leaves the weights file unchanged
        assert model.in_shape == (1, 8, 8)
        with pytest.raises(odezoo.InputError, match="floating-point"):
            model.batch(jnp.zeros((2, 1, 8, 8), jnp.uint8))
        with pytest.raises(odezoo.InputError, match="channels-last"):
            model.batch(jnp.zeros((2, 8, 8, 1)))


@pytest.mark.parametrize("name", list(_MODELS))
@pytest.mark.parametrize("value", [jnp.nan, jnp.inf])
def test_nonfinite_input_raises_input_error_in_every_model(name, value):
    model = _MODELS[name]()
    xs = jnp.array([[0.5, 0.1], [value, 0.0]])
    methods = [model.batch, lambda x: model.apply(x)[0]]
    methods.append(model.log_prob if isinstance(model, odezoo.CNF) else model)
    for i, method in enumerate(methods):
        x = xs[1] if i == 2 else xs
        with pytest.raises(odezoo.InputError, match="got NaN or inf in its input") as info:
            jax.block_until_ready(method(x))
        text = str(info.value)
        assert "\n" not in text and "Above is the stack" not in text, text
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_failed_solve_raises_solver_error_outside_jit():
    class Blowup(eqx.Module):
        def __call__(self, t, y):
            return y**2

    net = odezoo.ODENet(1, dynamics=Blowup(), t1=2.0, key=jax.random.key(0))
    net = net.with_solver(max_steps=50)
    flow = odezoo.CNF(2, hidden=(4,), key=jax.random.key(0)).with_solver(max_steps=1)
    clf = odezoo.Classifier(eqx.nn.Identity(), net, eqx.nn.Identity())
    calls = [
        lambda: net(jnp.ones(1)),
        lambda: net.batch(jnp.ones((2, 1))),
        lambda: net.trajectory(jnp.ones(1), jnp.linspace(0, 2, 5)),
        lambda: clf.batch(jnp.ones((2, 1))),
        lambda: flow.log_prob(jnp.ones(2)),
        lambda: flow.batch(jnp.ones((2, 2))),
        lambda: flow.sample(jax.random.key(0), 3),
    ]
    for call in calls:
        with pytest.raises(odezoo.SolverError, match="max_steps") as info:
            jax.block_until_ready(call())
        assert "Above is the stack" not in str(info.value)
        assert "An error occurred during the runtime" not in str(info.value)
    # Inside the user's own jit the error stays equinox's, with odezoo's message in it.
    with pytest.raises(eqx.EquinoxRuntimeError, match="max_steps"):
        jax.block_until_ready(eqx.filter_jit(lambda m, x: m.batch(x))(net, jnp.ones((2, 1))))


def test_user_errors_in_a_model_without_ode_are_left_alone():
    class Checked(eqx.Module):
        def __call__(self, x):
            return eqx.error_if(x, x > 1e3, "user check")

    net = odezoo.ResNet((2,), blocks=[Checked()])
    with pytest.raises(eqx.EquinoxRuntimeError, match="user check"):
        jax.block_until_ready(net(jnp.full(2, 1e4)))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda k: odezoo.ODENet(2, t1=float("nan"), key=k), "t1 must be a finite number"),
        (lambda k: odezoo.ODENet(2, t0=float("-inf"), key=k), "t0 must be a finite number"),
        (lambda k: odezoo.ODENet(2, t1=0.0, key=k), "t1 must differ from t0"),
        (lambda k: odezoo.ODENet(2, width_size=0, key=k), "width_size must be a positive"),
        (lambda k: odezoo.ODENet(2, width_size=-3, key=k), "width_size must be a positive"),
        (lambda k: odezoo.ODENet(2, width_size=2.5, key=k), "width_size must be a positive"),
        (lambda k: odezoo.ODENet(2, depth=-1, key=k), "depth must be a non-negative"),
        (lambda k: odezoo.ODENet(2, augment=-1, key=k), "augment must be a non-negative"),
        (lambda k: odezoo.ODENet(0, key=k), r"in_shape must be a positive"),
        (lambda k: odezoo.ODENet(2, out_size=0, key=k), "out_size must be a positive"),
        (lambda k: odezoo.ODENet(2, init_scale=float("nan"), key=k), "init_scale"),
        (lambda k: odezoo.ODENet(2, solver=1e-3, key=k), "solver must be an odezoo.Solver"),
        (lambda k: odezoo.CNF(2, kinetic=float("nan"), key=k), "kinetic must be a non-neg"),
        (lambda k: odezoo.CNF(2, jacobian=-1.0, key=k), "jacobian must be a non-neg"),
        (lambda k: odezoo.CNF(2, time=float("nan"), key=k), "time must be a positive"),
        (lambda k: odezoo.CNF(2, time=float("inf"), key=k), "time must be a positive"),
        (lambda k: odezoo.CNF(2, hidden=(4, 0), key=k), r"hidden\[1\] must be a positive"),
        (lambda k: odezoo.CNF(2, num_blocks=0, key=k), "num_blocks must be a positive"),
        (lambda k: odezoo.CNF(2, learn_time="yes", key=k), "learn_time must be True or"),
        (lambda k: odezoo.MLP(2, 1, width_size=0, key=k), "width_size must be a positive"),
        (lambda k: odezoo.MLP(2, 1, depth=-2, key=k), "depth must be a non-negative"),
        (lambda k: odezoo.MLP(2, True, key=k), "out_size must be a positive"),
        (lambda k: odezoo.ResNet(2, depth=0, key=k), "depth must be a positive"),
        (lambda k: odezoo.nn.ConvDynamics(4, 0, key=k), "hidden_channels must be a positive"),
    ],
)
def test_bad_construction_arguments_raise_input_error(make, match):
    with pytest.raises(odezoo.InputError, match=match):
        make(jax.random.key(0))


def test_numpy_and_jax_scalars_are_accepted():
    net = odezoo.ODENet(
        np.int64(2),
        width_size=np.int64(4),
        depth=jnp.asarray(1),
        augment=np.int32(1),
        t0=np.float32(0.0),
        t1=jnp.asarray(0.5),
        key=jax.random.key(0),
    )
    assert net.in_shape == (2,) and net.t1 == 0.5 and type(net.t1) is float
    assert type(net.augment) is int and net.state_shape == (3,)
    flow = odezoo.CNF(np.int64(2), (np.int64(4),), time=np.float32(0.5), key=jax.random.key(0))
    assert flow.data_size == 2 and type(flow.data_size) is int
    assert flow.sample(jax.random.key(1), np.int64(3)).shape == (3, 2)
    assert odezoo.MLP(np.int64(2), np.int64(1), np.int64(3), key=jax.random.key(0)).in_shape == (2,)
    with pytest.raises(odezoo.InputError, match=r"width_size must be a positive integer, got 0"):
        odezoo.ODENet(2, width_size=np.int64(0), key=jax.random.key(0))


@pytest.mark.parametrize(
    "ts",
    [
        jnp.array([1.0, 0.5, 0.0]),  # decreasing
        jnp.linspace(0, 1, 4).reshape(2, 2),  # 2-D
        jnp.array([0.0, 1.5]),  # beyond t1
        jnp.array([-0.5, 0.5]),  # before t0
        jnp.array([0.0, jnp.nan]),
        jnp.zeros((0,)),
        jnp.asarray(0.5),
    ],
)
def test_trajectory_says_what_the_times_must_be(ts):
    net = odezoo.ODENet(2, width_size=4, key=jax.random.key(0))
    with pytest.raises(odezoo.InputError, match=r"1-D array of shape \(T,\).*inside \[0, 1\]"):
        jax.block_until_ready(net.trajectory(jnp.ones(2), ts))


def test_trajectory_of_a_backward_odenet_takes_decreasing_times():
    net = odezoo.ODENet(1, width_size=4, t0=1.0, t1=0.0, key=jax.random.key(0))
    ts = jnp.array([1.0, 0.5, 0.0])
    traj = net.trajectory(jnp.array([0.3]), ts)
    np.testing.assert_allclose(traj[0], [0.3], atol=1e-6)
    np.testing.assert_allclose(traj[-1], net(jnp.array([0.3])), rtol=1e-5)
    with pytest.raises(odezoo.InputError, match="decreasing order"):
        net.trajectory(jnp.array([0.3]), ts[::-1])


@pytest.mark.parametrize("name", ["odenet", "cnf", "classifier", "conv_classifier"])
def test_with_solver_takes_a_diffrax_solver_on_every_ode_model(name):
    import diffrax

    model = _conv_classifier() if name == "conv_classifier" else _MODELS[name]()
    x = jnp.ones((2, *model.in_shape))
    tsit5 = model.with_solver(solver=diffrax.Tsit5())
    assert isinstance(tsit5.ode_model().solver.solver, diffrax.Tsit5)
    assert tsit5.ode_model().solver.rtol == model.ode_model().solver.rtol  # the rest is kept
    euler = model.with_solver(solver=diffrax.Euler(), dt0=0.1)
    assert isinstance(euler.ode_model().solver.solver, diffrax.Euler)
    _, stats = euler.apply(x)
    assert int(stats.num_steps) == 10 * (len(model.fields) if name == "cnf" else 1)
    positional = model.with_solver(diffrax.Euler(), dt0=0.1)
    assert positional.ode_model().solver == euler.ode_model().solver
    np.testing.assert_allclose(tsit5.batch(x), model.batch(x), rtol=1e-2, atol=1e-2)


def test_with_solver_on_a_model_without_ode_says_so():
    for model in (_MODELS["mlp"](), _MODELS["resnet"](), _vector_classifier("mlp")):
        with pytest.raises(odezoo.InputError, match="solves no ODE"):
            model.with_solver(rtol=1e-2)
    with pytest.raises(odezoo.InputError, match="odezoo.Solver or a diffrax solver"):
        _MODELS["odenet"]().with_solver("Tsit5")


def test_reversibility_error_applies_to_ode_models():
    resnet = _MODELS["resnet"]()
    with pytest.raises(odezoo.InputError, match="applies to ODE models"):
        odezoo.reversibility_error(resnet, jnp.ones((2, 2)))
    with pytest.raises(odezoo.InputError, match=r"model.ode_model\(\)"):
        odezoo.reversibility_error(_vector_classifier(), jnp.ones((2, 2)))
    clf = _vector_classifier()
    err = odezoo.reversibility_error(clf.ode_model(), jnp.ones((2, 4)))
    assert float(err) < 10.0


def test_cnf_with_trace_keeps_everything_else():
    flow = odezoo.CNF(3, hidden=(4,), probe="gaussian", kinetic=0.1, key=jax.random.key(0))
    hutch = flow.with_trace("hutchinson")
    f, g = flow.fields[0], hutch.fields[0]
    assert (g.trace, g.probe, g.regularize, g.learn_time) == ("hutchinson", "gaussian", True, True)
    assert eqx.tree_equal(f.dynamics, g.dynamics) and f.trace == "exact"


def test_abstract_variables_are_declared_not_fields():
    # A stringified `eqx.AbstractVar` annotation silently becomes an ordinary field; the
    # interfaces' abstract variables must stay abstract (and out of every model's pytree).
    import dataclasses

    assert "in_shape" not in [f.name for f in dataclasses.fields(odezoo.MLP)]
    assert "solver" in [f.name for f in dataclasses.fields(odezoo.CNF)]  # a real field

    class NoShape(odezoo.nn.AbstractModel):
        name = "NoShape"

        def apply(self, xs, *, key=None):
            return xs, None

    with pytest.raises(TypeError, match="in_shape"):
        NoShape()
