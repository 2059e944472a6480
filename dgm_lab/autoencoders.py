r"""Autoencoders: networks trained to reproduce their input through a narrow code.

An autoencoder has three parts (chapter 5 of the book): an **encoder** :math:`f_\phi` that maps
an input :math:`x` to a **code** :math:`z = f_\phi(x)`, and a **decoder** :math:`g_\theta` that
maps the code back to a reconstruction :math:`\hat x = g_\theta(z)`. Both are trained together,
without labels, to make :math:`\hat x` close to :math:`x`, here in squared error
(:func:`reconstruction_loss`). With a code smaller than the input (*undercomplete*) the network
must keep what matters most for the squared error and drop the rest. The module follows the
chapter:

1. **Architectures**: :class:`MLPAutoencoder` (fully connected) and :class:`ConvAutoencoder`
   (convolutions and max-pooling down, transposed convolutions or max-unpooling up, Zeiler &
   Fergus, 2014; Dumoulin & Visin, 2016), with the size arithmetic of (transposed)
   convolutions in :func:`conv_output_size` and :func:`conv_transpose_output_size`.
2. **What squared error ignores**: :func:`blob_and_dot_images` makes images with a large
   smooth blob and a one-pixel dot; an autoencoder trained with squared error keeps the blob
   and drops the dot, because the dot carries almost none of the error.
3. **Denoising** (Vincent et al., 2008): corrupt the input (:func:`corrupt`), reconstruct the
   clean original (:func:`denoising_loss`).
4. **Anomaly detection**: an autoencoder trained on normal data reconstructs it well and
   unusual inputs badly, so :func:`reconstruction_error` is an anomaly score; distances in code
   space (:func:`knn_distance_score`, :func:`mahalanobis_score`) are another. :func:`roc_auc`
   measures how well a score separates anomalies from normal data.

An autoencoder alone is not a generative model: it defines no distribution over codes to
sample from. Chapter 7 (variational autoencoders) adds one.

Every model's ``encode``/``decode``/``forward`` accept batches ``[n, D]`` (flattened images, as
:func:`dgm_lab.data.load_digits` returns them); :class:`ConvAutoencoder` also accepts
``[n, 1, H, W]`` and answers in the layout it was given.

References:
    G. E. Hinton and R. R. Salakhutdinov (2006). Reducing the dimensionality of data with
    neural networks. Science 313.
    P. Vincent, H. Larochelle, Y. Bengio and P.-A. Manzagol (2008). Extracting and composing
    robust features with denoising autoencoders. ICML.
    M. D. Zeiler and R. Fergus (2014). Visualizing and understanding convolutional networks.
    ECCV (max-unpooling with switches).
    V. Dumoulin and F. Visin (2016). A guide to convolution arithmetic for deep learning.
    J. A. Hanley and B. J. McNeil (1982). The meaning and use of the area under a receiver
    operating characteristic (ROC) curve. Radiology 143.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dgm_lab._validation import (
    as_float_tensor,
    check_bool,
    check_choice,
    check_int,
    check_non_negative,
    check_same_width,
)
from dgm_lab.density import fit_gaussian
from dgm_lab.model import rand, randint, randn

__all__ = [
    "ConvAutoencoder",
    "MLPAutoencoder",
    "blob_and_dot_images",
    "conv_output_size",
    "conv_transpose_matrix",
    "conv_transpose_output_size",
    "corrupt",
    "denoising_loss",
    "knn_distance_score",
    "mahalanobis_score",
    "reconstruction_error",
    "reconstruction_loss",
    "roc_auc",
]


def _first_parameter(model: nn.Module) -> torch.Tensor:
    """The first parameter (or buffer) of ``model``: its dtype and device are the model's."""
    for t in (*model.parameters(), *model.buffers()):
        if t is not None:
            return t
    raise TypeError(f"{type(model).__name__} holds no tensor to take a device and dtype from")


