"""Issue 12's speed leads 2 and 3, taken apart (a diagnostic, not part of `odezoo bench`).

Lead 3 (`cnf`): why backsolve on the exact-trace CNF workload trailed
`jax.experimental.ode`'s adjoint. Inside compiled functions, timed in alternation:

- the batched vector field, its VJP (w.r.t. the state and the parameters), diffrax's
  adjoint vector field `AdjointTerm.vf` (a `jax.jacfwd` of the VJP with respect to the
  scalar control) and odezoo's `UnitControlTerm.vf` (the VJP at a unit control);
- one Dopri5 step of the adjoint ODE with either term;
- the forward solve alone, the backward pass alone (`jax.vjp` split in two compiled
  halves) and the training step (loss, gradient, SGD), for odezoo's backsolve with
  diffrax's reverse solver as it came (`backsolve-diffrax`), odezoo's backsolve
  (`backsolve`, with `AdjointSolver`), the default (`checkpoint`) and
  `jax.experimental.ode`;
- NFE: forward evaluations and backward VJPs counted by host callbacks in a separate run
  (`count_evaluations`; for `jax.experimental.ode` a callback in its field), and the
  gradient error against the bench's float64 reference.

Lead 2 (`toy`): where the per-step time of the seed toy goes: a jitted no-op with the
step's arguments (dispatch), odezoo's step through `eqx.filter_jit` and through
`jax.jit(...).lower().compile()`, the step with `dt0` fixed, the forward solve alone,
and `jax.experimental.ode`; and K training steps per compiled call (`lax.scan`).

    python benchmarks/speed_leads.py cnf|toy [--budget 20] [--out DIR]
    python benchmarks/speed_leads.py toy --tol 1e-5           # the toy at another tolerance
    python benchmarks/speed_leads.py adjoint --workload mlp   # field and solve level
    python benchmarks/speed_leads.py reverse --workload conv  # the two reverse solvers
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from odezoo import AbstractAdjoint, BacksolveAdjoint, Solver, count_evaluations
from odezoo._backsolve import UnitControlTerm
from odezoo._initial_step import initial_step as _initial_step
from odezoo._solve import BatchField
from odezoo.bench._measure import interleaved_timing, make_optimizer, relative_error

from _harness.measure import reference_gradient, train_step
from _harness.peers import jax_ode_step
from _harness.workloads import workloads


class DiffraxBacksolve(AbstractAdjoint):
    """odezoo's backsolve with diffrax's own reverse solver (as before the fix)."""

    name: ClassVar[str] = "backsolve-diffrax-reverse"
    seminorm: bool = eqx.field(static=True, default=False)

    def diffrax_adjoint(self, solver, derivative_field):
        return diffrax.BacksolveAdjoint(
            solver=solver.solver, stepsize_controller=solver.step_controller(seminorm=self.seminorm)
        )


def _as_diffrax(solver: Solver) -> Solver:
    if not isinstance(solver.adjoint, BacksolveAdjoint):
        return solver
    return solver.replace(adjoint=DiffraxBacksolve(seminorm=solver.adjoint.seminorm))


def _blocking(fn, *args):
    return lambda: jax.block_until_ready(fn(*args))


def _compile(fn, *args):
    t0 = time.perf_counter()
    c = jax.jit(fn).lower(*args).compile()
    return c, time.perf_counter() - t0


def _report(timing, extra=None):
    rows = {}
    for name, t in timing.items():
        rows[name] = {"median_ms": round(t["median_ms"], 3), "p25_ms": round(t["p25_ms"], 3),
                      "p75_ms": round(t["p75_ms"], 3), "rounds": t["rounds"]}  # fmt: skip
        rows[name].update((extra or {}).get(name, {}))
        print(f"  {name:34s} {t['median_ms']:9.3f} ms  {rows[name]}", flush=True)
    return rows


def field_level(wl, budget):
    """Field, VJP, adjoint fields and one adjoint Dopri5 step."""
    model = wl.build(wl.weights())
    x = jnp.asarray(wl.data()["x"])
    field, y0, _, _, _ = model.ode(x)
    term = diffrax.ODETerm(BatchField(field, False))
    adj = diffrax.AdjointTerm(term) if hasattr(diffrax, "AdjointTerm") else None
    if adj is None:
        from diffrax._term import AdjointTerm

        adj = AdjointTerm(term)
    fast = UnitControlTerm(adj)
    params, static = eqx.partition(term, eqx.is_inexact_array)
    a_y = jax.tree_util.tree_map(jnp.ones_like, y0)
    aug = (y0, a_y, None, jax.tree_util.tree_map(jnp.zeros_like, params))
    t = jnp.asarray(0.3, jnp.float32)

    def vjp(p, y, a):
        out, f = jax.vjp(lambda yy, pp: eqx.combine(pp, static).vf(t, yy, None), y, p)
        return out, f(a)

    solver = diffrax.Dopri5()

    def step(term_, aug_):
        st = solver.init(term_, t, t - 0.05, aug_, None)
        return solver.step(term_, t, t - 0.05, aug_, None, st, False)[0]

    jobs = {
        "field": (lambda tm, y: tm.vf(t, y, None), (term, y0)),
        "field+vjp": (vjp, (params, y0, a_y)),
        "AdjointTerm.vf (diffrax, jacfwd)": (lambda a, s: a.vf(t, s, None), (adj, aug)),
        "UnitControlTerm.vf (odezoo, vjp)": (lambda a, s: a.vf(t, s, None), (fast, aug)),
        "adjoint Dopri5 step, AdjointTerm": (step, (adj, aug)),
        "adjoint Dopri5 step, UnitControlTerm": (step, (fast, aug)),
    }
    runs, compile_s = {}, {}
    for name, (fn, args) in jobs.items():
        c, compile_s[name] = _compile(fn, *args)
        runs[name] = _blocking(c, *args)
    d1 = jax.jit(lambda a, s: a.vf(t, s, None))(adj, aug)
    d2 = jax.jit(lambda a, s: a.vf(t, s, None))(fast, aug)
    diff = max(
        float(jnp.max(jnp.abs(u - v)) / (jnp.max(jnp.abs(u)) + 1e-30))
        for u, v in zip(jax.tree_util.tree_leaves(d1), jax.tree_util.tree_leaves(d2), strict=True)
    )
    print(f"  adjoint fields agree to {diff:.1e} (max rel)", flush=True)
    timing = interleaved_timing(runs, budget_s=budget, max_rounds=200)
    rows = _report(timing, {k: {"compile_s": round(v, 2)} for k, v in compile_s.items()})
    return {"rows": rows, "adjoint_field_max_rel_diff": diff}


def _jode_counted_nfe(wl):
    """Field evaluations and VJPs of `jax.experimental.ode` in one gradient."""
    from jax.experimental.ode import odeint

    counts = {"f": 0}

    def bump():
        counts["f"] += 1

    model = wl.build(wl.weights())
    data = {k: jnp.asarray(v) for k, v in wl.data().items()}
    field, y0, t0, t1, _ = model.ode(data["x"])
    params, static = eqx.partition(field, eqx.is_array)

    def func(y, t, q):
        jax.debug.callback(bump)
        return jax.vmap(lambda yi: eqx.combine(q, static)(t, yi, None))(y)

    def loss(p):
        ys = odeint(func, y0, jnp.array([t0, t1], jnp.float32), p, rtol=wl.rtol, atol=wl.atol)
        y1 = jax.tree_util.tree_map(lambda v: v[-1], ys)
        if wl.kind == "cnf":
            return -jnp.mean(wl.cnf_log_prob(y1[0], y1[1]))
        return wl.loss_from_output(y1, data)

    jax.block_until_ready(jax.jit(loss)(params))
    fwd = counts["f"]
    counts["f"] = 0
    jax.block_until_ready(jax.jit(jax.grad(loss))(params))
    return {"forward": fwd, "grad_total": counts["f"]}


def solve_level(wl, budget, names):
    """Forward solve, backward pass and training step per contender."""
    weights = wl.weights()
    ref_loss, ref_grad, ref_steps = reference_gradient(wl, weights)
    print(f"  float64 reference: loss {ref_loss:.6g}, {ref_steps} steps", flush=True)
    base = wl.solver()
    solvers = {
        "checkpoint": base,
        "backsolve-diffrax": _as_diffrax(base.replace(adjoint="backsolve")),
        "backsolve": base.replace(adjoint="backsolve"),
    }
    opt = make_optimizer("sgd")
    runs, info = {}, {}
    for name in names:
        if name == "jax-experimental-ode":
            step, args = jax_ode_step(wl, weights)
            c, cs = _compile(step, *args)
            out = c(*args)
            runs[f"step {name}"] = _blocking(c, *args)
            info[f"step {name}"] = {
                "compile_s": round(cs, 1),
                "grad_error": relative_error(out[3], ref_grad),
                "nfe": _jode_counted_nfe(wl),
            }
            continue
        model = wl.build(weights, solvers[name])
        step, args = train_step(wl, model, opt)
        c, cs = _compile(step, *args)
        out = c(*args)
        runs[f"step {name}"] = _blocking(c, *args)
        counted = wl.build(weights, solvers[name].replace(count_evals=True))
        if name == "backsolve-diffrax":
            counted = wl.build(weights, _as_diffrax(solvers[name].replace(count_evals=True)))
        p2, s2 = eqx.partition(counted, eqx.is_array)
        data = args[2]
        g = jax.jit(jax.grad(lambda p, d: wl.loss(eqx.combine(p, s2), d)[0]))
        g = g.lower(p2, data).compile()
        with count_evaluations() as n:
            jax.block_until_ready(g(p2, data))
        info[f"step {name}"] = {
            "compile_s": round(cs, 1),
            "grad_error": relative_error(out[3], ref_grad),
            "loss": float(out[2]),
            "fwd_nfe": out[4].to_dict()["nfe"],
            "bwd_f_evals": n.forward - out[4].to_dict()["nfe"],
            "bwd_vjps": n.vjp,
        }
        params, static = eqx.partition(model, eqx.is_array)
        if name != "checkpoint":  # forward alone, backward alone
            fwd = lambda p, d, s=static: jax.vjp(lambda q: wl.loss(eqx.combine(q, s), d)[0], p)
            fc, _ = _compile(fwd, params, data)
            loss_val, pullback = fc(params, data)
            bc, _ = _compile(lambda pb, ct: pb(ct), pullback, jnp.ones_like(loss_val))
            runs[f"vjp-forward {name}"] = _blocking(fc, params, data)
            runs[f"vjp-backward {name}"] = _blocking(bc, pullback, jnp.ones_like(loss_val))
        if name == "checkpoint":
            plain = lambda p, d, s=static: wl.loss(eqx.combine(p, s), d)[0]
            pc, _ = _compile(plain, params, data)
            runs["forward solve (loss only)"] = _blocking(pc, params, data)
        print(f"  {name}: compiled in {cs:.1f} s, {info[f'step {name}']}", flush=True)
    timing = interleaved_timing(runs, budget_s=budget, max_rounds=100)
    return {"rows": _report(timing, info), "reference_steps": ref_steps}


def toy_level(wl, budget, scan_k=(1, 8, 32)):
    """Where the toy's per-step time goes."""
    weights = wl.weights()
    _, ref_grad, _ = reference_gradient(wl, weights)
    opt = make_optimizer("sgd")
    runs, info = {}, {}
    variants = {
        "checkpoint (default)": wl.solver(),
        "backsolve": wl.solver(adjoint="backsolve"),
        "checkpoint, dt0=0.01": wl.solver(dt0=0.01),
    }
    for name, solver in variants.items():
        model = wl.build(weights, solver)
        step, args = train_step(wl, model, opt)
        c, _ = _compile(step, *args)
        out = c(*args)
        info[f"step {name}"] = {
            "grad_error": relative_error(out[3], ref_grad),
            "fwd_nfe": out[4].to_dict()["nfe"],
            "steps": out[4].to_dict()["num_steps"],
        }
        runs[f"step {name}"] = _blocking(c, *args)
        if name.startswith("checkpoint (default)"):
            fj = eqx.filter_jit(step)
            runs[f"step {name}, eqx.filter_jit"] = _blocking(fj, *args)
            jj = jax.jit(step)
            runs[f"step {name}, jax.jit"] = _blocking(jj, *args)
            noop = jax.jit(lambda p, o, d: (p, o)).lower(*args).compile()
            runs["no-op with the step's arguments"] = _blocking(noop, *args)
            params, static = eqx.partition(model, eqx.is_array)
            fw = lambda p, d: wl.loss(eqx.combine(p, static), d)[0]
            fc, _ = _compile(fw, params, args[2])
            runs["forward solve (loss only)"] = _blocking(fc, params, args[2])

            for k in scan_k:

                def many(p, o, d, k=k):
                    def body(carry, _):
                        p_, o_ = carry
                        p_, o_, loss, _, _ = step(p_, o_, d)
                        return (p_, o_), loss

                    (p, o), losses = jax.lax.scan(body, (p, o), None, length=k)
                    return p, o, losses

                mc, _ = _compile(many, *args)
                runs[f"{k} steps per call (lax.scan), per call"] = _blocking(mc, *args)
    # diffrax alone: the same field, initial step, controller and adjoints, without
    # odezoo's statistics and failure checks around the solve.
    model = wl.build(weights)
    data = {k: jnp.asarray(v) for k, v in wl.data().items()}
    params, static = eqx.partition(model, eqx.is_array)
    for name, adjoint in (
        ("checkpoint", diffrax.RecursiveCheckpointAdjoint()),
        ("backsolve", diffrax.BacksolveAdjoint(solver=diffrax.Dopri5())),
    ):

        def raw_loss(p, d, adjoint=adjoint):
            m = eqx.combine(p, static)
            field, y0, t0, t1, _ = m.ode(d["x"])
            bf = BatchField(field, False)
            dt0 = _initial_step(m.solver, bf, y0, None, t0, t1)
            sol = diffrax.diffeqsolve(
                diffrax.ODETerm(bf), diffrax.Dopri5(), t0, t1, dt0, y0,
                stepsize_controller=diffrax.PIDController(rtol=wl.rtol, atol=wl.atol),
                adjoint=adjoint, max_steps=4096, throw=False,
            )  # fmt: skip
            return wl.loss_from_output(sol.ys[-1], d)

        def raw_step(p, o, d, raw_loss=raw_loss):
            loss, grads = jax.value_and_grad(raw_loss)(p, d)
            updates, o = opt.update(grads, o, p)
            return eqx.apply_updates(p, updates), o, loss, grads

        raw_args = (params, opt.init(params), data)
        c, _ = _compile(raw_step, *raw_args)
        out = c(*raw_args)
        info[f"step diffrax alone, {name}"] = {"grad_error": relative_error(out[3], ref_grad)}
        runs[f"step diffrax alone, {name}"] = _blocking(c, *raw_args)
        if name == "checkpoint":
            fc, _ = _compile(raw_loss, params, data)
            runs["forward solve, diffrax alone"] = _blocking(fc, params, data)
    step, args = jax_ode_step(wl, weights)
    c, _ = _compile(step, *args)
    out = c(*args)
    info["step jax-experimental-ode"] = {"grad_error": relative_error(out[3], ref_grad)}
    runs["step jax-experimental-ode"] = _blocking(c, *args)
    from jax.experimental.ode import odeint

    jp = args[0]
    fld, jy0, jt0, jt1, _ = model.ode(data["x"])
    jstatic = eqx.partition(fld, eqx.is_array)[1]
    func = lambda y, t, q: jax.vmap(lambda yi: eqx.combine(q, jstatic)(t, yi, None))(y)
    jfwd = lambda q, d: wl.loss_from_output(
        odeint(func, jy0, jnp.array([jt0, jt1], jnp.float32), q, rtol=wl.rtol, atol=wl.atol)[-1], d
    )
    fc, _ = _compile(jfwd, jp, data)
    runs["forward solve, jax-experimental-ode"] = _blocking(fc, jp, data)
    timing = interleaved_timing(runs, budget_s=budget, max_rounds=2000)
    return {"rows": _report(timing, info), "scan_k": scan_k}


