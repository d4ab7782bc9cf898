"""Benchmark workloads: a model, its weights (drawn in NumPy), a batch and a loss."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from odezoo._solve import solve
from odezoo._solver import Solver
from odezoo.data import cubic, toy2d
from odezoo.nn import CNF, ConvDynamics, ODENet

from .spiral import SPIRAL_T1, SPIRAL_U0, SpiralDynamics, spiral_times, true_spiral

Kind = Literal["toy", "mlp", "cnf", "conv", "spiral"]
KINDS: tuple[str, ...] = ("toy", "mlp", "cnf", "conv", "spiral")


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark problem: an odezoo model, its weights, a batch and a loss.

    Weights are drawn with NumPy (`weights`) and loaded into the odezoo model (`build`),
    so that a peer framework can load exactly the same numbers (see
    `run_peers`). They are named by their path in the odezoo model, e.g.
    `".dynamics.layers[0].weight"`.

    Fields:

    - `name`: the workload's name in tables and on the command line.
    - `kind`: `"toy"` (the seed chapter's cubic regression), `"mlp"` (an ODE-Net with
      [`ConcatMLP`][odezoo.nn.ConcatMLP] dynamics), `"cnf"` (FFJORD 2-D with the exact
      trace) or `"conv"` (an ODE-Net with [`ConvDynamics`][odezoo.nn.ConvDynamics] on
      `(channels, size, size)` states) or `"spiral"` (the DiffEqFlux spiral benchmark: a
      `Dense(2, 50, tanh) -> Dense(50, 2)` field on `u**3`, fitted to a 30-point trajectory,
      Tsit5; `state`, `t1` and `batch` are fixed at 2, 1.5 and 1).
    - `batch`: the batch size.
    - `state`: the state size (`"mlp"`, `"toy"`), data dimension (`"cnf"`) or channels
      (`"conv"`).
    - `width`: hidden width (`"mlp"`, `"toy"`), hidden channels (`"conv"`) or the width
      of each of `depth` hidden layers (`"cnf"`).
    - `depth`: number of hidden layers (convolutions for `"conv"`).
    - `size`: spatial size of a `"conv"` state (unused otherwise).
    - `kernel`: convolution kernel size (`"conv"`).
    - `rtol`, `atol`: the tolerances of the benchmark's solve.
    - `method`: the diffrax solver's name (`"Dopri5"`, or `"Tsit5"` for the spiral).
    - `t1`: the integration interval `[0, t1]` (ODE-Nets; a CNF integrates its own time).
    - `seed`: seed of the NumPy weights and of the batch.
    - `note`: a sentence for the report (e.g. why a CPU batch is smaller).

    Example:

    ```python
    from _harness.workloads import Workload

    wl = Workload("mlp-small", "mlp", batch=32, state=8, width=16, depth=2)
    weights, data = wl.weights(), wl.data()
    model = wl.build(weights)                  # an odezoo.ODENet carrying those weights
    loss, stats = wl.loss(model, data)
    ```
    """

    name: str
    kind: Kind
    batch: int
    state: int
    width: int
    depth: int = 1
    size: int = 7
    kernel: int = 3
    rtol: float = 1e-5
    atol: float = 1e-5
    t1: float = 1.0
    seed: int = 0
    note: str = ""
    method: str = "Dopri5"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown workload kind {self.kind!r}; choose one of {KINDS}")
        for name in ("batch", "state", "width", "depth", "size", "kernel"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"{name} must be a positive int, got {value!r}")

    # -- description --------------------------------------------------------------------

    def describe(self) -> str:
        """One line: the model and sizes."""
        if self.kind == "toy":
            sizes = f"[{self.state}+1, {self.width}, {self.state}]"
            return f"seed toy: ODE-Net {sizes}, batch {self.batch}"
        if self.kind == "mlp":
            return (
                f"ODE-Net, ConcatMLP dynamics: state {self.state}, width {self.width} x "
                f"{self.depth}, batch {self.batch}"
            )
        if self.kind == "spiral":
            return (
                f"DiffEqFlux spiral: Dense(2, {self.width}, tanh) -> Dense({self.width}, 2) "
                f"on u^3, {self.method}, loss over 30 save points on [0, 1.5]"
            )
        if self.kind == "cnf":
            hidden = "x".join([str(self.width)] * self.depth)
            return f"FFJORD {self.state}-D, exact trace, ConcatSquash {hidden}, batch {self.batch}"
        return (
            f"ODE-Net, conv dynamics: {self.state} ch of {self.size}x{self.size}, "
            f"{self.kernel}x{self.kernel} kernels, {self.depth} hidden conv(s) of "
            f"{self.width} ch, batch {self.batch}"
        )

    def solver(self, **changes: Any) -> Solver:
        """The benchmark's default solver (`method` at `rtol`, `atol`), with `changes`."""
        import diffrax

        method = getattr(diffrax, self.method)()
        return Solver(solver=method, rtol=self.rtol, atol=self.atol).replace(**changes)

    # -- model ---------------------------------------------------------------------------

    def template(self, solver: Solver | None = None) -> eqx.Module:
        """The odezoo model with equinox's own initialisation (structure only)."""
        solver = self.solver() if solver is None else solver
        key = jax.random.key(0)
        if self.kind in ("toy", "mlp"):
            return ODENet(
                self.state,
                width_size=self.width,
                depth=self.depth,
                t1=self.t1,
                solver=solver,
                key=key,
            )
        if self.kind == "spiral":
            dyn = SpiralDynamics(self.width, key=key)
            return ODENet(2, dynamics=dyn, t1=SPIRAL_T1, solver=solver, key=key)
        if self.kind == "cnf":
            return CNF(
                self.state,
                hidden=(self.width,) * self.depth,
                trace="exact",
                time=0.5,
                solver=solver,
                key=key,
            )
        dyn = ConvDynamics(self.state, self.width, self.kernel, self.depth, key=key)
        return ODENet(
            (self.state, self.size, self.size), dynamics=dyn, t1=self.t1, solver=solver, key=key
        )

    def weights(self) -> dict[str, np.ndarray]:
        """The model's parameters, drawn with NumPy from `seed`, by name (float32).

        Weights and biases of linear and convolutional layers are uniform in
        `±1/sqrt(fan_in)` (PyTorch's and equinox's default); the seed toy draws them
        N(0, 1) as the seed chapter does. FFJORD's `shift` is uniform in `±1` and the
        CNF's integration time is 0.5.
        """
        rng = np.random.default_rng(self.seed)
        shapes = {name: leaf.shape for name, leaf in _named_leaves(self.template()).items()}
        out: dict[str, np.ndarray] = {}
        for name, shape in shapes.items():
            if name.endswith("sqrt_time"):
                value = np.full(shape, math.sqrt(0.5))
            elif name.endswith("shift"):
                value = rng.uniform(-1.0, 1.0, shape)
            elif self.kind == "toy":
                value = rng.standard_normal(shape)
            else:
                weight_shape = (
                    shapes[name[: -len("bias")] + "weight"] if name.endswith("bias") else shape
                )
                bound = 1.0 / math.sqrt(int(np.prod(weight_shape[1:])))
                value = rng.uniform(-bound, bound, shape)
            out[name] = value.astype(np.float32)
        return out

    def build(
        self,
        weights: dict[str, np.ndarray],
        solver: Solver | None = None,
        dtype: Any = jnp.float32,
    ) -> eqx.Module:
        """The odezoo model carrying `weights` (cast to `dtype`), solved by `solver`."""
        model = self.template(solver)
        named = _named_leaves(model)
        if set(named) != set(weights):
            raise ValueError(
                f"weights do not match {self.name}: missing {sorted(set(named) - set(weights))}, "
                f"unexpected {sorted(set(weights) - set(named))}"
            )
        leaves, treedef = jax.tree_util.tree_flatten(eqx.filter(model, eqx.is_array))
        paths = list(named)
        for name, leaf in zip(paths, leaves, strict=True):
            if tuple(weights[name].shape) != tuple(leaf.shape):
                raise ValueError(f"{name}: shape {weights[name].shape}, expected {leaf.shape}")
        new = [jnp.asarray(weights[name], dtype) for name in paths]
        params = jax.tree_util.tree_unflatten(treedef, new)
        return eqx.combine(params, model)

    # -- data and loss -------------------------------------------------------------------

    def data(self) -> dict[str, np.ndarray]:
        """One batch: `{"x": inputs}` plus `{"y": targets}` for regression (NumPy)."""
        rng = np.random.default_rng(self.seed + 1)
        if self.kind == "toy":
            x, y = cubic(self.batch)
            return {"x": np.asarray(x), "y": np.asarray(y)}
        if self.kind == "spiral":  # one trajectory: (1, 2) and (30, 1, 2), time first
            x = np.asarray([SPIRAL_U0], np.float32)
            return {"x": x, "y": true_spiral()[:, None, :]}
        if self.kind == "mlp":
            x = rng.standard_normal((self.batch, self.state))
            y = rng.standard_normal((self.batch, self.state))
        elif self.kind == "cnf":
            with jax.enable_x64(False):  # the same samples whatever the caller's mode
                x = np.asarray(toy2d("checkerboard", self.batch, key=jax.random.key(self.seed)))
            return {"x": x.astype(np.float32)}
        else:
            shape = (self.batch, self.state, self.size, self.size)
            x = rng.standard_normal(shape)
            y = rng.standard_normal(shape)
        return {"x": x.astype(np.float32), "y": y.astype(np.float32)}

    def loss(self, model: eqx.Module, data: dict[str, Any]):
        """`(loss, SolveStats)`: the squared error of an ODE-Net's output (summed over
        features, averaged over the batch, as in the seed chapter) or a CNF's mean
        negative log-likelihood."""
        if self.kind == "spiral":  # the trajectory at the save points, not only y(t1)
            field, y0, t0, t1, batched = model.ode(data["x"])
            ts = jnp.asarray(spiral_times(), jnp.asarray(data["x"]).dtype)
            out, stats = solve(model.solver, field, y0, t0=t0, t1=t1, ts=ts, batched=batched)
            return self.loss_from_output(out, data), stats
        out, stats = model.apply(data["x"])
        return self.loss_from_output(out, data), stats

    def loss_from_output(self, out, data: dict[str, Any]):
        """The loss from the model's output (ODE-Net prediction, or CNF log-density)."""
        if self.kind == "cnf":
            return -jnp.mean(out)
        if self.kind == "spiral":  # DiffEqFlux's sum(abs2, data .- pred)
            return jnp.sum((out - data["y"]) ** 2)
        err = (out - data["y"]).reshape(out.shape[0], -1)
        return jnp.mean(jnp.sum(err**2, axis=1))

    def cnf_log_prob(self, z, logdet):
        """A CNF's log-density from its final state `z` and accumulated trace `logdet`
        (for peers that solve the ODE themselves)."""
        d = z.shape[-1]
        return -0.5 * jnp.sum(z**2, axis=-1) - 0.5 * d * math.log(2 * math.pi) + logdet


