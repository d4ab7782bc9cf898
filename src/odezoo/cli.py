"""The `odezoo` command: list, describe, train and evaluate zoo entries and runs;
build and check zoo entries; benchmark the adjoints of an entry or run.

```
odezoo list [--json]
odezoo info NAME_OR_RUN_DIR [--json]
odezoo train NAME_OR_CONFIG [--steps N] [--seed S] [--batch-size B] [--lr LR]
             [--out DIR] [--resume] [--set key=value ...]
             [--coordinator-address HOST:PORT --num-processes N --process-id I]
odezoo eval NAME_OR_RUN_DIR [--rtol R] [--atol A] [--max-steps N] [--json] [--check]
odezoo zoo {build,check} ...
odezoo bench adjoints --entry NAME_OR_RUN_DIR [--quick] [--strategies S,...] [--out DIR] ...
```

Every command is a function `args -> exit status` stored as its parser's `func` default.
Bad arguments and failures print one line `odezoo <command>: error: ...` on stderr and
exit with a non-zero status (2 for bad arguments, 1 for failures, 130 when interrupted):
odezoo's own errors ([`OdezooError`][odezoo.OdezooError]) print their message; anything
else prints its type and message, and `ODEZOO_DEBUG=1` shows its traceback instead.
`--help`, `list` and `info` do not import JAX, so they answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from ._errors import ConfigError, OdezooError, one_line
from .zoo._cli import add_zoo_option
from .zoo._registry import searching

DEBUG_ENV = "ODEZOO_DEBUG"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class _Fail(OdezooError):
    """A failure of a command's arguments or target, reported as one line."""


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

    p = sub.add_parser(
        "list",
        help="list the zoo entries",
        description=(
            "List the zoo entries with their headline test metric (accuracy, or the test "
            "loss named by the loss each trains with) and the forward NFE of a test solve."
        ),
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--sort",
        choices=("name", "model", "data", "metric", "nfe", "parameters"),
        default="name",
        help="order of the rows: metric groups by headline metric, best first; nfe and "
        "parameters put the cheapest first (default name)",
    )
    add_zoo_option(p)
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser(
        "info", help="describe a zoo entry or run", description="Describe a zoo entry or run."
    )
    p.add_argument("name", metavar="NAME_OR_RUN_DIR", help="a zoo entry name or a run directory")
    p.add_argument(
        "--json", action="store_true", help="print the full config (with defaults) as JSON"
    )
    add_zoo_option(p)
    p.set_defaults(func=_cmd_info)

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
    add_zoo_option(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "eval",
        help="evaluate a trained entry or run",
        description="Evaluate trained weights (model.eqx) on the config's held-out data.",
    )
    p.add_argument("target", metavar="NAME_OR_RUN_DIR", help="a zoo entry or a run directory")
    p.add_argument("--rtol", type=_positive_float, help="evaluate with this solver rtol")
    p.add_argument("--atol", type=_positive_float, help="evaluate with this solver atol")
    p.add_argument("--max-steps", type=_positive_int, help="evaluate with this solver max_steps")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument(
        "--check",
        action="store_true",
        help="recompute a zoo entry's card metrics from its shipped weights and exit 1 if "
        "they disagree with the card",
    )
    add_zoo_option(p)
    p.set_defaults(func=_cmd_eval)

    from .bench._cli import add_parser as add_bench_parser  # odezoo bench ...
    from .zoo._cli import add_parser as add_zoo_parser  # odezoo zoo build|check ...

    add_zoo_parser(sub)
    add_bench_parser(sub)
    return parser


# -- commands ---------------------------------------------------------------------------


def _terminal_width() -> int:
    return max(60, shutil.get_terminal_size((100, 24)).columns)


