"""Run configs: plain JSON data that rebuilds a model, its data, loss and optimiser.

A config is what a run directory's `config.json` and a zoo entry hold. It is data, not
code: every choice is a name or a number, and [`full_config`][odezoo.config.full_config]
checks it once and fills in every default, giving the read-only
[`Config`][odezoo.config.Config] that every `build_*` function takes and that a run
writes to `config.json`, spelling out all of it.

```json
{
  "name": "seed-cubic-odenet",
  "description": "The seed chapter's ODE-Net on the cubic toy.",
  "seed": 0,
  "model": {"type": "odenet", "in_size": 1, "width": 20, "depth": 1,
            "init": "normal", "init_scale": 1.0},
  "solver": {"solver": "Dopri5", "rtol": 0.001, "atol": 1e-06, "adjoint": "checkpoint"},
  "data": {"name": "cubic", "n": 10},
  "train": {"steps": 1000, "batch_size": 10, "optimizer": "sgd", "lr": 0.01,
            "loss": "mse"}
}
```

Sections:

- `seed`: an int; the model is initialised from `fold_in(key(seed), 0)` and trained
  with `fold_in(key(seed), 1)`.
- `model`: `{"type": ...}` with `type` one of [`model_types()`][odezoo.config.model_types]
  (`mlp`, `resnet`, `odenet`, `anode`, `cnf`, `classifier`, and any registered since).
  The other keys are the model constructor's arguments, with its defaults: e.g.
  `odenet` takes [`ODENet`][odezoo.ODENet]'s, spelling `in_shape` as `in_size` and
  `width_size` as `width`; activations by name ([`ACTIVATIONS`][odezoo.config.ACTIVATIONS]).
  A `"classifier"` nests a `stem`, a `block` (itself a model config) and a `head`.
- `solver`: [`Solver.to_config`][odezoo.Solver.to_config] (solver by diffrax class name,
  tolerances, adjoint, ...); for ODE models only.
- `data`: `{"name": ...}` with `name` one of [`data_names()`][odezoo.config.data_names],
  plus its options (the dataset builder's arguments).
- `train`: steps, batch size, optimiser, learning rate, loss, logging, checkpoints and an
  optional tolerance schedule (`[[step, {"rtol": ..., "atol": ...}], ...]`).
- `name`, `description`, `notes`, `meta`: free-form, ignored by the builders.

## Adding a model family or a dataset

A model family registers itself in one line when its config keys are its constructor's
keyword arguments: [`register_model`][odezoo.config.register_model] reads the keys and
their defaults from the signature (a default lives in the constructor only); `key` and,
for ODE models, `solver` are passed by [`build_model`][odezoo.config.build_model].
Where the config spells an argument differently, say so with `rename`; constructor
arguments that are not JSON data (modules) are left out with `exclude`:

```python
import equinox as eqx, jax, jax.numpy as jnp
from odezoo.config import build_model, register_model

class Affine(eqx.Module):
    weight: jax.Array

    def __init__(self, size: int, scale: float = 2.0, *, key):
        self.weight = scale * jnp.ones(size)

    def apply(self, xs, *, key=None):
        return xs * self.weight, None

register_model("affine", Affine, replace=True)     # config keys: size, scale (2.0)
register_model("affine_n", Affine, rename={"n": "size"}, replace=True)  # "n" -> size
cfg = {"model": {"type": "affine_n", "n": 3}, "data": {"name": "cubic"},
       "train": {"steps": 1}}
assert build_model(cfg).weight.shape == (3,)
```

The next families plug in the same way, e.g. `register_model("latent_ode", LatentODE)`.
A dataset is a builder `builder(**options) -> (train, test)` whose arguments are the
options of the `data` section: [`register_data`][odezoo.config.register_data]`("spirals",
spirals)`.
"""

from .._errors import ConfigError as ConfigError
from ._build import build_data as build_data
from ._build import build_evaluate as build_evaluate
from ._build import build_loss as build_loss
from ._build import build_model as build_model
from ._build import build_optimizer as build_optimizer
from ._build import build_solver as build_solver
from ._build import build_tolerance as build_tolerance
from ._data import DataBundle as DataBundle
from ._data import data_metrics as data_metrics
from ._data import data_names as data_names
from ._data import register_data as register_data
from ._models import ModelFamily as ModelFamily
from ._models import model_types as model_types
from ._models import register_family as register_family
from ._models import register_model as register_model
from ._schema import Config as Config
from ._schema import full_config as full_config
from ._schema import load_config as load_config
from ._schema import set_value as set_value
from ._signature import ACTIVATIONS as ACTIVATIONS
