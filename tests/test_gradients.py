"""Every adjoint's gradients agree with each other and with central finite differences."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import odezoo

ADJOINTS = [
    dict(adjoint="checkpoint"),
    dict(adjoint="checkpoint", checkpoints=2),
    dict(adjoint="backsolve"),
    dict(adjoint="backsolve", seminorm=True),
    dict(adjoint="direct"),
    dict(adjoint="checked"),
]
# The adjoint machinery does not depend on the model, so every adjoint is checked on the
# plain ODE-Net; the other models, whose compiles dominate the suite's time, check the
# paths their fields can change. The augmented ODE-Net: stored steps, recomputed steps
# (two checkpoints) and the continuous adjoint.
CORE_ADJOINTS = ADJOINTS[:3]
# The CNF's field (the trace and a learnable end time) differentiates itself, so its
# backsolve, with or without the seminorm and behind the check, runs odezoo's own reverse
# solve (_backsolve.py): those paths, against checkpointing.
CNF_ADJOINTS = [ADJOINTS[0], ADJOINTS[2], ADJOINTS[3], ADJOINTS[5]]
# A convolutional field, or a Hutchinson trace, changes the field, not the adjoint:
# stored steps and the continuous adjoint.
FIELD_ADJOINTS = [ADJOINTS[0], ADJOINTS[2]]
TIGHT = dict(rtol=1e-10, atol=1e-10)


def _odenet(key):
    return odezoo.ODENet(2, width_size=6, key=key), (4, 2)


def _anode(key):
    return odezoo.ODENet(2, width_size=6, augment=2, out_size=1, key=key), (4, 2)


def _conv(key):
    k1, k2 = jax.random.split(key)
    dyn = odezoo.nn.ConvDynamics(2, 3, kernel_size=3, key=k1)
    return odezoo.ODENet((2, 4, 4), dynamics=dyn, key=k2), (2, 2, 4, 4)


def _cnf_exact(key):
    return odezoo.CNF(2, hidden=(6,), trace="exact", key=key), (5, 2)


def _cnf_hutchinson(key):
    return odezoo.CNF(3, hidden=(6,), trace="hutchinson", probe="gaussian", key=key), (5, 3)


MODELS = {
    "odenet": (_odenet, ADJOINTS),
    "anode": (_anode, CORE_ADJOINTS),
    "conv-odenet": (_conv, FIELD_ADJOINTS),
    "cnf-exact": (_cnf_exact, CNF_ADJOINTS),
    "cnf-hutchinson": (_cnf_hutchinson, FIELD_ADJOINTS),
}


def _loss_fn(model, x, weights):
    probe_key = jax.random.key(7)

    def loss(params, static, solver_changes):
        m = eqx.combine(params, static).with_solver(**solver_changes)
        if isinstance(m, odezoo.CNF):
            out, _ = m.apply(x, key=probe_key)
        else:
            out, _ = m.apply(x)
        return jnp.sum(weights[: out.size].reshape(out.shape) * out)

    return loss


@pytest.mark.parametrize("name", ["odenet", "anode", "conv-odenet"])
def test_gradients_match_finite_differences_for_every_adjoint(x64, name):
    check_gradients(name)


def check_gradients(name):
    key_model, key_x, key_w, key_v = jax.random.split(jax.random.key(0), 4)
    make, adjoints = MODELS[name]
    model, xshape = make(key_model)
    x = jax.random.normal(key_x, xshape)
    weights = jax.random.normal(key_w, (int(np.prod(xshape)),))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    loss = _loss_fn(model, x, weights)
    assert all(leaf.dtype == jnp.float64 for leaf in jax.tree_util.tree_leaves(params))

    # A random direction in parameter space, and the central difference along it.
    flat, unravel = ravel_pytree(params)
    v = jax.random.normal(key_v, flat.shape)
    h = 1e-5
    loss_jit = jax.jit(lambda p: loss(unravel(p), static, _Frozen(tuple(TIGHT.items()))))
    fd = (loss_jit(flat + h * v) - loss_jit(flat - h * v)) / (2 * h)

    grads = {}
    g = jax.jit(jax.grad(loss), static_argnums=(1, 2))
    for changes in adjoints:
        tag = ",".join(f"{k}={v_}" for k, v_ in changes.items())
        solver_changes = _Frozen(tuple(sorted({**TIGHT, **changes}.items())))
        grads[tag] = ravel_pytree(g(params, static, solver_changes))[0]
        np.testing.assert_allclose(jnp.vdot(grads[tag], v), fd, rtol=1e-5, atol=1e-7, err_msg=tag)

    reference = grads["adjoint=checkpoint"]
    for tag, grad in grads.items():
        rel = jnp.linalg.norm(grad - reference) / jnp.linalg.norm(reference)
        assert rel < 1e-6, (tag, float(rel))


class _Frozen(dict):
    """Solver changes as a hashable static argument."""

    def __init__(self, items):
        super().__init__(items)
        self._items = items

    def __hash__(self):
        return hash(self._items)

    def __eq__(self, other):
        return isinstance(other, _Frozen) and self._items == other._items


def test_per_example_batching_gradients_match_batch_mode(x64):
    model, xshape = _odenet(jax.random.key(1))
    x = jax.random.normal(jax.random.key(2), xshape)
    weights = jnp.arange(1.0, 9.0)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    loss = _loss_fn(model, x, weights)
    g = jax.jit(jax.grad(loss), static_argnums=(1, 2))
    a = g(params, static, _Frozen(tuple(sorted({**TIGHT, "batching": "batch"}.items()))))
    for adjoint in ["checkpoint", "backsolve"]:
        changes = {**TIGHT, "batching": "vmap", "adjoint": adjoint}
        b = g(params, static, _Frozen(tuple(sorted(changes.items()))))
        np.testing.assert_allclose(ravel_pytree(a)[0], ravel_pytree(b)[0], rtol=1e-6, atol=1e-9)


def test_batched_call_under_an_outer_vmap_has_the_same_gradient(x64):
    # A batched solve (one ODE per batch) wrapped in the user's own jax.vmap over several
    # batches: each batch keeps its own step sizes, and the gradient must equal the sum of
    # the batches' gradients taken one by one.
    model, xshape = _odenet(jax.random.key(3))
    model = model.with_solver(**TIGHT)
    xs = (
        jax.random.normal(jax.random.key(4), (3, *xshape))
        * jnp.array([0.5, 1.0, 2.0])[:, None, None]
    )
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def loss(p, x):
        return jnp.sum(eqx.combine(p, static).apply(x)[0] ** 2)

    vmapped = jax.jit(jax.grad(lambda p: jnp.sum(jax.vmap(lambda x: loss(p, x))(xs))))(params)
    one_by_one = jax.jit(jax.grad(loss))
    summed = jax.tree_util.tree_map(
        lambda *g: sum(g), *[one_by_one(params, xs[i]) for i in range(len(xs))]
    )
    np.testing.assert_allclose(
        ravel_pytree(vmapped)[0], ravel_pytree(summed)[0], rtol=1e-8, atol=1e-12
    )
