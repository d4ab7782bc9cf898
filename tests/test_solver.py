import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import odezoo
from odezoo._stats import STAGE_EVALUATIONS


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


@pytest.mark.parametrize("solver_cls", sorted(STAGE_EVALUATIONS, key=lambda c: c.__name__))
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
        (dict(dt0=-0.1), "dt0 must be None or a positive"),
        (dict(checkpoints=0), "checkpoints"),
        (dict(seminorm=True), "seminorm"),
        (dict(solver=diffrax.Euler()), "give dt0"),
        (dict(solver="Dopri5"), "diffrax solver instance"),
    ],
)
def test_invalid_configuration_fails_at_construction(kwargs, match):
    with pytest.raises(odezoo.ConfigError, match=match):
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


def _message(y, stats, solver, t0, t1, what="Test"):
    with pytest.raises(eqx.EquinoxRuntimeError) as info:
        odezoo.internal.check_solution(y, stats, what=what, solver=solver, t0=t0, t1=t1)
    return str(info.value)


def test_max_steps_gives_a_clear_error():
    # A fast rotation needs ~1000 steps for [0, 10] at this tolerance: 64 do not suffice,
    # and nothing blows up: a true step budget exhaustion.
    field = lambda t, y, a: 50.0 * jnp.stack([y[1], -y[0]])
    solver = odezoo.Solver(max_steps=64)
    y, stats = odezoo.solve(solver, field, jnp.array([1.0, 0.0]), t0=0.0, t1=10.0)
    assert stats.result == odezoo.SolveResult.max_steps and int(stats.failed) == 1
    assert 0.5 < float(stats.t_reached) < 5.0
    msg = _message(y, stats, solver, 0.0, 10.0, what="Rotation")
    for needle in ["Rotation", "hit max_steps", "rtol=0.001", "t between", "Raise max_steps"]:
        assert needle in msg, needle
    assert "diverged" not in msg and "NaN" not in msg


def test_max_steps_of_a_stiff_problem_is_a_budget_not_a_divergence():
    field = lambda t, y, a: -1e4 * (y - jnp.cos(t))
    solver = odezoo.Solver(max_steps=64)
    _, stats = odezoo.solve(solver, field, jnp.ones(1), t0=0.0, t1=10.0)
    assert stats.result == odezoo.SolveResult.max_steps


@pytest.mark.parametrize("max_steps", [64, 4096])
def test_a_blowup_is_a_divergence_not_a_step_budget(max_steps):
    # y' = y^2 from y=1 blows up at t=1: diffrax stops at max_steps (its step size
    # collapses) with a finite but huge state; more steps would not help.
    field = lambda t, y, a: y**2
    solver = odezoo.Solver(max_steps=max_steps)
    y, stats = odezoo.solve(solver, field, jnp.ones(1), t0=0.0, t1=2.0)
    assert stats.result == odezoo.SolveResult.solve_diverged
    assert 0.9 < float(stats.t_reached) <= 1.0
    msg = _message(y, stats, solver, 0.0, 2.0, what="Blowup")
    for needle in ["Blowup", "diverged", "t between 0.9 and 1", "lower the learning rate"]:
        assert needle in msg, needle
    assert "will not help" in msg and "Raise max_steps" not in msg


class Linear(eqx.Module):
    rate: jax.Array

    def __call__(self, t, y, args):
        return self.rate * y


@pytest.mark.parametrize("rate", [jnp.nan, 1e10])
def test_diverged_parameters_are_a_divergence(rate):
    # What a learning rate of 1e10 does to the dynamics: NaN or huge parameters.
    solver = odezoo.Solver()
    y, stats = odezoo.solve(solver, Linear(jnp.asarray(rate)), jnp.ones(2))
    assert stats.result == odezoo.SolveResult.solve_diverged
    assert "diverged" in _message(y, stats, solver, 0.0, 1.0)


def test_exponential_overflow_is_a_divergence():
    y, stats = odezoo.solve(odezoo.Solver(), lambda t, y, a: 1e3 * y, jnp.ones(1))
    assert stats.result == odezoo.SolveResult.solve_diverged


