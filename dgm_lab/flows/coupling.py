r"""Coupling layers: NICE's additive coupling and RealNVP's affine coupling.

A coupling layer splits the dimensions with a binary mask :math:`m`. The masked half
passes through unchanged and conditions an elementwise transformation of the other half:

.. math:: z = m \odot x + (1 - m) \odot \big(x \odot e^{s(m \odot x)} + t(m \odot x)\big).

Because :math:`s` and :math:`t` only read the half that does not change, the inverse
recomputes them from :math:`z` (whose masked half *is* that of :math:`x`) and undoes the
affine step, :math:`x = m \odot z + (1 - m) \odot (z - t) \odot e^{-s}`, however
complicated the networks :math:`s` and :math:`t` are. Sorting the dimensions so that the
unchanged ones come first, the Jacobian is triangular,

.. math:: \frac{\partial z}{\partial x} = \begin{pmatrix} I & 0 \\ \ast &
          \operatorname{diag}\big(e^{s}\big) \end{pmatrix},
          \qquad \log\Big|\det \frac{\partial z}{\partial x}\Big| = \sum_j (1 - m_j)\, s_j,

so the determinant needs no matrix at all. NICE (:class:`AdditiveCoupling`) is the case
:math:`s = 0`: volume-preserving, so a NICE flow changes volume only in its final diagonal
scaling (:class:`~dgm_lab.flows.base.ElementwiseAffine`). RealNVP (:class:`AffineCoupling`)
learns :math:`s`. Masks alternate between layers so that every dimension gets transformed:
:func:`alternating_mask` for vectors, :func:`checkerboard_mask` and :func:`channel_mask` for
images (RealNVP's two kinds).

References:
    L. Dinh, D. Krueger and Y. Bengio (2015). NICE: Non-linear independent components
    estimation. ICLR workshop (section 3.2, eq. 3-4: additive coupling).
    L. Dinh, J. Sohl-Dickstein and S. Bengio (2017). Density estimation using Real NVP. ICLR
    (section 3.3, eq. 4-9: affine coupling, masks; section 3.4: multi-scale architecture).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from dgm_lab._validation import check_int, check_positive
from dgm_lab.flows.base import Chain, ElementwiseAffine, Flow, Permutation, Transform, check_event

__all__ = ["AdditiveCoupling", "AffineCoupling", "ConvNet", "alternating_mask",
           "channel_mask", "checkerboard_mask", "mlp", "nice", "real_nvp"]


# --------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------

def alternating_mask(features: int, parity: int = 0) -> torch.Tensor:
    """``[D]`` float mask with ones on the even (``parity=0``) or odd (``parity=1``) indices.

    Arguments:
        features: :math:`D` (>= 2).
        parity: 0 or 1; the two parities are complementary.

    Returns:
        A float tensor ``[D]`` of zeros and ones (1: the coordinate is kept).

    References:
        L. Dinh, D. Krueger and Y. Bengio (2015). NICE. ICLR workshop (section 3.2).

    Example:
        >>> alternating_mask(5, 1)
        tensor([0., 1., 0., 1., 0.])
    """
    features = check_int(features, "features", minimum=2)
    return ((torch.arange(features) + _parity(parity)) % 2 == 0).float()


def checkerboard_mask(shape: Sequence[int], parity: int = 0) -> torch.Tensor:
    """``[C, H, W]`` float mask of a checkerboard over the pixels, the same in every channel.

    Pixel ``(i, j)`` is kept (mask 1) when ``i + j + parity`` is even (RealNVP, fig. 3 left).

    Arguments:
        shape: ``(C, H, W)``.
        parity: 0 or 1; the two parities are complementary.

    Returns:
        A float tensor ``[C, H, W]`` of zeros and ones.

    References:
        L. Dinh, J. Sohl-Dickstein and S. Bengio (2017). Density estimation using Real NVP.
        ICLR (section 3.4, fig. 3).

    Example:
        >>> checkerboard_mask((1, 2, 2))[0]
        tensor([[1., 0.],
                [0., 1.]])
    """
    c, h, w = _image_shape(shape)
    ij = torch.arange(h)[:, None] + torch.arange(w)[None, :]
    return ((ij + _parity(parity)) % 2 == 0).float().expand(c, h, w).clone()


def channel_mask(shape: Sequence[int], parity: int = 0) -> torch.Tensor:
    r"""``[C, H, W]`` float mask keeping the first half of the channels (``parity=0``) or the
    second half (``parity=1``) (RealNVP, fig. 3 right).

    Arguments:
        shape: ``(C, H, W)`` with :math:`C \ge 2`.
        parity: 0 or 1; the two parities are complementary.

    Returns:
        A float tensor ``[C, H, W]`` of zeros and ones.

    References:
        L. Dinh, J. Sohl-Dickstein and S. Bengio (2017). Density estimation using Real NVP.
        ICLR (section 3.4, fig. 3).

    Example:
        >>> channel_mask((2, 1, 1)).flatten()
        tensor([1., 0.])
    """
    c, h, w = _image_shape(shape)
    if c < 2:
        raise ValueError(f"a channel mask needs at least 2 channels, got shape {(c, h, w)}")
    first = (torch.arange(c) < c // 2).float()
    keep = first if _parity(parity) == 0 else 1 - first
    return keep[:, None, None].expand(c, h, w).clone()


def _parity(parity: object) -> int:
    if parity not in (0, 1) or isinstance(parity, bool):
        raise ValueError(f"parity must be 0 or 1, got {parity!r}")
    return int(parity)


def _image_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(shape)
    if len(shape) != 3:
        raise ValueError(f"shape must be (channels, height, width), got {shape}")
    return tuple(check_int(s, "each entry of shape") for s in shape)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------
# conditioner networks
# --------------------------------------------------------------------------------------

def mlp(in_features: int, out_features: int, hidden: Sequence[int] = (64, 64), *,
        activation: type[nn.Module] = nn.ReLU, zero_last: bool = True) -> nn.Sequential:
    """A multilayer perceptron; with ``zero_last`` its last layer starts at zero.

    A conditioner that outputs zeros makes its coupling layer the identity, so a deep flow
    starts as the base density and is stable from the first step (Glow, section 3.3).

    Arguments:
        in_features, out_features: the input and output widths.
        hidden: the hidden widths.
        activation: the nonlinearity between layers (a module class).
        zero_last: start the last layer's weight and bias at zero.

    Returns:
        An ``nn.Sequential`` mapping ``[n, in_features]`` to ``[n, out_features]``.

    References:
        D. P. Kingma and P. Dhariwal (2018). Glow. NeurIPS (section 3.3, zero initialisation).

    Example:
        >>> net = mlp(2, 4, [8])
        >>> net(torch.randn(3, 2)).abs().max().item()
        0.0
    """
    sizes = [check_int(in_features, "in_features"), *[check_int(h, "hidden") for h in hidden],
             check_int(out_features, "out_features")]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(a, b), activation()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    if zero_last:
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


class ConvNet(nn.Module):
    """A small convolutional conditioner for images: 3x3, 1x1, 3x3 convolutions.

    Maps ``[n, C_in, H, W]`` to ``[n, C_out, H, W]`` (padding keeps the size); the last
    convolution starts at zero, as in Glow's affine coupling (section 3.3).

    Arguments:
        in_channels, out_channels: channels in and out.
        hidden: channels of the two hidden layers (default 64).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64, *,
                 zero_last: bool = True) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(check_int(in_channels, "in_channels"), check_int(hidden, "hidden"), 3,
                      padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
            nn.Conv2d(hidden, check_int(out_channels, "out_channels"), 3, padding=1))
        if zero_last:
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --------------------------------------------------------------------------------------
# coupling layers
# --------------------------------------------------------------------------------------

