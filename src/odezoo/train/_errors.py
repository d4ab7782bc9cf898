"""The two errors a training run raises on purpose: a failed run and a bad checkpoint."""

from __future__ import annotations

from typing import Any


class TrainingError(RuntimeError):
    """A training run stopped because of bad data or divergence.

    Raised by [`fit`][odezoo.train.fit] when a batch holds NaN or inf, when the loss or a
    gradient is not finite, or when an ODE solve fails mid-training (`max_steps`
    reached, or NaN/inf inside the solve). The message names the step and the cause.

    Attributes:

    - `step`: the 1-based number of the training step that failed.
    - `cause`: a short code: `"bad_batch"`, `"nonfinite_loss"`, `"nonfinite_grad"`,
      `"max_steps"` or `"solver_nonfinite"`.
    - `checkpoint`: path of the last good checkpoint on disk (never overwritten by the
      failed step), or `None` when the run had none.
    - `model`: the model after the last good step, when it survived in memory (a bad
      batch or a non-finite loss/gradient leaves the state untouched); `None` when the
      failure happened inside the solver, whose error consumed the donated buffers.
    """

    def __init__(
        self,
        message: str,
        *,
        step: int,
        cause: str,
        checkpoint: str | None = None,
        model: Any = None,
    ):
        super().__init__(message)
        self.step = step
        self.cause = cause
        self.checkpoint = checkpoint
        self.model = model


class CheckpointError(ValueError):
    """A checkpoint (or weights file) cannot be loaded into the given model.

    Raised for a missing, truncated or corrupt file, a file of another format or
    version, or a file written for a different architecture (the message says which
    leaf differs and what to do).
    """
