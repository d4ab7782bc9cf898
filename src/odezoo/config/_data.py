"""The data section of a config: a registry `{name: builder}` whose options and defaults
are read from the builders' signatures."""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import data as datasets
from .._errors import ConfigError
from ..metrics import GaussianMarginals
from ._signature import check_keys, check_types, signature_types


@dataclasses.dataclass
class DataBundle:
    """What [`build_data`][odezoo.config.build_data] returns.

    Fields:

    - `train`: what [`fit`][odezoo.train.fit] takes: a tuple of arrays, or a sampler
      `sample(key, n)` for infinite data.
    - `test`: held-out arrays for evaluation (a fresh sample for a density), or `None`.
    - `name`: the dataset's name.
    """

    train: tuple | Callable
    test: tuple | None
    name: str


DATA_BUILDERS: dict[str, Callable[..., tuple]] = {}
# Held-out metrics a dataset adds to those of the loss (e.g. a distance to a known law).
DATA_METRICS: dict[str, Callable[..., dict]] = {}


def register_data(
    name: str,
    builder: Callable[..., tuple],
    *,
    metrics: Callable[..., dict] | None = None,
    replace: bool = False,
) -> None:
    """Make `builder` the config's dataset `name`.

    The options of the `data` section are `builder`'s named arguments, with its
    defaults (an argument without a default is a required option). `builder(**options)`
    returns `(train, test)`: `train` a tuple of arrays or a sampler `sample(key, n)`,
    `test` a tuple of held-out arrays or `None` (see
    [`DataBundle`][odezoo.config.DataBundle]).

    Arguments:

    - `name`: the `data.name` of the config.
    - `builder`: `builder(**options) -> (train, test)`; options must be JSON data.
    - `metrics`: optional `metrics(model, test, key) -> dict`: held-out metrics that
      follow from the data rather than the loss (e.g. the distance of a model's
      samples to a process's exact law), which
      [`build_evaluate`][odezoo.config.build_evaluate] adds to the loss's metrics.
    - `replace`: replace an existing registration of `name`.

    Example:

    ```python
    import jax.numpy as jnp
    from odezoo.config import build_data, register_data

    def line(n: int = 8, slope: float = 2.0):
        x = jnp.linspace(0.0, 1.0, n)[:, None]
        return (x, slope * x), (x, slope * x)

    register_data("line", line, replace=True)
    data = build_data({"model": {"type": "mlp", "in_size": 1, "out_size": 1},
                       "data": {"name": "line", "n": 4}, "train": {"steps": 1}})
    ```
    """
    if name in DATA_BUILDERS and not replace:
        raise ConfigError(
            f"dataset {name!r} is already registered; pass replace=True to replace it"
        )
    _options(builder)  # a signature the config can hold, checked now
    DATA_BUILDERS[name] = builder
    DATA_METRICS.pop(name, None)
    if metrics is not None:
        DATA_METRICS[name] = metrics


def _options(builder) -> dict[str, Any]:
    out = {}
    for arg, p in inspect.signature(builder).parameters.items():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ConfigError(f"data builder {builder!r} must name its options (no *args/**kw)")
        out[arg] = p.default
    return out


def data_metrics(name: str) -> Callable[..., dict] | None:
    """The held-out metrics registered with dataset `name` (see
    [`register_data`][odezoo.config.register_data]), or `None`."""
    return DATA_METRICS.get(name)


def data_names() -> tuple[str, ...]:
    """The registered dataset names."""
    return tuple(DATA_BUILDERS)


def normalise_data(section: Mapping) -> dict:
    """A data section checked, with every default filled in."""
    name = section.get("name")
    if name not in DATA_BUILDERS:
        raise ConfigError(f"data needs a 'name', one of {', '.join(DATA_BUILDERS)}; got {name!r}")
    options = _options(DATA_BUILDERS[name])
    rest = {k: v for k, v in section.items() if k != "name"}
    where = f"data ({name})"
    check_keys(rest, options, where)
    defaults = {k: (None if d is inspect.Parameter.empty else d) for k, d in options.items()}
    full = {**copy.deepcopy(defaults), **rest}
    for key, d in options.items():
        if d is inspect.Parameter.empty and full[key] is None:
            raise ConfigError(f"{where} needs {key!r}")
    check_types(full, signature_types(DATA_BUILDERS[name]), "data")
    return {"name": name, **full}


