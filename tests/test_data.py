import doctest
import gzip
import importlib
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from odezoo.data import (
    TOY2D_NAMES,
    TRUE_ENTROPY,
    concentric_spheres,
    cubic,
    digits,
    load_mnist,
    toy2d,
    toy2d_log_density,
)

SIGMA_8G = 0.5 / 1.414


@pytest.mark.parametrize("module", ["_cubic", "_spheres", "_toy2d", "_digits", "_mnist"])
def test_docstring_examples(module):
    mod = importlib.import_module(f"odezoo.data.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


# --------------------------------------------------------------------------- cubic


def test_cubic():
    x, y = cubic()
    assert x.shape == y.shape == (10, 1)
    assert x.dtype == y.dtype == jnp.float32
    assert float(x[0, 0]) == -2.0 and float(x[-1, 0]) == 2.0
    np.testing.assert_allclose(y, x**3 + 0.1 * x, rtol=1e-6)
    x, y = cubic(n=3, low=0.0, high=1.0)
    np.testing.assert_allclose(x[:, 0], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(y[:, 0], [0.0, 0.175, 1.1], rtol=1e-6)
    for n in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive int"):
            cubic(n=n)


# ---------------------------------------------------------------- concentric spheres


# Few distinct configurations: each one is a separate (slow-ish) XLA compilation.
_SPHERES_3D = dict(dim=3, n_inner=200, n_outer=300, inner_radius=(0.2, 0.4), outer_radius=(2, 3))


@pytest.mark.parametrize(
    "config", [dict(dim=1, n_inner=200, n_outer=300), _SPHERES_3D], ids=["1d", "3d"]
)
def test_spheres_radii_and_labels(config):
    dim = config["dim"]
    inner_radius = config.get("inner_radius", (0.0, 0.5))
    outer_radius = config.get("outer_radius", (1.0, 1.5))
    x, y = concentric_spheres(**config, key=jax.random.key(0))
    assert x.shape == (500, dim) and x.dtype == jnp.float32
    assert y.shape == (500, 1) and y.dtype == jnp.float32
    x, y = np.asarray(x), np.asarray(y)[:, 0]
    assert set(np.unique(y).tolist()) == {-1.0, 1.0}
    assert np.sum(y == -1) == 200 and np.sum(y == 1) == 300
    r = np.linalg.norm(x, axis=1)
    eps = 1e-5
    assert inner_radius[0] - eps <= r[y == -1].min() and r[y == -1].max() <= inner_radius[1] + eps
    assert outer_radius[0] - eps <= r[y == 1].min() and r[y == 1].max() <= outer_radius[1] + eps
    # r = (r_max - r_min) * U**(1/d) + r_min, so ((r - r_min) / (r_max - r_min))**d ~ U[0, 1)
    u = ((r[y == 1] - outer_radius[0]) / (outer_radius[1] - outer_radius[0])) ** dim
    np.testing.assert_allclose(np.mean(u), 0.5, atol=0.05)
    # shuffled: the labels are not in blocks
    assert not np.all(y[:200] == -1)
    # the directions are isotropic
    np.testing.assert_allclose(np.mean(x / r[:, None], 0), 0, atol=0.15)


def test_spheres_classes():
    key = jax.random.key(1)
    x, y = concentric_spheres(**_SPHERES_3D, labels="classes", key=key)
    assert y.shape == (500,) and y.dtype == jnp.int32
    assert int(y.sum()) == 300
    # Same key, same points, whatever the label encoding.
    x2, y2 = concentric_spheres(**_SPHERES_3D, key=key)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(np.where(np.asarray(y) == 1, 1.0, -1.0), y2[:, 0])


def test_spheres_determinism():
    a = concentric_spheres(**_SPHERES_3D, key=jax.random.key(3))
    b = concentric_spheres(**_SPHERES_3D, key=jax.random.key(3))
    c = concentric_spheres(**_SPHERES_3D, key=jax.random.key(4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_spheres_validation():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="dim"):
        concentric_spheres(dim=0, key=key)
    with pytest.raises(ValueError, match="dim"):
        concentric_spheres(dim=2.0, key=key)
    with pytest.raises(ValueError, match="n_inner"):
        concentric_spheres(n_inner=-1, key=key)
    with pytest.raises(ValueError, match="positive"):
        concentric_spheres(n_inner=0, n_outer=0, key=key)
    with pytest.raises(ValueError, match="inner_radius"):
        concentric_spheres(inner_radius=(0.5, 0.1), key=key)
    with pytest.raises(ValueError, match="inner_radius"):
        concentric_spheres(inner_radius=(-0.1, 0.5), key=key)
    with pytest.raises(ValueError, match="outer_radius"):
        concentric_spheres(outer_radius=(1.0,), key=key)
    with pytest.raises(ValueError, match="overlap"):
        concentric_spheres(inner_radius=(0.0, 1.2), outer_radius=(1.0, 1.5), key=key)
    with pytest.raises(ValueError, match="labels"):
        concentric_spheres(labels="onehot", key=key)


# ---------------------------------------------------------------------- toy 2-D


def test_toy2d_names():
    assert TOY2D_NAMES == (
        "swissroll",
        "circles",
        "rings",
        "moons",
        "8gaussians",
        "pinwheel",
        "2spirals",
        "checkerboard",
    )
    with pytest.raises(ValueError, match="checkerboard"):  # lists the valid names
        toy2d("checkerbord", 10, key=jax.random.key(0))
    for n in (0, -3, 1.5, True):
        with pytest.raises(ValueError, match="positive int"):
            toy2d("moons", n, key=jax.random.key(0))


# One sample size for all toy tests, so that each density compiles once. It is odd and not a
# multiple of 4 or 5, to exercise the uneven splits between circles/rings/moons/spirals.
N = 20_001


@pytest.mark.parametrize("name", TOY2D_NAMES)
def test_toy2d_shape_and_determinism(name):
    key = jax.random.key(0)
    x = toy2d(name, N, key=key)
    assert x.shape == (N, 2) and x.dtype == jnp.float32
    assert np.all(np.isfinite(x))
    np.testing.assert_array_equal(x, toy2d(name, N, key=key))
    assert not np.array_equal(x, toy2d(name, N, key=jax.random.key(1)))


@pytest.mark.parametrize("name, n", [("rings", 3), ("2spirals", 1)])
def test_toy2d_jit_and_tiny_n(name, n):
    jitted = jax.jit(toy2d, static_argnums=(0, 1))
    key = jax.random.key(5)
    x = jitted(name, n, key=key)
    assert x.shape == (n, 2) and x.dtype == jnp.float32
    np.testing.assert_allclose(x, toy2d(name, n, key=key), rtol=1e-6, atol=1e-6)


def _numpy_ffjord(name, rng, n):
    """A NumPy port of FFJORD's `toy_data.inf_train_gen`, to compare distributions."""
    import sklearn.datasets

    state = rng.integers(2**31)
    if name == "swissroll":
        x = sklearn.datasets.make_swiss_roll(n, noise=1.0, random_state=state)[0]
        return x[:, [0, 2]] / 5
    if name == "circles":
        x = sklearn.datasets.make_circles(n, factor=0.5, noise=0.08, random_state=state)[0]
        return x * 3
    if name == "rings":
        n4 = n // 4
        sizes = [n4, n4, n4, n - 3 * n4]
        parts = []
        for radius, m in zip([1.0, 0.75, 0.5, 0.25], sizes, strict=True):
            t = np.linspace(0, 2 * np.pi, m, endpoint=False)
            parts.append(radius * np.stack([np.cos(t), np.sin(t)], 1))
        x = np.concatenate(parts) * 3.0
        return x + rng.normal(scale=0.08, size=x.shape)
    if name == "moons":
        x = sklearn.datasets.make_moons(n, noise=0.1, random_state=state)[0]
        return x * 2 + np.array([-1, -0.2])
    if name == "8gaussians":
        s = 1 / np.sqrt(2)
        centres = 4 * np.array(
            [(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)]
        )
        x = rng.standard_normal((n, 2)) * 0.5 + centres[rng.integers(8, size=n)]
        return x / 1.414
    if name == "pinwheel":
        per_class = n // 5
        rads = np.linspace(0, 2 * np.pi, 5, endpoint=False)
        features = rng.standard_normal((5 * per_class, 2)) * np.array([0.3, 0.1])
        features[:, 0] += 1.0
        labels = np.repeat(np.arange(5), per_class)
        angles = rads[labels] + 0.25 * np.exp(features[:, 0])
        rotations = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)])
        rotations = np.reshape(rotations.T, (-1, 2, 2))
        return 2 * np.einsum("ti,tij->tj", features, rotations)
    if name == "2spirals":
        m = n // 2
        length = np.sqrt(rng.random((m, 1))) * 540 * (2 * np.pi) / 360
        d1x = -np.cos(length) * length + rng.random((m, 1)) * 0.5
        d1y = np.sin(length) * length + rng.random((m, 1)) * 0.5
        x = np.vstack((np.hstack((d1x, d1y)), np.hstack((-d1x, -d1y)))) / 3
        return x + rng.standard_normal(x.shape) * 0.1
    if name == "checkerboard":
        x1 = rng.random(n) * 4 - 2
        x2_ = rng.random(n) - rng.integers(0, 2, n) * 2
        x2 = x2_ + (np.floor(x1) % 2)
        return np.stack([x1, x2], 1) * 2
    raise AssertionError(name)


