"""The interfaces every odezoo model implements.

In the style of equinox's abstract/final pattern: abstract classes declare what a model
has (`AbstractVar`) and does (`abc.abstractmethod`); concrete models are final and
implement it. Code outside `odezoo.nn` relies on these interfaces, never on probing a
model with `hasattr`.

- [`AbstractModel`][odezoo.nn.AbstractModel]: any odezoo model: an example shape
  `in_shape`, a batched `apply(xs, *, key=None) -> (out, stats)`, and `batch`.
- [`AbstractODEModel`][odezoo.nn.AbstractODEModel]: a model that solves an ODE with a
  [`Solver`][odezoo.Solver]: `solver` and `ode(x)`.
- [`AbstractForecaster`][odezoo.nn.AbstractForecaster]: a model of irregular series
  that predicts values at any query times from the observations: `predict`.

Any model with an ODE part (itself, or e.g. a Classifier's ODE block) returns it from
`ode_model()`; `model.ode_model().solver` is how to find a model's solver, and
`model.with_solver(...)` changes it. [`count_parameters`][odezoo.nn.count_parameters]
counts a model's parameters.
"""

# No `from __future__ import annotations`: equinox does not support stringified
# `AbstractVar` annotations (they would silently become ordinary fields).

import abc
import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._checks import odezoo_error_of, register_message
from .._errors import InputError
from .._regularisation import Regularisation
from .._solver import Solver
from .._stats import SolveStats


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


# -- run-time checks and the errors they raise ------------------------------------------

_Method = TypeVar("_Method", bound=Callable)


def input_error_if(x: PyTree, pred: Array, message: str) -> PyTree:
    """`equinox.error_if(x, pred, message)`, raised by the models' public methods as an
    [`InputError`][odezoo.InputError] (outside `jit`): a run-time check of input values."""
    return eqx.error_if(x, pred, register_message(message, InputError))


def raises_odezoo_errors(method: _Method) -> _Method:
    """Decorator of the models' public methods: a failed run-time check (an
    `equinox.EquinoxRuntimeError`) is raised as odezoo's exception, with odezoo's
    message alone: [`InputError`][odezoo.InputError] for bad input values,
    [`SolverError`][odezoo.SolverError] for a failed solve. See
    [`AbstractModel`][odezoo.nn.AbstractModel] for what happens inside `jit`."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (
            eqx.EquinoxRuntimeError,
            eqx.EquinoxTracetimeError,
            jax.errors.JaxRuntimeError,
        ) as err:
            converted = odezoo_error_of(str(err))
            if converted is None:
                raise
            raise converted from None

    wrapper.__odezoo_errors__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _wrap_public_methods(cls: type) -> None:
    """Wrap each public method `cls` defines (and `__call__`) in `raises_odezoo_errors`."""
    for name, value in list(vars(cls).items()):
        public = name == "__call__" or not name.startswith("_")
        if inspect.isfunction(value) and public and not getattr(value, "__odezoo_errors__", False):
            setattr(cls, name, raises_odezoo_errors(value))


def check_input(x, example_shape: tuple[int, ...], what: str, *, batched: bool) -> Array:
    """Return `x` as an array after checking it against `example_shape`.

    Its shape and (floating-point) dtype are static in JAX, so a wrong one raises
    [`InputError`][odezoo.InputError] at once, also at trace time, naming the expected
    shape (with a hint when `x` looks like a batch, a single example, or a
    channels-last image). That its values are finite (no NaN or inf) is checked at run
    time, with `equinox.error_if`, raised as an `InputError` by the models' methods
    (see [`AbstractModel`][odezoo.nn.AbstractModel]).
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
    return input_error_if(
        x,
        ~jnp.all(jnp.isfinite(x)),
        f"{what} got NaN or inf in its input: odezoo models need finite inputs. Find the "
        "bad values with `~jnp.isfinite(x)`, and drop or impute them first.",
    )


def check_times(ts, t0: float, t1: float, what: str) -> Array:
    """Return `ts` as an array after checking that they are times at which to save a
    solve over `[t0, t1]`: a 1-D array (checked at once), of finite times inside the
    interval, in order from `t0` to `t1` (checked at run time, as `check_input`)."""
    lo, hi = min(t0, t1), max(t0, t1)
    order = "increasing" if t1 > t0 else "decreasing"
    rule = (
        f"{what}: the times `ts` must be a 1-D array of shape (T,), T >= 1, of finite "
        f"times inside [{lo:g}, {hi:g}], in {order} order (from t0 = {t0:g} to "
        f"t1 = {t1:g}; repeats allowed)"
    )
    ts = jnp.asarray(ts)
    if ts.ndim != 1 or ts.shape[0] < 1:
        raise InputError(f"{rule}; got shape {tuple(ts.shape)}")
    if not (jnp.issubdtype(ts.dtype, jnp.floating) or jnp.issubdtype(ts.dtype, jnp.integer)):
        raise InputError(f"{rule}; got dtype {ts.dtype}")
    steps = jnp.diff(ts) if t1 > t0 else -jnp.diff(ts)
    bad = ~jnp.all(jnp.isfinite(ts)) | jnp.any(ts < lo) | jnp.any(ts > hi) | jnp.any(steps < 0)
    return input_error_if(ts, bad, f"{rule}.")


