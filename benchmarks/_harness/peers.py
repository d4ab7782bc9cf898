"""Peers: torchdiffeq (`odeint`, `odeint_adjoint`) and `jax.experimental.ode.odeint` on
the same workloads with the same weights.

PyTorch, torchdiffeq and torchode are the optional extra `benchmarks` (`pip install -e
".[benchmarks]"` in a checkout); without them the torch contenders are skipped and said
so in the output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from odezoo._adjoint import AutoAdjoint
from odezoo.bench._measure import compile_fn, interleaved_timing, make_optimizer, relative_error
from odezoo.bench._report import cpu_count
from odezoo.bench._strategies import strategies

from .defaults import CONTENDERS
from .measure import train_step
from .spiral import spiral_times
from .workloads import Workload

INSTALL = "pip install -e '.[benchmarks]' in a checkout"
"""How to install the torch contenders (said when one is skipped)."""


def torch_available() -> str | None:
    """`None` when torch and torchdiffeq import, else the reason they do not."""
    try:
        import torch  # noqa: F401
        import torchdiffeq  # noqa: F401
    except Exception as e:  # ImportError, or a broken install
        return f"{type(e).__name__}: {e}"
    return None


def jax_ode_available() -> str | None:
    """`None` when `jax.experimental.ode.odeint` exists in this jax, else why not."""
    try:
        from jax.experimental.ode import odeint  # noqa: F401
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


# -- torch models -------------------------------------------------------------------------


def torch_field(workload: Workload, weights: dict[str, np.ndarray]):
    """A `torch.nn.Module` computing the workload's vector field on a batch, with the
    same weights as the odezoo model, and counting its calls in `.nfe`.

    Its `forward(t, y)` takes the batched state (a tensor, or for the CNF the pair
    `(z, logdet)` whose derivative is `(dz, trace)` with the trace computed exactly,
    as FFJORD does, by one autograd pass per dimension).
    """
    import torch
    from torch import nn

    def param(name):
        return nn.Parameter(torch.tensor(np.array(weights[name], np.float32)))

    class Field(nn.Module):
        def __init__(self):
            super().__init__()
            self.nfe = 0
            self.kind = workload.kind
            self.params = nn.ParameterDict({_torch_name(k): param(k) for k in weights})
            self.weight_names = list(weights)

        def p(self, name):
            return self.params[_torch_name(name)]

        def _mlp(self, t, y):
            # t: a scalar, or one time per example (torchode)
            h = torch.cat([y, t.reshape(-1, 1).expand(y.shape[0], 1)], dim=1)
            n = workload.depth + 1
            for i in range(n):
                w = self.p(f".dynamics.layers[{i}].weight")
                b = self.p(f".dynamics.layers[{i}].bias")
                h = torch.nn.functional.linear(h, w, b)
                if i < n - 1:
                    h = torch.tanh(h)
            return h

        def _conv(self, t, y):
            tt = t.reshape(-1, 1, 1, 1).expand(y.shape[0], 1, *y.shape[2:])
            h = y
            n = workload.depth + 1
            for i in range(n):
                w = self.p(f".dynamics.convs[{i}].weight")
                b = self.p(f".dynamics.convs[{i}].bias")
                h = torch.nn.functional.conv2d(
                    torch.cat([h, tt], dim=1), w, b, padding=workload.kernel // 2
                )
                if i < n - 1:
                    h = torch.tanh(h)
            return h

        def _squash(self, s, z):
            T = self.p(".fields[0].sqrt_time") ** 2
            t = (T * s).reshape(-1, 1)
            h = z
            n = workload.depth + 1
            for i in range(n):
                pre = f".fields[0].dynamics.layers[{i}]."
                lin = torch.nn.functional.linear(
                    h, self.p(pre + "linear.weight"), self.p(pre + "linear.bias")
                )
                gate = torch.nn.functional.linear(
                    t, self.p(pre + "gate.weight"), self.p(pre + "gate.bias")
                )
                h = lin * torch.sigmoid(gate) + self.p(pre + "shift") * t
                if i < n - 1:
                    h = torch.tanh(h)
            return T * h

        def _spiral(self, t, y):
            h = torch.nn.functional.linear(
                y**3, self.p(".dynamics.layers[0].weight"), self.p(".dynamics.layers[0].bias")
            )
            return torch.nn.functional.linear(
                torch.tanh(h),
                self.p(".dynamics.layers[1].weight"),
                self.p(".dynamics.layers[1].bias"),
            )

        def forward(self, t, y):
            self.nfe += 1
            if self.kind == "spiral":
                return self._spiral(t, y)
            if self.kind in ("toy", "mlp"):
                return self._mlp(t, y)
            if self.kind == "conv":
                return self._conv(t, y)
            z, _ = y
            with torch.enable_grad():
                if not z.requires_grad:
                    z = z.requires_grad_(True)
                dz = self._squash(t, z)
                tr = torch.zeros(z.shape[0], dtype=z.dtype)
                for i in range(z.shape[1]):
                    tr = tr + torch.autograd.grad(dz[:, i].sum(), z, create_graph=True)[0][:, i]
            return dz, tr

    return Field()


def _torch_name(name: str) -> str:
    return name.strip(".").replace(".", "_").replace("[", "_").replace("]", "")


def torch_loss(workload: Workload, field, data: dict[str, Any], solve: Callable):
    """The workload's loss in torch; `solve(field, y0, t)` returns the states at `t`."""
    import torch

    x = torch.tensor(data["x"])
    if workload.kind == "spiral":
        ys = solve(field, x, torch.tensor(np.asarray(spiral_times())))
        return ((ys - torch.tensor(data["y"])) ** 2).sum()
    if workload.kind == "cnf":
        t = torch.tensor([0.0, 1.0])
        z1, logdet1 = solve(field, (x, torch.zeros(x.shape[0])), t)
        z, logdet = z1[-1], logdet1[-1]
        d = z.shape[1]
        logp = -0.5 * (z**2).sum(1) - 0.5 * d * math.log(2 * math.pi) + logdet
        return -logp.mean()
    t = torch.tensor([0.0, workload.t1])
    y1 = solve(field, x, t)[-1]
    err = (y1 - torch.tensor(data["y"])).reshape(x.shape[0], -1)
    return (err**2).sum(1).mean()


