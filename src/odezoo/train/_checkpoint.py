"""Checkpoints: model, optimiser state, step and PRNG key in one atomically written file."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import struct
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._errors import CheckpointError

MAGIC = b"ODEZOO-CHECKPOINT\n"
FORMAT_VERSION = 1
_LEN = struct.Struct("<Q")


# -- atomic files ---------------------------------------------------------------------


def _write_all(f, data: bytes) -> None:
    f.write(data)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that `path` always holds either its old or its new
    contents: write a temporary file in the same directory, flush and fsync it, then
    `os.replace` it onto `path` (and fsync the directory). A crash or kill mid-write
    leaves the previous file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            _write_all(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- tree signatures ------------------------------------------------------------------


def tree_signature(tree) -> list[str]:
    """One line per array leaf of `tree`: its path, shape and dtype.

    Two models with the same signature have the same architecture as far as their
    parameters go (static settings such as solver tolerances are not part of it).
    """
    lines = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(leaf, jax.Array | np.ndarray | np.generic):
            shape = "x".join(str(s) for s in np.shape(leaf)) or "scalar"
            lines.append(f"{jax.tree_util.keystr(path)}: {shape} {np.asarray(leaf).dtype.name}")
    return lines


def _signature_hash(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def _first_difference(saved: list[str], current: list[str]) -> str:
    for a, b in zip(saved, current, strict=False):
        if a != b:
            return f"the file has `{a}` where the model has `{b}`"
    if len(saved) != len(current):
        return f"the file has {len(saved)} array leaves, the model {len(current)}"
    return "the leaves differ"


# -- checkpoints ----------------------------------------------------------------------


@dataclasses.dataclass
class Checkpoint:
    """What `load_checkpoint` returns.

    Fields: `model`, `opt_state`, `step` (completed training steps), `key` (raw PRNG
    key data, `jax.random.key_data` of the training key), and `header` (the JSON
    header: format version, step, signature, config hash, checksums).
    """

    model: Any
    opt_state: Any
    step: int
    key: Any
    header: dict


def _state(model, opt_state, key):
    return {"model": model, "opt_state": opt_state, "key": key}


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model,
    opt_state,
    step: int,
    key,
    config_hash: str | None = None,
) -> None:
    """Save a training state atomically (see
    `atomic_write_bytes`).

    The file is a magic line, a JSON header (format version, step, a signature of the
    tree's leaf paths/shapes/dtypes, the run's config hash, and the payload's length and
    SHA-256), then the leaves as written by `equinox.tree_serialise_leaves`.

    Arguments:

    - `path`: the file (conventionally `checkpoint.ckpt` in a run directory).
    - `model`, `opt_state`: the model and the optimiser state.
    - `step`: the number of completed training steps.
    - `key`: the raw data of the training PRNG key (`jax.random.key_data(key)`).
    - `config_hash`: optional fingerprint of the run's config, checked on resume.
    """
    tree = _state(model, opt_state, key)
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree)
    payload = buf.getvalue()
    signature = tree_signature(tree)
    header = {
        "format": "odezoo-checkpoint",
        "version": FORMAT_VERSION,
        "step": int(step),
        "config_hash": config_hash,
        "signature_hash": _signature_hash(signature),
        "signature": signature,
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "jax_version": jax.__version__,
    }
    head = json.dumps(header).encode()
    atomic_write_bytes(path, MAGIC + _LEN.pack(len(head)) + head + payload)


def read_header(path: str | os.PathLike) -> tuple[dict, bytes]:
    """The JSON header and the verified payload of a checkpoint file.

    Raises [`CheckpointError`][odezoo.train.CheckpointError] for a missing, foreign,
    truncated or corrupt file.
    """
    path = Path(path)
    advice = "Delete it and resume from an earlier copy, or start a fresh run."
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    if not data.startswith(MAGIC):
        raise CheckpointError(
            f"{path} is not an odezoo checkpoint (it does not start with the checkpoint "
            f"marker; it is empty or another kind of file). {advice}"
        )
    pos = len(MAGIC)
    if len(data) < pos + _LEN.size:
        raise CheckpointError(f"checkpoint {path} is truncated (no header). {advice}")
    (n,) = _LEN.unpack_from(data, pos)
    pos += _LEN.size
    try:
        header = json.loads(data[pos : pos + n].decode())
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(f"checkpoint {path} has a corrupt header. {advice}") from None
    if header.get("format") != "odezoo-checkpoint":
        raise CheckpointError(f"{path} is not an odezoo checkpoint. {advice}")
    if header.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {header.get('version')!r}; this odezoo "
            f"reads version {FORMAT_VERSION}. Use the odezoo version that wrote it."
        )
    payload = data[pos + n :]
    if len(payload) != header.get("payload_bytes"):
        raise CheckpointError(
            f"checkpoint {path} is truncated or padded: {len(payload)} payload bytes where "
            f"the header says {header.get('payload_bytes')}. {advice}"
        )
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise CheckpointError(f"checkpoint {path} is corrupt (checksum mismatch). {advice}")
    return header, payload


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model,
    opt_state,
    key,
    config_hash: str | None = None,
) -> Checkpoint:
    """Load a checkpoint written by `save_checkpoint`.

    Arguments:

    - `path`: the checkpoint file.
    - `model`, `opt_state`, `key`: templates with the structure, shapes and dtypes of
      the saved state (e.g. a freshly built model, `optimizer.init(params)` and key
      data); their values are ignored.
    - `config_hash`: if given, must match the hash stored in the file.

    Returns:

    A `Checkpoint`.

    Raises [`CheckpointError`][odezoo.train.CheckpointError] naming what mismatched
    (architecture, optimiser, config) or what is wrong with the file.

    """
    header, payload = read_header(path)
    template = _state(model, opt_state, key)
    current = tree_signature(template)
    saved = header.get("signature", [])
    if saved != current:
        section = "architecture"
        diff = _first_difference(saved, current)
        if "['opt_state']" in diff and "['model']" not in diff:
            section = "optimiser state (was it written with another optimiser or other "
            section += "trainable parts?)"
        raise CheckpointError(
            f"checkpoint {path} does not match this model's {section}: {diff}. Build the "
            "model from the run's config.json, or start a fresh run directory."
        )
    saved_hash = header.get("config_hash")
    if config_hash is not None and saved_hash is not None and saved_hash != config_hash:
        raise CheckpointError(
            f"checkpoint {path} was written by a run with another config (hash {saved_hash}, "
            f"now {config_hash}). Resume with the run's own config.json, or start a fresh "
            "run directory."
        )
    try:
        tree = eqx.tree_deserialise_leaves(io.BytesIO(payload), template)
    except Exception as e:  # the checksum matched, so this is a format problem
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    return Checkpoint(tree["model"], tree["opt_state"], int(header["step"]), tree["key"], header)


# -- plain weights files --------------------------------------------------------------


def save_model(path: str | os.PathLike, model) -> None:
    """Save a model's leaves atomically with `equinox.tree_serialise_leaves` (a plain
    `.eqx` file that `equinox.tree_deserialise_leaves` reads too).

    Example:

    ```python
    import jax, odezoo
    from odezoo.train import load_model, save_model

    net = odezoo.MLP(1, 1, key=jax.random.key(0))
    save_model("/tmp/model.eqx", net)
    same = load_model("/tmp/model.eqx", odezoo.MLP(1, 1, key=jax.random.key(1)))
    ```
    """
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, model)
    atomic_write_bytes(path, buf.getvalue())


def load_model(path: str | os.PathLike, like):
    """Load weights saved by [`save_model`][odezoo.train.save_model] into a model of the
    same architecture as `like` (a freshly built model; its values are ignored).

    Weights keep their values exactly. A leaf saved in a narrower floating-point dtype
    than `like`'s is widened (float32 weights load into a model built under
    `jax_enable_x64`, with the same values); a wider one is refused, since narrowing
    would change the values.

    Raises [`CheckpointError`][odezoo.train.CheckpointError] saying what is wrong: a
    missing, empty, truncated or corrupt file, or one saved for another architecture
    (naming the first leaf that differs) or in a wider dtype.

    Example:

    ```python
    import jax, odezoo
    from odezoo.train import load_model, save_model

    net = odezoo.MLP(1, 1, key=jax.random.key(0))
    save_model("/tmp/model.eqx", net)
    same = load_model("/tmp/model.eqx", odezoo.MLP(1, 1, key=jax.random.key(1)))
    ```
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"no weights file at {path}") from None
    except OSError as e:
        raise CheckpointError(f"cannot read weights file {path}: {e}") from None
    rebuild = "rebuild the model from the config.json next to it"
    if not data:
        raise CheckpointError(
            f"weights file {path} is empty (0 bytes): it was never written completely. "
            "Save the model again, or use a copy of the file."
        )
    reader = _LeafReader(data, like)
    f = io.BytesIO(data)
    try:
        model = eqx.tree_deserialise_leaves(f, like, filter_spec=reader)
    except Exception as e:  # equinox wraps the reader's `_BadLeaf` in its own error
        cause = e
        while cause is not None and not isinstance(cause, _BadLeaf):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise CheckpointError(f"cannot load weights {path}: {cause}") from None
    if f.tell() != len(data):
        raise CheckpointError(
            f"weights file {path} holds more leaves than this model's {reader.count}: it "
            f"was saved for another architecture; {rebuild}."
        )
    return model