def _batch(model: nn.Module, x: object, name: str, width: int) -> torch.Tensor:
    """``x`` as ``[n, width]`` in the dtype and on the device of ``model``'s parameters."""
    w = _first_parameter(model)
    t = as_float_tensor(x, name, ndim=2, dtype=w.dtype, device=w.device)
    check_same_width(t, width, name, expected_by=f"this {type(model).__name__} expects")
    return t


# --------------------------------------------------------------------------------------
# 1. architectures
# --------------------------------------------------------------------------------------

def _mlp(sizes: Sequence[int], activation: type[nn.Module]) -> nn.Sequential:
    """Linear layers between consecutive ``sizes``, ``activation`` between them (not after)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            layers.append(activation())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


class MLPAutoencoder(nn.Module):
    r"""A fully connected autoencoder: :math:`D \to` hidden :math:`\to Q \to` hidden :math:`\to D`.

    The encoder ends with a linear layer, so codes can take any real value; the decoder mirrors
    the encoder's hidden sizes and ends with a sigmoid for data in :math:`[0, 1]` (pixels), or
    with nothing (``output="linear"``). With ``hidden_sizes=()`` the encoder is one linear map
    and the decoder one linear map and a sigmoid.

    Arguments:
        n_features: :math:`D`.
        code_size: :math:`Q`.
        hidden_sizes: widths of the encoder's hidden layers (the decoder uses them reversed).
        output: ``"sigmoid"`` or ``"linear"``, the decoder's last step.
        activation: the nonlinearity between layers (a module class, default ``nn.ReLU``).

    References:
        G. E. Hinton and R. R. Salakhutdinov (2006). Reducing the dimensionality of data with
        neural networks.

    Example:
        >>> ae = MLPAutoencoder(64, 2, hidden_sizes=(128,))
        >>> ae.encode(torch.rand(5, 64)).shape, ae(torch.rand(5, 64)).shape
        (torch.Size([5, 2]), torch.Size([5, 64]))
    """

    def __init__(self, n_features: int, code_size: int, hidden_sizes: Sequence[int] = (128,), *,
                 output: str = "sigmoid", activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.n_features = check_int(n_features, "n_features")
        self.code_size = check_int(code_size, "code_size")
        self.hidden_sizes = tuple(check_int(h, "each hidden size") for h in hidden_sizes)
        self.output = check_choice(output, "output", ("sigmoid", "linear"))
        sizes = [self.n_features, *self.hidden_sizes, self.code_size]
        self.encoder = _mlp(sizes, activation)
        self.decoder = _mlp(sizes[::-1], activation)
        if self.output == "sigmoid":
            self.decoder.append(nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes :math:`z = f_\\phi(x)`, ``[n, Q]``, of inputs ``[n, D]``."""
        return self.encoder(_batch(self, x, "x", self.n_features))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructions :math:`g_\\theta(z)`, ``[n, D]``, of codes ``[n, Q]``."""
        return self.decoder(_batch(self, z, "z", self.code_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction :math:`\\hat x = g_\\theta(f_\\phi(x))`."""
        return self.decode(self.encode(x))


def _check_conv_arguments(size: object, kernel_size: object, stride: object, padding: object,
                          dilation: object) -> tuple[int, int, int, int, int]:
    return (check_int(size, "size"), check_int(kernel_size, "kernel_size"),
            check_int(stride, "stride"), check_int(padding, "padding", minimum=0),
            check_int(dilation, "dilation"))


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    r"""Output length of a convolution (or pooling) along one axis.

    The kernel covers :math:`d(k - 1) + 1` input positions; sliding it in steps of :math:`s`
    over the input padded by :math:`p` on both sides fits

    .. math:: o = \left\lfloor \frac{i + 2p - d(k - 1) - 1}{s} \right\rfloor + 1

    positions (Dumoulin & Visin, 2016, relationship 6; ``torch.nn.Conv2d``'s formula).

    Arguments:
        size: input length :math:`i \ge 1`.
        kernel_size: :math:`k \ge 1`.
        stride: :math:`s \ge 1`.
        padding: :math:`p \ge 0` zeros on each side.
        dilation: :math:`d \ge 1`, the spacing of the kernel's taps.

    Returns:
        The output length (an int >= 1).

    References:
        V. Dumoulin and F. Visin (2016). A guide to convolution arithmetic for deep learning.

    Example:
        >>> conv_output_size(8, kernel_size=3, padding=1), conv_output_size(8, 2, stride=2)
        (8, 4)
    """
    i, k, s, p, d = _check_conv_arguments(size, kernel_size, stride, padding, dilation)
    span = d * (k - 1) + 1
    if i + 2 * p < span:
        raise ValueError(f"the kernel spans {span} positions, more than the padded input "
                         f"({i} + 2 * {p})")
    return (i + 2 * p - span) // s + 1