def torch_contenders(
    workload: Workload,
    weights: dict[str, np.ndarray],
    *,
    optimizer: str = "sgd",
    learning_rate: float = 1e-3,
) -> dict[str, dict[str, Any]]:
    """torchdiffeq `odeint` and `odeint_adjoint` training steps (Dopri5 at the workload's
    tolerances, loss + backward + optimizer step), each as `{"run": callable, ...}`.

    Every `run()` first restores the initial weights, so all calls do the same work.
    """
    import torchdiffeq

    data = workload.data()
    out = {}
    for name, odeint in (
        ("torchdiffeq-odeint", torchdiffeq.odeint),
        ("torchdiffeq-adjoint", torchdiffeq.odeint_adjoint),
    ):
        field = torch_field(workload, weights)
        solve = lambda f, y0, t, odeint=odeint: odeint(
            f, y0, t, rtol=workload.rtol, atol=workload.atol, method="dopri5"
        )
        out[name] = _torch_runner(workload, field, data, solve, optimizer, learning_rate)
    return out


def _torch_runner(workload, field, data, solve, optimizer, learning_rate):
    """`{"run", "nfe"}` of a torch training step: restore the initial weights, loss,
    backward, optimizer step."""
    import torch

    init = [p.detach().clone() for p in field.parameters()]
    cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    opt = cls(field.parameters(), lr=learning_rate)

    def run(field=field, opt=opt, solve=solve, init=init):
        with torch.no_grad():
            for p, p0 in zip(field.parameters(), init, strict=True):
                p.copy_(p0)
        opt.zero_grad()
        loss = torch_loss(workload, field, data, solve)
        loss.backward()
        opt.step()
        return loss.item()

    def nfe(field=field, solve=solve, init=init):
        with torch.no_grad():
            for p, p0 in zip(field.parameters(), init, strict=True):
                p.copy_(p0)
        field.nfe = 0
        loss = torch_loss(workload, field, data, solve)
        fwd = field.nfe
        loss.backward()
        return {"forward": fwd, "backward_evals": field.nfe - fwd}

    def grad(field=field, solve=solve, init=init):
        with torch.no_grad():
            for p, p0 in zip(field.parameters(), init, strict=True):
                p.copy_(p0)
        field.zero_grad()
        loss = torch_loss(workload, field, data, solve)
        loss.backward()
        # in the order of the odezoo model's leaves (the order of `weights`)
        return np.concatenate(
            [np.ravel(field.params[_torch_name(k)].grad.cpu().numpy()) for k in names]
        ).astype(np.float64)

    names = list(field.weight_names)
    return {"run": run, "nfe": nfe, "grad": grad}


