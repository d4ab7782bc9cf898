"""Equinox modules: baselines, dynamics networks, ODE-Nets and CNFs, and the adapter
that takes dynamics from Flax NNX or plain functions."""

from ._adapt import FunctionDynamics as FunctionDynamics
from ._adapt import NNXDynamics as NNXDynamics
from ._adapt import as_dynamics as as_dynamics
from ._base import AbstractForecaster as AbstractForecaster
from ._base import AbstractLatentModel as AbstractLatentModel
from ._base import AbstractModel as AbstractModel
from ._base import AbstractODEModel as AbstractODEModel
from ._base import AbstractSDEModel as AbstractSDEModel
from ._base import ODEProblem as ODEProblem
from ._base import count_parameters as count_parameters
from ._cde import NeuralCDE as NeuralCDE
from ._cde import control_path as control_path
from ._classifier import Classifier as Classifier
from ._cnf import CNF as CNF
from ._dynamics import ConcatMLP as ConcatMLP
from ._dynamics import ConcatSquashLinear as ConcatSquashLinear
from ._dynamics import ConcatSquashMLP as ConcatSquashMLP
from ._dynamics import ConvBlock as ConvBlock
from ._dynamics import ConvDynamics as ConvDynamics
from ._irregular import IrregularSeries as IrregularSeries
from ._irregular import as_series as as_series
from ._latent_ode import LatentODE as LatentODE
from ._latent_sde import LatentSDE as LatentSDE
from ._mlp import MLP as MLP
from ._ode_rnn import ODERNN as ODERNN
from ._odenet import ODENet as ODENet
from ._resnet import ResNet as ResNet
from ._seq2seq import GRUSeq2Seq as GRUSeq2Seq
