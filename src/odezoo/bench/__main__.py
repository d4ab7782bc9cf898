"""`python -m odezoo.bench ARGS`: the same as `odezoo bench ARGS`."""

import sys

from ._cli import main

sys.exit(main())
