r"""Variational inference: KL divergences, the evidence lower bound, and its gradients.

When a model has hidden variables :math:`z`, both the evidence
:math:`p(x) = \int p(x \mid z)\, p(z)\, dz` and the posterior :math:`p(z \mid x) = p(x, z) / p(x)`
are usually out of reach. Variational inference replaces the posterior by the closest member
:math:`q` of a tractable family, "closest" in the **reverse** Kullback-Leibler divergence
:math:`\mathrm{KL}(q \,\|\, p)`, because that one only needs expectations under :math:`q`. The
identity behind every method of chapter 7,

.. math:: \log p(x) = \underbrace{\mathbb E_q[\log p(x, z) - \log q(z)]}_{\text{ELBO}}
          + \mathrm{KL}\big(q(z) \,\|\, p(z \mid x)\big),

says that raising the ELBO lowers the KL, and that the ELBO is a lower bound on
:math:`\log p(x)`. For an unnormalised model :math:`\tilde p` with partition function
:math:`Z` the same identity reads :math:`J(q) = \mathbb E_q[\log q - \log \tilde p] =
\mathrm{KL}(q \,\|\, p) - \log Z`, so :math:`-J(q) \le \log Z`.

This module holds the pieces, in the order of the chapter:

1. **KL divergences**: :func:`discrete_kl` (two probability vectors), :func:`gaussian_kl` (two
   diagonal Gaussians, in closed form: the KL term of a VAE), :func:`gaussian_log_prob`.
2. **The reparameterisation trick** (:func:`reparameterize`) and the two estimators of
   :math:`\nabla_\theta \mathbb E_{q_\theta}[f(z)]`: the pathwise one
   (:func:`reparameterization_gradients`) and the score-function or REINFORCE one
   (:func:`score_function_gradients`), both returning one gradient per draw so that their
   variances can be compared.
3. **Mean-field VI on a small Boltzmann machine**, where :math:`\log Z` is computed exactly by
   enumeration (:func:`boltzmann_log_potential`, :func:`boltzmann_log_partition`) so the gap of
   the bound is visible: :func:`mean_field_objective` is :math:`J(q)` for a factorised
   :math:`q`, and :func:`mean_field` lowers it by coordinate descent.
4. **Forward and reverse KL fits** of one Gaussian to a 1-D density by numerical integration
   on a grid (:func:`kl_on_grid`, :func:`fit_gaussian_forward_kl`,
   :func:`fit_gaussian_reverse_kl`): the forward fit covers every mode, the reverse fit picks
   one (chapter 12).

References:
    S. Kullback and R. A. Leibler (1951). On information and sufficiency.
    M. I. Jordan, Z. Ghahramani, T. S. Jaakkola and L. K. Saul (1999). An introduction to
    variational methods for graphical models. Machine Learning 37 (the bound on log Z, eq. 14;
    mean-field for Boltzmann machines, section 4).
    D. P. Kingma and M. Welling (2014). Auto-encoding variational Bayes. ICLR (the
    reparameterisation trick, section 2.4; the Gaussian KL, appendix B).
    R. J. Williams (1992). Simple statistical gradient-following algorithms for connectionist
    reinforcement learning. Machine Learning 8 (the score-function estimator).
    C. M. Bishop (2006). Pattern Recognition and Machine Learning, section 10.1.2 (forward and
    reverse KL fits of a Gaussian).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from dgm_lab._validation import as_float_tensor, check_finite, check_int, check_positive
from dgm_lab.model import randn

__all__ = [
    "boltzmann_log_partition",
    "boltzmann_log_potential",
    "discrete_kl",
    "fit_gaussian_forward_kl",
    "fit_gaussian_reverse_kl",
    "gaussian_kl",
    "gaussian_log_prob",
    "kl_on_grid",
    "mean_field",
    "mean_field_objective",
    "reparameterization_gradients",
    "reparameterize",
    "score_function_gradients",
]

_LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------------------
# 1. KL divergences
# --------------------------------------------------------------------------------------

def discrete_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r"""Kullback-Leibler divergence between discrete distributions, summed over the last axis.

    .. math:: \mathrm{KL}(p \,\|\, q) = \sum_k p_k \log \frac{p_k}{q_k} \;\ge\; 0,

    with the conventions :math:`0 \log(0/q) = 0` and :math:`p \log(p/0) = +\infty`: a
    :math:`q` that gives zero probability to an outcome :math:`p` can produce is infinitely
    far from :math:`p`. It is zero only when :math:`p = q`, and not symmetric.

    Arguments:
        p: ``[..., K]`` probabilities (non-negative, each row sums to 1).
        q: ``[..., K]``, broadcastable against ``p``.

    Returns:
        ``[...]``: the divergence in nats (``inf`` where ``q`` misses an outcome of ``p``).

    References:
        S. Kullback and R. A. Leibler (1951). On information and sufficiency.

    Example:
        >>> discrete_kl(torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1]))
        tensor(0.5108)
    """
    p, q = _probabilities(p, "p"), _probabilities(q, "q")
    p, q = torch.broadcast_tensors(p, q.to(p))
    terms = torch.where(p > 0, p * (torch.log(p) - torch.log(q)), torch.zeros_like(p))
    return terms.sum(-1)


def _probabilities(p: object, name: str) -> torch.Tensor:
    t = as_float_tensor(p, name)
    if t.dim() == 0:
        raise ValueError(f"{name} must have shape [..., K] (probabilities on the last axis)")
    if (t < 0).any():
        raise ValueError(f"{name} must hold probabilities >= 0")
    sums = t.sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4 if t.dtype == torch.float32
                          else 1e-8):
        raise ValueError(f"every row of {name} must sum to 1 (got sums between "
                         f"{sums.min().item():.6g} and {sums.max().item():.6g})")
    return t


def _float_pair(a: object, a_name: str, b: object, b_name: str
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two float tensors of the same dtype and device that broadcast together."""
    a = as_float_tensor(a, a_name)
    b = as_float_tensor(b, b_name, dtype=a.dtype, device=a.device)
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(f"{a_name} {tuple(a.shape)} and {b_name} {tuple(b.shape)} do not "
                         "broadcast together") from None
    return a, b


