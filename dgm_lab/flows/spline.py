r"""Neural spline flows: coupling layers with monotone rational-quadratic splines.

An affine coupling moves and stretches each transformed coordinate as a whole; a spline
coupling bends it. On :math:`[-B, B]` the map is a monotone rational-quadratic spline with
:math:`K` bins: the conditioner network gives every bin a width and a height (softmax, so
they tile the interval) and every inner knot a positive derivative. On bin :math:`k`, with
knots :math:`(x_k, y_k)`, width :math:`w_k`, height :math:`h_k`, slope :math:`s_k = h_k /
w_k`, knot derivatives :math:`\delta_k, \delta_{k+1}` and :math:`\xi = (x - x_k) / w_k
\in [0, 1]`,

.. math:: y = y_k + \frac{h_k\,\big(s_k \xi^2 + \delta_k \xi (1 - \xi)\big)}
          {s_k + (\delta_{k+1} + \delta_k - 2 s_k)\, \xi (1 - \xi)},
          \qquad
          \frac{dy}{dx} = \frac{s_k^2 \big(\delta_{k+1} \xi^2 + 2 s_k \xi (1 - \xi)
          + \delta_k (1 - \xi)^2\big)}{\big(s_k + (\delta_{k+1} + \delta_k - 2 s_k)\,
          \xi (1 - \xi)\big)^2},

which is strictly increasing (so invertible), and whose inverse is the root of a quadratic
in :math:`\xi`. Outside :math:`[-B, B]` the map is the identity; the boundary derivatives are
1 so the pieces join smoothly. Each bin can put a different slope, and so a different
density, on its piece of the line: with a handful of bins one layer can make a coordinate
multimodal, which an affine layer cannot.

References:
    C. Durkan, A. Bekasov, I. Murray and G. Papamakarios (2019). Neural spline flows.
    NeurIPS (section 3.1, eq. 4-8 and appendix A: the spline, its derivative, its inverse).
    J. A. Gregory and R. Delbourgo (1982). Piecewise rational quadratic interpolation to
    monotonic data. IMA Journal of Numerical Analysis 2 (the rational-quadratic form).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.nn import functional as F

from dgm_lab._validation import check_int, check_positive
from dgm_lab.flows.base import Chain, Flow, Permutation, Transform, check_event
from dgm_lab.flows.coupling import _Coupling, alternating_mask, mlp

__all__ = ["SplineCoupling", "neural_spline_flow", "rational_quadratic_spline"]

# the raw derivative 0 gives derivative 1: softplus(_ONE) = 1 - MIN_DERIVATIVE
MIN_BIN = 1e-3  # the smallest width or height of a bin, as a fraction of the interval
MIN_DERIVATIVE = 1e-3
_ONE = math.log(math.expm1(1 - MIN_DERIVATIVE))


def _knots(raw: torch.Tensor, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin sizes ``[..., K]`` (softmax, at least ``MIN_BIN`` of ``2 bound``) and the ``K + 1``
    knot positions from ``-bound`` to ``bound``."""
    k = raw.shape[-1]
    size = MIN_BIN + (1 - MIN_BIN * k) * torch.softmax(raw, dim=-1)
    knots = F.pad(torch.cumsum(size, dim=-1), (1, 0)) * 2 * bound - bound
    # the end knots exactly at +-bound (the cumulative sum may miss 1 by rounding)
    knots = torch.cat([torch.full_like(knots[..., :1], -bound), knots[..., 1:-1],
                       torch.full_like(knots[..., :1], bound)], dim=-1)
    return knots[..., 1:] - knots[..., :-1], knots


