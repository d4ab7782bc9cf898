"""Adjoints as objects: one class per strategy, their config form read in one place, and
a strategy of one's own reachable by name with no other edit."""

from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odezoo
from odezoo import _adjoint
from odezoo.config import full_config

# The keys every solver config states, as before adjoints were objects: a config hash
# (checked on resume) depends on them.
CONFIG_KEYS = {
    "solver", "rtol", "atol", "dt0", "max_steps", "adjoint", "checkpoints", "seminorm",
    "check_threshold", "batching", "count_evals",
}  # fmt: skip

ALL = [
    odezoo.CheckpointAdjoint(),
    odezoo.CheckpointAdjoint(checkpoints=7),
    odezoo.BacksolveAdjoint(),
    odezoo.BacksolveAdjoint(seminorm=True),
    odezoo.DirectAdjoint(),
    odezoo.CheckedAdjoint(check_threshold=3.0, seminorm=True),
    odezoo.AutoAdjoint(),
    odezoo.AutoAdjoint(check_every=5, checkpoints=4),
]


@pytest.mark.parametrize("adjoint", ALL, ids=repr)
def test_config_round_trip_and_names(adjoint):
    solver = odezoo.Solver(adjoint=adjoint)
    cfg = solver.to_config()
    assert cfg["adjoint"] == adjoint.name
    assert odezoo.Solver.from_config(cfg) == solver
    assert odezoo.Solver(adjoint=adjoint.name, **adjoint.options()) == solver
    extra = {"check_every"} if cfg.get("check_every", 50) != 50 else set()
    assert set(cfg) == CONFIG_KEYS | extra
    hash(solver)


def test_every_zoo_config_keeps_its_solver_keys():
    """The shipped configs normalise to the keys they always had (so run hashes hold)."""
    from odezoo import zoo

    for name in zoo.names():
        cfg = full_config(zoo.config(name))
        if cfg.get("solver") is not None:
            assert set(cfg["solver"]) == CONFIG_KEYS, name


def test_options_that_do_not_apply_are_errors():
    with pytest.raises(odezoo.ConfigError, match="seminorm=True only applies to adjoint"):
        odezoo.Solver(seminorm=True)
    with pytest.raises(odezoo.ConfigError, match="check_every=5 only applies to adjoint 'auto'"):
        odezoo.Solver(adjoint="backsolve", check_every=5)
    with pytest.raises(odezoo.ConfigError, match="unknown adjoint 'nope'"):
        odezoo.Solver(adjoint="nope")
    with pytest.raises(odezoo.ConfigError, match="unknown Solver argument"):
        odezoo.Solver(rtoll=1e-3)
    with pytest.raises(odezoo.ConfigError, match="checkpoints must be None or a positive int"):
        odezoo.CheckpointAdjoint(checkpoints=0)
    # at their defaults they are accepted: every config states them
    assert odezoo.Solver(checkpoints=None, seminorm=False, check_threshold=10.0) == odezoo.Solver()


def test_replace_keeps_the_options_the_new_adjoint_has():
    solver = odezoo.Solver(adjoint="checked", seminorm=True, check_threshold=4.0)
    assert solver.replace(adjoint="backsolve").adjoint == odezoo.BacksolveAdjoint(seminorm=True)
    assert solver.replace(adjoint="checkpoint").adjoint == odezoo.CheckpointAdjoint()
    assert solver.replace(seminorm=False).adjoint == odezoo.CheckedAdjoint(check_threshold=4.0)
    given = odezoo.DirectAdjoint()
    assert solver.replace(adjoint=given).adjoint is given


def test_auto_is_checkpointing_outside_fit_and_chooses_inside():
    auto = odezoo.AutoAdjoint(seminorm=True, checkpoints=3)
    assert auto.check == odezoo.CheckedAdjoint(seminorm=True, checkpoints=3)
    assert auto.choice(0) == odezoo.BacksolveAdjoint(seminorm=True)
    assert auto.choice(1) == auto.choice(None) == odezoo.CheckpointAdjoint(checkpoints=3)
    f = lambda t, y, a: a * y
    y0, a = jnp.ones(2), jnp.asarray(-0.7)
    grad = lambda s: jax.grad(lambda p: jnp.sum(odezoo.solve(s, f, y0, p)[0]))(a)
    auto_solver = odezoo.Solver(adjoint=odezoo.AutoAdjoint())
    assert float(grad(auto_solver)) == float(grad(odezoo.Solver()))
    _, stats = odezoo.solve(auto_solver, f, y0, a)
    assert int(stats.nfe_backward) == int(stats.nfe) - 2  # as checkpointing


def test_sde_adjoints():
    assert set(_adjoint.sde_adjoint_names()) >= {"checkpoint", "direct", "backsolve"}
    solver = odezoo.Solver(solver=diffrax.Euler(), dt0=0.1, adjoint="checked")
    with pytest.raises(odezoo.ConfigError, match="not available for SDEs"):
        solver.adjoint.sde_adjoint(solver)
    with pytest.raises(odezoo.ConfigError, match="Stratonovich"):
        solver.replace(adjoint="backsolve").adjoint.sde_adjoint(solver)


def test_a_strategy_of_ones_own_is_one_class(monkeypatch, x64):
    """A subclass with a `name` is reachable from configs and used by every solve, with
    no edit elsewhere: here, checkpointing that stores every step."""
    monkeypatch.setattr(_adjoint, "ADJOINT_CLASSES", dict(_adjoint.ADJOINT_CLASSES))

    class EveryStep(odezoo.AbstractAdjoint):
        name: ClassVar[str] = "every-step"
        differentiates_steps: ClassVar[bool] = True
        stored: int = eqx.field(static=True, default=64)

        def diffrax_adjoint(self, solver, derivative_field):
            return diffrax.RecursiveCheckpointAdjoint(checkpoints=self.stored)

    cfg = {"adjoint": "every-step", "stored": 32, "rtol": 1e-8, "atol": 1e-10}
    solver = odezoo.Solver.from_config(cfg)
    assert solver.adjoint == EveryStep(stored=32)
    assert odezoo.Solver.from_config(solver.to_config()) == solver
    f = lambda t, y, a: a * y
    y0, a = jnp.ones(2), jnp.asarray(-0.7)
    loss = lambda s, p: jnp.sum(odezoo.solve(s, f, y0, p)[0])
    grad = jax.grad(lambda p: loss(solver, p))(a)
    exact = 2 * np.exp(-0.7)  # d/da of 2 exp(a) at t1 = 1
    assert float(grad) == pytest.approx(exact, rel=1e-6)
    with pytest.raises(odezoo.ConfigError, match="stored=8 only applies to adjoint 'every-step'"):
        odezoo.Solver(stored=8)
    # an SDE solve needs an SDE form, which this strategy does not give
    with pytest.raises(odezoo.ConfigError, match="'every-step' is not available for SDEs"):
        solver.adjoint.sde_adjoint(solver)