def gaussian_kl(mu: torch.Tensor, log_var: torch.Tensor, prior_mu: torch.Tensor | None = None,
                prior_log_var: torch.Tensor | None = None) -> torch.Tensor:
    r"""KL divergence between diagonal Gaussians in closed form, summed over the last axis.

    For :math:`q = \mathcal N(\mu, \mathrm{diag}\,\sigma^2)` and
    :math:`p = \mathcal N(m, \mathrm{diag}\,s^2)` in :math:`L` dimensions,

    .. math:: \mathrm{KL}(q \,\|\, p) = \frac12 \sum_{j=1}^L \Big( \frac{\sigma_j^2
              + (\mu_j - m_j)^2}{s_j^2} - 1 - \log \frac{\sigma_j^2}{s_j^2} \Big) \;\ge\; 0,

    each term being :math:`t - 1 - \log t \ge 0` (with :math:`t = \sigma^2/s^2`) plus a
    square. With the default standard normal prior it is the VAE's KL term
    :math:`\frac12 \sum_j (\sigma_j^2 + \mu_j^2 - 1 - \log \sigma_j^2)`.

    Arguments:
        mu: ``[..., L]`` means of :math:`q`.
        log_var: ``[..., L]`` log-variances :math:`\log \sigma^2` of :math:`q`.
        prior_mu: ``[..., L]`` means of :math:`p` (default 0).
        prior_log_var: ``[..., L]`` log-variances of :math:`p` (default 0: unit variance).

    Returns:
        ``[...]``: the divergence in nats, for each leading index.

    References:
        D. P. Kingma and M. Welling (2014). Auto-encoding variational Bayes, appendix B.

    Example:
        >>> gaussian_kl(torch.zeros(3, 2), torch.zeros(3, 2))   # q = p
        tensor([0., 0., 0.])
    """
    mu, log_var = _float_pair(mu, "mu", log_var, "log_var")
    prior_mu = torch.zeros_like(mu) if prior_mu is None else _float_pair(
        mu, "mu", prior_mu, "prior_mu")[1]
    prior_log_var = torch.zeros_like(log_var) if prior_log_var is None else _float_pair(
        log_var, "log_var", prior_log_var, "prior_log_var")[1]
    ratio = log_var - prior_log_var
    return 0.5 * ((ratio.exp() + (mu - prior_mu).square() / prior_log_var.exp())
                  - 1.0 - ratio).sum(-1)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    r"""Log-density of a diagonal Gaussian, summed over the last axis.

    .. math:: \log \mathcal N(z; \mu, \mathrm{diag}\,\sigma^2) = -\frac12 \sum_j \Big(
              \frac{(z_j - \mu_j)^2}{\sigma_j^2} + \log \sigma_j^2 + \log 2\pi \Big).

    Arguments:
        z: ``[..., L]`` points; ``mu``, ``log_var``: ``[..., L]``, broadcastable against ``z``.

    Returns:
        ``[...]`` log-densities in nats.

    Example:
        >>> gaussian_log_prob(torch.zeros(1, 2), torch.zeros(2), torch.zeros(2))  # -log 2 pi
        tensor([-1.8379])
    """
    z, mu = _float_pair(z, "z", mu, "mu")
    log_var = _float_pair(z, "z", log_var, "log_var")[1]
    return -0.5 * ((z - mu).square() / log_var.exp() + log_var + _LOG_2PI).sum(-1)


