r"""Annealed importance sampling (AIS) for the partition function of an RBM, and its reverse.

The log-likelihood of an RBM, :math:`-F(v) - \log Z`, needs :math:`\log Z`, a sum over
:math:`2^{V}` or :math:`2^{H}` states. AIS (Neal, 2001) estimates it by moving samples from a
model whose :math:`Z_0` is known to the RBM through a sequence of intermediate distributions,
and reweighting. Salakhutdinov & Murray (2008) anneal between a *base-rate* model
:math:`p_0(v) = \prod_i \sigma(b^A_i)^{v_i} (1 - \sigma(b^A_i))^{1 - v_i}` (the pixel
marginals of the data) and the RBM; with the hidden units summed out, the intermediate
unnormalised marginals at inverse temperatures :math:`0 = \beta_0 < \dots < \beta_K = 1` are

.. math::

    f_k(v) = e^{(1 - \beta_k) b_A^\top v + \beta_k b^\top v}
      \prod_{j=1}^H \big(1 + e^{\beta_k (c_j + v^\top W_{:j})}\big),

each the marginal of an RBM with weights :math:`\beta_k W`, so block Gibbs sampling
(:math:`h \sim \sigma(\beta_k(c + W^\top v))`, :math:`v \sim \sigma((1 - \beta_k) b_A +
\beta_k (b + W h))`) leaves it invariant. One AIS run draws :math:`v_0 \sim p_0` and, for
:math:`k = 1 \dots K`, adds :math:`\log f_k(v_{k-1}) - \log f_{k-1}(v_{k-1})` to its log
weight, then moves :math:`v_{k-1} \to v_k` with the transition at :math:`\beta_k`. The mean
weight is an **unbiased** estimate of :math:`Z_K / Z_0`, whatever :math:`K`; with few
intermediate distributions its variance is large and, by Jensen's inequality, the log of the
mean then tends to *underestimate* :math:`\log Z`, which *overestimates* the log-likelihood.

The reverse check, RAISE (Burda, Grosse & Salakhutdinov, 2015), runs the same chain
backwards from a test point :math:`v`: its mean weight is an unbiased estimate of
:math:`p_\text{ann}(v)`, the marginal of the annealing process viewed as a generative model
(:math:`v_0 \sim p_0`, then the transitions at :math:`\beta_1, \dots, \beta_K`), so its log is
a stochastic *lower* bound on that model's log-likelihood: a conservative figure, which
approaches the RBM's log-likelihood as the annealing gets slower.

References:
    R. M. Neal (2001). Annealed importance sampling. Statistics and Computing 11, 125-139.
    R. Salakhutdinov and I. Murray (2008). On the quantitative analysis of deep belief
    networks. ICML (AIS for RBMs, the base-rate model, section 4).
    Y. Burda, R. Grosse and R. Salakhutdinov (2015). Accurate and conservative estimates of
    MRF log-likelihood using reverse annealing. AISTATS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dgm_lab._validation import as_float_tensor, check_binary, check_int, check_same_width
from dgm_lab.energy._common import bernoulli, softplus
from dgm_lab.energy.rbm import RBM

__all__ = ["AISResult", "ais_log_partition", "annealing_schedule", "base_rate_bias",
           "raise_log_prob"]


@dataclass(frozen=True)
class AISResult:
    """The outcome of one AIS run of ``n_chains`` chains.

    Attributes:
        log_weights: ``[n_chains]`` log importance weights, :math:`\\log(\\hat Z_k / Z_0)` of
            each chain.
        log_z_base: :math:`\\log Z_0` of the base model.
    """

    log_weights: torch.Tensor
    log_z_base: float

    @property
    def log_z(self) -> float:
        """:math:`\\log \\hat Z = \\log Z_0 + \\log \\frac1M \\sum_m w_m`."""
        m = len(self.log_weights)
        return self.log_z_base + (torch.logsumexp(self.log_weights, 0).item() - math.log(m))

    @property
    def log_z_std(self) -> float:
        """Standard error of :math:`\\log \\hat Z` by the delta method,
        :math:`\\operatorname{sd}(w) / (\\sqrt M\\, \\bar w)`, from the spread of the weights.
        Small values do not prove convergence: every chain may miss the same mode."""
        w = torch.exp(self.log_weights - self.log_weights.max())
        if len(w) < 2:
            return math.inf
        return (w.std() / (w.mean() * math.sqrt(len(w)))).item()

    @property
    def log_z_bounds(self) -> tuple[float, float]:
        """:math:`\\log(\\hat Z \\mp 3 \\hat\\sigma)`, with :math:`\\hat\\sigma` the standard
        error of :math:`\\hat Z` (Salakhutdinov & Murray, 2008, table 1); the lower end is
        :math:`-\\infty` when :math:`3\\hat\\sigma > \\hat Z`."""
        ratio = 3 * self.log_z_std  # 3 sigma / Z-hat
        low = self.log_z + math.log(1 - ratio) if ratio < 1 else -math.inf
        return low, self.log_z + math.log(1 + ratio)

    @property
    def effective_sample_size(self) -> float:
        """:math:`(\\sum w)^2 / \\sum w^2`: between 1 (one chain dominates) and ``n_chains``."""
        lw = self.log_weights
        return math.exp(2 * torch.logsumexp(lw, 0).item() - torch.logsumexp(2 * lw, 0).item())


def base_rate_bias(x: torch.Tensor, *, pseudo_count: float = 1.0) -> torch.Tensor:
    r"""Visible biases :math:`b^A_i = \log\frac{n_i + \alpha}{n - n_i + \alpha}` of the base-rate
    model: independent pixels with the data's (smoothed) frequencies :math:`n_i / n`.

    Arguments:
        x: ``[n, V]`` binary training data.
        pseudo_count: :math:`\alpha > 0`, added to both counts so that no bias is infinite.

    Returns:
        ``[V]``.

    References:
        Salakhutdinov & Murray (2008), section 4.2.
    """
    x = check_binary(as_float_tensor(x, "x", ndim=2), "x")
    if not (isinstance(pseudo_count, (int, float)) and pseudo_count > 0):
        raise ValueError(f"pseudo_count must be a number > 0, got {pseudo_count!r}")
    on = x.sum(0)
    return torch.log(on + pseudo_count) - torch.log(len(x) - on + pseudo_count)


def annealing_schedule(n_betas: int, *, dtype: torch.dtype = torch.float64,
                       device: torch.device | str | None = None) -> torch.Tensor:
    r"""Inverse temperatures :math:`0 = \beta_0 < \beta_1 < \dots < \beta_K = 1`, :math:`K` =
    ``n_betas``, denser near 1 where the distributions change fastest.

    The proportions of Salakhutdinov & Murray (2008, section 4.2), who used 500 steps of
    :math:`10^{-3}` up to 0.5, 4,000 of :math:`10^{-4}` up to 0.9 and 10,000 of
    :math:`10^{-5}` up to 1: the same three segments, with ``n_betas`` steps shared
    :math:`1 : 8 : 20`.

    Returns:
        ``[n_betas + 1]``.
    """
    n = check_int(n_betas, "n_betas", minimum=3)
    first = max(1, round(n / 29))
    second = max(1, round(8 * n / 29))
    third = n - first - second
    parts = [torch.linspace(0.0, 0.5, first + 1, dtype=dtype, device=device)[:-1],
             torch.linspace(0.5, 0.9, second + 1, dtype=dtype, device=device)[:-1],
             torch.linspace(0.9, 1.0, third + 1, dtype=dtype, device=device)]
    return torch.cat(parts)


def _check_betas(betas: int | torch.Tensor, rbm: RBM) -> torch.Tensor:
    if isinstance(betas, int) and not isinstance(betas, bool):
        return annealing_schedule(betas, dtype=rbm.dtype, device=rbm.device)
    b = as_float_tensor(betas, "betas", ndim=1, dtype=rbm.dtype, device=rbm.device)
    if len(b) < 2 or b[0] != 0 or b[-1] != 1 or not (b[1:] > b[:-1]).all():
        raise ValueError("betas must increase strictly from 0 to 1 (an integer gives "
                         "annealing_schedule(betas))")
    return b


def _check_base(base_bias: torch.Tensor | None, rbm: RBM) -> torch.Tensor:
    if base_bias is None:
        return torch.zeros(rbm.n_visible, dtype=rbm.dtype, device=rbm.device)
    b = as_float_tensor(base_bias, "base_bias", ndim=1, dtype=rbm.dtype, device=rbm.device)
    if len(b) != rbm.n_visible:
        raise ValueError(f"base_bias has {len(b)} entries but the RBM has {rbm.n_visible} "
                         "visible units")
    return b


class _Annealing:
    """The intermediate distributions between the base-rate model and an RBM."""

    def __init__(self, rbm: RBM, base_bias: torch.Tensor) -> None:
        self.w, self.b, self.c = rbm.weight.detach(), rbm.visible_bias.detach(), \
            rbm.hidden_bias.detach()
        self.base = base_bias
        # log Z_0: independent pixels, and every hidden unit free (softplus(0) = log 2)
        self.log_z_base = (softplus(base_bias).sum() + len(self.c) * math.log(2)).item()

    def log_f(self, v: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """:math:`\\log f_\\beta(v)` ``[n]``."""
        visible = v @ ((1 - beta) * self.base + beta * self.b)
        return visible + softplus(beta * (v @ self.w + self.c)).sum(1)

    def step(self, v: torch.Tensor, beta: torch.Tensor,
             generator: torch.Generator | None) -> torch.Tensor:
        """One block Gibbs step that leaves :math:`f_\\beta` invariant."""
        h = bernoulli(torch.sigmoid(beta * (v @ self.w + self.c)), generator)
        logits = (1 - beta) * self.base + beta * (h @ self.w.T + self.b)
        return bernoulli(torch.sigmoid(logits), generator)


def ais_log_partition(rbm: RBM, *, n_chains: int = 100, betas: int | torch.Tensor = 1000,
                      base_bias: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> AISResult:
    r"""Estimate :math:`\log Z` of ``rbm`` by annealed importance sampling.

    Arguments:
        rbm: a fitted :class:`~dgm_lab.energy.RBM`.
        n_chains: independent AIS chains :math:`M`.
        betas: the inverse temperatures (1-D, from 0 to 1), or their number :math:`K` for
            :func:`annealing_schedule`.
        base_bias: visible biases of the base-rate model (:func:`base_rate_bias` of the
            training data is a good choice); default zeros, the uniform distribution.
        generator: for repeatable draws.

    Returns:
        An :class:`AISResult`: ``.log_z``, ``.log_z_std``, ``.log_z_bounds``, the weights.
        Run it several times with different generators to see the spread over runs.

    References:
        Neal (2001); Salakhutdinov & Murray (2008), section 4.

    Example:
        >>> result = ais_log_partition(rbm, n_chains=100, betas=1000,
        ...                            base_bias=base_rate_bias(x_train))
        >>> test_ll = (-rbm.free_energy(x_test) - result.log_z).mean()
    """
    rbm._require_fitted()
    n_chains = check_int(n_chains, "n_chains")
    betas = _check_betas(betas, rbm)
    anneal = _Annealing(rbm, _check_base(base_bias, rbm))
    with torch.no_grad():
        v = bernoulli(torch.sigmoid(anneal.base).expand(n_chains, -1), generator)
        log_w = torch.zeros(n_chains, dtype=rbm.dtype, device=rbm.device)
        for k in range(1, len(betas)):
            log_w += anneal.log_f(v, betas[k]) - anneal.log_f(v, betas[k - 1])
            if k < len(betas) - 1:
                v = anneal.step(v, betas[k], generator)
    return AISResult(log_w, anneal.log_z_base)


def raise_log_prob(rbm: RBM, x: torch.Tensor, *, n_chains: int = 10,
                   betas: int | torch.Tensor = 1000, base_bias: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Reverse AIS (RAISE): a conservative estimate of :math:`\log p(x)` for each row.

    From each test point, ``n_chains`` chains run the annealing backwards (transitions at
    :math:`\beta_K, \dots, \beta_1`) down to the base-rate model; the weight

    .. math::

        w = \frac{f_K(v_K)}{Z_0} \prod_{k=0}^{K-1} \frac{f_k(v_k)}{f_{k+1}(v_k)},
        \qquad v_K = x,\; v_{k-1} \sim T_k(\cdot \mid v_k),

    has expectation :math:`p_\text{ann}(x)`, the probability of :math:`x` under the forward
    annealing process. The log of the mean weight is a stochastic lower bound on
    :math:`\log p_\text{ann}(x)`, which approaches :math:`\log p(x)` as ``betas`` grows.

    Arguments:
        rbm: a fitted RBM.
        x: ``[n, V]`` binary test points.
        n_chains: chains per test point.
        betas, base_bias, generator: as :func:`ais_log_partition`.

    Returns:
        ``[n]`` log-likelihood estimates in nats.

    References:
        Burda, Grosse & Salakhutdinov (2015), algorithm 1.
    """
    rbm._require_fitted()
    x = check_binary(as_float_tensor(x, "x", ndim=2, dtype=rbm.dtype, device=rbm.device), "x")
    check_same_width(x, rbm.n_visible, "x", expected_by="the RBM has visible units:")
    n_chains = check_int(n_chains, "n_chains")
    betas = _check_betas(betas, rbm)
    anneal = _Annealing(rbm, _check_base(base_bias, rbm))
    with torch.no_grad():
        v = x.repeat_interleave(n_chains, dim=0)
        log_w = anneal.log_f(v, betas[-1])
        for k in range(len(betas) - 1, 0, -1):
            v = anneal.step(v, betas[k], generator)
            log_w += anneal.log_f(v, betas[k - 1]) - anneal.log_f(v, betas[k])
        log_w = log_w.reshape(len(x), n_chains) - anneal.log_z_base
        return torch.logsumexp(log_w, 1) - math.log(n_chains)
