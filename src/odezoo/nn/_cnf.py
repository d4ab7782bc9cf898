"""Continuous normalizing flow (FFJORD), with exact or Hutchinson trace."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._backsolve import AbstractDerivativeField
from .._errors import InputError
from .._random import standard_normal
from .._regularisation import Regularisation, penalised_solve
from .._solve import check_solution, solve
from .._solver import Solver
from .._stats import SolveStats
from ._adapt import model_dynamics
from ._arguments import as_bool, as_float, as_int
from ._base import AbstractODEModel, ODEProblem
from ._dynamics import ConcatSquashMLP


class CNFField(AbstractDerivativeField):
    """The augmented vector field of one CNF block on `s in [0, 1]`.

    It differentiates its velocity in every evaluation (the trace), so backsolve
    evaluates its adjoint with one VJP per stage (see `AbstractDerivativeField`).

    The block's integration time `T` is factored out (`t = T s`), so `T` is a plain
    parameter of the field and every adjoint differentiates it. The state is
    `(z, logdet)` or, with regularisation, `(z, logdet, kinetic, jacobian_frobenius)`.
    """

    dynamics: eqx.Module
    sqrt_time: Array
    trace: str = eqx.field(static=True)
    probe: str = eqx.field(static=True)
    regularize: bool = eqx.field(static=True)
    learn_time: bool = eqx.field(static=True)

    def time(self) -> Array:
        s = self.sqrt_time if self.learn_time else jax.lax.stop_gradient(self.sqrt_time)
        return s**2

    def velocity(self, s, z):
        T = self.time()
        return T * self.dynamics(T * s, z)

    def __call__(self, s, state, args):
        z = state[0]
        f = lambda zz: self.velocity(s, zz)
        if self.trace == "exact":
            dz, lin = jax.linearize(f, z)
            jac = jax.vmap(lin)(jnp.eye(z.shape[0], dtype=z.dtype))  # row i: J e_i
            tr = jnp.trace(jac)
            frob = jnp.sum(jac**2)
        else:
            eps = args[1]
            dz, vjp = jax.vjp(f, z)
            (e_jac,) = vjp(eps)
            tr = jnp.sum(e_jac * eps)
            frob = jnp.sum(e_jac**2)
        if not self.regularize:
            return dz, tr
        return dz, tr, jnp.sum(dz**2), frob


class SampleField(eqx.Module):
    """The plain vector field of one CNF block, used to draw samples."""

    field: CNFField

    def __call__(self, s, z, args):
        return self.field.velocity(s, z)


class CNF(AbstractODEModel):
    """A continuous normalizing flow (FFJORD, Grathwohl et al. 2019).

    Data `x` flows to `z = z(T)` under `dz/dt = f(t, z)` through one or more stacked
    blocks, with a standard-normal base. The log-density follows from the instantaneous
    change of variables, `log p(x) = log N(z(T); 0, I) + ∫ tr(∂f/∂z) dt`, where the trace
    is computed exactly (one JVP per dimension; best for small dimension) or estimated
    by Hutchinson's estimator (one VJP per probe; unbiased, for large dimension).

    Arguments:

    - `data_size`: dimension `D` of the data.
    - `hidden`: hidden sizes of each block's default
      [`ConcatSquashMLP`][odezoo.nn.ConcatSquashMLP] dynamics (FFJORD's toy: 64-64-64).
    - `num_blocks`: number of stacked flow blocks.
    - `time`: initial integration time of each block (FFJORD: 0.5).
    - `learn_time`: whether the integration times are trained.
    - `trace`: `"exact"`, `"hutchinson"` or `"auto"` (exact for `D <= 16`).
    - `probe`: Hutchinson probe distribution, `"rademacher"` or `"gaussian"`.
    - `kinetic`, `jacobian`: RNODE regularisation weights (Finlay et al. 2020) of the
      kinetic energy `∫|f|²` and the Jacobian Frobenius norm `∫|∂f/∂z|²_F` (exact with
      the exact trace, else Hutchinson-estimated with the trace's own probe). Zero
      (default) switches them off; see [`CNF.regularized`][odezoo.CNF.regularized].
    - `dynamics`: optional tuple of custom dynamics `f(t, z)`, one per block: equinox
      modules, `flax.nnx.Module`s, or plain functions bound to their parameters by
      [`as_dynamics`][odezoo.nn.as_dynamics].
    - `solver`: a [`Solver`][odezoo.Solver] (default Dopri5 at rtol=atol=1e-5).
    - `key`: a JAX PRNG key.

    Example:

    ```python
    import jax, jax.numpy as jnp, odezoo

    flow = odezoo.CNF(2, hidden=(32, 32), key=jax.random.key(0))
    logp = flow.log_prob(jnp.zeros(2))
    x = flow.sample(jax.random.key(1), 100)                 # (100, 2)
    big = odezoo.CNF(64, trace="hutchinson", key=jax.random.key(2))
    logp_est = big.log_prob(jnp.zeros(64), key=jax.random.key(3))
    ```

    A failed solve raises [`SolverError`][odezoo.SolverError], NaN/inf data an
    [`InputError`][odezoo.InputError] (outside `jit`; see
    [`AbstractModel`][odezoo.nn.AbstractModel] for what happens inside it).

    !!! warning

        The Hutchinson log-density is an unbiased *estimate* of the log-determinant
        term, and so noisy: evaluate held-out likelihoods with `trace="exact"` (e.g.
        `flow.with_trace("exact")`) where the dimension allows.
    """

    fields: tuple[CNFField, ...]
    solver: Solver
    data_size: int = eqx.field(static=True)
    kinetic: float = eqx.field(static=True)
    jacobian: float = eqx.field(static=True)

    def __init__(
        self,
        data_size: int,
        hidden: tuple[int, ...] = (64, 64, 64),
        *,
        num_blocks: int = 1,
        time: float = 0.5,
        learn_time: bool = True,
        trace: Literal["exact", "hutchinson", "auto"] = "auto",
        probe: Literal["rademacher", "gaussian"] = "rademacher",
        kinetic: float = 0.0,
        jacobian: float = 0.0,
        dynamics: tuple | None = None,
        solver: Solver | None = None,
        key: PRNGKeyArray,
    ):
        data_size = as_int("data_size", data_size, minimum=1)
        num_blocks = as_int("num_blocks", num_blocks, minimum=1)
        time = as_float("time", time, positive=True)
        learn_time = as_bool("learn_time", learn_time)
        kinetic = as_float("kinetic", kinetic, nonnegative=True)
        jacobian = as_float("jacobian", jacobian, nonnegative=True)
        if trace == "auto":
            trace = "exact" if data_size <= 16 else "hutchinson"
        if trace not in ("exact", "hutchinson"):
            raise InputError(f"unknown trace {trace!r}; choose 'exact', 'hutchinson' or 'auto'")
        if probe not in ("rademacher", "gaussian"):
            raise InputError(f"unknown probe {probe!r}; choose 'rademacher' or 'gaussian'")
        if solver is not None and not isinstance(solver, Solver):
            raise InputError(f"solver must be an odezoo.Solver, got {type(solver).__name__}")
        if dynamics is None:
            keys = jax.random.split(key, num_blocks)
            dynamics = tuple(ConcatSquashMLP(data_size, tuple(hidden), key=k) for k in keys)
        else:
            dynamics = tuple(dynamics)
            if len(dynamics) != num_blocks:
                raise InputError(f"got {len(dynamics)} dynamics modules for {num_blocks} blocks")
            dynamics = tuple(
                model_dynamics(d, (data_size,), what=f"CNF block {i}")
                for i, d in enumerate(dynamics)
            )
        regularize = kinetic > 0 or jacobian > 0
        self.fields = tuple(
            CNFField(d, jnp.asarray(math.sqrt(time)), trace, probe, regularize, learn_time)
            for d in dynamics
        )
        self.solver = Solver(rtol=1e-5, atol=1e-5) if solver is None else solver
        self.data_size = data_size
        self.kinetic = kinetic
        self.jacobian = jacobian

    @property
    def in_shape(self) -> tuple[int, ...]:
        """The shape of one example, `(data_size,)`."""
        return (self.data_size,)

    @property
    def trace(self) -> str:
        """`"exact"` or `"hutchinson"`."""
        return self.fields[0].trace

    @property
    def times(self) -> Array:
        """The integration time of each block."""
        return jnp.stack([f.time() for f in self.fields])

    @property
    def name(self) -> str:
        """A short description of the model, used in error messages."""
        return f"CNF(data_size={self.data_size}, blocks={len(self.fields)}, trace={self.trace})"

    def _probe(self, key, shape, dtype):
        if key is None:
            raise InputError(
                "a CNF with trace='hutchinson' needs a PRNG key for its probes: "
                "pass key=..., or use with_trace('exact')"
            )
        if self.fields[0].probe == "rademacher":
            return jax.random.rademacher(key, shape, dtype=dtype)
        return standard_normal(key, shape, dtype)

    def _flow(self, x: Array, key, *, batched: bool):
        """Data to base: returns `(log p(x), regularisers (..., 2), stats)`."""
        zero = jnp.zeros(x.shape[:1], x.dtype) if batched else jnp.zeros((), x.dtype)
        z, logdet = x, zero
        reg = jnp.zeros((*zero.shape, 2), x.dtype)
        all_stats = []
        keys = [None] * len(self.fields) if key is None else jax.random.split(key, len(self.fields))
        for field, k in zip(self.fields, keys, strict=True):
            state = (z, zero) if not field.regularize else (z, zero, zero, zero)
            ex = None
            if field.trace == "hutchinson":
                ex = self._probe(k, x.shape, x.dtype)
            out, stats = solve(
                self.solver, field, state, t0=0.0, t1=1.0, batched=batched, example_args=ex
            )
            out = check_solution(out, stats, what=self.name, solver=self.solver, t0=0, t1=1)
            z, logdet = out[0], logdet + out[1]
            if field.regularize:
                reg = reg + jnp.stack([out[2], out[3]], axis=-1)
            all_stats.append(stats)
        base = -0.5 * jnp.sum(z**2, axis=-1) - 0.5 * self.data_size * math.log(2 * math.pi)
        return base + logdet, reg, SolveStats.combine(all_stats)

    def log_prob(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """Log-density of one example `(data_size,)` (a scalar).

        `key` draws the probe for the Hutchinson trace; unused for the exact trace.
        """
        x = self.check_input(x, batched=False)
        return self._flow(x, key, batched=False)[0]

    def apply(self, xs: Array, *, key: PRNGKeyArray | None = None) -> tuple[Array, SolveStats]:
        """Log-densities of a batch `(B, data_size)`, and the solve statistics."""
        xs = self.check_input(xs, batched=True)
        logp, _, stats = self._flow(xs, key, batched=True)
        return logp, stats

    def regularized(
        self, xs: Array, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, Array, SolveStats]:
        """`(log p (B,), penalty (B,), stats)` with the RNODE penalty
        `kinetic * ∫|f|² + jacobian * ∫|∂f/∂z|²_F` of each example (zero when both
        weights are zero). Training minimises `mean(-log p + penalty)`."""
        xs = self.check_input(xs, batched=True)
        logp, reg, stats = self._flow(xs, key, batched=True)
        penalty = self.kinetic * reg[:, 0] + self.jacobian * reg[:, 1]
        return logp, penalty, stats

    def apply_regularised(
        self, xs: Array, regularisation: Regularisation, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, dict[str, Array], SolveStats]:
        """Log-densities of a batch with speed regularisers: `(log p (B,), penalties,
        stats)`, the penalties summed over the blocks (see
        [`AbstractModel.apply_regularised`][odezoo.nn.AbstractModel.apply_regularised]).
        The penalties are of the flow's motion `dz/dt`; STEER draws each block's end time
        around its own (`s = 1`, in units of the learned time). A Hutchinson-trace CNF
        needs a `key` for its probes.

        A CNF built with its own `kinetic`/`jacobian` weights (applied by
        [`regularized`][odezoo.CNF.regularized]) raises
        [`InputError`][odezoo.InputError] here: use one or the other.
        """
        if self.kinetic > 0 or self.jacobian > 0:
            raise InputError(
                "this CNF has its own RNODE weights (kinetic/jacobian, applied by "
                "`regularized`); with a Regularisation, build it with kinetic=jacobian=0 "
                "and put the weights in the Regularisation"
            )
        xs = self.check_input(xs, batched=True)
        zero = jnp.zeros(xs.shape[:1], xs.dtype)
        z, logdet = xs, zero
        totals: dict[str, Array] = {}
        all_stats = []
        keys = [None] * len(self.fields) if key is None else jax.random.split(key, len(self.fields))
        for field, k in zip(self.fields, keys, strict=True):
            probe_key, penalty_key = (None, None) if k is None else jax.random.split(k)
            ex = self._probe(probe_key, xs.shape, xs.dtype) if field.trace == "hutchinson" else None
            out, values, stats = penalised_solve(
                self.solver,
                field,
                (z, zero),
                regularisation=regularisation,
                t0=0.0,
                t1=1.0,
                batched=True,
                key=penalty_key,
                example_args=ex,
                velocity=SampleField(field),
            )
            out = check_solution(out, stats, what=self.name, solver=self.solver, t0=0, t1=1)
            z, logdet = out[0], logdet + out[1]
            totals = {name: totals.get(name, 0.0) + v for name, v in values.items()}
            all_stats.append(stats)
        base = -0.5 * jnp.sum(z**2, axis=-1) - 0.5 * self.data_size * math.log(2 * math.pi)
        return base + logdet, totals, SolveStats.combine(all_stats)

    def sample(self, key: PRNGKeyArray, n: int) -> Array:
        """`n` samples `(n, data_size)`: base samples flowed backwards through the blocks."""
        return self.sample_with_stats(key, n)[0]

    def sample_with_stats(self, key: PRNGKeyArray, n: int) -> tuple[Array, SolveStats]:
        """Like [`sample`][odezoo.CNF.sample], with the solve statistics."""
        n = as_int("n", n, minimum=1)
        z = jax.random.normal(key, (n, self.data_size))
        all_stats = []
        for field in reversed(self.fields):
            z, stats = solve(self.solver, SampleField(field), z, t0=1.0, t1=0.0, batched=True)
            z = check_solution(z, stats, what=self.name, solver=self.solver, t0=1, t1=0)
            all_stats.append(stats)
        return z, SolveStats.combine(all_stats)

    def with_trace(self, trace: Literal["exact", "hutchinson"]) -> CNF:
        """A copy that computes the trace exactly or by Hutchinson's estimator."""
        if trace not in ("exact", "hutchinson"):
            raise InputError(f"unknown trace {trace!r}; choose 'exact' or 'hutchinson'")
        fields = tuple(dataclasses.replace(f, trace=trace) for f in self.fields)
        return eqx.tree_at(lambda m: m.fields, self, fields)

    def ode(self, x: Array) -> ODEProblem:
        """The [`ODEProblem`][odezoo.nn.ODEProblem] of the first block for `x`, one
        example or a batch (exact trace only)."""
        if self.trace != "exact":
            raise InputError("ode() is available for the exact trace; use with_trace('exact')")
        batched = self.is_batch(x)
        x = self.check_input(x, batched=batched)
        zero = jnp.zeros(x.shape[:1] if batched else (), x.dtype)
        field = self.fields[0]
        state = (x, zero) if not field.regularize else (x, zero, zero, zero)
        return ODEProblem(field, state, 0.0, 1.0, batched)
