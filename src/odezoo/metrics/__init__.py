"""Evaluation metrics: a model scored on held-out data, and sampled marginals against a
known law.

[`evaluate`][odezoo.metrics.evaluate] scores a trained model on a held-out set with its
training loss and the metrics that loss is scored by: accuracy for classifiers, the
registered series metrics for the time-series models
([`register_metrics`][odezoo.metrics.register_metrics]), and, for a sampling model,
Wasserstein-1 and Kolmogorov-Smirnov distances of its marginals from the exact Gaussian
ones ([`GaussianMarginals`][odezoo.metrics.GaussianMarginals]). These are evaluation
numbers, not training losses (those are in `odezoo.losses`).
"""

from ._distances import ks_gaussian as ks_gaussian
from ._distances import wasserstein1_gaussian as wasserstein1_gaussian
from ._distances import wasserstein1_noise_floor as wasserstein1_noise_floor
from ._evaluate import evaluate as evaluate
from ._marginals import GaussianMarginals as GaussianMarginals
from ._marginals import evaluate_marginals as evaluate_marginals
from ._series import forecast_errors as forecast_errors
from ._series import register_metrics as register_metrics
from ._series import series_metrics as series_metrics
