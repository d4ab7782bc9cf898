"""Why odezoo's default training step still trails torchdiffeq's `odeint` on CPU (MLP).

A diagnostic, not part of `odezoo bench`: it measures, in one process and with the
contenders timed in alternation, the pieces docs/benchmarks.md ("What is left") reports:

1. `gemm`: one (1024, 256) @ (256, 256) float32 product and the two products of its
   VJP, in XLA and in PyTorch.
2. `field`: one evaluation of the MLP workload's vector field (batch 1024), and one
   evaluation plus VJP, in odezoo and in PyTorch.
3. `composition`: 19 explicit Euler steps of that field, forward and gradient, in a
   `lax.scan`; against 19 times the isolated evaluation + VJP.
4. `adjoints`: the training gradient (loss + gradient) of the MLP, toy and conv
   workloads with odezoo's default, with diffrax's `bounded` Runge-Kutta stage loop
   (which keeps the stages' residuals instead of recomputing them), with backsolve, and
   with torchdiffeq's `odeint`; on the MLP also with a prototype adjoint that keeps the
   first S steps' residuals (a bounded loop) and checkpoints the rest.
5. `cnf`: the ffjord-checkerboard zoo entry's training gradient (batch 100, exact trace)
   through odezoo against a hand-written diffrax CNF with the same module and weights.
6. `floor-mlp`, `floor-conv`: the evaluation floor of one training gradient (issue 12):
   `n` evaluations of the workload's field chained in one compiled loop, the same with
   their backward pass kept on a tape (the least any adjoint pays for `n` forward
   evaluations and their gradient), and `n` VJPs that recompute the field (the reverse
   solve's unit of work); the same in PyTorch; next to odezoo's default and backsolve,
   torchode and torchdiffeq's `odeint`, all timed in alternation. The report derives
   each odezoo strategy's floor from its counted evaluations.

    python benchmarks/cpu_gap.py [--threads 2] [--out benchmarks/results]
    python benchmarks/cpu_gap.py --sections floor-mlp,floor-conv --name floor

Needs the `benchmarks` extra (torch, torchdiffeq; torchode for the floor). Writes
`NAME.json` and `NAME.md` (`--name`, default `cpu_gap`).
"""

from __future__ import annotations

import argparse
import functools as ft
from pathlib import Path
from typing import ClassVar

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np

import odezoo
import odezoo.zoo
from odezoo.bench._measure import interleaved_timing
from odezoo.bench._report import environment, preamble, table, write_json

from _harness.peers import torch_field, torch_loss
from _harness.workloads import workloads


class StoreThenCheckpoint(diffrax.RecursiveCheckpointAdjoint):
    """Prototype: the first `store` steps run in a bounded loop, whose reverse pass
    keeps every step's residuals (no recomputation); any further steps run in diffrax's
    checkpointed loop. Same discretised gradient as `RecursiveCheckpointAdjoint`."""

    store: int = eqx.field(static=True, default=8)

    def loop(self, *, max_steps, throw, passed_solver_state, passed_controller_state, **kw):
        del throw, passed_solver_state, passed_controller_state
        store, checkpoints = self.store, self.checkpoints

        def outer(cond_fun, body_fun, init_val, *, max_steps, buffers):
            s = min(store, max_steps)
            val = eqxi.while_loop(
                cond_fun, body_fun, init_val, max_steps=s, buffers=buffers, kind="bounded",
                base=max(s, 2),
            )  # fmt: skip
            if max_steps > s:
                val = eqxi.while_loop(
                    cond_fun, body_fun, val, max_steps=max_steps - s, buffers=buffers,
                    kind="checkpointed", checkpoints=checkpoints,
                )  # fmt: skip
            return val

        inner = ft.partial(eqxi.while_loop, kind="checkpointed")
        return self._loop(max_steps=max_steps, inner_while_loop=inner, outer_while_loop=outer, **kw)


def _blocking(fn, *args):
    return lambda: jax.block_until_ready(fn(*args))


def gemm(torch):
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k1, (1024, 256))
    g = jax.random.normal(k2, (1024, 256))
    w = jax.random.normal(k3, (256, 256))
    tx, tg, tw = (torch.from_numpy(np.array(a)) for a in (x, g, w))
    return interleaved_timing(
        {
            "XLA x @ w": _blocking(jax.jit(lambda a, b: a @ b), x, w),
            "XLA g @ w.T": _blocking(jax.jit(lambda a, b: a @ b.T), g, w),
            "XLA x.T @ g": _blocking(jax.jit(lambda a, b: a.T @ b), x, g),
            "torch x @ w": lambda: tx @ tw,
            "torch g @ w.T": lambda: tg @ tw.T,
            "torch x.T @ g": lambda: tx.T @ tg,
        },
        rounds=60,
    )