class _BadLeaf(Exception):
    """Why a weights file's leaf does not load (turned into a `CheckpointError`)."""


class _LeafReader:
    """An `equinox.tree_deserialise_leaves` filter spec that reads each array leaf with
    its `.npy` header checked against the model's leaf, so that every way a file can
    fail to fit says what it is: truncated, corrupt, another shape, another dtype."""

    def __init__(self, data: bytes, like):
        self.size = len(data)
        self.paths = [
            jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(like)[0]
        ]
        self.count = len(self.paths)
        self.index = 0

    def __call__(self, f, x):
        index, self.index = self.index, self.index + 1
        where = f"leaf {index + 1} of {self.count} (`{self.paths[index]}`)"
        start = f.tell()
        if start == self.size:
            raise _BadLeaf(
                f"the file ends after {index} of the model's {self.count} array leaves: it "
                "is truncated, or was saved for a smaller architecture. Rebuild the model "
                "from the config.json next to it, or use a complete copy of the file."
            )
        try:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                version, np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read(f)
            needed = f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        except Exception:
            f.seek(start)
            if np.lib.format.MAGIC_PREFIX.startswith(f.read(6)[: self.size - start]):
                raise _BadLeaf(f"the file is truncated inside {where}") from None
            raise _BadLeaf(
                f"the file is corrupt or not an equinox weights file: {where} does not "
                "start with an array header"
            ) from None
        f.seek(start)
        if not isinstance(x, jax.Array | np.ndarray):
            return eqx.default_deserialise_filter_spec(f, x)
        if tuple(shape) != tuple(x.shape):
            raise _BadLeaf(
                f"{where} has shape {tuple(shape)} in the file and {tuple(x.shape)} in the "
                "model: it was saved for another architecture. Rebuild the model from the "
                "config.json next to it."
            )
        try:
            value = np.load(f, allow_pickle=False)
        except Exception:
            if needed > self.size:
                raise _BadLeaf(f"the file is truncated inside {where}") from None
            raise _BadLeaf(f"the file is corrupt at {where}") from None
        want = np.dtype(x.dtype)
        if value.dtype != want:
            widening = value.dtype.kind == want.kind and np.can_cast(value.dtype, want, "safe")
            if not widening:
                raise _BadLeaf(
                    f"{where} was saved as {value.dtype} and the model's is {want}; build "
                    f"the model in {value.dtype} (for float64: "
                    '`jax.config.update("jax_enable_x64", True)` before building it)'
                )
            value = value.astype(want)
        return jnp.asarray(value) if isinstance(x, jax.Array) else value
