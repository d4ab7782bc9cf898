"""Seeded, deterministic datasets: toy regression, ANODE spheres, FFJORD's 2-D toy
densities, scikit-learn's 8x8 digits and a loader for user-supplied MNIST files.

Nothing here downloads anything, and nothing here imports the rest of `odezoo`.

One calling convention for every dataset: sizes and options are positional or keyword
arguments, and a dataset that draws random numbers takes its JAX key as the keyword-only
argument `key` (no default), e.g. `toy2d("moons", 256, key=key)`,
`concentric_spheres(dim=2, key=key)`; deterministic ones take none (`cubic(10)`,
`digits("train", seed=0)`, whose `seed` fixes scikit-learn's split).
"""

from ._cubic import cubic as cubic
from ._digits import digits as digits
from ._mnist import load_mnist as load_mnist
from ._series import gbm_moments as gbm_moments
from ._series import geometric_brownian_motion as geometric_brownian_motion
from ._series import ornstein_uhlenbeck as ornstein_uhlenbeck
from ._series import ou_moments as ou_moments
from ._series import periodic as periodic
from ._series import spirals as spirals
from ._series import spirals_classification as spirals_classification
from ._series import split_series as split_series
from ._spheres import concentric_spheres as concentric_spheres
from ._toy2d import TOY2D_NAMES as TOY2D_NAMES
from ._toy2d import TRUE_ENTROPY as TRUE_ENTROPY
from ._toy2d import toy2d as toy2d
from ._toy2d import toy2d_log_density as toy2d_log_density

__all__ = [
    "TOY2D_NAMES",
    "TRUE_ENTROPY",
    "concentric_spheres",
    "cubic",
    "digits",
    "gbm_moments",
    "geometric_brownian_motion",
    "load_mnist",
    "ornstein_uhlenbeck",
    "ou_moments",
    "periodic",
    "spirals",
    "spirals_classification",
    "split_series",
    "toy2d",
    "toy2d_log_density",
]
