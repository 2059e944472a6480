r"""Glow: actnorm, invertible 1x1 convolutions, and affine couplings.

One *step of flow* in Glow (Kingma and Dhariwal, 2018) has three layers, each with a cheap
log-determinant, on an image of :math:`C` channels and :math:`H \times W` pixels:

1. :class:`ActNorm`: a scale and a shift per channel, :math:`z = (x + b) \odot e^{s}`,
   initialised from the first batch so that every channel comes out with mean 0 and
   standard deviation 1, then trained as ordinary parameters (batch normalisation without
   its dependence on the batch). :math:`\log|\det| = HW \sum_c s_c`.
2. :class:`InvertibleConv1x1`: the same invertible :math:`C \times C` matrix :math:`W`
   applied to the channel vector of every pixel, a learned generalisation of the fixed
   permutations of RealNVP. :math:`\log|\det| = HW \log|\det W|`. Written as
   :math:`W = P L (U + \operatorname{diag}(\sigma \odot e^{v}))` (an LU decomposition with
   a fixed permutation :math:`P`, a unit lower-triangular :math:`L`, a strictly upper
   triangular :math:`U` and fixed signs :math:`\sigma`), the determinant costs
   :math:`O(C)` instead of :math:`O(C^3)`: :math:`\log|\det W| = \sum_c v_c`.
3. :class:`~dgm_lab.flows.coupling.AffineCoupling` with a channel mask and a convolutional
   conditioner whose last layer starts at zero (each step starts as the identity).

On vectors (``[n, C]``) actnorm and the 1x1 convolution are the same maps with
:math:`H = W = 1`: a normalisation and an invertible linear layer.

Glow's multi-scale architecture (squeeze, :math:`K` steps, split off half of the channels
as latent variables, repeat) is described in the book; :func:`glow` builds the single-scale
version used on the 8x8 digits, where factoring out changes nothing in the likelihood.

References:
    D. P. Kingma and P. Dhariwal (2018). Glow: generative flow with invertible 1x1
    convolutions. NeurIPS. Section 3, table 1 (the three layers and their log-determinants).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dgm_lab._validation import check_bool, check_int
from dgm_lab.flows.base import Chain, Flow, Logit, Reshape, Squeeze, Transform
from dgm_lab.flows.coupling import AffineCoupling, ConvNet, channel_mask, checkerboard_mask

__all__ = ["ActNorm", "InvertibleConv1x1", "actnorm_parameters", "glow", "real_nvp_image"]


def _channels_and_pixels(x: torch.Tensor, channels: int, name: str) -> int:
    """Check ``x`` is ``[n, C]`` or ``[n, C, H, W]``; return the number of pixels ``H*W``."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor")
    if x.dim() not in (2, 4) or x.shape[1] != channels:
        raise ValueError(f"{name} must have shape [n, {channels}] or [n, {channels}, H, W], "
                         f"got {tuple(x.shape)}")
    return 1 if x.dim() == 2 else x.shape[2] * x.shape[3]


def _per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a ``[C]`` vector against ``[n, C]`` or ``[n, C, H, W]``."""
    return v if x.dim() == 2 else v[:, None, None]


def actnorm_parameters(x: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Glow's data-dependent initialisation: the shift :math:`b` and log-scale :math:`s` that
    give every channel of the batch mean 0 and standard deviation 1 after
    :math:`z = (x + b) \odot e^{s}`.

    :math:`b_c = -\bar x_c` and :math:`s_c = -\log(\hat\sigma_c + \epsilon)`, with the mean
    and the (biased) standard deviation over the batch and the pixels of channel :math:`c`.

    Arguments:
        x: a batch ``[n, C]`` or ``[n, C, H, W]``.
        eps: added to the standard deviation (a constant channel gets scale :math:`1/\epsilon`).

    Returns:
        ``(shift [C], log_scale [C])``.

    Example:
        >>> b, s = actnorm_parameters(torch.tensor([[1.0], [3.0]]))
        >>> b, s.exp()
        (tensor([-2.]), tensor([1.0000]))
    """
    if not isinstance(x, torch.Tensor) or x.dim() not in (2, 4) or len(x) < 1:
        raise ValueError("x must be a tensor [n, C] or [n, C, H, W] with n >= 1")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    dims = (0,) if x.dim() == 2 else (0, 2, 3)
    mean = x.mean(dims)
    std = x.var(dims, unbiased=False).sqrt()
    return -mean, -torch.log(std + eps)


