"""Which figures a card shows: figure makers registered by data name
([`register_figures`][odezoo.zoo.register_figures]), each drawing with `_figures`, and
those of odezoo's own datasets."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

from .._errors import ConfigError
from . import _figures
from ._registry import TRAINING_LOG, card_meta, entry_dir, load


@dataclasses.dataclass(frozen=True)
class FigureContext:
    """What a figure maker of [`register_figures`][odezoo.zoo.register_figures] gets.

    Fields:

    - `name`: the entry.
    - `cfg`: its normalised config.
    - `data`: its [`DataBundle`][odezoo.config.DataBundle] (training and held-out data).
    - `model`: the trained model.
    - `folder`: the entry's folder, where the figures go.
    """

    name: str
    cfg: Any
    data: Any
    model: Any
    folder: Path

    @property
    def meta(self) -> dict:
        """The config's `meta.card`."""
        return card_meta(self.cfg)


FigureMaker = Callable[[FigureContext], list[tuple[str, str]]]
FIGURES: dict[str, FigureMaker] = {}


def register_figures(data_name: str, maker: FigureMaker, *, replace: bool = False) -> None:
    """Draw `maker`'s figures on the cards of the entries whose `data.name` is
    `data_name`: the figures follow from an entry's data, never from its name.

    Arguments:

    - `data_name`: a dataset of the config's data registry.
    - `maker`: `maker(context) -> [(file, caption), ...]`, given a
      [`FigureContext`][odezoo.zoo.FigureContext]; it saves each file in
      `context.folder`.
    - `replace`: replace an existing registration.

    Example:

    ```python
    from odezoo.internal import FIGURES
    from odezoo.zoo import register_figures

    def no_figures(context):
        return []

    old = FIGURES["cubic"]
    register_figures("cubic", no_figures, replace=True)
    register_figures("cubic", old, replace=True)          # as it was
    ```
    """
    if data_name in FIGURES and not replace:
        raise ConfigError(
            f"figures for data {data_name!r} are registered already; pass replace=True"
        )
    FIGURES[data_name] = maker


def figures_for(name: str, cfg: dict, model, folder: Path) -> list[tuple[str, str]]:
    """Draw the figures the entry's data calls for; returns (file, caption) pairs."""
    from ..config import build_data, full_config

    cfg_full = full_config(cfg)
    maker = FIGURES.get(cfg_full["data"]["name"])
    if maker is None:
        return []
    return maker(FigureContext(name, cfg_full, build_data(cfg_full), model, folder))


def _cubic_figures(c: FigureContext) -> list[tuple[str, str]]:
    x, y = c.data.train
    models = {c.name: c.model}
    for other in c.meta.get("compare_with", []):
        try:
            models[other] = load(other)
        except (FileNotFoundError, KeyError):
            pass
    _figures.seed_figure(models, x, y, c.folder / "predictions.png")
    out = [("predictions.png", "Data (green) and predictions on [-3, 3].")]
    if c.model.ode_model() is not None:
        _figures.trajectory_figure(c.model, x, c.folder / "trajectories.png")
        out.append(("trajectories.png", "Activation trajectories over time / depth."))
    return out


def _spheres_figures(c: FigureContext) -> list[tuple[str, str]]:
    x, y = c.data.test
    _figures.spheres_figure(c.model, x, y, c.folder / "flow.png", title=c.name)
    flow = ("flow.png", "Learned flow of test points and decision function.")
    return [flow, _training_comparison(c)]


def _training_comparison(c: FigureContext) -> tuple[str, str]:
    """The entry's training loss and NFE beside those of the entries it is compared
    with (`meta.card.compare_with`)."""
    runs = {c.name: _read_jsonl(c.folder / TRAINING_LOG)}
    for other in c.meta.get("compare_with", []):
        log = entry_dir(other) / TRAINING_LOG
        if log.is_file():
            runs[other] = _read_jsonl(log)
    _figures.compare_training_figure(runs, c.folder / "loss_nfe.png")
    return ("loss_nfe.png", "Training loss and forward NFE, side by side.")


def _toy2d_figures(c: FigureContext) -> list[tuple[str, str]]:
    from ..data import toy2d

    sample = toy2d(c.cfg["data"]["density"], 5000, key=jax.random.key(1))
    _figures.density_figure(c.model, sample, c.folder / "density.png", title=c.name)
    return [("density.png", "Data, learned density and model samples.")]


register_figures("cubic", _cubic_figures)
register_figures("spheres", _spheres_figures)
register_figures("toy2d", _toy2d_figures)
# -- the latent ODE's forecasting data ------------------------------------------------------


def _periodic_figures(c: FigureContext) -> list[tuple[str, str]]:
    _figures.forecast_figure(c.model, c.data.test, c.folder / "forecasts.png", title=c.name)
    return [
        (
            "forecasts.png",
            "Held-out series: the observations the model saw (black; the dashed line ends "
            "the observed window), the held-out values (grey), the forecast (red) and, for a "
            "latent model, the trajectories of 10 draws of z0 from the posterior (thin blue, "
            "over the forecast: where the posterior is narrow, they coincide with it).",
        )
    ]


def _spirals_figures(c: FigureContext) -> list[tuple[str, str]]:
    _figures.spiral_figure(c.model, c.data.test, c.folder / "spirals.png", title=c.name)
    return [
        (
            "spirals.png",
            "Held-out spirals: the true spiral (grey), the observations the model saw "
            "(black), its reconstruction over the observed window (blue) and its "
            "extrapolation beyond it (red), as in Chen et al. 2018's latent ODE figure.",
        )
    ]


register_figures("periodic", _periodic_figures)
register_figures("spirals", _spirals_figures)


# -- the neural CDE's classification data and the latent SDE's known law ----------------------


def _series_classification_figures(c: FigureContext) -> list[tuple[str, str]]:
    """A series classifier's figures: test series coloured by prediction, and its
    training loss and NFE beside those of the entries it is compared with."""
    _figures.series_classification_figure(
        c.model, c.data.test, c.folder / "predictions.png", title=c.name
    )
    shown = ("predictions.png", "Test series through their observed points, by predicted class.")
    return [shown, _training_comparison(c)]


def _ou_figures(c: FigureContext) -> list[tuple[str, str]]:
    """A learned SDE's sample paths and marginals against the exact Ornstein-Uhlenbeck
    law of its data section."""
    from ..data import ou_moments

    section = c.cfg["data"]
    law = {k: section[k] for k in ("theta", "mu", "sigma", "x0")}
    ts = np.linspace(0.0, section["t_max"], 101)
    paths = eqx.filter_jit(lambda m, k: m.sample(ts, 1000, key=k))(c.model, jax.random.key(1))
    mean, var = ou_moments(ts, **law)
    times, values, _ = c.data.train
    _figures.sde_paths_figure(
        np.asarray(paths)[..., 0], ts, mean, np.sqrt(var), c.folder / "paths.png",
        marginal_times=c.data.test.times,
        data=(np.asarray(times[0]), np.asarray(values[:30, :, 0])),
    )  # fmt: skip
    caption = (
        "Left: 30 sample paths of the learned prior SDE (blue), 30 training paths (grey), the "
        "exact mean and mean ± 2 sd; right: 1000 samples' histograms at the evaluation "
        "times against the exact Gaussian marginals."
    )
    return [("paths.png", caption)]


register_figures("spirals_classification", _series_classification_figures)
register_figures("ornstein_uhlenbeck", _ou_figures)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
