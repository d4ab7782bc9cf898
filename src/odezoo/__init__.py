"""odezoo: a JAX model zoo for neural ordinary differential equations.

Everything below is imported on first use, so `import odezoo` (and the `odezoo`
command's `--help` and `list`) does not import JAX; `odezoo.zoo.load(...)` works
after a plain `import odezoo`.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import CardMismatchError as CardMismatchError
from ._errors import CheckpointError as CheckpointError
from ._errors import ConfigError as ConfigError
from ._errors import InputError as InputError
from ._errors import MissingFileError as MissingFileError
from ._errors import OdezooError as OdezooError
from ._errors import RunDirError as RunDirError
from ._errors import SolverError as SolverError
from ._errors import TrainingError as TrainingError
from ._errors import UnknownEntryError as UnknownEntryError
from ._lazy import lazy_exports, type_checking_exports

if TYPE_CHECKING:  # the lazy exports, imported on first use (read by type_checking_exports)
    from . import bench as bench
    from . import config as config
    from . import data as data
    from . import internal as internal
    from . import losses as losses
    from . import metrics as metrics
    from . import nn as nn
    from . import plot as plot
    from . import train as train
    from . import zoo as zoo
    from ._adjoint import AbstractAdjoint as AbstractAdjoint
    from ._adjoint import AutoAdjoint as AutoAdjoint
    from ._adjoint import BacksolveAdjoint as BacksolveAdjoint
    from ._adjoint import CheckedAdjoint as CheckedAdjoint
    from ._adjoint import CheckpointAdjoint as CheckpointAdjoint
    from ._adjoint import DirectAdjoint as DirectAdjoint
    from ._counting import count_evaluations as count_evaluations
    from ._regularisation import Regularisation as Regularisation
    from ._regularisation import penalised_solve as penalised_solve
    from ._regularisation import taylor_derivative as taylor_derivative
    from ._result import SolveResult as SolveResult
    from ._reversibility import reversibility_error as reversibility_error
    from ._sde import solve_sde as solve_sde
    from ._solve import solve as solve
    from ._solver import Solver as Solver
    from ._stats import SolveStats as SolveStats
    from .nn import CNF as CNF
    from .nn import MLP as MLP
    from .nn import Classifier as Classifier
    from .nn import ODENet as ODENet
    from .nn import ResNet as ResNet

_EXPORTS = type_checking_exports(__file__)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


def _version() -> str:
    """The installed distribution's version; in a source tree that is not installed,
    the version in its `pyproject.toml` (marked `+source`); else `0+unknown`."""
    try:
        return importlib.metadata.version("odezoo")
    except importlib.metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        import tomllib

        project = tomllib.loads(pyproject.read_text()).get("project", {})
        return f"{project['version']}+source" if project.get("name") == "odezoo" else "0+unknown"
    except (OSError, KeyError, ValueError):
        return "0+unknown"


__version__: str = _version()
