r"""Linear latent variable models: PCA, probabilistic PCA and the linear autoencoder.

A latent variable model explains each observation :math:`x \in \mathbb R^D` by a hidden code
:math:`z \in \mathbb R^Q` with :math:`Q < D`. This module holds the linear members of the
family, in the order of chapter 3 of the book:

1. **PCA** (:func:`pca_svd`, :class:`PCA`): the linear two-way map
   :math:`x \mapsto z = V^\top (x - \bar x)`, :math:`z \mapsto \hat x = \bar x + V z` with an
   orthonormal :math:`V \in \mathbb R^{D \times Q}` that minimises the mean squared
   reconstruction error, equivalently maximises the variance kept in :math:`z`
   (Pearson, 1901; Hotelling, 1933). The columns of :math:`V` are the leading eigenvectors of
   the sample covariance :math:`S = \frac1N \sum_i (x_i - \bar x)(x_i - \bar x)^\top`, read off
   the singular value decomposition of the centred data; the eigenvalues
   :math:`\lambda_j` are the variances along them (*explained variance*, with the
   maximum-likelihood :math:`1/N` of chapter 2; scikit-learn divides by :math:`N - 1`).
2. **Probabilistic PCA** (:func:`ppca_fit`, :func:`ppca_log_prob`,
   :class:`ProbabilisticPCA`): the density :math:`p(z) = \mathcal N(0, I_Q)`,
   :math:`p(x \mid z) = \mathcal N(Wz + \mu, \sigma^2 I_D)`, whose marginal
   :math:`p(x) = \int p(z) p(x \mid z)\,dz = \mathcal N(\mu, WW^\top + \sigma^2 I)` is Gaussian.
   Its maximum-likelihood fit is in closed form (Tipping & Bishop, 1999):
   :math:`\mu = \bar x`, :math:`\sigma^2` the mean of the :math:`D - Q` discarded eigenvalues,
   :math:`W = U_Q (\Lambda_Q - \sigma^2 I)^{1/2}`. As :math:`\sigma^2 \to 0` it becomes PCA.
3. **The linear autoencoder** (:class:`LinearAutoencoder`, :func:`linear_autoencoder_step`):
   an encoder matrix and a decoder matrix trained by gradient descent on the squared
   reconstruction error. Its global minima span the PCA subspace, but any invertible
   :math:`Q \times Q` mix of the principal axes does equally well, so the decoder's columns need
   not be the axes themselves (Baldi & Hornik, 1989). :func:`principal_angles` measures how
   far apart two subspaces are.

References:
    K. Pearson (1901). On lines and planes of closest fit to systems of points in space.
    H. Hotelling (1933). Analysis of a complex of statistical variables into principal
    components.
    M. E. Tipping and C. M. Bishop (1999). Probabilistic principal component analysis.
    Journal of the Royal Statistical Society B 61(3), eqs. 6-8 and 15-17.
    P. Baldi and K. Hornik (1989). Neural networks and principal component analysis: learning
    from examples without local minima. Neural Networks 2(1).
    A. V. Knyazev and M. E. Argentati (2002). Principal angles between subspaces in an
    A-based scalar product. SIAM J. Sci. Comput. 23(6) (the sine formula for small angles).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dgm_lab._validation import (
    as_float_tensor,
    check_int,
    check_positive,
    check_same_width,
    generator_device,
)
from dgm_lab.model import DensityModel, randn

__all__ = [
    "PCA",
    "LinearAutoencoder",
    "ProbabilisticPCA",
    "linear_autoencoder_step",
    "pca_svd",
    "ppca_fit",
    "ppca_log_prob",
    "principal_angles",
]

_LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------------------
# PCA by the singular value decomposition
# --------------------------------------------------------------------------------------

def _centred_svd(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean, singular values [min(N, D)], right singular vectors [min(N, D), D])`` of the
    centred data. The mean is taken in two passes (a rough mean, then the mean of what is
    left), which keeps float32 accurate for data far from the origin."""
    shift = x.mean(0)
    centred = x - shift
    rest = centred.mean(0)
    _, s, vh = torch.linalg.svd(centred - rest, full_matrices=False)
    return shift + rest, s, vh


