"""The `odezoo` command: list, describe, train and evaluate zoo entries and runs.

```
odezoo list
odezoo info NAME
odezoo train NAME_OR_CONFIG [--steps N] [--seed S] [--batch-size B] [--lr LR]
             [--out DIR] [--resume] [--set key=value ...]
             [--coordinator-address HOST:PORT --num-processes N --process-id I]
odezoo eval NAME_OR_RUN_DIR [--rtol R] [--atol A] [--json]
```

Bad arguments and failures print one line `odezoo <command>: error: ...` and exit with a
non-zero status (2 for bad arguments, 1 for failures).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

_EXPECTED = (
    "ConfigError",
    "UnknownEntryError",
    "CheckpointError",
    "TrainingError",
    "SolverError",
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class _Fail(Exception):
    """A failure reported as one line."""


def _int_at_least(lowest: int, what: str):
    """An argparse type: an integer >= `lowest`, with a one-line error otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = lowest - 1
        if value < lowest:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonneg_int = _int_at_least(0, "an integer >= 0")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value (e.g. model.width=32), got {text!r}")
    return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `odezoo` command."""
    parser = _Parser(
        prog="odezoo",
        description="A JAX model zoo for neural ODEs: list, inspect, train and evaluate.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", help="list the zoo entries", description="List the zoo entries.")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser(
        "info", help="describe a zoo entry or run", description="Describe a zoo entry or run."
    )
    p.add_argument("name", metavar="NAME", help="a zoo entry name or a run directory")
    p.add_argument("--json", action="store_true", help="print the full config as JSON")

    p = sub.add_parser(
        "train",
        help="train a zoo entry or a config",
        description=(
            "Train a zoo entry, a config.json, or continue a run directory. Writes the run "
            "directory: config.json, metrics.jsonl, metrics.json, training.png, "
            "checkpoint.ckpt and model.eqx. JAX's persistent compilation cache is enabled "
            "in ~/.cache/odezoo/jax (or $XDG_CACHE_HOME/odezoo/jax; set "
            "ODEZOO_JAX_CACHE_DIR to another folder, or to 'off')."
        ),
    )
    p.add_argument(
        "target",
        metavar="NAME_OR_CONFIG",
        help="a zoo entry name, a config .json file, or a run directory",
    )
    p.add_argument("--steps", type=_nonneg_int, help="total training steps (train.steps)")
    p.add_argument("--seed", type=int, help="seed of model init and batches (seed)")
    p.add_argument("--batch-size", type=_positive_int, help="examples per step (train.batch_size)")
    p.add_argument("--lr", type=_positive_float, help="learning rate (train.lr)")
    p.add_argument(
        "--out", metavar="DIR", help="run directory (default runs/NAME; with --resume, RUN_DIR)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the checkpoint in --out exactly where it stopped",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        type=_assignment,
        action="append",
        default=[],
        help="override a config value, e.g. --set solver.rtol=1e-4 (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--no-cache", action="store_true", help="do not use the persistent compilation cache"
    )
    p.add_argument(
        "--coordinator-address", metavar="HOST:PORT", help="multi-host: address of process 0"
    )
    p.add_argument("--num-processes", type=_positive_int, help="multi-host: number of processes")
    p.add_argument("--process-id", type=_nonneg_int, help="multi-host: this process's number")

    p = sub.add_parser(
        "eval",
        help="evaluate a trained entry or run",
        description="Evaluate trained weights (model.eqx) on the config's held-out data.",
    )
    p.add_argument("target", metavar="NAME_OR_RUN_DIR", help="a zoo entry or a run directory")
    p.add_argument("--rtol", type=_positive_float, help="evaluate with this solver rtol")
    p.add_argument("--atol", type=_positive_float, help="evaluate with this solver atol")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument(
        "--check",
        action="store_true",
        help="recompute a zoo entry's card metrics from its shipped weights and exit 1 if "
        "they disagree with the card",
    )

    from .bench import add_parser as add_bench_parser  # odezoo bench (src/odezoo/bench/)

    add_bench_parser(sub)
    return parser


# -- commands ---------------------------------------------------------------------------


def _target_config(target: str) -> tuple[dict, str]:
    from . import zoo
    from .config import load_config

    path = Path(target)
    if path.is_file() or (path.is_dir() and (path / "config.json").is_file()):
        cfg = load_config(path)
        name = cfg.get("name") or (path.stem if path.is_file() else path.name)
        return cfg, name
    if target.endswith(".json") or "/" in target:
        raise _Fail(f"no config file or run directory at {target}")
    return zoo.config(target), target


def _cmd_list(args) -> int:
    from . import zoo

    rows = []
    for name in zoo.names():
        cfg = zoo.config(name)
        rows.append(
            {
                "name": name,
                "model": (cfg.get("model") or {}).get("type"),
                "data": (cfg.get("data") or {}).get("name"),
                "weights": zoo.has_weights(name),
                "description": cfg.get("description", ""),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(
            "no zoo entries found (searched: " + ", ".join(str(p) for p in zoo.search_path()) + ")"
        )
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        mark = "trained" if r["weights"] else "untrained"
        desc = r["description"].split(". ")[0]
        print(f"{r['name']:<{width}}  {r['model']:<10} {r['data']:<8} {mark:<9}  {desc}")
    return 0


def _cmd_info(args) -> int:
    import jax

    from . import zoo
    from .config import build_model, full_config
    from .nn import count_parameters

    cfg, name = _target_config(args.name)
    full = full_config(cfg)
    if args.json:
        print(json.dumps(full, indent=2))
        return 0
    model = jax.eval_shape(lambda: build_model(full))
    n_params = count_parameters(model)
    try:
        weights = zoo.has_weights(args.name)
    except Exception:
        weights = False
    print(f"name:        {name}")
    if full.get("description"):
        print(f"description: {full['description']}")
    m = {k: v for k, v in full["model"].items() if v is not None}
    print(f"model:       {json.dumps(m)}")
    print(f"parameters:  {n_params}")
    if "solver" in full:
        print(f"solver:      {json.dumps(full['solver'])}")
    print(f"data:        {json.dumps(full['data'])}")
    t = {k: v for k, v in full["train"].items() if v is not None}
    print(f"train:       {json.dumps(t)}")
    print(f"weights:     {'yes (model.eqx)' if weights else 'none yet'}")
    return 0


def _apply_overrides(cfg: dict, args) -> dict:
    from .config import parse_value, set_value

    for key, value in args.overrides:
        cfg = set_value(cfg, key, parse_value(value))
    for attr, key in (
        ("steps", "train.steps"),
        ("batch_size", "train.batch_size"),
        ("lr", "train.lr"),
        ("seed", "seed"),
    ):
        value = getattr(args, attr)
        if value is not None:
            cfg = set_value(cfg, key, value)
    return cfg


def _cmd_train(args) -> int:
    from .train import initialize_distributed

    dist = (args.coordinator_address, args.num_processes, args.process_id)
    if any(v is not None for v in dist):
        if args.num_processes != 1 and any(v is None for v in dist):
            raise _Fail(
                "multi-host training needs --coordinator-address, --num-processes "
                "and --process-id together"
            )
        try:
            initialize_distributed(*dist)
        except ValueError as e:
            raise _Fail(str(e)) from None

    import jax

    from .config import (
        build_data,
        build_evaluate,
        build_loss,
        build_model,
        build_optimizer,
        build_tolerance,
        full_config,
        train_key,
    )
    from .train import enable_compilation_cache, errors_as_nan, fit

    cfg, name = _target_config(args.target)
    cfg = full_config(_apply_overrides(cfg, args))
    if args.out:
        out = Path(args.out)
    elif args.resume and Path(args.target).is_dir():
        out = Path(args.target)  # `odezoo train RUN_DIR --resume` continues that run
    else:
        out = Path("runs") / name
    if (out / "checkpoint.ckpt").exists() and not args.resume:
        raise _Fail(
            f"{out} already holds a run: pass --resume to continue it, or choose another --out"
        )
    errors_as_nan()  # lets the persistent cache store ODE train steps (no host callbacks)
    cache = None if args.no_cache else enable_compilation_cache()
    data = build_data(cfg)
    t = cfg["train"]
    main = jax.process_index() == 0
    if main:
        where = f", compilation cache {cache}" if cache else ""
        print(f"training {name} for {t['steps']} steps into {out}{where}", file=sys.stderr)
    result = fit(
        build_model(cfg),
        data.train,
        loss=build_loss(cfg),
        optimizer=build_optimizer(cfg),
        steps=t["steps"],
        batch_size=t["batch_size"],
        key=train_key(cfg),
        tolerance=build_tolerance(cfg),
        evaluate=build_evaluate(cfg, data),
        eval_every=t["eval_every"],
        log_every=t["log_every"],
        run_dir=out,
        config=cfg,
        checkpoint_every=t["checkpoint_every"],
        resume=args.resume,
        progress=not args.no_progress,
    )
    if main:
        s = result.summary
        parts = [f"{s['steps']} steps", f"loss {_fmt(s['final_loss'])}"]
        if s.get("nfe_forward_final") is not None:
            parts.append(f"NFE {s['nfe_forward_final']}")
        if s.get("eval"):
            parts += [f"eval {k} {_fmt(v)}" for k, v in s["eval"].items() if k != "step"]
        parts.append(f"compile {_fmt(s['compile_time_s'])} s")
        parts.append(f"median step {_fmt(s['step_time_median_s'])} s")
        print("done: " + ", ".join(parts) + f"; run directory {out}")
    return 0


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _cmd_eval(args) -> int:
    from . import zoo
    from .config import build_evaluate, full_config

    if args.check:
        from .zoo._build import CardMismatchError, check_entry

        if args.rtol is not None or args.atol is not None:
            raise _Fail("--check uses the card's own solver settings; drop --rtol/--atol")
        try:
            measured = check_entry(args.target)
        except CardMismatchError as e:
            raise _Fail(str(e)) from None
        except FileNotFoundError as e:
            raise _Fail(f"{args.target} has no card to check against ({e})") from None
        print(json.dumps(measured) if args.json else f"{args.target}: card confirmed {measured}")
        return 0

    cfg = full_config(zoo.config(args.target))
    model = zoo.load(args.target)
    changes = {k: getattr(args, k) for k in ("rtol", "atol") if getattr(args, k) is not None}
    ode = model.ode_model()
    if changes:
        if ode is None:
            raise _Fail(f"--rtol/--atol apply to ODE models; {cfg['model']['type']} has none")
        model = model.with_solver(**changes)
        ode = model.ode_model()
    t0 = time.perf_counter()
    metrics = build_evaluate(cfg)(model)
    elapsed = time.perf_counter() - t0
    solver = None if ode is None else ode.solver
    report = {
        "target": args.target,
        "metrics": metrics,
        "solver": solver.to_config() if solver is not None else None,
        "seconds": elapsed,
    }
    if args.json:
        print(json.dumps(report))
    else:
        tol = f" at rtol={solver.rtol:g}, atol={solver.atol:g}" if solver is not None else ""
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in metrics.items())
        print(f"{args.target}{tol}: {shown} ({elapsed:.2f} s)")
    return 0


def _cmd_bench(args) -> int:
    return args.func(args)


_COMMANDS = {
    "list": _cmd_list,
    "info": _cmd_info,
    "train": _cmd_train,
    "eval": _cmd_eval,
    "bench": _cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `odezoo` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    prog = f"odezoo {args.command}"
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 -- expected failures are one line
        if isinstance(e, _Fail | FileNotFoundError | FileExistsError) or (
            type(e).__name__ in _EXPECTED or isinstance(e, ValueError | KeyError)
        ):
            message = " ".join(str(e).split())
            print(f"{prog}: error: {message}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
