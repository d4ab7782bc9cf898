"""The optimiser settings of a config's `train` section: optax optimisers and
learning-rate schedules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optax

from .._errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = (None, "constant", "cosine", "warmup_cosine")


def check_optimizer(train: Mapping) -> None:
    """Raise a `ConfigError` for an unknown optimiser or schedule, or a bad rate."""
    if train["optimizer"] not in OPTIMIZERS:
        raise ConfigError(
            f"unknown optimizer {train['optimizer']!r}; valid: {', '.join(OPTIMIZERS)}"
        )
    if train["lr_schedule"] not in LR_SCHEDULES:
        raise ConfigError(
            f"unknown lr_schedule {train['lr_schedule']!r}; valid: "
            f"{', '.join(str(s) for s in LR_SCHEDULES)}"
        )
    lr = train["lr"]
    if isinstance(lr, bool) or not (isinstance(lr, int | float) and lr > 0):
        raise ConfigError(f"train.lr must be a positive number, got {lr!r}")


def optimizer_from(train: Mapping) -> optax.GradientTransformation:
    """The optax optimiser of a normalised `train` section."""
    lr: Any = train["lr"]
    if train["lr_schedule"] == "cosine":
        lr = optax.cosine_decay_schedule(train["lr"], max(train["steps"], 1))
    elif train["lr_schedule"] == "warmup_cosine":
        warmup = train["warmup_steps"]
        lr = optax.warmup_cosine_decay_schedule(
            0.0, train["lr"], warmup, max(train["steps"], warmup + 1)
        )
    decay = train["weight_decay"]
    if train["optimizer"] == "adam":
        opt = optax.adam(lr)
        if decay:
            opt = optax.chain(optax.add_decayed_weights(decay), opt)
    elif train["optimizer"] == "adamw":
        opt = optax.adamw(lr, weight_decay=decay)
    else:
        opt = optax.sgd(lr, momentum=train["momentum"])
        if decay:
            opt = optax.chain(optax.add_decayed_weights(decay), opt)
    if train["clip_norm"] is not None:
        opt = optax.chain(optax.clip_by_global_norm(train["clip_norm"]), opt)
    return opt
