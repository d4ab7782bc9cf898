"""Training: one optax loop for every model, sharded across devices, with run
directories, checkpoints and clear failures.

The entry point is [`fit`][odezoo.train.fit]; [`train_config`][odezoo.train.train_config]
calls it with a model, data and loss built from a config by `odezoo.config`, into a run
directory, for the CLI (`odezoo train`) and the zoo (`odezoo zoo reproduce`).

The losses `fit` takes by name are in `odezoo.losses`, the metrics a trained model is
evaluated with in `odezoo.metrics`.
"""

from .._errors import CheckpointError as CheckpointError
from .._errors import RunDirError as RunDirError
from .._errors import TrainingError as TrainingError
from ._cache import enable_compilation_cache as enable_compilation_cache
from ._cache import errors_as_nan as errors_as_nan
from ._checkpoint import load_model as load_model
from ._checkpoint import save_model as save_model
from ._distributed import initialize_distributed as initialize_distributed
from ._failure import Failure as Failure
from ._fit import TrainResult as TrainResult
from ._fit import fit as fit
from ._freeze import trainable_spec as trainable_spec
from ._run_config import train_config as train_config
from ._rundir import RunDir as RunDir
from ._sharding import data_mesh as data_mesh
from ._tolerance import piecewise_tolerance as piecewise_tolerance
