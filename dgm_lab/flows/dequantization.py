r"""Flows on discrete data: dequantisation, and an honest likelihood of the integer image.

A flow is a *density* on :math:`\mathbb R^D`; pixels are integers :math:`k \in \{0, \dots,
L-1\}^D`. Fitting a density to the integers themselves is meaningless: it can pile
unbounded density onto the grid points. **Dequantisation** fills each unit bin
:math:`[k, k + 1)` with noise :math:`u \in [0, 1)^D` and fits the density :math:`p` to
:math:`k + u`. What it models on the integers is the probability of the bin,

.. math:: P(k) = \int_{[0,1)^D} p(k + u)\, du .

For any distribution :math:`q(u \mid k)` on the unit cube, Jensen's inequality gives

.. math:: \log P(k) = \log \mathbb E_{q}\Big[\frac{p(k + u)}{q(u \mid k)}\Big]
          \;\ge\; \mathbb E_{q}\Big[\log \frac{p(k + u)}{q(u \mid k)}\Big],

with equality when :math:`q(u \mid k) \propto p(k + u)`. **Uniform** dequantisation
(Theis et al., 2016; Uria et al., 2013) takes :math:`q = 1`: the bound is the average
log-density of the flow on noisy pixels. **Variational** dequantisation (Ho et al., 2019,
Flow++) learns :math:`q` (here a conditional flow, :class:`VariationalDequantizer`) and
trains it with the flow on the same bound. Either way the figure to report is a bound on
:math:`-\log P(k)` evaluated with **fresh** noise, and it tightens with :math:`S` importance
samples (Burda et al., 2016),

.. math:: \log P(k) \;\ge\; \mathbb E\Big[\log \frac1S \sum_{s=1}^S \frac{p(k + u_s)}
          {q(u_s \mid k)}\Big], \qquad u_s \sim q(\cdot \mid k),

which :meth:`DequantizedFlow.log_prob_bound` computes. The flow itself works on
:math:`(k + u) / L \in (0, 1)^D` (the form of ``load_digits(form="dequantized")``), so
:math:`p(k + u) = p_{\text{flow}}((k + u)/L) / L^D`: the :math:`D \log L` nats of
:func:`dgm_lab.results.discrete_nll`.

A number printed by a flow on dequantised data is only a likelihood of the pixels when it is
such a bound: the density of one fixed noisy copy of the test set (noise the model may have
seen), or a density on a rescaled space without its :math:`D \log L`, is not.

References:
    L. Theis, A. van den Oord and M. Bethge (2016). A note on the evaluation of generative
    models. ICLR (section 3.1, eq. 4-6).
    J. Ho, X. Chen, A. Srinivas, Y. Duan and P. Abbeel (2019). Flow++: improving flow-based
    generative models with variational dequantization and architecture design. ICML
    (section 3.1, eq. 9-12).
    Y. Burda, R. Grosse and R. Salakhutdinov (2016). Importance weighted autoencoders. ICLR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from dgm_lab._validation import check_int
from dgm_lab.flows.base import Flow
from dgm_lab.flows.coupling import alternating_mask, mlp
from dgm_lab.model import rand

__all__ = ["DequantizedFlow", "VariationalDequantizer", "uniform_dequantize"]


def _check_levels(k: object, levels: int, features: int | None = None) -> torch.Tensor:
    """``k`` as an int64 tensor ``[n, D]`` of integers in ``0..levels-1``."""
    if not isinstance(k, torch.Tensor):
        raise TypeError(f"k must be a torch.Tensor of integer levels, got {type(k).__name__}")
    if k.is_floating_point() or k.is_complex() or k.dtype == torch.bool:
        raise TypeError(f"k must hold integer levels (e.g. load_digits(form='levels')), "
                        f"got dtype {k.dtype}")
    if k.dim() != 2 or len(k) == 0 or (features is not None and k.shape[1] != features):
        want = f"[n, {features}]" if features is not None else "[n, D]"
        raise ValueError(f"k must have shape {want} with n >= 1, got {tuple(k.shape)}")
    if (k < 0).any() or (k >= levels).any():
        raise ValueError(f"k must lie in 0..{levels - 1}, got values in "
                         f"{int(k.min())}..{int(k.max())}")
    return k.long()


def _logistic_log_prob(eps: torch.Tensor) -> torch.Tensor:
    r""":math:`\sum_j \log \ell(\epsilon_j)`, the standard logistic density
    :math:`\ell(e) = \sigma(e)\,\sigma(-e)`, ``[n, D] -> [n]``."""
    return (nn.functional.logsigmoid(eps) + nn.functional.logsigmoid(-eps)).sum(1)


def uniform_dequantize(k: torch.Tensor, levels: int, *, generator: torch.Generator | None = None,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""Fresh uniform noise in every bin, scaled to the unit cube: :math:`(k + u) / L`.

    Arguments:
        k: integer levels ``[n, D]`` in ``0..levels-1``.
        levels: :math:`L`.
        generator: the source of the noise (fresh noise: not the noise the model trained on).
        dtype: the floating dtype of the result.

    Returns:
        ``[n, D]`` in :math:`[0, 1)`, with ``floor(x * L) == k``.

    Example:
        >>> x = uniform_dequantize(torch.tensor([[0, 16]]), 17)
        >>> (x * 17).floor().long()
        tensor([[ 0, 16]])
    """
    levels = check_int(levels, "levels", minimum=2)
    k = _check_levels(k, levels)
    u = rand(k.shape, generator, device=k.device, dtype=dtype)
    return (k.to(dtype) + u) / levels


