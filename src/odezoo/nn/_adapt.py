"""Dynamics from anywhere: equinox modules, Flax NNX modules and plain functions.

Every ODE model passes the dynamics it is given through [`as_dynamics`][odezoo.nn.as_dynamics],
so a model holds an `equinox.Module` whatever the user wrote, its parameters are array
leaves of the model (seen by `fit`, optax, `save_model` and every adjoint), and no model
branches on the kind. Flax is never imported here: an NNX module is recognised only when
the user has imported Flax already.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from .._errors import InputError


def _nnx():
    """`flax.nnx` if the user has imported Flax, else `None` (never imports it)."""
    if "flax" not in sys.modules:
        return None
    from flax import nnx

    return nnx


class NNXDynamics(eqx.Module):
    """A Flax NNX module `f(t, y)` as an equinox module: `nnx.split` into its graph
    definition (static) and its state (array leaves, so gradients, optimisers and
    serialisation see every parameter); each call `nnx.merge`s them back.

    Build it with [`as_dynamics`][odezoo.nn.as_dynamics], or let a model do it: every
    ODE model accepts an NNX module as its dynamics.

    !!! warning

        State that the module changes while it runs (BatchNorm statistics, an `nnx.Rngs`
        counter for Dropout) is not carried from one evaluation of the vector field to
        the next: an ODE solve evaluates it many times, forwards and, with a backsolve,
        backwards. Use layers without such state as dynamics.

    Arguments:

    - `module`: a `flax.nnx.Module` called as `module(t, y)`.
    """

    graphdef: Any = eqx.field(static=True)
    state: PyTree

    def __init__(self, module):
        nnx = _nnx()
        if nnx is None or not isinstance(module, nnx.Module):
            raise InputError(f"NNXDynamics takes a flax.nnx.Module, got {type(module).__name__}")
        self.graphdef, self.state = nnx.split(module)

    @property
    def module(self):
        """The Flax module with this object's (possibly trained) parameters."""
        return _nnx().merge(self.graphdef, self.state)

    def __call__(self, t, y: Array) -> Array:
        return _nnx().merge(self.graphdef, self.state)(t, y)


class FunctionDynamics(eqx.Module):
    """A plain function of a parameters pytree as an equinox module: `f(t, y, params)`,
    or `f(y, t, params)` (the order of `jax.experimental.ode.odeint` and of the seed
    chapter's `nn_dynamics`) with `time_first=False`. The parameters become array leaves
    of the model; the function is static.

    Arguments:

    - `fn`: the function.
    - `params`: its parameters, a pytree of floating-point arrays (NumPy arrays are
      converted to JAX arrays of the default float dtype).
    - `time_first`: whether `fn` takes `t` before `y` (default) or after.

    Example:

    ```python
    import jax.numpy as jnp, odezoo

    def field(t, y, params):
        w, b = params
        return jnp.tanh(w @ y + b)

    f = odezoo.nn.FunctionDynamics(field, (jnp.eye(2), jnp.zeros(2)))
    dy = f(0.0, jnp.ones(2))
    ```
    """

    fn: Callable = eqx.field(static=True)
    params: PyTree
    time_first: bool = eqx.field(static=True)

    def __init__(self, fn: Callable, params: PyTree, *, time_first: bool = True):
        if not callable(fn):
            raise InputError(f"fn must be a function, got {type(fn).__name__}")
        self.fn = fn
        self.params = _float_params(params)
        self.time_first = bool(time_first)

    def __call__(self, t, y: Array) -> Array:
        if self.time_first:
            return self.fn(t, y, self.params)
        return self.fn(y, t, self.params)


class Autonomous(eqx.Module):
    """A network of the state alone, `net(y)`, as dynamics `f(t, y)` (time unused)."""

    net: eqx.Module

    def __call__(self, t, y: Array) -> Array:
        return self.net(y)


