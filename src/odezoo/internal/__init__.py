"""odezoo's internals, as `equinox.internal` keeps equinox's: the pieces the library is
built from, exported for its own modules, its tests, the benchmark scripts and the
curious, with no promise that they stay as they are from one release to the next.

A user's calls are in the public namespaces (`odezoo`, `odezoo.nn`, `odezoo.train`,
`odezoo.losses`, `odezoo.metrics`, `odezoo.config`, `odezoo.data`, `odezoo.zoo`,
`odezoo.bench`). Here:

- solving: [`check_solution`][odezoo.internal.check_solution] (a failed solve as an
  error, as every model's `__call__` raises it), the adjoint config reader
  [`parse_adjoint`][odezoo.internal.parse_adjoint], the result of
  `count_evaluations` ([`EvaluationCount`][odezoo.internal.EvaluationCount]) and the
  error-estimate regulariser's [`ErrorAccumulator`][odezoo.internal.ErrorAccumulator];
- models: the input check [`check_input`][odezoo.internal.check_input] and the vector
  fields the ODE models integrate (`DynamicsField`, `CNFField`, `CDEField`);
- configs: the seeds' key derivation (`model_key`, `train_key`), the command line's value
  parser (`parse_value`) and the schema version (`CONFIG_VERSION`);
- the zoo's machinery: the figure registry (`FIGURES`), the fast reproduce set
  (`fast_entries`), provenance (`source_version`) and the card tolerances
  (`tolerance_bound`, `tolerance_from_spread`, `read_tolerances`,
  `write_card_tolerances`);
- benchmarks: the machine a report was measured on (`environment`).

Nothing is imported until first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports, type_checking_exports

if TYPE_CHECKING:  # the lazy exports, imported on first use (read by type_checking_exports)
    from .._accumulate import ErrorAccumulator as ErrorAccumulator
    from .._adjoint import parse_adjoint as parse_adjoint
    from .._counting import EvaluationCount as EvaluationCount
    from .._solve import check_solution as check_solution
    from ..bench._report import environment as environment
    from ..config._schema import CONFIG_VERSION as CONFIG_VERSION
    from ..config._schema import model_key as model_key
    from ..config._schema import parse_value as parse_value
    from ..config._schema import train_key as train_key
    from ..nn._base import check_input as check_input
    from ..nn._cde import CDEField as CDEField
    from ..nn._cnf import CNFField as CNFField
    from ..nn._odenet import DynamicsField as DynamicsField
    from ..zoo._card_tolerance import read_tolerances as read_tolerances
    from ..zoo._card_tolerance import tolerance_bound as tolerance_bound
    from ..zoo._card_tolerance import tolerance_from_spread as tolerance_from_spread
    from ..zoo._card_tolerance import write_card_tolerances as write_card_tolerances
    from ..zoo._figure_registry import FIGURES as FIGURES
    from ..zoo._provenance import source_version as source_version
    from ..zoo._reproduce import fast_entries as fast_entries

_EXPORTS = type_checking_exports(__file__)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
