r"""Density estimation without deep networks: the baselines every later chapter must beat.

Given samples :math:`x_1, \dots, x_m` drawn independently from an unknown density
:math:`p`, a *density estimator* returns a function :math:`\hat p` that we can evaluate
(``log_prob``) and, for most estimators here, sample from (``sample``). The module follows
chapter 2 of the book, from the most rigid model to the most flexible one:

1. **Maximum likelihood for a parametric model** (:func:`fit_gaussian`, :class:`Gaussian`):
   choose :math:`\theta` maximising :math:`\sum_i \log p(x_i;\theta)` (Fisher, 1922). For a
   Gaussian the maximiser has a closed form: the sample mean and the (biased) sample covariance.
2. **Histogram** (:class:`Histogram`): cut space into cells of width :math:`h` starting at an
   origin :math:`x_0`; the density is constant in a cell, proportional to its count.
3. **Naive window / Parzen window** (:func:`naive_window_log_prob`): centre the cell on the
   query instead, :math:`\hat p(x) = \frac{1}{m h^D} \sum_i w((x - x_i)/h)` with a box
   :math:`w`; this removes the origin (Rosenblatt, 1956; Parzen, 1962).
4. **Kernel density estimation** (:func:`kde_log_prob`, :class:`KernelDensity`): the same sum
   with a smooth Gaussian :math:`w`, computed with log-sum-exp in blocks so it runs in bounded
   memory on CPU or GPU; the bandwidth is chosen by validation likelihood
   (:func:`select_bandwidth`) or a rule of thumb (:func:`rule_of_thumb_bandwidth`).
5. **k nearest neighbours** (:func:`knn_density`): fix the count :math:`k` and let the volume
   adapt, :math:`\hat p(x) = k / (m V_D r_k(x)^D)` (Loftsgaarden and Quesenberry, 1965). It is
   *not* a normalised density: far from the data it decays like :math:`1/|x|^D`, whose integral
   diverges.
6. **Mixtures fitted by EM** (:func:`e_step`, :func:`m_step`, :class:`GaussianMixture`):
   a latent component label :math:`z` makes the likelihood a sum,
   :math:`p(x) = \sum_j \pi_j \mathcal N(x; \mu_j, \Sigma_j)`, maximised by alternating
   posterior responsibilities (E) and weighted maximum likelihood (M) (Dempster, Laird and
   Rubin, 1977).

Every model is a :class:`dgm_lab.model.DensityModel`: ``log_prob(x)`` returns the marginal
natural-log density ``[n]`` and ``sample(n, generator=None)`` returns ``[n, D]``; fitted state
is held in buffers with a trailing underscore (``mean_``, ``counts_``, ``means_``) and
reloads from ``state_dict()`` into a fresh model. A model computes on the device and in the
dtype of the data it was fitted on (``model.to(device)`` moves it), so the same code runs on
a GPU. Far from the origin float32 has few digits left for the data's spread (at
:math:`10^6` the spacing of float32 numbers is 0.06), so the estimators work in coordinates
centred on the training data and keep that shift (``shift_``) with their parameters.

References:
    R. A. Fisher (1922). On the mathematical foundations of theoretical statistics.
    M. Rosenblatt (1956). Remarks on some nonparametric estimates of a density function.
    E. Parzen (1962). On estimation of a probability density function and mode.
    D. O. Loftsgaarden and C. P. Quesenberry (1965). A nonparametric estimate of a
    multivariate density function.
    A. P. Dempster, N. M. Laird and D. B. Rubin (1977). Maximum likelihood from incomplete
    data via the EM algorithm.
    B. W. Silverman (1986). Density Estimation for Statistics and Data Analysis.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from dgm_lab._validation import (
    as_float_tensor,
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
    check_same_width,
    check_seed,
    check_symmetric,
)
from dgm_lab.model import DensityModel, multinomial, rand, randint, randn

__all__ = [
    "ConvergenceWarning",
    "Gaussian",
    "GaussianMixture",
    "Histogram",
    "KernelDensity",
    "e_step",
    "fit_gaussian",
    "kde_log_prob",
    "knn_density",
    "knn_log_density",
    "m_step",
    "naive_window_log_prob",
    "rule_of_thumb_bandwidth",
    "select_bandwidth",
]

# Pairwise computations (KDE, k-NN) work on blocks of at most this many query-data pairs,
# so memory stays bounded (16 MiB per float32 block) however many points there are.
_BLOCK_PAIRS = 2**22
_LOG_2PI = math.log(2 * math.pi)


class ConvergenceWarning(UserWarning):
    """Warned when EM stops at ``max_iter`` before the log-likelihood stabilised."""


# --------------------------------------------------------------------------------------
# input checks shared by the estimators
# --------------------------------------------------------------------------------------

def _as_points(x: object, name: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` as a float tensor ``[n, D]``; a 1-D ``[n]`` input is read as ``n`` scalars.

    With ``like`` given, ``x`` is moved to its dtype and device and must have its width.
    """
    t = as_float_tensor(x, name, dtype=None if like is None else like.dtype,
                        device=None if like is None else like.device)
    if t.dim() == 1:
        t = t.unsqueeze(1)
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape [n, d] (or [n] for 1-D data), "
                         f"got shape {tuple(t.shape)}")
    if like is not None:
        check_same_width(t, like.shape[1], name)
    return t


def _check_batch_size(batch_size: int | None) -> int | None:
    return None if batch_size is None else check_int(batch_size, "batch_size")


