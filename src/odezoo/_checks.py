"""odezoo's run-time checks and the exception each one raises.

A check inside compiled code (`equinox.error_if`, `equinox.branched_error_if`) can only
raise equinox's runtime error with a static message. Every message odezoo checks with
is registered here with the odezoo exception it stands for (and, for a failed solve,
its [`SolveResult`][odezoo.SolveResult] member), so that a model's public method turns
equinox's error into that exception by the message's identity: the wording of a message
is free to change.
"""

from __future__ import annotations

from ._errors import OdezooError, SolverError

# message -> (exception class, the SolveResult member name of a failed solve, or None)
_REGISTERED: dict[str, tuple[type[OdezooError], str | None]] = {}


def register_message(message: str, error: type[OdezooError], cause: str | None = None) -> str:
    """Record that a run-time check with `message` raises `error` (with `cause`, a
    `SolveResult` member name, for a failed solve). Returns `message`."""
    _REGISTERED[message] = (error, cause)
    return message


def odezoo_error_of(text: str) -> OdezooError | None:
    """The odezoo exception of an equinox runtime error whose text is `text`, or `None`
    when it holds no registered message (the error is not one of odezoo's checks)."""
    found = [m for m in _REGISTERED if m in text]
    if not found:
        return None
    message = max(found, key=len)  # the most specific, should one contain another
    error, cause = _REGISTERED[message]
    if error is SolverError:
        return SolverError(message, cause=cause)
    return error(message)
