r"""PixelCNN and the gated PixelCNN: masked convolutions over the pixels of an image.

An image of :math:`H \times W` pixels is generated in raster order, row by row and left to
right within a row. PixelRNN (van den Oord, Kalchbrenner and Kavukcuoglu, 2016) reads the
pixels before :math:`(r, c)` with recurrent layers, which must run one row (or pixel) after
another even when the whole image is known. **PixelCNN** replaces them with convolutions whose
kernels are *masked* so that the output at a pixel only sees pixels before it:

* mask **A** (first layer) zeroes the kernel at the centre and after it: the output at
  :math:`(r, c)` sees the rows above and the pixels to its left, never :math:`x_{rc}` itself;
* mask **B** (every later layer) keeps the centre: the features at :math:`(r, c)` already
  depend only on pixels before it, so they may be combined with themselves.

With every conditional computed in one convolutional pass, training and evaluating the
likelihood are parallel over all pixels; sampling still takes one pass per pixel.

A stack of masked :math:`3 \times 3` convolutions has a **blind spot**: the receptive field
grows up and to the left, but the region up and to the *right* of the pixel, beyond the
kernel's reach, is never seen however deep the stack (van den Oord et al., 2016b, fig. 1).
The **gated PixelCNN** removes it with two stacks: a *vertical* stack that sees every pixel in
the rows above (a kernel over the rows above, full width), and a *horizontal* stack that sees
the pixels to the left in the current row and receives the vertical stack's features. Each
layer combines its features with a gate, :math:`\tanh(W_f * h) \odot \sigma(W_g * h)`.

Both models output, for every pixel, one Bernoulli logit (binary images) or :math:`L` logits of
a categorical distribution over the grey levels (the 17 levels of the digits).

References:
    A. van den Oord, N. Kalchbrenner and K. Kavukcuoglu (2016a). Pixel Recurrent Neural
    Networks. ICML (PixelRNN; PixelCNN, section 3.5; masks A and B, fig. 4).
    A. van den Oord, N. Kalchbrenner, L. Espeholt, K. Kavukcuoglu, O. Vinyals and A. Graves
    (2016b). Conditional Image Generation with PixelCNN Decoders. NeurIPS (the blind spot,
    the gated PixelCNN, eq. 2 and fig. 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dgm_lab._validation import check_choice, check_int, check_non_negative
from dgm_lab.autoregressive.base import AutoregressiveModel, draw_levels
from dgm_lab.model import rand

__all__ = ["GatedPixelCNN", "MaskedConv2d", "PixelCNN", "horizontal_mask", "pixelcnn_mask",
           "vertical_mask"]


# --------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------

def pixelcnn_mask(kernel_size: int, mask_type: str) -> torch.Tensor:
    r"""The mask of a PixelCNN convolution over a one-channel image, ``[k, k]``.

    Ones at every kernel position before the centre in raster order (the rows above, and the
    positions to the left in the centre row); the centre itself is 1 for mask ``"B"`` and 0
    for mask ``"A"``; everything after the centre is 0.

    Arguments:
        kernel_size: :math:`k`, odd (so that the kernel has a centre).
        mask_type: ``"A"`` (first layer: a pixel never sees itself) or ``"B"`` (later layers).

    Returns:
        ``[k, k]`` float mask.

    References:
        van den Oord, Kalchbrenner and Kavukcuoglu (2016a), section 3.4 and fig. 4.

    Example:
        >>> pixelcnn_mask(3, "A")
        tensor([[1., 1., 1.],
                [1., 0., 0.],
                [0., 0., 0.]])
    """
    k = _odd(kernel_size, "kernel_size")
    check_choice(mask_type, "mask_type", ("A", "B"))
    centre = k // 2
    position = torch.arange(k * k).reshape(k, k)  # raster index within the kernel
    centre_index = centre * k + centre
    keep = position < centre_index if mask_type == "A" else position <= centre_index
    return keep.float()


def vertical_mask(kernel_size: int, *, include_centre_row: bool) -> torch.Tensor:
    r"""The mask of the gated PixelCNN's vertical stack, ``[k, k]``: the rows above, full width.

    ``include_centre_row=False`` (first layer) sees only the rows strictly above the pixel;
    ``True`` (later layers, whose inputs at row :math:`r` already depend only on the rows
    above :math:`r`) also reads the centre row.

    References:
        van den Oord et al. (2016b), section 2.1 and fig. 2.
    """
    k = _odd(kernel_size, "kernel_size")
    rows = torch.arange(k)[:, None].expand(k, k)
    keep = rows <= k // 2 if include_centre_row else rows < k // 2
    return keep.float()


def horizontal_mask(kernel_size: int, *, include_centre: bool) -> torch.Tensor:
    r"""The mask of the gated PixelCNN's horizontal stack, ``[1, k]``: the pixels to the left.

    ``include_centre=False`` is the first layer (a pixel never sees itself).
    """
    k = _odd(kernel_size, "kernel_size")
    cols = torch.arange(k)[None, :]
    keep = cols <= k // 2 if include_centre else cols < k // 2
    return keep.float()


def _odd(value: object, name: str) -> int:
    k = check_int(value, name)
    if k % 2 == 0:
        raise ValueError(f"{name} must be odd (a kernel with a centre), got {k}")
    return k


# --------------------------------------------------------------------------------------
# the masked convolution
# --------------------------------------------------------------------------------------

class MaskedConv2d(nn.Module):
    r"""A 2-D convolution whose kernel is multiplied by a fixed mask, centred on each pixel.

    The output at pixel :math:`(r, c)` is :math:`\sum_{a,b} (W \odot M)_{ab}\, x_{r + a - k_h/2,\;
    c + b - k_w/2}` with zero padding, so the output has the input's height and width. Only the
    bounding box of the mask's ones is stored and computed (a vertical-stack kernel keeps only
    its upper rows), and the mask is multiplied in on every call, never written into the
    weight: the optimiser cannot switch a masked connection back on.

    Arguments:
        in_channels, out_channels: as ``nn.Conv2d``.
        mask: ``[k_h, k_w]`` zeros and ones, both sides odd; position ``(k_h // 2, k_w // 2)``
            is the centre (the output pixel itself).
        dilation: spacing of the kernel taps (default 1).

    Example:
        >>> conv = MaskedConv2d(1, 4, pixelcnn_mask(5, "A"))
        >>> conv(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 4, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, mask: torch.Tensor, *,
                 dilation: int = 1) -> None:
        super().__init__()
        if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
            raise TypeError("mask must be a 2-D torch.Tensor [k_h, k_w]")
        kh, kw = (_odd(s, "each side of mask") for s in mask.shape)
        if not ((mask == 0) | (mask == 1)).all() or not mask.any():
            raise ValueError("mask must hold zeros and ones, with at least one 1")
        self.dilation = check_int(dilation, "dilation")
        rows = mask.any(1).nonzero().flatten()
        cols = mask.any(0).nonzero().flatten()
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
        self.register_buffer("mask", mask[r0:r1 + 1, c0:c1 + 1].float().clone())
        self.conv = nn.Conv2d(check_int(in_channels, "in_channels"),
                              check_int(out_channels, "out_channels"),
                              tuple(self.mask.shape), dilation=self.dilation)
        # F.pad order: left, right, top, bottom; a negative side crops (a kernel that ends
        # above the centre row needs one row less below)
        dil = self.dilation
        self.padding = (dil * (kw // 2 - c0), dil * (c1 - kw // 2),
                        dil * (kh // 2 - r0), dil * (r1 - kh // 2))

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, self.padding), self.conv.weight * self.mask, self.conv.bias,
                        dilation=self.dilation)

    def row(self, x: torch.Tensor, r: int) -> torch.Tensor:
        """Row ``r`` of the output only, ``[n, C_out, 1, W]``, reading the input rows the kernel
        reaches (for a causal mask: rows ``<= r``; the later rows of ``x`` are never read)."""
        left, right, top, bottom = self.padding
        first, last = r - top, r + bottom  # the input rows the kernel reaches
        needed = last - first + 1
        lo, hi = max(first, 0), min(last + 1, x.shape[2])
        rows = x[:, :, lo:max(hi, lo)]  # never a negative index: it would count from the end
        above = min(lo - first, needed)  # zero rows above the image (all of them if the
        # kernel ends above row 0)
        rows = F.pad(rows, (left, right, above, needed - above - rows.shape[2]))
        return F.conv2d(rows, self.conv.weight * self.mask, self.conv.bias,
                        dilation=self.dilation)


# --------------------------------------------------------------------------------------
# the models
# --------------------------------------------------------------------------------------

class _ImageModel(AutoregressiveModel):
    """Shared by the PixelCNNs: events are flattened ``H x W`` images, generated in raster
    order; the network sees the image as one or more input channels, and a learned bias per
    pixel (and level) is added to the logits, because the digits are centred: convolutions
    share their weights across positions, and the bias says where a pixel is."""

    def __init__(self, image_shape: Sequence[int], levels: int, dropout: float) -> None:
        if isinstance(image_shape, (str, bytes)) or len(image_shape) != 2:
            raise ValueError(f"image_shape must be (height, width), got {image_shape!r}")
        h, w = (check_int(s, "each side of image_shape") for s in image_shape)
        super().__init__(h * w, levels)
        self.image_shape = (h, w)
        self.dropout = check_non_negative(dropout, "dropout")
        if self.dropout >= 1:
            raise ValueError(f"dropout must be < 1, got {dropout}")
        self.pixel_bias = nn.Parameter(torch.zeros(self.out_channels, h, w))

    @property
    def in_channels(self) -> int:
        # binary pixels: the value itself; grey levels: the level scaled to [-1, 1] and a
        # one-hot code, so that the network can treat neighbouring levels alike or apart
        return 1 if self.levels == 2 else 1 + self.levels

    @property
    def out_channels(self) -> int:
        return 1 if self.levels == 2 else self.levels

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[n, D]`` levels -> ``[n, C, H, W]`` network input."""
        img = x.reshape(len(x), 1, *self.image_shape)
        if self.levels == 2:
            return img
        scaled = img * (2.0 / (self.levels - 1)) - 1.0
        onehot = F.one_hot(img[:, 0].long(), self.levels).permute(0, 3, 1, 2).to(x.dtype)
        return torch.cat([scaled, onehot], 1)

    def _decode(self, out: torch.Tensor) -> torch.Tensor:
        """``[n, L or 1, H, W]`` network output -> ``[n, D, L]`` or ``[n, D]`` logits."""
        n = len(out)
        if self.levels == 2:
            return out.reshape(n, self.n_inputs)
        return out.reshape(n, self.levels, self.n_inputs).transpose(1, 2)

    def _head(self, channels: int) -> nn.Sequential:
        return nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                             nn.Conv2d(channels, self.out_channels, 1))

    def _network(self, image: torch.Tensor) -> torch.Tensor:
        """``[n, C_in, H, W]`` -> ``[n, L or 1, H, W]`` (without the pixel bias)."""
        raise NotImplementedError

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._decode(self._network(self._encode(x)) + self.pixel_bias)

    def _start_rows(self, image: torch.Tensor) -> object:
        """The cache of :meth:`_row_logits` for an image being generated."""
        raise NotImplementedError

    def _row_logits(self, image: torch.Tensor, r: int, cache: object,
                    new_row: bool) -> torch.Tensor:
        """``[n, L or 1, W]`` logits of row ``r`` from the encoded ``image`` (rows ``<= r``
        valid), reusing ``cache`` for the rows above; ``new_row`` at the row's first pixel."""
        raise NotImplementedError

    @torch.no_grad()
    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        # cached generation: the features of the rows above the current row never change
        # again, so each layer keeps them and recomputes only the current row: one step costs
        # a row of every layer (1/H of a full pass)
        was_training = self.training
        self.eval()
        try:
            height, width = self.image_shape
            x = torch.zeros(n, self.n_inputs, device=self.device, dtype=self.dtype)
            cache = self._start_rows(self._encode(x))
            for r in range(height):
                for c in range(width):
                    out = self._row_logits(self._encode(x), r, cache, new_row=c == 0)
                    logit = out[:, :, c] + self.pixel_bias[:, r, c]
                    u = rand((n,), generator, device=self.device, dtype=self.dtype)
                    x[:, r * width + c] = draw_levels(logit.squeeze(1) if self.levels == 2
                                                      else logit, u)
            return x
        finally:
            self.train(was_training)


class _ResidualBlock(nn.Module):
    """PixelCNN's residual block: 1x1 -> masked k x k (mask B) -> 1x1, with ReLUs."""

    def __init__(self, channels: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        half = max(channels // 2, 1)
        self.reduce = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, half, 1), nn.ReLU())
        self.conv = MaskedConv2d(half, half, pixelcnn_mask(kernel_size, "B"))
        self.expand = nn.Sequential(nn.ReLU(), nn.Conv2d(half, channels, 1), nn.Dropout(dropout))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.expand(self.conv(self.reduce(h)))


class PixelCNN(_ImageModel):
    r"""PixelCNN: a mask-A convolution, then residual blocks of mask-B convolutions.

    The first layer is a :math:`k_0 \times k_0` convolution with mask A; each of the
    ``n_blocks`` residual blocks computes :math:`h + \mathrm{conv}_{1\times1}(\mathrm{ReLU}(
    \mathrm{conv}^{B}_{k\times k}(\mathrm{ReLU}(\mathrm{conv}_{1\times1}(\mathrm{ReLU}(h))))))`
    (van den Oord et al., 2016a, fig. 5, without the channel split of colour images), then two
    :math:`1 \times 1` layers give the logits of every pixel. It has the blind spot of masked
    convolutions (see the module docstring).

    Arguments:
        image_shape: ``(H, W)``; events are flattened images ``[n, H * W]``, row-major.
        levels: 2 (binary pixels, Bernoulli outputs) or the number of grey levels.
        channels: feature maps of every layer.
        n_blocks: residual blocks after the first layer.
        kernel_size: side of the blocks' mask-B kernels (odd).
        first_kernel_size: side of the first layer's mask-A kernel (odd).
        dropout: dropout rate on each block's output (0: none).

    References:
        van den Oord, Kalchbrenner and Kavukcuoglu (2016a), section 3.5 and fig. 5.

    Example:
        >>> model = PixelCNN((8, 8), levels=2, channels=16, n_blocks=2)
        >>> model.log_prob(torch.zeros(3, 64)).shape
        torch.Size([3])
    """

    def __init__(self, image_shape: Sequence[int], levels: int = 2, *, channels: int = 64,
                 n_blocks: int = 4, kernel_size: int = 3, first_kernel_size: int = 7,
                 dropout: float = 0.0) -> None:
        super().__init__(image_shape, levels, dropout)
        self.channels = check_int(channels, "channels")
        self.n_blocks = check_int(n_blocks, "n_blocks", minimum=0)
        self.kernel_size = _odd(kernel_size, "kernel_size")
        self.first_kernel_size = _odd(first_kernel_size, "first_kernel_size")
        self.first = MaskedConv2d(self.in_channels, self.channels,
                                  pixelcnn_mask(self.first_kernel_size, "A"))
        self.blocks = nn.ModuleList(_ResidualBlock(self.channels, self.kernel_size,
                                                   self.dropout)
                                    for _ in range(self.n_blocks))
        self.head = self._head(self.channels)

    def _network(self, image: torch.Tensor) -> torch.Tensor:
        h = self.first(image)
        for block in self.blocks:
            h = block(h)
        return self.head(h)

    def _start_rows(self, image: torch.Tensor) -> list[torch.Tensor]:
        # the input of each block's masked convolution, filled in row by row
        n, _, height, width = image.shape
        return [image.new_zeros(n, block.conv.conv.in_channels, height, width)
                for block in self.blocks]

    def _row_logits(self, image: torch.Tensor, r: int, cache: list[torch.Tensor],
                    new_row: bool) -> torch.Tensor:
        h = self.first.row(image, r)
        for block, inputs in zip(self.blocks, cache, strict=True):
            inputs[:, :, r:r + 1] = block.reduce(h)
            h = h + block.expand(block.conv.row(inputs, r))
        return self.head(h)[:, :, 0]


class GatedBlock(nn.Module):
    r"""One layer of the gated PixelCNN: a vertical and a horizontal stack, each gated.

    .. math::
        v' = \tanh(W^v_f * v) \odot \sigma(W^v_g * v), \qquad
        h' = h + W_{1\times1} \big[\tanh(W^h_f * h + U_f v^*) \odot
                                    \sigma(W^h_g * h + U_g v^*)\big],

    with :math:`v^* = W^v * v` the vertical features before the gate, passed to the horizontal
    stack by a :math:`1 \times 1` convolution. The vertical kernel covers the rows above (and,
    after the first layer, the current row, whose vertical features only depend on the rows
    above); the horizontal kernel covers the pixels to the left (and, after the first layer,
    the current one). The first layer has no residual connection (its input is the image).

    Arguments:
        in_channels: channels of ``v`` and ``h``.
        channels: channels of the outputs.
        kernel_size: :math:`k` (odd): the vertical kernel is :math:`(k//2 + 1) \times k`,
            the horizontal :math:`1 \times (k//2 + 1)`.
        first: the first layer (masks exclude the current row / pixel; no residual).
        dropout: dropout on the horizontal stack's update.

    References:
        van den Oord et al. (2016b), eq. 2 and fig. 2.
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int, *, first: bool,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.first = first
        self.vertical = MaskedConv2d(in_channels, 2 * channels,
                                     vertical_mask(kernel_size, include_centre_row=not first))
        self.horizontal = MaskedConv2d(in_channels, 2 * channels,
                                       horizontal_mask(kernel_size, include_centre=not first))
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        self.drop = nn.Dropout(dropout)

    @staticmethod
    def gate(features: torch.Tensor) -> torch.Tensor:
        f, g = features.chunk(2, dim=1)
        return torch.tanh(f) * torch.sigmoid(g)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v_features = self.vertical(v)
        return self.gate(v_features), self.horizontal_step(h, v_features)

    def horizontal_step(self, h: torch.Tensor, v_features: torch.Tensor) -> torch.Tensor:
        """The horizontal stack's output from its input and the vertical features."""
        update = self.out(self.drop(self.gate(self.horizontal(h) + self.link(v_features))))
        return update if self.first else h + update


class GatedPixelCNN(_ImageModel):
    r"""The gated PixelCNN without a blind spot: vertical and horizontal stacks of gated layers.

    After ``n_layers`` layers with kernel :math:`k`, the output at :math:`(r, c)` sees
    :math:`(k//2) \cdot n` rows above it (columns within :math:`(k//2) \cdot n` of :math:`c`)
    and the :math:`(k//2) \cdot n` pixels to its left; choose :math:`n` so that this covers
    the image and every earlier pixel is seen.

    Arguments:
        image_shape: ``(H, W)``; events are flattened images ``[n, H * W]``, row-major.
        levels: 2 (binary pixels, Bernoulli outputs) or the number of grey levels.
        channels: feature maps of each stack.
        n_layers: gated layers (the first one excludes the current pixel).
        kernel_size: :math:`k`, odd, at least 3.
        dropout: dropout rate inside each gated layer (0: none).

    References:
        van den Oord et al. (2016b), section 2.1-2.2.

    Example:
        >>> model = GatedPixelCNN((8, 8), levels=17, channels=16, n_layers=4, kernel_size=5)
        >>> model.logits(torch.zeros(3, 64)).shape
        torch.Size([3, 64, 17])
    """

    def __init__(self, image_shape: Sequence[int], levels: int = 2, *, channels: int = 64,
                 n_layers: int = 4, kernel_size: int = 5, dropout: float = 0.0) -> None:
        super().__init__(image_shape, levels, dropout)
        self.channels = check_int(channels, "channels")
        self.n_layers = check_int(n_layers, "n_layers")
        self.kernel_size = _odd(kernel_size, "kernel_size")
        if self.kernel_size < 3:
            raise ValueError("kernel_size must be at least 3 (1 sees no neighbour)")
        self.layers = nn.ModuleList(
            GatedBlock(self.in_channels if i == 0 else self.channels, self.channels,
                       self.kernel_size, first=i == 0, dropout=self.dropout)
            for i in range(self.n_layers))
        self.head = self._head(self.channels)

    def _network(self, image: torch.Tensor) -> torch.Tensor:
        v = h = image
        for layer in self.layers:
            v, h = layer(v, h)
        return self.head(h)

    def _start_rows(self, image: torch.Tensor) -> dict[str, list]:
        # the vertical stack's input maps (filled row by row) and, for the current row, its
        # features before the gate: they depend on the rows above only, so they are computed
        # once per row, not once per pixel
        n, _, height, width = image.shape
        inputs = [None] + [image.new_zeros(n, self.channels, height, width)
                           for _ in self.layers[1:]]
        return {"inputs": inputs, "features": [None] * self.n_layers}

    def _row_logits(self, image: torch.Tensor, r: int, cache: dict[str, list],
                    new_row: bool) -> torch.Tensor:
        inputs, features = cache["inputs"], cache["features"]
        if new_row:
            for i, layer in enumerate(self.layers):
                features[i] = layer.vertical.row(image if i == 0 else inputs[i], r)
                if i + 1 < self.n_layers:
                    inputs[i + 1][:, :, r:r + 1] = layer.gate(features[i])
        h = image[:, :, r:r + 1]
        for layer, v_features in zip(self.layers, features, strict=True):
            h = layer.horizontal_step(h, v_features)
        return self.head(h)[:, :, 0]