def _blocks(n_queries: int, n_data: int, batch_size: int | None) -> tuple[int, int]:
    """Queries per block and data points per chunk, so one block holds <= _BLOCK_PAIRS pairs."""
    rows = batch_size or max(1, _BLOCK_PAIRS // n_data)
    rows = min(rows, n_queries)
    cols = min(n_data, max(1, _BLOCK_PAIRS // rows))
    return rows, cols


def _sq_dist(x: torch.Tensor, y: torch.Tensor, y_sq: torch.Tensor) -> torch.Tensor:
    r"""Squared Euclidean distances ``[n, m]`` between the rows of ``x`` and of ``y``.

    Expanding :math:`\|x - y\|^2 = \|x\|^2 - 2 x^\top y + \|y\|^2` turns the work into one
    matrix product, the fastest operation on both CPU and GPU. Rounding can make a tiny
    distance negative, hence the clamp. The rounding error grows like
    :math:`\epsilon (\|x\|^2 + \|y\|^2)`, so callers centre both sets on the data mean first
    (:func:`_centred`): in float32, data far from the origin would otherwise turn every small
    distance into 0.
    """
    d = torch.addmm(y_sq.unsqueeze(0), x, y.T, beta=1, alpha=-2)
    if torch.is_grad_enabled() and (x.requires_grad or y.requires_grad):
        return (d + x.square().sum(1, keepdim=True)).clamp_min(0)
    return d.add_(x.square().sum(1, keepdim=True)).clamp_min_(0)


def _centred(x: torch.Tensor, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` and ``data`` translated by the mean of ``data``: distances unchanged, norms small."""
    shift = data.mean(0)
    return x - shift, data - shift


# --------------------------------------------------------------------------------------
# 1. maximum likelihood for a parametric model
# --------------------------------------------------------------------------------------

def _gaussian_ml(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(shift, mean - shift, covariance)``: the ML Gaussian of ``x`` in two passes.

    ``shift`` is the plain float mean, close to the data; subtracting it is exact for points
    near it, so the second pass sums small numbers and keeps every digit (in float32 at
    :math:`10^6` the one-pass mean alone is off by tenths of a unit).
    """
    shift = x.mean(0)
    mean = (x - shift).mean(0)
    centred = x - shift - mean
    return shift, mean, centred.T @ centred / len(x)


def fit_gaussian(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Maximum-likelihood mean and covariance of a Gaussian, in closed form.

    Setting the gradient of :math:`\sum_i \log \mathcal N(x_i; \mu, \Sigma)` to zero gives

    .. math:: \hat\mu = \frac1m \sum_i x_i, \qquad
              \hat\Sigma = \frac1m \sum_i (x_i - \hat\mu)(x_i - \hat\mu)^\top .

    Note the :math:`1/m` (the ML estimate), not the unbiased :math:`1/(m-1)`. Both sums are
    taken after subtracting a rough mean (two passes), which keeps float32 accurate for data
    far from the origin.

    Arguments:
        x: data ``[m, D]`` (or ``[m]`` for 1-D data).

    Returns:
        ``(mean [D], covariance [D, D])`` with the dtype and device of ``x``.

    References:
        R. A. Fisher (1922). On the mathematical foundations of theoretical statistics.

    Example:
        >>> mean, cov = fit_gaussian(torch.randn(500, 2))
    """
    shift, mean, cov = _gaussian_ml(_as_points(x, "x"))
    return shift + mean, cov


class Gaussian(DensityModel):
    r"""A multivariate Gaussian :math:`\mathcal N(\mu, \Sigma)` with full covariance.

    Build it from parameters, ``Gaussian(mean, covariance)``, or fit it by maximum likelihood,
    ``Gaussian().fit(x)`` (:func:`fit_gaussian`). The density is evaluated through the
    Cholesky factor :math:`\Sigma = L L^\top`:

    .. math:: \log \mathcal N(x) = -\tfrac12 \|L^{-1}(x - \mu)\|^2 - \sum_i \log L_{ii}
              - \tfrac D2 \log 2\pi .

    The mean is stored as ``shift_ + centred_mean_``: a rough mean of the training data
    and the small rest. Far from the origin float32 cannot hold :math:`\mu` itself to the
    precision a narrow direction of :math:`\Sigma` needs (at :math:`10^6` its numbers are
    0.06 apart), but it holds the rest exactly enough, and :math:`x - \text{shift}` is exact
    for points near the data.

    Arguments:
        mean: ``[D]``, optional.
        covariance: ``[D, D]`` symmetric positive definite, optional (given with ``mean``).

    Attributes (once fitted):
        mean_: ``[D]`` (a property: ``shift_ + centred_mean_``; assigning it keeps
        ``shift_``, the given mean on a model that has none); covariance_: ``[D, D]``;
        scale_tril_: ``[D, D]`` its Cholesky factor :math:`L`.

    References:
        R. A. Fisher (1922). On the mathematical foundations of theoretical statistics.

    Example:
        >>> model = Gaussian().fit(torch.randn(1000, 3))
        >>> model.log_prob(torch.zeros(4, 3)).shape
        torch.Size([4])
    """

    def __init__(self, mean: torch.Tensor | None = None,
                 covariance: torch.Tensor | None = None) -> None:
        super().__init__()
        for name in ("shift_", "centred_mean_", "covariance_", "scale_tril_"):
            self.register_buffer(name, None)
        if (mean is None) != (covariance is None):
            raise ValueError("give both mean and covariance, or neither (then call fit)")
        if mean is not None:
            mean = as_float_tensor(mean, "mean", ndim=1)
            self._set(mean, torch.zeros_like(mean),
                      as_float_tensor(covariance, "covariance", ndim=2))

    @property
    def event_shape(self) -> torch.Size:
        self._require_fitted()
        return self.shift_.shape

    @property
    def mean_(self) -> torch.Tensor:
        r"""The mean :math:`\mu`, ``[D]`` (``shift_ + centred_mean_``)."""
        self._require_fitted()
        return self.shift_ + self.centred_mean_

    @mean_.setter
    def mean_(self, mean: torch.Tensor) -> None:
        if self.shift_ is None:
            self.shift_ = mean
        self.centred_mean_ = mean - self.shift_

    def _set(self, shift: torch.Tensor, centred_mean: torch.Tensor,
             covariance: torch.Tensor) -> None:
        d = shift.shape[0]
        if covariance.shape != (d, d):
            raise ValueError(f"covariance must have shape [{d}, {d}] to match mean, "
                             f"got {tuple(covariance.shape)}")
        covariance = check_symmetric(covariance.to(shift), "covariance")  # dtype/device of mean
        scale_tril, info = torch.linalg.cholesky_ex(covariance)
        if info.item() != 0:
            raise ValueError("covariance is not positive definite (a direction with zero "
                             "variance?); add a small reg_covar to its diagonal")
        self.shift_, self.centred_mean_ = shift, centred_mean
        self.covariance_, self.scale_tril_ = covariance, scale_tril

    def fit(self, x: torch.Tensor, *, reg_covar: float = 0.0) -> Gaussian:
        """Set the parameters to their maximum-likelihood values on ``x`` ``[m, D]``.

        Arguments:
            x: training data ``[m, D]`` (``m >= 2``).
            reg_covar: added to the diagonal of the covariance; needed when a direction
                has zero variance (e.g. an always-blank pixel).

        Returns:
            ``self``.
        """
        x = _as_points(x, "x")
        if len(x) < 2:
            raise ValueError("x needs at least 2 points to estimate a covariance")
        reg_covar = check_non_negative(reg_covar, "reg_covar")
        shift, mean, cov = _gaussian_ml(x)  # as fit_gaussian, keeping the two parts of the mean
        cov = cov + reg_covar * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        self._set(shift, mean, cov)
        return self

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        diff = ((x - self.shift_) - self.centred_mean_).T  # [D, n]
        z = torch.linalg.solve_triangular(self.scale_tril_, diff, upper=False)
        half_log_det = self.scale_tril_.diagonal().log().sum()
        return -0.5 * z.square().sum(0) - half_log_det - 0.5 * x.shape[1] * _LOG_2PI

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        r"""Draw :math:`\mu + L \epsilon`, with :math:`\epsilon` standard normal."""
        eps = randn((n, self.shift_.shape[0]), generator, device=self.device, dtype=self.dtype)
        return self.shift_ + (self.centred_mean_ + eps @ self.scale_tril_.T)


# --------------------------------------------------------------------------------------
# 2. histogram
# --------------------------------------------------------------------------------------

class Histogram(DensityModel):
    r"""Histogram density with cubic cells of width ``bin_width`` aligned on ``origin``.

    Cell :math:`j` (a multi-index in :math:`D` dimensions) is
    :math:`[x_0 + j h, x_0 + (j + 1) h)` in every coordinate, and

    .. math:: \hat p(x) = \frac{\#\{i : x_i \in \text{cell}(x)\}}{m\, h^D}

    so the estimate integrates to one. It depends on both ``bin_width`` and ``origin``: the
    same data can look unimodal or bimodal when the grid shifts. Points in empty cells or
    outside the range of the data get log-density :math:`-\infty`.

    The counts are stored on a dense grid spanning the data, which needs
    :math:`(\text{range}/h)^D` cells: fine in 1-D or 2-D, hopeless in 64-D (the curse of
    dimensionality), where :meth:`fit` refuses with an explanation.

    Cell indices are computed relative to ``shift_`` (the training mean), whose own cell
    offset :math:`(\text{shift} - x_0)/h = K + f` (integer :math:`K`, fraction :math:`f`) is
    worked out exactly in Python: :math:`\lfloor (x - x_0)/h \rfloor
    = K + \lfloor (x - \text{shift})/h + f \rfloor` then involves only small numbers, and
    float32 keeps both the cell of a point and the position of a sample inside its cell
    accurate far from the origin.

    Arguments:
        bin_width: the cell width :math:`h > 0`.
        origin: the grid origin :math:`x_0` (a scalar, shared by all coordinates).
        max_cells: refuse grids with more cells than this.

    Attributes (once fitted):
        counts_: ``[n_1, ..., n_D]`` points per cell, on the grid spanning the data;
        low_: ``[D]`` (int64) the index :math:`j` of the grid's first cell;
        shift_: ``[D]`` the training mean; n_samples_: the number :math:`m` of points.

    References:
        B. W. Silverman (1986). Density Estimation for Statistics and Data Analysis, §2.2.

    Example:
        >>> hist = Histogram(bin_width=0.5).fit(torch.randn(1000))
        >>> hist.log_prob(torch.tensor([0.1, 10.0]))  # second point is outside: -inf
    """

    _extra_fitted = ("n_samples_",)

    def __init__(self, bin_width: float, origin: float = 0.0, *, max_cells: int = 10**7) -> None:
        super().__init__()
        self.bin_width = check_positive(bin_width, "bin_width")
        if isinstance(origin, bool) or not isinstance(origin, (numbers.Real, np.floating)):
            raise TypeError(f"origin must be a number, got {type(origin).__name__}")
        if not math.isfinite(origin):
            raise ValueError(f"origin must be finite, got {origin}")
        self.origin = float(origin)
        self.max_cells = check_int(max_cells, "max_cells")
        for name in ("counts_", "low_", "shift_"):
            self.register_buffer(name, None)
        self.n_samples_ = 0

    @property
    def event_shape(self) -> torch.Size:
        self._require_fitted()
        return self.shift_.shape

    def _grid_offset(self, shift: torch.Tensor) -> tuple[list[int], list[float]]:
        """``(K, f)`` per coordinate with ``(shift - origin) / h = K + f``, in Python floats."""
        q = [(c - self.origin) / self.bin_width for c in shift.tolist()]
        whole = [math.floor(v) for v in q]
        return whole, [v - k for v, k in zip(q, whole, strict=True)]

    def _cells(self, x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Global cell index ``[n, D]`` (int64) of every row of ``x``."""
        whole, frac = self._grid_offset(shift)
        f = torch.tensor(frac, dtype=x.dtype, device=x.device)
        local = torch.floor((x - shift) / self.bin_width + f).long()
        return local + torch.tensor(whole, dtype=torch.long, device=x.device)

    @staticmethod
    def _flat_index(offsets: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        # an elementwise product and a sum: CUDA has no integer matrix-vector product
        strides = [math.prod(shape[i + 1:]) for i in range(len(shape))]
        return (offsets * torch.tensor(strides, dtype=torch.long, device=offsets.device)).sum(1)

    def fit(self, x: torch.Tensor) -> Histogram:
        """Count the points of ``x`` ``[m, D]`` (or ``[m]``) in each cell; returns ``self``."""
        x = _as_points(x, "x")
        shift = x.mean(0)
        reach = ((x - shift).abs().amax().item()
                 + max(abs(c - self.origin) for c in shift.tolist())) / self.bin_width
        if not reach < 2**62:
            raise ValueError(f"bin_width={self.bin_width} is far too small for data reaching "
                             f"{x.abs().amax().item():.3g}: cell indices would overflow")
        cells = self._cells(x, shift)
        low, high = cells.min(0).values, cells.max(0).values
        shape = (high - low + 1).tolist()
        n_cells = math.prod(shape)
        if n_cells > self.max_cells:
            raise ValueError(
                f"a histogram of this data needs {n_cells:.3g} cells "
                f"({' x '.join(map(str, shape))}), more than max_cells={self.max_cells}: "
                "the number of cells grows like "
                f"(range / h)^D, so histograms are impractical in {x.shape[1]} dimensions; "
                "use a larger bin_width or a kernel density estimate")
        counts = torch.bincount(self._flat_index(cells - low, shape), minlength=n_cells)
        self.counts_, self.low_, self.shift_ = counts.reshape(shape).to(x.dtype), low, shift
        self.n_samples_ = len(x)
        return self

    @property
    def density(self) -> torch.Tensor:
        """The density value of every cell, on the grid spanning the data."""
        self._require_fitted()
        return self.counts_ / (self.n_samples_ * self.bin_width ** self.counts_.dim())

    @property
    def edges(self) -> list[torch.Tensor]:
        """Cell edges along each axis (one tensor of ``shape[i] + 1`` edges per axis)."""
        self._require_fitted()
        whole, frac = self._grid_offset(self.shift_)
        out = []
        for i, size in enumerate(self.counts_.shape):
            first = int(self.low_[i]) - whole[i]  # index of the first edge relative to shift_
            steps = torch.arange(first, first + size + 1, dtype=self.dtype, device=self.device)
            out.append(self.shift_[i] + self.bin_width * (steps - frac[i]))
        return out

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""Log-density ``[n]`` of the rows of ``x``; :math:`-\infty` in empty cells."""
        offsets = self._cells(x, self.shift_) - self.low_
        shape = list(self.counts_.shape)
        inside = ((offsets >= 0) & (offsets < torch.tensor(shape, device=x.device))).all(1)
        flat = self._flat_index(offsets.clamp_min(0), shape).clamp_max(self.counts_.numel() - 1)
        counts = torch.where(inside, self.counts_.reshape(-1)[flat], torch.zeros_like(x[:, 0]))
        return counts.log() - math.log(self.n_samples_) - x.shape[1] * math.log(self.bin_width)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """Draw a cell with probability count/m, then a point uniformly inside it."""
        flat = multinomial(self.counts_.reshape(-1), n, generator)
        offsets = torch.stack(torch.unravel_index(flat, tuple(self.counts_.shape)), 1)
        u = rand((n, self.counts_.dim()), generator, device=self.device, dtype=self.dtype)
        whole, frac = self._grid_offset(self.shift_)
        # cell index relative to shift_'s cell: small numbers, so u keeps all its digits
        local = offsets + (self.low_ - torch.tensor(whole, device=self.device))
        f = torch.tensor(frac, dtype=self.dtype, device=self.device)
        return self.shift_ + self.bin_width * (local.to(self.dtype) + u - f)


# --------------------------------------------------------------------------------------
# 3-4. naive (box) window and Gaussian kernel density estimation
# --------------------------------------------------------------------------------------

def naive_window_log_prob(x: torch.Tensor, data: torch.Tensor, bandwidth: float, *,
                          batch_size: int | None = None) -> torch.Tensor:
    r"""Log of the naive (box window) estimate: count the data in a cube centred on ``x``.

    .. math:: \hat p(x) = \frac{1}{m h^D} \sum_{i=1}^m w\Big(\frac{x - x_i}{h}\Big), \qquad
              w(u) = \begin{cases} 1 & \max_d |u_d| \le 1/2 \\ 0 & \text{otherwise}
                     \end{cases}

    Unlike the histogram, the window moves with the query, so there is no origin to choose;
    the estimate is still a staircase, jumping whenever a data point enters or leaves the
    window (Rosenblatt, 1956; Parzen, 1962).

    Arguments:
        x: queries ``[n, D]`` (or ``[n]``).
        data: samples ``[m, D]`` (or ``[m]``).
        bandwidth: the window side :math:`h > 0`.
        batch_size: queries per block (memory stays bounded).

    Returns:
        ``[n]`` log-densities; :math:`-\infty` where the window is empty.

    References:
        M. Rosenblatt (1956). Remarks on some nonparametric estimates of a density function.
        E. Parzen (1962). On estimation of a probability density function and mode.

    Example:
        >>> naive_window_log_prob(torch.zeros(1), torch.randn(1000), 0.5).exp()  # ~0.40
    """
    data = _as_points(data, "data")
    x = _as_points(x, "x", like=data)
    h = check_positive(bandwidth, "bandwidth")
    return _box_log_prob(x, data, h, _check_batch_size(batch_size))


def _box_log_prob(x: torch.Tensor, data: torch.Tensor, h: float,
                  batch_size: int | None) -> torch.Tensor:
    """:func:`naive_window_log_prob` on checked tensors."""
    rows, _ = _blocks(len(x), len(data), batch_size)
    counts = torch.cat([
        (torch.cdist(xb, data, p=math.inf) <= h / 2).sum(1) for xb in x.split(rows)])
    return counts.to(x.dtype).log() - math.log(len(data)) - data.shape[1] * math.log(h)


def _exp_limits(dtype: torch.dtype) -> tuple[float, float]:
    """``(clamp, floor)`` for summing ``exp`` of non-positive exponents in ``dtype``.

    Exponents are clamped at ``clamp`` before ``exp``: below it the result would be a
    subnormal number, which CPUs process up to 30 times slower, and ``exp(clamp)`` is
    already negligible next to any sum above ``floor``. A row whose sum falls below
    ``floor`` is recomputed with the max-shifted log-sum-exp.
    """
    return (-700.0, -600.0) if dtype == torch.float64 else (-80.0, -50.0)


def _logsumexp_rows(a: torch.Tensor) -> torch.Tensor:
    """``log(sum_j exp(a[i, j]))`` per row, stabilised by the row maximum (in place)."""
    top = a.amax(1, keepdim=True)
    shifted = a.sub_(top).clamp_min_(_exp_limits(a.dtype)[0])
    return shifted.exp_().sum(1).log_().add_(top.squeeze(1))


def _gaussian_log_sums(x: torch.Tensor, data: torch.Tensor, h: float,
                       batch_size: int | None) -> torch.Tensor:
    r""":math:`\log \sum_i \exp(-\|x - x_i\|^2 / 2h^2)` for every query, ``[n]``.

    In units of the bandwidth, :math:`u = x/h` and :math:`v_i = x_i/h`, the exponent is
    :math:`-\tfrac12\|u - v_i\|^2 = u^\top v_i - \tfrac12\|v_i\|^2 - \tfrac12\|u\|^2`: one
    inner product of two augmented vectors, :math:`[u, 1, -\|u\|^2/2] \cdot
    [v_i, -\|v_i\|^2/2, 1]`. So a block of exponents is a single matrix product: no
    ``[n, m, D]`` tensor, and the fastest kernel on both CPU and GPU. Every exponent is
    :math:`\le 0`; rounding can push one slightly above, so they are clamped at 0 and
    ``exp`` cannot overflow. The plain sum is then safe unless *all* terms underflow (a query
    far from every point): those rows (see :func:`_exp_limits`) are redone with the
    max-shifted log-sum-exp, :math:`\log\sum_k e^{a_k} = a^* + \log\sum_k e^{a_k - a^*}`.
    Queries come in blocks and, for a huge ``data``, so do the centres, which keeps memory
    bounded. Dividing by :math:`h` rather than multiplying by :math:`1/h^2` keeps every
    bandwidth representable: a huge :math:`h` gives exponents of 0 (the right answer),
    and only a bandwidth so small that :math:`\|x/h\|^2` overflows the dtype is refused.
    """
    # Centring keeps ||u||^2 small, which limits the rounding error of the expanded square.
    x, data = _centred(x, data)
    u, v = x / h, data / h
    u_sq, v_sq = u.square().sum(1, keepdim=True), v.square().sum(1, keepdim=True)
    limit = torch.finfo(x.dtype).max / 4
    if not (u_sq.max().item() < limit and v_sq.max().item() < limit):
        raise ValueError(f"bandwidth={h:.3g} is too small for this data in {x.dtype}: the "
                         "squared distances in units of the bandwidth overflow; use a larger "
                         "bandwidth (or float64 data)")
    xa = torch.cat([u, torch.ones_like(u[:, :1]), -0.5 * u_sq], 1)
    da = torch.cat([v, -0.5 * v_sq, torch.ones_like(v[:, :1])], 1)
    rows, cols = _blocks(len(x), len(data), batch_size)
    chunks = da.split(cols)
    if torch.is_grad_enabled() and (x.requires_grad or data.requires_grad):
        # autograd path: out-of-place, always max-shifted
        return torch.cat([torch.logsumexp(torch.cat([xb @ c.T for c in chunks], 1)
                                          .clamp(max=0.0), 1)
                          for xb in xa.split(rows)])
    clamp, floor = _exp_limits(x.dtype)
    floor = math.exp(floor)
    out = torch.empty(len(x), dtype=x.dtype, device=x.device)
    for start in range(0, len(x), rows):
        xb = xa[start:start + rows]
        total = sum(torch.mm(xb, c.T).clamp_(clamp, 0.0).exp_().sum(1) for c in chunks)
        out[start:start + len(xb)] = total.log()
        low = (total < floor).nonzero().squeeze(1)
        if len(low):
            redo = None
            for c in chunks:
                lse = _logsumexp_rows(torch.mm(xb[low], c.T).clamp_max_(0.0))
                redo = lse if redo is None else torch.logaddexp(redo, lse)
            out[start + low] = redo
    return out


def kde_log_prob(x: torch.Tensor, data: torch.Tensor, bandwidth: float, *,
                 batch_size: int | None = None) -> torch.Tensor:
    r"""Gaussian kernel density estimate of ``log p(x)`` with an isotropic bandwidth.

    .. math:: \hat p(x) = \frac1m \sum_{i=1}^m \mathcal N(x;\, x_i,\, h^2 I)
              = \frac{1}{m (2\pi h^2)^{D/2}} \sum_{i=1}^m
                \exp\Big(-\frac{\|x - x_i\|^2}{2h^2}\Big)

    In many dimensions every term underflows to 0 in floating point, so the sum is taken
    in log space with log-sum-exp: :math:`\log\sum_i e^{a_i} = a^* + \log\sum_i e^{a_i - a^*}`,
    :math:`a^* = \max_i a_i`. Distances come from one matrix product per block of queries
    (and of data, for very large ``data``), so memory stays bounded and the work runs on
    the device of ``data`` (a GPU if it lives there).

    Accuracy: the expanded square :math:`\|x\|^2 - 2x^\top x_i + \|x_i\|^2` (computed after
    centring on the data mean) carries a rounding error of about
    :math:`\epsilon\,(\|x\|^2 + \|x_i\|^2) / h^2` nats, with :math:`\epsilon` the machine
    precision. In float64 that is negligible; in float32 (:math:`\epsilon \approx 10^{-7}`)
    it reaches 0.1 nats once :math:`h` is about 1000 times smaller than the spread of the
    data. Pass float64 tensors when you need tiny bandwidths.

    Arguments:
        x: queries ``[n, D]`` (or ``[n]`` for 1-D); moved to the dtype/device of ``data``.
        data: the kernel centres ``[m, D]`` (or ``[m]``).
        bandwidth: the kernel standard deviation :math:`h > 0`.
        batch_size: queries per block; by default blocks hold about 4 million pairs.

    Returns:
        ``[n]`` log-densities in nats.

    References:
        M. Rosenblatt (1956); E. Parzen (1962); B. W. Silverman (1986), chapter 4.

    Example:
        >>> data = torch.randn(5000, 2)
        >>> kde_log_prob(torch.zeros(3, 2), data, bandwidth=0.3)  # close to -log(2 pi) = -1.84
    """
    data = _as_points(data, "data")
    x = _as_points(x, "x", like=data)
    h = check_positive(bandwidth, "bandwidth")
    return _kde_log_prob(x, data, h, _check_batch_size(batch_size))


def _kde_log_prob(x: torch.Tensor, data: torch.Tensor, h: float,
                  batch_size: int | None) -> torch.Tensor:
    """:func:`kde_log_prob` on checked tensors."""
    m, d = data.shape
    const = math.log(m) + 0.5 * d * (_LOG_2PI + 2 * math.log(h))
    return _gaussian_log_sums(x, data, h, batch_size) - const


def select_bandwidth(train: torch.Tensor, val: torch.Tensor, candidates: Sequence[float], *,
                     batch_size: int | None = None) -> tuple[float, torch.Tensor]:
    r"""Pick the Gaussian KDE bandwidth with the highest mean validation log-likelihood.

    Maximising the *training* likelihood is useless here: :math:`h \to 0` puts a spike on
    every training point and the likelihood grows without bound. Held-out points expose
    that overfitting: too small an :math:`h` leaves them in the gaps between spikes (very
    low density), too large an :math:`h` smears everything out. The squared distances
    are recomputed for each candidate (one matrix product, cheap next to the exponentials).

    Arguments:
        train: kernel centres ``[m, D]``.
        val: held-out points ``[n, D]``.
        candidates: bandwidths to try (each > 0).
        batch_size: queries per block.

    Returns:
        ``(best, scores)``: the best bandwidth and the mean validation log-likelihood of
        each candidate (``[len(candidates)]``, nats per point).

    Example:
        >>> best, scores = select_bandwidth(train, val, torch.logspace(-2, 1, 20).tolist())
    """
    train = _as_points(train, "train")
    val = _as_points(val, "val", like=train)
    hs = [check_positive(h, "each candidate bandwidth") for h in candidates]
    if not hs:
        raise ValueError("candidates is empty: give at least one bandwidth")
    batch_size = _check_batch_size(batch_size)
    with torch.no_grad():
        scores = torch.stack([_kde_log_prob(val, train, h, batch_size).mean() for h in hs])
    return hs[int(scores.argmax())], scores


def rule_of_thumb_bandwidth(data: torch.Tensor, rule: str = "scott") -> float:
    r"""Scott's or Silverman's rule-of-thumb bandwidth for an isotropic Gaussian kernel.

    Both scale a spread :math:`\hat\sigma` (root mean of the per-coordinate unbiased
    variances) by a power of the sample size chosen to be optimal when the data are
    Gaussian:

    .. math:: h_\text{Scott} = \hat\sigma\, m^{-1/(D+4)}, \qquad
              h_\text{Silverman} = \hat\sigma \Big(\frac{m (D+2)}{4}\Big)^{-1/(D+4)} .

    They are quick but oversmooth multimodal data, where validation likelihood
    (:func:`select_bandwidth`) does better.

    Arguments:
        data: ``[m, D]`` (or ``[m]``), ``m >= 2``.
        rule: ``"scott"`` or ``"silverman"``.

    Returns:
        The bandwidth, a float.

    References:
        D. W. Scott (1992). Multivariate Density Estimation.
        B. W. Silverman (1986). Density Estimation for Statistics and Data Analysis.
    """
    data = _as_points(data, "data")
    m, d = data.shape
    if m < 2:
        raise ValueError("data needs at least 2 points to measure its spread")
    check_choice(rule, "rule", ("scott", "silverman"))
    # in the data's own dtype: Apple GPUs have no float64, and torch.var is a two-pass
    # (centred) computation, accurate in float32 too
    sigma = data.var(0, unbiased=True).mean().sqrt().item()
    if sigma == 0:
        raise ValueError("data has zero variance: every point is the same")
    factor = m ** (-1 / (d + 4)) if rule == "scott" else (m * (d + 2) / 4) ** (-1 / (d + 4))
    return sigma * factor


class KernelDensity(DensityModel):
    """Kernel density estimator as a model: ``fit`` stores the data, ``log_prob`` sums kernels.

    With the Gaussian kernel this is a mixture of ``m`` Gaussians of covariance
    :math:`h^2 I` centred on the training points, one per point, with equal weights. Sampling
    is therefore *ancestral*: pick a training point uniformly, then add kernel noise (a
    Gaussian, or a uniform draw on the window cube :math:`[-h/2, h/2]^D` for the box
    kernel). The samples are near copies of the training data, a form of memorisation that
    later chapters will learn to detect.

    Arguments:
        bandwidth: :math:`h > 0` (Gaussian: the kernel's standard deviation; box: the side
            of the window cube).
        kernel: ``"gaussian"`` (:func:`kde_log_prob`) or ``"box"``
            (:func:`naive_window_log_prob`).
        batch_size: queries per block in ``log_prob``.

    Attributes (once fitted):
        data_: ``[m, D]`` the kernel centres (the training data).

    References:
        M. Rosenblatt (1956); E. Parzen (1962); B. W. Silverman (1986), chapter 4.

    Example:
        >>> kde = KernelDensity(bandwidth=0.2).fit(train)
        >>> kde.log_prob(test).mean(), kde.sample(16).shape
    """

    _fit_hint = "fit(data)"

    def __init__(self, bandwidth: float, kernel: str = "gaussian", *,
                 batch_size: int | None = None) -> None:
        super().__init__()
        self.bandwidth = check_positive(bandwidth, "bandwidth")
        self.kernel = check_choice(kernel, "kernel", ("gaussian", "box"))
        self.batch_size = _check_batch_size(batch_size)
        self.register_buffer("data_", None)

    @property
    def event_shape(self) -> torch.Size:
        self._require_fitted()
        return self.data_.shape[1:]

    def fit(self, data: torch.Tensor) -> KernelDensity:
        """Store the kernel centres ``[m, D]`` (or ``[m]``); returns ``self``."""
        self.data_ = _as_points(data, "data")
        return self

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        fn = _kde_log_prob if self.kernel == "gaussian" else _box_log_prob
        return fn(x, self.data_, self.bandwidth, self.batch_size)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """A uniformly chosen training point plus kernel noise, ``[n, D]``."""
        idx = randint(len(self.data_), (n,), generator, device=self.device)
        shape, like = (n, self.data_.shape[1]), dict(device=self.device, dtype=self.dtype)
        if self.kernel == "gaussian":
            noise = randn(shape, generator, **like)
        else:
            noise = rand(shape, generator, **like) - 0.5
        return self.data_[idx] + self.bandwidth * noise


# --------------------------------------------------------------------------------------
# 5. k nearest neighbours
# --------------------------------------------------------------------------------------

def _log_unit_ball_volume(d: int) -> float:
    r""":math:`\log V_D`, where :math:`V_D = \pi^{D/2} / \Gamma(D/2 + 1)` (unit ball volume)."""
    return 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1)


def knn_log_density(x: torch.Tensor, data: torch.Tensor, k: int, *,
                    batch_size: int | None = None) -> torch.Tensor:
    r"""Log of the k-nearest-neighbour density estimate (see :func:`knn_density`).

    Works in log space, :math:`\log k - \log m - \log V_D - D \log r_k(x)`, because
    :math:`r_k^D` under- or overflows in high dimension. Returns ``[n]``; where ``k`` data
    points coincide with the query (:math:`r_k = 0`) the value is huge or ``+inf``.
    """
    data = _as_points(data, "data")
    x = _as_points(x, "x", like=data)
    k = check_int(k, "k")
    m, d = data.shape
    if k > m:
        raise ValueError(f"k={k} is larger than the number of data points ({m})")
    rows, _ = _blocks(len(x), m, _check_batch_size(batch_size))
    x, data = _centred(x, data)
    data_sq = data.square().sum(1)
    r2 = torch.cat([_sq_dist(xb, data, data_sq).topk(k, dim=1, largest=False).values[:, -1]
                    for xb in x.split(rows)])
    return math.log(k) - math.log(m) - _log_unit_ball_volume(d) - 0.5 * d * r2.log()


def knn_density(x: torch.Tensor, data: torch.Tensor, k: int, *,
                batch_size: int | None = None) -> torch.Tensor:
    r"""k-nearest-neighbour density estimate: grow a ball around ``x`` until it holds ``k`` points.

    .. math:: \hat p(x) = \frac{k}{m\, V_D\, r_k(x)^D}, \qquad
              V_D = \frac{\pi^{D/2}}{\Gamma(D/2 + 1)}

    where :math:`r_k(x)` is the distance from ``x`` to its k-th nearest data point (a data
    point equal to ``x`` counts). Where data are dense the ball is small and the estimate
    high; ``k`` plays the role of the bandwidth, and the resolution adapts to the data.

    **It is not a probability density.** Far from the data, :math:`r_k(x) \approx \|x\|`, so
    :math:`\hat p(x) \sim 1/\|x\|^D`; in polar coordinates the integral over a shell of
    radius :math:`r` behaves like :math:`r^{D-1}/r^D = 1/r`, whose integral diverges
    (logarithmically). The estimate is also not smooth: its gradient jumps wherever the
    k-th neighbour changes.

    Arguments:
        x: queries ``[n, D]`` (or ``[n]``).
        data: samples ``[m, D]`` (or ``[m]``).
        k: number of neighbours, ``1 <= k <= m``.
        batch_size: queries per block.

    Returns:
        ``[n]`` density values (use :func:`knn_log_density` in high dimension).

    References:
        D. O. Loftsgaarden and C. P. Quesenberry (1965). A nonparametric estimate of a
        multivariate density function.

    Example:
        >>> knn_density(torch.zeros(1, 2), torch.rand(1000, 2) * 2 - 1, k=50)  # ~ 1/4
    """
    return knn_log_density(x, data, k, batch_size=batch_size).exp()


# --------------------------------------------------------------------------------------
# 6. Gaussian mixtures and EM
# --------------------------------------------------------------------------------------

def _check_mixture(x: torch.Tensor, weights: object, means: object, covariances: object,
                   names: tuple[str, str, str] = ("weights", "means", "covariances")
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    w_name, m_name, c_name = names
    means = as_float_tensor(means, m_name, ndim=2, dtype=x.dtype, device=x.device)
    k, d = means.shape
    check_same_width(x, d, "x", expected_by=f"{m_name} has")
    weights = as_float_tensor(weights, w_name, ndim=1, dtype=x.dtype, device=x.device)
    covariances = as_float_tensor(covariances, c_name, ndim=3, dtype=x.dtype, device=x.device)
    if weights.shape[0] != k:
        raise ValueError(f"{w_name} has {weights.shape[0]} entries but {m_name} has "
                         f"{k} components")
    if covariances.shape != (k, d, d):
        raise ValueError(f"{c_name} must have shape [{k}, {d}, {d}], got "
                         f"{tuple(covariances.shape)}")
    check_symmetric(covariances, c_name)
    if (weights < 0).any() or abs(weights.sum().item() - 1) > 1e-4:
        raise ValueError(f"{w_name} must be non-negative and sum to 1")
    return weights, means, covariances


def _check_resp(resp: object, x: torch.Tensor, name: str = "resp") -> torch.Tensor:
    resp = as_float_tensor(resp, name, ndim=2, dtype=x.dtype, device=x.device)
    if resp.shape[0] != x.shape[0]:
        raise ValueError(f"{name} has {resp.shape[0]} rows but x has {x.shape[0]} points")
    if (resp < 0).any() or not torch.allclose(resp.sum(1), torch.ones_like(resp[:, 0]),
                                              atol=1e-4):
        raise ValueError(f"{name} must be non-negative with rows summing to 1 "
                         "(pass probabilities, not log-responsibilities)")
    return resp


def _precision_cholesky(covariances: torch.Tensor) -> torch.Tensor:
    r"""Upper-triangular ``P`` with :math:`P P^\top = \Sigma^{-1}`, per component ``[K, D, D]``.

    With :math:`\Sigma = L L^\top`, :math:`P = L^{-\top}`; then
    :math:`(x - \mu)^\top \Sigma^{-1} (x - \mu) = \|(x - \mu)^\top P\|^2`, a matrix product.
    """
    chol, info = torch.linalg.cholesky_ex(covariances)
    if (info != 0).any():
        bad = int((info != 0).nonzero()[0, 0])
        raise ValueError(f"the covariance of component {bad} is not positive definite "
                         "(it collapsed onto too few points?); fit with a larger reg_covar")
    eye = torch.eye(covariances.shape[-1], dtype=covariances.dtype, device=covariances.device)
    return torch.linalg.solve_triangular(chol, eye.expand_as(chol), upper=False).mT


def _component_log_prob(x: torch.Tensor, means: torch.Tensor,
                        prec_chol: torch.Tensor) -> torch.Tensor:
    r""":math:`\log \mathcal N(x_i; \mu_j, \Sigma_j)` for every point i, component j: ``[n, K]``.

    ``x`` and ``means`` must be centred on the data (:math:`x^\top P - \mu^\top P` cancels
    two large numbers otherwise, and float32 loses the difference).
    """
    d = x.shape[1]
    y = torch.matmul(x, prec_chol) - (means.unsqueeze(1) @ prec_chol)  # [K, n, D]
    log_det = prec_chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # log |Sigma|^{-1/2}
    return (-0.5 * (d * _LOG_2PI + y.square().sum(-1)) + log_det.unsqueeze(1)).T


def e_step(x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor,
           covariances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""E-step of EM for a Gaussian mixture: posterior responsibilities of each component.

    By Bayes' rule the responsibility of component :math:`j` for point :math:`x_i` is

    .. math:: r_{ij} = p(z_i = j \mid x_i)
              = \frac{\pi_j \mathcal N(x_i; \mu_j, \Sigma_j)}
                     {\sum_l \pi_l \mathcal N(x_i; \mu_l, \Sigma_l)} ,

    computed in log space (log-sum-exp over components) so that far-away points, whose
    component densities all underflow, still get valid responsibilities. Points and means are
    first shifted by the mean of ``x`` (the densities do not change), which keeps float32
    accurate far from the origin.

    Arguments:
        x: the :math:`m` data points ``[m, D]``.
        weights: mixing proportions :math:`\pi` ``[K]`` (non-negative, sum to 1).
        means: ``[K, D]``.
        covariances: ``[K, D, D]``, each symmetric positive definite.

    Returns:
        ``(log_resp [m, K], log_prob [m])``: :math:`\log r_{ij}` (rows log-sum-exp to 0)
        and :math:`\log p(x_i)` under the current parameters.

    References:
        A. P. Dempster, N. M. Laird and D. B. Rubin (1977). Maximum likelihood from
        incomplete data via the EM algorithm. C. M. Bishop (2006), section 9.2.

    Example:
        >>> log_resp, log_px = e_step(x, torch.full((3,), 1 / 3), means, covs)
    """
    x = _as_points(x, "x")
    weights, means, covariances = _check_mixture(x, weights, means, covariances)
    shift = x.mean(0)
    joint = (_component_log_prob(x - shift, means - shift, _precision_cholesky(covariances))
             + weights.log())
    log_prob = torch.logsumexp(joint, dim=1)
    return joint - log_prob.unsqueeze(1), log_prob


def m_step(x: torch.Tensor, resp: torch.Tensor, reg_covar: float = 1e-6
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""M-step of EM for a Gaussian mixture: weighted maximum likelihood.

    With :math:`N_j = \sum_i r_{ij}` (the soft count of component :math:`j`),

    .. math:: \pi_j = \frac{N_j}{m}, \quad \mu_j = \frac{1}{N_j}\sum_i r_{ij} x_i, \quad
              \Sigma_j = \frac{1}{N_j}\sum_i r_{ij}(x_i - \mu_j)(x_i - \mu_j)^\top
                        + \lambda I .

    The small :math:`\lambda` (``reg_covar``) keeps a component that shrinks onto a few
    points from a singular covariance (and an infinite likelihood). A tiny
    :math:`10\,\epsilon` is added to :math:`N_j` so an empty component does not divide by 0.
    The sums run over points shifted by their mean (the mean is added back to
    :math:`\mu_j`), which keeps float32 accurate far from the origin.

    Arguments:
        x: the :math:`m` data points ``[m, D]``.
        resp: responsibilities ``[m, K]`` (non-negative, rows sum to 1).
        reg_covar: :math:`\lambda \ge 0`.

    Returns:
        ``(weights [K], means [K, D], covariances [K, D, D])``.

    References:
        A. P. Dempster, N. M. Laird and D. B. Rubin (1977). C. M. Bishop (2006), eq. 9.24-9.27.
    """
    x = _as_points(x, "x")
    resp = _check_resp(resp, x)
    shift = x.mean(0)
    weights, means, covs = _m_step(x - shift, resp, check_non_negative(reg_covar, "reg_covar"))
    return weights, means + shift, covs


def _m_step(x: torch.Tensor, resp: torch.Tensor,
            reg_covar: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    nk = resp.sum(0) + 10 * torch.finfo(x.dtype).eps
    means = (resp.T @ x) / nk.unsqueeze(1)
    diff = x.unsqueeze(0) - means.unsqueeze(1)  # [K, n, D]
    covs = (resp.T.unsqueeze(2) * diff).mT @ diff / nk.view(-1, 1, 1)
    covs.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
    return nk / nk.sum(), means, covs


def _kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur and Vassilvitskii, 2007), ``[k, D]`` data points.

    Each new centre is drawn with probability proportional to the squared distance to the
    nearest centre chosen so far, so the seeds spread over the data. Greedy variant (as in
    scikit-learn): draw ``2 + log k`` candidates and keep the one that lowers the total
    squared distance most. ``x`` should be centred (see :func:`_sq_dist`).
    """
    n = len(x)
    trials = 2 + int(math.log(k))
    first = int(randint(n, (1,), generator, device=x.device))
    centres = [x[first]]
    x_sq = x.square().sum(1)
    closest = (x - x[first]).square().sum(1)
    for _ in range(1, k):
        # fewer distinct points than components: every distance is 0, pick uniformly
        probs = closest if closest.sum() > 0 else torch.ones_like(closest)
        cand = x[multinomial(probs, trials, generator)]
        dist = torch.minimum(closest, _sq_dist(cand, x, x_sq))  # [trials, n]
        best = int(dist.sum(1).argmin())
        centres.append(cand[best])
        closest = dist[best]
    return torch.stack(centres)


class GaussianMixture(DensityModel):
    r"""Gaussian mixture with full covariances, fitted by expectation-maximisation.

    .. math:: p(x) = \sum_{j=1}^K \pi_j\, \mathcal N(x; \mu_j, \Sigma_j)

    A latent label :math:`z \in \{1..K\}` picks the component: :math:`p(z = j) = \pi_j`,
    :math:`p(x \mid z = j) = \mathcal N(\mu_j, \Sigma_j)`. EM alternates :func:`e_step`
    (responsibilities) and :func:`m_step` (weighted ML). Each round cannot decrease the
    log-likelihood, because the E-step makes the evidence lower bound
    :math:`\mathcal L(q, \theta) = \mathbb E_q[\log p(x, z)] + H(q)` tight and the M-step
    maximises it. EM stops when the mean log-likelihood changes by less than ``tol``.

    EM runs on the data minus its mean, ``shift_``, and the model keeps its means in those
    coordinates (``centred_means_``; ``means_`` adds the shift back): in float32 a mean near
    :math:`10^6` cannot be stored to better than 0.03, a large error for a narrow component.

    Bookkeeping follows scikit-learn: ``converged_``, ``n_iter_``, ``lower_bound_`` (the
    mean log-likelihood per point at the last E-step, where the bound is tight) and
    ``lower_bound_history_`` (one value per iteration); a :class:`ConvergenceWarning` is
    issued when ``max_iter`` runs out first.

    Arguments:
        n_components: :math:`K`.
        max_iter: at most this many EM iterations.
        tol: stop when the mean log-likelihood changes by less than this (nats per point).
        reg_covar: added to every covariance diagonal in the M-step.
        n_init: EM finds a *local* maximum that depends on its start; with ``n_init > 1``
            it runs from that many k-means++ starts and keeps the run with the highest
            final log-likelihood.
        seed: seeds the k-means++ initialisation.

    Attributes (once fitted):
        weights_: ``[K]``; means_: ``[K, D]`` (a property: ``shift_ + centred_means_``);
        covariances_: ``[K, D, D]``; precisions_cholesky_: ``[K, D, D]``
        (:func:`_precision_cholesky`); shift_: ``[D]`` the training mean.

    References:
        A. P. Dempster, N. M. Laird and D. B. Rubin (1977). Maximum likelihood from
        incomplete data via the EM algorithm. C. M. Bishop (2006), section 9.2.
        D. Arthur and S. Vassilvitskii (2007). k-means++: the advantages of careful seeding.

    Example:
        >>> gmm = GaussianMixture(8, seed=0).fit(x)
        >>> gmm.converged_, gmm.log_prob(x).mean(), gmm.sample(100).shape
    """

    _extra_fitted = ("converged_", "n_iter_", "lower_bound_", "lower_bound_history_")

    def __init__(self, n_components: int, *, max_iter: int = 100, tol: float = 1e-3,
                 reg_covar: float = 1e-6, n_init: int = 1, seed: int = 0) -> None:
        super().__init__()
        self.n_components = check_int(n_components, "n_components")
        self.n_init = check_int(n_init, "n_init")
        self.max_iter = check_int(max_iter, "max_iter")
        self.tol = check_positive(tol, "tol")
        self.reg_covar = check_non_negative(reg_covar, "reg_covar")
        self.seed = check_seed(seed)
        for name in ("weights_", "shift_", "centred_means_", "covariances_",
                     "precisions_cholesky_"):
            self.register_buffer(name, None)
        self.converged_ = False
        self.n_iter_ = 0
        self.lower_bound_ = -math.inf
        self.lower_bound_history_: list[float] = []

    @property
    def event_shape(self) -> torch.Size:
        self._require_fitted()
        return self.shift_.shape

    @property
    def means_(self) -> torch.Tensor:
        """The component means :math:`\\mu_j`, ``[K, D]`` (``shift_ + centred_means_``)."""
        self._require_fitted()
        return self.shift_ + self.centred_means_

    @means_.setter
    def means_(self, means: torch.Tensor) -> None:
        # keeps shift_ (zero on a model that has none yet)
        if self.shift_ is None:
            self.shift_ = torch.zeros_like(means[0])
        self.centred_means_ = means - self.shift_

    def _initial_parameters(self, x: torch.Tensor, shift: torch.Tensor, weights_init: object,
                            means_init: object, covariances_init: object, resp_init: object,
                            generator: torch.Generator
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Starting ``(weights, centred means, covariances)`` for EM on the centred ``x``."""
        n, d = x.shape
        k = self.n_components
        given_means = None
        if means_init is not None:
            given_means = as_float_tensor(means_init, "means_init", ndim=2, dtype=x.dtype,
                                          device=x.device)
            if given_means.shape != (k, d):
                raise ValueError(f"means_init must have shape [{k}, {d}], "
                                 f"got {tuple(given_means.shape)}")
            given_means = given_means - shift
        if resp_init is not None:
            resp = _check_resp(resp_init, x, "resp_init")
            if resp.shape[1] != k:
                raise ValueError(f"resp_init must have shape [{n}, {k}], got {tuple(resp.shape)}")
            weights, means, covs = _m_step(x, resp, self.reg_covar)
        else:
            centres = given_means if given_means is not None else _kmeans_plus_plus(x, k, generator)
            # one hard assignment to the nearest centre gives every component a
            # sensible starting covariance and weight
            nearest = _sq_dist(x, centres, centres.square().sum(1)).argmin(1)
            resp = torch.nn.functional.one_hot(nearest, k).to(x.dtype)
            weights, _, covs = _m_step(x, resp, self.reg_covar)
            means = centres
        if given_means is not None:
            means = given_means
        if weights_init is not None:
            weights = weights_init
        if covariances_init is not None:
            covs = covariances_init
        return _check_mixture(x, weights, means, covs,
                              ("weights_init", "means_init", "covariances_init"))

    def _em(self, x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor,
            covs: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], list[float], bool]:
        """One run of EM from the given parameters: ``(parameters, history, converged)``."""
        history: list[float] = []
        lower_bound = -math.inf
        with torch.no_grad():
            for _ in range(self.max_iter):
                previous = lower_bound
                joint = _component_log_prob(x, means, _precision_cholesky(covs)) + weights.log()
                log_px = torch.logsumexp(joint, dim=1)
                # clamped: responsibilities below exp(-700) are 0 for all purposes, and exp
                # of a subnormal result is very slow on CPUs
                resp = (joint - log_px.unsqueeze(1)).clamp_min_(_exp_limits(x.dtype)[0]).exp_()
                weights, means, covs = _m_step(x, resp, self.reg_covar)
                lower_bound = log_px.mean().item()
                history.append(lower_bound)
                if abs(lower_bound - previous) < self.tol:
                    return (weights, means, covs), history, True
        return (weights, means, covs), history, False

    def fit(self, x: torch.Tensor, *, weights_init: torch.Tensor | None = None,
            means_init: torch.Tensor | None = None,
            covariances_init: torch.Tensor | None = None,
            resp_init: torch.Tensor | None = None) -> GaussianMixture:
        """Run EM on ``x`` ``[n, D]`` until convergence or ``max_iter``; returns ``self``.

        Initialisation: from ``resp_init`` ``[n, K]`` (an M-step first) if given; otherwise
        each point is assigned to the nearest of ``means_init`` ``[K, D]`` (or of k-means++
        seeds) and an M-step gives weights and covariances. Any of ``weights_init`` ``[K]``,
        ``means_init``, ``covariances_init`` ``[K, D, D]`` given then overrides its part.
        The bookkeeping attributes describe the best of the ``n_init`` runs.
        """
        x = _as_points(x, "x")
        n = len(x)
        if self.n_components > n:
            raise ValueError(f"n_components={self.n_components} is larger than the number "
                             f"of data points ({n})")
        shift = x.mean(0)
        x = x - shift
        generator = torch.Generator().manual_seed(self.seed)
        best = None
        for _ in range(self.n_init):
            start = self._initial_parameters(x, shift, weights_init, means_init,
                                             covariances_init, resp_init, generator)
            run = self._em(x, *start)
            if best is None or run[1][-1] > best[1][-1]:
                best = run
        (weights, means, covs), history, converged = best
        self.weights_, self.shift_, self.centred_means_ = weights, shift, means
        self.covariances_, self.precisions_cholesky_ = covs, _precision_cholesky(covs)
        self.converged_, self.n_iter_ = converged, len(history)
        self.lower_bound_, self.lower_bound_history_ = history[-1], history
        if not converged:
            change = history[-1] - history[-2] if len(history) > 1 else math.inf
            warnings.warn(f"EM did not converge in max_iter={self.max_iter} iterations "
                          f"(last change {change:.3g} >= tol={self.tol}); raise max_iter or tol",
                          ConvergenceWarning, stacklevel=2)
        return self

    def _joint(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\log \\pi_j + \\log \\mathcal N(x_i; \\mu_j, \\Sigma_j)`, ``[n, K]``."""
        return (_component_log_prob(x - self.shift_, self.centred_means_,
                                    self.precisions_cholesky_) + self.weights_.log())

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._joint(x), dim=1)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        r"""Responsibilities :math:`p(z = j \mid x)` ``[n, K]`` of the rows of ``x`` ``[n, D]``."""
        return torch.softmax(self._joint(self._check_input(x)), dim=1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Most probable component of each row of ``x``, ``[n]`` (int64)."""
        return self._joint(self._check_input(x)).argmax(1)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        r"""Ancestral sampling: draw :math:`z \sim \pi`, then :math:`x \sim N(\mu_z, \Sigma_z)`."""
        z = multinomial(self.weights_, n, generator)
        eps = randn((n, self.shift_.shape[0]), generator, device=self.device, dtype=self.dtype)
        chol = torch.linalg.cholesky(self.covariances_)
        return self.shift_ + self.centred_means_[z] + (chol[z] @ eps.unsqueeze(2)).squeeze(2)


# --------------------------------------------------------------------------------------
# 7. mixtures of discrete distributions: Bernoulli and categorical mixtures by EM
# --------------------------------------------------------------------------------------

class CategoricalMixture(DensityModel):
    r"""Mixture of independent categoricals over discrete data, fitted by EM.

    Each of the :math:`D` coordinates of an event takes one of :math:`L` levels
    :math:`0, \dots, L-1` (the 17 grey levels of the digits, say). Component :math:`j`
    makes the coordinates independent, each with its own categorical distribution
    :math:`\theta_{jd\ell} = p(x_d = \ell \mid z = j)`:

    .. math:: p(x) = \sum_{j=1}^K \pi_j \prod_{d=1}^D \theta_{j d x_d} .

    With :math:`K = 1` this is the independent model (one histogram per pixel); more
    components let the mixture capture which pixels are on *together* (one component per
    style of a digit, roughly). EM alternates the responsibilities
    :math:`r_{ij} = p(z = j \mid x_i)` (E) and weighted counts (M):

    .. math:: \pi_j = \frac{N_j}{n}, \qquad
              \theta_{jd\ell} = \frac{\sum_i r_{ij} 1[x_{id} = \ell] + \alpha}
                                     {N_j + L \alpha},

    the maximum *a posteriori* estimate under a symmetric Dirichlet(:math:`\alpha + 1`) prior
    on every :math:`\theta_{jd}` (``alpha`` pseudo-counts per level, as Laplace smoothing in
    :class:`~dgm_lab.naive_bayes.BernoulliNaiveBayes`), so that a level never seen in a
    component does not get probability 0 and a test image :math:`\log p(x) = -\infty`. Every
    EM iteration cannot decrease the penalised log-likelihood
    :math:`\sum_i \log p(x_i) + \alpha \sum_{jd\ell} \log \theta_{jd\ell}` (Dempster, Laird and
    Rubin, 1977). The log-probabilities are exact: the test NLL is in nats per event, not a
    bound.

    Arguments:
        n_components: :math:`K`.
        n_levels: :math:`L >= 2`, the number of values each coordinate takes.
        alpha: the pseudo-count :math:`\alpha > 0`.
        max_iter: at most this many EM iterations.
        tol: stop when the mean log-likelihood changes by less than this (nats per event).
        n_init: EM runs from this many random starts and keeps the best final likelihood.
        seed: seeds the random starts (responsibilities drawn from a flat Dirichlet).

    Attributes (once fitted):
        weights_: ``[K]``; log_probs_: ``[K, D, L]``, :math:`\log \theta_{jd\ell}`; and
        ``converged_``, ``n_iter_``, ``lower_bound_`` (mean log-likelihood per event at the
        last E-step), ``lower_bound_history_``, as :class:`GaussianMixture`.

    References:
        A. P. Dempster, N. M. Laird and D. B. Rubin (1977). Maximum likelihood from
        incomplete data via the EM algorithm. C. M. Bishop (2006), section 9.3.3 (mixtures
        of Bernoulli distributions).

    Example:
        >>> x, _ = dgm_lab.data.load_digits("train", "levels")
        >>> mix = CategoricalMixture(10, n_levels=17, seed=0).fit(x)
        >>> -mix.log_prob(load_digits("test", "levels")[0]).mean()   # nats per image
    """

    _extra_fitted = ("converged_", "n_iter_", "lower_bound_", "lower_bound_history_")
    _fit_hint = "fit(x) with integer levels"

    def __init__(self, n_components: int, n_levels: int, *, alpha: float = 1.0,
                 max_iter: int = 200, tol: float = 1e-4, n_init: int = 1,
                 seed: int = 0) -> None:
        super().__init__()
        self.n_components = check_int(n_components, "n_components")
        self.n_levels = check_int(n_levels, "n_levels", minimum=2)
        self.alpha = check_positive(alpha, "alpha")
        self.max_iter = check_int(max_iter, "max_iter")
        self.tol = check_positive(tol, "tol")
        self.n_init = check_int(n_init, "n_init")
        self.seed = check_seed(seed)
        self.register_buffer("weights_", None)
        self.register_buffer("log_probs_", None)
        self.converged_ = False
        self.n_iter_ = 0
        self.lower_bound_ = -math.inf
        self.lower_bound_history_: list[float] = []

    @property
    def event_shape(self) -> torch.Size:
        self._require_fitted()
        return self.log_probs_.shape[1:2]

    def _levels(self, x: object, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``x`` as float ``[n, D]`` whose entries are integers in ``0..L-1``."""
        t = as_float_tensor(x, name, ndim=2, dtype=dtype, allow_bool=True)
        if not (t == t.round()).all() or (t < 0).any() or (t >= self.n_levels).any():
            raise ValueError(f"{name} must hold integer levels 0..{self.n_levels - 1} "
                             f"(n_levels={self.n_levels})")
        return t

    def _one_hot(self, x: torch.Tensor) -> torch.Tensor:
        """``[n, D * L]``: a 1 at column ``d * L + x_d`` of every row."""
        onehot = torch.nn.functional.one_hot(x.long(), self.n_levels)
        return onehot.reshape(len(x), -1).to(self.log_probs_.dtype if self.is_fitted
                                             else torch.get_default_dtype())

    def _joint(self, onehot: torch.Tensor, weights: torch.Tensor,
               log_probs: torch.Tensor) -> torch.Tensor:
        """:math:`\\log \\pi_j + \\sum_d \\log \\theta_{j d x_d}`, ``[n, K]``, by one matmul."""
        return onehot @ log_probs.reshape(len(weights), -1).T + weights.log()

    def _m_step(self, onehot: torch.Tensor, resp: torch.Tensor,
                d: int) -> tuple[torch.Tensor, torch.Tensor]:
        nk = resp.sum(0)  # [K]
        counts = (resp.T @ onehot).reshape(len(nk), d, self.n_levels)  # weighted level counts
        log_probs = ((counts + self.alpha).log()
                     - (nk + self.n_levels * self.alpha).log()[:, None, None])
        weights = (nk + 10 * torch.finfo(resp.dtype).eps) / (nk.sum() + 10 * torch.finfo(
            resp.dtype).eps * len(nk))
        return weights, log_probs

    def _em(self, onehot: torch.Tensor, resp: torch.Tensor,
            d: int) -> tuple[tuple[torch.Tensor, torch.Tensor], list[float], bool]:
        history: list[float] = []
        previous = -math.inf
        weights, log_probs = self._m_step(onehot, resp, d)
        for _ in range(self.max_iter):
            joint = self._joint(onehot, weights, log_probs)
            log_px = torch.logsumexp(joint, dim=1)
            resp = (joint - log_px[:, None]).exp()
            weights, log_probs = self._m_step(onehot, resp, d)
            history.append(log_px.mean().item())
            if abs(history[-1] - previous) < self.tol:
                return (weights, log_probs), history, True
            previous = history[-1]
        return (weights, log_probs), history, False

    def fit(self, x: torch.Tensor, *, resp_init: torch.Tensor | None = None
            ) -> CategoricalMixture:
        """Run EM on ``x`` ``[n, D]`` (integer levels) until convergence; returns ``self``.

        Arguments:
            x: ``[n, D]`` integer levels in ``0..L-1`` (any integer or float dtype; the model
                computes in the floating dtype of ``x``, float32 for integer input).
            resp_init: optional starting responsibilities ``[n, K]`` (rows sum to 1); by
                default each of the ``n_init`` runs starts from random ones.
        """
        x = self._levels(x, "x")
        n, d = x.shape
        k = self.n_components
        if k > n:
            raise ValueError(f"n_components={k} is larger than the number of events ({n})")
        onehot = torch.nn.functional.one_hot(x.long(), self.n_levels).reshape(n, -1).to(x.dtype)
        generator = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            if resp_init is not None:
                starts = [_check_resp(resp_init, x, "resp_init")]
                if starts[0].shape[1] != k:
                    raise ValueError(f"resp_init must have shape [{n}, {k}], "
                                     f"got {tuple(starts[0].shape)}")
            else:  # flat-Dirichlet responsibilities: exponential draws, normalised per row
                starts = [-rand((n, k), generator, device=x.device, dtype=x.dtype).log1p_().neg_()
                          for _ in range(self.n_init)]
                starts = [s / s.sum(1, keepdim=True) for s in starts]
            runs = [self._em(onehot, resp, d) for resp in starts]
        (weights, log_probs), history, converged = max(runs, key=lambda run: run[1][-1])
        self.weights_, self.log_probs_ = weights, log_probs
        self.converged_, self.n_iter_ = converged, len(history)
        self.lower_bound_, self.lower_bound_history_ = history[-1], history
        if not converged:
            warnings.warn(f"EM did not converge in max_iter={self.max_iter} iterations; "
                          "raise max_iter or tol", ConvergenceWarning, stacklevel=2)
        return self

    def _check_input(self, x: object, name: str = "x", **kwargs: object) -> torch.Tensor:
        self._require_fitted()
        t = self._levels(x, name, dtype=self.dtype).to(self.device)
        check_same_width(t, self.log_probs_.shape[1], name)
        return t

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._joint(self._one_hot(x), self.weights_, self.log_probs_), 1)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        r"""Responsibilities :math:`p(z = j \mid x)`, ``[n, K]``."""
        x = self._check_input(x)
        return torch.softmax(self._joint(self._one_hot(x), self.weights_, self.log_probs_), 1)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        r"""Ancestral sampling: :math:`z \sim \pi`, then every :math:`x_d \sim \theta_{z d}`."""
        z = multinomial(self.weights_, n, generator)  # [n]
        probs = self.log_probs_[z].exp().reshape(-1, self.n_levels)  # [n * D, L]
        levels = multinomial(probs, 1, generator).reshape(n, -1)
        return levels.to(self.dtype)


class BernoulliMixture(CategoricalMixture):
    r"""Mixture of independent Bernoullis over binary data, fitted by EM.

    :math:`p(x) = \sum_j \pi_j \prod_d \mu_{jd}^{x_d} (1 - \mu_{jd})^{1 - x_d}`: the
    categorical mixture with :math:`L = 2` levels, the classic latent-variable model of
    binary images (Bishop, 2006, section 9.3.3). ``probs_`` (:math:`\mu_{jd}`, ``[K, D]``)
    reads the fitted pixel probabilities. Arguments as :class:`CategoricalMixture`.

    Example:
        >>> x, _ = dgm_lab.data.load_digits("train", "binary")
        >>> mix = BernoulliMixture(10, seed=0).fit(x)
        >>> mix.sample(16).shape
        torch.Size([16, 64])
    """

    _fit_hint = "fit(x) with binary data"

    def __init__(self, n_components: int, *, alpha: float = 1.0, max_iter: int = 200,
                 tol: float = 1e-4, n_init: int = 1, seed: int = 0) -> None:
        super().__init__(n_components, 2, alpha=alpha, max_iter=max_iter, tol=tol,
                         n_init=n_init, seed=seed)

    @property
    def probs_(self) -> torch.Tensor:
        r""":math:`\mu_{jd} = p(x_d = 1 \mid z = j)`, ``[K, D]``."""
        self._require_fitted()
        return self.log_probs_[..., 1].exp()
