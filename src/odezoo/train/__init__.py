"""Training: one optax loop for every model, sharded across devices, with run
directories, checkpoints and clear failures.

The entry point is [`fit`][odezoo.train.fit]; [`train_config`][odezoo.train.train_config]
calls it with a model, data and loss built from a config by `odezoo.config`, into a run
directory, for the CLI (`odezoo train`) and the zoo (`odezoo zoo reproduce`).
"""

from .._errors import CheckpointError as CheckpointError
from .._errors import RunDirError as RunDirError
from .._errors import TrainingError as TrainingError
from ._cache import enable_compilation_cache as enable_compilation_cache
from ._cache import errors_as_nan as errors_as_nan
from ._checkpoint import load_model as load_model
from ._checkpoint import save_model as save_model
from ._distances import ks_gaussian as ks_gaussian
from ._distances import wasserstein1_gaussian as wasserstein1_gaussian
from ._distances import wasserstein1_noise_floor as wasserstein1_noise_floor
from ._distributed import initialize_distributed as initialize_distributed
from ._evaluate import evaluate as evaluate
from ._failure import Failure as Failure
from ._fit import TrainResult as TrainResult
from ._fit import fit as fit
from ._freeze import trainable_spec as trainable_spec
from ._losses import cross_entropy as cross_entropy
from ._losses import get_loss as get_loss
from ._losses import huber as huber
from ._losses import mse as mse
from ._losses import nll as nll
from ._marginals import GaussianMarginals as GaussianMarginals
from ._marginals import evaluate_marginals as evaluate_marginals
from ._penalised import LossAux as LossAux
from ._penalised import penalised as penalised
from ._run_config import train_config as train_config
from ._rundir import RunDir as RunDir
from ._series_losses import elbo_loss as elbo_loss
from ._series_losses import forecast_mse as forecast_mse
from ._series_losses import series_cross_entropy as series_cross_entropy
from ._series_losses import series_mse as series_mse
from ._series_metrics import forecast_errors as forecast_errors
from ._series_metrics import register_metrics as register_metrics
from ._series_metrics import series_metrics as series_metrics
from ._sharding import data_mesh as data_mesh
from ._tolerance import piecewise_tolerance as piecewise_tolerance