def reverse_solvers(wl, budget, repeats=3):
    """odezoo's backsolve with the VJP-form reverse solver (`AdjointSolver`) against
    diffrax's own, on any workload, in `repeats` interleaved timings (the numbers
    docs/benchmarks.md gives for the MLP, conv and toy workloads)."""
    weights, opt = wl.weights(), make_optimizer("sgd")
    base = wl.solver(adjoint="backsolve")
    solvers = {"diffrax reverse solver": _as_diffrax(base), "AdjointSolver": _as_vjp(base)}
    runs = {}
    for name, solver in solvers.items():
        step, args = train_step(wl, wl.build(weights, solver), opt)
        c, _ = _compile(step, *args)
        runs[name] = _blocking(c, *args)
    ratios = []
    for _ in range(repeats):
        t = interleaved_timing(runs, budget_s=budget, max_rounds=3000)
        ratios.append(t["AdjointSolver"]["median_ms"] / t["diffrax reverse solver"]["median_ms"])
        _report(t)
        print(f"  ratio AdjointSolver / diffrax: {ratios[-1]:.3f}", flush=True)
    return {"ratios": ratios}


class VJPBacksolve(AbstractAdjoint):
    """odezoo's backsolve with `AdjointSolver` whatever the field."""

    name: ClassVar[str] = "backsolve-vjp-reverse"
    seminorm: bool = eqx.field(static=True, default=False)

    def diffrax_adjoint(self, solver, derivative_field):
        return BacksolveAdjoint(seminorm=self.seminorm).diffrax_adjoint(solver, True)


