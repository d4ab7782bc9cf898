"""A training loss with speed regularisers: `penalised(loss, regularisation)`."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._errors import InputError
from .._regularisation import Regularisation
from .._stats import SolveStats
from ..nn import AbstractModel
from ._losses import Loss, get_loss


class LossAux(eqx.Module):
    """What a penalised loss returns beside its value: the solve statistics and each
    regulariser's batch-mean value (logged by [`fit`][odezoo.train.fit] as
    `penalty_<name>`)."""

    stats: SolveStats | None
    penalties: dict[str, Array]


class _Regularised(AbstractModel):
    """`model` whose `apply` (and a CNF's `regularized`) run with the regularisers; the
    penalties travel with the statistics, which the built-in losses pass through."""

    model: AbstractModel
    regularisation: Regularisation

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.model.in_shape

    @property
    def name(self) -> str:
        return self.model.name

    def apply(self, xs, *, key=None):
        out, values, stats = self.model.apply_regularised(xs, self.regularisation, key=key)
        return out, (stats, values)

    def regularized(self, xs, *, key=None):
        logp, aux = self.apply(xs, key=key)
        return logp, jnp.zeros_like(logp), aux


def split_aux(aux: Any) -> tuple[SolveStats | None, dict[str, Array]]:
    """`(stats, penalties)` from what a loss returned beside its value."""
    if isinstance(aux, LossAux):
        return aux.stats, aux.penalties
    return aux, {}


def penalised(loss: str | Loss, regularisation: Regularisation) -> Loss:
    """`loss` plus the speed regularisers' penalty, for [`fit`][odezoo.train.fit].

    Training minimises `loss + regularisation.penalty(values)`, the values computed in
    the same solve as the outputs (see [`penalised_solve`][odezoo.penalised_solve]);
    evaluation (`odezoo.metrics.evaluate`) uses the plain model, at the fixed end time.

    Arguments:

    - `loss`: a loss name (`"mse"`, `"cross_entropy"`, `"huber"`, `"nll"`) or a loss
      function `loss(model, batch, key) -> (value, stats)` that calls `model.apply` (or
      a CNF's `model.regularized`).
    - `regularisation`: a [`Regularisation`][odezoo.Regularisation].

    Returns:

    A loss `loss(model, batch, key) -> (value, LossAux)`.

    Example:

    ```python
    import jax, optax, odezoo
    from odezoo.losses import penalised
    from odezoo.train import fit

    x, y = odezoo.data.cubic()
    net = odezoo.ODENet(1, key=jax.random.key(0))
    loss = penalised("mse", odezoo.Regularisation(kinetic=0.01))
    result = fit(net, (x, y), loss=loss, optimizer=optax.adam(1e-2), steps=5,
                 key=jax.random.key(1))
    print(result.history[-1]["penalty_kinetic"])
    ```
    """
    base = get_loss(loss)
    if not isinstance(regularisation, Regularisation):
        raise InputError(
            f"regularisation must be an odezoo.Regularisation (e.g. "
            f"odezoo.Regularisation(kinetic=0.01)), got {regularisation!r}"
        )

    def penalised_loss(model, batch, key: PRNGKeyArray | None = None):
        value, (stats, values) = base(_Regularised(model, regularisation), batch, key)
        means = {name: jnp.mean(v) for name, v in values.items()}
        return value + regularisation.penalty(values), LossAux(stats, means)

    return penalised_loss
