"""`python -m odezoo.zoo build NAME RUN_DIR [--no-sweep]`: make a zoo entry from a run;
`python -m odezoo.zoo check [NAME ...]`: check entries' cards against their weights;
`python -m odezoo.zoo reproduce NAME [NAME ...] | --fast`: retrain entries and compare
the results with their cards."""

from __future__ import annotations

import argparse
import sys

from . import names
from ._build import CardMismatchError, build_entry, check_entry, fast_entries, reproduce_entry


def build_parser(prog: str = "python -m odezoo.zoo") -> argparse.ArgumentParser:
    """The argument parser of the zoo's maintenance commands (build, check, reproduce)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="make an entry's weights, metrics, figures and card")
    b.add_argument("name")
    b.add_argument("run_dir")
    b.add_argument("--no-sweep", action="store_true", help="skip the tolerance sweep")
    c = sub.add_parser("check", help="recompute entries' metrics and compare with the cards")
    c.add_argument("names", nargs="*", help="entries (default: every entry with weights)")
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
        "--out",
        metavar="DIR",
        help="keep the run in DIR (one NAME only), to rebuild the entry from it",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "build":
        metrics = build_entry(args.name, args.run_dir, sweep=not args.no_sweep)
        print(f"{args.name}: {metrics['metrics']}")
        return 0
    if args.command == "reproduce":
        return _reproduce(parser, args)
    from ._registry import has_weights

    failed = 0
    for name in args.names or [n for n in names() if has_weights(n)]:
        try:
            measured = check_entry(name)
        except CardMismatchError as e:
            print(f"FAIL {e}", file=sys.stderr)
            failed += 1
        else:
            print(f"ok   {name}: {measured}")
    return 1 if failed else 0


def _reproduce(parser: argparse.ArgumentParser, args) -> int:
    todo = list(args.names)
    if args.fast:
        todo += [n for n in fast_entries() if n not in todo]
    if not todo:
        parser.error("reproduce needs entry names or --fast")
    if args.out is not None and len(todo) != 1:
        parser.error("--out takes one entry")
    if args.tolerance is not None and not args.tolerance >= 0:
        parser.error(f"--tolerance must be >= 0, got {args.tolerance}")
    for name in todo:
        names_known = names()
        if name not in names_known:
            parser.error(f"unknown zoo entry {name!r}; valid names: {', '.join(names_known)}")
    failed = 0
    for name in todo:
        print(f"retraining {name} (odezoo train {name}) ...", file=sys.stderr, flush=True)
        try:
            result = reproduce_entry(name, tolerance=args.tolerance, out=args.out)
        except FileNotFoundError as e:
            print(f"NOT reproduced {name}: {e}", flush=True)
            failed += 1
            continue
        print(result, flush=True)
        failed += not result.reproduced
    if len(todo) > 1:
        print(f"{len(todo) - failed} of {len(todo)} entries reproduced")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