# -- the interfaces ----------------------------------------------------------------------


class AbstractModel(eqx.Module):
    """Any odezoo model.

    Concrete models have:

    - `in_shape`: the shape of one input example (e.g. `(2,)` or `(1, 8, 8)`), so that
      a user of `odezoo.zoo.load(name)` can see what to feed it;
    - `apply(xs, *, key=None) -> (out, stats)`: the batched forward pass, with the
      solve statistics ([`SolveStats`][odezoo.SolveStats]) or `None` for models
      without an ODE;
    - `batch(xs, *, key=None)`: the outputs alone.

    Inputs are checked once, by `check_input`, for every model: shape and
    floating-point dtype at once (an [`InputError`][odezoo.InputError] naming the
    expected shape, before any work), finite values at run time.

    **Errors.** Called outside `jit`, the public methods raise odezoo's exceptions with
    odezoo's message alone: [`InputError`][odezoo.InputError] for bad input (wrong
    shape or dtype, NaN/inf), [`SolverError`][odezoo.SolverError] for a failed solve
    (`max_steps` reached, divergence). Inside your own `jax.jit` or `eqx.filter_jit`
    the run-time checks cannot raise Python exceptions of odezoo's: a failed check
    raises, when the compiled function runs, an `equinox.EquinoxRuntimeError` (under
    `eqx.filter_jit`) or a `jax.errors.JaxRuntimeError` (`INTERNAL: CpuCallback error`,
    under `jax.jit`), whose text contains odezoo's message. To get odezoo's exception,
    call the model outside `jit` on the failing input; to get NaN outputs instead of
    an exception (and read `stats.failed`), set `EQX_ON_ERROR=nan` in the environment
    before starting Python (`EQX_ON_ERROR=breakpoint` opens a debugger there).

    Example:

    ```python
    import jax, jax.numpy as jnp, odezoo

    net = odezoo.ResNet(2, depth=2, key=jax.random.key(0))
    assert isinstance(net, odezoo.nn.AbstractModel) and net.in_shape == (2,)
    try:
        net(jnp.array([jnp.nan, 0.0]))
    except odezoo.InputError as e:
        print(e)        # ResNet(in_shape=(2,)) got NaN or inf in its input: ...
    ```
    """

    in_shape: eqx.AbstractVar[tuple[int, ...]]

    def __init_subclass__(cls, **kwargs):
        # Every public method of every model, `__call__` included, is wrapped here, once
        # (as flowjax's `AbstractBijection` wraps its methods): a family need not, and
        # cannot forget to, turn failed run-time checks into odezoo's exceptions.
        super().__init_subclass__(**kwargs)
        _wrap_public_methods(cls)

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """A short description of the model, used in error messages, e.g.
        `"ODENet(in_shape=(1,), augment=0)"`."""

    @abc.abstractmethod
    def apply(
        self, xs: Array, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, SolveStats | None]:
        """Outputs for a batch `(B, *in_shape)`, and the solve statistics (or `None`)."""

    def batch(self, xs: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """Outputs for a batch of shape `(B, *in_shape)`."""
        return self.apply(xs, key=key)[0]

    def ode_model(self) -> "AbstractODEModel | None":
        """The part of this model that solves an ODE (itself, or an ODE block), or `None`
        for a model without one. `model.ode_model().solver` is the model's solver."""
        return None

    def apply_regularised(
        self, xs: Array, regularisation: Regularisation, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, dict[str, Array], SolveStats | None]:
        """`apply` with the speed regularisers of `regularisation` (a
        [`Regularisation`][odezoo.Regularisation]): `(outputs, penalties, stats)`, the
        penalties a dict from each active regulariser's name to its per-example values
        (see [`penalised_solve`][odezoo.penalised_solve]). A `key` (training) draws
        STEER's end time and the Jacobian term's probe.

        A model without an ODE has nothing to regularise: its penalties are empty.
        """
        out, stats = self.apply(xs, key=key)
        return out, {}, stats

    def is_batch(self, x: Array) -> bool:
        """Whether `x` has one more leading axis than an example."""
        return jnp.ndim(x) == len(self.in_shape) + 1

    def check_input(self, x: Array, *, batched: bool) -> Array:
        """`x` as an array, after checking its shape, dtype and values against
        `in_shape` (see [`check_input`][odezoo.internal.check_input])."""
        return check_input(x, self.in_shape, self.name, batched=batched)

    def with_solver(
        self, solver: Solver | diffrax.AbstractSolver | None = None, **changes: Any
    ) -> "AbstractModel":
        """A copy whose ODE (`ode_model()`) uses another solver, or some changed solver
        fields: how a trained model trades speed for precision at test time, without
        retraining. Every solver of the ODE part is replaced (a
        [`LatentODE`][odezoo.nn.LatentODE]'s encoder and decoder share one). Raises
        [`InputError`][odezoo.InputError] for a model without an ODE. Final: models do
        not override it.

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
        tsit5 = model.with_solver(solver=diffrax.Tsit5())
        precise = model.with_solver(odezoo.Solver(rtol=1e-8, atol=1e-8))
        ```
        """
        ode = self.ode_model()
        if ode is None:
            raise InputError(
                f"{self.name} solves no ODE, so it has no solver to change: with_solver "
                "applies to ODE models (ODENet, CNF, a Classifier with an ODE block)"
            )
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
            new = ode.solver.replace(**changes)
        else:
            raise InputError(
                f"with_solver expects an odezoo.Solver or a diffrax solver, got "
                f"{type(solver).__name__}"
            )
        # Every Solver of the ODE part changes (a latent ODE's encoder shares its solver).
        is_solver = lambda x: isinstance(x, Solver)
        swap = lambda part: jax.tree_util.tree_map(
            lambda x: new if is_solver(x) else x, part, is_leaf=is_solver
        )
        return eqx.tree_at(lambda m: m.ode_model(), self, swap(ode))


_wrap_public_methods(AbstractModel)


class AbstractODEModel(AbstractModel):
    """An odezoo model that solves an ODE: it holds a [`Solver`][odezoo.Solver].

    Concrete models have `solver`, and implement `ode(x)`: the
    [`ODEProblem`][odezoo.nn.ODEProblem] (vector field, initial state, interval) solved
    for an input, which [`reversibility_error`][odezoo.reversibility_error] and the
    benchmarks use. Their `with_solver` is
    [`AbstractModel.with_solver`][odezoo.nn.AbstractModel.with_solver].
    """

    solver: eqx.AbstractVar[Solver]

    def ode_model(self) -> "AbstractODEModel":
        """This model itself."""
        return self

    @abc.abstractmethod
    def ode(self, x: Array) -> ODEProblem:
        """The [`ODEProblem`][odezoo.nn.ODEProblem] this model solves for `x` (one
        example, or a batch)."""


def count_parameters(model: PyTree) -> int:
    """The number of parameters of `model`: the elements of its array leaves (also of a
    model built under `jax.eval_shape`, whose leaves are `jax.ShapeDtypeStruct`s).

    Example:

    ```python
    import jax, odezoo

    mlp = odezoo.MLP(2, 1, width_size=4, key=jax.random.key(0))
    assert odezoo.nn.count_parameters(mlp) == (2 * 4 + 4) + (4 * 1 + 1)
    ```
    """
    leaves = jax.tree_util.tree_leaves(model)
    arrays = (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct)
    return sum(int(np.prod(np.shape(x))) for x in leaves if isinstance(x, arrays))


class AbstractForecaster(AbstractModel):
    """A model of irregular time series that predicts the values at any query times from
    a batch of observed series: interpolation (query times inside the observed window)
    and extrapolation (beyond it). The series evaluation scores forecasters by
    `predict` (interpolation and extrapolation MSE).

    Concrete forecasters implement `predict`; their `apply` is the reconstruction of a
    batch at its own times.
    """

    @abc.abstractmethod
    def predict(
        self, series: Any, query_times: Array, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, SolveStats | None]:
        """The values `(B, Tq, C)` at each series' `query_times` `(B, Tq)`, given the
        observations `series` (an [`IrregularSeries`][odezoo.nn.IrregularSeries]), and
        the solve statistics (or `None`). Without a `key`, deterministic (a latent
        model uses its posterior mean)."""


class AbstractLatentModel(AbstractODEModel):
    """A latent-variable model of irregular time series (a variational autoencoder over
    paths): it is trained by its evidence lower bound, and it is generative, sampling
    paths from its prior. The ELBO loss (`odezoo.losses.elbo_loss`), the ELBO metrics
    and the marginal-law evaluation
    ([`evaluate_marginals`][odezoo.metrics.evaluate_marginals]) take any such model.
    """

    @abc.abstractmethod
    def elbo(
        self, series: Any, targets: Any = None, *, key: PRNGKeyArray
    ) -> tuple[Array, SolveStats]:
        """The evidence lower bound per series, `(B,)` (one posterior sample from
        `key`), of `targets` given the observations `series` (both
        [`IrregularSeries`][odezoo.nn.IrregularSeries]; `targets` defaults to `series`
        itself: reconstruction), and the solve statistics."""

    @abc.abstractmethod
    def sample(self, ts: Array, n: int, *, key: PRNGKeyArray, latent: bool = False) -> Array:
        """`n` paths from the prior at times `ts` (increasing, `>= t0`): the values
        `(n, T, C)`, or the latent states `(n, T, latent_size)` when `latent`."""


class AbstractSDEModel(AbstractLatentModel):
    """A latent model whose paths solve a stochastic differential equation. A solve
    depends on its Brownian motion, so no float64 or finer-step solve follows the same
    path: `odezoo.bench.benchmark_adjoints` measures no gradient
    error for such a model."""