def use_torch_device() -> str:
    """Put PyTorch's new tensors on the GPU when JAX runs on one and PyTorch sees it
    (so that the peers run on the same device as odezoo); returns the device used."""
    import torch

    device = "cpu"
    if jax.devices()[0].platform == "gpu" and torch.cuda.is_available():  # pragma: no cover
        device = "cuda"
    torch.set_default_device(device)
    return device


def torchode_available() -> str | None:
    """`None` when torch and torchode import, else the reason they do not."""
    try:
        import torch  # noqa: F401
        import torchode  # noqa: F401
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


TORCHODE_MODE = "compile"
"""How torchode runs: `"compile"` (`torch.compile` of its solver, the mode its README
recommends) or `"eager"`. On a loaded 2-core CPU, 1 PyTorch thread, timed in
alternation, the two were within 1% (spiral 8.27 against 8.34 ms per step, toy 17.4
against 17.5 ms): the solver's data-dependent loop leaves little for the compiler on a
CPU. `"compile"` is kept as the default, as torchode's own recommendation and for GPUs,
where fewer kernel launches can matter. See `torchode_contender`."""


def torchode_solve(workload: Workload, mode: str = TORCHODE_MODE) -> Callable:
    """`solve(field, y0, t) -> states at t` (time first) with torchode: its
    `AutoDiffAdjoint` (backpropagation through the solver, torchode's only adjoint),
    `Tsit5`/`Dopri5` as the workload's method, an `IntegralController` at the
    workload's tolerances with per-example step sizes (torchode's design), and
    `backprop_through_step_size_control=False` (its faster setting: the step-size
    controller is not differentiated, as in diffrax). States are flattened to
    `(batch, features)`, the CNF's pair `(z, logdet)` concatenated."""
    import torch
    import torchode as to

    built: dict[tuple, Any] = {}

    def solve(field, y0, t):
        pair = isinstance(y0, tuple)
        if pair:
            z0, l0 = y0
            d = z0.shape[1]
            flat0 = torch.cat([z0, l0[:, None]], dim=1)
            shape = None
        else:
            shape = y0.shape[1:]
            flat0 = y0.reshape(y0.shape[0], -1)

        cache_key = (id(field), tuple(flat0.shape))
        if cache_key not in built:  # one solver per field, so that compilation is reused

            def f(tt, y):
                if pair:
                    dz, tr = field(tt, (y[:, :d], y[:, d]))
                    return torch.cat([dz, tr[:, None]], dim=1)
                return field(tt, y.reshape(y.shape[0], *shape)).reshape(y.shape[0], -1)

            term = to.ODETerm(f)
            method = (to.Tsit5 if workload.method == "Tsit5" else to.Dopri5)(term=term)
            ctrl = to.IntegralController(atol=workload.atol, rtol=workload.rtol, term=term)
            adjoint = to.AutoDiffAdjoint(method, ctrl, backprop_through_step_size_control=False)
            if mode == "compile":
                adjoint = torch.compile(adjoint)
            built[cache_key] = adjoint
        adjoint = built[cache_key]
        t_eval = t.to(flat0.dtype).expand(flat0.shape[0], t.shape[0])
        sol = adjoint.solve(to.InitialValueProblem(y0=flat0, t_eval=t_eval))
        ys = sol.ys.transpose(0, 1)  # (T, B, F)
        if pair:
            return ys[..., :d], ys[..., d]
        return ys.reshape(ys.shape[0], ys.shape[1], *shape)

    return solve


def torchode_contender(
    workload: Workload,
    weights: dict[str, np.ndarray],
    *,
    optimizer: str = "sgd",
    learning_rate: float = 1e-3,
    mode: str = TORCHODE_MODE,
) -> dict[str, Any]:
    """A torchode training step on the same field and weights as the torch contenders
    (see `torchode_solve`), as `{"run": callable, "nfe": callable}`."""
    field = torch_field(workload, weights)
    return _torch_runner(
        workload, field, workload.data(), torchode_solve(workload, mode), optimizer, learning_rate
    )