class _Coupling(Transform):
    """What both couplings share: the mask, the conditioner, the shape checks."""

    n_params = 1  # numbers the conditioner outputs per dimension

    def __init__(self, mask: torch.Tensor, net: nn.Module) -> None:
        super().__init__()
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        if not ((mask == 0) | (mask == 1)).all() or mask.all() or not mask.any():
            raise ValueError("mask must hold zeros and ones, with at least one of each")
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be an nn.Module, got {type(net).__name__}")
        self.register_buffer("mask", mask.float())
        self.net = net

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.mask.shape)

    def _params(self, kept: torch.Tensor) -> torch.Tensor:
        """``[n, n_params, *shape]``: the conditioner's output for the kept half ``m * x``."""
        out = self.net(kept)
        want = (len(kept), self.n_params * self.mask.numel())
        if out.numel() != math.prod(want):
            raise ValueError(f"net must output {self.n_params} numbers per dimension, shape "
                             f"[n, {self.n_params} * {self.shape}], got {tuple(out.shape)}")
        return out.reshape(len(kept), self.n_params, *self.shape)


class AdditiveCoupling(_Coupling):
    r"""NICE's additive coupling, :math:`z = x + (1 - m) \odot t(m \odot x)`: determinant 1.

    Arguments:
        mask: ``[*shape]`` zeros and ones; the ones pass through and condition the rest.
        net: maps ``[n, *shape]`` (the masked input) to ``[n, *shape]`` (the shift
            :math:`t`); e.g. ``mlp(D, D)`` or ``ConvNet(C, C)``.

    References:
        L. Dinh, D. Krueger and Y. Bengio (2015). NICE. Section 3.2, eq. 3-4.

    Example:
        >>> layer = AdditiveCoupling(alternating_mask(4), mlp(4, 4, [16]))
        >>> z, logdet = layer(torch.randn(3, 4))
        >>> logdet
        tensor([0., 0., 0.])
    """

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(x, self.shape)
        t = self._params(x * self.mask)[:, 0]
        return x + (1 - self.mask) * t, x.new_zeros(len(x))

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(z, self.shape, "z")
        t = self._params(z * self.mask)[:, 0]
        return z - (1 - self.mask) * t, z.new_zeros(len(z))


