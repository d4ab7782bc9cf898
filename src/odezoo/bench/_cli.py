"""The command line: `odezoo bench {adjoints,scaling,peers,accuracy,precision,all}` (also
`python -m odezoo.bench ...`, the same command).

Results go to `--out DIR`, or by default to a fresh folder `runs/bench-<experiment>-<time>`
in the working directory: never into the committed `benchmarks/results` unless asked, and
never into a non-empty folder without `--force`. Nothing here imports JAX until an
experiment runs, so `odezoo --help` stays instant.
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._errors import InputError, RunDirError
from ._defaults import CONTENDERS, PRECISION_TOLERANCES, STEPS, TOLERANCES

COMMANDS = ("adjoints", "scaling", "peers", "accuracy", "precision", "all")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", choices=COMMANDS, help="what to measure")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and few repetitions: checks the harness, not timings",
    )
    p.add_argument(
        "--workloads",
        type=_csv,
        default=None,
        help="comma-separated: toy,mlp,cnf,conv,spiral (default: all)",
    )
    p.add_argument(
        "--entry",
        metavar="NAME_OR_RUN_DIR",
        default=None,
        help="`adjoints` only: benchmark a zoo entry or run directory (any model with an ODE) "
        "on a batch of its own training data with its own loss, instead of the built-in "
        "workloads",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="with --entry: examples in the batch (default: the config's train.batch_size; "
        "quick: at most 8)",
    )
    p.add_argument(
        "--strategies",
        type=_csv,
        default=None,
        help="comma-separated strategy names (default: all for the experiment)",
    )
    p.add_argument(
        "--peers",
        type=_csv,
        default=None,
        help=f"comma-separated contenders for `peers` (default: {','.join(CONTENDERS)})",
    )
    p.add_argument(
        "--steps",
        type=_csv,
        default=None,
        help=f"step counts for `scaling` (default: {','.join(map(str, STEPS))})",
    )
    p.add_argument(
        "--tolerances",
        type=_csv,
        default=None,
        help="tolerances for `accuracy` (default: "
        + ",".join(f"{t:g}" for t in TOLERANCES)
        + ") and `precision` (default: "
        + ",".join(f"{t:g}" for t in PRECISION_TOLERANCES)
        + ")",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="output folder (default: a new folder runs/bench-EXPERIMENT-TIME); "
        "a non-empty folder needs --force",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write into --out even if it holds files (replacing results of the same name)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of timed calls per measurement (default 5, quick 0.2)",
    )
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument(
        "--skip",
        type=_csv,
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
    p.add_argument(
        "--no-count", action="store_true", help="skip the counted run that measures backward NFE"
    )


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `bench` command to an `argparse` subparsers object (in `odezoo.cli`).

    The handler is the parser's `func` default: `odezoo.cli` calls `args.func(args)`.
    """
    p = subparsers.add_parser(
        "bench",
        help="benchmark adjoint strategies, scaling and peers",
        description="Benchmark adjoint strategies: time, memory, gradient error and NFE; "
        "scaling with the number of steps; a comparison with torchdiffeq and "
        "jax.experimental.ode. Results go to --out DIR (default: a new folder under runs/).",
    )
    _configure(p)
    p.set_defaults(func=run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run `odezoo bench ARGS` (also `python -m odezoo.bench ARGS`); returns the exit
    status. Errors are one line on stderr, as for every `odezoo` command.

    ```python
    from odezoo import bench

    assert bench.main(["--help"]) == 0
    ```
    """
    import sys

    from ..cli import main as odezoo_main

    return odezoo_main(["bench", *(sys.argv[1:] if argv is None else argv)])


def output_dir(args: argparse.Namespace) -> Path:
    """The folder results go to: `--out`, which must be empty or missing unless
    `--force`; by default a new folder `runs/bench-<experiment>-<UTC time>`."""
    if args.out is not None:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise RunDirError(f"--out {out} is a file, not a folder")
        if out.is_dir() and any(out.iterdir()) and not args.force:
            raise RunDirError(
                f"--out {out} already holds files (results would be replaced): pass --force "
                "to write there anyway, or choose an empty or new folder"
            )
        return out
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"bench-{args.experiment}{'-quick' if args.quick else ''}-{stamp}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def _pick(available: dict[str, Any], names: list[str] | None, what: str) -> list[Any]:
    if names is None:
        return list(available.values())
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InputError(f"unknown {what} {unknown}; choose from {sorted(available)}")
    return [available[n] for n in names]


def run(args: argparse.Namespace) -> int:
    """Run the experiment(s) named by parsed arguments and write the reports."""
    out = output_dir(args)  # refuse a non-empty --out before any work

    import jax

    from ._accuracy import run_accuracy
    from ._adjoints import run_adjoints
    from ._peers import run_peers
    from ._precision import PRECISION_PEERS, run_precision
    from ._report import environment, write_report
    from ._scaling import run_scaling, scaling_strategies, scaling_workload
    from ._strategies import strategies
    from ._workloads import workloads

    quick = args.quick
    budget = args.budget if args.budget is not None else (0.2 if quick else 5.0)
    log = lambda msg: print(msg, flush=True)
    if args.entry is not None:
        if args.experiment != "adjoints":
            raise InputError(f"--entry is for `adjoints`, not `{args.experiment}`")
        return _run_entry(args, out, budget, log)
    platform = "gpu" if jax.devices()[0].platform == "gpu" else "cpu"
    wls = _pick(workloads(quick, platform), args.workloads, "workload")
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
                _pick(strategies(), args.strategies, "strategy"),
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
                _pick(scaling_strategies(), args.strategies, "strategy"),
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
                _pick(strategies(), args.strategies or list(PRECISION_STRATEGIES), "strategy"),
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
                _pick(strategies(), args.strategies or default, "strategy"),
                tols,
                log=log,
            )
        result["environment"] = env
        result["quick"] = quick
        result["seconds"] = time.perf_counter() - t0
        for path in write_report(exp, result, out):
            log(f"wrote {path}")
        if _failures(exp, result):
            status = 1
    return status


ENTRY_QUICK_STRATEGIES = ("checkpoint", "backsolve")
"""The strategies of `adjoints --entry NAME --quick` (all of `benchmark_adjoints`'s
defaults otherwise)."""


def _run_entry(args: argparse.Namespace, out: Path, budget: float, log) -> int:
    """`odezoo bench adjoints --entry NAME`: the entry's model, batch and loss through
    `benchmark_adjoints`."""
    from ._report import environment, write_report
    from ._user import benchmark_adjoints, entry_problem

    if args.batch_size is not None and args.batch_size < 1:
        raise InputError(f"--batch-size must be a positive integer, got {args.batch_size}")
    quick = args.quick
    t0 = time.perf_counter()
    env = environment()
    model, batch, loss, info = entry_problem(args.entry, batch_size=_entry_batch(args))
    name = Path(str(args.entry)).name or str(args.entry)
    log(
        f"bench: {name}: {info['model']}, {info['weights']}, batch {info['batch_size']}, "
        f"loss {info['loss']}; writing results to {out}"
    )
    result = benchmark_adjoints(
        model,
        batch,
        loss,
        strategies=args.strategies or (ENTRY_QUICK_STRATEGIES if quick else None),
        name=name,
        optimizer=args.optimizer,
        budget_s=budget,
        min_reps=2 if quick else 5,
        max_reps=5 if quick else 50,
        count=not args.no_count,
        reference_tol=1e-8 if quick else 1e-10,
        log=log,
    )
    result["workloads"][name]["note"] = ", ".join(
        x for x in (result["workloads"][name]["note"], info["weights"]) if x
    )
    result.update(entry=info, environment=env, quick=quick, seconds=time.perf_counter() - t0)
    for path in write_report("adjoints", result, out):
        log(f"wrote {path}")
    return 1 if _failures("adjoints", result) else 0


def _entry_batch(args: argparse.Namespace) -> int | None:
    if args.batch_size is not None:
        return args.batch_size
    if args.quick:
        from .. import zoo
        from ..config import full_config

        return min(8, int(full_config(zoo.config(args.entry))["train"]["batch_size"]))
    return None


PRECISION_STRATEGIES = ("checkpoint", "backsolve", "backsolve-seminorm", "checked")
"""The odezoo strategies drawn by `odezoo bench precision` unless `--strategies`."""


def _failures(exp: str, result: dict[str, Any]) -> bool:
    rows = result.get("rows", [])
    if exp == "peers":
        return any("error" in c for r in rows for c in r["contenders"].values())
    return any("error" in r for r in rows)
