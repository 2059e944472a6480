r"""The objectives of adversarial training, and the theory behind them.

**The game.** A discriminator :math:`D(x) = \sigma(\ell(x))` (a logit :math:`\ell`) and a
generator :math:`G(z)` play (Goodfellow et al., 2014, eq. 1)

.. math:: \min_G \max_D V(D, G) = \mathbb E_{x \sim p_r}[\log D(x)]
          + \mathbb E_{z \sim p_z}[\log(1 - D(G(z)))].

Every loss here takes *logits*, never probabilities: :math:`\log \sigma(\ell) =
-\operatorname{softplus}(-\ell)` and :math:`\log(1 - \sigma(\ell)) =
-\operatorname{softplus}(\ell)` stay finite for any logit, where ``log(sigmoid(l))`` is
``-inf`` from :math:`\ell \approx -104` in float32.

* :func:`discriminator_loss`: :math:`-V` for the discriminator (binary cross-entropy), with
  one-sided label smoothing (Salimans et al., 2016, sec. 3.4).
* :func:`generator_loss`: the minimax loss :math:`\log(1 - D(G(z)))`, which saturates when
  the discriminator wins, and the non-saturating :math:`-\log D(G(z))` (Goodfellow et al.,
  2014, sec. 3).
* :func:`critic_loss`, :func:`wasserstein_generator_loss`, :func:`gradient_penalty`: the
  Wasserstein GAN (Arjovsky et al., 2017) and its gradient penalty (Gulrajani et al., 2017).

**The theory**, on densities known in closed form and integrated numerically:
:func:`optimal_discriminator` :math:`D^* = p_r / (p_r + p_g)` (Goodfellow et al., 2014,
Prop. 1), :func:`value_function` :math:`V(D, G)` as an integral, :func:`js_divergence`, so
that :math:`V(D^*, G) = 2\,\mathrm{JS}(p_r \| p_g) - 2 \log 2` (Theorem 1) can be checked;
:func:`wasserstein_1d` and :func:`empirical_wasserstein`, the earth mover's distance between
samples.

References:
    I. Goodfellow et al. (2014). Generative adversarial nets. NeurIPS.
    T. Salimans et al. (2016). Improved techniques for training GANs. NeurIPS.
    M. Arjovsky, S. Chintala and L. Bottou (2017). Wasserstein generative adversarial
    networks. ICML.
    I. Gulrajani et al. (2017). Improved training of Wasserstein GANs. NeurIPS.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from dgm_lab._validation import as_float_tensor, check_choice, check_finite, check_positive
from dgm_lab.model import rand

__all__ = [
    "critic_loss",
    "discriminator_loss",
    "empirical_wasserstein",
    "generator_loss",
    "gradient_penalty",
    "js_divergence",
    "optimal_discriminator",
    "r1_penalty",
    "value_function",
    "wasserstein_1d",
    "wasserstein_generator_loss",
]

GENERATOR_LOSSES = ("minimax", "non_saturating")


def _scores(x: object, name: str) -> torch.Tensor:
    """A floating tensor ``[n]`` of logits or critic scores (kept in the autograd graph)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [n], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {x.dtype}")
    if x.dim() != 1 or len(x) == 0:
        raise ValueError(f"{name} must have shape [n] with n >= 1 (one score per example), "
                         f"got shape {tuple(x.shape)}")
    return check_finite(x, name)


# ---------------------------------------------------------------------------------------
# the original GAN
# ---------------------------------------------------------------------------------------

