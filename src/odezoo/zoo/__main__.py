"""`python -m odezoo.zoo ARGS`: the same as `odezoo zoo ARGS` (see `odezoo zoo --help`)."""

import sys

from ..cli import main

sys.exit(main(["zoo", *sys.argv[1:]]))