def _named_leaves(model: eqx.Module) -> dict[str, Any]:
    params = eqx.filter(model, eqx.is_array)
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return {jax.tree_util.keystr(path): leaf for path, leaf in flat}


def workloads(quick: bool = False, platform: str = "cpu") -> dict[str, Workload]:
    """The benchmark's workloads, by name.

    Arguments:

    - `quick`: tiny sizes that check the harness in seconds (not for timings).
    - `platform`: `"cpu"` or `"gpu"`. On a CPU the conv workload uses batch 8 instead
      of 128; it is recorded in its `note`.

    Returns:

    `{name: Workload}` for `"toy"`, `"mlp"`, `"cnf"`, `"conv"` and `"spiral"` (the
    DiffEqFlux spiral, the same size in both modes: it is small).
    """
    spiral = Workload(
        "spiral",
        "spiral",
        batch=1,
        state=2,
        width=50,
        t1=SPIRAL_T1,
        rtol=1e-3,
        atol=1e-6,
        method="Tsit5",
        note="DiffEqFlux's benchmark: Tsit5 at the Julia defaults rtol 1e-3, atol 1e-6; "
        "DiffEqFlux.jl documents 2.09 ms for its fastest gradient (backsolve, Julia, its "
        "own hardware)",
    )
    if quick:
        wls = [
            Workload("toy", "toy", batch=10, state=1, width=20, rtol=1e-6, atol=1e-6),
            Workload("mlp", "mlp", batch=16, state=8, width=16, depth=2),
            Workload("cnf", "cnf", batch=16, state=2, width=8, depth=2),
            Workload("conv", "conv", batch=2, state=4, width=4, size=5),
            spiral,
        ]
        return {w.name: w for w in wls}
    conv_batch = 8 if platform == "cpu" else 128
    conv_note = (
        "batch 8 on CPU (128 on GPU): the issue's batch 128 is too slow for a 2-core CPU"
        if platform == "cpu"
        else ""
    )
    wls = [
        Workload(
            "toy",
            "toy",
            batch=10,
            state=1,
            width=20,
            rtol=1.4e-8,
            atol=1.4e-8,
            note="the seed chapter's tolerance, jax.experimental.ode's default 1.4e-8",
        ),
        Workload("mlp", "mlp", batch=1024, state=64, width=256, depth=2),
        Workload("cnf", "cnf", batch=512, state=2, width=64, depth=3),
        Workload("conv", "conv", batch=conv_batch, state=64, width=64, size=7, note=conv_note),
        spiral,
    ]
    return {w.name: w for w in wls}
