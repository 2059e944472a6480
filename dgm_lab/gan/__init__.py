r"""Generative adversarial networks (chapter 8): the game, its theory, its failures and fixes.

A GAN learns to *sample* without ever writing down a density. A generator :math:`G` maps
noise :math:`z \sim \mathcal N(0, I)` to data space; a discriminator :math:`D` is trained to
tell its samples from real data, and the generator is trained to fool it (Goodfellow et al.,
2014). With an optimal discriminator the generator minimises the Jensen-Shannon divergence
between the data and its samples; in practice the two networks take turns on stochastic
gradients, and the game can circle, saturate or collapse onto a few modes.

The package, in the order of the chapter:

* :mod:`~dgm_lab.gan.losses`: :func:`discriminator_loss`, :func:`generator_loss` (minimax and
  non-saturating), the Wasserstein :func:`critic_loss` and :func:`gradient_penalty`, and the
  theory on known densities: :func:`optimal_discriminator`, :func:`value_function`,
  :func:`js_divergence`, :func:`wasserstein_1d`, :func:`empirical_wasserstein`.
* :mod:`~dgm_lab.gan.models`: :class:`MLPGenerator` / :class:`MLPDiscriminator` (toys,
  digits, conditional), :class:`DCGANGenerator` / :class:`DCGANDiscriminator` (28x28),
  the :class:`GAN` that holds a pair, :func:`truncated_normal` and :func:`interpolate`.
* :mod:`~dgm_lab.gan.techniques`: feature matching, minibatch discrimination, historical
  averaging, virtual batch normalisation, instance noise, packing (PacGAN: :func:`pack_samples`,
  :class:`PackedDiscriminator`) (label smoothing is an argument of :func:`discriminator_loss`).
* :mod:`~dgm_lab.gan.training`: :class:`GANConfig` (a variant: every technique a switch),
  :data:`VARIANTS`, :func:`gan_updates` (the two :class:`dgm_lab.train.Update` objects of
  Algorithm 1), :func:`train_gan`, :func:`train_toy_gan` (train a variant on a 2-D toy in one
  call) and :func:`bilinear_game`.
* :mod:`~dgm_lab.gan.unrolled`: :func:`unrolled_parameters`, the discriminator after
  :math:`K` differentiable steps, behind the unrolled GAN's generator loss
  (``GANConfig(unrolled_steps=K)``).
* :mod:`~dgm_lab.gan.metrics`: :func:`mode_coverage` and :func:`toy_mode_coverage`, the modes
  covered and the share of high-quality samples on a Gaussian mixture.

Example:
    >>> from dgm_lab.data import load_toy
    >>> from dgm_lab.gan import VARIANTS, toy_mode_coverage, train_toy_gan
    >>> gan, history = train_toy_gan(load_toy("eight_gaussians"), VARIANTS["wgan_gp"], seed=0)
    >>> toy_mode_coverage(gan.sample(2500), "eight_gaussians")   # modes, high-quality share

References:
    I. Goodfellow et al. (2014). Generative adversarial nets. NeurIPS.
    T. Salimans et al. (2016). Improved techniques for training GANs. NeurIPS.
    M. Arjovsky, S. Chintala and L. Bottou (2017). Wasserstein GAN. ICML.
    I. Gulrajani et al. (2017). Improved training of Wasserstein GANs. NeurIPS.
    M. Mirza and S. Osindero (2014). Conditional generative adversarial nets.
    A. Radford, L. Metz and S. Chintala (2016). DCGAN. ICLR.
    L. Metz, B. Poole, D. Pfau and J. Sohl-Dickstein (2017). Unrolled generative adversarial
    networks. ICLR.
"""

from dgm_lab.gan.losses import (
    critic_loss,
    discriminator_loss,
    empirical_wasserstein,
    generator_loss,
    gradient_penalty,
    js_divergence,
    optimal_discriminator,
    r1_penalty,
    value_function,
    wasserstein_1d,
    wasserstein_generator_loss,
)
from dgm_lab.gan.metrics import ModeCoverage, digit_classifier, mode_coverage, toy_mode_coverage
from dgm_lab.gan.models import (
    GAN,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    interpolate,
    truncated_normal,
)
from dgm_lab.gan.techniques import (
    HistoricalAverage,
    MinibatchDiscrimination,
    PackedDiscriminator,
    VirtualBatchNorm,
    feature_matching_loss,
    instance_noise_std,
    minibatch_features,
    pack_samples,
)
from dgm_lab.gan.training import (
    VARIANTS,
    GANConfig,
    bilinear_game,
    build_toy_gan,
    gan_updates,
    toy_discriminator,
    toy_generator,
    train_gan,
    train_toy_gan,
)
from dgm_lab.gan.unrolled import unrolled_parameters

__all__ = [
    "DCGANDiscriminator",
    "DCGANGenerator",
    "GAN",
    "GANConfig",
    "HistoricalAverage",
    "MLPDiscriminator",
    "MLPGenerator",
    "MinibatchDiscrimination",
    "ModeCoverage",
    "PackedDiscriminator",
    "VARIANTS",
    "VirtualBatchNorm",
    "bilinear_game",
    "build_toy_gan",
    "critic_loss",
    "digit_classifier",
    "discriminator_loss",
    "empirical_wasserstein",
    "feature_matching_loss",
    "gan_updates",
    "generator_loss",
    "gradient_penalty",
    "instance_noise_std",
    "interpolate",
    "js_divergence",
    "minibatch_features",
    "mode_coverage",
    "optimal_discriminator",
    "pack_samples",
    "r1_penalty",
    "toy_discriminator",
    "toy_generator",
    "toy_mode_coverage",
    "train_gan",
    "train_toy_gan",
    "truncated_normal",
    "unrolled_parameters",
    "value_function",
    "wasserstein_1d",
    "wasserstein_generator_loss",
]