def _mlp():
    wl = workloads()["mlp"]
    weights = wl.weights()
    data = {k: jnp.asarray(v) for k, v in wl.data().items()}
    return wl, weights, data


def field_and_composition(torch, steps: int = 19):
    wl, weights, data = _mlp()
    dyn = wl.build(weights).dynamics
    x = data["x"]
    f = lambda d, y: jax.vmap(d, in_axes=(None, 0))(0.3, y)

    def eval_vjp(d, y):
        out, pull = jax.vjp(f, d, y)
        return pull(out)

    def euler_loss(d, y):
        y_final, _ = jax.lax.scan(lambda h, _: (h + 0.05 * f(d, h), None), y, length=steps)
        return jnp.sum(y_final**2)

    tf = torch_field(wl, weights)
    ty, tt = torch.from_numpy(np.array(x)), torch.tensor(0.3)

    def torch_eval():
        with torch.no_grad():
            tf(tt, ty)

    def torch_eval_backward():
        y = ty.clone().requires_grad_(True)
        out = tf(tt, y)
        out.backward(out)

    def torch_euler():
        tf.zero_grad()
        y = ty
        for _ in range(steps):
            y = y + 0.05 * tf(tt, y)
        (y**2).sum().backward()

    return interleaved_timing(
        {
            "odezoo f": _blocking(eqx.filter_jit(f), dyn, x),
            "odezoo f + VJP": _blocking(eqx.filter_jit(eval_vjp), dyn, x),
            f"odezoo {steps} Euler steps, forward": _blocking(eqx.filter_jit(euler_loss), dyn, x),
            f"odezoo {steps} Euler steps, gradient": _blocking(
                eqx.filter_jit(eqx.filter_value_and_grad(euler_loss)), dyn, x
            ),
            "torch f": torch_eval,
            "torch f + backward": torch_eval_backward,
            f"torch {steps} Euler steps, gradient": torch_euler,
        },
        rounds=30,
    )


def _odeint(torchdiffeq, wl):
    """torchdiffeq's `odeint` at the workload's tolerances, as `solve(f, y0, t)`."""
    return lambda f, y, t: torchdiffeq.odeint(f, y, t, rtol=wl.rtol, atol=wl.atol)


def _torch_gradient(wl, field, solve):
    """A PyTorch loss and gradient of `wl` through `solve`, as a call returning the loss."""
    data = wl.data()

    def step():
        field.zero_grad()
        loss = torch_loss(wl, field, data, solve)
        loss.backward()
        return loss.item()

    return step


class GivenAdjoint(odezoo.AbstractAdjoint):
    """A diffrax adjoint used as it is, for every solve (the prototypes below)."""

    name: ClassVar[str] = "given-diffrax-adjoint"
    adjoint: diffrax.AbstractAdjoint | None = eqx.field(static=True, default=None)

    def diffrax_adjoint(self, solver, derivative_field):
        return self.adjoint


def _gradient_fn(wl, weights, data, solver, *, adjoint=None):
    """A compiled loss + gradient (with the diffrax `adjoint` in place of odezoo's)."""
    if adjoint is not None:
        solver = solver.replace(adjoint=GivenAdjoint(adjoint))
    model = wl.build(weights, solver)
    fn = eqx.filter_jit(eqx.filter_value_and_grad(lambda m: wl.loss(m, data)[0]))
    loss, _ = fn(model)
    return _blocking(fn, model), float(loss)


def adjoints(torch, torchdiffeq, name="mlp", stores=(4, 8, 16)):
    wl = workloads()[name]
    weights = wl.weights()
    data = {k: jnp.asarray(v) for k, v in wl.data().items()}
    base = wl.solver()
    bounded = base.replace(solver=diffrax.Dopri5(scan_kind="bounded"))
    runs = {
        "odezoo default (checkpoint)": _gradient_fn(wl, weights, data, base),
        "checkpoint, bounded stage loop": _gradient_fn(wl, weights, data, bounded),
    }
    for s in stores:
        runs[f"prototype: store {s} steps"] = _gradient_fn(
            wl, weights, data, base, adjoint=StoreThenCheckpoint(store=s)
        )
    if stores:
        runs["prototype: store 4 steps, bounded stage loop"] = _gradient_fn(
            wl, weights, data, bounded, adjoint=StoreThenCheckpoint(store=4)
        )
    runs["backsolve"] = _gradient_fn(wl, weights, data, base.replace(adjoint="backsolve"))

    torch_step = _torch_gradient(wl, torch_field(wl, weights), _odeint(torchdiffeq, wl))
    runs["torchdiffeq odeint"] = (torch_step, torch_step())
    timing = interleaved_timing({k: fn for k, (fn, _) in runs.items()}, rounds=20)
    for k, (_, loss) in runs.items():
        timing[k]["loss"] = loss
    return timing


