"""`python -m odezoo.bench ARGS`: the same as `odezoo bench ARGS` (see `odezoo bench --help`)."""

import sys

from ..cli import main

sys.exit(main(["bench", *sys.argv[1:]]))