def torch_euler_check(
    workload: Workload, weights: dict[str, np.ndarray], steps: int = 8
) -> dict[str, float]:
    """Same weights, same discretisation: fixed-step Euler with `steps` steps in odezoo
    (diffrax) and torchdiffeq. Returns the relative differences of the losses and of
    the parameter gradients (float32: expect about 1e-6)."""
    import torchdiffeq

    data = workload.data()
    span = 1.0 if workload.kind == "cnf" else workload.t1
    dt = span / steps
    field = torch_field(workload, weights)
    loss_t = torch_loss(
        workload,
        field,
        data,
        lambda f, y0, t: torchdiffeq.odeint(f, y0, t, method="euler", options={"step_size": dt}),
    )
    loss_t.backward()
    grads_t = {name: p.grad.cpu().numpy() for name, p in field.params.items()}

    from odezoo._solver import Solver

    solver = Solver(solver=diffrax.Euler(), dt0=dt, max_steps=steps + 1)
    model = workload.build(weights, solver)
    params, static = eqx.partition(model, eqx.is_array)
    d = {k: jnp.asarray(v) for k, v in data.items()}
    (loss_j, _), grads_j = jax.value_and_grad(
        lambda p: workload.loss(eqx.combine(p, static), d), has_aux=True
    )(params)
    flat, _ = jax.tree_util.tree_flatten_with_path(grads_j)
    named = {_torch_name(jax.tree_util.keystr(k)): np.asarray(v) for k, v in flat}
    order = sorted(named)
    gj = np.concatenate([np.ravel(named[k]) for k in order])
    gt = np.concatenate([np.ravel(grads_t[k]) for k in order])
    return {
        "euler_steps": steps,
        "loss_odezoo": float(loss_j),
        "loss_torch": loss_t.item(),
        "loss_rel_diff": abs(float(loss_j) - loss_t.item()) / max(abs(loss_t.item()), 1e-30),
        "grad_rel_diff": relative_error(gj, gt.astype(np.float64)),
    }


# -- jax.experimental.ode -----------------------------------------------------------------


def jax_ode_step(
    workload: Workload,
    weights: dict[str, np.ndarray],
    optimizer: str = "sgd",
    dtype: Any = jnp.float32,
):
    """A jitted training step with `jax.experimental.ode.odeint` (its own Dopri5 and
    backsolve adjoint) on the same field and weights, as `(step, args)`; `step` returns
    `(params, opt_state, loss, grads)`. Weights and data are cast to `dtype` (float64
    needs `jax.enable_x64`)."""
    import optax
    from jax.experimental.ode import odeint

    model = workload.build(weights, dtype=dtype)
    opt = make_optimizer(optimizer)
    x0 = jnp.asarray(workload.data()["x"], dtype)
    field, _, t0, t1, _ = model.ode(x0)
    params, static = eqx.partition(field, eqx.is_array)

    def loss_fn(p, data):
        _, y0, _, _, _ = model.ode(data["x"])
        func = lambda y, t, q: jax.vmap(lambda yi: eqx.combine(q, static)(t, yi, None))(y)
        spiral = workload.kind == "spiral"
        ts = spiral_times() if spiral else jnp.array([t0, t1], dtype)
        ys = odeint(func, y0, ts, p, rtol=workload.rtol, atol=workload.atol)
        if spiral:  # the loss over every save point
            return workload.loss_from_output(ys, data)
        y1 = jax.tree_util.tree_map(lambda v: v[-1], ys)
        if workload.kind == "cnf":
            return -jnp.mean(workload.cnf_log_prob(y1[0], y1[1]))
        return workload.loss_from_output(y1, data)

    def step(p, opt_state, data):
        loss, grads = jax.value_and_grad(loss_fn)(p, data)
        updates, opt_state = opt.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss, grads

    data = {k: jnp.asarray(v, dtype) for k, v in workload.data().items()}
    return step, (params, opt.init(params), data)


ODEZOO_CONTENDERS: dict[str, dict[str, Any]] = {
    "odezoo": {},
    "odezoo-backsolve": {"adjoint": "backsolve"},
    # odezoo's default as it ran before the benchmark's initial-step fix
    # (docs/benchmarks.md).
    "odezoo-unfixed": {"dt0": 0.01},
}


