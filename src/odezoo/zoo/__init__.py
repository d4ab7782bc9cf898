"""The odezoo model zoo: named, reproducible configs and their trained weights.

Entries are folders `<name>/config.json` (see `odezoo.config` for the schema), with
`model.eqx` once trained, found on [`search_path`][odezoo.zoo.search_path]. Wherever a
name is accepted, so is a run directory holding a `config.json`.

A user's own entries live in folders of their own: `odezoo zoo build NAME RUN --zoo DIR`
(or `build_entry(name, run, into=DIR)`) builds one there, and every lookup finds it
when told where: the keyword `zoo=DIR` of `names`, `config`, `load`, `create`,
`has_weights`, `entry_dir`, `entry_summary`, `summaries`, `check_entry` and
`reproduce_entry`; [`searching(DIR)`][odezoo.zoo.searching] for a block of code;
`--zoo DIR` on the command line; or `$ODEZOO_ZOO_PATH`. The shipped zoo is searched
last, and a name defined twice is an error that names both places.

The registry (names, configs) reads JSON files only; building and checking entries
imports JAX on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import CardMismatchError as CardMismatchError
from .._errors import UnknownEntryError as UnknownEntryError
from .._lazy import lazy_exports, type_checking_exports
from ._registry import config as config
from ._registry import create as create
from ._registry import entry_dir as entry_dir
from ._registry import has_weights as has_weights
from ._registry import load as load
from ._registry import names as names
from ._registry import search_path as search_path
from ._registry import searching as searching
from ._summary import EntrySummary as EntrySummary
from ._summary import entry_summary as entry_summary
from ._summary import summaries as summaries

if TYPE_CHECKING:  # the lazy exports, imported on first use (read by type_checking_exports)
    from ._build import build_entry as build_entry
    from ._check import CardCheck as CardCheck
    from ._check import check_entry as check_entry
    from ._compare import Comparison as Comparison
    from ._compare import compare as compare
    from ._compare import comparison_rows as comparison_rows
    from ._compare import comparison_table as comparison_table
    from ._compare import refresh_comparisons as refresh_comparisons
    from ._evaluate import headline_metrics as headline_metrics
    from ._evaluate import tolerance_sweep as tolerance_sweep
    from ._figure_registry import FigureContext as FigureContext
    from ._figure_registry import register_figures as register_figures
    from ._reproduce import Reproduction as Reproduction
    from ._reproduce import reproduce_entry as reproduce_entry

_EXPORTS = type_checking_exports(__file__)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