def conv_transpose_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                               output_padding: int = 0, dilation: int = 1) -> int:
    r"""Output length of a transposed convolution along one axis.

    A transposed convolution runs the convolution's connectivity backwards: each of the
    :math:`i` inputs spreads its kernel over the output, in steps of :math:`s`, so the outputs
    span :math:`(i - 1)s + d(k - 1) + 1` positions, from which the padding :math:`p` is cut on
    both sides and ``output_padding`` :math:`a` is added on one side:

    .. math:: o = (i - 1)s - 2p + d(k - 1) + a + 1

    (Dumoulin & Visin, 2016, relationship 14; ``torch.nn.ConvTranspose2d``'s formula). It
    inverts :func:`conv_output_size`: a stride-:math:`s` convolution maps several input sizes
    to the same output size, and :math:`a < s` says which of them to produce.

    Arguments:
        size: input length :math:`i \ge 1`.
        kernel_size: :math:`k \ge 1`.
        stride: :math:`s \ge 1`.
        padding: :math:`p \ge 0`.
        output_padding: :math:`a \ge 0`, smaller than ``stride`` or than ``dilation``.
        dilation: :math:`d \ge 1`.

    Returns:
        The output length (an int >= 1).

    References:
        V. Dumoulin and F. Visin (2016). A guide to convolution arithmetic for deep learning.

    Example:
        >>> conv_transpose_output_size(4, kernel_size=4, stride=2, padding=1)
        8
    """
    i, k, s, p, d = _check_conv_arguments(size, kernel_size, stride, padding, dilation)
    a = check_int(output_padding, "output_padding", minimum=0)
    if a >= max(s, d):
        raise ValueError(f"output_padding must be smaller than stride or dilation "
                         f"(here {max(s, d)}), got {a}")
    out = (i - 1) * s - 2 * p + d * (k - 1) + a + 1
    if out < 1:
        raise ValueError(f"padding={p} removes the whole output (it would have length {out})")
    return out


def conv_transpose_matrix(size: int, weight: torch.Tensor, stride: int = 1,
                          padding: int = 0) -> torch.Tensor:
    r"""The matrix of a one-channel 1-D transposed convolution: ``y = matrix @ x``.

    A convolution with kernel :math:`w` (length :math:`k`), stride :math:`s` and padding
    :math:`p` is a linear map, :math:`y = Cx`, whose row :math:`i` holds the kernel shifted
    to position :math:`is - p`. The transposed convolution is the map with the transposed
    matrix :math:`C^\top` (hence its name, Dumoulin & Visin, 2016): input :math:`i` spreads the
    kernel over the outputs starting at :math:`is - p`,

    .. math:: M_{ji} = w_{j + p - is} \quad \text{when } 0 \le j + p - is < k, \text{ else } 0,

    for the :math:`o = (i_{\text{len}} - 1)s - 2p + k` outputs :math:`j` of
    :func:`conv_transpose_output_size`. This is what ``torch.nn.ConvTranspose1d`` computes
    (with ``dilation=1``, ``output_padding=0``, one channel, no bias).

    Arguments:
        size: input length :math:`\ge 1`.
        weight: the kernel :math:`w`, ``[k]``.
        stride: :math:`s \ge 1`.
        padding: :math:`p \ge 0`.

    Returns:
        ``[o, size]`` in the dtype and on the device of ``weight``.

    References:
        V. Dumoulin and F. Visin (2016). A guide to convolution arithmetic for deep learning,
        section 4.

    Example:
        >>> conv_transpose_matrix(2, torch.tensor([1.0, 2.0, 3.0]), stride=2)
        tensor([[1., 0.],
                [2., 0.],
                [3., 1.],
                [0., 2.],
                [0., 3.]])
    """
    w = as_float_tensor(weight, "weight", ndim=1)
    out = conv_transpose_output_size(size, len(w), stride, padding)
    j = torch.arange(out, device=w.device)[:, None]
    i = torch.arange(size, device=w.device)[None, :]
    tap = j + padding - i * stride                          # which kernel entry lands at j
    inside = (tap >= 0) & (tap < len(w))
    return torch.where(inside, w[tap.clamp(0, len(w) - 1)], torch.zeros((), dtype=w.dtype,
                                                                        device=w.device))


