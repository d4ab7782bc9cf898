from typing import Literal

import numpy as np

from .._errors import InputError

_INSTALL_HINT = (
    "`odezoo.data.digits` needs scikit-learn, which ships the 8x8 digits dataset. "
    'Install it with `pip install "odezoo[data]"` (or `pip install scikit-learn`).'
)


def digits(
    split: Literal["train", "test"] = "train",
    test_fraction: float = 0.2,
    seed: int = 0,
    flatten: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 handwritten digits of scikit-learn (1797 images, 10 classes).

    The data ships with scikit-learn, so nothing is downloaded. It is a small stand-in for
    MNIST that trains in seconds on a CPU. The train/test split is stratified by label and
    fixed by `seed`: the same `(test_fraction, seed)` always gives the same split, and the
    `"train"` and `"test"` splits are disjoint and together hold all 1797 images.

    **Arguments:**

    - `split`: `"train"` or `"test"`.
    - `test_fraction`: the fraction of the images in the test split, in `(0, 1)`.
    - `seed`: the seed of the split (sklearn's `random_state`).
    - `flatten`: if `True`, return images as vectors of 64 pixels instead of `(1, 8, 8)`.

    **Returns:**

    A pair `(x, y)` of NumPy arrays: `x` float32 in `[0, 1]` of shape `(n, 1, 8, 8)`
    (channels first), or `(n, 64)` if `flatten`; `y` the int32 labels `0..9` of shape
    `(n,)`.

    !!! Example

        ```python
        >>> from odezoo.data import digits
        >>> x, y = digits("train")
        >>> x.shape, str(x.dtype), y.shape, str(y.dtype)
        ((1437, 1, 8, 8), 'float32', (1437,), 'int32')

        ```
    """
    if split not in ("train", "test"):
        raise InputError(f'`split` must be "train" or "test", got {split!r}.')
    test_fraction = float(test_fraction)
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"`test_fraction` must lie in (0, 1), got {test_fraction!r}.")
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise ImportError(_INSTALL_HINT) from e

    data = load_digits()
    x = np.asarray(data.data, dtype=np.float32) / 16.0
    y = np.asarray(data.target, dtype=np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    if not flatten:
        x = x.reshape(-1, 1, 8, 8)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)