def _float_params(params: PyTree) -> PyTree:
    """`params` with NumPy leaves as JAX arrays; integer or boolean leaves raise."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    for path, leaf in leaves:
        if not eqx.is_array_like(leaf) or isinstance(leaf, bool):
            raise InputError(
                f"params{jax.tree_util.keystr(path)} is a {type(leaf).__name__}: every "
                "leaf of a dynamics function's params must be a floating-point array"
            )
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            raise InputError(
                f"params{jax.tree_util.keystr(path)} has dtype {jnp.result_type(leaf)}: "
                "integer parameters get no gradient; make it a float array, e.g. "
                "jnp.asarray(x, float)"
            )
    return jax.tree_util.tree_map(
        lambda x: jnp.asarray(x) if isinstance(x, np.ndarray | np.generic | float) else x,
        params,
    )


def as_dynamics(dynamics, params: PyTree | None = None, *, time_first: bool = True) -> eqx.Module:
    """The dynamics `f(t, y)` a model integrates, as an equinox module.

    - an `equinox.Module` is returned as it is;
    - a `flax.nnx.Module` becomes an [`NNXDynamics`][odezoo.nn.NNXDynamics];
    - a plain function with its `params` becomes a
      [`FunctionDynamics`][odezoo.nn.FunctionDynamics].

    Every ODE model calls this on the dynamics it is given, so a model's `dynamics=`
    takes an NNX module directly; a plain function goes through here first, to bind its
    parameters.

    Arguments:

    - `dynamics`: an equinox module, an NNX module or a function.
    - `params`: a function's parameters (only with a function).
    - `time_first`: a function's argument order, `f(t, y, params)` (default) or
      `f(y, t, params)`.

    Example: the seed chapter's dynamics and parameters, unchanged.

    ```python
    import jax, jax.numpy as jnp, numpy.random as npr, odezoo

    def mlp(params, inputs):
        for w, b in params:
            outputs = jnp.dot(inputs, w) + b
            inputs = jnp.tanh(outputs)
        return outputs

    def nn_dynamics(state, time, params):
        return mlp(params, jnp.hstack([state, jnp.array(time)]))

    rng = npr.RandomState(0)
    params = [(rng.randn(m, n), rng.randn(n)) for m, n in [(2, 20), (20, 1)]]
    f = odezoo.nn.as_dynamics(nn_dynamics, params, time_first=False)
    net = odezoo.ODENet(1, dynamics=f, key=jax.random.key(0))
    y = net.batch(jnp.linspace(-2.0, 2.0, 10)[:, None])
    ```
    """
    if isinstance(dynamics, eqx.Module):
        if params is not None:
            raise InputError("params are for a plain function; an equinox module holds its own")
        return dynamics
    nnx = _nnx()
    if nnx is not None and isinstance(dynamics, nnx.Module):
        if params is not None:
            raise InputError("params are for a plain function; an NNX module holds its own")
        return NNXDynamics(dynamics)
    if callable(dynamics):
        if params is None:
            raise InputError(
                f"a plain function as dynamics ({getattr(dynamics, '__name__', dynamics)!r}) "
                "needs its parameters: pass odezoo.nn.as_dynamics(f, params) as the dynamics "
                "(params=() for a function without any)"
            )
        return FunctionDynamics(dynamics, params, time_first=time_first)
    raise InputError(
        "dynamics must be an equinox.Module, a flax.nnx.Module or a function f(t, y, params), "
        f"got {type(dynamics).__name__}"
    )


def model_dynamics(
    dynamics,
    shape: tuple[int, ...],
    *,
    what: str,
    t=0.0,
    out_shapes: tuple[tuple[int, ...], ...] | None = None,
) -> eqx.Module:
    """`as_dynamics(dynamics)`, after checking that `f(t, y)` for a state `y` of `shape`
    (in the default float dtype) returns one array of that shape, or of one of
    `out_shapes` when given; otherwise an [`InputError`][odezoo.InputError] naming
    `what`. The check is abstract (`jax.eval_shape`): nothing runs. Every model passes
    the dynamics it is given through here."""
    dynamics = as_dynamics(dynamics)
    out_shapes = (tuple(shape),) if out_shapes is None else out_shapes
    y = jax.ShapeDtypeStruct(shape, jnp.result_type(float))
    try:
        out = jax.eval_shape(lambda y: dynamics(t, y), y)
    except Exception as e:  # the user's code failed on a state of this shape
        raise InputError(
            f"{what}: its dynamics fail on a state of shape {shape}: {type(e).__name__}: {e}"
        ) from e
    wanted = " or ".join(str(s) for s in out_shapes)
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise InputError(
            f"{what}: its dynamics return a {type(out).__name__}; they must return one array "
            f"of shape {wanted}"
        )
    if out.shape not in out_shapes:
        raise InputError(
            f"{what}: its dynamics return shape {out.shape} for a state of shape {shape}; "
            f"they must return shape {wanted} (change the last layer's size)"
        )
    return dynamics