def test_fixed_step_overflow_is_a_divergence_and_its_budget_a_budget():
    euler = odezoo.Solver(solver=diffrax.Euler(), dt0=0.1)
    # diffrax reports success here: Euler steps straight into inf.
    y, stats = odezoo.solve(euler, lambda t, y, a: y**2, jnp.ones(1), t1=2.0)
    assert not np.isfinite(np.asarray(y)).all()
    assert stats.result == odezoo.SolveResult.solve_diverged
    assert "smaller steps (dt0)" in _message(y, stats, euler, 0.0, 2.0)
    short = euler.replace(max_steps=5)
    y, stats = odezoo.solve(short, lambda t, y, a: -y, jnp.ones(1), t1=2.0)
    assert stats.result == odezoo.SolveResult.max_steps
    assert "raise max_steps or dt0" in _message(y, stats, short, 0.0, 2.0)


@pytest.mark.parametrize(
    "where", ["y0", "y0_inf", "args", "example_args", "t1_traced", "ts", "euler_y0"]
)
def test_nonfinite_input_is_reported_as_such(where):
    solver = odezoo.Solver()
    y0, args, ex, t1, ts = jnp.ones((3, 2)), jnp.asarray(1.0), None, 1.0, None
    field = lambda t, y, a: -a * y
    if where == "y0":
        y0 = y0.at[1, 0].set(jnp.nan)
    elif where == "y0_inf":
        y0 = y0.at[2, 1].set(jnp.inf)
    elif where == "args":
        args = jnp.asarray(jnp.nan)
    elif where == "example_args":
        ex = jnp.ones(3).at[0].set(jnp.nan)
        field = lambda t, y, a: -a[0] * a[1] * y
    elif where == "t1_traced":
        t1 = jnp.asarray(jnp.nan)
    elif where == "ts":
        ts = jnp.array([0.5, jnp.nan])
    else:
        solver = odezoo.Solver(solver=diffrax.Euler(), dt0=0.1)
        y0 = y0.at[0, 0].set(jnp.nan)

    @jax.jit
    def run(y0, args, ex, t1):
        return odezoo.solve(solver, field, y0, args, t1=t1, ts=ts, batched=True, example_args=ex)

    y, stats = run(y0, args, ex, t1)
    assert stats.result == odezoo.SolveResult.solve_nonfinite
    msg = _message(y, stats, solver, 0.0, 1.0)
    assert "was given NaN or inf" in msg and "hit max_steps" not in msg
    assert "Raise max_steps" not in msg and "diverged" not in msg


@pytest.mark.parametrize("batching", ["batch", "vmap"])
def test_one_bad_example_flags_the_batch(batching):
    solver = odezoo.Solver(batching=batching)
    y0 = jnp.ones((3, 1)).at[1, 0].set(jnp.nan)
    _, stats = odezoo.solve(solver, lambda t, y, a: -y, y0, batched=True)
    assert stats.result == odezoo.SolveResult.solve_nonfinite


@pytest.mark.parametrize("t0, t1", [(0.0, float("nan")), (float("inf"), 1.0)])
def test_nonfinite_static_times_are_an_input_error(t0, t1):
    with pytest.raises(odezoo.InputError, match="not a finite time"):
        odezoo.solve(odezoo.Solver(), lambda t, y, a: -y, jnp.ones(1), t0=t0, t1=t1)
    with pytest.raises(odezoo.InputError):
        odezoo.solve(odezoo.Solver(), lambda t, y, a: -y, jnp.ones(1), t0=np.float32(t0), t1=t1)


def test_max_steps_error_from_a_model_under_jit():
    class Blowup(eqx.Module):
        def __call__(self, t, y):
            return y**2

    net = odezoo.ODENet(1, dynamics=Blowup(), t1=2.0, key=jax.random.key(0))
    net = net.with_solver(max_steps=50)
    with pytest.raises(eqx.EquinoxRuntimeError, match="ODENet.*diverged"):
        jax.block_until_ready(eqx.filter_jit(net.batch)(jnp.ones((2, 1))))
    # Under plain jax.jit JAX wraps the error, but the message is the same.
    with pytest.raises(jax.errors.JaxRuntimeError, match="ODENet.*diverged"):
        jax.block_until_ready(jax.jit(net.batch)(jnp.ones((2, 1))))


def test_nan_is_never_passed_on():
    net = odezoo.ODENet(2, width_size=4, key=jax.random.key(0))
    with pytest.raises(odezoo.InputError, match="NaN"):
        jax.block_until_ready(net.batch(jnp.array([[jnp.nan, 0.0], [1.0, 1.0]])))