class ConvAutoencoder(nn.Module):
    r"""A convolutional autoencoder for one-channel square images.

    **Encoder**: for each entry ``c`` of ``channels``, a 3x3 convolution to ``c`` channels
    (padding 1, the size is kept), a ReLU and a 2x2 max-pooling (the size halves); then a linear
    map of the flattened feature maps to the code :math:`z \in \mathbb R^Q`.

    **Decoder**: a linear map and a ReLU back to the last feature maps, then one stage per
    pooling, in reverse, that doubles the size:

    * ``upsampling="transposed"``: a learned 4x4 transposed convolution with stride 2 and
      padding 1 (:func:`conv_transpose_output_size` gives exactly twice the input), then a ReLU;
    * ``upsampling="unpool"``: max-unpooling, which puts each value back at the position where
      the encoder's pooling found its maximum (the *switches*) and zeros elsewhere, followed by
      a 3x3 convolution and a ReLU (Zeiler & Fergus, 2014). The decoder then needs the
      encoder's switches, so it can reconstruct an input but cannot decode a code on its own.

    A final 3x3 convolution to one channel and a sigmoid give pixels in :math:`(0, 1)`.

    Arguments:
        image_size: the side of the images (divisible by ``2 ** len(channels)``).
        code_size: :math:`Q`.
        channels: channels after each convolution of the encoder.
        upsampling: ``"transposed"`` or ``"unpool"``.

    References:
        M. D. Zeiler and R. Fergus (2014). Visualizing and understanding convolutional
        networks. V. Dumoulin and F. Visin (2016). A guide to convolution arithmetic.

    Example:
        >>> ae = ConvAutoencoder(8, code_size=8, channels=(16, 32))
        >>> ae(torch.rand(5, 64)).shape, ae(torch.rand(5, 1, 8, 8)).shape
        (torch.Size([5, 64]), torch.Size([5, 1, 8, 8]))
    """

    def __init__(self, image_size: int = 8, code_size: int = 8,
                 channels: Sequence[int] = (16, 32), *, upsampling: str = "transposed") -> None:
        super().__init__()
        self.image_size = check_int(image_size, "image_size")
        self.code_size = check_int(code_size, "code_size")
        self.channels = tuple(check_int(c, "each entry of channels") for c in channels)
        if not self.channels:
            raise ValueError("channels must name at least one convolution")
        self.upsampling = check_choice(upsampling, "upsampling", ("transposed", "unpool"))
        side = self.image_size
        for _ in self.channels:
            if side % 2:
                raise ValueError(f"image_size={self.image_size} must be divisible by "
                                 f"2 ** len(channels) = {2 ** len(self.channels)}")
            side = conv_output_size(side, 2, stride=2)  # each max-pooling halves it
        self.grid = side  # the side of the encoder's last feature maps
        flat = self.channels[-1] * side * side
        ins = (1, *self.channels[:-1])
        self.down = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1)
                                  for a, b in zip(ins, self.channels, strict=True))
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.to_code = nn.Linear(flat, self.code_size)
        self.from_code = nn.Linear(self.code_size, flat)
        # decoder stage i undoes encoder stage i: channels[i] -> channels[i - 1] (or channels[0])
        outs = (self.channels[0], *self.channels[:-1])
        if self.upsampling == "transposed":
            assert conv_transpose_output_size(side, 4, stride=2, padding=1) == 2 * side
            self.up = nn.ModuleList(nn.ConvTranspose2d(c, o, 4, stride=2, padding=1)
                                    for c, o in zip(self.channels, outs, strict=True))
        else:
            self.unpool = nn.MaxUnpool2d(2)
            self.up = nn.ModuleList(nn.Conv2d(c, o, 3, padding=1)
                                    for c, o in zip(self.channels, outs, strict=True))
        self.to_image = nn.Conv2d(self.channels[0], 1, 3, padding=1)

    def _images(self, x: object) -> tuple[torch.Tensor, bool]:
        """``x`` as ``[n, 1, H, W]`` in the model's dtype, and whether it came flattened."""
        w = _first_parameter(self)
        t = as_float_tensor(x, "x", dtype=w.dtype, device=w.device)
        side = self.image_size
        if t.dim() == 2 and t.shape[1] == side * side:
            return t.reshape(-1, 1, side, side), True
        if t.dim() == 4 and tuple(t.shape[1:]) == (1, side, side):
            return t, False
        raise ValueError(f"x must have shape [n, {side * side}] or [n, 1, {side}, {side}], "
                         f"got {tuple(t.shape)}")

    def _encode(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h, switches = images, []
        for conv in self.down:
            h, where = self.pool(torch.relu(conv(h)))
            switches.append(where)
        return self.to_code(h.flatten(1)), switches

    def encode(self, x: torch.Tensor, *, return_switches: bool = False
               ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Codes ``[n, Q]`` of images ``[n, H*W]`` or ``[n, 1, H, W]``; with
        ``return_switches``, also the positions of the maxima of every pooling (what
        ``upsampling="unpool"`` needs to decode)."""
        z, switches = self._encode(self._images(x)[0])
        return (z, switches) if check_bool(return_switches, "return_switches") else z

    def _decode(self, z: torch.Tensor, switches: list[torch.Tensor] | None) -> torch.Tensor:
        h = torch.relu(self.from_code(z)).reshape(-1, self.channels[-1], self.grid, self.grid)
        for i in reversed(range(len(self.channels))):
            if self.upsampling == "unpool":
                h = self.unpool(h, switches[i])
            h = torch.relu(self.up[i](h))
        return torch.sigmoid(self.to_image(h))

    def decode(self, z: torch.Tensor, switches: list[torch.Tensor] | None = None
               ) -> torch.Tensor:
        """Images ``[n, 1, H, W]`` from codes ``[n, Q]``.

        With ``upsampling="unpool"`` the decoder needs ``switches`` from
        ``encode(x, return_switches=True)``: max-unpooling puts values back where the encoder
        found its maxima, so this decoder cannot turn a new code into an image by itself.
        """
        z = _batch(self, z, "z", self.code_size)
        if self.upsampling == "unpool":
            if switches is None or len(switches) != len(self.channels):
                raise ValueError("this ConvAutoencoder unpools: decode needs the switches of "
                                 "encode(x, return_switches=True), one per pooling; a code "
                                 "alone cannot be decoded (use upsampling='transposed')")
        elif switches is not None:
            raise ValueError("switches are only used with upsampling='unpool'")
        return self._decode(z, switches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction, in the layout of ``x`` (flat ``[n, H*W]`` or ``[n, 1, H, W]``)."""
        images, flat = self._images(x)
        z, switches = self._encode(images)
        out = self._decode(z, switches if self.upsampling == "unpool" else None)
        return out.flatten(1) if flat else out


# --------------------------------------------------------------------------------------
# losses and scores
# --------------------------------------------------------------------------------------

def reconstruction_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    r"""Squared reconstruction error, summed over the features and averaged over the batch.

    :math:`\frac1n \sum_i \|x_i - \hat x_i\|^2` with :math:`\hat x = ` ``model(x)``: the loss
    :func:`dgm_lab.train.fit` minimises for an autoencoder (a scalar with gradients).

    Example:
        >>> fit(ae, reconstruction_loss, x_train, epochs=100)
    """
    x = as_float_tensor(x, "x")
    return (model(x) - x).flatten(1).square().sum(1).mean()


@torch.no_grad()
def reconstruction_error(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024
                         ) -> torch.Tensor:
    r"""Per-example squared reconstruction error :math:`\|x_i - \hat x_i\|^2`, ``[n]``.

    Computed in evaluation mode without gradients, in batches. As an anomaly score: an
    autoencoder trained on normal data reconstructs it well and unusual inputs worse.

    Arguments:
        model: maps a batch to its reconstruction (an autoencoder).
        x: ``[n, ...]``; moved to the device of the model's parameters.
        batch_size: examples per forward pass.

    Returns:
        ``[n]`` squared errors on the model's device.

    Example:
        >>> scores = reconstruction_error(ae, x_test)   # large = unusual
    """
    batch_size = check_int(batch_size, "batch_size")
    w = _first_parameter(model)
    x = as_float_tensor(x, "x", dtype=w.dtype, device=w.device)
    was_training = model.training
    model.eval()
    out = torch.cat([(model(b) - b).flatten(1).square().sum(1) for b in x.split(batch_size)])
    model.train(was_training)
    return out


def corrupt(x: torch.Tensor, level: float, *, kind: str = "gaussian",
            noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
            clip: bool = True) -> torch.Tensor:
    r"""Corrupt inputs for a denoising autoencoder.

    * ``kind="gaussian"``: add noise of standard deviation ``level``,
      :math:`\tilde x = x + \sigma \epsilon`, :math:`\epsilon \sim \mathcal N(0, I)`, then clip
      to :math:`[0, 1]` (``clip=True``) so the corrupted image is still an image;
    * ``kind="masking"``: set each entry to 0 with probability ``level`` (Vincent et al.,
      2008), :math:`\tilde x_j = x_j \mathbb 1[u_j \ge \text{level}]`, :math:`u_j \sim U[0, 1)`.

    Arguments:
        x: clean inputs ``[n, ...]``, values in :math:`[0, 1]`.
        level: :math:`\sigma \ge 0` (gaussian) or a probability in :math:`[0, 1]` (masking).
        kind: ``"gaussian"`` or ``"masking"``.
        noise: the random numbers to use (:math:`\epsilon` or :math:`u`, shaped like ``x``);
            drawn from ``generator`` when ``None``.
        generator: a ``torch.Generator`` for repeatable draws.
        clip: clip Gaussian corruption to :math:`[0, 1]`.

    Returns:
        :math:`\tilde x`, shaped like ``x``.

    References:
        P. Vincent et al. (2008). Extracting and composing robust features with denoising
        autoencoders.

    Example:
        >>> noisy = corrupt(x, 0.4, generator=torch.Generator().manual_seed(0))
    """
    x = as_float_tensor(x, "x")
    kind = check_choice(kind, "kind", ("gaussian", "masking"))
    level = check_non_negative(level, "level")
    if kind == "masking" and level > 1:
        raise ValueError(f"level is a probability for masking noise, got {level}")
    if noise is None:
        draw = randn if kind == "gaussian" else rand
        noise = draw(x.shape, generator, device=x.device, dtype=x.dtype)
    else:
        noise = as_float_tensor(noise, "noise", dtype=x.dtype, device=x.device)
        if noise.shape != x.shape:
            raise ValueError(f"noise must have the shape of x {tuple(x.shape)}, "
                             f"got {tuple(noise.shape)}")
    if kind == "masking":
        return torch.where(noise < level, torch.zeros_like(x), x)
    noisy = x + level * noise
    return noisy.clamp(0, 1) if check_bool(clip, "clip") else noisy


def denoising_loss(model: nn.Module, x: torch.Tensor, level: float, *, kind: str = "gaussian",
                   noise: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    r"""The loss of a denoising autoencoder: reconstruct the *clean* input from a corrupted one.

    :math:`\frac1n \sum_i \|x_i - g_\theta(f_\phi(\tilde x_i))\|^2` with :math:`\tilde x_i` =
    :func:`corrupt` :math:`(x_i)`. The target is :math:`x`, not :math:`\tilde x`: to undo the
    noise the network must learn what clean data look like (Vincent et al., 2008).

    Arguments:
        model: the autoencoder (``model(x)`` reconstructs).
        x: clean inputs ``[n, ...]``.
        level, kind, noise, generator: as in :func:`corrupt` (fresh noise on every call when
            ``noise`` is ``None``, which is what training wants).

    Returns:
        A scalar tensor with gradients.

    Example:
        >>> fit(ae, lambda m, x: denoising_loss(m, x, 0.4), x_train, epochs=100)
    """
    x = as_float_tensor(x, "x")
    noisy = corrupt(x, level, kind=kind, noise=noise, generator=generator)
    return (model(noisy) - x).flatten(1).square().sum(1).mean()


def _points(x: object, name: str, like: torch.Tensor | None = None) -> torch.Tensor:
    t = as_float_tensor(x, name, ndim=2, dtype=None if like is None else like.dtype,
                        device=None if like is None else like.device)
    if like is not None:
        check_same_width(t, like.shape[1], name, expected_by="reference has")
    return t


def knn_distance_score(x: torch.Tensor, reference: torch.Tensor, k: int = 1) -> torch.Tensor:
    r"""Anomaly score: mean Euclidean distance from each point to its ``k`` nearest references.

    In the code space of an autoencoder trained on normal data, the references are the codes
    of the normal training data: a point whose code lands far from all of them is unusual.

    Arguments:
        x: ``[n, d]`` points to score (codes, or raw inputs).
        reference: ``[m, d]`` normal points.
        k: neighbours averaged, ``1 <= k <= m``.

    Returns:
        ``[n]`` scores (large = unusual), in the dtype of ``reference``.

    Example:
        >>> scores = knn_distance_score(ae.encode(x_test), ae.encode(x_train), k=5)
    """
    reference = _points(reference, "reference")
    x = _points(x, "x", like=reference)
    k = check_int(k, "k")
    if k > len(reference):
        raise ValueError(f"k={k} is larger than the number of reference points {len(reference)}")
    return torch.cdist(x, reference).topk(k, dim=1, largest=False).values.mean(1)


def mahalanobis_score(x: torch.Tensor, reference: torch.Tensor, *,
                      reg_covar: float = 0.0) -> torch.Tensor:
    r"""Anomaly score: squared Mahalanobis distance to the mean of the references.

    With :math:`\mu, \Sigma` the maximum-likelihood mean and covariance of the reference points
    (chapter 2), :math:`s(x) = (x - \mu)^\top \Sigma^{-1} (x - \mu)`: the distance to the
    centre of the normal codes measured in their own spread, equal to
    :math:`-2 \log \mathcal N(x; \mu, \Sigma)` up to a constant.

    Arguments:
        x: ``[n, d]`` points to score.
        reference: ``[m, d]`` normal points (``m >= 2``).
        reg_covar: added to the diagonal of :math:`\Sigma` (needed when it is singular).

    Returns:
        ``[n]`` scores (large = unusual).

    Example:
        >>> scores = mahalanobis_score(ae.encode(x_test), ae.encode(x_train))
    """
    reference = _points(reference, "reference")
    x = _points(x, "x", like=reference)
    if len(reference) < 2:
        raise ValueError("reference needs at least 2 points to estimate a covariance")
    reg = check_non_negative(reg_covar, "reg_covar")
    mean, cov = fit_gaussian(reference)
    cov = cov + reg * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    chol, info = torch.linalg.cholesky_ex(cov)
    if info.item() != 0:
        raise ValueError("the covariance of reference is singular (a direction without "
                         "spread); give reg_covar > 0")
    white = torch.linalg.solve_triangular(chol, (x - mean).T, upper=False)
    return white.square().sum(0)


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    r"""Area under the ROC curve of anomaly ``scores`` for binary ``labels`` (1 = anomaly).

    The ROC curve plots the true-positive rate against the false-positive rate as the
    threshold on the score moves; its area equals the probability that a random anomaly
    scores higher than a random normal example, ties counting one half (Hanley & McNeil,
    1982). That is the Mann-Whitney statistic, computed from ranks:

    .. math:: \text{AUC} = \frac{\sum_{i:\,y_i = 1} r_i - n_1(n_1 + 1)/2}{n_1 n_0},

    with :math:`r_i` the rank of score :math:`i` among all (tied scores share their mean rank)
    and :math:`n_1, n_0` the numbers of anomalies and normal examples. 1 is a perfect
    separation, 0.5 is chance.

    Arguments:
        scores: ``[n]`` real scores, larger meaning more anomalous.
        labels: ``[n]`` of 0/1 (or bools), with both values present.

    Returns:
        The AUC, a float in :math:`[0, 1]`.

    References:
        J. A. Hanley and B. J. McNeil (1982). The meaning and use of the area under a receiver
        operating characteristic (ROC) curve.

    Example:
        >>> roc_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        0.75
    """
    s = as_float_tensor(scores, "scores", ndim=1)
    y = as_float_tensor(labels, "labels", ndim=1, allow_bool=True, device=s.device)
    if len(y) != len(s):
        raise ValueError(f"scores and labels must have the same length, got {len(s)} and {len(y)}")
    if not ((y == 0) | (y == 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (anomaly)")
    n1 = int(y.sum().item())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("labels must contain both anomalies (1) and normal examples (0)")
    _, inverse, counts = torch.unique(s, sorted=True, return_inverse=True, return_counts=True)
    last = counts.cumsum(0).to(s.dtype)                 # rank of the last of each tied group
    mean_rank = last - (counts.to(s.dtype) - 1) / 2     # ranks from 1; ties share the mean
    rank_sum = mean_rank[inverse][y == 1].sum().item()
    return (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0)


# --------------------------------------------------------------------------------------
# data the course makes: what squared error ignores
# --------------------------------------------------------------------------------------

def blob_and_dot_images(n: int, *, size: int = 16, generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Images of a large smooth blob plus one small bright dot, placed independently.

    Each ``size`` x ``size`` image holds a Gaussian blob of height 0.8, centred uniformly in the
    middle half of the image, with a width (standard deviation) between ``size/8`` and
    ``size/8 + size/10`` pixels, and one pixel of value 1 anywhere: the pixel-wise maximum of
    the two. The dot is to the image what a small but important object is to a photograph:
    a few pixels that barely change the squared error.

    Arguments:
        n: number of images.
        size: the side of each image (>= 4).
        generator: a ``torch.Generator`` for repeatable images.

    Returns:
        ``(images, blobs, dots)``, each ``[n, size * size]``: the float32 images, the blobs
        alone, and a bool mask with the dot's pixel set.

    Example:
        >>> images, blobs, dots = blob_and_dot_images(100)
    """
    n = check_int(n, "n")
    size = check_int(size, "size", minimum=4)
    cpu, f32 = torch.device("cpu"), torch.float32
    centres = size / 4 + size / 2 * rand((n, 2), generator, device=cpu, dtype=f32)
    widths = size / 8 + size / 10 * rand((n,), generator, device=cpu, dtype=f32)
    dot = randint(size * size, (n,), generator, device=cpu)
    axis = torch.arange(size, dtype=f32)
    dx = axis[None, None, :] - centres[:, 0, None, None]  # columns
    dy = axis[None, :, None] - centres[:, 1, None, None]  # rows
    blobs = 0.8 * torch.exp(-(dx.square() + dy.square()) / (2 * widths[:, None, None] ** 2))
    blobs = blobs.reshape(n, size * size)
    dots = torch.zeros(n, size * size, dtype=torch.bool)
    dots[torch.arange(n), dot] = True
    images = torch.where(dots, torch.ones_like(blobs), blobs)
    return images, blobs, dots
