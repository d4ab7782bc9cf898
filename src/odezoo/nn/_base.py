"""The interfaces every odezoo model implements.

In the style of equinox's abstract/final pattern: abstract classes declare what a model
has (`AbstractVar`) and does (`abc.abstractmethod`); concrete models are final and
implement it. Code outside `odezoo.nn` relies on these interfaces, never on probing a
model with `hasattr`.

- [`AbstractModel`][odezoo.nn.AbstractModel]: any odezoo model: an example shape
  `in_shape`, a batched `apply(xs, *, key=None) -> (out, stats)`, and `batch`.
- [`AbstractODEModel`][odezoo.nn.AbstractODEModel]: a model that solves an ODE with a
  [`Solver`][odezoo.Solver]: `solver`, `with_solver` and `ode(x)`.
"""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._errors import InputError
from .._solver import Solver, SolveStats


class ODEProblem(NamedTuple):
    """The ODE a model solves for an input, as
    [`AbstractODEModel.ode`][odezoo.nn.AbstractODEModel.ode] returns it.
    Unpacks as a tuple `(field, y0, t0, t1, batched)`.

    Fields:

    - `field`: the vector field of one example, `field(t, y, args)`.
    - `y0`: the initial state (with a leading batch axis when `batched`).
    - `t0`, `t1`: the integration interval.
    - `batched`: whether `y0` holds a batch.
    """

    field: Any
    y0: PyTree
    t0: float
    t1: float
    batched: bool


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


class AbstractModel(eqx.Module):
    """Any odezoo model.

    Concrete models have:

    - `in_shape`: the shape of one input example (e.g. `(2,)` or `(1, 8, 8)`), so that
      a user of `odezoo.zoo.load(name)` can see what to feed it;
    - `apply(xs, *, key=None) -> (out, stats)`: the batched forward pass, with the
      solve statistics ([`SolveStats`][odezoo.SolveStats]) or `None` for models
      without an ODE;
    - `batch(xs, *, key=None)`: the outputs alone.

    Inputs are checked once, by `check_input`, for every model: shape, floating-point
    dtype. A wrong input raises [`InputError`][odezoo.InputError] naming the expected
    shape, at trace time, before any work.
    """

    in_shape: eqx.AbstractVar[tuple[int, ...]]

    @property
    def name(self) -> str:
        """A short description of the model, used in error messages."""
        return f"{type(self).__name__}(in_shape={self.in_shape})"

    @abc.abstractmethod
    def apply(
        self, xs: Array, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, SolveStats | None]:
        """Outputs for a batch `(B, *in_shape)`, and the solve statistics (or `None`)."""

    def batch(self, xs: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """Outputs for a batch of shape `(B, *in_shape)`."""
        return self.apply(xs, key=key)[0]

    def ode_model(self) -> AbstractODEModel | None:
        """The part of this model that solves an ODE (itself, or an ODE block), or `None`
        for a model without one."""
        return None

    def is_batch(self, x: Array) -> bool:
        """Whether `x` has one more leading axis than an example."""
        return jnp.ndim(x) == len(self.in_shape) + 1

    def check_input(self, x: Array, *, batched: bool) -> Array:
        """`x` as an array, after checking its shape and dtype against `in_shape`.

        Raises [`InputError`][odezoo.InputError], at trace time, naming the expected
        shape (with a hint when `x` looks like a batch, a single example, or a
        channels-last image).
        """
        return check_input(x, self.in_shape, self.name, batched=batched)


def check_input(x, example_shape: tuple[int, ...], what: str, *, batched: bool) -> Array:
    """Return `x` as an array after checking its shape (and that it is floating point).

    Shapes are static in JAX, so this raises [`InputError`][odezoo.InputError] at trace
    time, before any work.
    """
    x = jnp.asarray(x)
    example_shape = tuple(example_shape)
    expected = ("B", *example_shape) if batched else example_shape
    got = tuple(x.shape[1:] if batched else x.shape)
    if x.ndim != len(expected) or got != example_shape:
        hint = ""
        if not batched and x.ndim == len(example_shape) + 1:
            hint = " (this looks like a batch: use `.batch(x)` for batches)"
        elif batched and x.ndim == len(example_shape):
            hint = " (this looks like a single example: call the model directly)"
        elif len(got) == 3 == len(example_shape) and got == (*example_shape[1:], example_shape[0]):
            hint = " (this looks channels-last: transpose to channels-first (C, H, W))"
        raise InputError(
            f"{what} expected input of shape {_shape_text(expected)}, got {tuple(x.shape)}{hint}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        hint = ""
        if jnp.issubdtype(x.dtype, jnp.integer):
            hint = " (convert it, e.g. `x.astype(jnp.float32)`, scaled as in training)"
        raise InputError(f"{what} expected a floating-point input, got dtype {x.dtype}{hint}")
    return x


class AbstractODEModel(AbstractModel):
    """An odezoo model that solves an ODE: it holds a [`Solver`][odezoo.Solver].

    Concrete models have `solver`, and implement `ode(x)`: the
    [`ODEProblem`][odezoo.nn.ODEProblem] (vector field, initial state, interval) solved
    for an input, which [`reversibility_error`][odezoo.reversibility_error] and the
    benchmarks use. `with_solver` is written once, here.
    """

    solver: eqx.AbstractVar[Solver]

    def ode_model(self) -> AbstractODEModel:
        return self

    @abc.abstractmethod
    def ode(self, x: Array) -> ODEProblem:
        """The [`ODEProblem`][odezoo.nn.ODEProblem] this model solves for `x` (one
        example, or a batch)."""

    def with_solver(
        self, solver: Solver | diffrax.AbstractSolver | None = None, **changes: Any
    ) -> AbstractODEModel:
        """A copy with another solver, or with some solver fields changed: how a trained
        model trades speed for precision at test time, without retraining.

        Arguments:

        - `solver`: an [`odezoo.Solver`][odezoo.Solver] to use as it is; or a diffrax
          solver (e.g. `diffrax.Tsit5()`) to put in the current `Solver`, together
          with any `changes`.
        - `changes`: [`Solver`][odezoo.Solver] fields to change, e.g. `rtol=1e-6`.

        Example:

        ```python
        import diffrax, jax, odezoo

        model = odezoo.ODENet(2, key=jax.random.key(0))
        loose = model.with_solver(rtol=1e-2, atol=1e-2)
        euler = model.with_solver(diffrax.Euler(), dt0=0.05)
        precise = model.with_solver(odezoo.Solver(rtol=1e-8, atol=1e-8))
        ```
        """
        if isinstance(solver, Solver):
            if changes:
                raise InputError(
                    "pass either an odezoo.Solver or Solver field changes, not both "
                    "(or use `solver.replace(...)` first)"
                )
            new = solver
        elif solver is None or isinstance(solver, diffrax.AbstractSolver):
            if solver is not None:
                changes = {"solver": solver, **changes}
            new = self.solver.replace(**changes)
        else:
            raise InputError(
                f"with_solver expects an odezoo.Solver or a diffrax solver, got "
                f"{type(solver).__name__}"
            )
        return eqx.tree_at(lambda m: m.solver, self, new)
