"""ODE-Net and augmented ODE-Net (ANODE)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._solver import Solver, SolveStats, check_solution, solve
from ._checks import check_input
from ._dynamics import ConcatMLP


class DynamicsField(eqx.Module):
    """Adapts a dynamics network `f(t, y)` to diffrax's `field(t, y, args)`.

    The network's parameters live in this Module (not in a closure), so every adjoint,
    `BacksolveAdjoint` included, differentiates them.
    """

    dynamics: Callable

    def __call__(self, t, y, args):
        return self.dynamics(t, y)


class ODENet(eqx.Module):
    """A dynamics network `f(t, y)` integrated from `t0` to `t1`: `x -> y(t1)`, `y(t0) = x`.

    With `augment=k > 0` this is the augmented ODE-Net of Dupont et al. (2019): `k`
    zeros are appended to the state (along the first axis: features for vectors, channels
    for images), the augmented state is integrated, and the extra dimensions are dropped
    at the end, or the whole state goes through a linear head when `out_size` is given.
    Augmentation lets trajectories pass each other, which a plain ODE-Net's cannot.

    Arguments:

    - `in_shape`: the shape of one example, e.g. `1`, `(2,)` or `(C, H, W)`.
    - `width_size`, `depth`, `activation`, `init`, `init_scale`: for the default dynamics,
      a [`ConcatMLP`][odezoo.nn.ConcatMLP] on `[y, t]` (vector states only).
    - `augment`: number of zero dimensions appended to the state.
    - `out_size`: if given, a linear head from the full (augmented) state to `out_size`;
      otherwise the output is the first `in_shape[0]` dimensions of `y(t1)`.
    - `dynamics`: a custom dynamics module `f(t, y)` on the (augmented) state shape,
      e.g. [`ConvDynamics`][odezoo.nn.ConvDynamics]; replaces the default.
    - `solver`: a [`Solver`][odezoo.Solver] (default Dopri5, rtol 1e-3, atol 1e-6,
      checkpointed adjoint, batch solved as one ODE).
    - `t0`, `t1`: the integration interval (the "depth" of the network).
    - `key`: a JAX PRNG key.

    Example:

    ```python
    import jax, jax.numpy as jnp, odezoo

    net = odezoo.ODENet(1, width_size=20, key=jax.random.key(0))
    y = net.batch(jnp.linspace(-2, 2, 10)[:, None])          # (10, 1)
    traj = net.trajectory(jnp.array([0.5]), jnp.linspace(0, 1, 200))  # (200, 1)
    anode = odezoo.ODENet(2, augment=5, key=jax.random.key(1))
    fast = net.with_solver(rtol=1e-2, atol=1e-2)               # no retraining
    ```
    """

    dynamics: eqx.Module
    head: eqx.nn.Linear | None
    solver: Solver
    in_shape: tuple[int, ...] = eqx.field(static=True)
    augment: int = eqx.field(static=True)
    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)

    def __init__(
        self,
        in_shape: int | tuple[int, ...],
        *,
        width_size: int = 20,
        depth: int = 1,
        augment: int = 0,
        out_size: int | None = None,
        dynamics: eqx.Module | None = None,
        activation: Callable = jnp.tanh,
        init: str = "default",
        init_scale: float = 1.0,
        solver: Solver | None = None,
        t0: float = 0.0,
        t1: float = 1.0,
        key: PRNGKeyArray,
    ):
        in_shape = (in_shape,) if isinstance(in_shape, int) else tuple(in_shape)
        if not in_shape or any(s < 1 for s in in_shape):
            raise ValueError(f"in_shape must be a non-empty shape of positive sizes: {in_shape}")
        if augment < 0:
            raise ValueError(f"augment must be >= 0, got {augment}")
        if t1 == t0:
            raise ValueError("t1 must differ from t0")
        dkey, hkey = jax.random.split(key)
        state_size = in_shape[0] + augment
        if dynamics is None:
            if len(in_shape) != 1:
                raise ValueError(
                    f"the default MLP dynamics is for vector states; for shape {in_shape} "
                    "pass `dynamics=` (e.g. odezoo.nn.ConvDynamics)"
                )
            dynamics = ConcatMLP(
                state_size,
                width_size,
                depth,
                activation=activation,
                init=init,
                init_scale=init_scale,
                key=dkey,
            )
        if out_size is not None and len(in_shape) != 1:
            raise ValueError("out_size (a linear head) needs vector states; use a Classifier")
        self.dynamics = dynamics
        self.head = None if out_size is None else eqx.nn.Linear(state_size, out_size, key=hkey)
        self.solver = Solver() if solver is None else solver
        self.in_shape = in_shape
        self.augment = augment
        self.t0 = float(t0)
        self.t1 = float(t1)

    # -- pieces ---------------------------------------------------------------------------

    @property
    def state_shape(self) -> tuple[int, ...]:
        """Shape of the integrated (augmented) state of one example."""
        return (self.in_shape[0] + self.augment, *self.in_shape[1:])

    def _name(self) -> str:
        return f"ODENet(in_shape={self.in_shape}, augment={self.augment})"

    def _augment(self, x: Array) -> Array:
        if self.augment == 0:
            return x
        zeros = jnp.zeros((self.augment, *x.shape[1:]), x.dtype)
        return jnp.concatenate([x, zeros], axis=0)

    def _readout(self, y: Array) -> Array:
        if self.head is not None:
            return self.head(y)
        return y[: self.in_shape[0]]

    def _solve(self, y0, *, batched: bool, ts=None) -> tuple[Array, SolveStats]:
        ys, stats = solve(
            self.solver,
            DynamicsField(self.dynamics),
            y0,
            t0=self.t0,
            t1=self.t1,
            ts=ts,
            batched=batched,
        )
        ys = check_solution(
            ys, stats, what=self._name(), solver=self.solver, t0=self.t0, t1=self.t1
        )
        return ys, stats

    # -- public API -------------------------------------------------------------------------

    def __call__(self, x: Array) -> Array:
        """The output for one example of shape `in_shape`."""
        x = check_input(x, self.in_shape, self._name(), batched=False)
        y1, _ = self._solve(self._augment(x), batched=False)
        return self._readout(y1)

    def apply(self, xs: Array, *, key: PRNGKeyArray | None = None) -> tuple[Array, SolveStats]:
        """Outputs for a batch `(B, *in_shape)` and the solve's statistics.

        The batch is solved as `self.solver.batching` says: as one ODE (default) or as
        independent per-example solves.
        """
        xs = check_input(xs, self.in_shape, self._name(), batched=True)
        y1, stats = self._solve(jax.vmap(self._augment)(xs), batched=True)
        return jax.vmap(self._readout)(y1), stats

    def batch(self, xs: Array) -> Array:
        """Outputs for a batch of shape `(B, *in_shape)`."""
        return self.apply(xs)[0]

    def trajectory(self, x: Array, ts: Array) -> Array:
        """The full (augmented) state at times `ts`.

        Arguments:

        - `x`: one example `in_shape`, or a batch `(B, *in_shape)`.
        - `ts`: increasing times in `[t0, t1]`, shape `(T,)`.

        Returns:

        `(T, *state_shape)` for one example, `(T, B, *state_shape)` for a batch: the
        "activation trajectories" of the seed chapter.
        """
        x = jnp.asarray(x)
        batched = x.ndim == len(self.in_shape) + 1
        x = check_input(x, self.in_shape, self._name(), batched=batched)
        y0 = jax.vmap(self._augment)(x) if batched else self._augment(x)
        ys, _ = self._solve(y0, batched=batched, ts=jnp.asarray(ts))
        return ys

    def with_solver(self, solver: Solver | None = None, **changes: Any) -> ODENet:
        """A copy with another solver, or with some solver fields changed.

        This is how a trained model trades speed for precision at test time.

        Example:

        ```python
        loose = model.with_solver(rtol=1e-2, atol=1e-2)
        precise = model.with_solver(odezoo.Solver(rtol=1e-8, atol=1e-8))
        ```
        """
        return _with_solver(self, solver, changes)

    def ode(self, x: Array):
        """`(field, y0, t0, t1, batched)` of the ODE this model solves for `x`, one example
        or a batch (used by [`reversibility_error`][odezoo.reversibility_error] and the
        benchmarks)."""
        x = jnp.asarray(x)
        batched = x.ndim == len(self.in_shape) + 1
        x = check_input(x, self.in_shape, self._name(), batched=batched)
        y0 = jax.vmap(self._augment)(x) if batched else self._augment(x)
        return DynamicsField(self.dynamics), y0, self.t0, self.t1, batched


def _with_solver(model, solver, changes):
    if solver is not None and changes:
        raise ValueError("pass either a Solver or field changes, not both")
    new = solver if solver is not None else model.solver.replace(**changes)
    if not isinstance(new, Solver):
        raise ValueError(f"expected an odezoo.Solver, got {type(new).__name__}")
    return eqx.tree_at(lambda m: m.solver, model, new)