def _odezoo_contender(wl: Workload, weights, solver, optimizer: str, info: dict) -> Callable:
    """odezoo's training step with `solver`, compiled; fills `info` (compile time, loss,
    forward NFE) and returns the function to time.

    A solver with `adjoint="auto"` is timed as [`fit`][odezoo.train.fit] runs it: a call
    is a block of `check_every` steps, one `"checked"` and the rest with the adjoint its
    check chose (`info["steps_per_call"]`, by which `run_peers` divides the times). The
    benchmark repeats one batch and one set of weights, so every block's check decides
    alike."""

    def compiled_step(s):
        step, args = train_step(wl, wl.build(weights, s), make_optimizer(optimizer))
        compiled, seconds = compile_fn(step, *args)
        return (lambda: jax.block_until_ready(compiled(*args))), seconds

    auto = solver.adjoint
    if not isinstance(auto, AutoAdjoint):
        run, info["compile_s"] = compiled_step(solver)
    else:
        check, check_s = compiled_step(solver.replace(adjoint=auto.check))
        stats = check()[4]
        chosen = auto.choice(int(stats.fell_back))
        steady, steady_s = compiled_step(solver.replace(adjoint=chosen))
        every = auto.check_every
        info.update(
            compile_s=check_s + steady_s,
            chosen_adjoint=chosen.name,
            reversibility_error=float(stats.reversibility_error),
            check_every=every,
            steps_per_call=every,
        )

        def run():
            out = check()
            for _ in range(every - 1):
                out = steady()
            return out

    out = run()
    info["loss"] = float(out[2])
    info["nfe_forward"] = out[4].to_dict()["nfe"]
    return run


# -- the comparison -------------------------------------------------------------------------


