"""odezoo: a JAX model zoo for neural ordinary differential equations."""

from . import data as data
from . import nn as nn
from ._adjoint import reversibility_error as reversibility_error
from ._counting import EvaluationCount as EvaluationCount
from ._counting import count_evaluations as count_evaluations
from ._errors import CardMismatchError as CardMismatchError
from ._errors import CheckpointError as CheckpointError
from ._errors import ConfigError as ConfigError
from ._errors import InputError as InputError
from ._errors import OdezooError as OdezooError
from ._errors import RunDirError as RunDirError
from ._errors import SolverError as SolverError
from ._errors import TrainingError as TrainingError
from ._errors import UnknownEntryError as UnknownEntryError
from ._solver import Solver as Solver
from ._solver import SolveStats as SolveStats
from ._solver import check_solution as check_solution
from ._solver import solve as solve
from ._solver import solve_sde as solve_sde
from .nn import CNF as CNF
from .nn import MLP as MLP
from .nn import Classifier as Classifier
from .nn import ODENet as ODENet
from .nn import ResNet as ResNet

__version__ = "0.1.0"
