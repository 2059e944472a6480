r"""How many modes a generator covers, and how many of its samples are good.

A GAN has no likelihood to report, but on a mixture of well separated Gaussians with known
centres its samples can be judged directly (Metz et al., 2017; Srivastava et al., 2017): a
sample is **high quality** when it lies within three standard deviations of the nearest
centre, and a mode is **covered** when it receives at least a fifth of its fair share of the
high-quality samples (the threshold of Lin et al., 2018: out of 2,500 samples on 25 modes, a
mode with fewer than 20 is lost). Mode collapse shows as few modes; a generator that spreads
its samples between the modes shows as a low high-quality share. The true density scores
about 98.9 % high quality (a 2-D Gaussian puts :math:`1 - e^{-9/2}` of its mass within
:math:`3\sigma`) and covers every mode.

References:
    L. Metz, B. Poole, D. Pfau and J. Sohl-Dickstein (2017). Unrolled generative adversarial
    networks. ICLR.
    A. Srivastava, L. Valkov, C. Russell, M. U. Gutmann and C. Sutton (2017). VEEGAN: reducing
    mode collapse in GANs using implicit variational learning. NeurIPS.
    Z. Lin, A. Khetan, G. Fanti and S. Oh (2018). PacGAN: the power of two samples in
    generative adversarial networks. NeurIPS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dgm_lab._validation import as_float_tensor, check_non_negative, check_positive

__all__ = ["ModeCoverage", "digit_classifier", "mode_coverage", "toy_mode_coverage"]


@dataclass(frozen=True)
class ModeCoverage:
    """The result of :func:`mode_coverage`.

    Attributes:
        modes: the number of covered modes.
        high_quality: the share of samples within ``radius`` standard deviations of the nearest
            centre, in [0, 1].
        counts: ``[K]`` int64, high-quality samples per mode.

    References:
        L. Metz et al. (2017). Unrolled generative adversarial networks, sec. 3.1.

    Example:
        >>> ModeCoverage(modes=8, high_quality=0.9, counts=torch.full((8,), 281)).modes
        8
    """

    modes: int
    high_quality: float
    counts: torch.Tensor


def mode_coverage(samples: torch.Tensor, centres: torch.Tensor, std: float, *,
                  radius: float = 3.0, min_share: float = 0.2) -> ModeCoverage:
    r"""Modes covered and the share of high-quality samples of a generator on a Gaussian mixture.

    Each sample is assigned to its nearest centre; it is high quality when its distance to it
    is at most ``radius * std``. A mode is covered when it holds at least
    ``min_share * n / K`` high-quality samples (a fifth of the fair share :math:`n/K` by
    default).

    Arguments:
        samples: ``[n, d]`` generated points.
        centres: ``[K, d]`` the centres of the mixture's components.
        std: their common standard deviation :math:`\sigma`.
        radius: high quality within ``radius`` standard deviations (3 in the papers).
        min_share: the fraction of the fair share a mode needs to count as covered.

    Returns:
        A :class:`ModeCoverage`.

    References:
        L. Metz et al. (2017). Unrolled generative adversarial networks, sec. 3.1.
        A. Srivastava et al. (2017). VEEGAN, sec. 5.1 and Table 1.
        Z. Lin et al. (2018). PacGAN, sec. 4.

    Example:
        >>> centres = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
        >>> mode_coverage(torch.zeros(10, 2), centres, 0.1)   # every sample on one mode
        ModeCoverage(modes=1, high_quality=1.0, counts=tensor([10, 0]))
    """
    x = as_float_tensor(samples, "samples", ndim=2).detach()
    c = as_float_tensor(centres, "centres", ndim=2).detach().to(x)
    if c.shape[1] != x.shape[1]:
        raise ValueError(f"samples have {x.shape[1]} coordinates but centres have {c.shape[1]}")
    sigma = check_positive(std, "std")
    r = check_positive(radius, "radius")
    share = check_non_negative(min_share, "min_share")
    dist = torch.cdist(x.double(), c.double())  # [n, K]
    nearest, which = dist.min(1)
    good = nearest <= r * sigma
    counts = torch.bincount(which[good], minlength=len(c)).cpu()
    modes = int((counts >= share * len(x) / len(c)).sum())
    return ModeCoverage(modes=modes, high_quality=float(good.double().mean()), counts=counts)


def toy_mode_coverage(samples: torch.Tensor, name: str, **kwargs: float) -> ModeCoverage:
    """:func:`mode_coverage` on a Gaussian-mixture toy of :mod:`dgm_lab.data`.

    Arguments:
        samples: ``[n, 2]`` generated points.
        name: ``"eight_gaussians"`` or ``"grid25"``.
        kwargs: ``radius``, ``min_share`` of :func:`mode_coverage`.

    Returns:
        A :class:`ModeCoverage`.

    References:
        L. Metz et al. (2017). Unrolled generative adversarial networks, sec. 3.1.
        Z. Lin et al. (2018). PacGAN, sec. 4 (the grid of 25 Gaussians).

    Example:
        >>> from dgm_lab.data import load_toy
        >>> toy_mode_coverage(load_toy("eight_gaussians", "test")[:2500], "eight_gaussians")
    """
    from dgm_lab.data import toy_density

    toy = toy_density(name)
    if not hasattr(toy, "means"):
        raise ValueError(f"{name!r} is not a mixture of Gaussians with known centres; use "
                         "'eight_gaussians' or 'grid25'")
    return mode_coverage(samples, toy.means, toy.std, **kwargs)



class _AsImages(torch.nn.Module):
    """``[n, 784]`` or ``[n, 1, 28, 28]`` -> ``[n, 1, 28, 28]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), 1, 28, 28)


def digit_classifier(image_size: int = 8) -> torch.nn.Module:
    r"""The small classifier the course trains to judge generated digits.

    A GAN's digits have no likelihood, but a classifier trained on real digits can say which
    class a generated image looks like: a conditional GAN should produce images of the class
    it was asked for, and a DCGAN should produce every class (the modes of the digit
    distribution) with confident predictions. ``benchmarks/ch08_results.py`` trains one on the
    training split of each data set and records its test accuracy; the committed checkpoints
    are ``ch08_classifier_digits`` and ``ch08_classifier_mnist``.

    Arguments:
        image_size: 8 (scikit-learn's digits, flat ``[n, 64]`` in [0, 1]: an MLP with one
            hidden layer) or 28 (MNIST, ``[n, 1, 28, 28]`` or ``[n, 784]`` in [0, 1]: a small
            convolutional network, two convolution + pooling stages and a linear layer).

    Returns:
        An untrained ``nn.Module`` mapping images to 10 class logits.

    Example:
        >>> digit_classifier(8)(torch.rand(5, 64)).shape
        torch.Size([5, 10])
    """
    from torch import nn

    if image_size == 8:
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    if image_size == 28:
        return nn.Sequential(
            _AsImages(),
            nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # 28 -> 14
            nn.Conv2d(8, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # 14 -> 7
            nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
    raise ValueError(f"image_size must be 8 or 28, got {image_size!r}")