def run_peers(
    workloads: Iterable[Workload],
    *,
    include: Iterable[str] = CONTENDERS,
    optimizer: str = "sgd",
    budget_s: float = 20.0,
    min_rounds: int = 5,
    max_rounds: int = 50,
    torch_threads: int | None = None,
    torchode_mode: str = TORCHODE_MODE,
    spiral_strategies: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Compare odezoo's default training step with the peers, workload by workload.

    Contenders: `"odezoo"` (the default solver), `"odezoo-backsolve"`,
    `"odezoo-unfixed"`, `"odezoo-auto"` (timed as `fit` runs it, see
    `_odezoo_contender`), `"odezoo-STRATEGY"` for any of
    [`strategies`][odezoo.bench.strategies] (all of them on the spiral workload when
    `spiral_strategies`), `"jax-experimental-ode"`, `"torchdiffeq-odeint"`,
    `"torchdiffeq-adjoint"` and `"torchode"` (see `torchode_solve`; `torchode_mode`
    `"eager"` or `"compile"`).

    `torch_threads` sets PyTorch's intra-op threads (default: the number of cores). On
    a loaded machine use 1: with more threads than free cores, PyTorch's OpenMP
    threads spin-wait at every barrier (measured here: 5-10x slower).

    All contenders use the same NumPy weights and batch. Timings are interleaved (see
    `interleaved_timing`); `ratio` is a contender's
    median over odezoo's (default: checkpoint, batch as one ODE) in the same run, so
    `ratio > 1` means odezoo is faster. Correctness: `loss` of every contender at the
    benchmark tolerance, and a same-discretisation check against torchdiffeq (fixed-step
    Euler; see `torch_euler_check`).

    Returns `{"skipped": {...}, "rows": [...]}`.
    """
    include = list(include)
    skipped: dict[str, str] = {}
    if "torchode" in include and torchode_available() is not None:
        skipped["torchode"] = f"not installed ({INSTALL}): {torchode_available()}"
    torch_why = torch_available()
    if torch_why is not None:
        for name in ("torchdiffeq-odeint", "torchdiffeq-adjoint"):
            if name in include:
                skipped[name] = f"not installed ({INSTALL}): {torch_why}"
    jode_why = jax_ode_available()
    if jode_why is not None and "jax-experimental-ode" in include:
        skipped["jax-experimental-ode"] = jode_why
    include = [c for c in include if c not in skipped]
    for name, why in skipped.items():
        log(f"peers: skipping {name}: {why}")

    if torch_why is None:
        import torch

        torch.set_num_threads(torch_threads or max(1, cpu_count()))
        torch_device = use_torch_device()
        log(f"peers: PyTorch on {torch_device}")

    rows = []
    every = strategies()
    for wl in workloads:
        weights = wl.weights()
        row: dict[str, Any] = {"workload": wl.name, "contenders": {}}
        runs: dict[str, Callable[[], Any]] = {}
        names = list(include)
        if wl.kind == "spiral" and spiral_strategies:
            at = max((i for i, n in enumerate(names) if n.startswith("odezoo")), default=-1)
            extra = [f"odezoo-{s}" for s in every if s != "checkpoint"]
            extra = [n for n in extra if n not in names and n not in ODEZOO_CONTENDERS]
            names[at + 1 : at + 1] = extra
        for name in names:
            info: dict[str, Any] = {}
            try:
                if name.startswith("odezoo"):
                    if name in ODEZOO_CONTENDERS:
                        solver = wl.solver(**ODEZOO_CONTENDERS[name])
                    else:  # "odezoo-STRATEGY"
                        solver = every[name.removeprefix("odezoo-")].apply(wl.solver())
                    runs[name] = _odezoo_contender(wl, weights, solver, optimizer, info)
                elif name == "jax-experimental-ode":
                    step, args = jax_ode_step(wl, weights, optimizer)
                    compiled, info["compile_s"] = compile_fn(step, *args)
                    info["loss"] = float(compiled(*args)[2])
                    runs[name] = lambda c=compiled, a=args: jax.block_until_ready(c(*a))
                elif name == "torchode":
                    contender = torchode_contender(
                        wl, weights, optimizer=optimizer, mode=torchode_mode
                    )
                    info["mode"] = torchode_mode
                    info["loss"] = contender["run"]()
                    nfe = contender["nfe"]()
                    info["nfe_forward"] = nfe["forward"]
                    info["nfe_backward_evals"] = nfe["backward_evals"]
                    runs[name] = contender["run"]
                else:
                    contender = torch_contenders(wl, weights, optimizer=optimizer)[name]
                    info["loss"] = contender["run"]()
                    nfe = contender["nfe"]()
                    info["nfe_forward"] = nfe["forward"]
                    info["nfe_backward_evals"] = nfe["backward_evals"]
                    runs[name] = contender["run"]
            except Exception as e:
                info["error"] = f"{type(e).__name__}: {e}"
                log(f"[{wl.name}] {name}: FAILED {info['error'][:200]}")
            row["contenders"][name] = info
        if torch_why is None and any(n.startswith("torchdiffeq") for n in names):
            try:
                row["same_weights_check"] = torch_euler_check(wl, weights)
            except Exception as e:
                row["same_weights_check"] = {"error": f"{type(e).__name__}: {e}"}
        timing = interleaved_timing(
            runs, budget_s=budget_s, min_rounds=min_rounds, max_rounds=max_rounds
        )
        for name, t in timing.items():  # "auto": a call is a block of steps
            per_call = row["contenders"][name].get("steps_per_call", 1)
            t.update({k: v / per_call for k, v in t.items() if k.endswith("_ms")})
        base = timing.get("odezoo", {}).get("median_ms")
        for name, t in timing.items():
            row["contenders"][name].update(t)
            row["contenders"][name]["ratio"] = t["median_ms"] / base if base else None
        if "odezoo" in row["contenders"] and "loss" in row["contenders"]["odezoo"]:
            ref = row["contenders"]["odezoo"]["loss"]
            for c in row["contenders"].values():
                if "loss" in c:
                    c["loss_rel_diff"] = abs(c["loss"] - ref) / max(abs(ref), 1e-30)
        summary = ", ".join(
            f"{n} {c.get('median_ms', float('nan')):.3g} ms (x{c.get('ratio') or float('nan'):.2f})"
            for n, c in row["contenders"].items()
        )
        log(f"[{wl.name}] {summary}")
        rows.append(row)
    threads = None
    if torch_why is None:
        import torch

        threads = torch.get_num_threads()
    return {
        "skipped": skipped,
        "torch_threads": threads,
        "torch_device": torch_device if torch_why is None else None,
        "rows": rows,
    }