def _histogram(x, bins=16, lim=4.5):
    x = np.clip(np.asarray(x, np.float64), -lim + 1e-6, lim - 1e-6)
    h, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=bins, range=[[-lim, lim], [-lim, lim]])
    return h / h.sum()


@pytest.mark.parametrize("name", TOY2D_NAMES)
def test_toy2d_matches_ffjord_reference(name):
    # Total variation between 16x16 histograms of 20k samples. Same-distribution noise is
    # 0.03 to 0.05; e.g. the mirror image of the pinwheel or a wrong scale gives > 0.3.
    x = np.asarray(toy2d(name, N, key=jax.random.key(7)))
    ours = _histogram(x)
    ref = _histogram(_numpy_ffjord(name, np.random.default_rng(7), N))
    tv = 0.5 * np.abs(ours - ref).sum()
    assert tv < 0.07, tv
    mirrored = _histogram(x * np.array([1, -1]))
    if name == "pinwheel":  # the direction of the swirl matters
        assert 0.5 * np.abs(mirrored - ref).sum() > 0.3


def test_checkerboard_support():
    x = toy2d("checkerboard", N, key=jax.random.key(0))
    assert bool(jnp.all(jnp.isfinite(toy2d_log_density("checkerboard", x))))
    x = np.asarray(x)
    assert np.all((x >= -4) & (x <= 4))
    cell = np.floor(np.asarray(x) / 2).astype(int)
    assert np.all((cell[:, 0] + cell[:, 1]) % 2 == 0)  # only on the "black" squares
    # uniform over the 8 black squares
    _, counts = np.unique(cell[:, 0] * 10 + cell[:, 1], return_counts=True)
    assert len(counts) == 8
    np.testing.assert_allclose(counts / len(x), 1 / 8, atol=0.01)