def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       real_label: float = 1.0) -> torch.Tensor:
    r"""The discriminator's loss: binary cross-entropy of real (label 1) against fake (label 0).

    .. math:: L_D = -\frac1m \sum_i \big[t \log D(x_i) + (1 - t) \log(1 - D(x_i))\big]
              - \frac1m \sum_i \log\big(1 - D(G(z_i))\big),

    with :math:`D = \sigma(\ell)`. With :math:`t = 1` this is :math:`-V(D, G)` estimated on a
    minibatch (Goodfellow et al., 2014, Algorithm 1, the discriminator ascends :math:`V`).
    One-sided label smoothing sets :math:`t < 1` (e.g. 0.9) for the real examples only, so the
    discriminator is never rewarded for extreme confidence; the fake label stays 0, else the
    optimal discriminator would keep rewarding the generator where :math:`p_r = 0`
    (Salimans et al., 2016, sec. 3.4).

    Arguments:
        real_logits: ``[m]`` logits :math:`\ell(x_i)` of real examples.
        fake_logits: ``[m']`` logits :math:`\ell(G(z_i))` of generated examples.
        real_label: the target :math:`t \in (0, 1]` of the real examples (1: no smoothing).

    Returns:
        A scalar tensor, differentiable in both logits.

    References:
        I. Goodfellow et al. (2014). Generative adversarial nets, eq. 1 and Algorithm 1.
        T. Salimans et al. (2016). Improved techniques for training GANs, sec. 3.4.

    Example:
        >>> discriminator_loss(torch.tensor([3.0, 2.0]), torch.tensor([-2.5]), real_label=0.9)
    """
    real_logits = _scores(real_logits, "real_logits")
    fake_logits = _scores(fake_logits, "fake_logits")
    t = check_positive(real_label, "real_label")
    if t > 1:
        raise ValueError(f"real_label must be in (0, 1], got {real_label}")
    # -log sigma(l) = softplus(-l), -log(1 - sigma(l)) = softplus(l): finite for every logit
    real = t * F.softplus(-real_logits) + (1 - t) * F.softplus(real_logits)
    return real.mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    r"""The generator's loss, to be minimised.

    * ``"minimax"``: :math:`\frac1m \sum_i \log(1 - D(G(z_i)))`, the generator's part of
      :math:`V`. Its gradient with respect to the logit is :math:`-D(G(z))`: when the
      discriminator confidently rejects the samples (:math:`D \to 0`, early in training) it
      vanishes, and the generator stops learning, the *saturation* of the minimax game.
    * ``"non_saturating"``: :math:`-\frac1m \sum_i \log D(G(z_i))`, with the same fixed point
      and gradient :math:`-(1 - D(G(z)))` with respect to the logit, strongest exactly
      when the samples are bad (Goodfellow et al., 2014, sec. 3).

    Arguments:
        fake_logits: ``[m]`` discriminator logits of generated examples.
        kind: ``"minimax"`` or ``"non_saturating"``.

    Returns:
        A scalar tensor.

    References:
        I. Goodfellow et al. (2014). Generative adversarial nets, sec. 3.

    Example:
        >>> generator_loss(torch.tensor([-4.0]), "minimax")   # log(1 - sigmoid(-4)) ≈ -0.018
    """
    fake_logits = _scores(fake_logits, "fake_logits")
    check_choice(kind, "kind", GENERATOR_LOSSES)
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()  # log(1 - sigma(l)) = -softplus(l)
    return F.softplus(-fake_logits).mean()  # -log sigma(l) = softplus(-l)


# ---------------------------------------------------------------------------------------
# Wasserstein GAN
# ---------------------------------------------------------------------------------------

