"""Stochastic differential equations: the SDE path of odezoo's one solver door.

SDEs use the same [`Solver`][odezoo.Solver] as ODEs (no second configuration system);
only what diffrax needs in addition (a diffusion, a Brownian path and its key) are
arguments of [`solve_sde`][odezoo.solve_sde].
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax
from jaxtyping import Array, PyTree

from ._counting import CountedField
from ._errors import ConfigError
from ._result import SolveResult, result_code
from ._solve import all_finite
from ._solver import Solver
from ._stats import SolveStats


def check_sde_solver(solver: Solver) -> None:
    """Raise [`ConfigError`][odezoo.ConfigError] unless `solver` can solve an SDE.

    SDEs are solved with fixed steps (`dt0` is required), with an adjoint that has an
    SDE form ([`AbstractAdjoint.sde_adjoint`][odezoo.AbstractAdjoint.sde_adjoint]:
    `"checkpoint"`, `"direct"` or `"backsolve"`); backsolve needs a Stratonovich solver
    (diffrax's `ReversibleHeun`, `Heun`, `Midpoint`), since diffrax's `BacksolveAdjoint`
    solves the adjoint of the Stratonovich SDE.
    """
    name = type(solver.solver).__name__
    if solver.dt0 is None:
        raise ConfigError(
            f"SDEs are solved with fixed steps: give the Solver a dt0 (the step size), e.g. "
            f"odezoo.Solver(solver=diffrax.{name}(), dt0=0.01)"
        )
    solver.adjoint.sde_adjoint(solver)


class _FlatField(eqx.Module):
    """A per-example field on `(n, d)` states as a field on the flattened `(n * d,)` state,
    so that a batch is one SDE driven by one Brownian path with `n * d` channels."""

    field: Callable
    shape: tuple[int, ...] = eqx.field(static=True)
    has_example_args: bool = eqx.field(static=True)

    def __call__(self, t, y, args):
        axes = (None, 0) if self.has_example_args else None
        out = jax.vmap(self.field, in_axes=(None, 0, axes))(t, y.reshape(self.shape), args)
        return out.reshape(-1)


class _Diagonal(eqx.Module):
    """Diagonal noise: the diffusion's values as a diagonal `lineax` operator (a Module, so
    that every adjoint sees the diffusion's parameters)."""

    diffusion: Callable

    def __call__(self, t, y, args):
        return lineax.DiagonalLinearOperator(self.diffusion(t, y, args))


def _one_sde_solve(solver, drift, diffusion, y0, args, t0, t1, ts, key, tol):
    bm = diffrax.VirtualBrownianTree(
        t0, t1, tol=tol, shape=jax.ShapeDtypeStruct(y0.shape, y0.dtype), key=key
    )
    terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(_Diagonal(diffusion), bm))
    adjoint = solver.adjoint.sde_adjoint(solver)

    def segment(y, ends):
        sol = diffrax.diffeqsolve(
            terms,
            solver.solver,
            ends[0],
            ends[1],
            solver.dt0,
            y,
            args=args,
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=diffrax.ConstantStepSize(),
            adjoint=adjoint,
            max_steps=solver.max_steps,
            throw=False,
        )
        st = dict(
            num_steps=sol.stats["num_steps"],
            num_accepted_steps=sol.stats["num_accepted_steps"],
            num_rejected_steps=sol.stats["num_rejected_steps"],
            failed=(sol.result != diffrax.RESULTS.successful).astype(jnp.int32),
            t_reached=jax.lax.stop_gradient(sol.ts[-1]),
        )
        return sol.ys[0], (sol.ys[0], st)

    if ts is None:
        _, (y1, st) = segment(y0, (t0, t1))
        return y1, st
    # Saved times are reached by chaining one solve per interval between them (on the one
    # Brownian path): diffrax 0.7's BacksolveAdjoint gives wrong diffusion gradients with
    # SaveAt(ts=...) inside the interval (measured on an OU process: 4.23 against 2.94 by
    # checkpointing at dt0=1e-3, worse as dt0 shrinks), and NaN when ts ends at t1.
    ts = jnp.asarray(ts)
    starts = jnp.concatenate([jnp.reshape(jnp.asarray(t0, ts.dtype), (1,)), ts[:-1]])
    _, (ys, st) = jax.lax.scan(segment, y0, (starts, ts))
    return ys, dict(
        num_steps=jnp.sum(st["num_steps"]),
        num_accepted_steps=jnp.sum(st["num_accepted_steps"]),
        num_rejected_steps=jnp.sum(st["num_rejected_steps"]),
        failed=jnp.max(st["failed"]),
        t_reached=st["t_reached"][-1],
    )


