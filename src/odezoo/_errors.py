"""Every exception odezoo raises on purpose, under one base class.

Catch [`OdezooError`][odezoo.OdezooError] to handle any of them; the CLI does, and
prints its message as one line. Each subclass also derives from the built-in exception
it used to be (`ValueError`, `RuntimeError`, ...), so existing `except` clauses keep
working. Each message says what went wrong and what to do.
"""

from __future__ import annotations

import re
import sys
from typing import Any


class OdezooError(Exception):
    """The base class of every exception odezoo raises on purpose."""


class InputError(OdezooError, ValueError):
    """A model or function was given input of the wrong shape, dtype or values (for
    example NaN, or times that are not increasing)."""


class ConfigError(OdezooError, ValueError):
    """A config is malformed: an unknown key, type or name, or a value of the wrong kind."""


class SolverError(OdezooError, RuntimeError):
    """An ODE solve failed: `max_steps` reached, non-finite input, or a state that became
    non-finite during the solve (divergence). Raised outside `jit`; the message says which
    and what to change.

    Attributes:

    - `cause`: the [`SolveResult`][odezoo.SolveResult] member name of the failure
      (`"max_steps"`, `"solve_diverged"` or `"solve_nonfinite"`), or `None` where it is
      not known.
    """

    def __init__(self, message: str, *, cause: str | None = None):
        super().__init__(message)
        self.cause = cause


class CheckpointError(OdezooError, ValueError):
    """A checkpoint (or weights file) cannot be loaded into the given model.

    Raised for a missing, truncated or corrupt file, a file of another format or
    version, or a file written for a different architecture (the message says which
    leaf differs and what to do).
    """


class TrainingError(OdezooError, RuntimeError):
    """A training run stopped because of bad data, divergence or a failed solve.

    Raised by [`fit`][odezoo.train.fit]. The message names the step and the cause.

    Attributes:

    - `step`: the 1-based number of the training step that failed.
    - `cause`: what failed, a member name of `odezoo.train.Failure`
      (e.g. `"bad_batch"`, `"nonfinite_loss"`, `"max_steps"`).
    - `checkpoint`: path of the last good checkpoint on disk (never overwritten by the
      failed step), or `None` when the run had none.
    - `model`: the model after the last good step (the failed step leaves it as it
      was).
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


class RunDirError(OdezooError, FileExistsError):
    """A run directory cannot be used as asked: it holds files that are not a resumable
    run (and would be overwritten), or `resume` was asked for where there is nothing to
    resume."""


class MissingFileError(OdezooError, FileNotFoundError):
    """A file odezoo needs is not there: a run directory without the `config.json` that
    rebuilds its model, or a zoo entry or run without trained weights (`model.eqx`). The
    message says which file and how to make it."""


class UnknownEntryError(OdezooError, KeyError, ValueError):
    """No zoo entry has this name. The message lists the valid names (and the closest)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown zoo entry"


class CardMismatchError(OdezooError, AssertionError):
    """An entry's shipped weights do not reproduce the metrics its card states."""


def one_line(e: BaseException) -> str:
    """An exception's message as one line. For an `equinox.EquinoxRuntimeError` (how a
    check inside `jit`, such as a failed ODE solve, surfaces) only odezoo's message,
    without equinox's debugging advice.

    Arguments:

    - `e`: the exception.
    """
    text = str(e)
    eqx = sys.modules.get("equinox")
    if eqx is not None and isinstance(e, eqx.EquinoxRuntimeError):
        text = text.split("EquinoxRuntimeError: ")[-1]
    text = re.split(r"\n-{5,}", text)[0]
    return " ".join(text.split())


def error_line(e: BaseException) -> str:
    """What went wrong, as one line: an odezoo error's message
    (`one_line`); any other exception's, after its type name.

    Arguments:

    - `e`: the exception.
    """
    return one_line(e) if isinstance(e, OdezooError) else f"{type(e).__name__}: {one_line(e)}"
