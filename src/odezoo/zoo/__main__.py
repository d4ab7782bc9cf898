"""`python -m odezoo.zoo build NAME RUN_DIR [--no-sweep]`: make a zoo entry from a run;
`python -m odezoo.zoo check [NAME ...]`: check entries against their cards."""

from __future__ import annotations

import argparse
import sys

from . import names
from ._build import CardMismatchError, build_entry, check_entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m odezoo.zoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="make an entry's weights, metrics, figures and card")
    b.add_argument("name")
    b.add_argument("run_dir")
    b.add_argument("--no-sweep", action="store_true", help="skip the tolerance sweep")
    c = sub.add_parser("check", help="recompute entries' metrics and compare with the cards")
    c.add_argument("names", nargs="*", help="entries (default: every entry with weights)")
    args = parser.parse_args(argv)
    if args.command == "build":
        metrics = build_entry(args.name, args.run_dir, sweep=not args.no_sweep)
        print(f"{args.name}: {metrics['metrics']}")
        return 0
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


if __name__ == "__main__":
    sys.exit(main())
