"""JAX's persistent compilation cache, so a second run of a model skips most compiling."""

from __future__ import annotations

import os
from pathlib import Path

import jax

CACHE_ENV = "ODEZOO_JAX_CACHE_DIR"
_OFF = ("", "0", "off", "none", "false")


def default_cache_dir() -> Path | None:
    """Where compiled programs are cached: `$ODEZOO_JAX_CACHE_DIR` if set (`"off"`
    disables the cache), else `$XDG_CACHE_HOME/odezoo/jax`, else `~/.cache/odezoo/jax`.

    Example:

    ```python
    from odezoo.train import default_cache_dir

    print(default_cache_dir())
    ```
    """
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in _OFF else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "odezoo" / "jax"


def enable_compilation_cache(
    path: str | os.PathLike | None = None, *, min_compile_time_secs: float = 0.5
) -> Path | None:
    """Turn on JAX's persistent compilation cache (used by the `odezoo` CLI).

    Programs that took at least `min_compile_time_secs` to compile are stored on disk
    and loaded by later processes compiling the same program (same model, shapes,
    solver settings, JAX version and device). Compile time is reported apart from step
    time in a run's `metrics.json`, so the saving is visible.

    Arguments:

    - `path`: the cache directory; default [`default_cache_dir`][odezoo.train.default_cache_dir].
    - `min_compile_time_secs`: skip caching programs that compile faster than this.

    Returns:

    The directory used, or `None` when the cache is disabled (`ODEZOO_JAX_CACHE_DIR=off`).

    Example:

    ```python
    from odezoo.train import enable_compilation_cache

    enable_compilation_cache("/tmp/odezoo-jax-cache")
    ```
    """
    directory = Path(path).expanduser() if path is not None else default_cache_dir()
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


def errors_as_nan() -> bool:
    """Make equinox's run-time checks return NaN instead of raising, in this process.

    odezoo's models check every solve with `equinox.error_if`, which raises through a
    host callback; JAX's persistent compilation cache does not store programs with host
    callbacks, so without this the train step of an ODE model is compiled afresh by
    every process. [`fit`][odezoo.train.fit] needs no callback: it reads solver
    failures (`max_steps`) from the solve statistics and NaN/inf from the loss, and
    stops with a [`TrainingError`][odezoo.train.TrainingError] either way. The `odezoo`
    CLI calls this at start-up.

    Call it before anything is traced (equinox caches its checks by call site). Outside
    `fit`, a failed solve then gives NaN instead of an exception, so check
    `stats.failed`.

    Returns:

    `True` if the switch was made; `False` if this version of equinox does not allow it
    (checks then keep raising, which `fit` handles too).

    Example:

    ```python
    from odezoo.train import errors_as_nan, enable_compilation_cache

    errors_as_nan()
    enable_compilation_cache()
    ```
    """
    try:
        from equinox import _config, _errors
    except ImportError:  # pragma: no cover
        return False
    if not (hasattr(_errors, "EQX_ON_ERROR") and hasattr(_config, "EQX_ON_ERROR")):
        return False  # pragma: no cover
    _config.EQX_ON_ERROR = "nan"
    _errors.EQX_ON_ERROR = "nan"
    return True
