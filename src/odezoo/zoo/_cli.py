"""`odezoo zoo ...`: the zoo maintainers' commands (also `python -m odezoo.zoo ...`).

```
odezoo zoo build NAME RUN_DIR [--no-sweep]   # make a zoo entry from a finished run
odezoo zoo check [NAME ...] [--json FILE]    # recompute entries' metrics against their cards
odezoo zoo reproduce NAME ... | --fast       # retrain entries and compare with their cards
odezoo zoo compare [--docs PAGE --figure PNG] # regularised entries against their siblings
```

Each command is a function `_cmd_<name>(args) -> int` (the exit status) registered in
`add_parser` with `set_defaults(func=...)`; the `odezoo`
command calls `args.func(args)` and turns odezoo errors into one line. Nothing here
imports JAX until a command runs.
"""

from __future__ import annotations

import argparse
import os
import sys


def add_zoo_option(p: argparse.ArgumentParser) -> None:
    """Give a command the `--zoo DIR` option: a folder of the user's entries, searched
    before `$ODEZOO_ZOO_PATH` and the shipped zoo (repeatable)."""
    p.add_argument(
        "--zoo",
        metavar="DIR",
        action="append",
        help="a folder of your own zoo entries, searched first (repeatable)",
    )


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `zoo` command and its subcommands to an `argparse` subparsers object.

    Arguments:

    - `subparsers`: what `ArgumentParser.add_subparsers` returned (in `odezoo.cli`).

    Returns the `zoo` parser. Each subcommand's handler is its `func` default.
    """
    p = subparsers.add_parser(
        "zoo",
        help="build and check zoo entries",
        description="Build zoo entries from training runs and check them against their cards.",
    )
    sub = p.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND", required=True)

    b = sub.add_parser(
        "build",
        help="make an entry's weights, metrics, figures and card from a run",
        description="Make zoo entry NAME (weights, metrics, figures, card) from the finished "
        "run in RUN_DIR (e.g. from `odezoo train NAME --out RUN_DIR`).",
    )
    b.add_argument("name", metavar="NAME", help="the zoo entry")
    b.add_argument("run_dir", metavar="RUN_DIR", help="the finished training run")
    b.add_argument("--no-sweep", action="store_true", help="skip the tolerance sweep")
    b.add_argument(
        "--zoo",
        metavar="DIR",
        action="append",
        help="build the entry into DIR/NAME (its config is taken from the run when DIR "
        "has none), a folder of your own entries that --zoo DIR (or $ODEZOO_ZOO_PATH) "
        "finds again",
    )
    b.set_defaults(func=_cmd_build)

    c = sub.add_parser(
        "check",
        help="recompute entries' metrics and compare them with their cards",
        description="Recompute each entry's card metrics from its shipped weights; exit 1 "
        "if any disagrees with its card.",
    )
    c.add_argument("names", metavar="NAME", nargs="*", help="entries (default: all trained)")
    c.add_argument(
        "--json",
        metavar="FILE",
        help="also write every entry's card values, recomputed values and tolerances "
        "to FILE (JSON)",
    )
    add_zoo_option(c)
    c.set_defaults(func=_cmd_check)

    r = sub.add_parser(
        "reproduce",
        help="retrain entries from their configs and compare with their cards",
        description=(
            "Retrain each entry as its card says (odezoo train NAME, in a temporary "
            "directory) and compare the retrained model's metrics with the card's. Prints "
            "'reproduced' or 'NOT reproduced' per entry; exit status 1 if any is not."
        ),
    )
    r.add_argument("names", nargs="*", metavar="NAME", help="entries to retrain")
    r.add_argument(
        "--fast",
        action="store_true",
        help="also every entry marked meta.card.reproduce_in_ci (about a minute each on "
        "2 CPU cores)",
    )
    r.add_argument(
        "--tolerance",
        type=float,
        metavar="RTOL",
        help="relative tolerance for every metric (default: 5%% on losses, 25%% on NFE, "
        "0.005 absolute on accuracies)",
    )
    r.add_argument(
        "--out", metavar="DIR", help="keep the run in DIR (one NAME only), to rebuild from it"
    )
    r.add_argument(
        "--json",
        metavar="FILE",
        help="also write every entry's card values, retrained values and bounds to FILE",
    )
    add_zoo_option(r)
    r.set_defaults(func=_cmd_reproduce)

    m = sub.add_parser(
        "compare",
        help="regularised entries against their unregularised siblings",
        description="Re-render the sibling comparison in every regularised entry's card "
        "(meta.card.sibling) from the entries' metrics.json, without evaluating anything, "
        "and print the comparison table; with --docs, also rewrite the table in that docs "
        "page (between its markers), and with --figure, draw metric against NFE there.",
    )
    m.add_argument("--docs", metavar="PAGE", help="docs page whose table to regenerate")
    m.add_argument("--figure", metavar="PNG", help="where to draw the metric-NFE figure")
    add_zoo_option(m)
    m.set_defaults(func=_cmd_compare)
    return p


def _cmd_build(args: argparse.Namespace) -> int:
    from ._build import build_entry

    into = args.zoo[0] if args.zoo else None
    metrics = build_entry(args.name, args.run_dir, into=into, sweep=not args.no_sweep)
    print(f"{args.name}: {metrics['metrics']}")
    return 0


def _write_json(path: str | None, results: dict) -> None:
    """Write `{name: result}` (dataclasses) to `path` as JSON, when asked to."""
    if path is None:
        return
    import dataclasses
    import json
    from pathlib import Path

    data = {name: dataclasses.asdict(r) for name, r in results.items()}
    Path(path).write_text(json.dumps(data, indent=1) + "\n")


def _cmd_check(args: argparse.Namespace) -> int:
    from ._check import check_entry
    from ._registry import entry_dir, has_weights, names

    todo = args.names or [n for n in names() if has_weights(n)]
    for name in todo:
        entry_dir(name)  # an unknown name: UnknownEntryError, with a suggestion
    results = {}
    for name in todo:
        results[name] = result = check_entry(name, throw=False)
        print(result, flush=True)
        if not result.ok:
            print(f"FAIL {name}: " + "; ".join(result.failures()), file=sys.stderr)
    _write_json(args.json, results)
    failed = sum(not r.ok for r in results.values())
    if len(todo) > 1:
        print(f"{len(todo) - failed} of {len(todo)} entries agree with their cards")
    return 1 if failed else 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    # Retrained in this process, with equinox's error mode of `odezoo train` (set before
    # equinox is first imported, below), which trained the cards.
    os.environ.setdefault("EQX_ON_ERROR", "nan")
    from .._errors import ConfigError
    from ._registry import entry_dir
    from ._reproduce import fast_entries, reproduce_entry

    todo = list(args.names)
    if args.fast:
        todo += [n for n in fast_entries() if n not in todo]
    if not todo:
        raise ConfigError("reproduce needs entry names or --fast")
    if args.out is not None and len(todo) != 1:
        raise ConfigError("--out takes one entry")
    if args.tolerance is not None and not args.tolerance >= 0:
        raise ConfigError(f"--tolerance must be >= 0, got {args.tolerance}")
    for name in todo:
        entry_dir(name)  # an unknown name: UnknownEntryError, with a suggestion
    failed = 0
    results = {}
    for name in todo:
        print(f"retraining {name} (odezoo train {name}) ...", file=sys.stderr, flush=True)
        try:
            result = reproduce_entry(name, tolerance=args.tolerance, out=args.out)
        except FileNotFoundError as e:
            print(f"NOT reproduced {name}: {e}", flush=True)
            failed += 1
            continue
        print(result, flush=True)
        results[name] = result
        failed += not result.reproduced
    _write_json(args.json, results)
    if len(todo) > 1:
        print(f"{len(todo) - failed} of {len(todo)} entries reproduced")
    return 1 if failed else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from ._compare import comparison_figure, comparison_table, refresh_comparisons, write_docs

    for name in refresh_comparisons():
        print(f"re-rendered the sibling comparison in {name}'s card", file=sys.stderr)
    print(comparison_table(), end="")
    if args.docs is not None:
        changed = write_docs(args.docs)
        print(f"{args.docs}: {'rewritten' if changed else 'unchanged'}", file=sys.stderr)
    if args.figure is not None:
        comparison_figure(args.figure)
    return 0
