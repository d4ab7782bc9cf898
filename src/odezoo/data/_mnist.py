import gzip
import os
import zipfile
from pathlib import Path

import numpy as np

from .._errors import InputError

_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions.
_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension.

# key -> (standard IDX file name, expected magic number)
_IDX_FILES = {
    "x_train": ("train-images-idx3-ubyte", _IMAGES_MAGIC),
    "y_train": ("train-labels-idx1-ubyte", _LABELS_MAGIC),
    "x_test": ("t10k-images-idx3-ubyte", _IMAGES_MAGIC),
    "y_test": ("t10k-labels-idx1-ubyte", _LABELS_MAGIC),
}

# key -> names accepted in an .npz file, the first being the canonical (and Keras) one.
_NPZ_KEYS = {
    "x_train": ("x_train", "X_train", "train_images", "train_x", "images_train"),
    "y_train": ("y_train", "Y_train", "train_labels", "train_y", "labels_train"),
    "x_test": ("x_test", "X_test", "test_images", "test_x", "images_test"),
    "y_test": ("y_test", "Y_test", "test_labels", "test_y", "labels_test"),
}

_NOT_DOWNLOADED = (
    "odezoo cannot download MNIST and never does: get the data yourself and pass its path, "
    "either an .npz file with arrays x_train, y_train, x_test, y_test (such as Keras's "
    "mnist.npz) or a directory holding the four IDX files "
    + ", ".join(name for name, _ in _IDX_FILES.values())
    + " (each optionally gzipped, .gz)."
)


def _idx_candidates(directory: Path, name: str) -> list[Path]:
    # Some mirrors spell the files "train-images.idx3-ubyte".
    names = [name, name.replace("-idx", ".idx")]
    return [directory / (n + suffix) for n in names for suffix in ("", ".gz")]


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":  # gzip, whatever the file is called
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise InputError(f"{path}: corrupt or truncated gzip file ({e}).") from e
    return data


