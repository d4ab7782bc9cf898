"""Tolerance schedules: change the solver's tolerances as training progresses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax

from .._errors import InputError
from .._solver import Solver
from ..nn._base import AbstractModel

ToleranceSchedule = Callable[[int], Any]


def piecewise_tolerance(points: Sequence[tuple[int, dict[str, Any]]]) -> ToleranceSchedule:
    """A tolerance schedule that is piecewise constant in the step.

    Arguments:

    - `points`: `[(step, changes), ...]` with increasing steps: from `step` on, the
      solver fields `changes` (e.g. `{"rtol": 1e-3, "atol": 1e-3}`) apply. Before the
      first point the model's own solver is used. This is the JSON form of a tolerance
      schedule in a run's config.

    Returns:

    A function `step -> dict of solver changes (or None)` for
    [`fit`][odezoo.train.fit]'s `tolerance`.

    Example:

    ```python
    from odezoo.train import piecewise_tolerance

    schedule = piecewise_tolerance([(0, {"rtol": 1e-2, "atol": 1e-2}),
                                    (500, {"rtol": 1e-4, "atol": 1e-4})])
    assert schedule(600) == {"rtol": 1e-4, "atol": 1e-4}
    ```
    """
    pts = []
    for item in points:
        if not (isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[1], dict)):
            raise InputError(
                f"tolerance schedule points are [step, {{field: value}}], got {item!r}"
            )
        pts.append((int(item[0]), dict(item[1])))
    if [p[0] for p in pts] != sorted(p[0] for p in pts):
        raise InputError("tolerance schedule steps must be increasing")

    def schedule(step: int):
        current = None
        for start, changes in pts:
            if step >= start:
                current = changes
        return current

    return schedule


def resolve_changes(schedule: ToleranceSchedule | Sequence | None, step: int):
    """The solver changes a schedule asks for at `step`, as a dict (or `None`)."""
    if schedule is None:
        return None
    if not callable(schedule):
        schedule = piecewise_tolerance(schedule)
    changes = schedule(step)
    if changes is None:
        return None
    if isinstance(changes, tuple | list) and len(changes) == 2:
        return {"rtol": float(changes[0]), "atol": float(changes[1])}
    if isinstance(changes, dict):
        return dict(changes)
    raise InputError(
        f"a tolerance schedule must return a dict of solver changes, (rtol, atol) or None; "
        f"got {changes!r} at step {step}"
    )


def solver_of(model) -> Solver | None:
    """The [`Solver`][odezoo.Solver] of `model`'s ODE part, or `None` for a model
    without one (an MLP, a ResNet).

    For an odezoo model this is `model.ode_model().solver`; for any other equinox
    module, the first `Solver` in its tree.
    """
    if isinstance(model, AbstractModel):
        ode = model.ode_model()
        return None if ode is None else ode.solver
    nodes = jax.tree_util.tree_leaves(model, is_leaf=_is_solver)
    return next((node for node in nodes if _is_solver(node)), None)


def _is_solver(x) -> bool:
    return isinstance(x, Solver)


def swap_solvers(tree, changes: dict):
    """`tree` with every `Solver` in it replaced by `solver.replace(**changes)`.

    `fit` applies it alike to the trained part, the rest of the model and the optimiser
    state (whose moment trees mirror the model, solver included), so that their
    structures agree.
    """
    return jax.tree_util.tree_map(
        lambda x: x.replace(**changes) if _is_solver(x) else x, tree, is_leaf=_is_solver
    )
