"""Held-out evaluation against a known law: a sampling model's marginals at given times
compared with the exact Gaussian marginals of the process it learned."""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._errors import InputError
from ..nn import AbstractLatentModel
from ._distances import ks_gaussian, wasserstein1_gaussian, wasserstein1_noise_floor


@dataclasses.dataclass(frozen=True)
class GaussianMarginals:
    """A held-out "test set" that is a law: the exact Gaussian marginals `N(mean_k,
    std_k**2)` of a 1-D process at times `t_k` (e.g. the Ornstein-Uhlenbeck process,
    [`odezoo.data.ou_moments`][odezoo.data.ou_moments]).
    [`evaluate`][odezoo.metrics.evaluate] scores a sampling model on it with
    [`evaluate_marginals`][odezoo.metrics.evaluate_marginals].

    Fields:

    - `times`, `mean`, `std`: sequences of equal length `K`, times increasing and
      `std > 0` (a deterministic time, such as the initial one, has no Gaussian to
      compare with).
    - `samples`: paths the model samples for the comparison.
    """

    times: tuple[float, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    samples: int = 1000

    def __post_init__(self):
        for name in ("times", "mean", "std"):
            object.__setattr__(self, name, tuple(float(v) for v in np.ravel(getattr(self, name))))
        if not len(self.times) == len(self.mean) == len(self.std) > 0:
            raise InputError("GaussianMarginals needs times, mean and std of one positive length")
        if any(b <= a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise InputError(f"GaussianMarginals needs increasing times, got {self.times}")
        if not all(s > 0 and math.isfinite(s) for s in self.std):
            raise InputError(f"GaussianMarginals needs positive stds, got {self.std}")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 2:
            raise InputError(f"samples must be an int >= 2, got {self.samples!r}")


def marginal_metric_name(kind: str, t: float) -> str:
    """The metric key of a per-time distance, e.g. `"w1_t0.5"`."""
    return f"{kind}_t{t:g}"


def evaluate_marginals(
    model, marginals: GaussianMarginals, *, key: PRNGKeyArray | None = None
) -> dict[str, float]:
    """Compare the marginals of a sampling model with exact Gaussian ones.

    Samples `marginals.samples` paths of the model from its prior (for a
    [`LatentSDE`][odezoo.nn.LatentSDE], the prior SDE: the generative model) at the
    marginals' times and measures, at each time `t`:

    - `w1_t{t}`: the Wasserstein-1 distance of the model's samples to the exact law
      ([`wasserstein1_gaussian`][odezoo.metrics.wasserstein1_gaussian]);
    - `w1_floor_t{t}`: the sampling noise floor at that time, the mean W1 of as many
      samples of the exact law itself (`std_t` times
      [`wasserstein1_noise_floor`][odezoo.metrics.wasserstein1_noise_floor]);

    and over all times `ks_max` (the largest Kolmogorov-Smirnov statistic,
    [`ks_gaussian`][odezoo.metrics.ks_gaussian]) and `w1_ratio_max` (the largest
    `w1_t / w1_floor_t`: 1 means as close as a sample of the truth of the same size).

    Arguments:

    - `model`: a latent model ([`AbstractLatentModel`][odezoo.nn.AbstractLatentModel],
      e.g. a [`LatentSDE`][odezoo.nn.LatentSDE] or a [`LatentODE`][odezoo.nn.LatentODE])
      with one data channel.
    - `marginals`: the [`GaussianMarginals`][odezoo.metrics.GaussianMarginals].
    - `key`: the sampling key (default `jax.random.key(0)`).

    Example:

    ```python
    import jax, odezoo
    from odezoo.nn import LatentSDE
    from odezoo.metrics import GaussianMarginals, evaluate_marginals

    t = (0.5, 1.0)
    mean, var = odezoo.data.ou_moments(jax.numpy.asarray(t))
    law = GaussianMarginals(t, mean, var**0.5, samples=100)
    model = LatentSDE(1, latent_size=2, hidden_size=4, key=jax.random.key(0))
    metrics = evaluate_marginals(model, law)   # untrained: far from the floor
    ```
    """
    if not isinstance(model, AbstractLatentModel):
        raise InputError(
            "marginals are compared for a latent model that samples paths (a LatentSDE or "
            f"a LatentODE), got {type(model).__name__}"
        )
    if model.in_shape != (1,):
        raise InputError(f"Gaussian marginals are 1-D; the model has {model.in_shape[0]} channels")
    key = jax.random.key(0) if key is None else key
    ts = jnp.asarray(marginals.times)
    sample = eqx.filter_jit(lambda m, k: m.sample(ts, marginals.samples, key=k))
    paths = np.asarray(sample(model, key))[..., 0]  # (samples, K)
    floor = wasserstein1_noise_floor(marginals.samples)
    out: dict[str, float] = {}
    ratios, ks = [], []
    law = zip(marginals.times, marginals.mean, marginals.std, strict=True)
    for k, (t, mean, std) in enumerate(law):
        w1 = wasserstein1_gaussian(paths[:, k], mean, std)
        out[marginal_metric_name("w1", t)] = w1
        out[marginal_metric_name("w1_floor", t)] = floor * std
        ratios.append(w1 / (floor * std))
        ks.append(ks_gaussian(paths[:, k], mean, std))
    out["ks_max"] = max(ks)
    out["w1_ratio_max"] = max(ratios)
    return out
