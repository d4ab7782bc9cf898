"""The command line of the built-in workloads' experiments: `python benchmarks/run.py
{adjoints,scaling,peers,accuracy,precision,all}`, run from a checkout.

It takes `odezoo bench`'s options (`odezoo.bench._cli.add_run_arguments`) and writes to
the same default folder, `runs/bench-<experiment>-<time>` (never into the committed
`benchmarks/results` without `--out` and `--force`). Errors are one line on stderr. The
adjoints of a zoo entry or run directory are the package's: `odezoo bench adjoints
--entry NAME`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from odezoo._errors import OdezooError
from odezoo.bench._cli import add_run_arguments, budget_of, csv, output_dir, pick
from odezoo.bench._cli import failures as any_failed

from .defaults import CONTENDERS, PRECISION_TOLERANCES, STEPS, TOLERANCES

COMMANDS = ("adjoints", "scaling", "peers", "accuracy", "precision", "all")
"""The experiments, `all` last (every one before it, in this order)."""

PROG = "python benchmarks/run.py"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python benchmarks/run.py`."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Benchmark odezoo's adjoint strategies on the built-in workloads: time, "
        "memory, gradient error and NFE; scaling with the number of steps; gradient error "
        "against tolerance; a comparison with torchdiffeq, torchode and "
        "jax.experimental.ode on the same weights; work-precision diagrams. Results go to "
        "--out DIR (default: a new folder under runs/).",
    )
    p.add_argument("experiment", choices=COMMANDS, help="what to measure")
    p.add_argument(
        "--workloads",
        type=csv,
        default=None,
        help="comma-separated: toy,mlp,cnf,conv,spiral (default: all)",
    )
    p.add_argument(
        "--peers",
        type=csv,
        default=None,
        help=f"comma-separated contenders for `peers` (default: {','.join(CONTENDERS)})",
    )
    p.add_argument(
        "--steps",
        type=csv,
        default=None,
        help=f"step counts for `scaling` (default: {','.join(map(str, STEPS))})",
    )
    p.add_argument(
        "--tolerances",
        type=csv,
        default=None,
        help="tolerances for `accuracy` (default: "
        + ",".join(f"{t:g}" for t in TOLERANCES)
        + ") and `precision` (default: "
        + ",".join(f"{t:g}" for t in PRECISION_TOLERANCES)
        + ")",
    )
    p.add_argument(
        "--skip",
        type=csv,
        default=[],
        help="comma-separated workload:strategy pairs not to run in `adjoints`",
    )
    p.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="PyTorch intra-op threads for `peers` (default: all cores; use 1 on a loaded machine)",
    )
    p.add_argument(
        "--torchode-mode",
        choices=("compile", "eager"),
        default="compile",
        help="torchode in `peers`/`precision`: torch.compile of its solver (default) or eager "
        "(within 1%% of each other on CPU)",
    )
    add_run_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run `python benchmarks/run.py ARGS`; returns the exit status (2 for a bad
    argument, 1 when a measurement failed or on an error, said in one line)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a bad argument (2, its line already printed)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (OdezooError, OSError) as e:
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    """Run the experiment(s) named by parsed arguments and write the reports."""
    out = output_dir(args)  # refuse a non-empty --out before any work

    import jax

    from odezoo.bench._report import environment
    from odezoo.bench._strategies import strategies

    from .accuracy import run_accuracy
    from .adjoints import run_adjoints
    from .peers import run_peers
    from .precision import PRECISION_PEERS, run_precision
    from .report import write_report
    from .scaling import run_scaling, scaling_strategies, scaling_workload
    from .workloads import workloads

    quick = args.quick
    budget = budget_of(args)
    log = lambda msg: print(msg, flush=True)
    platform = "gpu" if jax.devices()[0].platform == "gpu" else "cpu"
    wls = pick(workloads(quick, platform), args.workloads, "workload")
    experiments = COMMANDS[:-1] if args.experiment == "all" else (args.experiment,)
    reps = dict(min_reps=2, max_reps=5) if quick else dict(min_reps=5, max_reps=50)
    status = 0
    log(f"bench: writing results to {out}")
    for exp in experiments:
        t0 = time.perf_counter()
        env = environment()
        if exp == "adjoints":
            result = run_adjoints(
                wls,
                pick(strategies(), args.strategies, "strategy"),
                optimizer=args.optimizer,
                budget_s=budget,
                count=not args.no_count,
                log=log,
                skip=[tuple(x.split(":", 1)) for x in args.skip],
                **reps,
            )
        elif exp == "scaling":
            steps = (
                [int(s) for s in args.steps]
                if args.steps
                else ([4, 16, 64] if quick else list(STEPS))
            )
            result = run_scaling(
                scaling_workload(quick),
                pick(scaling_strategies(), args.strategies, "strategy"),
                steps,
                optimizer=args.optimizer,
                budget_s=budget,
                log=log,
                min_reps=2 if quick else 3,
                max_reps=5 if quick else 20,
            )
        elif exp == "peers":
            result = run_peers(
                wls,
                include=args.peers or CONTENDERS,
                torch_threads=args.torch_threads,
                torchode_mode=args.torchode_mode,
                optimizer=args.optimizer,
                budget_s=budget * 4,
                log=log,
                min_rounds=2 if quick else 5,
                max_rounds=5 if quick else 50,
            )
        elif exp == "precision":
            tols = (
                [float(t) for t in args.tolerances]
                if args.tolerances
                else ([1e-3, 1e-5] if quick else list(PRECISION_TOLERANCES))
            )
            peers = [p for p in (args.peers or PRECISION_PEERS) if not p.startswith("odezoo")]
            result = run_precision(
                wls,
                pick(strategies(), args.strategies or list(PRECISION_STRATEGIES), "strategy"),
                tols,
                peers=peers,
                optimizer=args.optimizer,
                budget_s=budget,
                min_rounds=2 if quick else 3,
                max_rounds=4 if quick else 20,
                torchode_mode=args.torchode_mode,
                torch_threads=args.torch_threads,
                reference_tol=1e-8 if quick else 1e-10,
                log=log,
            )
        else:
            default = ["checkpoint", "backsolve", "backsolve-seminorm"]
            tols = (
                [float(t) for t in args.tolerances]
                if args.tolerances
                else ([1e-3, 1e-6] if quick else list(TOLERANCES))
            )
            acc_wls = wls if args.workloads else [w for w in wls if w.name in ("toy", "cnf")]
            result = run_accuracy(
                acc_wls,
                pick(strategies(), args.strategies or default, "strategy"),
                tols,
                log=log,
            )
        result["environment"] = env
        result["quick"] = quick
        result["seconds"] = time.perf_counter() - t0
        for path in write_report(exp, result, out):
            log(f"wrote {path}")
        if failures(exp, result):
            status = 1
    return status


PRECISION_STRATEGIES = ("checkpoint", "backsolve", "backsolve-seminorm", "checked")
"""The odezoo strategies drawn by `precision` unless `--strategies`."""


def failures(exp: str, result: dict[str, Any]) -> bool:
    """Whether experiment `exp`'s `result` records an error (in a row, or for `peers` in
    a row's contender)."""
    if exp == "peers":
        return any("error" in c for r in result.get("rows", []) for c in r["contenders"].values())
    return any_failed(result)
