"""ODE-Net and augmented ODE-Net (ANODE)."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._errors import InputError
from .._regularisation import Regularisation, penalised_solve
from .._solve import check_solution, solve
from .._solver import Solver
from .._stats import SolveStats
from ._adapt import model_dynamics
from ._arguments import as_float, as_int, as_shape
from ._base import AbstractODEModel, ODEProblem, check_times
from ._dynamics import ConcatMLP


class DynamicsField(eqx.Module):
    """Adapts a dynamics network `f(t, y)` to diffrax's `field(t, y, args)`.

    The network's parameters live in this Module (not in a closure), so every adjoint,
    `BacksolveAdjoint` included, differentiates them.
    """

    dynamics: Callable

    def __call__(self, t, y, args):
        return self.dynamics(t, y)


class ODENet(AbstractODEModel):
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
    - `dynamics`: custom dynamics `f(t, y)` on the (augmented) state shape, replacing
      the default: an equinox module (e.g. [`ConvDynamics`][odezoo.nn.ConvDynamics]), a
      `flax.nnx.Module`, or a plain function bound to its parameters by
      [`as_dynamics`][odezoo.nn.as_dynamics].
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

    A failed solve raises [`SolverError`][odezoo.SolverError], NaN/inf input an
    [`InputError`][odezoo.InputError] (outside `jit`; see
    [`AbstractModel`][odezoo.nn.AbstractModel] for what happens inside it).
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
        dynamics=None,
        activation: Callable = jnp.tanh,
        init: str = "default",
        init_scale: float = 1.0,
        solver: Solver | None = None,
        t0: float = 0.0,
        t1: float = 1.0,
        key: PRNGKeyArray,
    ):
        in_shape = as_shape("in_shape", in_shape)
        augment = as_int("augment", augment, minimum=0)
        t0, t1 = as_float("t0", t0), as_float("t1", t1)
        if t1 == t0:
            raise InputError(f"t1 must differ from t0, got t0 = t1 = {t0:g}")
        if out_size is not None:
            out_size = as_int("out_size", out_size, minimum=1)
            if len(in_shape) != 1:
                raise InputError("out_size (a linear head) needs vector states; use a Classifier")
        if solver is not None and not isinstance(solver, Solver):
            raise InputError(f"solver must be an odezoo.Solver, got {type(solver).__name__}")
        dkey, hkey = jax.random.split(key)
        state_size = in_shape[0] + augment
        if dynamics is None:
            if len(in_shape) != 1:
                raise InputError(
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
        else:
            dynamics = model_dynamics(
                dynamics,
                (state_size, *in_shape[1:]),
                t=t0,
                what=f"ODENet(in_shape={in_shape}, augment={augment})",
            )
        self.dynamics = dynamics
        self.head = None if out_size is None else eqx.nn.Linear(state_size, out_size, key=hkey)
        self.solver = Solver() if solver is None else solver
        self.in_shape = in_shape
        self.augment = augment
        self.t0 = t0
        self.t1 = t1

    # -- pieces ---------------------------------------------------------------------------

    @property
    def state_shape(self) -> tuple[int, ...]:
        """Shape of the integrated (augmented) state of one example."""
        return (self.in_shape[0] + self.augment, *self.in_shape[1:])

    @property
    def name(self) -> str:
        """A short description of the model, used in error messages."""
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

    def _initial_state(self, x: Array) -> tuple[Array, bool]:
        batched = self.is_batch(x)
        x = self.check_input(x, batched=batched)
        return (jax.vmap(self._augment)(x) if batched else self._augment(x)), batched

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
        ys = check_solution(ys, stats, what=self.name, solver=self.solver, t0=self.t0, t1=self.t1)
        return ys, stats

    # -- public API -------------------------------------------------------------------------

    def __call__(self, x: Array) -> Array:
        """The output for one example of shape `in_shape`."""
        x = self.check_input(x, batched=False)
        y1, _ = self._solve(self._augment(x), batched=False)
        return self._readout(y1)

    def apply(self, xs: Array, *, key: PRNGKeyArray | None = None) -> tuple[Array, SolveStats]:
        """Outputs for a batch `(B, *in_shape)` and the solve's statistics.

        The batch is solved as `self.solver.batching` says: as one ODE (default) or as
        independent per-example solves.
        """
        xs = self.check_input(xs, batched=True)
        y1, stats = self._solve(jax.vmap(self._augment)(xs), batched=True)
        return jax.vmap(self._readout)(y1), stats

    def apply_regularised(
        self, xs: Array, regularisation: Regularisation, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, dict[str, Array], SolveStats]:
        """`apply` with speed regularisers: `(outputs, penalties, stats)` (see
        [`AbstractModel.apply_regularised`][odezoo.nn.AbstractModel.apply_regularised]).

        Example:

        ```python
        import jax, jax.numpy as jnp, odezoo

        net = odezoo.ODENet(2, key=jax.random.key(0))
        reg = odezoo.Regularisation(kinetic=0.1, steer=0.5)
        out, penalties, stats = net.apply_regularised(jnp.ones((4, 2)), reg,
                                                      key=jax.random.key(1))
        penalty = reg.penalty(penalties)   # add to the loss
        ```
        """
        xs = self.check_input(xs, batched=True)
        y1, values, stats = penalised_solve(
            self.solver,
            DynamicsField(self.dynamics),
            jax.vmap(self._augment)(xs),
            regularisation=regularisation,
            t0=self.t0,
            t1=self.t1,
            batched=True,
            key=key,
        )
        y1 = check_solution(y1, stats, what=self.name, solver=self.solver, t0=self.t0, t1=self.t1)
        return jax.vmap(self._readout)(y1), values, stats

    def trajectory(self, x: Array, ts: Array) -> Array:
        """The full (augmented) state at times `ts`.

        Arguments:

        - `x`: one example `in_shape`, or a batch `(B, *in_shape)`.
        - `ts`: times of shape `(T,)` inside `[t0, t1]`, in order from `t0` to `t1`
          (increasing when `t1 > t0`; repeats allowed). Anything else raises
          [`InputError`][odezoo.InputError].

        Returns:

        `(T, *state_shape)` for one example, `(T, B, *state_shape)` for a batch: the
        "activation trajectories" of the seed chapter.
        """
        y0, batched = self._initial_state(x)
        ts = check_times(ts, self.t0, self.t1, self.name)
        ys, _ = self._solve(y0, batched=batched, ts=ts)
        return ys

    def ode(self, x: Array) -> ODEProblem:
        """The [`ODEProblem`][odezoo.nn.ODEProblem] this model solves for `x`, one
        example or a batch (used by [`reversibility_error`][odezoo.reversibility_error]
        and the benchmarks)."""
        y0, batched = self._initial_state(x)
        return ODEProblem(DynamicsField(self.dynamics), y0, self.t0, self.t1, batched)
