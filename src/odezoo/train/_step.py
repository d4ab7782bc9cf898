"""The compiled train step of `fit`: draw a batch, loss and gradient, optimiser update."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._solve import all_finite
from .._stats import SolveStats
from ._data import Draw
from ._failure import Failure, first_failure
from ._penalised import split_aux


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything static about a train step. Hashable: `fit` calls with equal plans (same
    loss function, optimiser object, batch rule and mesh) share compiled steps."""

    loss: Callable
    optimizer: optax.GradientTransformation
    draw: Draw
    impl: Any
    replicated: jax.sharding.NamedSharding
    sharded: jax.sharding.NamedSharding


def _zero_if_bad(batch, ok):
    """A bad batch replaced by zeros, so that the step runs harmlessly (no solver error
    on NaN input); its update is discarded and the run stops on the host."""
    return jax.tree_util.tree_map(
        lambda b: (
            jnp.where(ok, b, jnp.zeros_like(b)) if jnp.issubdtype(b.dtype, jnp.inexact) else b
        ),
        batch,
    )


def _solve_failure(stats) -> list:
    """The solve's own failure, read from its statistics (`fit` trains with
    `Solver(throw=False)`, so a failed solve shows up here rather than as an
    exception): the [`SolveResult`][odezoo.SolveResult] as a `Failure`."""
    if not isinstance(stats, SolveStats):
        return []
    return [(stats.failed != 0, Failure.promote(stats.result))]


@eqx.filter_jit(donate="all-except-first")
def train_step(const, params, opt_state, kd):
    """One training step. Returns the new parameters, optimiser state and key data, and
    `(loss, stats, penalties, failure)`; on a [`Failure`][odezoo.train.Failure] the parameters and
    optimiser state are the old ones."""
    plan, static, arrays = const
    k = (
        jax.random.wrap_key_data(kd)
        if plan.impl is None
        else jax.random.wrap_key_data(kd, impl=plan.impl)
    )
    k, batch_key, loss_key = jax.random.split(k, 3)
    batch = jax.lax.with_sharding_constraint(plan.draw(arrays, batch_key), plan.sharded)
    batch_ok = all_finite(batch)
    batch = _zero_if_bad(batch, batch_ok)

    def objective(p):
        return plan.loss(eqx.combine(p, static), batch, loss_key)

    (value, aux), grads = eqx.filter_value_and_grad(objective, has_aux=True)(params)
    stats, penalties = split_aux(aux)
    # optax (0.2.8) mixes dtypes itself (adam's bias correction raises a float to its
    # int32 step count), which strict promotion, as the test suite runs, would refuse.
    with jax.numpy_dtype_promotion("standard"):
        updates, new_opt = plan.optimizer.update(grads, opt_state, params)
    new_params = eqx.apply_updates(params, updates)
    failure = first_failure(
        [(~batch_ok, Failure.bad_batch)]
        + _solve_failure(stats)
        + [
            (~jnp.all(jnp.isfinite(value)), Failure.nonfinite_loss),
            (~all_finite(grads), Failure.nonfinite_grad),
        ]
    )
    ok = failure == Failure.successful
    keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)
    new_params, new_opt = keep(new_params, params), keep(new_opt, opt_state)
    new_params, new_opt = jax.lax.with_sharding_constraint((new_params, new_opt), plan.replicated)
    return new_params, new_opt, jax.random.key_data(k), (value, stats, penalties, failure)