def solve_sde(
    solver: Solver,
    drift: Callable,
    diffusion: Callable,
    y0: Array,
    args: PyTree = None,
    *,
    key: Array,
    t0: float | Array = 0.0,
    t1: float | Array = 1.0,
    ts: Array | None = None,
    batched: bool = False,
    example_args: PyTree = None,
    brownian_tol: float | None = None,
) -> tuple[Array, SolveStats]:
    """Solve the SDE `dy = drift(t, y, args) dt + diffusion(t, y, args) * dW` with diagonal
    noise, driven by a `diffrax.VirtualBrownianTree`.

    The SDE counterpart of [`solve`][odezoo.solve], with the same
    [`Solver`][odezoo.Solver]: its diffrax solver decides the interpretation
    (`diffrax.Euler`: Itô, Euler-Maruyama; `diffrax.Heun`, `diffrax.ReversibleHeun`,
    `diffrax.Midpoint`: Stratonovich), `dt0` is the fixed step (required: SDEs are
    solved with constant steps here), and `adjoint` is `"checkpoint"`, `"direct"` or
    `"backsolve"` (Stratonovich solvers only; with `diffrax.ReversibleHeun`, which is
    algebraically reversible, backsolve reconstructs the forward path exactly and its
    gradients equal the discretised ones up to round-off). Other settings raise
    [`ConfigError`][odezoo.ConfigError].

    Arguments:

    - `solver`: a [`Solver`][odezoo.Solver] with `dt0` set.
    - `drift`, `diffusion`: per-example fields `f(t, y, args)`; `diffusion` returns the
      diagonal of the noise matrix, an array of the shape of `y` (one Brownian channel
      per state channel). Pure functions or equinox Modules holding their parameters
      (never closures over parameters: backsolve cannot see them).
    - `y0`: the initial state, an array `(d,)`, or `(B, d)` when `batched`.
    - `args`, `example_args`, `ts`, `batched`, `t0`, `t1`: as for [`solve`][odezoo.solve];
      `t1` must exceed `t0`, `ts` must be non-decreasing in `[t0, t1]`. With `ts`, the
      solve is chained from one saved time to the next (fixed steps restart at each),
      which keeps backsolve gradients right (diffrax's backsolve with interior saved
      times does not). A batch is solved as one SDE (one Brownian path with
      `B * d` independent channels) in `"batch"` batching, or as `B` SDEs with split keys
      in `"vmap"` batching.
    - `key`: the PRNG key of the Brownian motion: the same key gives the same path, at
      any step size.
    - `brownian_tol`: the virtual Brownian tree's resolution in time (default
      `dt0 / 16`).

    Returns:

    `(y, stats)` as for [`solve`][odezoo.solve]: the state at `t1`, or at each of `ts`
    (time axis first).

    Example:

    ```python
    import diffrax, jax, jax.numpy as jnp, odezoo

    solver = odezoo.Solver(solver=diffrax.ReversibleHeun(), dt0=0.01, adjoint="backsolve")
    drift = lambda t, y, args: -y
    diffusion = lambda t, y, args: 0.5 * jnp.ones_like(y)
    ys, stats = odezoo.solve_sde(solver, drift, diffusion, jnp.ones((8, 2)), batched=True,
                                 ts=jnp.linspace(0.0, 1.0, 5), key=jax.random.key(0))
    # ys: (5, 8, 2), Ornstein-Uhlenbeck paths
    ```
    """
    check_sde_solver(solver)
    y0 = jnp.asarray(y0)
    tol = solver.dt0 / 16 if brownian_tol is None else brownian_tol
    if solver.count_evals:
        drift = CountedField(drift)
    has_ex = example_args is not None
    if has_ex:
        args = (args, example_args)
    if batched and solver.batching == "batch":
        f = _FlatField(drift, y0.shape, has_ex)
        g = _FlatField(diffusion, y0.shape, has_ex)
        ys, st = _one_sde_solve(solver, f, g, y0.reshape(-1), args, t0, t1, ts, key, tol)
        ys = ys.reshape(*ys.shape[: ys.ndim - 1], *y0.shape)
    elif batched:
        axes = (None, 0) if has_ex else None
        keys = jax.random.split(key, y0.shape[0])
        ys, st = jax.vmap(
            lambda yi, ai, ki: _one_sde_solve(
                solver, drift, diffusion, yi, ai, t0, t1, ts, ki, tol
            ),
            in_axes=(0, axes, 0),
        )(y0, args, keys)
        if ts is not None:
            ys = jnp.swapaxes(ys, 0, 1)
        reached = st.pop("t_reached")
        st = {k: jnp.max(v) for k, v in st.items()}
        st["t_reached"] = jnp.min(reached)
    else:
        ys, st = _one_sde_solve(solver, drift, diffusion, y0, args, t0, t1, ts, key, tol)
    failed = _status(st["failed"], ys, (y0, args, example_args, t0, t1, ts))
    stats = SolveStats.of_solve(solver, st, failed)
    return ys, stats


def _status(failed: Array, ys, inputs) -> Array:
    """The [`SolveResult`][odezoo.SolveResult] code of an SDE solve: fixed steps step
    straight into NaN/inf, which diffrax reports as a success."""
    code = jnp.where(all_finite(ys), failed, result_code(SolveResult.solve_diverged))
    code = jnp.where(all_finite(inputs), code, result_code(SolveResult.solve_nonfinite))
    return jax.lax.stop_gradient(code).astype(jnp.int32)