class ActNorm(Transform):
    r"""Activation normalisation: :math:`z = (x + b) \odot e^{s}` per channel.

    The first call in training mode sets :math:`b` and :math:`s` from that batch
    (:func:`actnorm_parameters`) and marks the layer initialised (a buffer, saved in the
    ``state_dict``); after that they are ordinary trained parameters. ``initialize(x)`` does
    the same explicitly.

    Arguments:
        channels: :math:`C`.

    References:
        D. P. Kingma and P. Dhariwal (2018). Glow. Section 3.1.

    Example:
        >>> layer = ActNorm(3)
        >>> z, logdet = layer(torch.randn(100, 3) * 5 + 2)   # initialises on this batch
        >>> z.std(0, unbiased=False)
        tensor([1.0000, 1.0000, 1.0000], grad_fn=<StdBackward0>)
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = check_int(channels, "channels")
        self.shift = nn.Parameter(torch.zeros(self.channels))
        self.log_scale = nn.Parameter(torch.zeros(self.channels))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Set the shift and scale from the batch ``x`` (data-dependent initialisation)."""
        _channels_and_pixels(x, self.channels, "x")
        shift, log_scale = actnorm_parameters(x)
        self.shift.copy_(shift)
        self.log_scale.copy_(log_scale)
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = _channels_and_pixels(x, self.channels, "x")
        if self.training and not bool(self.initialized):
            self.initialize(x)
        z = (x + _per_channel(self.shift, x)) * _per_channel(self.log_scale.exp(), x)
        return z, (pixels * self.log_scale.sum()).expand(len(x))

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = _channels_and_pixels(z, self.channels, "z")
        x = z * _per_channel(torch.exp(-self.log_scale), z) - _per_channel(self.shift, z)
        return x, (-pixels * self.log_scale.sum()).expand(len(z))