def _read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Parses an IDX file of unsigned bytes into an array of the shape in its header."""
    data = _read_bytes(path)
    if len(data) < 4:
        raise InputError(f"{path}: truncated IDX file ({len(data)} bytes, no header).")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise InputError(
            f"{path}: not an IDX file of the expected kind: magic number {magic}, expected "
            f"{expected_magic} ({'images' if expected_magic == _IMAGES_MAGIC else 'labels'})."
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputError(f"{path}: truncated IDX header ({len(data)} bytes).")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape, dtype=np.int64))
    if len(data) - header != size:
        what = "truncated" if len(data) - header < size else "corrupt (trailing bytes)"
        raise InputError(
            f"{path}: {what} IDX file: the header promises shape {shape} = {size} bytes of "
            f"data, but the file holds {len(data) - header}."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _images(x: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 2:  # flattened square images
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise InputError(f"{where}: cannot reshape {x.shape[1]} pixels into a square.")
        x = x.reshape(-1, 1, side, side)
    elif x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] != 1 and x.shape[-1] == 1:  # channels last
        x = np.moveaxis(x, -1, 1)
    elif x.ndim != 4:
        raise InputError(f"{where}: expected images of 2, 3 or 4 dimensions, got {x.shape}.")
    if np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.bool_):
        x = x.astype(np.float32) / (1.0 if x.dtype == np.bool_ else 255.0)
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
        if x.size and x.max() > 1.0:  # floats on the 0..255 scale
            x = x / 255.0
    else:
        raise InputError(f"{where}: images of dtype {x.dtype} are not numeric.")
    return np.ascontiguousarray(x, dtype=np.float32)


def _labels(y: np.ndarray, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise InputError(f"{where}: expected labels of shape (n,), got {y.shape}.")
    if not (np.issubdtype(y.dtype, np.integer) or np.all(y == np.round(y))):
        raise InputError(f"{where}: labels must be integers.")
    return y.astype(np.int32)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            found = set(f.files)
            raw = {}
            for key, aliases in _NPZ_KEYS.items():
                name = next((a for a in aliases if a in found), None)
                if name is None:
                    raise InputError(
                        f"{path}: no array for {key!r} (accepted names: {aliases}); the file "
                        f"holds {sorted(found)}."
                    )
                raw[key] = f[name]
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise InputError(f"{path}: corrupt or unreadable .npz file ({e}).") from e
    return raw


def _load_idx_dir(directory: Path) -> dict[str, np.ndarray] | None:
    found = {}
    for key, (name, _) in _IDX_FILES.items():
        path = next((p for p in _idx_candidates(directory, name) if p.is_file()), None)
        if path is not None:
            found[key] = path
    if not found:
        return None
    missing = [name for key, (name, _) in _IDX_FILES.items() if key not in found]
    if missing:
        raise FileNotFoundError(
            f"{directory}: missing MNIST IDX file(s) {missing}. {_NOT_DOWNLOADED}"
        )
    return {key: _read_idx(path, _IDX_FILES[key][1]) for key, path in found.items()}


def load_mnist(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Loads MNIST (or any dataset in its format) from files the user supplies.

    odezoo never downloads anything. `path` is either

    - an `.npz` file with arrays `x_train`, `y_train`, `x_test`, `y_test` (Keras's
        `mnist.npz` has these; `train_images`/`train_labels`/... are accepted too), or
    - a directory holding the four IDX files `train-images-idx3-ubyte`,
        `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`,
        each optionally gzipped (`.gz`), as distributed by Yann LeCun's page and its
        mirrors. A directory with no IDX files but a `mnist.npz` is read from that file.

    The IDX files are parsed with NumPy: the magic number is checked (2051 for images,
    2049 for labels) and the image size is taken from the header, so other datasets in
    MNIST's format (Fashion-MNIST, KMNIST) load too.

    **Arguments:**

    - `path`: a path to an `.npz` file or to a directory of IDX files.

    **Returns:**

    A dict with keys `"x_train"`, `"y_train"`, `"x_test"`, `"y_test"`: images as float32
    NumPy arrays in `[0, 1]` of shape `(n, 1, rows, cols)` (`(n, 1, 28, 28)` for MNIST),
    labels as int32 NumPy arrays of shape `(n,)`.

    **Raises:**

    `FileNotFoundError` if `path` or one of the IDX files does not exist, and
    `ValueError` if a file is truncated, corrupt, has the wrong magic number, or lacks
    one of the arrays.

    !!! Example

        ```python
        >>> import os, tempfile
        >>> import numpy as np
        >>> from odezoo.data import load_mnist
        >>> path = os.path.join(tempfile.mkdtemp(), "mnist.npz")
        >>> images = np.zeros((3, 28, 28), np.uint8)
        >>> np.savez(path, x_train=images, y_train=np.arange(3), x_test=images[:1],
        ...          y_test=np.arange(1))
        >>> data = load_mnist(path)
        >>> data["x_train"].shape, str(data["x_train"].dtype), str(data["y_test"].dtype)
        ((3, 1, 28, 28), 'float32', 'int32')

        ```
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"MNIST not found: {str(path)!r} does not exist. {_NOT_DOWNLOADED}")
    if path.is_dir():
        raw = _load_idx_dir(path)
        if raw is None:
            npz = path / "mnist.npz"
            if not npz.is_file():
                raise FileNotFoundError(
                    f"MNIST not found in directory {str(path)!r}: no IDX files and no "
                    f"mnist.npz. {_NOT_DOWNLOADED}"
                )
            path, raw = npz, _load_npz(npz)
    elif path.suffix == ".npz" or zipfile.is_zipfile(path):
        raw = _load_npz(path)
    else:
        raise InputError(
            f"{str(path)!r} is neither an .npz file nor a directory of IDX files. "
            + _NOT_DOWNLOADED
        )

    out = {}
    for split in ("train", "test"):
        x = _images(raw[f"x_{split}"], f"{path} (x_{split})")
        y = _labels(raw[f"y_{split}"], f"{path} (y_{split})")
        if len(x) != len(y):
            raise InputError(f"{path}: {len(x)} {split} images but {len(y)} {split} labels.")
        out[f"x_{split}"], out[f"y_{split}"] = x, y
    return {key: out[key] for key in ("x_train", "y_train", "x_test", "y_test")}