@pytest.mark.parametrize("static_times", [True, False])
def test_fixed_step_solver_integrates_backwards(x64, static_times):
    # Backwards Euler on dy/dt = -y from t0=1 to t1=0 with dt0=0.1: steps of -0.1, so
    # y_{n+1} = y_n + (-0.1)(-y_n) = 1.1 y_n, exactly 1.1^10 after ten steps.
    solver = odezoo.Solver(solver=diffrax.Euler(), dt0=0.1)
    t0, t1 = (1.0, 0.0) if static_times else (jnp.asarray(1.0), jnp.asarray(0.0))
    y, stats = jax.jit(
        lambda a, b: odezoo.solve(solver, lambda t, y, _: -y, jnp.ones(2), t0=a, t1=b)
    )(t0, t1)
    np.testing.assert_allclose(y, 1.1**10 * np.ones(2), rtol=1e-12)
    assert int(stats.num_steps) == 10 and stats.result == odezoo.SolveResult.successful


def test_adaptive_solver_with_explicit_dt0_integrates_backwards(x64):
    solver = odezoo.Solver(rtol=1e-10, atol=1e-10, dt0=0.01)
    y, _ = odezoo.solve(solver, lambda t, y, a: -y, jnp.ones(2), t0=1.0, t1=0.0)
    np.testing.assert_allclose(y, np.e * np.ones(2), rtol=1e-8)


def test_cnf_samples_with_a_fixed_step_solver():
    flow = odezoo.CNF(
        2,
        hidden=(8,),
        solver=odezoo.Solver(solver=diffrax.Euler(), dt0=0.05),
        key=jax.random.key(0),
    )
    x = flow.sample(jax.random.key(1), 16)
    assert x.shape == (16, 2) and bool(jnp.all(jnp.isfinite(x)))


@pytest.mark.parametrize(
    "kwargs, field, value",
    [
        (dict(rtol=np.float32(1e-3)), "rtol", 1e-3),
        (dict(atol=jnp.asarray(1e-6)), "atol", 1e-6),
        (dict(max_steps=np.int64(100)), "max_steps", 100),
        (dict(max_steps=jnp.asarray(100)), "max_steps", 100),
        (dict(dt0=np.asarray(0.05)), "dt0", 0.05),
        (dict(checkpoints=np.int32(8)), "checkpoints", 8),
        (dict(adjoint="checked", check_threshold=np.float64(5.0)), "check_threshold", 5.0),
    ],
)
def test_numpy_and_jax_scalars_are_accepted(kwargs, field, value):
    solver = odezoo.Solver(**kwargs)
    got = solver.to_config()[field]  # the solver's fields and its adjoint's options
    assert got == value and type(got) is type(value)
    hash(solver)  # static fields stay hashable
    assert solver == odezoo.Solver(**{**kwargs, field: value})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(max_steps=np.float64(100.0)), "max_steps must be a positive int, got 100.0"),
        (dict(max_steps=True), "max_steps must be a positive int, got True"),
        (dict(rtol=np.asarray([1e-3, 1e-3])), r"rtol must be a positive finite number"),
        (dict(atol=np.float32(np.nan)), "atol must be a positive finite number, got nan"),
        (dict(dt0=np.float32(-0.1)), "dt0 must be None or a positive"),
    ],
)
def test_bad_scalars_get_a_correct_config_error(kwargs, match):
    with pytest.raises(odezoo.ConfigError, match=match):
        odezoo.Solver(**kwargs)


@pytest.mark.parametrize("adjoint", ["checkpoint", "direct"])
@pytest.mark.parametrize("dt0", [None, 0.05])
@pytest.mark.parametrize("solver_cls", [diffrax.Dopri5, diffrax.Heun])
def test_nfe_backward_is_exact(adjoint, dt0, solver_cls):
    solver = odezoo.Solver(solver=solver_cls(), rtol=1e-5, atol=1e-5, dt0=dt0, adjoint=adjoint)
    A = jnp.array([[-0.5, 2.0], [-2.0, -0.1]])
    y0 = jnp.ones((3, 2))

    def loss(A, s):
        y, stats = odezoo.solve(s, linear_field, y0, A, batched=True)
        return jnp.sum(y**2), stats

    _, stats = loss(A, solver)
    counting = solver.replace(count_evals=True)
    with odezoo.count_evaluations() as count:
        jax.block_until_ready(jax.grad(lambda a: loss(a, counting)[0])(A))
    assert int(stats.nfe_backward) == count.vjp
    expected = int(stats.nfe) - (2 if dt0 is None else 0)
    assert int(stats.nfe_backward) == expected


