"""Distances between a sample and a Gaussian law: the Wasserstein-1 distance and the
Kolmogorov-Smirnov statistic, computed exactly (no binning, no second sample).

Both compare the empirical distribution `F_n` of `n` samples with `N(mean, std**2)`:

- `W1 = int |F_n(x) - Phi(x)| dx = int_0^1 |F_n^{-1}(u) - Phi^{-1}(u)| du`, summed
  over the `n` quantile intervals `[(i - 1) / n, i / n]` on which `F_n^{-1}` is the
  `i`-th order statistic, each integral in closed form with the Gaussian's partial
  expectations;
- `KS = sup_x |F_n(x) - Phi(x)|`, reached at an order statistic.

In float64 on the host (`statistics.NormalDist` of the standard library): these are
evaluation metrics, not training losses, and have no gradient.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from .._errors import InputError


def _checked(samples, mean: float, std: float) -> np.ndarray:
    x = np.sort(np.asarray(samples, dtype=np.float64).reshape(-1))
    if x.size == 0:
        raise InputError("a distance to a Gaussian needs at least one sample, got none")
    if not np.all(np.isfinite(x)):
        raise InputError(f"the samples hold {int(np.sum(~np.isfinite(x)))} non-finite value(s)")
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise InputError(
            f"the Gaussian needs a finite mean and a positive std, got {mean!r}, {std!r}"
        )
    return x


def wasserstein1_gaussian(samples, mean: float, std: float) -> float:
    """The Wasserstein-1 distance between the empirical law of `samples` and
    `N(mean, std**2)`, exactly.

    The sampling noise floor of this distance, the value for `n` samples of the
    Gaussian itself, shrinks like `std / sqrt(n)` (see
    [`wasserstein1_noise_floor`][odezoo.metrics.wasserstein1_noise_floor]): compare a
    learned model's distance with it at the same `n`.

    Arguments:

    - `samples`: a 1-D array of samples (any shape; flattened).
    - `mean`, `std`: the Gaussian's (`std > 0`).

    Example:

    ```python
    import numpy as np
    from odezoo.metrics import wasserstein1_gaussian

    x = np.random.default_rng(0).normal(1.0, 2.0, 1000)
    near = wasserstein1_gaussian(x, 1.0, 2.0)   # about 0.09: sampling noise
    far = wasserstein1_gaussian(x, 3.0, 2.0)    # about 2: the shift of the mean
    ```
    """
    mean, std = float(mean), float(std)
    x = _checked(samples, mean, std)
    n = x.size
    law = NormalDist(mean, std)
    # quantile boundaries of the n intervals, as standardised values (+-inf at the ends)
    z = np.array([-np.inf] + [law.inv_cdf(i / n) for i in range(1, n)] + [np.inf])
    z = (z - mean) / std
    zc = (x - mean) / std
    cdf = np.vectorize(lambda v: 0.5 * math.erfc(-v / math.sqrt(2)))

    def pdf(v):
        finite = np.isfinite(v)
        v = np.where(finite, v, 0.0)
        return np.where(finite, np.exp(-0.5 * v * v), 0.0) / math.sqrt(2 * math.pi)

    def partial(v):
        # G(v) = E[(c - X) 1{X <= mean + std v}] with c the interval's order statistic
        return (x - mean) * cdf(v) + std * pdf(v)

    lo, hi = z[:-1], z[1:]
    zm = np.clip(zc, lo, hi)  # where c splits the interval (an end if c lies outside)
    total = (partial(zm) - partial(lo)) - (partial(hi) - partial(zm))
    return float(np.sum(total))


def ks_gaussian(samples, mean: float, std: float) -> float:
    """The Kolmogorov-Smirnov statistic `sup |F_n - Phi|` between the empirical law of
    `samples` and `N(mean, std**2)`.

    Arguments:

    - `samples`: a 1-D array of samples (any shape; flattened).
    - `mean`, `std`: the Gaussian's (`std > 0`).

    Example:

    ```python
    import numpy as np
    from odezoo.metrics import ks_gaussian

    x = np.random.default_rng(0).normal(0.0, 1.0, 1000)
    ks = ks_gaussian(x, 0.0, 1.0)   # about 0.03 (1.36 / sqrt(n) is the 5% critical value)
    ```
    """
    mean, std = float(mean), float(std)
    x = _checked(samples, mean, std)
    n = x.size
    phi = np.array([NormalDist(mean, std).cdf(v) for v in x])
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - phi), np.max(phi - (i - 1) / n)))


def wasserstein1_noise_floor(n: int, *, repeats: int = 32, seed: int = 0) -> float:
    """The mean Wasserstein-1 distance between `n` samples of `N(0, 1)` and `N(0, 1)`
    itself, over `repeats` seeded draws: the sampling noise floor of
    [`wasserstein1_gaussian`][odezoo.metrics.wasserstein1_gaussian] for a sample of size
    `n` (multiply by the Gaussian's `std`; W1 scales with it): about `1.35 / sqrt(n)`
    for `n` in the hundreds to thousands.

    Arguments:

    - `n`: the sample size.
    - `repeats`: the number of draws averaged.
    - `seed`: the seed of NumPy's generator.

    Example:

    ```python
    from odezoo.metrics import wasserstein1_noise_floor

    floor = wasserstein1_noise_floor(1000)   # about 0.043
    ```
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n must be a positive int, got {n!r}")
    rng = np.random.default_rng(seed)
    draws = [wasserstein1_gaussian(rng.normal(size=n), 0.0, 1.0) for _ in range(repeats)]
    return float(np.mean(draws))