def _as_vjp(solver: Solver) -> Solver:
    if not isinstance(solver.adjoint, BacksolveAdjoint):
        return solver
    return solver.replace(adjoint=VJPBacksolve(seminorm=solver.adjoint.seminorm))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["cnf", "cnf-field", "toy", "adjoint", "reverse"])
    parser.add_argument("--workload", default="cnf", help="for `adjoint`: any workload")
    parser.add_argument("--budget", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--names", default="checkpoint,backsolve-diffrax,backsolve,jax-experimental-ode"
    )
    parser.add_argument(
        "--tol", type=float, default=None, help="for `toy`: rtol = atol (default: 1.4e-8)"
    )
    parser.add_argument("--out", type=Path, default=None)
    a = parser.parse_args()
    wls = workloads(quick=a.quick)
    if a.tol is not None:
        wls["toy"] = dataclasses.replace(wls["toy"], rtol=a.tol, atol=a.tol)
    out = {"part": a.part, "load_average": list(__import__("os").getloadavg())}
    if a.part in ("cnf", "cnf-field", "adjoint"):
        name = "cnf" if a.part != "adjoint" else a.workload
        print(f"[{name}] field level", flush=True)
        out["field"] = field_level(wls[name], a.budget)
        if a.part != "cnf-field":
            print(f"[{name}] solve level", flush=True)
            out["solve"] = solve_level(wls[name], a.budget, a.names.split(","))
    elif a.part == "reverse":
        print(f"[{a.workload}] reverse solvers", flush=True)
        out["reverse"] = reverse_solvers(wls[a.workload], a.budget)
    else:
        print("[toy]", flush=True)
        out["toy"] = toy_level(wls["toy"], a.budget)
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        suffix = f"-{a.workload}" if a.part in ("adjoint", "reverse") else ""
        suffix += f"-tol{a.tol:g}" if a.part == "toy" and a.tol is not None else ""
        path = a.out / f"speed_{a.part}{suffix}.json"
        path.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