# --------------------------------------------------------------------------------------
# 2. the reparameterisation trick and the score-function estimator
# --------------------------------------------------------------------------------------

def reparameterize(mu: torch.Tensor, log_var: torch.Tensor, eps: torch.Tensor | None = None, *,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    r"""A draw :math:`z \sim \mathcal N(\mu, \mathrm{diag}\,\sigma^2)` that gradients flow through.

    .. math:: z = \mu + \sigma \odot \epsilon, \qquad \sigma = e^{\frac12 \log \sigma^2},
              \qquad \epsilon \sim \mathcal N(0, I).

    The randomness sits in :math:`\epsilon`, which does not depend on the parameters, so
    :math:`z` is a differentiable function of :math:`(\mu, \log\sigma^2)`:
    :math:`\partial z / \partial \mu = 1` and :math:`\partial z / \partial \log \sigma^2 =
    \tfrac12 \sigma \epsilon`.

    Arguments:
        mu: ``[..., L]`` means.
        log_var: ``[..., L]`` log-variances (same shape as ``mu``).
        eps: standard normal noise whose trailing dimensions match ``mu`` (``[..., L]`` or
            ``[k, ..., L]`` for ``k`` draws each); drawn from ``generator`` when ``None``.
        generator: a ``torch.Generator`` for the noise (only when ``eps`` is ``None``).

    Returns:
        ``z`` with the shape of ``eps`` (of ``mu`` when drawn here).

    References:
        D. P. Kingma and M. Welling (2014). Auto-encoding variational Bayes, section 2.4.

    Example:
        >>> z = reparameterize(torch.zeros(5, 2), torch.zeros(5, 2))   # standard normal draws
    """
    mu, log_var = _float_pair(mu, "mu", log_var, "log_var")
    if mu.shape != log_var.shape:
        raise ValueError(f"mu {tuple(mu.shape)} and log_var {tuple(log_var.shape)} must have "
                         "the same shape")
    if eps is None:
        # drawn in float32 whatever the dtype, so float32 and float64 models draw alike
        eps = randn(mu.shape, generator, device=mu.device, dtype=torch.float32).to(mu.dtype)
    else:
        eps = as_float_tensor(eps, "eps", dtype=mu.dtype, device=mu.device)
        if eps.shape[eps.dim() - mu.dim():] != mu.shape:
            raise ValueError(f"eps {tuple(eps.shape)} must end with the shape of mu "
                             f"{tuple(mu.shape)}")
    return mu + torch.exp(0.5 * log_var) * eps


def _gradient_inputs(f: object, mu: object, log_std: object, eps: object
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not callable(f):
        raise TypeError(f"f must be a function of z [n, D] returning [n], got {type(f).__name__}")
    mu = as_float_tensor(mu, "mu", ndim=1)
    log_std = as_float_tensor(log_std, "log_std", ndim=1, dtype=mu.dtype, device=mu.device)
    eps = as_float_tensor(eps, "eps", ndim=2, dtype=mu.dtype, device=mu.device)
    if log_std.shape != mu.shape or eps.shape[1] != mu.shape[0]:
        raise ValueError(f"mu {tuple(mu.shape)}, log_std {tuple(log_std.shape)} and eps "
                         f"{tuple(eps.shape)} must describe the same D = {mu.shape[0]}")
    return mu, log_std, eps


def _values(f: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    out = f(z)
    if not isinstance(out, torch.Tensor) or out.shape != z.shape[:1]:
        raise ValueError(f"f must return one value per row of z, shape [{len(z)}], got "
                         f"{getattr(out, 'shape', type(out).__name__)}")
    return out


def reparameterization_gradients(f: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor,
                                 log_std: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    r"""Per-draw pathwise estimates of :math:`\nabla_{\mu, \log\sigma} \mathbb E_q[f(z)]`.

    With :math:`z = \mu + \sigma \epsilon` the expectation is over :math:`\epsilon`, which does
    not depend on the parameters, so the gradient moves inside:
    :math:`\nabla_\mu f(z) = f'(z)` and :math:`\nabla_{\log \sigma} f(z) = f'(z)\, \sigma
    \epsilon`. It needs :math:`f` differentiable, and usually has a far smaller variance than
    the score-function estimator, because it uses the slope of :math:`f`.

    Arguments:
        f: a differentiable function mapping ``z`` ``[n, D]`` to ``[n]``, one value per row.
        mu: ``[D]``; log_std: ``[D]``, :math:`\log \sigma`.
        eps: ``[n, D]`` standard normal draws (one estimate per row).

    Returns:
        ``[n, 2D]``: for each draw, the gradient with respect to ``mu`` then ``log_std``. Their
        mean estimates the gradient; their variance is the estimator's variance per draw.

    References:
        D. P. Kingma and M. Welling (2014). Auto-encoding variational Bayes, section 2.4.

    Example:
        >>> g = reparameterization_gradients(lambda z: (z**2).sum(1), torch.zeros(1),
        ...                                  torch.zeros(1), torch.randn(1000, 1))
        >>> g.mean(0)   # about [0, 2]: d/dmu E[z^2] = 2 mu, d/dlog sigma = 2 sigma^2
    """
    mu, log_std, eps = _gradient_inputs(f, mu, log_std, eps)
    with torch.enable_grad():
        z = (mu + log_std.exp() * eps).detach().requires_grad_(True)
        (slope,) = torch.autograd.grad(_values(f, z).sum(), z)  # row i: f'(z_i)
    return torch.cat([slope, slope * log_std.exp() * eps], dim=1)


def score_function_gradients(f: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor,
                             log_std: torch.Tensor, eps: torch.Tensor, *,
                             baseline: bool = False) -> torch.Tensor:
    r"""Per-draw score-function (REINFORCE) estimates of :math:`\nabla \mathbb E_q[f(z)]`.

    From :math:`\nabla_\theta \mathbb E_q[f] = \mathbb E_q[f(z)\, \nabla_\theta \log q(z)]`
    (the log-derivative trick), with, for :math:`q = \mathcal N(\mu, \mathrm{diag}\,\sigma^2)`
    and :math:`z = \mu + \sigma\epsilon`,

    .. math:: \nabla_\mu \log q(z) = \epsilon / \sigma, \qquad
              \nabla_{\log\sigma} \log q(z) = \epsilon^2 - 1 .

    It needs only values of :math:`f` (no slope: :math:`f` may be discrete or a black box), but
    its variance grows with the size of :math:`f`. A *baseline* :math:`b` subtracted from
    :math:`f` keeps the mean (because :math:`\mathbb E_q[\nabla \log q] = 0`) and can cut the
    variance; ``baseline=True`` uses, for draw :math:`i`, the mean of :math:`f` over the other
    draws (leave-one-out, so the estimate stays unbiased).

    Arguments:
        f: a function mapping ``z`` ``[n, D]`` to ``[n]`` (need not be differentiable).
        mu: ``[D]``; log_std: ``[D]``.
        eps: ``[n, D]`` standard normal draws (``n >= 2`` with a baseline).
        baseline: subtract the leave-one-out mean of ``f``.

    Returns:
        ``[n, 2D]``: per-draw gradient estimates with respect to ``mu`` then ``log_std``.

    References:
        R. J. Williams (1992). Simple statistical gradient-following algorithms for
        connectionist reinforcement learning, eq. 8 (REINFORCE, with a baseline).

    Example:
        >>> g = score_function_gradients(lambda z: (z**2).sum(1), torch.zeros(1),
        ...                              torch.zeros(1), torch.randn(1000, 1))
    """
    mu, log_std, eps = _gradient_inputs(f, mu, log_std, eps)
    if not isinstance(baseline, bool):
        raise TypeError(f"baseline must be True or False, got {baseline!r}")
    with torch.no_grad():
        values = _values(f, mu + log_std.exp() * eps)
    if baseline:
        n = len(values)
        if n < 2:
            raise ValueError("a leave-one-out baseline needs at least 2 draws in eps")
        values = values - (values.sum() - values) / (n - 1)
    score = torch.cat([eps / log_std.exp(), eps.square() - 1], dim=1)
    return values[:, None] * score


# --------------------------------------------------------------------------------------
# 3. mean-field VI on a small Boltzmann machine (units in {-1, +1})
# --------------------------------------------------------------------------------------

_MAX_ENUMERATED_UNITS = 20


def _boltzmann_parameters(weights: object, bias: object) -> tuple[torch.Tensor, torch.Tensor]:
    w = as_float_tensor(weights, "weights", ndim=2)
    b = as_float_tensor(bias, "bias", ndim=1, dtype=w.dtype, device=w.device)
    d = len(b)
    if w.shape != (d, d):
        raise ValueError(f"weights must have shape [{d}, {d}] to match bias, got "
                         f"{tuple(w.shape)}")
    if not torch.allclose(w, w.T) or (w.diagonal() != 0).any():
        raise ValueError("weights must be symmetric with a zero diagonal (w_ij = w_ji couples "
                         "units i and j; a unit is not coupled to itself)")
    return w, b


def boltzmann_log_potential(x: torch.Tensor, weights: torch.Tensor,
                            bias: torch.Tensor) -> torch.Tensor:
    r"""Unnormalised log-probability :math:`\log \tilde p(x) = -E(x)` of a Boltzmann machine.

    For units :math:`x \in \{-1, +1\}^d`, symmetric couplings :math:`W` (zero diagonal) and
    biases :math:`b`:

    .. math:: \log \tilde p(x) = \sum_{i < j} w_{ij} x_i x_j + \sum_i b_i x_i
              = \tfrac12 x^\top W x + b^\top x, \qquad p(x) = \tilde p(x) / Z .

    Arguments:
        x: ``[n, d]`` states with entries -1 or +1.
        weights: ``[d, d]`` symmetric, zero diagonal; bias: ``[d]``.

    Returns:
        ``[n]``: :math:`\log \tilde p(x)`.

    References:
        D. H. Ackley, G. E. Hinton and T. J. Sejnowski (1985). A learning algorithm for
        Boltzmann machines. Cognitive Science 9.

    Example:
        >>> w = torch.tensor([[0., -1, -1], [-1, 0, 2], [-1, 2, 0]])
        >>> boltzmann_log_potential(torch.tensor([[-1., 1, 1]]), w, torch.tensor([0., 1, 0]))
        tensor([5.])
    """
    w, b = _boltzmann_parameters(weights, bias)
    x = as_float_tensor(x, "x", ndim=2, dtype=w.dtype, device=w.device)
    if x.shape[1] != len(b):
        raise ValueError(f"x has {x.shape[1]} units but the machine has {len(b)}")
    if not (x.abs() == 1).all():
        raise ValueError("x must hold units -1 or +1")
    return 0.5 * ((x @ w) * x).sum(1) + x @ b


def _all_states(d: int, like: torch.Tensor) -> torch.Tensor:
    """Every state of ``d`` units in {-1, +1}, ``[2^d, d]``."""
    bits = (torch.arange(2**d, device=like.device)[:, None] >> torch.arange(d - 1, -1, -1,
            device=like.device)) & 1
    return (2 * bits - 1).to(like.dtype)


def boltzmann_log_partition(weights: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    r"""Exact :math:`\log Z = \log \sum_x \tilde p(x)` by enumerating the :math:`2^d` states.

    Feasible up to :math:`d = 20` units (a million states): enough for the demonstrations of
    the book, and the reason larger machines need bounds and samplers.

    Arguments:
        weights: ``[d, d]`` symmetric, zero diagonal; bias: ``[d]``.

    Returns:
        A scalar tensor, :math:`\log Z` in nats.

    Example:
        >>> w = torch.tensor([[0., -1, -1], [-1, 0, 2], [-1, 2, 0]])
        >>> boltzmann_log_partition(w, torch.tensor([0., 1, 0])).exp()   # the 3-unit example
        tensor(172.4...)
    """
    w, b = _boltzmann_parameters(weights, bias)
    if len(b) > _MAX_ENUMERATED_UNITS:
        raise ValueError(f"enumerating 2^{len(b)} states is too much: exact log Z is limited "
                         f"to {_MAX_ENUMERATED_UNITS} units")
    return torch.logsumexp(boltzmann_log_potential(_all_states(len(b), w), w, b), 0)


def _bernoulli_entropy(m: torch.Tensor) -> torch.Tensor:
    """Entropy of a unit in {-1, +1} with mean m (each of the d units), with 0 log 0 = 0."""
    entropy = torch.zeros_like(m)
    for p in ((1 + m) / 2, (1 - m) / 2):
        entropy = entropy - torch.where(p > 0, p * torch.log(p.clamp_min(1e-300)), 0.0)
    return entropy


def mean_field_objective(means: torch.Tensor, weights: torch.Tensor,
                         bias: torch.Tensor) -> torch.Tensor:
    r"""The variational objective :math:`J(q) = \mathrm{KL}(q \,\|\, p) - \log Z` of a mean-field q.

    For a factorised :math:`q(x) = \prod_i q_i(x_i)` with means :math:`m_i = \mathbb E_q[x_i]
    \in [-1, 1]`, the units are independent under :math:`q` and :math:`W` has a zero diagonal,
    so :math:`\mathbb E_q[x^\top W x] = m^\top W m` and

    .. math:: J(q) = \mathbb E_q[\log q(x) - \log \tilde p(x)]
              = -\sum_i H(q_i) - \tfrac12 m^\top W m - b^\top m
              = \mathrm{KL}(q \,\|\, p) - \log Z \;\ge\; -\log Z .

    :math:`-J(q)` is the ELBO, a lower bound on :math:`\log Z`, with gap
    :math:`\mathrm{KL}(q \,\|\, p)`.

    Arguments:
        means: ``[d]`` (or ``[n, d]`` for several :math:`q` at once), entries in [-1, 1].
        weights: ``[d, d]`` symmetric, zero diagonal; bias: ``[d]``.

    Returns:
        ``[]`` (or ``[n]``): :math:`J(q)` in nats.

    References:
        M. I. Jordan et al. (1999). An introduction to variational methods for graphical
        models, eq. 14 and section 4 (mean-field for Boltzmann machines).

    Example:
        >>> w = torch.tensor([[0., -1, -1], [-1, 0, 2], [-1, 2, 0]])
        >>> -mean_field_objective(torch.zeros(3), w, torch.tensor([0., 1, 0]))  # < log Z
        tensor(2.0794)
    """
    w, b = _boltzmann_parameters(weights, bias)
    m = as_float_tensor(means, "means", dtype=w.dtype, device=w.device)
    if m.shape[-1:] != b.shape or m.dim() > 2:
        raise ValueError(f"means must have shape [{len(b)}] or [n, {len(b)}], got "
                         f"{tuple(m.shape)}")
    if (m.abs() > 1).any():
        raise ValueError("means must lie in [-1, 1] (the mean of a unit in {-1, +1})")
    return -_bernoulli_entropy(m).sum(-1) - 0.5 * ((m @ w) * m).sum(-1) - m @ b


def mean_field(weights: torch.Tensor, bias: torch.Tensor, *, init: torch.Tensor | None = None,
               max_sweeps: int = 100, tol: float = 1e-10) -> tuple[torch.Tensor, list[float]]:
    r"""Mean-field VI for a Boltzmann machine: coordinate descent on :math:`J(q)`.

    Setting :math:`\partial J / \partial m_i = 0` with the other means fixed gives the update

    .. math:: m_i \leftarrow \tanh\Big(b_i + \sum_{j \ne i} w_{ij} m_j\Big),

    the exact minimiser of :math:`J` along coordinate :math:`i`. Updating the units one after
    the other (not all at once, which can oscillate) therefore never increases :math:`J`; a
    *sweep* updates every unit once, and the loop stops when a sweep lowers :math:`J` by
    less than ``tol``. The fixed point is a local minimum: different ``init`` can end in
    different ones.

    Arguments:
        weights: ``[d, d]`` symmetric, zero diagonal; bias: ``[d]``.
        init: ``[d]`` starting means in [-1, 1] (default 0, the uniform q).
        max_sweeps: at most this many sweeps.
        tol: stop when a sweep lowers :math:`J` by less than this (nats).

    Returns:
        ``(means [d], history)``: the final means, and :math:`J` before the first sweep and
        after each sweep (non-increasing).

    References:
        M. I. Jordan et al. (1999). An introduction to variational methods for graphical
        models, section 4.1 (the mean-field equations of the Boltzmann machine).

    Example:
        >>> w = torch.tensor([[0., -1, -1], [-1, 0, 2], [-1, 2, 0]])
        >>> m, history = mean_field(w, torch.tensor([0., 1, 0]))
    """
    w, b = _boltzmann_parameters(weights, bias)
    max_sweeps = check_int(max_sweeps, "max_sweeps")
    tol = check_positive(tol, "tol")
    m = torch.zeros_like(b) if init is None else as_float_tensor(
        init, "init", ndim=1, dtype=w.dtype, device=w.device).clone()
    if m.shape != b.shape or (m.abs() > 1).any():
        raise ValueError(f"init must have shape [{len(b)}] with entries in [-1, 1]")
    history = [mean_field_objective(m, w, b).item()]
    for _ in range(max_sweeps):
        for i in range(len(b)):
            m[i] = torch.tanh(b[i] + w[i] @ m)  # w_ii = 0: unit i does not see itself
        history.append(mean_field_objective(m, w, b).item())
        if history[-2] - history[-1] < tol:
            break
    return m, history


# --------------------------------------------------------------------------------------
# 4. forward and reverse KL fits of one Gaussian, by numerical integration (chapter 12)
# --------------------------------------------------------------------------------------

def _log_density(log_p: object, name: str, like: torch.Tensor) -> torch.Tensor:
    """``log_p`` as a float tensor like ``like``: finite values, or -inf where the density is 0."""
    if isinstance(log_p, torch.Tensor) and log_p.is_floating_point():
        zero = log_p == -math.inf
        if log_p.isnan().any() or (log_p == math.inf).any():
            raise ValueError(f"{name} must hold log-densities: finite values or -inf "
                             "(density 0)")
        log_p = log_p.masked_fill(zero, 0.0)  # checked below; the -inf come back after
    else:
        zero = None
    t = as_float_tensor(log_p, name, ndim=1, dtype=like.dtype, device=like.device)
    return t if zero is None else t.masked_fill(zero.to(t.device), -math.inf)


def _grid_and_log_density(x: object, log_p: object) -> tuple[torch.Tensor, torch.Tensor]:
    x = as_float_tensor(x, "x", ndim=1)
    log_p = _log_density(log_p, "log_p", x)
    if len(x) < 3 or log_p.shape != x.shape:
        raise ValueError(f"x and log_p must be grids of the same length >= 3, got "
                         f"{tuple(x.shape)} and {tuple(log_p.shape)}")
    if not (x.diff() > 0).all():
        raise ValueError("x must be strictly increasing (a grid of points)")
    return x, log_p


def kl_on_grid(x: torch.Tensor, log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{KL}(p \,\|\, q) = \int p(x) \log \frac{p(x)}{q(x)}\, dx`, trapezoid rule.

    Both densities are given by their logs on the same increasing 1-D grid, which must cover
    the mass of :math:`p`. Points where :math:`p = 0` (``log_p = -inf``) add nothing; a point
    where :math:`p > 0` but :math:`q = 0` makes the divergence infinite. The error of the
    trapezoid rule shrinks like the square of the grid spacing.

    Arguments:
        x: ``[G]`` increasing grid; log_p, log_q: ``[G]`` log-densities on it.

    Returns:
        A scalar tensor, the divergence in nats.

    Example:
        >>> x = torch.linspace(-10, 10, 2001)
        >>> normal = torch.distributions.Normal
        >>> kl_on_grid(x, normal(0., 1.).log_prob(x), normal(1., 1.).log_prob(x))  # 1/2
        tensor(0.5000)
    """
    x, log_p = _grid_and_log_density(x, log_p)
    log_q = _log_density(log_q, "log_q", x)
    if log_q.shape != x.shape:
        raise ValueError(f"log_q must have the grid's shape {tuple(x.shape)}, got "
                         f"{tuple(log_q.shape)}")
    p = log_p.exp()
    integrand = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))
    return torch.trapezoid(integrand, x)


def fit_gaussian_forward_kl(x: torch.Tensor, log_p: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The Gaussian :math:`q` minimising the forward :math:`\mathrm{KL}(p \,\|\, q)`: moments.

    :math:`\mathrm{KL}(p \,\|\, q) = -H(p) - \mathbb E_p[\log q]`; for a Gaussian :math:`q`
    the second term is minimised by the mean and variance of :math:`p`. The fit must put
    mass wherever :math:`p` has some (a :math:`q` near 0 there costs :math:`p \log(p/q) \to
    \infty`): it **covers** every mode, and for a bimodal :math:`p` sits between them, where
    :math:`p` may be small. That is maximum likelihood with infinitely many data.

    Arguments:
        x: ``[G]`` increasing grid covering the mass of :math:`p`; log_p: ``[G]`` its
            log-density (normalised or not: it is normalised on the grid).

    Returns:
        ``(mean, std)``, scalar tensors.

    References:
        C. M. Bishop (2006). Pattern Recognition and Machine Learning, section 10.1.2.

    Example:
        >>> x = torch.linspace(-10, 10, 4001)
        >>> mean, std = fit_gaussian_forward_kl(x, torch.distributions.Normal(1., 2.).log_prob(x))
    """
    x, log_p = _grid_and_log_density(x, log_p)
    p = log_p.exp()
    mass = torch.trapezoid(p, x)
    if not mass > 0:
        raise ValueError("p has no mass on the grid")
    mean = torch.trapezoid(p * x, x) / mass
    var = torch.trapezoid(p * (x - mean).square(), x) / mass
    return mean, var.sqrt()


def fit_gaussian_reverse_kl(x: torch.Tensor, log_p: torch.Tensor, *, starts: int = 5,
                            steps: int = 30) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The Gaussian :math:`q` minimising the reverse :math:`\mathrm{KL}(q \,\|\, p)` on a grid.

    :math:`\mathrm{KL}(q \,\|\, p) = -H(q) - \mathbb E_q[\log p]` punishes :math:`q` for putting
    mass where :math:`p` is small, and not for missing part of :math:`p`: the fit **seeks a
    mode** and, for well separated modes, locks onto one of them. This is the divergence
    variational inference minimises. It has a local minimum per mode, so the optimisation
    (L-BFGS on :math:`(\mu, \log\sigma)`, the integral by the trapezoid rule on the grid) runs
    from ``starts`` means spread over the grid and keeps the lowest divergence. The mean is
    kept inside the grid and :math:`q` is normalised on it, so a :math:`q` that slides off
    the grid cannot fake a small divergence.

    Arguments:
        x: ``[G]`` increasing grid, wide and fine enough for :math:`q` (its standard deviation
            is kept between two grid spacings and a quarter of the grid's width);
        log_p: ``[G]`` log-density of :math:`p` (normalised on the grid).
        starts: number of starting means (>= 1), evenly spread over the middle of the grid.
        steps: L-BFGS iterations per start.

    Returns:
        ``(mean, std, kl)``: the best fit and its divergence, scalar tensors.

    References:
        C. M. Bishop (2006). Pattern Recognition and Machine Learning, section 10.1.2 and
        figure 10.3.

    Example:
        >>> x = torch.linspace(-8, 8, 3201)
        >>> mix = torch.logsumexp(torch.stack([torch.distributions.Normal(-3., 1.).log_prob(x),
        ...                                    torch.distributions.Normal(3., 1.).log_prob(x)]),
        ...                       0) - math.log(2)
        >>> mean, std, kl = fit_gaussian_reverse_kl(x, mix)   # mean near -3 or +3, std near 1
    """
    x, log_p = _grid_and_log_density(x, log_p)
    starts = check_int(starts, "starts")
    steps = check_int(steps, "steps")
    log_p = log_p - torch.log(torch.trapezoid(log_p.exp(), x))
    # q outside the support of p would make the divergence infinite: clamp log p from below
    # (far below anything that matters) so that the optimiser still sees a slope there
    log_p = torch.maximum(log_p, log_p[torch.isfinite(log_p)].min() - 50.0)
    centre, half_width = (x[0] + x[-1]) / 2, (x[-1] - x[0]) / 2
    log_std_min = torch.log(4 * half_width / (len(x) - 1))  # two grid spacings
    log_std_max = torch.log(half_width / 2)                 # a quarter of the grid

    def gaussian(u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unconstrained (u, v) to a mean inside the grid and a std within the bounds."""
        return (centre + half_width * torch.tanh(u),
                log_std_min + (log_std_max - log_std_min) * torch.sigmoid(v))

    def divergence(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        mean, log_std = gaussian(u, v)
        log_q = -0.5 * ((x - mean) / log_std.exp()).square() - log_std
        log_q = log_q - torch.log(torch.trapezoid(log_q.exp(), x))  # q normalised on the grid
        return torch.trapezoid(log_q.exp() * (log_q - log_p), x)

    best = None
    for c in torch.linspace(-0.8, 0.8, starts, dtype=x.dtype) if starts > 1 else [0.0]:
        u = torch.atanh(torch.as_tensor(c, dtype=x.dtype)).requires_grad_(True)
        v = torch.tensor(-2.0, dtype=x.dtype, requires_grad=True)  # a narrow start
        opt = torch.optim.LBFGS([u, v], max_iter=steps, tolerance_grad=1e-10,
                                tolerance_change=1e-14, line_search_fn="strong_wolfe")

        def closure(opt: torch.optim.LBFGS = opt, u: torch.Tensor = u,
                    v: torch.Tensor = v) -> torch.Tensor:  # bound now: this start's optimiser
            opt.zero_grad()
            value = divergence(u, v)
            value.backward()
            return value

        with torch.enable_grad():
            opt.step(closure)
        with torch.no_grad():
            kl = divergence(u, v)
            if best is None or kl < best[2]:
                mean, log_std = gaussian(u, v)
                best = (mean, log_std.exp(), kl)
    check_finite(best[2], "the reverse KL")
    return best