def _fix_signs(rows: torch.Tensor) -> torch.Tensor:
    """Flip each row so that its entry of largest magnitude is positive (an eigenvector is
    defined up to sign; this makes the result repeatable)."""
    biggest = rows.gather(1, rows.abs().argmax(1, keepdim=True))
    return rows * torch.where(biggest < 0, -1.0, 1.0).to(rows)


def _as_data(x: object, name: str = "x") -> torch.Tensor:
    x = as_float_tensor(x, name, ndim=2)
    if len(x) < 2:
        raise ValueError(f"{name} needs at least 2 rows to estimate a covariance, got {len(x)}")
    return x


def pca_svd(x: torch.Tensor, n_components: int | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Principal components of ``x`` and the variance along each, from one SVD.

    Centre the data, :math:`X_c = X - \mathbf 1 \bar x^\top`, and decompose
    :math:`X_c = U \operatorname{diag}(s) V^\top`. Then
    :math:`S = X_c^\top X_c / N = V \operatorname{diag}(s^2 / N) V^\top`: the right singular
    vectors are the eigenvectors of the sample covariance and :math:`\lambda_j = s_j^2 / N`
    its eigenvalues, without ever forming :math:`S` (whose condition number is the square of
    :math:`X_c`'s).

    Arguments:
        x: data ``[N, D]`` (``N >= 2``).
        n_components: :math:`Q`, at most :math:`\min(N, D)`; default all of them.

    Returns:
        ``(mean [D], components [Q, D], explained_variance [Q])``: the rows of ``components``
        are orthonormal, sorted by decreasing variance, each with its entry of largest
        magnitude positive; ``explained_variance`` holds :math:`\lambda_1 \ge \dots \ge
        \lambda_Q` (divided by :math:`N`).

    References:
        K. Pearson (1901); H. Hotelling (1933).

    Example:
        >>> mean, components, variance = pca_svd(torch.randn(100, 5), 2)
        >>> components.shape, variance.shape
        (torch.Size([2, 5]), torch.Size([2]))
    """
    x = _as_data(x)
    n, d = x.shape
    q = min(n, d) if n_components is None else check_int(n_components, "n_components")
    if q > min(n, d):
        raise ValueError(f"n_components must be at most min(N, D) = {min(n, d)} for data of "
                         f"shape {tuple(x.shape)}, got {q}")
    mean, s, vh = _centred_svd(x)
    return mean, _fix_signs(vh[:q]), s[:q].square() / n


class PCA(nn.Module):
    r"""Principal component analysis as a two-way linear map between data and codes.

    ``encode``: :math:`z = V^\top (x - \bar x)`; ``decode``: :math:`\hat x = \bar x + V z`;
    ``model(x)`` is the reconstruction :math:`\hat x`, the orthogonal projection of
    :math:`x` onto the affine subspace through :math:`\bar x` spanned by the components.
    Among all rank-:math:`Q` linear reconstructions this one has the smallest mean squared
    error on the training data, :math:`\frac1N \sum_i \|x_i - \hat x_i\|^2 = \sum_{j > Q}
    \lambda_j`, the variance left out.

    Arguments:
        n_components: :math:`Q \ge 1`.

    Attributes (once fitted):
        mean_: ``[D]``; components_: ``[Q, D]`` orthonormal rows (:math:`V^\top`);
        explained_variance_: ``[Q]`` the eigenvalues :math:`\lambda_j` (divided by :math:`N`);
        total_variance_: the sum of all :math:`D` eigenvalues, the mean squared distance to the
        mean; explained_variance_ratio_: ``explained_variance_ / total_variance_``.

    References:
        K. Pearson (1901); H. Hotelling (1933).

    Example:
        >>> pca = PCA(2).fit(torch.randn(200, 6))
        >>> pca.decode(pca.encode(torch.randn(3, 6))).shape
        torch.Size([3, 6])
    """

    def __init__(self, n_components: int) -> None:
        super().__init__()
        self.n_components = check_int(n_components, "n_components")
        for name in ("mean_", "components_", "explained_variance_", "total_variance_"):
            self.register_buffer(name, None)

    @property
    def is_fitted(self) -> bool:
        return all(b is not None for b in self._buffers.values())

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError("this PCA is not fitted yet: call fit(x) first")

    def fit(self, x: torch.Tensor) -> PCA:
        """Fit the mean and the leading ``n_components`` principal axes of ``x`` ``[N, D]``."""
        x = _as_data(x)
        mean, components, variance = pca_svd(x, self.n_components)
        self.mean_, self.components_, self.explained_variance_ = mean, components, variance
        self.total_variance_ = (x - mean).square().sum(1).mean()
        return self

    @property
    def explained_variance_ratio_(self) -> torch.Tensor:
        """``[Q]``: the share of the total variance along each component."""
        self._require_fitted()
        return self.explained_variance_ / self.total_variance_

    def _check(self, x: object, name: str, width: int) -> torch.Tensor:
        t = as_float_tensor(x, name, ndim=2, dtype=self.mean_.dtype, device=self.mean_.device)
        check_same_width(t, width, name, expected_by="this PCA expects")
        return t

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes :math:`z = V^\\top (x - \\bar x)`, ``[n, Q]``, of data ``x`` ``[n, D]``."""
        self._require_fitted()
        x = self._check(x, "x", self.mean_.shape[0])
        return (x - self.mean_) @ self.components_.T

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructions :math:`\\bar x + V z`, ``[n, D]``, of codes ``z`` ``[n, Q]``."""
        self._require_fitted()
        z = self._check(z, "z", self.components_.shape[0])
        return self.mean_ + z @ self.components_

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction ``decode(encode(x))``."""
        return self.decode(self.encode(x))


# --------------------------------------------------------------------------------------
# probabilistic PCA
# --------------------------------------------------------------------------------------

def ppca_fit(x: torch.Tensor, n_components: int
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Maximum-likelihood parameters of probabilistic PCA, in closed form.

    With :math:`\lambda_1 \ge \dots \ge \lambda_D` the eigenvalues of the sample covariance
    (:math:`1/N`) and :math:`U_Q` the first :math:`Q` eigenvectors (Tipping & Bishop, 1999,
    eqs. 7-8):

    .. math:: \mu = \bar x, \qquad
              \sigma^2 = \frac{1}{D - Q} \sum_{j = Q + 1}^{D} \lambda_j, \qquad
              W = U_Q (\Lambda_Q - \sigma^2 I)^{1/2}.

    The noise variance is the variance the :math:`Q` directions do not explain, spread evenly
    over the other :math:`D - Q`. :math:`W` is determined up to a rotation :math:`W R`; this
    function returns the solution with orthogonal columns along the principal axes (signs as
    :func:`pca_svd`). When :math:`N < D` the eigenvalues beyond the :math:`N`-th are zero and
    still count in the mean.

    Arguments:
        x: data ``[N, D]`` (``N >= 2``).
        n_components: :math:`Q`, with :math:`1 \le Q < D` and :math:`Q \le N`.

    Returns:
        ``(mean [D], weight [D, Q], noise_variance)`` (a 0-dim tensor :math:`\sigma^2 > 0`).

    Raises:
        ValueError: when the data have no variance left outside :math:`Q` directions
            (:math:`\sigma^2 = 0`: the density would be degenerate).

    References:
        M. E. Tipping and C. M. Bishop (1999). Probabilistic principal component analysis,
        eqs. 7-8.

    Example:
        >>> mean, weight, noise_variance = ppca_fit(torch.randn(500, 10), 3)
        >>> weight.shape
        torch.Size([10, 3])
    """
    x = _as_data(x)
    n, d = x.shape
    q = check_int(n_components, "n_components")
    if q >= d or q > n:
        raise ValueError(f"n_components must satisfy 1 <= Q < D = {d} and Q <= N = {n}, got {q} "
                         "(with Q = D there is no direction left to hold the noise)")
    mean, s, vh = _centred_svd(x)
    eigenvalues = s.square() / n  # min(N, D) of them; the rest are 0
    noise_variance = eigenvalues[q:].sum() / (d - q)  # no cancellation: a sum of small terms
    if not noise_variance > torch.finfo(x.dtype).eps * eigenvalues[0]:
        raise ValueError(f"the data have (almost) no variance outside {q} principal "
                         "directions, so the noise variance would be 0: use fewer components, "
                         "or data with noise (e.g. the dequantised digits)")
    scale = (eigenvalues[:q] - noise_variance).clamp_min(0).sqrt()
    return mean, _fix_signs(vh[:q]).T * scale, noise_variance


def _check_parameters(mean: object, weight: object, noise_variance: object, *,
                      dtype: torch.dtype | None = None, device: torch.device | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""``(mean [D], weight [D, Q], noise_variance 0-dim)`` checked, in ``weight``'s dtype; a
    tensor ``noise_variance`` stays in the autograd graph (a log-likelihood may be maximised
    over :math:`\sigma^2` by gradient descent)."""
    weight = as_float_tensor(weight, "weight", ndim=2, dtype=dtype, device=device)
    d = weight.shape[0]
    mean = as_float_tensor(mean, "mean", ndim=1, dtype=weight.dtype, device=weight.device)
    if mean.shape != (d,):
        raise ValueError(f"mean must have shape [{d}] to match weight [{d}, Q], "
                         f"got {tuple(mean.shape)}")
    if weight.shape[1] > d:
        raise ValueError(f"weight must have shape [D, Q] with Q <= D, got {tuple(weight.shape)}")
    if isinstance(noise_variance, torch.Tensor):
        if noise_variance.numel() != 1:
            raise ValueError(f"noise_variance must be a number, got shape "
                             f"{tuple(noise_variance.shape)}")
        check_positive(noise_variance.item(), "noise_variance")  # the value only: a check
        return mean, weight, noise_variance.reshape(()).to(dtype=weight.dtype, device=weight.device)
    sigma2 = check_positive(noise_variance, "noise_variance")
    return mean, weight, torch.tensor(sigma2, dtype=weight.dtype, device=weight.device)


def _ppca_log_prob(x: torch.Tensor, mean: torch.Tensor, weight: torch.Tensor,
                   sigma2: torch.Tensor) -> torch.Tensor:
    # C = W W^T + s2 I = P diag(s^2 + s2) P^T + s2 (I - P P^T) with W = P diag(s) R^T (thin
    # SVD). So the Mahalanobis term splits into the squared distance from the subspace over
    # s2 and the coordinates inside it over s^2 + s2; the residual is computed explicitly,
    # never as a difference of two large squares.
    p, s, _ = torch.linalg.svd(weight, full_matrices=False)
    diff = x - mean
    inside = diff @ p                                        # [n, Q]
    outside = (diff - inside @ p.T).square().sum(1)          # [n]
    variances = s.square() + sigma2                          # [Q]
    d, q = weight.shape
    maha = outside / sigma2 + (inside.square() / variances).sum(1)
    log_det = (d - q) * sigma2.log() + variances.log().sum()
    return -0.5 * (maha + log_det + d * _LOG_2PI)


def ppca_log_prob(x: torch.Tensor, mean: torch.Tensor, weight: torch.Tensor,
                  noise_variance: float | torch.Tensor) -> torch.Tensor:
    r"""Log-density of probabilistic PCA, :math:`\log \mathcal N(x; \mu, WW^\top + \sigma^2 I)`.

    Integrating the code out of :math:`p(z)\,p(x \mid z)` leaves a Gaussian with the
    low-rank-plus-isotropic covariance :math:`C = WW^\top + \sigma^2 I_D` (Tipping & Bishop,
    1999, eq. 6). With the thin SVD :math:`W = P \operatorname{diag}(s) R^\top`, :math:`C` has
    eigenvalues :math:`s_j^2 + \sigma^2` along the columns of :math:`P` and :math:`\sigma^2`
    everywhere else, so

    .. math:: \log p(x) = -\frac12 \Big[\frac{\|r\|^2}{\sigma^2}
              + \sum_{j=1}^Q \frac{(p_j^\top (x - \mu))^2}{s_j^2 + \sigma^2}
              + (D - Q) \log \sigma^2 + \sum_j \log(s_j^2 + \sigma^2) + D \log 2\pi\Big],

    where :math:`r` is the part of :math:`x - \mu` outside the span of :math:`W`. It costs
    :math:`O(nDQ)` instead of the :math:`O(D^3)` of a dense :math:`D \times D` covariance.

    Arguments:
        x: points ``[n, D]``.
        mean: :math:`\mu`, ``[D]``.
        weight: :math:`W`, ``[D, Q]`` (any matrix; need not have orthogonal columns).
        noise_variance: :math:`\sigma^2 > 0`.

    Returns:
        ``[n]`` log-densities in nats, in the dtype of ``x``.

    References:
        M. E. Tipping and C. M. Bishop (1999). Probabilistic principal component analysis,
        eq. 6.

    Example:
        >>> ppca_log_prob(torch.zeros(2, 3), torch.zeros(3), torch.ones(3, 1), 0.5).shape
        torch.Size([2])
    """
    x = as_float_tensor(x, "x", ndim=2)
    mean, weight, sigma2 = _check_parameters(mean, weight, noise_variance, dtype=x.dtype,
                                             device=x.device)
    check_same_width(x, weight.shape[0], "x", expected_by="mean and weight have")
    return _ppca_log_prob(x, mean, weight, sigma2)


class ProbabilisticPCA(DensityModel):
    r"""Probabilistic PCA: a Gaussian code :math:`z` seen through a linear map plus noise.

    The generative story (Tipping & Bishop, 1999):

    .. math:: z \sim \mathcal N(0, I_Q), \qquad x \mid z \sim \mathcal N(W z + \mu,\ \sigma^2 I_D),

    so that :math:`p(x) = \int p(z)\,p(x \mid z)\,dz = \mathcal N(\mu, WW^\top + \sigma^2 I)`.
    ``log_prob`` is that marginal (:func:`ppca_log_prob`); ``sample`` draws ancestrally
    (``sample_joint`` also returns the codes); ``encode`` is the posterior mean
    :math:`\mathbb E[z \mid x] = M^{-1} W^\top (x - \mu)` with :math:`M = W^\top W + \sigma^2 I`
    (the posterior covariance is :math:`\sigma^2 M^{-1}`, :meth:`posterior`) and ``decode`` the
    mean of :math:`p(x \mid z)`, :math:`Wz + \mu`. The model needs :math:`DQ + D + 1`
    parameters where a full Gaussian needs :math:`D(D + 3)/2`.

    Build it from parameters, ``ProbabilisticPCA(mean=..., weight=..., noise_variance=...)``,
    or fit it by maximum likelihood, ``ProbabilisticPCA(Q).fit(x)`` (:func:`ppca_fit`).

    Arguments:
        n_components: :math:`Q` (inferred from ``weight`` when parameters are given).
        mean, weight, noise_variance: :math:`\mu` ``[D]``, :math:`W` ``[D, Q]``,
            :math:`\sigma^2 > 0`; all three or none.

    Attributes (once fitted):
        mean_: ``[D]`` (a property: ``shift_ + centred_mean_``, a rough mean of the training
        data and the small rest, as in :class:`dgm_lab.density.Gaussian`); weight_:
        ``[D, Q]``; noise_variance_: 0-dim; covariance_: ``[D, D]`` (a property,
        :math:`WW^\top + \sigma^2 I`).

    References:
        M. E. Tipping and C. M. Bishop (1999). Probabilistic principal component analysis.
        Journal of the Royal Statistical Society B 61(3).

    Example:
        >>> model = ProbabilisticPCA(2).fit(torch.randn(300, 5))
        >>> model.log_prob(torch.zeros(4, 5)).shape, model.sample(3).shape
        (torch.Size([4]), torch.Size([3, 5]))
    """

    def __init__(self, n_components: int | None = None, *, mean: torch.Tensor | None = None,
                 weight: torch.Tensor | None = None,
                 noise_variance: float | torch.Tensor | None = None) -> None:
        super().__init__()
        for name in ("shift_", "centred_mean_", "weight_", "noise_variance_"):
            self.register_buffer(name, None)
        given = [v is not None for v in (mean, weight, noise_variance)]
        if any(given) and not all(given):
            raise ValueError("give mean, weight and noise_variance together, or none of them "
                             "(then call fit)")
        if all(given):
            mean_t, weight_t, sigma2 = _check_parameters(mean, weight, noise_variance)
            if n_components is not None and check_int(n_components, "n_components") != \
                    weight_t.shape[1]:
                raise ValueError(f"n_components={n_components} but weight has "
                                 f"{weight_t.shape[1]} columns")
            n_components = weight_t.shape[1]
            self.shift_, self.centred_mean_ = mean_t, torch.zeros_like(mean_t)
            self.weight_, self.noise_variance_ = weight_t, sigma2.detach().clone()
        if n_components is None:
            raise ValueError("give n_components (the dimension Q of the code), or the parameters")
        self.n_components = check_int(n_components, "n_components")

    @property
    def event_shape(self) -> torch.Size:
        self._require_fitted()
        return self.shift_.shape

    @property
    def mean_(self) -> torch.Tensor:
        r"""The mean :math:`\mu`, ``[D]``."""
        self._require_fitted()
        return self.shift_ + self.centred_mean_

    @property
    def covariance_(self) -> torch.Tensor:
        r"""The marginal covariance :math:`WW^\top + \sigma^2 I`, ``[D, D]``."""
        self._require_fitted()
        eye = torch.eye(self.weight_.shape[0], dtype=self.dtype, device=self.device)
        return self.weight_ @ self.weight_.T + self.noise_variance_ * eye

    def fit(self, x: torch.Tensor) -> ProbabilisticPCA:
        """Set :math:`\\mu, W, \\sigma^2` to their maximum-likelihood values on ``x`` ``[N, D]``.

        Returns:
            ``self``.
        """
        x = _as_data(x)
        shift = x.mean(0)  # a rough centre: the fit then sees small, exactly centred numbers
        mean, weight, sigma2 = ppca_fit(x - shift, self.n_components)
        self.shift_, self.centred_mean_ = shift, mean
        self.weight_, self.noise_variance_ = weight, sigma2
        return self

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return _ppca_log_prob(x - self.shift_, self.centred_mean_, self.weight_,
                              self.noise_variance_)

    def _draw(self, n: int, generator: torch.Generator | None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        d, q = self.weight_.shape
        z = randn((n, q), generator, device=self.device, dtype=self.dtype)
        eps = randn((n, d), generator, device=self.device, dtype=self.dtype)
        x = self.shift_ + (self.centred_mean_ + z @ self.weight_.T
                           + self.noise_variance_.sqrt() * eps)
        return x, z

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return self._draw(n, generator)[0]

    def sample_joint(self, n: int, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` pairs ancestrally: :math:`z \\sim p(z)`, then :math:`x \\sim p(x \\mid z)`.

        Returns:
            ``(x [n, D], z [n, Q])``; ``x`` is the same as ``sample(n, generator)`` draws.
        """
        self._require_fitted()
        n = check_int(n, "n")
        generator_device(generator, self.device)  # checks its type
        return self._draw(n, generator)

    def _m_matrix(self) -> torch.Tensor:
        q = self.weight_.shape[1]
        eye = torch.eye(q, dtype=self.dtype, device=self.device)
        return self.weight_.T @ self.weight_ + self.noise_variance_ * eye

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The posterior :math:`p(z \mid x) = \mathcal N(M^{-1} W^\top (x - \mu),\
        \sigma^2 M^{-1})`, :math:`M = W^\top W + \sigma^2 I` (Tipping & Bishop, eqs. 15-16).

        Returns:
            ``(means [n, Q], covariance [Q, Q])``: the covariance is the same for every ``x``.
        """
        x = self._check_input(x)
        m = self._m_matrix()
        diff = (x - self.shift_) - self.centred_mean_
        means = torch.linalg.solve(m, self.weight_.T @ diff.T).T
        return means, self.noise_variance_ * torch.linalg.inv(m)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean :math:`\\mathbb E[z \\mid x]`, ``[n, Q]`` (see :meth:`posterior`)."""
        return self.posterior(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean :math:`Wz + \\mu` of :math:`p(x \\mid z)`, ``[n, D]``, for codes ``[n, Q]``."""
        self._require_fitted()
        z = as_float_tensor(z, "z", ndim=2, dtype=self.dtype, device=self.device)
        check_same_width(z, self.weight_.shape[1], "z", expected_by="the code of this model has")
        return self.shift_ + (self.centred_mean_ + z @ self.weight_.T)


# --------------------------------------------------------------------------------------
# the linear autoencoder
# --------------------------------------------------------------------------------------

class LinearAutoencoder(nn.Module):
    r"""An autoencoder with a linear encoder and a linear decoder, trained by gradient descent.

    :math:`z = A (x - \bar x)`, :math:`\hat x = \bar x + B z`, with :math:`A \in \mathbb
    R^{Q \times D}` (``encoder.weight``) and :math:`B \in \mathbb R^{D \times Q}`
    (``decoder.weight``). The mean :math:`\bar x` is a fixed buffer, as PCA subtracts it, so
    the weights learn only the subspace. Minimising the mean squared reconstruction error
    (:func:`dgm_lab.autoencoders.reconstruction_loss`) drives the column space of :math:`B` to
    the span of the first :math:`Q` principal axes; every global minimum is
    :math:`B = U_Q T`, :math:`A = T^{-1} U_Q^\top` for some invertible :math:`T`, and gradient
    descent has no other local minimum (Baldi & Hornik, 1989). The columns of :math:`B` are
    therefore a basis of the PCA subspace, usually neither orthogonal nor the axes.

    Arguments:
        n_features: :math:`D`.
        n_components: :math:`Q \le D`.
        mean: :math:`\bar x`, ``[D]``, default zeros (then centre the data yourself).

    References:
        P. Baldi and K. Hornik (1989). Neural networks and principal component analysis:
        learning from examples without local minima.

    Example:
        >>> model = LinearAutoencoder(64, 4, mean=x_train.mean(0))
        >>> fit(model, reconstruction_loss, x_train, epochs=50)
        >>> principal_angles(model.decoder.weight, pca.components_.T).max()
    """

    def __init__(self, n_features: int, n_components: int, *,
                 mean: torch.Tensor | None = None) -> None:
        super().__init__()
        d = check_int(n_features, "n_features")
        q = check_int(n_components, "n_components")
        if q > d:
            raise ValueError(f"n_components must be at most n_features = {d}, got {q}")
        self.encoder = nn.Linear(d, q, bias=False)
        self.decoder = nn.Linear(q, d, bias=False)
        mean = torch.zeros(d) if mean is None else as_float_tensor(mean, "mean", ndim=1)
        if mean.shape != (d,):
            raise ValueError(f"mean must have shape [{d}], got {tuple(mean.shape)}")
        self.register_buffer("mean", mean.to(self.encoder.weight))

    def _check(self, x: object, name: str, width: int) -> torch.Tensor:
        w = self.encoder.weight
        t = as_float_tensor(x, name, ndim=2, dtype=w.dtype, device=w.device)
        check_same_width(t, width, name, expected_by="this autoencoder expects")
        return t

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes :math:`A(x - \\bar x)`, ``[n, Q]``."""
        return self.encoder(self._check(x, "x", self.encoder.in_features) - self.mean)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructions :math:`\\bar x + Bz`, ``[n, D]``."""
        return self.decoder(self._check(z, "z", self.decoder.in_features)) + self.mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction ``decode(encode(x))``."""
        return self.decode(self.encode(x))


def linear_autoencoder_step(x: torch.Tensor, encoder_weight: torch.Tensor,
                            decoder_weight: torch.Tensor, lr: float
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""One step of plain gradient descent on the loss of a linear autoencoder.

    For centred data :math:`X` (``[N, D]``), encoder :math:`A` (``[Q, D]``) and decoder
    :math:`B` (``[D, Q]``), the loss is the mean squared reconstruction error

    .. math:: L(A, B) = \frac1N \sum_i \|x_i - B A x_i\|^2
              = \frac1N \|X A^\top B^\top - X\|_F^2 .

    With :math:`Z = X A^\top` (the codes) and :math:`R = Z B^\top - X` (the residuals), its
    gradients are :math:`\nabla_B L = \frac2N R^\top Z` and
    :math:`\nabla_A L = \frac2N B^\top R^\top X`.

    Arguments:
        x: centred data ``[N, D]``.
        encoder_weight: :math:`A`, ``[Q, D]``.
        decoder_weight: :math:`B`, ``[D, Q]``.
        lr: the step size :math:`\eta > 0`.

    Returns:
        ``(loss, new_encoder_weight, new_decoder_weight)``: :math:`L(A, B)` before the step
        (0-dim), :math:`A - \eta \nabla_A L` and :math:`B - \eta \nabla_B L`.

    References:
        P. Baldi and K. Hornik (1989). Neural networks and principal component analysis.

    Example:
        >>> loss, a, b = linear_autoencoder_step(x - x.mean(0), a, b, lr=0.1)
    """
    x = as_float_tensor(x, "x", ndim=2)
    n, d = x.shape
    a = as_float_tensor(encoder_weight, "encoder_weight", ndim=2, dtype=x.dtype, device=x.device)
    b = as_float_tensor(decoder_weight, "decoder_weight", ndim=2, dtype=x.dtype, device=x.device)
    if a.shape[1] != d or b.shape != (d, a.shape[0]):
        raise ValueError(f"encoder_weight must be [Q, {d}] and decoder_weight [{d}, Q], got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    lr = check_positive(lr, "lr")
    codes = x @ a.T
    residuals = codes @ b.T - x
    loss = residuals.square().sum() / n
    grad_b = 2 / n * residuals.T @ codes
    grad_a = 2 / n * b.T @ residuals.T @ x
    return loss, a - lr * grad_a, b - lr * grad_b


# --------------------------------------------------------------------------------------
# principal angles between subspaces
# --------------------------------------------------------------------------------------

def _orthonormal_basis(a: torch.Tensor, name: str) -> torch.Tensor:
    """Orthonormal columns spanning the column space of ``a`` (rank-revealing SVD)."""
    u, s, _ = torch.linalg.svd(a, full_matrices=False)
    tol = max(a.shape) * torch.finfo(a.dtype).eps * s[0]
    rank = int((s > tol).sum())
    if rank == 0:
        raise ValueError(f"{name} spans no subspace: all its columns are (numerically) zero")
    return u[:, :rank]


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Principal angles between the column spaces of ``a`` and ``b``, largest first.

    With orthonormal bases :math:`Q_a, Q_b`, the cosines of the angles are the singular values
    of :math:`Q_a^\top Q_b`. Near zero the arccosine loses half the digits
    (:math:`\cos\theta \approx 1 - \theta^2/2`), so small angles come from their sines instead,
    the singular values of the part of one basis outside the other subspace (Knyazev &
    Argentati, 2002). Two subspaces are equal when every angle is 0; the largest angle is the
    usual distance between them. Same convention as ``scipy.linalg.subspace_angles``.

    Arguments:
        a: ``[D, p]``, its columns span the first subspace.
        b: ``[D, q]``, its columns span the second.

    Returns:
        ``[k]`` angles in radians in :math:`[0, \pi/2]`, in decreasing order, with :math:`k`
        the smaller of the two dimensions (ranks); no gradient flows through them.

    References:
        A. V. Knyazev and M. E. Argentati (2002). Principal angles between subspaces in an
        A-based scalar product.

    Example:
        >>> principal_angles(torch.eye(3)[:, :2], torch.tensor([[1.0], [1.0], [0.0]]))
        tensor([0.])
    """
    a = as_float_tensor(a, "a", ndim=2).detach()  # a measurement: no gradient flows
    b = as_float_tensor(b, "b", ndim=2, device=a.device).detach()
    dtype = torch.promote_types(a.dtype, b.dtype)
    a, b = a.to(dtype), b.to(dtype)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have the same number of rows (the dimension D of the "
                         f"space), got {tuple(a.shape)} and {tuple(b.shape)}")
    qa, qb = _orthonormal_basis(a, "a"), _orthonormal_basis(b, "b")
    if qa.shape[1] < qb.shape[1]:
        qa, qb = qb, qa  # qb is now the smaller subspace
    overlap = qa.T @ qb
    cosines = torch.linalg.svdvals(overlap).clamp(0, 1)             # decreasing
    sines = torch.linalg.svdvals(qb - qa @ overlap).clamp(0, 1)      # decreasing
    # both lists in the order of decreasing angle: sines as they are, cosines reversed
    small = sines.square() < 0.5
    return torch.where(small, torch.asin(sines), torch.acos(cosines.flip(0)))