def build_data_section(section: Mapping) -> DataBundle:
    """The data of a normalised data section."""
    options = {k: v for k, v in section.items() if k != "name"}
    train, test = DATA_BUILDERS[section["name"]](**options)
    return DataBundle(train, test, section["name"])


# -- the built-in datasets ----------------------------------------------------------------


def _cubic(n: int = 10, low: float = -2.0, high: float = 2.0):
    xy = datasets.cubic(n, low, high)
    return xy, xy


def _spheres(
    dim: int = 2,
    n_inner: int = 500,
    n_outer: int = 1500,
    labels: str = "pm1",
    seed: int = 0,
    test_seed: int = 1,
):
    kw = dict(dim=dim, n_inner=n_inner, n_outer=n_outer, labels=labels)
    train = datasets.concentric_spheres(**kw, key=jax.random.key(seed))
    test = datasets.concentric_spheres(**kw, key=jax.random.key(test_seed))
    return train, test


@dataclasses.dataclass(frozen=True)
class _ToySampler:
    """`sample(key, n)` for a 2-D toy density (hashable, so compiled steps are shared)."""

    density: str

    def __call__(self, key, n: int):
        return datasets.toy2d(self.density, n, key=key)


def _toy2d(density: str, eval_samples: int = 1000, eval_seed: int = 12345):
    if density not in datasets.TOY2D_NAMES:
        raise ConfigError(
            f"unknown toy density {density!r}; valid: {', '.join(datasets.TOY2D_NAMES)}"
        )
    test = (datasets.toy2d(density, eval_samples, key=jax.random.key(eval_seed)),)
    return _ToySampler(density), test


@dataclasses.dataclass(frozen=True, eq=False)
class _ShiftSampler:
    """`sample(key, n)`: `n` training images drawn at random, each shifted by up to
    `max_shift` pixels in each direction (zero fill): data augmentation for small image
    sets. Hashed by identity, so one compiled step serves one dataset."""

    x: np.ndarray
    y: np.ndarray
    max_shift: int

    def __call__(self, key, n: int):
        k_idx, k_shift = jax.random.split(key)
        idx = jax.random.randint(k_idx, (n,), 0, len(self.x))
        x, y = jnp.asarray(self.x)[idx], jnp.asarray(self.y)[idx]
        s = self.max_shift
        shifts = jax.random.randint(k_shift, (n, 2), 0, 2 * s + 1)
        padded = jnp.pad(x, ((0, 0), (0, 0), (s, s), (s, s)))
        size = x.shape[1:]

        def crop(img, sh):
            return jax.lax.dynamic_slice(img, (0, sh[0], sh[1]), size)

        return jax.vmap(crop)(padded, shifts), y


def _digits(
    flatten: bool = False, test_fraction: float = 0.2, split_seed: int = 0, augment_shift: int = 0
):
    kw = dict(test_fraction=test_fraction, seed=split_seed, flatten=flatten)
    train = datasets.digits("train", **kw)
    if augment_shift:
        if flatten:
            raise ConfigError("data.augment_shift needs image digits (flatten: false)")
        train = _ShiftSampler(*train, max_shift=int(augment_shift))
    return train, datasets.digits("test", **kw)


def _mnist(path: str, flatten: bool = False):
    raw = datasets.load_mnist(path)
    fix = (lambda x: x.reshape(len(x), -1)) if flatten else (lambda x: x)
    return (fix(raw["x_train"]), raw["y_train"]), (fix(raw["x_test"]), raw["y_test"])


# -- irregular series: forecasting (latent ODE and its baselines) --------------------------


def forecast_batch(times, values, key, *, observed: float, t_split: float | None) -> tuple:
    """A forecasting batch from fully observed series: `(times, values, mask, times,
    values, target_mask)` (see [`odezoo.losses.forecast_mse`][odezoo.losses.forecast_mse]).
    The encoder sees each value with probability `observed` (the first time always),
    and only before `t_split` when one is given (its arrays then stop at the last slot
    before `t_split`); the targets are every value, so the
    held-out points inside the observed window score interpolation and those after it
    extrapolation (as in Rubanova et al. 2019)."""
    keep = jax.random.bernoulli(key, observed, times.shape).at[:, 0].set(True)
    enc = times.shape[1]
    if t_split is not None:
        keep = keep & (times < t_split)
        # The encoder's arrays end at the last slot any series observes: the encoder
        # needs no solves over the window it never sees.
        enc = max(int(jnp.max(jnp.sum(times < t_split, axis=1))), 1)
    mask = jnp.broadcast_to(keep[..., None], values.shape).astype(values.dtype)
    observed_part = (times[:, :enc], (values * mask)[:, :enc], mask[:, :enc])
    return (*observed_part, times, values, jnp.ones_like(values))