def _cmd_list(args) -> int:
    from . import zoo

    rows = zoo.summaries(sort=args.sort)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return 0
    if not rows:
        print(
            "no zoo entries found (searched: " + ", ".join(str(p) for p in zoo.search_path()) + ")"
        )
        return 0
    columns = ["NAME", "MODEL", "DATA", "METRIC", "NFE", "WEIGHTS"]
    table = [columns]
    table += [
        [
            r.name,
            r.model,
            r.data,
            "-" if r.metric is None else f"{r.metric} {r.value:.4g}",
            "-" if r.nfe is None else f"{r.nfe:.4g}",
            "yes" if r.weights else "no",
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    room = _terminal_width() - sum(widths) - 2 * len(columns) - 1
    if room < 20:
        # A narrow terminal: the description says more than the data's name.
        room += widths[2] + 2
        table = [row[:2] + row[3:] for row in table]
        widths = widths[:2] + widths[3:]
    descriptions = ["DESCRIPTION"] + [
        textwrap.shorten(r.description, room, placeholder=" ...", break_on_hyphens=False)
        for r in rows
    ]
    if room < 10:  # too narrow even so: `--json` has it all
        descriptions = [""] * len(descriptions)
    for row, desc in zip(table, descriptions, strict=True):
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        print("  ".join([*cells, desc]).rstrip())
    return 0


def _parameter_count(name_or_dir: str, cfg: dict) -> int:
    """The model's parameter count: the card's (`metrics.json`), else counted from the
    config (this imports JAX)."""
    from . import zoo

    try:
        folder = zoo.entry_dir(name_or_dir) if not Path(name_or_dir).is_dir() else None
    except OdezooError:
        folder = None
    folder = folder or Path(name_or_dir)
    try:
        recorded = json.loads((folder / "metrics.json").read_text()).get("parameters")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if isinstance(recorded, int):
        return recorded
    import equinox as eqx

    from .config import build_model, full_config
    from .nn import count_parameters

    # filter_eval_shape: a model may hold functions (eqx.nn.MLP's activations)
    return count_parameters(eqx.filter_eval_shape(lambda: build_model(full_config(cfg))))


def _cmd_info(args) -> int:
    from . import zoo
    from .zoo._registry import named_config

    cfg, name = named_config(args.name)
    if args.json:
        from .config import full_config

        print(json.dumps(full_config(cfg), indent=2))
        return 0
    width = _terminal_width()

    def field(label: str, text: Any) -> None:
        head = f"{label + ':':<13}"
        print(
            textwrap.fill(
                " ".join(str(text).split()),
                width,
                initial_indent=head,
                subsequent_indent=" " * len(head),
                break_on_hyphens=False,
                break_long_words=False,
            )
        )

    field("name", name)
    if cfg.get("description"):
        field("description", cfg["description"])
    for section in ("model", "solver", "data", "train"):
        if isinstance(cfg.get(section), dict):
            field(section, json.dumps({k: v for k, v in cfg[section].items() if v is not None}))
    field("parameters", _parameter_count(args.name, cfg))
    try:
        weights = zoo.has_weights(args.name)
    except OdezooError:
        weights = False
    field("weights", "yes (model.eqx)" if weights else "none yet")
    print(f"(defaults spelled out: odezoo info {args.name} --json)")
    return 0


def _kind(value: Any) -> str | None:
    """What kind of value a config setting holds, for checking `--set` values."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return None  # lists, objects and null: left to the config's own checks


def _check_override(base: dict, key: str, text: str, value: Any) -> None:
    """Refuse a `--set` value of another kind than the setting's current (or default)
    value, e.g. `model.width=twenty`: a ConfigError now, not a failure deep in JAX."""
    current: Any = base
    for part in key.split("."):
        if not isinstance(current, dict) or part not in current:
            return  # an unknown key: the config names it
        current = current[part]
    want, got = _kind(current), _kind(value)
    if want is None or value is None or want == got:
        return
    raise ConfigError(
        f"--set {key}={text}: {key} takes {want} (it is {json.dumps(current)}), "
        f"got {json.dumps(value)}"
    )


def _overrides(cfg: dict, args) -> list[tuple[str, Any]]:
    """The config changes the arguments ask for, in order: each `--set` (its value
    parsed and checked against the setting's kind), then `--steps`, `--batch-size`,
    `--lr` and `--seed`."""
    from .config import full_config
    from .config._schema import parse_value

    base = full_config(cfg)
    changes = []
    for key, text in args.overrides:
        value = parse_value(text)
        _check_override(base, key, text, value)
        changes.append((key, value))
    for attr, key in (
        ("steps", "train.steps"),
        ("batch_size", "train.batch_size"),
        ("lr", "train.lr"),
        ("seed", "seed"),
    ):
        value = getattr(args, attr)
        if value is not None:
            changes.append((key, value))
    return changes


def _cmd_train(args) -> int:
    # Equinox reads EQX_ON_ERROR once, when it is first imported (below): with "nan" its
    # run-time checks leave no host callback in the train step, so JAX's persistent cache
    # can store it; `fit` reads solver failures from the solve statistics instead.
    os.environ.setdefault("EQX_ON_ERROR", "nan")
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

    from .train import errors_as_nan, train_config
    from .zoo._registry import named_config

    cfg, name = named_config(args.target)
    overrides = _overrides(cfg, args)
    if args.out:
        out = Path(args.out)
    elif args.resume and Path(args.target).is_dir():
        out = Path(args.target)  # `odezoo train RUN_DIR --resume` continues that run
    else:
        out = Path("runs") / name
    errors_as_nan()  # lets the persistent cache store ODE train steps (no host callbacks)
    # Nothing a user wrote is overwritten: a RunDirError (one line) says what to do.
    result = train_config(
        args.target,
        out,
        overrides=overrides,
        resume=args.resume,
        progress=not args.no_progress,
        compilation_cache=not args.no_cache,
        log=lambda line: print(line, file=sys.stderr),
    )
    if jax.process_index() == 0:
        s = result.summary
        if result.steps_run == 0 and args.resume:
            print(f"unchanged: {out} (its summary is kept in metrics.json)")
            return 0
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
    from ._format import format_number  # numpy: not imported by `--help` and `list`

    return format_number(v)


def _cmd_eval(args) -> int:
    from . import zoo
    from .config import build_evaluate, full_config

    changes = {
        k: getattr(args, k) for k in ("rtol", "atol", "max_steps") if getattr(args, k) is not None
    }
    if args.check:
        from .zoo import check_entry

        if changes:
            raise _Fail(
                "--check uses the card's own solver settings; drop --rtol/--atol/--max-steps"
            )
        name = _entry_name(args.target)
        try:
            result = check_entry(name)
        except FileNotFoundError as e:
            raise _Fail(f"{args.target} has no card to check against ({e})") from None
        print(json.dumps(result.measured) if args.json else f"card confirmed: {result}")
        return 0

    cfg = full_config(zoo.config(args.target))
    model = zoo.load(args.target)
    ode = model.ode_model()
    if changes:
        if ode is None:
            raise _Fail(
                f"--rtol/--atol/--max-steps apply to ODE models; {cfg['model']['type']} has none"
            )
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


def _entry_name(target: str) -> str:
    """The zoo entry `target` names: an entry name, or the path of an entry's folder.
    A run directory is not an entry (it has no card)."""
    from . import zoo

    path = Path(target)
    if not path.is_dir():
        zoo.entry_dir(target)  # an unknown name: UnknownEntryError, with a suggestion
        return target
    try:
        if zoo.entry_dir(path.name).resolve() == path.resolve():
            return path.name
    except OdezooError:
        pass
    raise _Fail(
        f"{target} is a run directory, not a zoo entry: --check compares an entry's shipped "
        f"weights with its card. Evaluate the run with `odezoo eval {target}`, or make it an "
        f"entry with `odezoo zoo build NAME {target}`"
    )


def _is_solver_failure(e: BaseException) -> bool:
    eqx = sys.modules.get("equinox")
    return eqx is not None and isinstance(e, eqx.EquinoxRuntimeError)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `odezoo` console script; returns the exit status.

    Arguments:

    - `argv`: the arguments (default: `sys.argv[1:]`).

    ```python
    from odezoo.cli import main

    assert main(["list"]) == 0
    ```
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a bad argument (2, its line already printed)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    prog = " ".join(["odezoo", args.command, getattr(args, "zoo_command", None) or ""]).strip()
    try:
        with searching(getattr(args, "zoo", None)):
            return args.func(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `odezoo list | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (OdezooError, OSError) as e:
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 -- an unexpected failure is one line too
        if os.environ.get(DEBUG_ENV):
            raise
        if _is_solver_failure(e):  # odezoo's own check inside jit, e.g. max_steps
            print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
            return 1
        message = one_line(e)
        if len(message) > 300:
            message = message[:297] + "..."
        print(
            f"{prog}: error: unexpected {type(e).__name__}: {message} "
            f"(set {DEBUG_ENV}=1 to see the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
