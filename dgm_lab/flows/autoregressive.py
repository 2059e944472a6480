r"""MAF and IAF: one autoregressive affine transform, used in two directions.

An autoregressive model writes each coordinate as a Gaussian given the ones before it,
:math:`x_i = \mu_i(x_{<i}) + e^{\alpha_i(x_{<i})} z_i` with :math:`z_i \sim \mathcal N(0,1)`.
Read backwards, that is an invertible map from data to noise,

.. math:: z_i = \big(x_i - \mu_i(x_{<i})\big)\, e^{-\alpha_i(x_{<i})},

whose Jacobian is triangular (:math:`z_i` depends on :math:`x_{\le i}` only), so
:math:`\log|\det \partial z/\partial x| = -\sum_i \alpha_i`. One pass of a MADE network
(:class:`~dgm_lab.autoregressive.made.MADE`) computes every :math:`\mu_i, \alpha_i` at once
from :math:`x`; :class:`MaskedAffineAutoregressive` is this map. Its two directions cost
very differently:

* **data to noise** (``forward``): one network pass, since all of :math:`x` is known;
* **noise to data** (``inverse``): :math:`D` passes, since :math:`x_i` needs
  :math:`x_{<i}` first.

**MAF** (Papamakarios et al., 2017) uses the transform as its data-to-noise map: the
density of any point costs one pass (fast training and scoring), sampling costs :math:`D`.
**IAF** (Kingma et al., 2016) uses the very same transform as its *noise-to-data* map:
:math:`x = T(z)` with the network reading the noise, so sampling costs one pass and scoring
an arbitrary :math:`x` costs :math:`D`, while the density of its *own* samples comes for free
(what a VAE's posterior needs). In code IAF is literally MAF turned around:
``iaf(...) == Flow(Inverse(maf(...).transform))``.

The affine map is the simplest increasing function of :math:`x_i` that the network can
choose; :class:`MaskedSplineAutoregressive` lets it choose a rational-quadratic spline
instead (the autoregressive neural spline flow of Durkan et al., 2019), with the same
triangular Jacobian and the same costs in the two directions.

References:
    G. Papamakarios, T. Pavlakou and I. Murray (2017). Masked autoregressive flow for density
    estimation. NeurIPS (section 3.1, eq. 2-5; section 3.3 on IAF).
    D. P. Kingma, T. Salimans, R. Jozefowicz, X. Chen, I. Sutskever and M. Welling (2016).
    Improved variational inference with inverse autoregressive flow. NeurIPS (eq. 10-11).
    C. Durkan, A. Bekasov, I. Murray and G. Papamakarios (2019). Neural spline flows.
    NeurIPS (section 3.2).
    M. Germain, K. Gregor, I. Murray and H. Larochelle (2015). MADE. ICML.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dgm_lab._validation import check_int, check_positive
from dgm_lab.autoregressive import MADE
from dgm_lab.flows.base import (
    Chain,
    ElementwiseAffine,
    Flow,
    Inverse,
    Permutation,
    Transform,
    check_event,
)
from dgm_lab.flows.spline import rational_quadratic_spline

__all__ = ["MaskedAffineAutoregressive", "MaskedSplineAutoregressive", "autoregressive_spline_flow",
           "iaf", "maf"]


class _MaskedAutoregressive(Transform):
    """What the affine and the spline layer share: a MADE whose outputs for coordinate
    :math:`i` (``outputs_per_dim`` numbers, read from :math:`x_{<i}`) parametrise an
    increasing map of :math:`x_i`, all zero at the start (the identity map), and the way back
    from noise to data, one coordinate per network pass.

    A subclass gives ``forward`` and ``_inverse_given(z, x)``: the map from noise to data and
    its log-determinant with the network reading ``x``. That is right for coordinate
    :math:`d` once ``x`` holds every coordinate before :math:`d` in the order, so filling them
    in that order takes :math:`D` passes; the last pass saw every coordinate that any output
    depends on, so its log-determinant is the layer's.
    """

    def __init__(self, features: int, hidden: Sequence[int], outputs_per_dim: int,
                 order: Sequence[int] | torch.Tensor | None, seed: int) -> None:
        super().__init__()
        self.features = check_int(features, "features", minimum=2)
        self.made = MADE(self.features, list(hidden), outputs_per_dim=outputs_per_dim,
                         order=order, seed=seed)
        last = self.made.layers[-1]
        nn.init.zeros_(last.weight)  # zero parameters: the identity map
        nn.init.zeros_(last.bias)

    def _inverse_given(self, z: torch.Tensor, x: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(z, (self.features,), "z")
        x = torch.zeros_like(z)
        for d in self.made.order.tolist():
            y, log_det = self._inverse_given(z, x)
            x = x.index_copy(1, torch.tensor([d], device=z.device), y[:, d:d + 1])
        return x, log_det


class MaskedAffineAutoregressive(_MaskedAutoregressive):
    r"""The autoregressive affine map :math:`z_i = (x_i - \mu_i(x_{<i}))\, e^{-\alpha_i(x_{<i})}`.

    A :class:`~dgm_lab.autoregressive.made.MADE` with two outputs per dimension gives
    :math:`\mu_i` and a raw :math:`\tilde\alpha_i`; the log-scale is the soft-clamped
    :math:`\alpha_i = c \tanh(\tilde\alpha_i / c)`. The network's last layer starts at zero,
    so the layer starts as the identity.

    ``forward`` (data to noise) is one pass; ``inverse`` (noise to data) fills in one
    coordinate per pass, in the network's order, :math:`D` passes in all.

    Arguments:
        features: :math:`D` (>= 2).
        hidden: widths of MADE's hidden layers.
        order: the autoregressive order (a permutation of ``0..D-1``; ``None``: natural).
        seed: seeds MADE's hidden degrees.
        max_log_scale: the bound :math:`c` on :math:`|\alpha_i|` (default 3).

    References:
        G. Papamakarios, T. Pavlakou and I. Murray (2017). Masked autoregressive flow for
        density estimation. NeurIPS. Eq. 2-5.

    Example:
        >>> t = MaskedAffineAutoregressive(3, [16])
        >>> z, logdet = t(torch.randn(4, 3))
        >>> z.shape, logdet.shape
        (torch.Size([4, 3]), torch.Size([4]))
    """

    def __init__(self, features: int, hidden: Sequence[int] = (64, 64), *,
                 order: Sequence[int] | torch.Tensor | None = None, seed: int = 0,
                 max_log_scale: float = 3.0) -> None:
        super().__init__(features, hidden, 2, order, seed)
        self.max_log_scale = check_positive(max_log_scale, "max_log_scale")

    def _shift_log_scale(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, raw = self.made(x).unbind(2)
        c = self.max_log_scale
        return mu, c * torch.tanh(raw / c)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(x, (self.features,))
        mu, alpha = self._shift_log_scale(x)
        return (x - mu) * torch.exp(-alpha), -alpha.sum(1)

    def _inverse_given(self, z: torch.Tensor, x: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        mu, alpha = self._shift_log_scale(x)
        return z * torch.exp(alpha) + mu, alpha.sum(1)


class MaskedSplineAutoregressive(_MaskedAutoregressive):
    r"""The autoregressive spline map :math:`z_i = g_i(x_i)`, where :math:`g_i` is a monotone
    rational-quadratic spline whose parameters a MADE computes from :math:`x_{<i}`.

    The affine map of :class:`MaskedAffineAutoregressive` with the line
    :math:`(x_i - \mu_i) e^{-\alpha_i}` replaced by a spline of :math:`K` bins on
    :math:`[-B, B]` (the identity outside), as in :class:`~dgm_lab.flows.spline.SplineCoupling`:
    one coordinate can now be bent into several modes by one layer. The Jacobian is still
    triangular, :math:`\log|\det| = \sum_i \log g_i'(x_i)`; ``forward`` is one MADE pass,
    ``inverse`` is :math:`D`. The network's last layer starts at zero: equal bins, unit
    slopes, the identity.

    Arguments:
        features: :math:`D` (>= 2).
        hidden: widths of MADE's hidden layers.
        bins: :math:`K` (>= 2).
        bound: :math:`B`.
        order: the autoregressive order (a permutation of ``0..D-1``; ``None``: natural).
        seed: seeds MADE's hidden degrees.

    References:
        C. Durkan, A. Bekasov, I. Murray and G. Papamakarios (2019). Neural spline flows.
        NeurIPS (section 3.2, the autoregressive RQ-NSF (AR)).

    Example:
        >>> t = MaskedSplineAutoregressive(3, [16], bins=4)
        >>> x = torch.randn(4, 3)
        >>> torch.allclose(t.inverse(t(x)[0])[0], x, atol=1e-5)
        True
    """

    def __init__(self, features: int, hidden: Sequence[int] = (64, 64), *, bins: int = 8,
                 bound: float = 3.0, order: Sequence[int] | torch.Tensor | None = None,
                 seed: int = 0) -> None:
        bins = check_int(bins, "bins", minimum=2)
        super().__init__(features, hidden, 3 * bins - 1, order, seed)
        self.bins, self.bound = bins, check_positive(bound, "bound")

    def _spline(self, values: torch.Tensor, given: torch.Tensor, inverse: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The splines that ``given`` (the data side) parametrise, applied to ``values``."""
        p, k = self.made(given), self.bins
        return rational_quadratic_spline(values, p[..., :k], p[..., k:2 * k], p[..., 2 * k:],
                                         inverse=inverse, bound=self.bound)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(x, (self.features,))
        z, log_d = self._spline(x, x, inverse=False)
        return z, log_d.sum(1)

    def _inverse_given(self, z: torch.Tensor, x: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        y, log_d = self._spline(z, x, inverse=True)
        return y, log_d.sum(1)


def _maf_transform(features: int, n_layers: int, hidden: Sequence[int],
                   max_log_scale: float, normalize: bool) -> Chain:
    d = check_int(features, "features", minimum=2)
    blocks = []
    for i in range(check_int(n_layers, "n_layers")):
        block: list[Transform] = [MaskedAffineAutoregressive(d, hidden, seed=i,
                                                             max_log_scale=max_log_scale)]
        if normalize:
            block.append(ElementwiseAffine(d))
        blocks.append(block)
    return _chain_reversing_between(d, blocks)


def _chain_reversing_between(features: int, blocks: Sequence[Sequence[Transform]]) -> Chain:
    """The blocks in a chain, the order of the features reversed between consecutive ones:
    each autoregressive layer conditions in the opposite order of the one before."""
    layers: list[Transform] = []
    for i, block in enumerate(blocks):
        if i > 0:
            layers.append(Permutation(torch.arange(features - 1, -1, -1)))
        layers.extend(block)
    return Chain(layers)


def maf(features: int, n_layers: int = 5, hidden: Sequence[int] = (64, 64), *,
        max_log_scale: float = 3.0, normalize: bool = True) -> Flow:
    r"""A masked autoregressive flow: ``n_layers`` MADE affine layers, reversing the order of
    the features between layers (Papamakarios et al., 2017, section 3), each followed by a
    learned elementwise affine layer when ``normalize`` (the paper uses batch norm there).

    ``log_prob`` costs one pass per layer; ``sample`` costs ``features`` passes per layer.

    Arguments:
        features: :math:`D` (>= 2).
        n_layers: the number of MADE layers.
        hidden: the hidden sizes of each MADE.
        max_log_scale: the soft bound :math:`c \tanh(s / c)` on every log-scale.
        normalize: a learned elementwise affine layer after every MADE layer.

    Returns:
        A :class:`~dgm_lab.flows.base.Flow` on ``[n, features]`` with a standard normal base.

    References:
        G. Papamakarios, T. Pavlakou and I. Murray (2017). Masked autoregressive flow for
        density estimation. NeurIPS (eq. 2-4).

    Example:
        >>> flow = maf(2, n_layers=3, hidden=[32])
        >>> flow.log_prob(torch.randn(5, 2)).shape
        torch.Size([5])
    """
    return Flow(_maf_transform(features, n_layers, hidden, max_log_scale, normalize), features)


def iaf(features: int, n_layers: int = 5, hidden: Sequence[int] = (64, 64), *,
        max_log_scale: float = 3.0, normalize: bool = True) -> Flow:
    """An inverse autoregressive flow: the transform of :func:`maf`, turned around.

    Its noise-to-data direction is MAF's one-pass data-to-noise direction, so sampling (and
    :meth:`~dgm_lab.flows.base.Flow.sample_with_log_prob`) costs one pass per layer, while
    ``log_prob`` of a given point costs ``features`` passes per layer (Kingma et al., 2016).

    Arguments:
        features, n_layers, hidden, max_log_scale, normalize: as in :func:`maf`.

    Returns:
        A :class:`~dgm_lab.flows.base.Flow` on ``[n, features]`` with a standard normal base.

    References:
        D. P. Kingma, T. Salimans, R. Jozefowicz, X. Chen, I. Sutskever and M. Welling (2016).
        Improved variational inference with inverse autoregressive flow. NeurIPS (eq. 10-11).

    Example:
        >>> flow = iaf(2, n_layers=3, hidden=[32])
        >>> x, log_p = flow.sample_with_log_prob(5)
        >>> x.shape, log_p.shape
        (torch.Size([5, 2]), torch.Size([5]))
    """
    return Flow(Inverse(_maf_transform(features, n_layers, hidden, max_log_scale, normalize)),
                features)


def autoregressive_spline_flow(features: int, n_layers: int = 4, hidden: Sequence[int] = (64, 64),
                               *, bins: int = 8, bound: float = 3.0) -> Flow:
    r"""MAF with splines: ``n_layers`` :class:`MaskedSplineAutoregressive` layers, reversing
    the order of the features between layers (the autoregressive neural spline flow,
    RQ-NSF (AR), of Durkan et al., 2019).

    Arguments:
        features: :math:`D` (>= 2).
        n_layers: the number of spline layers.
        hidden: the hidden sizes of each MADE.
        bins: the number of spline bins (>= 2).
        bound: the splines act on :math:`[-B, B]`, the identity outside.

    Returns:
        A :class:`~dgm_lab.flows.base.Flow` on ``[n, features]`` with a standard normal base.

    References:
        C. Durkan, A. Bekasov, I. Murray and G. Papamakarios (2019). Neural spline flows.
        NeurIPS (section 3.2).

    Example:
        >>> flow = autoregressive_spline_flow(2, n_layers=2, hidden=[16], bins=4)
        >>> flow.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """
    d = check_int(features, "features", minimum=2)
    blocks = [[MaskedSplineAutoregressive(d, hidden, bins=bins, bound=bound, seed=i)]
              for i in range(check_int(n_layers, "n_layers"))]
    return Flow(_chain_reversing_between(d, blocks), d)