class AffineCoupling(_Coupling):
    r"""RealNVP's affine coupling, :math:`z = m \odot x + (1 - m) \odot (x \odot e^{s} + t)`.

    The conditioner returns a raw scale :math:`\tilde s` and the shift :math:`t`; the
    log-scale is :math:`s = c \tanh(\tilde s / c)`, which equals :math:`\tilde s` near 0 but
    never exceeds :math:`\pm c` (RealNVP also bounds :math:`s` with a tanh), so one bad step
    cannot blow up the flow. :math:`\log|\det| = \sum_j (1 - m_j) s_j`.

    Arguments:
        mask: ``[*shape]`` zeros and ones; the ones pass through and condition the rest.
        net: maps ``[n, *shape]`` to ``[n, 2 * prod(shape)]`` (vectors: ``mlp(D, 2 * D)``)
            or ``[n, 2 * C, H, W]`` (images: ``ConvNet(C, 2 * C)``): first :math:`\tilde s`,
            then :math:`t`.
        max_log_scale: the bound :math:`c` (default 3).

    References:
        L. Dinh, J. Sohl-Dickstein and S. Bengio (2017). Density estimation using Real NVP.
        ICLR. Section 3.3, eq. 6-9.

    Example:
        >>> layer = AffineCoupling(alternating_mask(4), mlp(4, 8, [16]))
        >>> x = torch.randn(3, 4)
        >>> torch.allclose(layer.inverse(layer(x)[0])[0], x)
        True
    """

    n_params = 2

    def __init__(self, mask: torch.Tensor, net: nn.Module, *,
                 max_log_scale: float = 3.0) -> None:
        super().__init__(mask, net)
        self.max_log_scale = check_positive(max_log_scale, "max_log_scale")

    def _scale_shift(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_s, t = self._params(kept).unbind(1)
        c = self.max_log_scale
        s = c * torch.tanh(raw_s / c) * (1 - self.mask)  # the kept half is not scaled
        return s, t * (1 - self.mask)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(x, self.shape)
        s, t = self._scale_shift(x * self.mask)
        z = x * torch.exp(s) + t
        return z, s.reshape(len(x), -1).sum(1)

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(z, self.shape, "z")
        s, t = self._scale_shift(z * self.mask)
        x = (z - t) * torch.exp(-s)
        return x, -s.reshape(len(z), -1).sum(1)


# --------------------------------------------------------------------------------------
# the two flows on vectors
# --------------------------------------------------------------------------------------

def nice(features: int, n_layers: int = 4, hidden: Sequence[int] = (64, 64)) -> Flow:
    """NICE on vectors: ``n_layers`` additive couplings with alternating masks, then the
    diagonal scaling (Dinh et al., 2015, section 5.1 used 4 couplings).

    Arguments:
        features: :math:`D` (>= 2).
        n_layers: the number of additive couplings.
        hidden: the hidden sizes of each coupling's network.

    Returns:
        A :class:`~dgm_lab.flows.base.Flow` on ``[n, features]`` with a standard normal base.

    References:
        L. Dinh, D. Krueger and Y. Bengio (2015). NICE: non-linear independent components
        estimation. ICLR workshop (eq. 5-7, section 3.3).

    Example:
        >>> nice(2).log_prob(torch.zeros(1, 2)).shape
        torch.Size([1])
    """
    d = check_int(features, "features", minimum=2)
    layers: list[Transform] = [AdditiveCoupling(alternating_mask(d, i % 2), mlp(d, d, hidden))
                               for i in range(check_int(n_layers, "n_layers"))]
    layers.append(ElementwiseAffine(d, shift=False))
    return Flow(Chain(layers), d)


def real_nvp(features: int, n_layers: int = 8, hidden: Sequence[int] = (64, 64), *,
             max_log_scale: float = 3.0, normalize: bool = True) -> Flow:
    r"""RealNVP on vectors: ``n_layers`` affine couplings with alternating masks.

    With ``normalize`` a learned :class:`~dgm_lab.flows.base.ElementwiseAffine` (an actnorm
    without data-dependent start) follows every coupling, and every other pair of layers
    reverses the order of the features so that, in more than two dimensions, different
    features meet in the conditioners.

    Arguments:
        features: :math:`D` (>= 2).
        n_layers: the number of affine couplings.
        hidden: the hidden sizes of each coupling's network.
        max_log_scale: the soft bound :math:`c \tanh(s / c)` on every log-scale.
        normalize: a learned elementwise affine layer after every coupling.

    Returns:
        A :class:`~dgm_lab.flows.base.Flow` on ``[n, features]`` with a standard normal base.

    References:
        L. Dinh, J. Sohl-Dickstein and S. Bengio (2017). Density estimation using Real NVP.
        ICLR (eq. 6-9).

    Example:
        >>> flow = real_nvp(2, n_layers=4, hidden=[32])
        >>> flow.sample(5).shape
        torch.Size([5, 2])
    """
    d = check_int(features, "features", minimum=2)
    layers: list[Transform] = []
    for i in range(check_int(n_layers, "n_layers")):
        layers.append(AffineCoupling(alternating_mask(d, i % 2), mlp(d, 2 * d, hidden),
                                     max_log_scale=max_log_scale))
        if normalize:
            layers.append(ElementwiseAffine(d))
        if d > 2 and i % 2 == 1:
            layers.append(Permutation(torch.arange(d - 1, -1, -1)))
    return Flow(Chain(layers), d)