def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    r"""The WGAN critic's loss :math:`\frac1{m'}\sum_i f(G(z_i)) - \frac1m\sum_i f(x_i)`.

    By the Kantorovich-Rubinstein duality, :math:`W_1(p_r, p_g) = \sup_{\|f\|_L \le 1}
    \mathbb E_{p_r} f - \mathbb E_{p_g} f`; the critic :math:`f` (no sigmoid: a real score)
    minimises the negative of that difference over a set of roughly Lipschitz functions, so
    ``-critic_loss`` is its running estimate of :math:`W_1` (up to the Lipschitz constant).

    Arguments:
        real_scores: ``[m]`` critic scores :math:`f(x_i)`.
        fake_scores: ``[m']`` critic scores :math:`f(G(z_i))`.

    Returns:
        A scalar tensor.

    References:
        M. Arjovsky, S. Chintala and L. Bottou (2017). Wasserstein GAN, eq. 3 and Algorithm 1.

    Example:
        >>> -critic_loss(torch.tensor([1.0, 1.2]), torch.tensor([0.1]))   # estimate 1.0
    """
    real_scores = _scores(real_scores, "real_scores")
    fake_scores = _scores(fake_scores, "fake_scores")
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    r"""The WGAN generator's loss :math:`-\frac1m \sum_i f(G(z_i))`.

    Arguments:
        fake_scores: ``[m]`` critic scores :math:`f(G(z_i))` of generated examples.

    Returns:
        A 0-dimensional tensor: minus their mean.

    References:
        M. Arjovsky, S. Chintala and L. Bottou (2017). Wasserstein GAN, Algorithm 1.

    Example:
        >>> wasserstein_generator_loss(torch.tensor([0.5, 1.5]))
        tensor(-1.)
    """
    return -_scores(fake_scores, "fake_scores").mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, alpha: torch.Tensor | None = None, *,
                     target: float = 1.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    r"""WGAN-GP's penalty :math:`\frac1m \sum_i (\|\nabla_x f(\hat x_i)\|_2 - 1)^2`.

    The optimal critic has gradient norm 1 almost everywhere on the straight lines between
    coupled real and generated points (Gulrajani et al., 2017, Prop. 1), so the penalty is
    taken at random points of such lines, :math:`\hat x_i = \alpha_i x_i + (1 - \alpha_i)
    \tilde x_i`, :math:`\alpha_i \sim U[0, 1]`. The gradient is computed with
    ``create_graph=True``, so the penalty can be back-propagated into the critic's weights.

    Arguments:
        critic: a function ``[m, *shape] -> [m]`` (e.g. a critic network).
        real: ``[m, *shape]`` real examples :math:`x_i`.
        fake: ``[m, *shape]`` generated examples :math:`\tilde x_i` (detached or not).
        alpha: ``[m]`` interpolation weights in [0, 1]; drawn uniformly (with ``generator``)
            when ``None``.
        target: the gradient norm the penalty pulls towards (1 in the paper).
        generator: a ``torch.Generator`` for ``alpha`` (default: the global one).

    Returns:
        A scalar tensor.

    References:
        I. Gulrajani, F. Ahmed, M. Arjovsky, V. Dumoulin and A. Courville (2017). Improved
        training of Wasserstein GANs, eq. 3 and Algorithm 1.

    Example:
        >>> f = lambda x: 3.0 * x.sum(1)                   # gradient norm 3 * sqrt(2)
        >>> gradient_penalty(f, torch.zeros(4, 2), torch.ones(4, 2))   # (3 sqrt 2 - 1)^2
    """
    if not callable(critic):
        raise TypeError(f"critic must be a function of x, got {type(critic).__name__}")
    for name, t in (("real", real), ("fake", fake)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating torch.Tensor, got "
                            f"{type(t).__name__ if not isinstance(t, torch.Tensor) else t.dtype}")
        if t.dim() < 2 or len(t) == 0:
            raise ValueError(f"{name} must have shape [m, ...] with m >= 1 examples, got "
                             f"{tuple(t.shape)}")
        check_finite(t, name)
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} "
                         f"and {tuple(fake.shape)}")
    m = len(real)
    if alpha is None:
        alpha = rand((m,), generator, device=real.device, dtype=real.dtype)
    elif not isinstance(alpha, torch.Tensor) or alpha.shape != (m,):
        raise ValueError(f"alpha must be a tensor of shape [{m}] (one weight per example), "
                         f"got {getattr(alpha, 'shape', type(alpha).__name__)}")
    elif not ((alpha >= 0) & (alpha <= 1)).all():
        raise ValueError("alpha must lie in [0, 1]")
    target = check_positive(target, "target")
    a = alpha.to(real).reshape(m, *([1] * (real.dim() - 1)))
    x_hat = (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    if not isinstance(scores, torch.Tensor) or scores.shape != (m,):
        raise ValueError(f"critic must return one score per example, shape [{m}], got "
                         f"{getattr(scores, 'shape', type(scores).__name__)}")
    # the scores of different examples do not interact, so the gradient of their sum holds
    # each example's own gradient in its row
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(dim=1)
    return (norms - target).square().mean()


def r1_penalty(discriminator: Callable[[torch.Tensor], torch.Tensor],
               real: torch.Tensor) -> torch.Tensor:
    r"""The R1 penalty :math:`\mathbb E_{x \sim p_r} \|\nabla_x \ell(x)\|_2^2` on real data.

    :math:`\ell` is the discriminator's logit. Penalising its gradient on the data makes the
    discriminator flat where the data is, which removes the rotation that keeps
    simultaneous gradient play circling around the equilibrium: with it, the GAN game
    converges locally (Mescheder, Geiger and Nowozin, 2018, sec. 4.1, eq. 9; the
    discriminator's loss gains :math:`\frac{\gamma}{2}` times this). The gradient is
    computed with ``create_graph=True``, so the penalty trains the discriminator's weights.

    The mean is over the discriminator's outputs: for a discriminator that scores packs of
    samples (:class:`~dgm_lab.gan.PackedDiscriminator`) it is the squared norm of each pack's
    gradient, the sum of its samples' squared gradient norms.

    Arguments:
        discriminator: a function ``[m, *shape] -> [k]`` of logits.
        real: ``[m, *shape]`` real examples.

    Returns:
        A scalar tensor.

    References:
        L. Mescheder, A. Geiger and S. Nowozin (2018). Which training methods for GANs do
        actually converge? ICML, sec. 4.1, eq. 9.

    Example:
        >>> f = lambda x: 3.0 * x.sum(1)                   # gradient norm 3 * sqrt(2)
        >>> r1_penalty(f, torch.zeros(4, 2))                # 18
        tensor(18.)
    """
    if not callable(discriminator):
        raise TypeError(f"discriminator must be a function of x, got "
                        f"{type(discriminator).__name__}")
    if not isinstance(real, torch.Tensor) or not real.is_floating_point():
        got = real.dtype if isinstance(real, torch.Tensor) else type(real).__name__
        raise TypeError(f"real must be a floating torch.Tensor, got {got}")
    if real.dim() < 2 or len(real) == 0:
        raise ValueError(f"real must have shape [m, ...] with m >= 1 examples, got "
                         f"{tuple(real.shape)}")
    x = check_finite(real, "real").detach().requires_grad_(True)
    logits = discriminator(x)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 1 or len(logits) == 0:
        raise ValueError(f"discriminator must return a vector of logits, got "
                         f"{getattr(logits, 'shape', type(logits).__name__)}")
    # the outputs do not interact, so the gradient of their sum holds each one's gradient
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return grad.square().sum() / len(logits)


# ---------------------------------------------------------------------------------------
# theory on known densities
# ---------------------------------------------------------------------------------------

def _log_densities(log_p: object, log_q: object,
                   names: tuple[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Two floating tensors of log-densities of one shape: no NaN, no +inf (-inf is a 0)."""
    for name, t in zip(names, (log_p, log_q), strict=True):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating torch.Tensor of log-densities, got "
                            f"{t.dtype if isinstance(t, torch.Tensor) else type(t).__name__}")
        if t.numel() == 0:
            raise ValueError(f"{name} is empty")
        if torch.isnan(t).any() or (t == math.inf).any():
            raise ValueError(f"{name} must hold log-densities: no NaN and no +inf "
                             "(-inf, a density of 0, is allowed)")
    if log_p.shape != log_q.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got "
                         f"{tuple(log_p.shape)} and {tuple(log_q.shape)}")
    return log_p, log_q


def optimal_discriminator(log_p_real: torch.Tensor, log_p_model: torch.Tensor) -> torch.Tensor:
    r"""The best discriminator against a fixed generator: :math:`D^*(x) = \frac{p_r(x)}{p_r(x)
    + p_g(x)}`.

    For a fixed :math:`G`, :math:`V(D, G) = \int p_r(x) \log D(x) + p_g(x) \log(1 - D(x))\,dx`
    is maximised point by point: :math:`a \log y + b \log(1 - y)` peaks at
    :math:`y = a / (a + b)` (Goodfellow et al., 2014, Prop. 1). Computed as
    :math:`\sigma(\log p_r - \log p_g)`, exact even where both densities underflow.

    Arguments:
        log_p_real: log-densities :math:`\log p_r(x)` at some points (any shape).
        log_p_model: :math:`\log p_g(x)` at the same points (same shape). One of the two may be
            ``-inf`` (a density of 0) but not both.

    Returns:
        :math:`D^*(x)` in [0, 1], the shape of the inputs.

    References:
        I. Goodfellow et al. (2014). Generative adversarial nets, Proposition 1.

    Example:
        >>> optimal_discriminator(torch.tensor([-1.0]), torch.tensor([-1.0]))   # p_r = p_g
        tensor([0.5000])
    """
    a, b = _log_densities(log_p_real, log_p_model, ("log_p_real", "log_p_model"))
    if ((a == -math.inf) & (b == -math.inf)).any():
        raise ValueError("D* is undefined where both densities are 0 (both log-densities -inf)")
    return torch.sigmoid(a - b)


def _quadrature_weights(weights: object, shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
    w = as_float_tensor(weights, "weights").to(like)
    if w.shape != shape:
        raise ValueError(f"weights must have the shape of the log-densities {tuple(shape)}, got "
                         f"{tuple(w.shape)}")
    if (w < 0).any():
        raise ValueError("weights must be >= 0 (quadrature weights, e.g. the grid spacing)")
    return w


def _xlogy_ratio(log_p: torch.Tensor, log_ratio: torch.Tensor) -> torch.Tensor:
    """p * log_ratio with the convention 0 * log 0 = 0 (where p = 0 the term vanishes)."""
    p = log_p.exp()
    return torch.where(p > 0, p * log_ratio, torch.zeros_like(p))


def value_function(log_p_real: torch.Tensor, log_p_model: torch.Tensor,
                   discriminator_logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    r"""The value of the game as an integral, by quadrature:

    .. math:: V(D, G) = \int p_r(x) \log D(x) + p_g(x) \log\big(1 - D(x)\big)\,dx
              \approx \sum_k w_k \big[p_r(x_k) \log D(x_k) + p_g(x_k) \log(1 - D(x_k))\big],

    with :math:`D = \sigma(\ell)`. With the logits of :func:`optimal_discriminator`,
    :math:`\ell = \log p_r - \log p_g`, it equals :math:`2\,\mathrm{JS}(p_r\|p_g) - 2\log 2`
    (Goodfellow et al., 2014, Theorem 1).

    Arguments:
        log_p_real, log_p_model: log-densities at the quadrature nodes ``[k]``.
        discriminator_logits: :math:`\ell(x_k)`, ``[k]``; ``±inf`` allowed (a discriminator
            that is certain), where the density it would punish is 0.
        weights: quadrature weights ``[k]`` (e.g. the grid spacing; trapezoid or Simpson).

    Returns:
        A scalar tensor (nats).

    References:
        I. Goodfellow et al. (2014). Generative adversarial nets, eq. 1 and Theorem 1.

    Example:
        >>> x = torch.linspace(-10, 10, 2001, dtype=torch.float64)
        >>> lp = torch.distributions.Normal(0., 1.).log_prob(x)
        >>> value_function(lp, lp, torch.zeros_like(x), torch.full_like(x, 0.01))   # -2 log 2
    """
    a, b = _log_densities(log_p_real, log_p_model, ("log_p_real", "log_p_model"))
    logits = discriminator_logits
    if not isinstance(logits, torch.Tensor) or logits.shape != a.shape:
        raise ValueError(f"discriminator_logits must be a tensor of shape {tuple(a.shape)}")
    if torch.isnan(logits).any():
        raise ValueError("discriminator_logits contains NaN values")
    w = _quadrature_weights(weights, a.shape, a)
    logits = logits.to(a)
    # log D = -softplus(-l), log(1 - D) = -softplus(l); 0 * (-inf) = 0 through _xlogy_ratio
    integrand = _xlogy_ratio(a, -F.softplus(-logits)) + _xlogy_ratio(b, -F.softplus(logits))
    return (w * integrand).sum()


def js_divergence(log_p: torch.Tensor, log_q: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    r"""Jensen-Shannon divergence of two densities, by quadrature:

    .. math:: \mathrm{JS}(p\|q) = \tfrac12 \mathrm{KL}\big(p \,\|\, m\big)
              + \tfrac12 \mathrm{KL}\big(q \,\|\, m\big), \qquad m = \tfrac{p + q}{2},

    :math:`\approx \sum_k w_k [\frac12 p_k \log \frac{p_k}{m_k} + \frac12 q_k \log
    \frac{q_k}{m_k}]`, in nats: 0 when :math:`p = q`, :math:`\log 2` when the supports are
    disjoint, whatever the distance between them (Arjovsky & Bottou, 2017).

    Arguments:
        log_p, log_q: log-densities at the quadrature nodes ``[k]`` (``-inf`` allowed).
        weights: quadrature weights ``[k]``.

    Returns:
        A scalar tensor in :math:`[0, \log 2]` (nats).

    References:
        J. Lin (1991). Divergence measures based on the Shannon entropy.
        I. Goodfellow et al. (2014). Generative adversarial nets, sec. 4.1.

    Example:
        >>> x = torch.linspace(-10, 10, 2001, dtype=torch.float64)
        >>> lp = torch.distributions.Normal(0., 1.).log_prob(x)
        >>> js_divergence(lp, lp, torch.full_like(x, 0.01))
        tensor(0., dtype=torch.float64)
    """
    a, b = _log_densities(log_p, log_q, ("log_p", "log_q"))
    w = _quadrature_weights(weights, a.shape, a)
    log_m = torch.logaddexp(a, b) - math.log(2)
    # where both densities are 0 the terms are 0; keep log_m finite there to avoid inf - inf
    log_m = torch.where(torch.isinf(log_m), torch.zeros_like(log_m), log_m)
    integrand = 0.5 * (_xlogy_ratio(a, a - log_m) + _xlogy_ratio(b, b - log_m))
    return (w * integrand).sum()


def wasserstein_1d(x: torch.Tensor, y: torch.Tensor) -> float:
    r"""The earth mover's distance :math:`W_1` between two 1-D samples (empirical measures).

    In one dimension the optimal transport plan matches quantiles:
    :math:`W_1 = \int_0^1 |F_x^{-1}(u) - F_y^{-1}(u)|\,du`, a sum over the merged
    jumps of the two empirical distribution functions (equal sizes: the mean of
    :math:`|x_{(i)} - y_{(i)}|` over the sorted samples).

    Arguments:
        x: ``[n]`` sample.
        y: ``[m]`` sample.

    Returns:
        A Python float.

    References:
        C. Villani (2009). Optimal transport, old and new, Remark 2.19.

    Example:
        >>> wasserstein_1d(torch.zeros(10), torch.full((5,), 2.0))
        2.0
    """
    xs = np.sort(as_float_tensor(x, "x", ndim=1).detach().cpu().double().numpy())
    ys = np.sort(as_float_tensor(y, "y", ndim=1).detach().cpu().double().numpy())
    # both quantile functions are steps; integrate |F_x^-1 - F_y^-1| between merged knots
    u = np.union1d(np.arange(1, len(xs) + 1) / len(xs), np.arange(1, len(ys) + 1) / len(ys))
    widths = np.diff(np.concatenate([[0.0], u]))
    mid = u - widths / 2
    qx = xs[np.minimum((mid * len(xs)).astype(np.int64), len(xs) - 1)]
    qy = ys[np.minimum((mid * len(ys)).astype(np.int64), len(ys) - 1)]
    return float(np.sum(widths * np.abs(qx - qy)))


def empirical_wasserstein(x: torch.Tensor, y: torch.Tensor) -> float:
    r"""The exact earth mover's distance :math:`W_1` between two point clouds of the same size.

    Between two empirical measures with :math:`n` points each, an optimal coupling is a
    permutation (Birkhoff-von Neumann), so
    :math:`W_1 = \min_\pi \frac1n \sum_i \|x_i - y_{\pi(i)}\|_2`, an assignment problem solved
    exactly by ``scipy.optimize.linear_sum_assignment`` (:math:`O(n^3)`: keep
    :math:`n \lesssim 2000`). It measures how far generated samples are from data in any
    dimension, and is what a WGAN critic estimates (Arjovsky et al., 2017).

    Arguments:
        x: ``[n, d]`` points.
        y: ``[n, d]`` points.

    Returns:
        A Python float.

    References:
        C. Villani (2009). Optimal transport, old and new, ch. 6.
        H. W. Kuhn (1955). The Hungarian method for the assignment problem.

    Example:
        >>> empirical_wasserstein(torch.zeros(3, 2), torch.ones(3, 2))   # sqrt(2)
    """
    from scipy.optimize import linear_sum_assignment

    a = as_float_tensor(x, "x", ndim=2).detach().cpu().double()
    b = as_float_tensor(y, "y", ndim=2).detach().cpu().double()
    if a.shape != b.shape:
        raise ValueError(f"x and y must have the same shape [n, d], got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    cost = torch.cdist(a, b).numpy()
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())
