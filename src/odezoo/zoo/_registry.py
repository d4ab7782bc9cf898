"""The zoo registry: named configs (and trained weights) found on disk.

Reading names and configs touches only JSON files (no JAX import), so that `odezoo list`
and `odezoo info` are instant.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import functools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .._errors import ConfigError, MissingFileError
from .._errors import UnknownEntryError as UnknownEntryError

ZOO_PATH_ENV = "ODEZOO_ZOO_PATH"
# The files of an entry's folder.
CONFIG = "config.json"
WEIGHTS = "model.eqx"
METRICS = "metrics.json"
TRAINING_LOG = "training.jsonl"
CARD = "card.md"


ZooPath = str | os.PathLike | Sequence[str | os.PathLike] | None
"""Extra zoo folders a lookup searches first: one folder, several, or `None`."""

# The folders of the innermost `searching(...)` (and of a `zoo=` argument), searched first.
_SEARCHING: contextvars.ContextVar[tuple[Path, ...]] = contextvars.ContextVar(
    "odezoo_zoo_searching", default=()
)


def _folders(zoo: ZooPath) -> tuple[Path, ...]:
    if zoo is None:
        return ()
    if isinstance(zoo, str | os.PathLike):
        zoo = [zoo]
    return tuple(Path(p).expanduser() for p in zoo)


@contextlib.contextmanager
def searching(zoo: ZooPath) -> Iterator[None]:
    """Search the folders `zoo` first (before `$ODEZOO_ZOO_PATH` and the shipped zoo)
    for every zoo lookup inside the `with` block, as the `zoo=` argument of the zoo's
    functions and the `--zoo DIR` option of the command line do.

    Arguments:

    - `zoo`: a folder of entries (`<folder>/<name>/config.json`), or several.

    Example:

    ```python
    import tempfile
    from odezoo import zoo

    with zoo.searching(tempfile.mkdtemp()):
        assert "seed-cubic-odenet" in zoo.names()  # the shipped zoo is still searched
    ```
    """
    token = _SEARCHING.set(_folders(zoo) + _SEARCHING.get())
    try:
        yield
    finally:
        _SEARCHING.reset(token)


_F = TypeVar("_F", bound=Callable[..., Any])


def with_zoo(fn: _F) -> _F:
    """Give a zoo function a keyword `zoo` (a [`ZooPath`][odezoo.zoo.searching]): the
    folders it searches first."""

    @functools.wraps(fn)
    def wrapper(*args, zoo: ZooPath = None, **kwargs):
        with searching(zoo):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def search_path() -> list[Path]:
    """Folders searched for entries (`<folder>/<name>/config.json`):

    1. the folders of a `zoo=` argument or of [`searching`][odezoo.zoo.searching];
    2. the folders in `$ODEZOO_ZOO_PATH` (separated by `os.pathsep`), if set;
    3. the `zoo/` folder at the top of the odezoo repository (a source checkout);
    4. `odezoo/zoo_entries/` inside the installed package, if it exists.

    A name defined in two of them is an error that names both places: rename one.
    """
    paths = list(_SEARCHING.get())
    env = os.environ.get(ZOO_PATH_ENV)
    if env:
        paths += [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    here = Path(__file__).resolve()
    repo = here.parents[3] / "zoo"  # src/odezoo/zoo/_registry.py -> <repo>/zoo
    if (here.parents[3] / "pyproject.toml").exists() and repo.is_dir():
        paths.append(repo)
    shipped = here.parents[1] / "zoo_entries"
    if shipped.is_dir():
        paths.append(shipped)
    unique: list[Path] = []
    for p in paths:  # a folder named twice is searched once
        if not any(_same(p, q) for q in unique):
            unique.append(p)
    return unique


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def _entries() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root in search_path():
        if not root.is_dir():
            continue
        for d in sorted(root.iterdir()):
            if not (d / CONFIG).is_file():
                continue
            if d.name in found:
                raise ConfigError(
                    f"zoo entry {d.name!r} is defined twice: in {found[d.name]} and in {d}; "
                    "rename one of them (its folder and its config's name), or take one "
                    f"folder off the search path (--zoo, ${ZOO_PATH_ENV})"
                )
            found[d.name] = d
    return found


@with_zoo
def names() -> list[str]:
    """The names of all zoo entries, sorted.

    Example:

    ```python
    from odezoo import zoo

    print(zoo.names())
    ```
    """
    return sorted(_entries())


@with_zoo
def entry_dir(name: str) -> Path:
    """The folder of entry `name` (holding `config.json`, and `model.eqx` once trained).

    Raises [`UnknownEntryError`][odezoo.zoo.UnknownEntryError] for an unknown name.
    """
    entries = _entries()
    if name not in entries:
        valid = ", ".join(sorted(entries)) or "(none found)"
        close = difflib.get_close_matches(name, entries, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownEntryError(f"unknown zoo entry {name!r}{hint} (valid names: {valid})")
    return entries[name]


def _resolve(name_or_dir: str | os.PathLike) -> Path:
    """The folder holding the `config.json` of a zoo entry name or a run directory."""
    path = Path(name_or_dir)
    if (path / CONFIG).is_file():
        return path
    if isinstance(name_or_dir, str) and name_or_dir in _entries():
        return entry_dir(name_or_dir)
    if path.is_dir():
        if any((path / f).exists() for f in (WEIGHTS, "checkpoint.ckpt", "metrics.jsonl")):
            raise MissingFileError(
                f"{path} has no {CONFIG}, so odezoo cannot rebuild its model (a run directory "
                f"of `odezoo.train.fit(run_dir=...)` has one only when fit is given `config=`): "
                f"write the run's config there (see odezoo.config), or load the weights into "
                f"a model you build with `odezoo.train.load_model({path / WEIGHTS}, model)`"
            )
        raise MissingFileError(f"{path} is not a run directory or zoo entry: it has no {CONFIG}")
    if path.exists() or os.sep in str(name_or_dir) or str(name_or_dir).endswith(".json"):
        raise MissingFileError(f"no run directory or zoo entry at {path} (no {path / CONFIG})")
    return entry_dir(str(name_or_dir))


@with_zoo
def config(name: str | os.PathLike) -> dict[str, Any]:
    """The config of a zoo entry (or of a run directory), as a dict.

    Example:

    ```python
    from odezoo import zoo

    cfg = zoo.config("seed-cubic-odenet")
    print(cfg["model"])
    ```
    """
    path = _resolve(name) / CONFIG
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return cfg


def named_config(target: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """The config of a zoo entry, a config `.json` file or a run directory, and its name
    (the config's `name`, else the file's stem, the directory's name or the entry's).

    Arguments:

    - `target`: a zoo entry name, the path of a config `.json` file, or a run directory.
    """
    path = Path(target)
    if path.is_file():
        try:
            cfg = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(cfg, dict):
            raise ConfigError(f"{path} must hold a JSON object")
        return cfg, cfg.get("name") or path.stem
    if str(target).endswith(".json") and not path.exists():
        raise MissingFileError(f"no config file or run directory at {target}")
    cfg = config(target)  # a zoo entry or a run directory (a clear error otherwise)
    return cfg, cfg.get("name") or (path.name if path.is_dir() else str(target))


def card_meta(cfg: dict) -> dict:
    """The config's `meta.card`: what an entry's card says besides its metrics."""
    return dict((cfg.get("meta") or {}).get("card") or {})


@with_zoo
def has_weights(name: str | os.PathLike) -> bool:
    """Whether an entry (or run directory) has trained weights (`model.eqx`)."""
    return (_resolve(name) / WEIGHTS).is_file()


@with_zoo
def create(name: str | os.PathLike, key=None):
    """A new, untrained model of entry `name` (initialised from `key`, default the
    config's seed).

    Example:

    ```python
    import jax
    from odezoo import zoo

    net = zoo.create("seed-cubic-odenet", jax.random.key(0))
    ```
    """
    from ..config import build_model

    return build_model(config(name), key)


@with_zoo
def load(name_or_run_dir: str | os.PathLike):
    """A trained model: the entry's (or run directory's) config with its `model.eqx`
    weights.

    Raises [`MissingFileError`][odezoo.MissingFileError] (a `FileNotFoundError`) when
    there are no weights yet, and [`CheckpointError`][odezoo.CheckpointError] when they
    do not fit the config.

    Example:

    ```python
    import tempfile, jax
    from odezoo import zoo
    from odezoo.config import build_data, build_model, full_config
    from odezoo.train import fit

    cfg = full_config(zoo.config("seed-cubic-odenet"))
    run = tempfile.mkdtemp()          # or: odezoo train seed-cubic-odenet --out RUN
    fit(build_model(cfg), build_data(cfg).train, steps=2, key=jax.random.key(0),
        run_dir=run, config=cfg)
    model = zoo.load(run)
    ```
    """
    from ..config import build_model
    from ..train import load_model

    folder = _resolve(name_or_run_dir)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise MissingFileError(
            f"{folder} has no trained weights ({WEIGHTS}); train them with "
            f"`odezoo train {name_or_run_dir} --out DIR` and load DIR"
        )
    return load_model(weights, build_model(config(name_or_run_dir)))
