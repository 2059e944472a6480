r"""WaveNet: causal, dilated convolutions over a 1-D signal, and generation with a cache.

A signal :math:`x_1, \dots, x_T` (audio samples, quantised to :math:`L` levels) is modelled
with the chain rule in time order. A **causal convolution** computes the features at time
:math:`t` from :math:`x_{\le t}` only: it is an ordinary convolution whose input is padded on
the left by :math:`(k - 1)` steps and never on the right, so its output is aligned with the
last input it reads. The first layer reads the signal shifted by one step, so the output at
:math:`t` sees :math:`x_{<t}` (PixelCNN's mask A in one dimension).

With kernel size :math:`k = 2`, :math:`n` causal layers see only :math:`n + 1` past samples.
A **dilated** convolution with dilation :math:`\delta` reads :math:`x_t` and
:math:`x_{t - \delta}`; doubling the dilation from layer to layer
(:math:`1, 2, 4, \dots, 2^{n-1}`) makes the receptive field grow *exponentially*:
:math:`1 + \sum_l (k-1)\delta_l = 2^n` steps of the past for :math:`n` layers.

Each layer is gated, :math:`\tanh(W_f * z) \odot \sigma(W_g * z)`, with a residual connection
and a skip connection to the output, and the output is a softmax over the :math:`L` levels
(van den Oord et al., 2016c, section 2).

**Generation** must go one sample at a time. The naive way reruns the whole network on the
signal so far for every new sample: :math:`O(T)` work per sample. But a layer with dilation
:math:`\delta` needs only its input at :math:`t` and at :math:`t - \delta`; keeping each
layer's past inputs in a cache makes every new sample cost one step of every layer,
independent of :math:`T` (Paine et al., 2016, "Fast Wavenet").

References:
    A. van den Oord, S. Dieleman, H. Zen, K. Simonyan, O. Vinyals, A. Graves, N. Kalchbrenner,
    A. Senior and K. Kavukcuoglu (2016c). WaveNet: A Generative Model for Raw Audio.
    arXiv:1609.03499 (causal and dilated convolutions, fig. 2-4; gated units, eq. 2).
    T. L. Paine, P. Khorrami, S. Chang, Y. Zhang, P. Ramachandran, M. A. Hasegawa-Johnson and
    T. S. Huang (2016). Fast Wavenet Generation Algorithm. arXiv:1611.09482.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dgm_lab._validation import as_float_tensor, check_int, check_non_negative, check_seed
from dgm_lab.autoregressive.base import AutoregressiveModel, draw_levels
from dgm_lab.model import rand

__all__ = ["CausalConv1d", "WaveNet", "causal_conv1d", "receptive_field", "sine_waves"]


def receptive_field(dilations: Sequence[int], kernel_size: int = 2) -> int:
    r"""How many past samples a stack of causal convolutions sees, shift included.

    The first layer reads the signal shifted by one, and layer :math:`l` adds
    :math:`(k - 1)\,\delta_l` steps: the output at :math:`t` depends on
    :math:`x_{t - R}, \dots, x_{t - 1}` with :math:`R = 1 + \sum_l (k - 1) \delta_l`.

    Example:
        >>> receptive_field([1, 2, 4, 8])
        16
    """
    k = check_int(kernel_size, "kernel_size")
    return 1 + sum((k - 1) * check_int(d, "each dilation") for d in dilations)


def causal_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  dilation: int = 1) -> torch.Tensor:
    r"""A causal, dilated 1-D convolution: the output at :math:`t` reads only :math:`x_{\le t}`.

    .. math:: y_t = b + \sum_{j=0}^{k-1} W_{:, :, j}\, x_{t - (k - 1 - j)\,\delta},

    with :math:`x_s = 0` for :math:`s < 0`: ``F.conv1d`` on the input padded with
    :math:`(k-1)\delta` zeros on the left only. The last tap (:math:`j = k - 1`) reads the
    present; the first reads :math:`(k-1)\delta` steps back.

    Arguments:
        x: ``[n, C_in, T]``.
        weight: ``[C_out, C_in, k]``.
        bias: ``[C_out]`` or ``None``.
        dilation: :math:`\delta \ge 1`.

    Returns:
        ``[n, C_out, T]``, aligned with the input.

    References:
        van den Oord et al. (2016c), section 2.1 (causal) and 2.2 (dilated), fig. 2-3.

    Example:
        >>> x = torch.arange(5.0).reshape(1, 1, 5)
        >>> causal_conv1d(x, torch.tensor([[[1.0, 0.0]]]), None, dilation=2)   # x_{t-2}
        tensor([[[0., 0., 0., 1., 2.]]])
    """
    x = as_float_tensor(x, "x", ndim=3)
    weight = as_float_tensor(weight, "weight", ndim=3, dtype=x.dtype, device=x.device)
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight must be [C_out, {x.shape[1]}, k] for x with {x.shape[1]} "
                         f"channels, got {list(weight.shape)}")
    if bias is not None:
        bias = as_float_tensor(bias, "bias", ndim=1, dtype=x.dtype, device=x.device)
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"bias must have {weight.shape[0]} entries, got {bias.shape[0]}")
    return _causal(x, weight, bias, check_int(dilation, "dilation"))


def _causal(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
            dilation: int) -> torch.Tensor:
    left = (weight.shape[2] - 1) * dilation  # pad the past only: no tap reaches the future
    return F.conv1d(F.pad(x, (left, 0)), weight, bias, dilation=dilation)


class CausalConv1d(nn.Conv1d):
    r"""A 1-D convolution that sees only the present and the past: left padding
    :math:`(k - 1)\delta`, no right padding, so the output at :math:`t` reads
    :math:`x_t, x_{t - \delta}, \dots, x_{t - (k-1)\delta}`.

    Arguments:
        in_channels, out_channels, kernel_size: as ``nn.Conv1d``.
        dilation: :math:`\delta`, the spacing of the taps.

    Example:
        >>> conv = CausalConv1d(1, 1, 2, dilation=4)
        >>> conv(torch.zeros(3, 1, 20)).shape
        torch.Size([3, 1, 20])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, *,
                 dilation: int = 1) -> None:
        super().__init__(check_int(in_channels, "in_channels"),
                         check_int(out_channels, "out_channels"),
                         check_int(kernel_size, "kernel_size"),
                         dilation=check_int(dilation, "dilation"))
        self.left = (self.kernel_size[0] - 1) * self.dilation[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _causal(x, self.weight, self.bias, self.dilation[0])

    def step(self, history: torch.Tensor) -> torch.Tensor:
        r"""The output at the last time step only, from the ``(k-1)δ + 1`` latest inputs.

        Arguments:
            history: ``[n, C, (k-1)δ + 1]``, the inputs at :math:`t - (k-1)\delta, \dots, t`.

        Returns:
            ``[n, out_channels]``.
        """
        return F.conv1d(history, self.weight, self.bias, dilation=self.dilation).squeeze(-1)


class _Layer(nn.Module):
    """A gated residual layer: dilated causal conv -> tanh * sigmoid -> residual and skip."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv = CausalConv1d(channels, 2 * channels, kernel_size, dilation=dilation)
        self.residual = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, channels, 1)
        self.drop = nn.Dropout(dropout)

    def gated(self, features: torch.Tensor) -> torch.Tensor:
        f, g = features.chunk(2, dim=1)
        return self.drop(torch.tanh(f) * torch.sigmoid(g))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.gated(self.conv(z))
        return z + self.residual(u), self.skip(u)


class WaveNet(AutoregressiveModel):
    r"""WaveNet over signals of ``length`` samples quantised to ``levels`` levels.

    Arguments:
        length: :math:`T`, samples per signal (events are ``[n, T]`` integer levels).
        levels: :math:`L` (2: binary samples with one Bernoulli logit).
        channels: channels of the residual stream.
        dilations: one gated layer per entry, e.g. ``(1, 2, 4, 8, 16, 32)``.
        kernel_size: taps of each causal convolution (2 in the paper).
        dropout: dropout on each gated activation while training.

    References:
        van den Oord et al. (2016c), section 2; Paine et al. (2016) for the cached ``sample``.

    Example:
        >>> model = WaveNet(32, levels=8, channels=16, dilations=(1, 2, 4))
        >>> model.receptive_field
        8
        >>> model.sample(2).shape
        torch.Size([2, 32])
    """

    def __init__(self, length: int, levels: int = 16, *, channels: int = 32,
                 dilations: Sequence[int] = (1, 2, 4, 8, 16), kernel_size: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__(check_int(length, "length"), levels)
        self.channels = check_int(channels, "channels")
        self.dilations = [check_int(d, "each dilation") for d in dilations]
        if not self.dilations:
            raise ValueError("dilations must name at least one layer")
        self.kernel_size = check_int(kernel_size, "kernel_size", minimum=2)
        self.dropout = check_non_negative(dropout, "dropout")
        in_channels = 1 if self.levels == 2 else self.levels
        self.embed = nn.Conv1d(in_channels, self.channels, 1)
        self.layers = nn.ModuleList(_Layer(self.channels, self.kernel_size, d, self.dropout)
                                    for d in self.dilations)
        out_channels = 1 if self.levels == 2 else self.levels
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(self.channels, self.channels, 1),
                                  nn.ReLU(), nn.Conv1d(self.channels, out_channels, 1))

    @property
    def receptive_field(self) -> int:
        """:math:`R`: the output at :math:`t` sees :math:`x_{t-R}, \\dots, x_{t-1}`."""
        return receptive_field(self.dilations, self.kernel_size)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[n, T]`` levels -> ``[n, C_in, T]`` (one-hot codes, or the binary value)."""
        if self.levels == 2:
            return x.unsqueeze(1)
        return F.one_hot(x.long(), self.levels).transpose(1, 2).to(x.dtype)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        # shift right by one step: the output at t then depends on x_{<t} only
        z = self.embed(F.pad(self._encode(x), (1, -1)))
        skips = 0
        for layer in self.layers:
            z, s = layer(z)
            skips = skips + s
        out = self.head(skips)  # [n, L or 1, T]
        return out.squeeze(1) if self.levels == 2 else out.transpose(1, 2)

    @torch.no_grad()
    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        r"""Cached generation: each layer keeps its last :math:`(k-1)\delta + 1` inputs, so a
        new sample costs one step of every layer, :math:`O(\text{layers} \cdot C^2)` whatever
        :math:`T`, against :math:`O(T \cdot \text{layers} \cdot C^2)` for rerunning the
        network (:meth:`sample_naive`). The draws are the same for the same generator."""
        was_training = self.training
        self.eval()
        try:
            return self._sample_cached(n, generator)
        finally:
            self.train(was_training)

    def _sample_cached(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        dev, dt = self.device, self.dtype
        x = torch.zeros(n, self.n_inputs, device=dev, dtype=dt)
        # caches[l]: the inputs of layer l at the latest (k-1)*d + 1 steps (zeros before t=0,
        # exactly the causal zero padding)
        caches = [torch.zeros(n, self.channels, layer.conv.left + 1, device=dev, dtype=dt)
                  for layer in self.layers]
        weight = self.embed.weight.squeeze(-1)
        for t in range(self.n_inputs):
            # the input at t is x_{t-1} (the shift); at t = 0 it is the zero padding
            code = torch.zeros(n, weight.shape[1], device=dev, dtype=dt) if t == 0 else \
                self._encode(x[:, t - 1:t])[:, :, 0]
            z = F.linear(code, weight, self.embed.bias)  # [n, C]
            skips = 0
            for layer, cache in zip(self.layers, caches, strict=True):
                cache[:, :, :-1] = cache[:, :, 1:].clone()
                cache[:, :, -1] = z
                u = layer.gated(layer.conv.step(cache).unsqueeze(-1)).squeeze(-1)
                z = z + F.linear(u, layer.residual.weight.squeeze(-1), layer.residual.bias)
                skips = skips + F.linear(u, layer.skip.weight.squeeze(-1), layer.skip.bias)
            out = self.head(skips.unsqueeze(-1)).squeeze(-1)  # [n, L or 1]
            logit = out.squeeze(1) if self.levels == 2 else out
            u = rand((n,), generator, device=dev, dtype=dt)
            x[:, t] = draw_levels(logit, u)
        return x


def sine_waves(n: int, length: int = 96, levels: int = 16, *, seed: int = 0) -> torch.Tensor:
    r"""The course's 1-D signals: noisy sine waves with a random period, quantised.

    Each signal is :math:`s_t = A \sin(2\pi t / P + \varphi) + \epsilon_t` with period
    :math:`P \sim U[6, 24]`, phase :math:`\varphi \sim U[0, 2\pi)`, amplitude :math:`A \sim
    U[0.5, 1]` and noise :math:`\epsilon_t \sim N(0, 0.05^2)`, mapped from :math:`[-1.2,
    1.2]` to the integer levels :math:`0..L-1`. Predicting the next sample well needs the last
    period or so of the past: a receptive field of a few dozen steps.

    Arguments:
        n: number of signals.
        length: :math:`T`, samples per signal.
        levels: :math:`L`.
        seed: the random source (the course uses seeds 1, 2, 3 for train, val, test).

    Returns:
        ``[n, T]`` float32 tensor of integer levels.

    Example:
        >>> sine_waves(4, 32, 8, seed=1).shape
        torch.Size([4, 32])
    """
    n, length = check_int(n, "n"), check_int(length, "length")
    levels = check_int(levels, "levels", minimum=2)
    g = torch.Generator().manual_seed(check_seed(seed))
    period = 6 + 18 * torch.rand(n, 1, generator=g, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand(n, 1, generator=g, dtype=torch.float64)
    amplitude = 0.5 + 0.5 * torch.rand(n, 1, generator=g, dtype=torch.float64)
    t = torch.arange(length, dtype=torch.float64)
    s = amplitude * torch.sin(2 * math.pi * t / period + phase)
    s = s + 0.05 * torch.randn(n, length, generator=g, dtype=torch.float64)
    k = torch.floor((s + 1.2) / 2.4 * levels).clamp(0, levels - 1)
    return k.to(torch.float32)