def _series_split(generate, seed: int, test_seed: int, n_train: int, n_test: int, **kw):
    out = []
    for s, n in ((seed, n_train), (test_seed, n_test)):
        gkey, mkey = jax.random.split(jax.random.key(s))
        times, values = generate(n, gkey)
        out.append(forecast_batch(times, values, mkey, **kw))
    return tuple(out)


def _periodic(
    n_train: int = 1000,
    n_test: int = 200,
    n_times: int = 50,
    t_max: float = 5.0,
    observed: float = 0.5,
    t_split: float | None = 2.5,
    noise: float = 0.01,
    freq_low: float = 0.5,
    freq_high: float = 1.0,
    seed: int = 0,
    test_seed: int = 1,
):
    """Rubanova et al.'s periodic toy as forecasting batches (see `forecast_batch`)."""

    def generate(n, key):
        times, values, _ = datasets.periodic(
            n, n_times, key=key, t_max=t_max, observed=1.0, noise=noise,
            freq_range=(freq_low, freq_high),
        )  # fmt: skip
        return times, values

    return _series_split(
        generate, seed, test_seed, n_train, n_test, observed=observed, t_split=t_split
    )


def _spirals(
    n_train: int = 500,
    n_test: int = 100,
    n_times: int = 50,
    t_max: float = 6.0,
    observed: float = 0.5,
    t_split: float | None = 3.0,
    noise: float = 0.05,
    seed: int = 0,
    test_seed: int = 1,
):
    """Chen et al. 2018's spirals as forecasting batches (see `forecast_batch`)."""

    def generate(n, key):
        times, values, _, _ = datasets.spirals(
            n, n_times, key=key, t_max=t_max, observed=1.0, noise=noise
        )
        return times, values

    return _series_split(
        generate, seed, test_seed, n_train, n_test, observed=observed, t_split=t_split
    )


# -- irregular series: classification (neural CDE) and a process with a known law (SDE) -


def _spirals_classification(
    n_train: int = 512,
    n_test: int = 1000,
    n_times: int = 50,
    drop: float = 0.0,
    noise: float = 0.05,
    seed: int = 0,
    test_seed: int = 1,
):
    """Clockwise-or-not spirals (`odezoo.data.spirals_classification`):
    `(times, values, mask, labels)` for training and for testing, with a fraction `drop`
    of each series' observations removed at random."""
    kw = dict(n_times=n_times, drop=drop, noise=noise)
    train = datasets.spirals_classification(n_train, key=jax.random.key(seed), **kw)
    test = datasets.spirals_classification(n_test, key=jax.random.key(test_seed), **kw)
    return train, test


def _ornstein_uhlenbeck(
    n_paths: int = 512,
    n_times: int = 21,
    t_max: float = 2.0,
    theta: float = 1.0,
    mu: float = 0.0,
    sigma: float = 0.5,
    x0: float = 1.0,
    seed: int = 0,
    eval_times: list | None = None,
    eval_samples: int = 1000,
):
    """Exact Ornstein-Uhlenbeck paths `(times, values, mask)` to train on; held out, the
    process's exact Gaussian marginals at `eval_times` (default: a quarter, half and
    all of `t_max`), which a sampling model is compared with (see
    `odezoo.metrics.GaussianMarginals`)."""
    law = dict(theta=theta, mu=mu, sigma=sigma, x0=x0)
    train = datasets.ornstein_uhlenbeck(
        n_paths, n_times, key=jax.random.key(seed), t_max=t_max, **law
    )
    times = [t_max / 4, t_max / 2, t_max] if eval_times is None else list(eval_times)
    mean, var = datasets.ou_moments(jnp.asarray(times, jnp.float32), **law)
    test = GaussianMarginals(times, np.asarray(mean), np.sqrt(np.asarray(var)), eval_samples)
    return train, test


register_data("cubic", _cubic)
register_data("spheres", _spheres)
register_data("toy2d", _toy2d)
register_data("digits", _digits)
register_data("mnist", _mnist)
register_data("periodic", _periodic)
register_data("spirals", _spirals)
register_data("spirals_classification", _spirals_classification)
register_data("ornstein_uhlenbeck", _ornstein_uhlenbeck)