def _gather(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return t.gather(-1, index[..., None])[..., 0]


def rational_quadratic_spline(x: torch.Tensor, widths: torch.Tensor, heights: torch.Tensor,
                              derivatives: torch.Tensor, *, inverse: bool = False,
                              bound: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Apply a monotone rational-quadratic spline elementwise, the identity outside
    :math:`[-B, B]`.

    Arguments:
        x: ``[...]`` the inputs (the outputs :math:`y` when ``inverse``).
        widths, heights: ``[..., K]`` unnormalised bin widths and heights (a softmax turns
            them into sizes that tile :math:`[-B, B]`, each at least 1e-3 of it).
        derivatives: ``[..., K - 1]`` unnormalised derivatives at the inner knots (a shifted
            softplus, so 0 means slope 1; the end knots have slope 1).
        inverse: compute :math:`x` from :math:`y` instead.
        bound: :math:`B`.

    Returns:
        The outputs ``[...]`` and the log of the absolute derivative of the map applied,
        ``[...]`` (:math:`\log dy/dx`, or :math:`\log dx/dy` when ``inverse``).

    References:
        C. Durkan et al. (2019). Neural spline flows. NeurIPS. Eq. 4-8 and appendix A.

    Example:
        >>> y, logd = rational_quadratic_spline(torch.tensor([0.5]), torch.zeros(1, 4),
        ...                                     torch.zeros(1, 4), torch.zeros(1, 3))
        >>> y, logd.abs() < 1e-6   # equal bins and unit slopes: the identity
        (tensor([0.5000]), tensor([True]))
    """
    bound = check_positive(bound, "bound")
    if widths.shape != heights.shape or widths.shape[:-1] != x.shape:
        raise ValueError(f"widths and heights must have shape [*x.shape, K] = "
                         f"{(*x.shape, 'K')}, got {tuple(widths.shape)} and "
                         f"{tuple(heights.shape)}")
    if derivatives.shape != (*x.shape, widths.shape[-1] - 1):
        raise ValueError(f"derivatives must have shape [*x.shape, K - 1], got "
                         f"{tuple(derivatives.shape)} with K = {widths.shape[-1]}")
    inside = (x > -bound) & (x < bound)
    xc = x.clamp(-bound, bound)  # outside values never reach the spline (no NaN gradients)
    w, x_knots = _knots(widths, bound)
    h, y_knots = _knots(heights, bound)
    d = MIN_DERIVATIVE + F.softplus(derivatives + _ONE)
    d = F.pad(d, (1, 1), value=1.0)  # slope 1 at -B and B: the identity tails join smoothly
    # the bin of each point, among the knots of its own side
    knots = y_knots if inverse else x_knots
    k = (torch.searchsorted(knots[..., 1:-1].contiguous(), xc[..., None].contiguous(),
                            right=True)[..., 0])
    xk, yk, wk, hk = (_gather(t, k) for t in (x_knots, y_knots, w, h))
    dk, dk1 = _gather(d, k), _gather(d, k + 1)
    s = hk / wk
    curve = dk1 + dk - 2 * s  # how far the bin bends away from the straight line
    if inverse:
        dy = xc - yk
        a = hk * (s - dk) + dy * curve
        b = hk * dk - dy * curve
        c = -s * dy
        # the root in [0, 1] of a xi^2 + b xi + c, written to avoid cancellation
        xi = (2 * c) / (-b - torch.sqrt((b.square() - 4 * a * c).clamp_min(0)))
        out = xk + xi * wk
    else:
        xi = (xc - xk) / wk
        out = yk + hk * (s * xi.square() + dk * xi * (1 - xi)) / (s + curve * xi * (1 - xi))
    xi1 = xi * (1 - xi)
    denom = s + curve * xi1
    log_dydx = (2 * torch.log(s) + torch.log(dk1 * xi.square() + 2 * s * xi1
                                              + dk * (1 - xi).square()) - 2 * torch.log(denom))
    logd = -log_dydx if inverse else log_dydx
    return torch.where(inside, out, x), torch.where(inside, logd, torch.zeros_like(logd))


class SplineCoupling(_Coupling):
    r"""A coupling layer whose elementwise map is a rational-quadratic spline.

    The kept half (mask 1) passes through and the conditioner reads it; each other
    coordinate goes through its own spline with :math:`K` bins on :math:`[-B, B]` (identity
    outside), whose :math:`3K - 1` parameters the conditioner outputs.
    :math:`\log|\det| = \sum_j (1 - m_j) \log \frac{dz_j}{dx_j}`. A conditioner whose last
    layer is zero (as :func:`~dgm_lab.flows.coupling.mlp` builds it) gives equal bins and unit
    slopes: the layer starts as the identity.

    Arguments:
        mask: ``[*shape]`` zeros and ones; the ones pass through and condition the rest.
        net: maps ``[n, *shape]`` to ``[n, (3K - 1) * prod(shape)]``, e.g.
            ``mlp(D, (3 * K - 1) * D)``, read as ``[n, 3K - 1, *shape]``: the :math:`K`
            widths, the :math:`K` heights, then the :math:`K - 1` inner derivatives.
        bins: :math:`K` (default 8).
        bound: :math:`B` (default 3).

    References:
        C. Durkan, A. Bekasov, I. Murray and G. Papamakarios (2019). Neural spline flows.
        NeurIPS. Section 3.

    Example:
        >>> layer = SplineCoupling(alternating_mask(2), mlp(2, 2 * 23, [16]), bins=8)
        >>> x = torch.randn(3, 2)
        >>> torch.allclose(layer.inverse(layer(x)[0])[0], x, atol=1e-5)
        True
    """

    def __init__(self, mask: torch.Tensor, net: torch.nn.Module, *, bins: int = 8,
                 bound: float = 3.0) -> None:
        self.bins = check_int(bins, "bins", minimum=2)
        self.n_params = 3 * self.bins - 1
        super().__init__(mask, net)
        self.bound = check_positive(bound, "bound")

    def _spline(self, x: torch.Tensor, kept: torch.Tensor, inverse: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
        p = self._params(kept).movedim(1, -1)  # [n, *shape, 3K - 1]
        k = self.bins
        y, logd = rational_quadratic_spline(x, p[..., :k], p[..., k:2 * k], p[..., 2 * k:],
                                            inverse=inverse, bound=self.bound)
        keep = self.mask
        return keep * x + (1 - keep) * y, ((1 - keep) * logd).reshape(len(x), -1).sum(1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(x, self.shape)
        return self._spline(x, x * self.mask, inverse=False)

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(z, self.shape, "z")
        return self._spline(z, z * self.mask, inverse=True)


def neural_spline_flow(features: int, n_layers: int = 4, hidden: Sequence[int] = (64, 64), *,
                       bins: int = 8, bound: float = 3.0) -> Flow:
    """A neural spline flow on vectors (coupling version, Durkan et al., 2019): ``n_layers``
    spline couplings with alternating masks, reversing the features after every other layer
    when ``features > 2`` (as :func:`~dgm_lab.flows.coupling.real_nvp` does).

    Arguments:
        features: :math:`D` (>= 2).
        n_layers: the number of spline couplings.
        hidden: the hidden sizes of each coupling's network.
        bins: the number of spline bins (>= 2).
        bound: the spline acts on :math:`[-B, B]`, the identity outside.

    Returns:
        A :class:`~dgm_lab.flows.base.Flow` on ``[n, features]`` with a standard normal base.

    References:
        C. Durkan, A. Bekasov, I. Murray and G. Papamakarios (2019). Neural spline flows.
        NeurIPS (section 3.1, eq. 4-6).

    Example:
        >>> flow = neural_spline_flow(2, n_layers=2, hidden=[16], bins=4)
        >>> flow.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """
    d = check_int(features, "features", minimum=2)
    bins = check_int(bins, "bins", minimum=2)
    layers: list[Transform] = []
    for i in range(check_int(n_layers, "n_layers")):
        layers.append(SplineCoupling(alternating_mask(d, i % 2),
                                     mlp(d, (3 * bins - 1) * d, hidden), bins=bins, bound=bound))
        if d > 2 and i % 2 == 1:
            layers.append(Permutation(torch.arange(d - 1, -1, -1)))
    return Flow(Chain(layers), d)