def cnf_against_hand_written():
    flow = odezoo.zoo.load("ffjord-checkerboard")
    x = odezoo.data.toy2d("checkerboard", 100, key=jax.random.key(1))
    field = flow.fields[0]

    class HandField(eqx.Module):
        dynamics: eqx.Module
        sqrt_time: jax.Array

        def __call__(self, t, y, args):
            T = self.sqrt_time**2

            def one(z):
                f = lambda v: T * self.dynamics(T * t, v)
                return f(z), jnp.trace(jax.jacfwd(f)(z))

            return jax.vmap(one)(y[0])

    def hand_loss(h, x):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(h), diffrax.Dopri5(), 0.0, 1.0, None, (x, jnp.zeros(len(x))),
            stepsize_controller=diffrax.PIDController(rtol=1e-5, atol=1e-5), max_steps=4096,
        )  # fmt: skip
        z, logdet = sol.ys[0][-1], sol.ys[1][-1]
        return -jnp.mean(-0.5 * jnp.sum(z**2, -1) - jnp.log(2 * jnp.pi) + logdet)

    ours = eqx.filter_jit(eqx.filter_value_and_grad(lambda m, x: -jnp.mean(m.batch(x))))
    hand = eqx.filter_jit(eqx.filter_value_and_grad(hand_loss))
    hf = HandField(field.dynamics, field.sqrt_time)
    timing = interleaved_timing(
        {"odezoo CNF": _blocking(ours, flow, x), "hand-written diffrax": _blocking(hand, hf, x)},
        rounds=20,
    )
    timing["odezoo CNF"]["loss"] = float(ours(flow, x)[0])
    timing["odezoo CNF"]["steps"] = int(flow.apply(x)[1].num_steps)
    timing["hand-written diffrax"]["loss"] = float(hand(hf, x)[0])
    return timing


def floor(torch, torchdiffeq, name="mlp", n=20):
    """The evaluation floor of one training gradient on workload `name` (see the module
    docstring, item 6). `n` is torchode's and `odeint`'s forward count on these
    workloads (odezoo makes one more, and two for its initial step)."""
    from _harness.measure import count_nfe
    from _harness.peers import torchode_solve

    wl = workloads()[name]
    weights = wl.weights()
    data = {k: jnp.asarray(v) for k, v in wl.data().items()}
    problem = wl.build(weights).ode(data["x"])
    field, y0, h = problem.field, problem.y0, 0.05 / wl.t1
    f = lambda fld, y: jax.vmap(fld, in_axes=(None, 0, None))(0.3, y, None)

    def chain(fld, y):  # n evaluations, each depending on the last (explicit Euler)
        y, _ = jax.lax.scan(lambda z, _: (z + h * f(fld, z), None), y, length=n)
        return jnp.sum(y**2)

    def tape(fld, y):  # unrolled: XLA keeps every evaluation's residuals, recomputes none
        for _ in range(n):
            y = y + h * f(fld, y)
        return jnp.sum(y**2)

    def vjps(fld, y):  # n VJPs that each evaluate the field again (a reverse solve's work)
        def body(carry, _):
            z, a, g = carry
            out, pull = jax.vjp(f, fld, z)
            g_fld, g_z = pull(a)
            return (z - h * out, a + h * g_z, jax.tree.map(jnp.add, g, g_fld)), None

        g0 = jax.tree.map(jnp.zeros_like, eqx.filter(fld, eqx.is_array))
        return jax.lax.scan(body, (y, y, g0), length=n)[0]

    base = wl.solver()
    solvers = {
        "odezoo default (checkpoint)": base,
        "odezoo backsolve": base.replace(adjoint="backsolve"),
    }
    runs, losses = {}, {}
    for k, s in solvers.items():
        runs[k], losses[k] = _gradient_fn(wl, weights, data, s)
    grad = lambda fn: eqx.filter_jit(eqx.filter_value_and_grad(fn))

    def diffrax_loss(fld, y, adjoint):  # the same solve, written directly against diffrax
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, z, fld: f(fld, z)), diffrax.Dopri5(), 0.0, wl.t1, None,
            y, args=fld, stepsize_controller=diffrax.PIDController(rtol=wl.rtol, atol=wl.atol),
            adjoint=adjoint, max_steps=base.max_steps,
        )  # fmt: skip
        return wl.loss_from_output(sol.ys[-1], data)

    for label, adjoint in [
        ("checkpoint", diffrax.RecursiveCheckpointAdjoint()),
        ("backsolve", diffrax.BacksolveAdjoint()),
    ]:
        fn = grad(ft.partial(diffrax_loss, adjoint=adjoint))
        runs[f"diffrax alone, {label}"] = _blocking(fn, field, y0)
        losses[f"diffrax alone, {label}"] = float(fn(field, y0)[0])
    runs[f"XLA: {n} evaluations"] = _blocking(eqx.filter_jit(chain), field, y0)
    runs[f"XLA: {n} evaluations + backward, kept"] = _blocking(grad(tape), field, y0)
    runs[f"XLA: {n} VJPs, recomputed"] = _blocking(eqx.filter_jit(vjps), field, y0)

    tf = torch_field(wl, weights)
    ty, tt = torch.from_numpy(np.array(y0)), torch.tensor(0.3)

    def torch_chain():
        with torch.no_grad():
            y = ty
            for _ in range(n):
                y = y + h * tf(tt, y)

    def torch_tape():
        tf.zero_grad()
        y = ty
        for _ in range(n):
            y = y + h * tf(tt, y)
        (y**2).sum().backward()

    runs[f"torch: {n} evaluations"] = torch_chain
    runs[f"torch: {n} evaluations + backward, kept"] = torch_tape
    runs["torchode"] = _torch_gradient(wl, tf, torchode_solve(wl))
    runs["torchdiffeq odeint"] = _torch_gradient(wl, tf, _odeint(torchdiffeq, wl))
    timing = interleaved_timing(runs, rounds=20)

    for k, loss in losses.items():
        timing[k]["loss"] = loss
    per_eval = timing[f"XLA: {n} evaluations"]["median_ms"] / n
    per_vjp = timing[f"XLA: {n} VJPs, recomputed"]["median_ms"] / n
    for k, s in solvers.items():
        counts = count_nfe(wl, weights, s)
        fwd = int(wl.loss(wl.build(weights, s), data)[1].nfe)
        bwd_f, bwd_vjp = counts["total_evals"] - fwd, counts["vjps"]
        # every backward VJP evaluates f once itself; the rest of the backward f is recomputation
        est = (fwd + bwd_f - bwd_vjp) * per_eval + bwd_vjp * per_vjp
        timing[k].update(fwd=fwd, bwd_f=bwd_f, bwd_vjp=bwd_vjp, floor_ms=est)
    return timing


