"""The command line: `odezoo bench adjoints --entry NAME_OR_RUN_DIR` (also `python -m
odezoo.bench adjoints --entry ...`, the same command): the adjoint strategies on a zoo
entry or run directory, with its own data and loss.

The built-in workloads' experiments (adjoints, scaling, peers, accuracy, precision) are
scripts run from a checkout, `python benchmarks/run.py` (`benchmarks/_harness/cli.py`,
which shares this module's options and output folder). Results go to `--out DIR`, or by
default to a fresh folder `runs/bench-<experiment>-<time>` in the working directory:
never into the committed `benchmarks/results` unless asked, and never into a non-empty
folder without `--force`. Nothing here imports JAX until an experiment runs, so
`odezoo --help` stays instant.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path
from typing import Any

from .._errors import InputError, RunDirError


def csv(text: str) -> list[str]:
    """The items of a comma-separated argument, stripped, empty ones dropped."""
    return [t.strip() for t in text.split(",") if t.strip()]


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The options every benchmark command takes (`odezoo bench` and
    `benchmarks/run.py`): `--quick`, `--strategies`, `--out`, `--force`, `--budget`,
    `--optimizer` and `--no-count`."""
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and few repetitions: checks the harness, not timings",
    )
    p.add_argument(
        "--strategies",
        type=csv,
        default=None,
        help="comma-separated strategy names (default: all for the experiment)",
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
        "--no-count", action="store_true", help="skip the counted run that measures backward NFE"
    )


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `bench` command to an `argparse` subparsers object (in `odezoo.cli`).

    Arguments:

    - `subparsers`: what `ArgumentParser.add_subparsers` returned.

    Returns the `bench` parser. The handler is its `func` default: `odezoo.cli` calls
    `args.func(args)`.
    """
    p = subparsers.add_parser(
        "bench",
        help="benchmark the adjoint strategies on a zoo entry or run directory",
        description="Benchmark the adjoint strategies on a zoo entry or run directory (any "
        "model with an ODE), on a batch of its own training data with its own loss: time, "
        "memory, gradient error and NFE. Results go to --out DIR (default: a new folder "
        "under runs/). The built-in workloads, the scaling, peer, accuracy and "
        "work-precision experiments run from a checkout: python benchmarks/run.py --help.",
    )
    p.add_argument("experiment", choices=("adjoints",), help="what to measure")
    p.add_argument(
        "--entry",
        metavar="NAME_OR_RUN_DIR",
        default=None,
        help="the zoo entry or run directory to benchmark (required)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="examples in the batch (default: the config's train.batch_size; quick: at most 8)",
    )
    add_run_arguments(p)
    p.set_defaults(func=run)
    return p


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


def pick(available: dict[str, Any], names: list[str] | None, what: str) -> list[Any]:
    if names is None:
        return list(available.values())
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InputError(f"unknown {what} {unknown}; choose from {sorted(available)}")
    return [available[n] for n in names]


def budget_of(args: argparse.Namespace) -> float:
    """Seconds of timed calls per measurement: `--budget`, else 5 (0.2 with `--quick`)."""
    return args.budget if args.budget is not None else (0.2 if args.quick else 5.0)


ENTRY_QUICK_STRATEGIES = ("checkpoint", "backsolve")
"""The strategies of `adjoints --entry NAME --quick` (all of `benchmark_adjoints`'s
defaults otherwise)."""


def run(args: argparse.Namespace) -> int:
    """`odezoo bench adjoints --entry NAME`: the entry's model, batch and loss through
    `benchmark_adjoints`; writes the report and returns the exit status (1 when a
    strategy failed)."""
    if args.entry is None:
        raise InputError(
            "give --entry NAME_OR_RUN_DIR, the zoo entry or run directory to benchmark (the "
            "built-in workloads run from a checkout: python benchmarks/run.py adjoints)"
        )
    out = output_dir(args)  # refuse a non-empty --out before any work
    if args.batch_size is not None and args.batch_size < 1:
        raise InputError(f"--batch-size must be a positive integer, got {args.batch_size}")

    from ._report import environment, write_report
    from ._user import benchmark_adjoints, entry_problem

    log = lambda msg: print(msg, flush=True)
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
        budget_s=budget_of(args),
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
    return 1 if failures(result) else 0


def _entry_batch(args: argparse.Namespace) -> int | None:
    if args.batch_size is not None:
        return args.batch_size
    if args.quick:
        from .. import zoo
        from ..config import full_config

        return min(8, int(full_config(zoo.config(args.entry))["train"]["batch_size"]))
    return None


def failures(result: dict[str, Any]) -> bool:
    """Whether a row of `result` records an error."""
    return any("error" in r for r in result.get("rows", []))