class InvertibleConv1x1(Transform):
    r"""An invertible :math:`C \times C` matrix applied to every pixel's channels.

    With ``lu=True`` (default) :math:`W = P L (U + \operatorname{diag}(\sigma \odot e^{v}))`
    and :math:`\log|\det W| = \sum_c v_c`; with ``lu=False`` :math:`W` is a free matrix and
    the log-determinant is ``torch.linalg.slogdet(W)``, :math:`O(C^3)`. Both start from a
    random rotation (Glow's initialisation), so the layer starts volume-preserving.

    Arguments:
        channels: :math:`C` (for vector events, the number of features).
        lu: use the LU parametrisation (Kingma and Dhariwal, 2018, section 3.2).

    References:
        D. P. Kingma and P. Dhariwal (2018). Glow. Section 3.2, eq. 9-10.

    Example:
        >>> conv = InvertibleConv1x1(4)
        >>> z, logdet = conv(torch.randn(2, 4, 3, 3))
        >>> z.shape, logdet.abs().max() < 1e-5
        (torch.Size([2, 4, 3, 3]), tensor(True))
    """

    def __init__(self, channels: int, *, lu: bool = True) -> None:
        super().__init__()
        self.channels = c = check_int(channels, "channels")
        self.lu = check_bool(lu, "lu")
        rotation = torch.linalg.qr(torch.randn(c, c))[0]
        if self.lu:
            p, lower, upper = torch.linalg.lu(rotation)
            diag = upper.diagonal()
            self.register_buffer("permutation", p)
            self.register_buffer("sign", diag.sign())
            self.register_buffer("lower_mask", torch.tril(torch.ones(c, c), -1))
            self.lower = nn.Parameter(lower * self.lower_mask)
            self.upper = nn.Parameter(torch.triu(upper, 1))
            self.log_diag = nn.Parameter(diag.abs().log())
        else:
            self.weight = nn.Parameter(rotation)

    def matrix(self) -> torch.Tensor:
        """The current :math:`W` ``[C, C]``."""
        if not self.lu:
            return self.weight
        eye = torch.eye(self.channels, device=self.lower.device, dtype=self.lower.dtype)
        lower = self.lower * self.lower_mask + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign * self.log_diag.exp())
        return self.permutation @ lower @ upper

    def log_abs_det(self) -> torch.Tensor:
        r""":math:`\log|\det W|`: :math:`\sum_c v_c` with LU, else ``slogdet``."""
        return self.log_diag.sum() if self.lu else torch.linalg.slogdet(self.weight)[1]

    @staticmethod
    def _mix_channels(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x @ w.T if x.dim() == 2 else torch.einsum("oc,nchw->nohw", w, x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = _channels_and_pixels(x, self.channels, "x")
        return self._mix_channels(self.matrix(), x), (pixels * self.log_abs_det()).expand(len(x))

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = _channels_and_pixels(z, self.channels, "z")
        w_inv = torch.linalg.inv(self.matrix())
        return self._mix_channels(w_inv, z), (-pixels * self.log_abs_det()).expand(len(z))


def _image_flow(shape: Sequence[int], steps: list[Transform], logit: bool) -> Flow:
    c, h, w = (check_int(s, "each entry of shape") for s in shape)
    d = c * h * w
    head: list[Transform] = [Logit(d)] if logit else []
    head.append(Reshape(d, (c, h, w)))
    return Flow(Chain(head + steps), d)


def glow(shape: Sequence[int] = (1, 8, 8), n_steps: int = 8, hidden: int = 64, *,
         logit: bool = True, max_log_scale: float = 3.0) -> Flow:
    r"""Single-scale Glow on flattened images: (logit,) squeeze, then ``n_steps`` steps of
    actnorm, invertible 1x1 convolution and affine coupling with a channel mask.

    The flow's events are flattened images ``[n, C*H*W]`` in :math:`(0, 1)` (with
    ``logit``), e.g. the dequantised digits (``shape=(1, 8, 8)``).

    Arguments:
        shape: ``(C, H, W)`` of one image, with even ``H`` and ``W`` (the squeeze).
        n_steps: the number of flow steps after the squeeze.
        hidden: the channels of each coupling's convolutional network.
        logit: start with a :class:`~dgm_lab.flows.base.Logit` (events in :math:`[0, 1]`).
        max_log_scale: the soft bound :math:`c \tanh(s / c)` on every log-scale.

    Returns:
        A :class:`~dgm_lab.flows.base.Flow` on ``[n, C*H*W]`` with a standard normal base.

    References:
        D. P. Kingma and P. Dhariwal (2018). Glow: generative flow with invertible 1x1
        convolutions. NeurIPS (table 1, fig. 2).

    Example:
        >>> flow = glow((1, 4, 4), n_steps=2, hidden=8)
        >>> flow.log_prob(torch.rand(3, 16)).shape
        torch.Size([3])
    """
    c, h, w = shape
    squeeze = Squeeze((c, h, w))
    sc, sh, sw = squeeze.out_shape
    steps: list[Transform] = [squeeze]
    for i in range(check_int(n_steps, "n_steps")):
        steps += [ActNorm(sc), InvertibleConv1x1(sc),
                  AffineCoupling(channel_mask((sc, sh, sw), i % 2), ConvNet(sc, 2 * sc, hidden),
                                 max_log_scale=max_log_scale)]
    return _image_flow(shape, steps, logit)


def real_nvp_image(shape: Sequence[int] = (1, 8, 8), n_blocks: int = 3, hidden: int = 64, *,
                   logit: bool = True, max_log_scale: float = 3.0) -> Flow:
    r"""RealNVP's image architecture at one scale: ``n_blocks`` affine couplings with
    alternating checkerboard masks at full resolution, a squeeze, then ``n_blocks`` with
    alternating channel masks (Dinh et al., 2017, section 3.6), each followed by an actnorm.

    Arguments:
        shape: ``(C, H, W)`` of one image, with even ``H`` and ``W`` (the squeeze).
        n_blocks: the couplings before and after the squeeze (each).
        hidden: the channels of each coupling's convolutional network.
        logit: start with a :class:`~dgm_lab.flows.base.Logit` (events in :math:`[0, 1]`).
        max_log_scale: the soft bound :math:`c \tanh(s / c)` on every log-scale.

    Returns:
        A :class:`~dgm_lab.flows.base.Flow` on ``[n, C*H*W]`` with a standard normal base.

    References:
        L. Dinh, J. Sohl-Dickstein and S. Bengio (2017). Density estimation using Real NVP.
        ICLR (section 3.6).

    Example:
        >>> flow = real_nvp_image((1, 4, 4), n_blocks=2, hidden=8)
        >>> flow.sample(2).shape
        torch.Size([2, 16])
    """
    c, h, w = shape
    n = check_int(n_blocks, "n_blocks")
    steps: list[Transform] = []
    for i in range(n):
        steps += [AffineCoupling(checkerboard_mask((c, h, w), i % 2),
                                 ConvNet(c, 2 * c, hidden), max_log_scale=max_log_scale),
                  ActNorm(c)]
    squeeze = Squeeze((c, h, w))
    sc, sh, sw = squeeze.out_shape
    steps.append(squeeze)
    for i in range(n):
        steps += [AffineCoupling(channel_mask((sc, sh, sw), i % 2),
                                 ConvNet(sc, 2 * sc, hidden), max_log_scale=max_log_scale),
                  ActNorm(sc)]
    return _image_flow(shape, steps, logit)