def test_8gaussians_clusters():
    x = np.asarray(toy2d("8gaussians", N, key=jax.random.key(0)))
    angles = np.arange(8) * np.pi / 4
    centres = 4 / 1.414 * np.stack([np.cos(angles), np.sin(angles)], 1)
    dist = np.linalg.norm(x[:, None] - centres, axis=-1)
    assert np.all(dist.min(1) < 5.5 * SIGMA_8G)
    counts = np.bincount(dist.argmin(1), minlength=8)
    np.testing.assert_allclose(counts / len(x), 1 / 8, atol=0.01)
    # within a cluster, the spread is sigma per coordinate
    nearest = centres[dist.argmin(1)]
    np.testing.assert_allclose((x - nearest).std(0), SIGMA_8G, rtol=0.03)


def test_rings_radii():
    r = np.linalg.norm(np.asarray(toy2d("rings", N, key=jax.random.key(0))), axis=1)
    radii = 3 * np.array([1.0, 0.75, 0.5, 0.25])
    ring = np.abs(r[:, None] - radii).argmin(1)
    # n // 4 on each ring, the remainder on the smallest (noise moves a point across: 4.7 sd)
    assert np.array_equal(np.bincount(ring, minlength=4), [N // 4] * 3 + [N - 3 * (N // 4)])
    np.testing.assert_allclose(np.abs(r - radii[ring]).max(), 0, atol=0.4)
    # the noise is N(0, 0.08^2) per coordinate, so radially too
    np.testing.assert_allclose((r - radii[ring]).std(), 0.08, rtol=0.05)


def test_circles_radii():
    r = np.linalg.norm(np.asarray(toy2d("circles", N, key=jax.random.key(0))), axis=1)
    # half on radius 3, half on radius 1.5 (up to the few pushed 3 sigma across by noise)
    assert abs(np.sum(r > 2.25) - N // 2) <= 20
    # noise of sd s = 3 * 0.08 biases the median radius by about s**2 / (2 r)
    s = 0.24
    np.testing.assert_allclose(np.median(r[r > 2.25]), 3.0 + s**2 / 6, atol=0.015)
    np.testing.assert_allclose(np.median(r[r < 2.25]), 1.5 + s**2 / 3, atol=0.015)


def test_moons_mean():
    x = np.asarray(toy2d("moons", N, key=jax.random.key(0)))
    # E[cos] = 0 and E[sin] = 2 / pi on [0, pi]: the two moons average to (0.5, 0.25).
    np.testing.assert_allclose(x.mean(0), [0.0, 0.3], atol=0.03)


def test_log_density_checkerboard_integrates_to_one():
    h = 0.05
    grid = jnp.arange(-5 + h / 2, 5, h)
    xx = jnp.stack(jnp.meshgrid(grid, grid), -1)
    logp = toy2d_log_density("checkerboard", xx)
    assert logp.shape == xx.shape[:-1]
    np.testing.assert_allclose(float(jnp.sum(jnp.exp(logp)) * h * h), 1.0, rtol=1e-4)
    values = np.unique(np.asarray(logp))
    np.testing.assert_allclose(values, [-np.inf, -math.log(32)], rtol=1e-6)


def test_log_density_8gaussians_integrates_to_one():
    h = 0.02
    grid = jnp.arange(-5 + h / 2, 5, h)
    xx = jnp.stack(jnp.meshgrid(grid, grid), -1)
    mass = float(jnp.sum(jnp.exp(toy2d_log_density("8gaussians", xx))) * h * h)
    np.testing.assert_allclose(mass, 1.0, atol=1e-3)


def test_true_entropy():
    assert set(TRUE_ENTROPY) == {"checkerboard", "8gaussians"}
    np.testing.assert_allclose(TRUE_ENTROPY["checkerboard"], math.log(32))
    np.testing.assert_allclose(TRUE_ENTROPY["checkerboard"], 3.466, atol=1e-3)
    analytic = math.log(8) + math.log(2 * math.pi * math.e * SIGMA_8G**2)
    np.testing.assert_allclose(TRUE_ENTROPY["8gaussians"], analytic)
    np.testing.assert_allclose(TRUE_ENTROPY["8gaussians"], 2.838, atol=1e-3)
    # Monte Carlo: H = -E[log p(x)], x ~ p, over 5 * N samples (standard error ~ 0.003)
    for name in TRUE_ENTROPY:
        logp = [toy2d_log_density(name, toy2d(name, N, key=jax.random.key(i))) for i in range(5)]
        mc = -float(np.mean(np.concatenate(logp)))
        assert abs(mc - TRUE_ENTROPY[name]) < 0.02, (name, mc)


def test_log_density_errors():
    x = jnp.zeros((3, 2))
    with pytest.raises(ValueError, match="closed-form"):
        toy2d_log_density("moons", x)
    with pytest.raises(ValueError, match="valid names"):
        toy2d_log_density("nope", x)
    with pytest.raises(ValueError, match="size 2"):
        toy2d_log_density("8gaussians", jnp.zeros((3, 3)))


# ----------------------------------------------------------------------- digits


def test_digits_split():
    from sklearn.datasets import load_digits

    x_tr, y_tr = digits("train")
    x_te, y_te = digits("test")
    assert x_tr.shape == (1437, 1, 8, 8) and x_te.shape == (360, 1, 8, 8)
    assert len(x_tr) + len(x_te) == 1797
    assert x_tr.dtype == np.float32 and y_tr.dtype == np.int32
    assert 0.0 <= x_tr.min() and x_tr.max() <= 1.0 and x_tr.max() == 1.0
    # stratified: each class is split 80/20 (up to rounding)
    total = np.bincount(y_tr, minlength=10) + np.bincount(y_te, minlength=10)
    np.testing.assert_allclose(np.bincount(y_te, minlength=10), 0.2 * total, atol=1)
    # together, the splits are exactly the whole dataset
    full = load_digits()
    ours = np.concatenate([x_tr.reshape(-1, 64), x_te.reshape(-1, 64)]) * 16
    ours = np.concatenate([ours, np.concatenate([y_tr, y_te])[:, None]], 1)
    theirs = np.concatenate([full.data, full.target[:, None]], 1)
    np.testing.assert_array_equal(
        ours[np.lexsort(ours.T[::-1])], theirs[np.lexsort(theirs.T[::-1])]
    )


def test_digits_determinism_and_options():
    x1, y1 = digits("test", seed=0)
    x2, y2 = digits("test", seed=0)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    x3, _ = digits("test", seed=1)
    assert not np.array_equal(x1, x3)
    xf, yf = digits("test", flatten=True)
    assert xf.shape == (360, 64)
    np.testing.assert_array_equal(xf.reshape(-1, 1, 8, 8), x1)
    x5, _ = digits("test", test_fraction=0.5)
    assert len(x5) == 899  # sklearn rounds the test size up
    with pytest.raises(ValueError, match="split"):
        digits("valid")
    with pytest.raises(ValueError, match="test_fraction"):
        digits(test_fraction=1.0)


def test_digits_without_sklearn(monkeypatch):
    for name in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r'pip install "odezoo\[data\]"'):
        digits()


# ------------------------------------------------------------------------ MNIST


def _idx_bytes(array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def _write_idx_dir(directory, rng, n_train=6, n_test=4, rows=28, cols=28, gz=()):
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    names = {
        "x_train": ("train-images-idx3-ubyte", 2051),
        "y_train": ("train-labels-idx1-ubyte", 2049),
        "x_test": ("t10k-images-idx3-ubyte", 2051),
        "y_test": ("t10k-labels-idx1-ubyte", 2049),
    }
    for key, (name, magic) in names.items():
        data = _idx_bytes(arrays[key], magic)
        if key in gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return arrays


def _check_loaded(data, arrays):
    assert list(data) == ["x_train", "y_train", "x_test", "y_test"]
    for split in ("train", "test"):
        x, y = data[f"x_{split}"], data[f"y_{split}"]
        raw_x = arrays[f"x_{split}"]
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert x.shape == (raw_x.shape[0], 1, *raw_x.shape[-2:])
        assert 0.0 <= x.min() and x.max() <= 1.0
        np.testing.assert_allclose(x[:, 0], raw_x.astype(np.float32) / 255, rtol=1e-6)
        np.testing.assert_array_equal(y, arrays[f"y_{split}"].reshape(-1))


@pytest.mark.parametrize("gz", [(), ("x_train", "y_test")])
def test_mnist_idx_directory(tmp_path, gz):
    arrays = _write_idx_dir(tmp_path / "mnist", np.random.default_rng(0), gz=gz)
    _check_loaded(load_mnist(tmp_path / "mnist"), arrays)
    _check_loaded(load_mnist(str(tmp_path / "mnist")), arrays)


def test_mnist_idx_generic_dims(tmp_path):
    arrays = _write_idx_dir(tmp_path, np.random.default_rng(1), rows=5, cols=7)
    data = load_mnist(tmp_path)
    assert data["x_train"].shape == (6, 1, 5, 7)
    _check_loaded(data, arrays)


def test_mnist_npz(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {
        "x_train": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 5, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 3, dtype=np.uint8),
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    _check_loaded(load_mnist(tmp_path / "mnist.npz"), arrays)
    _check_loaded(load_mnist(tmp_path), arrays)  # a directory holding mnist.npz
    # alternative names, flattened float images on the 0..255 scale
    np.savez(
        tmp_path / "other.npz",
        train_images=arrays["x_train"].reshape(5, 784).astype(np.float64),
        train_labels=arrays["y_train"].astype(np.int64),
        test_images=arrays["x_test"][..., None],  # channels last
        test_labels=arrays["y_test"],
    )
    _check_loaded(load_mnist(tmp_path / "other.npz"), arrays)


def test_mnist_corrupt_files(tmp_path):
    rng = np.random.default_rng(3)
    _write_idx_dir(tmp_path / "ok", rng)
    # truncated image file
    d = tmp_path / "truncated"
    _write_idx_dir(d, rng)
    f = d / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(d)
    # header cut short
    f.write_bytes(f.read_bytes()[:9])
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(d)
    # trailing bytes
    d = tmp_path / "trailing"
    _write_idx_dir(d, rng)
    f = d / "t10k-labels-idx1-ubyte"
    f.write_bytes(f.read_bytes() + b"\x00")
    with pytest.raises(ValueError, match="corrupt"):
        load_mnist(d)
    # labels where the images should be: wrong magic number
    d = tmp_path / "magic"
    _write_idx_dir(d, rng)
    (d / "train-images-idx3-ubyte").write_bytes((d / "train-labels-idx1-ubyte").read_bytes())
    with pytest.raises(ValueError, match="magic number 2049, expected 2051"):
        load_mnist(d)
    # a broken gzip file
    d = tmp_path / "badgz"
    _write_idx_dir(d, rng, gz=("y_train",))
    f = d / "train-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-8])
    with pytest.raises(ValueError, match="gzip"):
        load_mnist(d)
    # images and labels disagree in number
    d = tmp_path / "count"
    arrays = _write_idx_dir(d, rng)
    (d / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(arrays["y_test"][:2], 2049))
    with pytest.raises(ValueError, match="labels"):
        load_mnist(d)
    # a corrupt .npz, and one that lacks an array
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.raises(ValueError, match="corrupt"):
        load_mnist(tmp_path / "bad.npz")
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((1, 28, 28)), y_train=np.zeros(1))
    with pytest.raises(ValueError, match="x_test"):
        load_mnist(tmp_path / "partial.npz")
    # a file of another kind
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="neither"):
        load_mnist(tmp_path / "notes.txt")


def test_mnist_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot download MNIST"):
        load_mnist(tmp_path / "does-not-exist")
    with pytest.raises(FileNotFoundError, match="no IDX files"):
        load_mnist(tmp_path)  # an empty directory
    _write_idx_dir(tmp_path, np.random.default_rng(4))
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path)


# ------------------------------------------------------------ one calling convention


@pytest.mark.parametrize(
    ("dataset", "random"),
    [
        (cubic, False),
        (concentric_spheres, True),
        (toy2d, True),
        (digits, False),
        (load_mnist, False),
    ],
)
def test_dataset_signature_convention(dataset, random):
    """Every dataset: sizes and options positional or keyword; where it is random, a
    keyword-only `key` with no default (so that it is always given, and never mistaken for
    a size)."""
    import inspect

    params = inspect.signature(dataset).parameters
    assert ("key" in params) == random
    if random:
        assert params["key"].kind is inspect.Parameter.KEYWORD_ONLY
        assert params["key"].default is inspect.Parameter.empty
        assert list(params)[-1] == "key"
    others = [p for name, p in params.items() if name != "key"]
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in others)


