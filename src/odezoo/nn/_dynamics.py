"""Dynamics networks `f(t, y)`: the vector fields that ODE models integrate."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._errors import InputError
from ._arguments import as_int
from ._mlp import linear_stack


class ConcatMLP(eqx.Module):
    """An MLP on the state with time appended: `f(t, y) = MLP([y, t])`.

    The seed chapter's `nn_dynamics` (layer sizes `[size + 1, width, size]`).

    Arguments:

    - `size`: state size (input and output of `f`).
    - `width_size`: hidden width.
    - `depth`: number of hidden layers.
    - `activation`: hidden activation (default `tanh`).
    - `init`, `init_scale`: as for [`MLP`][odezoo.MLP].
    - `key`: a JAX PRNG key.

    Example:

    ```python
    import jax, odezoo

    f = odezoo.nn.ConcatMLP(2, width_size=32, key=jax.random.key(0))
    dy = f(0.0, jax.numpy.zeros(2))
    ```
    """

    layers: tuple[eqx.nn.Linear, ...]
    activation: Callable = eqx.field(static=True)

    def __init__(
        self,
        size: int,
        width_size: int = 20,
        depth: int = 1,
        *,
        activation: Callable = jnp.tanh,
        init: str = "default",
        init_scale: float = 1.0,
        key: PRNGKeyArray,
    ):
        size = as_int("size", size, minimum=1)
        depth = as_int("depth", depth, minimum=0)
        if depth > 0:
            width_size = as_int("width_size", width_size, minimum=1)
        sizes = [size + 1] + [width_size] * depth + [size]
        self.layers = linear_stack(sizes, init=init, scale=init_scale, key=key)
        self.activation = activation

    def __call__(self, t, y: Array) -> Array:
        h = jnp.concatenate([y, jnp.reshape(jnp.asarray(t, y.dtype), (1,))])
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        return self.layers[-1](h)


class ConcatSquashLinear(eqx.Module):
    """FFJORD's time-conditioned layer: `Linear(x) * sigmoid(W_g t + b_g) + W_b t`.

    Arguments:

    - `in_size`, `out_size`: sizes.
    - `key`: a JAX PRNG key.
    """

    linear: eqx.nn.Linear
    gate: eqx.nn.Linear
    shift: Array

    def __init__(self, in_size: int, out_size: int, *, key: PRNGKeyArray):
        k1, k2, k3 = jax.random.split(key, 3)
        self.linear = eqx.nn.Linear(in_size, out_size, key=k1)
        self.gate = eqx.nn.Linear(1, out_size, key=k2)
        self.shift = jax.random.uniform(k3, (out_size,), minval=-1.0, maxval=1.0)

    def __call__(self, t, x: Array) -> Array:
        tt = jnp.reshape(jnp.asarray(t, x.dtype), (1,))
        return self.linear(x) * jax.nn.sigmoid(self.gate(tt)) + self.shift * tt


class ConcatSquashMLP(eqx.Module):
    """A stack of [`ConcatSquashLinear`][odezoo.nn.ConcatSquashLinear] layers: FFJORD's
    toy dynamics (hidden sizes 64-64-64, tanh).

    Arguments:

    - `size`: state size.
    - `hidden`: hidden layer sizes, e.g. `(64, 64, 64)`.
    - `activation`: hidden activation (default `tanh`).
    - `key`: a JAX PRNG key.

    Example:

    ```python
    import jax, odezoo

    f = odezoo.nn.ConcatSquashMLP(2, (64, 64, 64), key=jax.random.key(0))
    dz = f(0.5, jax.numpy.ones(2))
    ```
    """

    layers: tuple[ConcatSquashLinear, ...]
    activation: Callable = eqx.field(static=True)

    def __init__(
        self,
        size: int,
        hidden: tuple[int, ...] = (64, 64, 64),
        *,
        activation: Callable = jnp.tanh,
        key: PRNGKeyArray,
    ):
        size = as_int("size", size, minimum=1)
        hidden = tuple(as_int(f"hidden[{i}]", h, minimum=1) for i, h in enumerate(hidden))
        sizes = [size, *hidden, size]
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(
            ConcatSquashLinear(a, b, key=k)
            for a, b, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        )
        self.activation = activation

    def __call__(self, t, z: Array) -> Array:
        for layer in self.layers[:-1]:
            z = self.activation(layer(t, z))
        return self.layers[-1](t, z)


class _Conv(eqx.Module):
    """A 'same'-padded 2-D convolution written as shifted slices plus one matmul
    (im2col), computed channels-last.

    On CPU, XLA differentiates `lax.conv_general_dilated` inside a solver loop much more
    slowly than an im2col form, a matmul it differentiates as a matmul. Channels-last
    matters too: the patches of an `(H, W, C)` image are one concatenation along the last
    axis and the product is a plain `(H*W, K*K*C) @ (K*K*C, out)` matmul, which under the
    batch's `vmap` becomes one matmul over all examples, where channels-first needs a
    transpose per evaluation. (The conv workload's training step with this form is timed
    in benchmarks/results/adjoints.md and floor.md; the comparison with
    `lax.conv_general_dilated` and with channels-first has no results file.) Weights keep
    PyTorch's `(out, in, k, k)` layout.
    """

    weight: Array  # (out, in, k, k)
    bias: Array  # (out,)
    kernel_size: int = eqx.field(static=True)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, key):
        if kernel_size % 2 != 1:
            raise InputError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        conv = eqx.nn.Conv2d(in_channels, out_channels, kernel_size, padding="SAME", key=key)
        self.weight = conv.weight
        self.bias = conv.bias.reshape(-1)
        self.kernel_size = kernel_size

    def __call__(self, x: Array) -> Array:
        """Convolve one `(C, H, W)` image."""
        return jnp.transpose(self.hwc(jnp.transpose(x, (1, 2, 0))), (2, 0, 1))

    def hwc(self, x: Array) -> Array:
        """Convolve one channels-last `(H, W, C)` image."""
        k = self.kernel_size
        h, w, c = x.shape
        p = k // 2
        xp = jnp.pad(x, ((p, p), (p, p), (0, 0)))
        patches = jnp.concatenate(
            [xp[i : i + h, j : j + w, :] for i in range(k) for j in range(k)], axis=-1
        )  # (h, w, k*k*c), ordered (i, j, channel) like the weight below
        weight = jnp.transpose(self.weight, (2, 3, 1, 0)).reshape(k * k * c, -1)
        out = patches.reshape(h * w, k * k * c) @ weight + self.bias
        return out.reshape(h, w, -1)


def _conv_stack(channels, hidden_channels, kernel_size, depth, extra_in, key):
    """`depth` hidden convolutions and one back to `channels`, each taking `extra_in`
    more input channels (the time channel of dynamics)."""
    channels = as_int("channels", channels, minimum=1)
    hidden_channels = as_int("hidden_channels", hidden_channels, minimum=1)
    kernel_size = as_int("kernel_size", kernel_size, minimum=1)
    depth = as_int("depth", depth, minimum=0)
    sizes = [channels] + [hidden_channels] * depth + [channels]
    keys = jax.random.split(key, len(sizes) - 1)
    return tuple(
        _Conv(a + extra_in, b, kernel_size, key=k)
        for a, b, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
    )


def _run_convs(convs, activation, h: Array, extra: Array | None = None) -> Array:
    """Apply the stack to one `(C, H, W)` image, concatenating the `(E, H, W)` channels
    `extra` to every convolution's input. Runs channels-last inside (one transpose in,
    one out)."""
    h = jnp.transpose(h, (1, 2, 0))
    extra = None if extra is None else jnp.transpose(extra, (1, 2, 0))
    for i, conv in enumerate(convs):
        h = conv.hwc(h if extra is None else jnp.concatenate([h, extra], axis=-1))
        if i < len(convs) - 1:
            h = activation(h)
    return jnp.transpose(h, (2, 0, 1))


class ConvBlock(eqx.Module):
    """A residual convolutional block without time: `conv(act(conv(x)))`-style, for a
    [`ResNet`][odezoo.ResNet] on image features (the discrete counterpart of
    [`ConvDynamics`][odezoo.nn.ConvDynamics]).

    Arguments:

    - `channels`: input and output channels.
    - `hidden_channels`: channels of the hidden convolutions.
    - `kernel_size`: odd kernel size ('same' padding).
    - `depth`: number of hidden convolutions.
    - `activation`: hidden activation (default `tanh`).
    - `key`: a JAX PRNG key.

    Example:

    ```python
    import jax, odezoo

    block = odezoo.nn.ConvBlock(8, 16, key=jax.random.key(0))
    dx = block(jax.numpy.zeros((8, 6, 6)))
    ```
    """

    convs: tuple[_Conv, ...]
    activation: Callable = eqx.field(static=True)

    def __init__(
        self,
        channels: int,
        hidden_channels: int = 32,
        kernel_size: int = 3,
        depth: int = 1,
        *,
        activation: Callable = jnp.tanh,
        key: PRNGKeyArray,
    ):
        self.convs = _conv_stack(channels, hidden_channels, kernel_size, depth, 0, key)
        self.activation = activation

    def __call__(self, x: Array) -> Array:
        return _run_convs(self.convs, self.activation, x)


class ConvDynamics(eqx.Module):
    """Convolutional dynamics for image states `(C, H, W)`, with time as an extra channel.

    `f(t, y) = conv(act(conv(act(conv([y, t])))))`-style: `depth` hidden convolutions of
    `hidden_channels`, each fed the time channel, then a convolution back to `channels`.

    Arguments:

    - `channels`: state channels (input and output).
    - `hidden_channels`: channels of the hidden convolutions.
    - `kernel_size`: odd kernel size ('same' padding).
    - `depth`: number of hidden convolutions.
    - `activation`: hidden activation (default `tanh`).
    - `key`: a JAX PRNG key.

    Example:

    ```python
    import jax, odezoo

    f = odezoo.nn.ConvDynamics(8, 16, key=jax.random.key(0))
    dy = f(0.0, jax.numpy.zeros((8, 8, 8)))
    ```
    """

    convs: tuple[_Conv, ...]
    activation: Callable = eqx.field(static=True)

    def __init__(
        self,
        channels: int,
        hidden_channels: int = 32,
        kernel_size: int = 3,
        depth: int = 1,
        *,
        activation: Callable = jnp.tanh,
        key: PRNGKeyArray,
    ):
        self.convs = _conv_stack(channels, hidden_channels, kernel_size, depth, 1, key)
        self.activation = activation

    def __call__(self, t, y: Array) -> Array:
        tt = jnp.broadcast_to(jnp.asarray(t, y.dtype), (1, *y.shape[1:]))
        return _run_convs(self.convs, self.activation, y, extra=tt)
