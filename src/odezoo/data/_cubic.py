import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._errors import InputError


def cubic(n: int = 10, low: float = -2.0, high: float = 2.0) -> tuple[Array, Array]:
    """The toy regression problem of the seed chapter: `y = x**3 + 0.1 * x`.

    The inputs are `n` evenly spaced points on `[low, high]` (both ends included), so
    there is nothing random here and no key is needed.

    **Arguments:**

    - `n`: the number of points. Must be a positive integer.
    - `low`: the smallest input.
    - `high`: the largest input.

    **Returns:**

    A pair `(x, y)` of float32 JAX arrays, each of shape `(n, 1)`.

    !!! Example

        ```python
        >>> from odezoo.data import cubic
        >>> x, y = cubic(n=5)
        >>> x.shape, y.shape, str(y.dtype)
        ((5, 1), (5, 1), 'float32')
        >>> round(float(y[-1, 0]), 4)  # 2**3 + 0.1 * 2
        8.2

        ```
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InputError(f"`n` must be a positive int, got {n!r}.")
    x = jnp.linspace(low, high, n, dtype=jnp.float32)[:, None]
    y = x**3 + 0.1 * x
    return x, y