class VariationalDequantizer(nn.Module):
    r"""A learned noise distribution :math:`q(u \mid k)` on the unit cube, for every image.

    A conditional flow from logistic noise :math:`\epsilon` to :math:`u \in (0, 1)^D`: an
    affine map whose shift and log-scale are computed from the image, ``n_couplings``
    affine couplings whose conditioners also read the image, and a sigmoid,

    .. math:: h = \mu(k) + e^{\rho(k)} \odot \epsilon, \quad h' = \text{couplings}(h; k),
              \quad u = \sigma(h'),

    .. math:: \log q(u \mid k) = \log \ell(\epsilon) - \sum_j \rho_j(k) -
              \sum \text{coupling log-scales} - \sum_j \log \sigma'(h'_j).

    The sigmoid of standard logistic noise is uniform, and every network's last layer starts
    at zero, so :math:`q` starts as uniform dequantisation and training can only improve
    on it. (With Gaussian noise :math:`q` would vanish faster than any power at the edges of
    each bin, and the importance weights :math:`p / q` there would have infinite variance.)

    Arguments:
        features: :math:`D`.
        levels: :math:`L` (the image is fed to the networks as :math:`k / (L - 1) - 1/2`).
        hidden: hidden widths of every conditioner network.
        n_couplings: number of conditional couplings after the affine map (default 2).

    References:
        J. Ho et al. (2019). Flow++. ICML. Section 3.1 (variational dequantization).
    """

    def __init__(self, features: int, levels: int, hidden: Sequence[int] = (128,), *,
                 n_couplings: int = 2) -> None:
        super().__init__()
        self.features = d = check_int(features, "features", minimum=2)
        self.levels = check_int(levels, "levels", minimum=2)
        self.n_couplings = check_int(n_couplings, "n_couplings", minimum=0)
        self.base = mlp(d, 2 * d, hidden)
        self.couplings = nn.ModuleList(mlp(2 * d, 2 * d, hidden)
                                       for _ in range(self.n_couplings))
        masks = torch.stack([alternating_mask(d, i % 2) for i in range(self.n_couplings)]
                            ) if self.n_couplings else torch.zeros(0, d)
        self.register_buffer("masks", masks)

    def _features(self, k: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return k.to(dtype) / (self.levels - 1) - 0.5

    def transform(self, eps: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The map from logistic noise :math:`\epsilon` to :math:`u \in (0, 1)^D` for images
        ``k``, and :math:`\log|\det \partial u / \partial \epsilon|` ``[n]``."""
        k = _check_levels(k, self.levels, self.features)
        cond = self._features(k, eps.dtype)
        mu, rho = self.base(cond).chunk(2, dim=1)
        rho = 3.0 * torch.tanh(rho / 3.0)
        h = mu + rho.exp() * eps
        logdet = rho.sum(1)
        for net, mask in zip(self.couplings, self.masks, strict=True):
            s, t = net(torch.cat([h * mask, cond], dim=1)).chunk(2, dim=1)
            s = 3.0 * torch.tanh(s / 3.0) * (1 - mask)
            h = h * mask + (1 - mask) * (h * s.exp() + t)
            logdet = logdet + s.sum(1)
        u = torch.sigmoid(h)
        logdet = logdet + (nn.functional.logsigmoid(h) + nn.functional.logsigmoid(-h)).sum(1)
        return u, logdet

    def log_prob(self, u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        r""":math:`\log q(u \mid k)` ``[n]`` of given noise ``u`` in :math:`(0, 1)^D`, by
        running the map backwards (logit, the couplings undone, the affine step undone)."""
        k = _check_levels(k, self.levels, self.features)
        if not isinstance(u, torch.Tensor) or u.shape != k.shape or not u.is_floating_point():
            raise ValueError(f"u must be a floating tensor of shape {tuple(k.shape)}")
        cond = self._features(k, u.dtype)
        h = torch.logit(u)
        logdet = (nn.functional.logsigmoid(h) + nn.functional.logsigmoid(-h)).sum(1)
        for net, mask in reversed(list(zip(self.couplings, self.masks, strict=True))):
            s, t = net(torch.cat([h * mask, cond], dim=1)).chunk(2, dim=1)
            s = 3.0 * torch.tanh(s / 3.0) * (1 - mask)
            h = h * mask + (1 - mask) * (h - t) * torch.exp(-s)
            logdet = logdet + s.sum(1)
        mu, rho = self.base(cond).chunk(2, dim=1)
        rho = 3.0 * torch.tanh(rho / 3.0)
        eps = (h - mu) * torch.exp(-rho)
        return _logistic_log_prob(eps) - logdet - rho.sum(1)

    def sample(self, k: torch.Tensor, *, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Draw :math:`u \sim q(\cdot \mid k)` (reparameterised) and :math:`\log q(u \mid k)`,
        :math:`\log \ell(\epsilon) - \log|\det \partial u / \partial \epsilon|`.

        Arguments:
            k: integer levels ``[n, D]``.
            generator: source of :math:`\epsilon`.

        Returns:
            ``u`` ``[n, D]`` in :math:`(0, 1)` and ``log_q`` ``[n]``.
        """
        k = _check_levels(k, self.levels, self.features)
        like = self.base[0].weight
        # standard logistic noise by inverting its CDF; u in (0, 1) strictly (a u of 0 would
        # give an infinite epsilon)
        tiny = torch.finfo(like.dtype).tiny
        v = rand(k.shape, generator, device=like.device, dtype=like.dtype).clamp_min(tiny)
        eps = torch.log(v) - torch.log1p(-v)
        u, logdet = self.transform(eps, k.to(like.device))
        return u, _logistic_log_prob(eps) - logdet


class DequantizedFlow(nn.Module):
    r"""A flow on :math:`(0, 1)^D` seen as a model of integer images :math:`k`.

    Trains on the one-sample bound (:meth:`elbo`) and reports the importance-weighted bound
    (:meth:`log_prob_bound`), both in nats on the integer images, noise drawn afresh on each
    call. With ``dequantizer=None`` the noise is uniform.

    Arguments:
        flow: a :class:`~dgm_lab.flows.base.Flow` whose events are ``[D]`` in :math:`(0, 1)`
            (e.g. :func:`~dgm_lab.flows.glow.glow`, or a flow that starts with
            :class:`~dgm_lab.flows.base.Logit`).
        levels: :math:`L`, the number of pixel values (17 for the digits).
        dequantizer: a :class:`VariationalDequantizer`, or ``None`` for uniform noise.

    Example:
        >>> from dgm_lab.flows import Chain, Logit, ElementwiseAffine, Flow
        >>> model = DequantizedFlow(Flow(Chain([Logit(4), ElementwiseAffine(4)]), 4), levels=3)
        >>> k = torch.tensor([[0, 1, 2, 1]])
        >>> model.log_prob_bound(k, n_samples=10).shape
        torch.Size([1])
    """

    def __init__(self, flow: Flow, levels: int,
                 dequantizer: VariationalDequantizer | None = None) -> None:
        super().__init__()
        if not isinstance(flow, Flow):
            raise TypeError(f"flow must be a dgm_lab.flows.Flow, got {type(flow).__name__}")
        if len(flow.event_shape) != 1:
            raise ValueError(f"flow must model flat vectors [D], got {tuple(flow.event_shape)}")
        if dequantizer is not None and not isinstance(dequantizer, VariationalDequantizer):
            raise TypeError("dequantizer must be a VariationalDequantizer or None")
        self.flow = flow
        self.levels = check_int(levels, "levels", minimum=2)
        self.dequantizer = dequantizer
        self.features = flow.event_shape[0]
        if dequantizer is not None and (dequantizer.features != self.features
                                        or dequantizer.levels != self.levels):
            raise ValueError("the dequantizer must have the flow's features and levels")

    def log_weight(self, k: torch.Tensor, generator: torch.Generator | None = None
                   ) -> torch.Tensor:
        r"""One importance weight per image, :math:`\log p(k + u) - \log q(u \mid k)`,
        :math:`u \sim q`: ``[n]`` nats. Its mean is the one-sample bound on :math:`\log P(k)`."""
        k = _check_levels(k, self.levels, self.features)
        dtype = self.flow.dtype
        if self.dequantizer is None:
            u = rand(k.shape, generator, device=self.flow.device, dtype=dtype)
            log_q = torch.zeros(len(k), device=self.flow.device, dtype=dtype)
        else:
            u, log_q = self.dequantizer.sample(k.to(self.flow.device), generator=generator)
        x = (k.to(device=u.device, dtype=dtype) + u) / self.levels
        log_p = self.flow.log_prob(x) - self.features * math.log(self.levels)
        return log_p - log_q

    def elbo(self, k: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""The one-sample bound :math:`\log p(k + u) - \log q(u \mid k)` ``[n]`` (nats): the
        training objective (its gradient reaches the flow and the dequantizer)."""
        return self.log_weight(k, generator)

    def log_prob_bound(self, k: torch.Tensor, n_samples: int = 1000, *,
                       generator: torch.Generator | None = None,
                       batch_size: int = 20_000) -> torch.Tensor:
        r"""The importance-weighted lower bound on :math:`\log P(k)` with ``n_samples`` fresh
        noise draws per image, ``[n]`` nats (Burda et al., 2016, eq. 8).

        Arguments:
            k: integer images ``[n, D]``.
            n_samples: :math:`S` (1 gives the plain dequantisation bound).
            generator: the source of the fresh noise.
            batch_size: how many (image, sample) pairs go through the flow at once.
        """
        k = _check_levels(k, self.levels, self.features)
        s = check_int(n_samples, "n_samples")
        per = max(1, check_int(batch_size, "batch_size") // s)
        out = []
        with torch.no_grad():
            for start in range(0, len(k), per):
                chunk = k[start:start + per]
                weights = self.log_weight(chunk.repeat_interleave(s, 0), generator)
                out.append(torch.logsumexp(weights.view(len(chunk), s), 1) - math.log(s))
        return torch.cat(out)
