"""JAX's persistent compilation cache, so a second run of a model skips most compiling."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.experimental.compilation_cache import compilation_cache

CACHE_ENV = "ODEZOO_JAX_CACHE_DIR"
_OFF = ("", "0", "off", "none", "false")


def default_cache_dir() -> Path | None:
    """Where compiled programs are cached: `$ODEZOO_JAX_CACHE_DIR` if set (`"off"`
    disables the cache), else `$XDG_CACHE_HOME/odezoo/jax`, else `~/.cache/odezoo/jax`.
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

    - `path`: the cache directory; default `default_cache_dir`.
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


def cache_in_use() -> str | None:
    """The persistent compilation cache's directory when this process reads and writes
    it (see `enable_compilation_cache`), else `None`."""
    if not jax.config.jax_enable_compilation_cache:
        return None
    return jax.config.jax_compilation_cache_dir or None


@contextlib.contextmanager
def compilation_cache_off() -> Iterator[None]:
    """Within the block, every program is compiled afresh: none is loaded from JAX's
    persistent compilation cache or stored in it, even where this process enabled it.
    The cache is as before afterwards.

    JAX decides once per process whether to use the cache, so the decision is reset
    on entry and on exit.
    """
    previous = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", previous)
        compilation_cache.reset_cache()


def errors_as_nan() -> bool:
    """Ask equinox to return NaN instead of raising from its run-time checks, with its
    documented setting `EQX_ON_ERROR=nan`; return whether this process does.

    odezoo's models check every solve with `equinox.error_if`, which raises through a
    host callback; JAX's persistent compilation cache does not store programs with host
    callbacks, so with equinox's default the train step of an ODE model is compiled
    afresh by every process. [`fit`][odezoo.train.fit] needs no callback: it reads solver
    failures from the solve statistics and NaN/inf from the loss, and stops with a
    [`TrainingError`][odezoo.train.TrainingError] either way.

    Equinox reads `EQX_ON_ERROR` once, when it is imported, and `import odezoo` imports
    it. So the setting takes effect in a process started with it (`EQX_ON_ERROR=nan
    odezoo train ...`, or `os.environ["EQX_ON_ERROR"] = "nan"` before the first
    `import odezoo`/`import equinox`). This function sets it in `os.environ`, so that
    processes started from this one inherit it, and tells whether equinox in this
    process returns NaN. Outside `fit`, a failed solve then gives NaN instead of an
    exception, so check `stats.failed`.

    Returns:

    `True` when equinox's checks return NaN in this process; `False` when equinox was
    imported with another setting (its checks keep raising, which `fit` handles too).

    Example:

    ```python
    from odezoo.train import errors_as_nan

    print(errors_as_nan())   # True when started with EQX_ON_ERROR=nan
    ```
    """
    previous = os.environ.get("EQX_ON_ERROR")
    os.environ["EQX_ON_ERROR"] = "nan"
    return previous == "nan" and _checks_return_nan()


@functools.cache
def _checks_return_nan() -> bool:
    """Whether `equinox.error_if` returns NaN in this process (tried once)."""
    try:
        out = eqx.error_if(jnp.zeros(()), jnp.asarray(True), "odezoo: EQX_ON_ERROR probe")
    except eqx.EquinoxRuntimeError:
        return False
    return bool(jnp.isnan(out))
