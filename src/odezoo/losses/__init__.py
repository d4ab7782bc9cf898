"""Training losses, `loss(model, batch, key) -> (scalar, aux)`, found by name with
[`get_loss`][odezoo.losses.get_loss] (the names a config's `train.loss` takes), and
[`penalised`][odezoo.losses.penalised], which adds a speed regulariser's penalties to one.

The losses of the time-series models (`elbo_loss`, `forecast_mse`, `series_mse`,
`series_cross_entropy`) read the batches the series datasets give. The held-out metrics
a loss is scored by are in `odezoo.metrics`.
"""

from ..train._losses import cross_entropy as cross_entropy
from ..train._losses import get_loss as get_loss
from ..train._losses import huber as huber
from ..train._losses import mse as mse
from ..train._losses import nll as nll
from ..train._penalised import LossAux as LossAux
from ..train._penalised import penalised as penalised
from ..train._series_losses import elbo_loss as elbo_loss
from ..train._series_losses import forecast_mse as forecast_mse
from ..train._series_losses import series_cross_entropy as series_cross_entropy
from ..train._series_losses import series_mse as series_mse
