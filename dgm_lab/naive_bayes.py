r"""Naive Bayes: the simplest generative classifier, and the learning curves that compare it
with its discriminative twin, logistic regression.

A *generative* classifier models the joint distribution of inputs and labels,

.. math::

    p(x, y) = p(y)\, p(x \mid y),

and classifies with Bayes' rule, :math:`p(y \mid x) = p(x, y) / \sum_k p(x, y=k)`.
*Naive* Bayes makes the strongest useful assumption about the class-conditional
:math:`p(x \mid y)`: the features are independent once the class is known,

.. math::

    p(x \mid y=k) = \prod_{j=1}^{d} p(x_j \mid y=k).

With that assumption the maximum-likelihood fit is closed form (class frequencies,
per-class means and variances or pixel frequencies), and because the model is a full
joint distribution it can do what a discriminative model cannot: evaluate :math:`p(x)`,
*sample* new inputs, and fill in missing features.

* :class:`GaussianNaiveBayes` — :math:`p(x_j \mid y=k) = \mathcal{N}(\mu_{kj}, \sigma^2_{kj})`,
  for real-valued features; matches scikit-learn's ``GaussianNB``.
* :class:`BernoulliNaiveBayes` — :math:`p(x_j = 1 \mid y=k) = \theta_{kj}` with additive
  (Laplace) smoothing, for binary features; matches scikit-learn's ``BernoulliNB``.
* :func:`make_conditionally_independent_gaussians` — synthetic data that satisfies the
  naive Bayes assumption exactly, with a known Bayes error.
* :func:`learning_curve` — mean and spread of the test error against the training-set
  size, the experiment of Ng & Jordan (2002).

References:
    Ng, A. Y. & Jordan, M. I. (2002). On discriminative vs. generative classifiers: a
    comparison of logistic regression and naive Bayes. NIPS 14.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dgm_lab._validation import (
    as_float_tensor,
    check_binary,
    check_bool,
    check_int,
    check_non_negative,
    check_positive,
    check_same_width,
    check_seed,
)
from dgm_lab.model import DensityModel, multinomial, rand, randn

__all__ = [
    "GaussianNaiveBayes",
    "BernoulliNaiveBayes",
    "make_conditionally_independent_gaussians",
    "conditionally_independent_gaussians_bayes_error",
    "learning_curve",
    "LearningCurve",
]


# --------------------------------------------------------------------------------------
# Input checks specific to classifiers (the generic ones live in dgm_lab._validation)
# --------------------------------------------------------------------------------------


def _as_labels(y: object, n: int, device: torch.device, name: str = "y") -> torch.Tensor:
    """Check that ``y`` is a 1-D integer vector of ``n`` labels >= 0 and return it as int64."""
    if isinstance(y, np.ndarray):
        if y.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer class labels 0..K-1, got dtype {y.dtype}")
        y = torch.from_numpy(np.ascontiguousarray(y))
    elif isinstance(y, (list, tuple)):
        arr = np.asarray(y)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer class labels 0..K-1, got {arr.dtype}")
        y = torch.from_numpy(arr)
    elif not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer labels, got {type(y).__name__}")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise TypeError(f"{name} must hold integer class labels 0..K-1, got dtype {y.dtype}")
    if y.dim() != 1:
        raise ValueError(f"{name} must have shape [n], got shape {tuple(y.shape)}")
    if len(y) != n:
        raise ValueError(f"{name} has {len(y)} labels but x has {n} rows")
    if len(y) and int(y.min()) < 0:
        raise ValueError(f"{name} must hold class labels 0..K-1, "
                         f"got a negative label {int(y.min())}")
    return y.to(device=device, dtype=torch.int64)


def _as_observed(observed: object, x: torch.Tensor) -> torch.Tensor:
    """Check a missing-data mask: bool ``[n, d]`` (or ``[d]``, shared by all rows), True = seen."""
    if not isinstance(observed, torch.Tensor):
        if isinstance(observed, np.ndarray):
            observed = torch.from_numpy(observed)
        else:
            raise TypeError("observed must be a boolean torch.Tensor, "
                            f"got {type(observed).__name__}")
    if observed.dtype != torch.bool:
        raise TypeError("observed must be a boolean mask (True = observed), "
                        f"got dtype {observed.dtype}")
    if observed.dim() == 1 and observed.shape[0] == x.shape[1]:
        observed = observed.expand_as(x)
    if observed.shape != x.shape:
        raise ValueError(f"observed must have the shape of x {tuple(x.shape)} or [d], "
                         f"got {tuple(observed.shape)}")
    return observed.to(x.device)


class _NaiveBayes(DensityModel):
    r"""What both naive Bayes models share: the class prior, Bayes' rule, sampling, imputing.

    The model is a density over inputs, :math:`p(x) = \sum_k p(x, y=k)`: ``log_prob(x)`` is
    this marginal, as for every :class:`~dgm_lab.model.DensityModel`. The joint and the
    posterior have their own names: :meth:`log_joint` (:math:`\log p(x, y)` of each input
    with its label), :meth:`predict_joint_log_proba` (every class, ``[n, K]``, scikit-learn's
    name), :meth:`predict_log_proba` (:math:`\log p(y \mid x)`).

    Missing features: every method that reads ``x`` after fitting takes an optional
    ``observed`` mask (True = seen), and a NaN in ``x`` marks a missing entry too. Missing
    features are marginalised out, which under the independence assumption just drops their
    factors from the product.

    A subclass stores its per-class feature parameters as buffers and implements
    ``_fit_features(x, onehot, counts) -> {buffer: value}``, ``_feature_log_prob(x, k)``
    (``[n, d]``: :math:`\log p(x_j \mid y=k)` for each feature), ``_sample_features(y,
    generator)`` and ``_conditional_mean(post)`` (:math:`E[x \mid \text{post}]`, ``[n, d]``).
    """

    _fit_hint = "fit(x, y)"
    _param_name = "class_log_prior_"  # a [K, d] buffer giving the width (set by subclasses)
    _binary = False  # Bernoulli: accept bool input and check that features are 0/1

    def __init__(self) -> None:
        super().__init__()
        # Buffers (not Parameters): they are fitted in closed form, never by gradients, but
        # they still follow .to(device) and are saved in (and loaded from) state_dict().
        self.register_buffer("class_log_prior_", None)

    # ---- bookkeeping ------------------------------------------------------------------

    @property
    def event_shape(self) -> torch.Size:
        self._require_fitted()
        return getattr(self, self._param_name).shape[1:]

    @property
    def n_classes(self) -> int:
        """Number of classes K."""
        self._require_fitted()
        return len(self.class_log_prior_)

    @property
    def n_features(self) -> int:
        """Number of features d the model was fitted on."""
        return self.event_shape[0]

    def _input(self, x: object, observed: object) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` ``[n, d]`` on the model's device and dtype, and its mask (None: all seen)."""
        t = self._check_input(x, allow_bool=self._binary, allow_nan=True)
        nan = torch.isnan(t)
        if observed is None:
            mask = ~nan if nan.any() else None
        else:
            mask = _as_observed(observed, t)
            if (nan & mask).any():
                raise ValueError("x contains NaN at an observed position: NaN marks a missing "
                                 "entry, so leave observed=None or mark that entry False")
        if self._binary:
            check_binary(t if mask is None else torch.where(mask, t, torch.zeros_like(t)), "x")
        return t, mask

    def _labels(self, y: object, n: int | None = None) -> torch.Tensor:
        """``y`` as int64 labels in ``0..K-1`` on the model's device (``n`` of them if given)."""
        if n is None:
            n = len(y) if isinstance(y, (torch.Tensor, np.ndarray, list, tuple)) else -1
        labels = _as_labels(y, n, self.device)
        bad = labels[labels >= self.n_classes]
        if len(bad):
            raise ValueError(f"y must hold class labels in 0..{self.n_classes - 1}, "
                             f"got {int(bad[0])}")
        return labels

    # ---- fitting ------------------------------------------------------------------------

    def fit(self, x: torch.Tensor, y: torch.Tensor, n_classes: int | None = None) -> _NaiveBayes:
        """Fit by maximum likelihood (closed form) on inputs ``x`` and labels ``y``.

        Arguments:
            x: inputs ``[n, d]``; the model keeps their dtype (float32 for integer, bool or
                half-precision input) and device.
            y: integer labels ``[n]`` in ``0..K-1``.
            n_classes: K; by default ``y.max() + 1``. Every class must occur in ``y``.

        Returns:
            ``self``, fitted.
        """
        x = as_float_tensor(x, "x", ndim=2, allow_bool=self._binary)
        y = _as_labels(y, len(x), x.device)
        k = int(y.max()) + 1 if n_classes is None else check_int(n_classes, "n_classes")
        if int(y.max()) >= k:
            raise ValueError(f"y holds label {int(y.max())} but n_classes is {k}")
        if self._binary:
            check_binary(x, "x")
        counts = torch.bincount(y, minlength=k).to(x.dtype)
        if (counts == 0).any():
            missing = torch.nonzero(counts == 0).flatten().tolist()
            raise ValueError(f"class(es) {missing} have no training example: labels must be "
                             f"0..K-1 with every class present (or pass a smaller n_classes)")
        onehot = torch.nn.functional.one_hot(y, k).to(x.dtype)  # [n, K]
        fitted = self._fit_features(x, onehot, counts)
        # ML estimate of the prior: the class frequencies.
        fitted["class_log_prior_"] = torch.log(counts) - math.log(len(y))
        for name, value in fitted.items():  # all at once: a failed fit changes nothing
            setattr(self, name, value)
        return self

    # ---- the joint, the marginal and Bayes' rule ---------------------------------------

    def _joint(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        columns = []
        for k in range(self.n_classes):  # one class at a time keeps memory at [n, d]
            per_feature = self._feature_log_prob(x, k)
            if mask is not None:
                per_feature = torch.where(mask, per_feature, torch.zeros_like(per_feature))
            columns.append(per_feature.sum(dim=1))
        return torch.stack(columns, dim=1) + self.class_log_prior_

    def predict_joint_log_proba(self, x: torch.Tensor,
                                observed: torch.Tensor | None = None) -> torch.Tensor:
        r"""Log joint of every class, :math:`\log p(x, y=k) = \log\pi_k + \sum_j \log p(x_j|k)`.

        Arguments:
            x: inputs ``[n, d]`` (NaN marks a missing entry).
            observed: optional boolean mask ``[n, d]`` or ``[d]`` (True = observed).
                Missing features are *marginalised out*, which under the independence
                assumption just means dropping their factors from the product.

        Returns:
            ``[n, K]`` log joint probabilities (log densities for continuous ``x``), in nats.
        """
        return self._joint(*self._input(x, observed))

    def log_prob(self, x: torch.Tensor, observed: torch.Tensor | None = None) -> torch.Tensor:
        r"""Log marginal :math:`\log p(x) = \log \sum_k p(x, y=k)`, by log-sum-exp over classes.

        Arguments:
            x: inputs ``[n, d]`` (NaN marks a missing entry).
            observed: optional mask as in :meth:`predict_joint_log_proba` (gives
                :math:`\log p(x_\text{obs})`).

        Returns:
            ``[n]`` log probabilities (densities for continuous ``x``), in nats.
        """
        return torch.logsumexp(self.predict_joint_log_proba(x, observed), dim=1)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._joint(x, None), dim=1)

    def log_joint(self, x: torch.Tensor, y: torch.Tensor,
                  observed: torch.Tensor | None = None) -> torch.Tensor:
        r"""Log joint :math:`\log p(x, y)` of each input with its own label.

        Arguments:
            x: inputs ``[n, d]`` (NaN marks a missing entry).
            y: integer labels ``[n]``.
            observed: optional mask as in :meth:`predict_joint_log_proba`.

        Returns:
            ``[n]`` log joint probabilities, in nats.
        """
        joint = self.predict_joint_log_proba(x, observed)
        return joint.gather(1, self._labels(y, len(joint))[:, None])[:, 0]

    def predict_log_proba(self, x: torch.Tensor,
                          observed: torch.Tensor | None = None) -> torch.Tensor:
        r"""Log posterior :math:`\log p(y=k \mid x) = \log p(x, y=k) - \log p(x)` (Bayes' rule).

        Returns:
            ``[n, K]``; each row log-sums-exp to 0.
        """
        joint = self.predict_joint_log_proba(x, observed)
        # log-sum-exp subtracts the row maximum first: exp() of log densities around -1e3
        # would underflow to 0 and give 0/0.
        return joint - torch.logsumexp(joint, dim=1, keepdim=True)

    def predict_proba(self, x: torch.Tensor, observed: torch.Tensor | None = None) -> torch.Tensor:
        """Posterior class probabilities ``[n, K]``."""
        return self.predict_log_proba(x, observed).exp()

    def predict(self, x: torch.Tensor, observed: torch.Tensor | None = None) -> torch.Tensor:
        r"""Most probable class ``[n]`` (int64): :math:`\arg\max_k p(x, y=k)`."""
        return self.predict_joint_log_proba(x, observed).argmax(dim=1)

    # ---- what only a generative model can do -------------------------------------------

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.sample_joint(n, generator)[0]

    def sample_joint(self, n: int,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Draw ``(x, y)`` from the joint by ancestral sampling: :math:`y \sim \pi`, then
        :math:`x_j \sim p(x_j \mid y)` independently for every feature.

        (:meth:`sample` returns the ``x`` alone: draws from the marginal :math:`p(x)`.)

        Arguments:
            n: number of samples.
            generator: optional ``torch.Generator`` for repeatable draws.

        Returns:
            ``x`` ``[n, d]`` and ``y`` ``[n]`` (int64).

        Example:
            >>> x_new, y_new = GaussianNaiveBayes().fit(x, y).sample_joint(16)
        """
        self._require_fitted()
        n = check_int(n, "n")
        labels = multinomial(self.class_log_prior_.exp(), n, generator)
        return self._sample_features(labels, generator), labels

    def sample_conditional(self, y: torch.Tensor,
                           generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Draw one input from :math:`p(x \mid y)` for every label of ``y``.

        Arguments:
            y: integer labels ``[n]`` in ``0..K-1`` (e.g. ``torch.full((16,), 3)`` for
                sixteen "3"s).
            generator: optional ``torch.Generator`` for repeatable draws.

        Returns:
            ``[n, d]``, row ``i`` drawn from class ``y[i]``.

        Example:
            >>> threes = GaussianNaiveBayes().fit(x, y).sample_conditional(torch.full((16,), 3))
        """
        self._require_fitted()
        return self._sample_features(self._labels(y), generator)

    def impute(self, x: torch.Tensor, observed: torch.Tensor | None = None, *,
               sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Fill in the missing features of ``x`` from the model, given the observed ones.

        The class posterior is computed from the observed features only,
        :math:`r_k = p(y=k \mid x_{obs})`; a missing feature then gets its conditional mean
        :math:`E[x_j \mid x_{obs}] = \sum_k r_k\, E[x_j \mid y=k]` (``sample=False``) or a
        draw from :math:`p(x_j \mid x_{obs})`: first :math:`k \sim r`, then
        :math:`x_j \sim p(x_j \mid y=k)` (``sample=True``).

        Arguments:
            x: inputs ``[n, d]``; NaN marks a missing entry, and entries where ``observed``
                is False are ignored.
            observed: boolean mask ``[n, d]`` or ``[d]``, True where the feature is seen;
                ``None`` treats the NaN entries of ``x`` as the missing ones.
            sample: draw the missing values instead of taking their conditional mean.
            generator: optional ``torch.Generator`` for the draws.

        Returns:
            ``[n, d]``: ``x`` with its missing entries filled in, the observed ones unchanged.

        Example:
            >>> top_half = torch.arange(64) < 32
            >>> completed = model.impute(x_test, top_half)
        """
        check_bool(sample, "sample")
        x, mask = self._input(x, observed)
        if mask is None:
            return x.clone()  # nothing is missing
        post = self._joint(x, mask).softmax(dim=1)  # [n, K]
        if sample:
            fill = self._sample_features(multinomial(post, 1, generator)[:, 0], generator)
        else:
            fill = self._conditional_mean(post)
        return torch.where(mask, x, fill)

    # ---- hooks -------------------------------------------------------------------------

    def _fit_features(self, x: torch.Tensor, onehot: torch.Tensor,
                      counts: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _feature_log_prob(self, x: torch.Tensor, k: int) -> torch.Tensor:
        raise NotImplementedError

    def _sample_features(self, y: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def _conditional_mean(self, post: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class GaussianNaiveBayes(_NaiveBayes):
    r"""Gaussian naive Bayes for real-valued features:
    :math:`p(x, y=k) = \pi_k \prod_j \mathcal{N}(x_j; \mu_{kj}, \sigma^2_{kj})`.

    The maximum-likelihood fit is closed form: :math:`\pi_k = n_k / n`,
    :math:`\mu_{kj}` = mean of feature j over the class-k examples, :math:`\sigma^2_{kj}` =
    their (biased, ML) variance. A feature that is constant within a class (a corner pixel
    that is always 0) would get :math:`\sigma^2 = 0` and an infinite density, so, like
    scikit-learn's ``GaussianNB``, every variance gets
    ``var_smoothing * max_j Var(x_j)`` added (the largest variance of any feature over the
    whole training set).

    With ``shared_variance=True`` each feature gets one variance for all classes, the
    pooled within-class variance :math:`\sigma^2_j = \sum_k (n_k/n)\, \sigma^2_{kj}`
    (the ML estimate under that constraint). This is the continuous naive Bayes of
    Ng & Jordan (2002): the quadratic terms cancel in the log-odds, the decision boundary
    is linear, and the model is the exact generative twin of logistic regression. It also
    has K times fewer variances to estimate (d instead of K d), which helps when classes
    have few examples.

    The means are stored relative to ``shift_``, the mean of the training inputs: float32
    far from the origin cannot hold a mean to the precision a small variance needs (at
    :math:`10^6` its numbers are 0.06 apart), but it holds the small difference
    :math:`\mu_{kj} - \text{shift}_j` exactly enough.

    Arguments:
        var_smoothing: the fraction of the largest feature variance added to every variance
            (scikit-learn's default is 1e-9).
        shared_variance: pool each feature's variance over the classes (default False,
            which matches scikit-learn's ``GaussianNB``).

    Attributes (once fitted):
        class_log_prior_: ``[K]`` log class frequencies :math:`\log \pi_k`.
        means_: ``[K, d]`` per-class means :math:`\mu_{kj}` (a property: ``shift_ +
            centred_means_``; assigning it keeps ``shift_``, zero on an unfitted model).
        variances_: ``[K, d]`` per-class variances :math:`\sigma^2_{kj}` (smoothed; equal
            rows when ``shared_variance``).
        shift_: ``[d]`` the mean of the training inputs.

    References:
        Ng & Jordan (2002); Bishop (2006), *Pattern Recognition and Machine Learning*, §4.2.

    Example:
        >>> from dgm_lab.data import load_digits
        >>> x, y = load_digits("train")
        >>> model = GaussianNaiveBayes().fit(x, y)
        >>> model.predict_log_proba(x[:5]).shape
        torch.Size([5, 10])
    """

    _param_name = "variances_"

    def __init__(self, var_smoothing: float = 1e-9, shared_variance: bool = False) -> None:
        super().__init__()
        self.var_smoothing = check_non_negative(var_smoothing, "var_smoothing")
        self.shared_variance = check_bool(shared_variance, "shared_variance")
        for name in ("shift_", "centred_means_", "variances_"):
            self.register_buffer(name, None)

    @property
    def means_(self) -> torch.Tensor:
        """Per-class means :math:`\\mu_{kj}`, ``[K, d]`` (``shift_ + centred_means_``)."""
        self._require_fitted()
        return self.shift_ + self.centred_means_

    @means_.setter
    def means_(self, means: torch.Tensor) -> None:
        if self.shift_ is None:
            self.shift_ = torch.zeros_like(means[0])
        self.centred_means_ = means - self.shift_

    def _fit_features(self, x: torch.Tensor, onehot: torch.Tensor,
                      counts: torch.Tensor) -> dict[str, torch.Tensor]:
        shift = x.mean(0)
        x = x - shift  # exact for points near the data: float32 keeps every digit
        means = (onehot.T @ x) / counts[:, None]
        # Two-pass variance (subtract the class mean first): the one-pass E[x^2] - E[x]^2
        # loses all precision for nearly constant features in float32.
        centred = x - means[onehot.argmax(dim=1)]
        variances = (onehot.T @ centred.square()) / counts[:, None]
        if self.shared_variance:
            pooled = (counts[:, None] * variances).sum(dim=0) / counts.sum()
            variances = pooled.expand_as(variances).clone()
        epsilon = self.var_smoothing * x.var(dim=0, unbiased=False).max()
        variances = variances + epsilon
        if (variances <= 0).any():
            raise ValueError("a feature has zero variance in some class and var_smoothing is 0 "
                             "(or every feature is constant): use var_smoothing > 0")
        return {"shift_": shift, "centred_means_": means, "variances_": variances}

    def _feature_log_prob(self, x: torch.Tensor, k: int) -> torch.Tensor:
        var = self.variances_[k]
        diff = (x - self.shift_) - self.centred_means_[k]
        return -0.5 * (torch.log(2 * math.pi * var) + diff.square() / var)

    def _sample_features(self, y: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        eps = randn((len(y), self.n_features), generator, device=self.device, dtype=self.dtype)
        return self.shift_ + (self.centred_means_[y] + self.variances_[y].sqrt() * eps)

    def _conditional_mean(self, post: torch.Tensor) -> torch.Tensor:
        return self.shift_ + post @ self.centred_means_

    def extra_repr(self) -> str:
        return f"var_smoothing={self.var_smoothing}, shared_variance={self.shared_variance}"


class BernoulliNaiveBayes(_NaiveBayes):
    r"""Bernoulli naive Bayes for binary features:
    :math:`p(x, y=k) = \pi_k \prod_j \theta_{kj}^{x_j} (1-\theta_{kj})^{1-x_j}`.

    The ML estimate of :math:`\theta_{kj} = p(x_j = 1 \mid y = k)` is the fraction of
    class-k examples with feature j on; a pixel never seen on in a class would get
    probability 0 and send :math:`\log p(x)` to :math:`-\infty` for any test image that
    has it on. Additive (Laplace) smoothing pretends every pixel was seen ``alpha`` extra
    times on and ``alpha`` times off:

    .. math::

        \theta_{kj} = \frac{\#\{i: y_i = k, x_{ij} = 1\} + \alpha}{n_k + 2\alpha},
        \qquad \pi_k = n_k / n,

    which is scikit-learn's ``BernoulliNB(alpha=alpha, binarize=None)``. In Bayesian terms it
    is the posterior mean of :math:`\theta_{kj}` under a :math:`\mathrm{Beta}(\alpha, \alpha)`
    prior.

    The model stores the log-odds :math:`\ell_{kj} = \log\theta_{kj} - \log(1-\theta_{kj})
    = \log(c_{kj} + \alpha) - \log(n_k - c_{kj} + \alpha)` (as ``torch.distributions.Bernoulli``
    does with ``logits``), and evaluates :math:`\log\theta = \log\sigma(\ell)`,
    :math:`\log(1-\theta) = \log\sigma(-\ell)`: with a tiny ``alpha`` in float32,
    :math:`\theta` itself rounds to 1 and :math:`\log(1-\theta)` would be :math:`-\infty`.

    Arguments:
        alpha: smoothing pseudo-count, > 0 (1 = Laplace's rule of succession).

    Attributes (once fitted):
        class_log_prior_: ``[K]``; logits_: ``[K, d]`` the log-odds :math:`\ell_{kj}`;
        probs_: ``[K, d]`` the :math:`\theta_{kj}` (a property: ``sigmoid(logits_)``;
        assigning it sets ``logits_``).

    References:
        Ng & Jordan (2002); Murphy (2022), *Probabilistic Machine Learning*, §9.3.

    Example:
        >>> from dgm_lab.data import load_digits
        >>> x, y = load_digits("train", form="binary")
        >>> model = BernoulliNaiveBayes(alpha=1.0).fit(x, y)
        >>> x_new = model.sample(10)
    """

    _param_name = "logits_"
    _binary = True

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = check_positive(alpha, "alpha")
        self.register_buffer("logits_", None)

    @property
    def probs_(self) -> torch.Tensor:
        r""":math:`\theta_{kj} = p(x_j = 1 \mid y = k)`, ``[K, d]``."""
        self._require_fitted()
        return torch.sigmoid(self.logits_)

    @probs_.setter
    def probs_(self, probs: torch.Tensor) -> None:
        self.logits_ = torch.log(probs) - torch.log1p(-probs)

    def _fit_features(self, x: torch.Tensor, onehot: torch.Tensor,
                      counts: torch.Tensor) -> dict[str, torch.Tensor]:
        on = onehot.T @ x  # [K, d]: how often each pixel is on in each class
        return {"logits_": torch.log(on + self.alpha)
                - torch.log(counts[:, None] - on + self.alpha)}

    def _feature_log_prob(self, x: torch.Tensor, k: int) -> torch.Tensor:
        # log(theta) where the pixel is on, log(1 - theta) where it is off; a product
        # x log(theta) would turn 0 * log(0) into NaN
        logits = self.logits_[k].expand_as(x)
        return torch.where(x == 1, F.logsigmoid(logits), F.logsigmoid(-logits))

    def _sample_features(self, y: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        u = rand((len(y), self.n_features), generator, device=self.device, dtype=self.dtype)
        return (u < self.probs_[y]).to(self.dtype)

    def _conditional_mean(self, post: torch.Tensor) -> torch.Tensor:
        return post @ self.probs_

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


# --------------------------------------------------------------------------------------
# Data where the naive Bayes assumption holds
# --------------------------------------------------------------------------------------


def _class_mean_offset(d: int, class_sep: float, problem_seed: int) -> torch.Tensor:
    r"""The fixed direction :math:`\Delta/2` (norm ``class_sep / 2``) of one synthetic problem."""
    g = torch.Generator().manual_seed(problem_seed)
    direction = torch.randn(d, generator=g, dtype=torch.float64)
    return (class_sep / 2) * direction / direction.norm()


def make_conditionally_independent_gaussians(
        n: int, d: int = 100, *, class_sep: float = 2.0, seed: int = 0,
        problem_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Two-class data that satisfies the naive Bayes assumption exactly.

    Generator: :math:`y \sim \mathrm{Bernoulli}(1/2)` and, given y, the d features are
    independent unit-variance Gaussians,

    .. math::

        x \mid y \sim \mathcal{N}\big((2y - 1)\,\Delta/2,\; I_d\big),
        \qquad \lVert \Delta \rVert = \text{class\_sep},

    where the direction of :math:`\Delta` is drawn once from ``problem_seed`` (a standard
    Gaussian vector, rescaled), so every feature carries a little evidence. Because the two
    classes share their covariance, the true posterior is exactly logistic-linear: naive
    Bayes and logistic regression are *both* correctly specified and have the same
    asymptotic error, the Bayes error :math:`\Phi(-\text{class\_sep}/2)` (see
    :func:`conditionally_independent_gaussians_bayes_error`). This is the setting of
    Ng & Jordan's (2002) result: naive Bayes needs :math:`O(\log d)` examples to approach
    that error, logistic regression :math:`O(d)`.

    Arguments:
        n: number of examples.
        d: number of features.
        class_sep: distance between the two class means (sets the Bayes error).
        seed: seed of the examples (use different seeds for train and test).
        problem_seed: seed of the class means (keep it fixed between train and test).

    Returns:
        ``x`` float32 ``[n, d]`` and ``y`` int64 ``[n]`` in {0, 1}.

    Example:
        >>> x_tr, y_tr = make_conditionally_independent_gaussians(200, seed=1)
        >>> x_te, y_te = make_conditionally_independent_gaussians(5000, seed=2)
    """
    n = check_int(n, "n")
    d = check_int(d, "d")
    class_sep = check_positive(class_sep, "class_sep")
    seed = check_seed(seed)
    problem_seed = check_int(problem_seed, "problem_seed", minimum=0)
    half = _class_mean_offset(d, class_sep, problem_seed)
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) + (2 * y[:, None] - 1) * half
    return x.float(), y


def conditionally_independent_gaussians_bayes_error(class_sep: float = 2.0) -> float:
    r"""Bayes error :math:`\Phi(-\text{class\_sep}/2)` of
    :func:`make_conditionally_independent_gaussians` (any d): the lowest test error any
    classifier can reach on that data."""
    class_sep = check_positive(class_sep, "class_sep")
    return 0.5 * math.erfc(class_sep / 2 / math.sqrt(2))


# --------------------------------------------------------------------------------------
# Learning curves (Ng & Jordan, 2002)
# --------------------------------------------------------------------------------------


@dataclass
class LearningCurve:
    """Test error against the training-set size, as measured by :func:`learning_curve`.

    Attributes:
        sizes: ``[S]`` training-set sizes.
        errors: ``[S, repeats]`` test error of each repeat (a fresh random subset each time).
        mean: ``[S]`` mean test error over the repeats.
        std: ``[S]`` standard deviation over the repeats.
    """

    sizes: np.ndarray
    errors: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        return self.errors.mean(axis=1)

    @property
    def std(self) -> np.ndarray:
        return self.errors.std(axis=1)


def _to_numpy(t: Any) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    return np.asarray(t)


def _stratified_subset(y: np.ndarray, size: int, n_classes: int,
                       rng: np.random.Generator) -> np.ndarray:
    """Indices of a random subset of ``size`` rows holding every class at least once.

    One example of each class is drawn first (a classifier cannot be fitted on a class it
    has never seen), the remaining ``size - K`` rows uniformly from what is left, so the
    class proportions otherwise follow the data.
    """
    first = np.array([rng.choice(np.flatnonzero(y == k)) for k in range(n_classes)])
    rest = np.setdiff1d(np.arange(len(y)), first)
    extra = rng.choice(rest, size=size - n_classes, replace=False)
    return np.concatenate([first, extra])


def learning_curve(make_model: Callable[[], Any], x_train: torch.Tensor, y_train: torch.Tensor,
                   x_test: torch.Tensor, y_test: torch.Tensor, sizes: Sequence[int], *,
                   repeats: int = 10, seed: int = 0) -> LearningCurve:
    """Test error of a classifier against the number of training examples.

    For every ``size`` and every repeat, a fresh random subset of ``size`` training examples
    (holding every class at least once) is drawn, a new model ``make_model()`` is fitted on
    it and its error rate on the full test set is recorded. The same subsets are used for
    every model given the same ``seed``, so two curves are compared on equal footing. This
    is the experiment of Ng & Jordan (2002), Figure 1.

    Arguments:
        make_model: builds an unfitted classifier with ``fit(x, y)`` and ``predict(x)``, e.g.
            ``GaussianNaiveBayes`` or ``lambda: LogisticRegression(max_iter=1000)``. Torch
            modules get tensors; anything else (scikit-learn) gets NumPy arrays.
        x_train: ``[n, d]``; y_train: ``[n]`` integer labels 0..K-1.
        x_test: ``[m, d]``; y_test: ``[m]``.
        sizes: training-set sizes, each between K and n.
        repeats: random subsets per size.
        seed: seed of the subsets.

    Returns:
        a :class:`LearningCurve` with ``sizes``, ``errors [S, repeats]``, ``mean``, ``std``.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> nb = learning_curve(GaussianNaiveBayes, x_tr, y_tr, x_te, y_te, [20, 50, 200])
        >>> lr = learning_curve(lambda: LogisticRegression(max_iter=1000),
        ...                     x_tr, y_tr, x_te, y_te, [20, 50, 200])
    """
    if isinstance(make_model, nn.Module) or not callable(make_model):
        raise TypeError("make_model must be callable and build a fresh model on each call: pass "
                        "a class (GaussianNaiveBayes) or a lambda, not a model instance")
    x_train = as_float_tensor(x_train, "x_train", ndim=2)
    x_test = as_float_tensor(x_test, "x_test", ndim=2)
    check_same_width(x_test, x_train.shape[1], "x_test")
    y_train = _as_labels(y_train, len(x_train), x_train.device, "y_train")
    y_test = _as_labels(y_test, len(x_test), x_test.device, "y_test")
    repeats = check_int(repeats, "repeats")
    seed = check_seed(seed)
    y_np = _to_numpy(y_train)
    n_classes = int(y_np.max()) + 1
    if len(np.unique(y_np)) != n_classes:
        raise ValueError(f"y_train must hold every class 0..{n_classes - 1} at least once")
    if isinstance(sizes, (int, np.integer)) or len(sizes) == 0:
        raise ValueError("sizes must be a non-empty sequence of training-set sizes")
    sizes_arr = np.array([check_int(s, "each size") for s in sizes])
    if sizes_arr.min() < n_classes or sizes_arr.max() > len(y_np):
        raise ValueError(f"sizes must lie between the number of classes ({n_classes}) and the "
                         f"number of training examples ({len(y_np)}), got {sizes_arr.tolist()}")
    y_test_np = _to_numpy(y_test)
    x_train_np, x_test_np = _to_numpy(x_train), _to_numpy(x_test)
    rng = np.random.default_rng(seed)
    errors = np.empty((len(sizes_arr), repeats))
    for i, size in enumerate(sizes_arr):
        for r in range(repeats):
            idx = _stratified_subset(y_np, int(size), n_classes, rng)
            model = make_model()
            if isinstance(model, nn.Module):
                index = torch.as_tensor(idx, device=x_train.device)
                model.fit(x_train[index], y_train[index])
                pred = model.predict(x_test)
            else:
                model.fit(x_train_np[idx], y_np[idx])
                pred = model.predict(x_test_np)
            errors[i, r] = float(np.mean(_to_numpy(pred) != y_test_np))
    return LearningCurve(sizes=sizes_arr, errors=errors)
