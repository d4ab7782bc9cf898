"""The builders: a config (dict, file, run directory or normalised
[`Config`][odezoo.config.Config]) to its model, data, loss, optimiser and evaluation.

Each normalises its argument once (a `Config` is taken as it is)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import optax

from .._regularisation import Regularisation
from .._solver import Solver
from ..losses import get_loss, penalised
from ..metrics import evaluate
from ..train import piecewise_tolerance
from ._data import DataBundle, build_data_section, data_metrics
from ._models import build_model_section
from ._optim import optimizer_from
from ._schema import full_config, model_key

ConfigLike = Mapping | str | os.PathLike


def build_solver(cfg: ConfigLike) -> Solver | None:
    """The [`Solver`][odezoo.Solver] of a config (`None` for MLP/ResNet models)."""
    cfg = full_config(cfg)
    return Solver.from_config(cfg["solver"]) if "solver" in cfg else None


def build_model(cfg: ConfigLike, key=None):
    """The (untrained) model a config describes.

    Arguments:

    - `cfg`: a config (dict, file or run directory; see the module docs).
    - `key`: the initialisation key (default [`model_key`][odezoo.internal.model_key]).

    Example:

    ```python
    from odezoo.config import build_model

    net = build_model({"model": {"type": "odenet", "in_size": 1, "init": "normal"},
                       "data": {"name": "cubic"}, "train": {"steps": 1}})
    ```
    """
    cfg = full_config(cfg)
    key = model_key(cfg) if key is None else key
    return build_model_section(cfg["model"], build_solver(cfg), key)


def build_data(cfg: ConfigLike) -> DataBundle:
    """The training and evaluation data of a config.

    Example:

    ```python
    from odezoo.config import build_data

    data = build_data({"model": {"type": "mlp", "in_size": 1, "out_size": 1},
                       "data": {"name": "cubic", "n": 10}, "train": {"steps": 1}})
    x, y = data.train
    ```
    """
    return build_data_section(full_config(cfg)["data"])


def build_loss(cfg: ConfigLike):
    """The loss function of a config (see [`odezoo.losses.get_loss`][odezoo.losses.get_loss]),
    with the speed regularisers of `train.regularisation` when it names any (see
    [`odezoo.losses.penalised`][odezoo.losses.penalised])."""
    train = full_config(cfg)["train"]
    loss = get_loss(train["loss"])
    if train["regularisation"] is None:
        return loss
    regularisation = Regularisation(**train["regularisation"])
    return penalised(loss, regularisation) if regularisation.active else loss


def build_optimizer(cfg: ConfigLike) -> optax.GradientTransformation:
    """The optax optimiser of a config: `adam`, `adamw` or `sgd` (with `momentum`), a
    learning-rate schedule (`cosine`, `warmup_cosine` with `warmup_steps`), decoupled
    `weight_decay` and global-norm clipping `clip_norm`.

    Example:

    ```python
    from odezoo.config import build_optimizer

    opt = build_optimizer({"model": {"type": "mlp", "in_size": 1, "out_size": 1},
                           "data": {"name": "cubic"},
                           "train": {"steps": 100, "optimizer": "sgd", "lr": 0.01}})
    ```
    """
    return optimizer_from(full_config(cfg)["train"])


def build_tolerance(cfg: ConfigLike):
    """The tolerance schedule of a config (`None` if it has none)."""
    sched = full_config(cfg)["train"]["tolerance_schedule"]
    return None if sched is None else piecewise_tolerance(sched)


def build_evaluate(
    cfg: ConfigLike, data: DataBundle | None = None, *, key=None
) -> Callable[[Any], dict]:
    """A function `model -> dict of metrics` on the config's held-out data:
    [`odezoo.metrics.evaluate`][odezoo.metrics.evaluate] with the config's training loss
    and `train.eval_batch_size`, plus the metrics registered with the dataset (see
    [`register_data`][odezoo.config.register_data]).

    Example:

    ```python
    from odezoo.config import build_evaluate, build_model

    cfg = {"model": {"type": "mlp", "in_size": 1, "out_size": 1},
           "data": {"name": "cubic"}, "train": {"steps": 1}}
    metrics = build_evaluate(cfg)(build_model(cfg))
    ```
    """
    cfg = full_config(cfg)
    data = build_data(cfg) if data is None else data
    if data.test is None:
        return lambda model: {}
    loss, batch_size = cfg["train"]["loss"], cfg["train"]["eval_batch_size"]
    test = data.test
    extra = data_metrics(data.name)

    def evaluate_model(model) -> dict:
        metrics = evaluate(model, test, loss, batch_size=batch_size, key=key)
        if extra is not None:
            metrics.update(extra(model, test, jax.random.key(0) if key is None else key))
        return metrics

    return evaluate_model