def markdown(result) -> str:
    lines = preamble("Where the CPU time goes (benchmarks/cpu_gap.py)", result)
    for section, rows in result["sections"].items():
        lines += ["", f"### {section}", ""]
        body = []
        for name, r in rows.items():
            extra = ", ".join(f"{k} {v:.6g}" for k, v in r.items() if k in ("loss", "steps"))
            if "floor_ms" in r:
                extra += (
                    "; "
                    f"{r['fwd']} f + {r['bwd_f']} f, {r['bwd_vjp']} VJPs backward; floor "
                    f"{r['floor_ms']:.3g} ms, step / floor {r['median_ms'] / r['floor_ms']:.2f}"
                )
            spread = f"{r['p25_ms']:.3g}–{r['p75_ms']:.3g}"
            body.append([name, f"{r['median_ms']:.3g}", spread, extra])
        lines.append(table(["contender", "median ms", "p25–p75", ""], body))
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="PyTorch intra-op threads")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--name", default="cpu_gap", help="output file name, without suffix")
    parser.add_argument(
        "--sections",
        default=None,
        help="comma-separated keys (default: all "
        "but the floors): gemm, field, mlp, toy, conv, cnf, floor-mlp, floor-conv",
    )
    args = parser.parse_args()
    import torch
    import torchdiffeq

    torch.set_num_threads(args.threads)
    result = {"environment": environment()}
    result["torch_threads"] = args.threads
    result["sections"] = {}
    steps = {
        "gemm": ("gemm", lambda: gemm(torch)),
        "field": ("field and composition", lambda: field_and_composition(torch)),
        "mlp": ("MLP training gradient", lambda: adjoints(torch, torchdiffeq)),
        "toy": ("toy training gradient", lambda: adjoints(torch, torchdiffeq, "toy", stores=())),
        "conv": (
            "conv training gradient",
            lambda: adjoints(torch, torchdiffeq, "conv", stores=()),
        ),
        "cnf": ("CNF against hand-written diffrax", cnf_against_hand_written),
        "floor-mlp": ("MLP evaluation floor", lambda: floor(torch, torchdiffeq, "mlp")),
        "floor-conv": ("conv evaluation floor", lambda: floor(torch, torchdiffeq, "conv")),
    }
    keys = args.sections.split(",") if args.sections else [k for k in steps if "floor" not in k]
    unknown = sorted(set(keys) - set(steps))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(steps)}")
    for name, run in (steps[k] for k in keys):
        print(f"measuring {name} ...", flush=True)
        result["sections"][name] = run()
        out = Path(args.out)  # written after each section, so a failure keeps the rest
        write_json(out / f"{args.name}.json", result)
        (out / f"{args.name}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