@pytest.mark.parametrize("adjoint", ["backsolve", "checked"])
def test_nfe_backward_is_nan_where_unknown(adjoint):
    _, stats = odezoo.solve(odezoo.Solver(adjoint=adjoint), lambda t, y, a: -y, jnp.ones(2))
    assert np.isnan(float(stats.nfe_backward))


def test_combine_sums_nfe_backward():
    _, a = odezoo.solve(odezoo.Solver(), lambda t, y, _: -y, jnp.ones(2))
    _, b = odezoo.solve(odezoo.Solver(), lambda t, y, _: -2 * y, jnp.ones(2))
    both = odezoo.SolveStats.combine([a, b])
    assert int(both.nfe_backward) == int(a.nfe_backward) + int(b.nfe_backward)
    assert int(both.nfe) == int(a.nfe) + int(b.nfe)


def test_stats_print_values_and_to_dict():
    _, stats = odezoo.solve(odezoo.Solver(), lambda t, y, a: -y, jnp.ones(2))
    text = repr(stats)
    assert f"num_steps={int(stats.num_steps)}," in text
    assert "failed=0 (successful)" in text and "Array" not in text and "int32[]" not in text
    d = stats.to_dict()
    assert d["failed"] == 0 and d["nfe"] == int(stats.nfe) and np.isnan(d["reversibility_error"])
    assert isinstance(d["num_steps"], int) and set(d) == {
        f.name for f in __import__("dataclasses").fields(stats)
    }
    # Inside jit the statistics are traced: the repr shows dtypes and shapes.
    seen = []
    jax.jit(lambda y: seen.append(repr(odezoo.solve(odezoo.Solver(), lambda t, y, a: -y, y)[1])))(
        jnp.ones(2)
    )
    assert "num_steps=int32[]" in seen[0]


def test_count_evaluations_warns_when_nothing_is_counted():
    with pytest.warns(UserWarning, match="count_evals=True"):
        with odezoo.count_evaluations() as n:
            odezoo.solve(odezoo.Solver(), lambda t, y, a: -y, jnp.ones(2))
    assert n.forward == 0


def test_every_result_has_advice():
    results = odezoo.SolveResult
    for name in ("max_steps", "solve_diverged", "solve_nonfinite"):
        assert results[getattr(results, name)]
    assert "raising max_steps will not help" in results[results.solve_diverged].lower()
    assert "raise max_steps" in results[results.max_steps].lower()
    assert results[results.successful] == ""


def test_result_is_traceable_and_reads_the_code():
    @jax.jit
    def solve_and_read(y0):
        _, stats = odezoo.solve(odezoo.Solver(), lambda t, y, a: -y, y0)
        return stats.result

    assert solve_and_read(jnp.ones(2)) == odezoo.SolveResult.successful
    assert solve_and_read(jnp.full(2, jnp.nan)) == odezoo.SolveResult.solve_nonfinite


def test_without_throw_a_failed_solve_is_nan_and_its_cause_in_the_statistics():
    field = lambda t, y, a: 50.0 * jnp.stack([y[1], -y[0]])
    solver = odezoo.Solver(max_steps=64, throw=False)
    y, stats = odezoo.solve(solver, field, jnp.array([1.0, 0.0]), t0=0.0, t1=10.0)
    out = odezoo.internal.check_solution(y, stats, what="Rotation", solver=solver, t0=0.0, t1=10.0)
    assert np.isnan(np.asarray(out)).all()
    assert stats.result == odezoo.SolveResult.max_steps
    # A successful solve passes through unchanged, and `throw` is not part of the config.
    y, stats = odezoo.solve(solver, lambda t, y, a: -y, jnp.ones(2))
    out = odezoo.internal.check_solution(y, stats, what="Decay", solver=solver, t0=0.0, t1=1.0)
    np.testing.assert_array_equal(out, y)
    assert "throw" not in solver.to_config()
    assert odezoo.Solver.from_config(solver.to_config()).throw


def test_a_models_solver_error_names_its_result():
    class Blowup(eqx.Module):
        def __call__(self, t, y):
            return y**2

    net = odezoo.ODENet(1, dynamics=Blowup(), t1=2.0, key=jax.random.key(0))
    with pytest.raises(odezoo.SolverError) as info:
        net.batch(jnp.ones((2, 1)))
    assert info.value.cause == "solve_diverged"
    assert "ODENet" in str(info.value) and "EquinoxRuntimeError" not in str(info.value)