def test_a_key_in_a_size_slot_names_the_convention():
    key = jax.random.key(0)
    with pytest.raises(TypeError, match=r"toy2d\(name, n, key=key\)"):
        toy2d("moons", key, key=key)
    with pytest.raises(TypeError, match="key=key"):
        concentric_spheres(key, key=key)


def test_datasets_bit_identical_to_the_key_first_convention():
    """The move of `key` to a keyword changes no sample: the values below are the first
    samples that the old `toy2d(name, key, n)` and `concentric_spheres(key, ...)` drew,
    to float32 rounding (the last bits of sin, cos and sqrt move with the CPU's vector
    unit: a few ulp under `XLA_FLAGS=--xla_cpu_max_isa=SSE4_2`); another draw would
    differ in the first digit."""
    x = np.asarray(toy2d("moons", 4, key=jax.random.key(0)))
    s = np.asarray(concentric_spheres(n_inner=2, n_outer=2, key=jax.random.key(0))[0])
    np.testing.assert_allclose(x, _OLD_TOY2D_MOONS_0_4, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(s, _OLD_SPHERES_0_2_2, rtol=1e-6, atol=1e-6)


_OLD_TOY2D_MOONS_0_4 = np.array(
    [
        [2.271081, -0.5578762],
        [0.7217094, 0.8135324],
        [0.3594936, 0.8735617],
        [-1.0875137, 0.118946835],
    ],
    dtype=np.float32,
)
_OLD_SPHERES_0_2_2 = np.array(
    [
        [-1.2367847, -0.40342596],
        [-0.052386276, 0.28853518],
        [-0.09422869, 0.13112415],
        [0.28773957, -1.1141386],
    ],
    dtype=np.float32,
)
