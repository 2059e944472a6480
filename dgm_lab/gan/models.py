r"""Generators, discriminators, and the :class:`GAN` that holds a pair of them.

A **generator** is a map :math:`G: z \mapsto x` from noise :math:`z \sim \mathcal N(0, I)` to
data space; the distribution :math:`p_g` of :math:`G(z)` has no density we can evaluate, only
samples (an *implicit* model). A **discriminator** is a binary classifier returning a logit
:math:`\ell(x)`, :math:`D(x) = \sigma(\ell(x))` the probability that :math:`x` is real; a WGAN
*critic* is the same network read as a real-valued score.

* :class:`MLPGenerator`, :class:`MLPDiscriminator`: fully connected networks for the 2-D toys
  and the flattened 8x8 digits; with ``num_classes`` they become the conditional pair of
  Mirza & Osindero (2014), the one-hot label concatenated to the input of both; the
  discriminator can end with :class:`~dgm_lab.gan.MinibatchDiscrimination` and the generator
  use :class:`~dgm_lab.gan.VirtualBatchNorm`.
* :class:`DCGANGenerator`, :class:`DCGANDiscriminator`: the convolutional pair of Radford et
  al. (2016) for 28x28 images: transposed (fractionally strided) convolutions up, strided
  convolutions down, batch normalisation, ReLU in the generator and LeakyReLU in the
  discriminator, no pooling and no hidden fully connected layer.
* :func:`truncated_normal` (the truncation trick of Brock et al., 2019) and
  :func:`interpolate` (linear or spherical paths in latent space, Radford et al., 2016;
  White, 2016).

References:
    I. Goodfellow et al. (2014). Generative adversarial nets. NeurIPS.
    M. Mirza and S. Osindero (2014). Conditional generative adversarial nets. arXiv:1411.1784.
    A. Radford, L. Metz and S. Chintala (2016). Unsupervised representation learning with
    deep convolutional generative adversarial networks. ICLR.
    A. Brock, J. Donahue and K. Simonyan (2019). Large scale GAN training for high fidelity
    natural image synthesis. ICLR.
    T. White (2016). Sampling generative networks. arXiv:1609.04468.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from dgm_lab._validation import as_float_tensor, check_choice, check_int, check_positive
from dgm_lab.gan.techniques import MinibatchDiscrimination, VirtualBatchNorm
from dgm_lab.model import randn

__all__ = [
    "DCGANDiscriminator",
    "DCGANGenerator",
    "GAN",
    "MLPDiscriminator",
    "MLPGenerator",
    "interpolate",
    "truncated_normal",
    "with_labels",
]

OUTPUTS = ("identity", "sigmoid")


def _one_hot(labels: torch.Tensor | None, num_classes: int, n: int,
             device: torch.device, dtype: torch.dtype) -> torch.Tensor | None:
    """The one-hot codes ``[n, K]`` of ``labels`` (``None`` for an unconditional network)."""
    if num_classes == 0:
        if labels is not None:
            raise ValueError("this network is unconditional (num_classes=0): give no labels")
        return None
    if labels is None:
        raise ValueError(f"this network is conditional ({num_classes} classes): give labels")
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.shape != (n,):
        raise ValueError(f"labels must be an int64 torch.Tensor of shape [{n}], got "
                         f"{type(labels).__name__} of dtype "
                         f"{getattr(labels, 'dtype', '?')} and shape "
                         f"{tuple(getattr(labels, 'shape', ()))}")
    if ((labels < 0) | (labels >= num_classes)).any():
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    return F.one_hot(labels.to(device), num_classes).to(dtype)


def with_labels(x: torch.Tensor, labels: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    """``x`` ``[n, d]`` with the one-hot code of ``labels`` (int64 ``[n]`` in
    ``0..num_classes - 1``) appended, ``[n, d + num_classes]``: the input of a conditional
    network. ``num_classes`` 0 takes no labels and returns ``x``; a ValueError names a missing,
    unexpected or out-of-range ``labels``.

    Example:
        >>> with_labels(torch.zeros(2, 1), torch.tensor([0, 2]), 3)
        tensor([[0., 1., 0., 0.],
                [0., 0., 0., 1.]])
    """
    code = _one_hot(labels, num_classes, len(x), x.device, x.dtype)
    return x if code is None else torch.cat([x, code], 1)


class MLPGenerator(nn.Module):
    r"""A fully connected generator :math:`G(z)` (or :math:`G(z, y)` with ``num_classes``).

    ``layers`` hidden layers of width ``hidden`` with ReLU, then a linear output (``"identity"``,
    for unbounded data such as the toys) or a sigmoid (``"sigmoid"``, for pixels in [0, 1]).
    With ``virtual_batch_norm``, each hidden layer is normalised by
    :class:`~dgm_lab.gan.VirtualBatchNorm` against a fixed reference batch of noise (drawn once
    from ``reference_seed`` and kept as a buffer, so it is saved with the weights).

    Arguments:
        latent_dim: dimension of :math:`z`.
        data_dim: dimension of :math:`x`.
        hidden: width of the hidden layers.
        layers: number of hidden layers (>= 1).
        num_classes: 0 (unconditional) or the number of classes :math:`K` of a conditional
            generator (the one-hot label joins :math:`z` at the input).
        output: ``"identity"`` or ``"sigmoid"``.
        virtual_batch_norm: normalise the hidden layers with a reference batch.
        reference_size: size of the reference batch.
        reference_seed: seed of the reference batch.

    References:
        I. Goodfellow et al. (2014). Generative adversarial nets.
        M. Mirza and S. Osindero (2014). Conditional generative adversarial nets.

    Example:
        >>> MLPGenerator(latent_dim=2, data_dim=2)(torch.randn(5, 2)).shape
        torch.Size([5, 2])
    """

    def __init__(self, latent_dim: int = 2, data_dim: int = 2, hidden: int = 128,
                 layers: int = 3, *, num_classes: int = 0, output: str = "identity",
                 virtual_batch_norm: bool = False, reference_size: int = 128,
                 reference_seed: int = 0) -> None:
        super().__init__()
        self.latent_dim = check_int(latent_dim, "latent_dim")
        self.data_dim = check_int(data_dim, "data_dim")
        self.num_classes = check_int(num_classes, "num_classes", minimum=0)
        self.output = check_choice(output, "output", OUTPUTS)
        hidden, layers = check_int(hidden, "hidden"), check_int(layers, "layers")
        sizes = [self.latent_dim + self.num_classes] + [hidden] * layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.out = nn.Linear(hidden, self.data_dim)
        self.vbn = None
        if virtual_batch_norm:
            self.vbn = nn.ModuleList(VirtualBatchNorm(hidden) for _ in range(layers))
            g = torch.Generator().manual_seed(reference_seed)
            n_ref = check_int(reference_size, "reference_size")
            self.register_buffer("reference_z", torch.randn(n_ref, self.latent_dim, generator=g))
            # a conditional generator's reference batch cycles through the classes
            self.register_buffer("reference_labels", torch.arange(n_ref) % max(num_classes, 1))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape [n, {self.latent_dim}], got {tuple(z.shape)}")
        h = with_labels(z, labels, self.num_classes)
        n_ref = 0
        if self.vbn is not None:
            ref_labels = self.reference_labels if self.num_classes else None
            ref = with_labels(self.reference_z.to(z), ref_labels, self.num_classes)
            h, n_ref = torch.cat([ref, h]), len(ref)
        for i, layer in enumerate(self.hidden):
            h = layer(h)
            if self.vbn is not None:
                h = self.vbn[i](h, n_ref)
            h = torch.relu(h)
        x = self.out(h[n_ref:])
        return torch.sigmoid(x) if self.output == "sigmoid" else x


class MLPDiscriminator(nn.Module):
    r"""A fully connected discriminator: ``[n, data_dim] -> [n]`` logits (or critic scores).

    ``layers`` hidden layers of width ``hidden`` with LeakyReLU (slope 0.2); :meth:`features`
    returns the last hidden layer, the :math:`f(x)` of feature matching. With
    ``minibatch_kernels`` > 0 a :class:`~dgm_lab.gan.MinibatchDiscrimination` layer appends
    that many batch statistics before the output layer. With ``num_classes`` the one-hot
    label is concatenated to the input (Mirza & Osindero, 2014).

    Arguments:
        data_dim: dimension of :math:`x`.
        hidden: width of the hidden layers.
        layers: number of hidden layers (>= 1).
        num_classes: 0 or the number of classes of a conditional discriminator.
        minibatch_kernels: :math:`B` of minibatch discrimination (0: off).
        minibatch_dims: :math:`C` of minibatch discrimination.

    References:
        I. Goodfellow et al. (2014). Generative adversarial nets.
        T. Salimans et al. (2016). Improved techniques for training GANs, sec. 3.2.

    Example:
        >>> MLPDiscriminator(data_dim=2)(torch.randn(5, 2)).shape
        torch.Size([5])
    """

    def __init__(self, data_dim: int = 2, hidden: int = 128, layers: int = 3, *,
                 num_classes: int = 0, minibatch_kernels: int = 0,
                 minibatch_dims: int = 4) -> None:
        super().__init__()
        self.data_dim = check_int(data_dim, "data_dim")
        self.num_classes = check_int(num_classes, "num_classes", minimum=0)
        hidden, layers = check_int(hidden, "hidden"), check_int(layers, "layers")
        sizes = [self.data_dim + self.num_classes] + [hidden] * layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        kernels = check_int(minibatch_kernels, "minibatch_kernels", minimum=0)
        self.minibatch = (MinibatchDiscrimination(hidden, kernels, minibatch_dims)
                          if kernels else None)
        self.out = nn.Linear(hidden + kernels, 1)

    def features(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.data_dim:
            raise ValueError(f"x must have shape [n, {self.data_dim}], got {tuple(x.shape)}")
        h = with_labels(x, labels, self.num_classes)
        for layer in self.hidden:
            h = F.leaky_relu(layer(h), 0.2)
        return h

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x, labels)
        if self.minibatch is not None:
            h = self.minibatch(h)
        return self.out(h).squeeze(1)


class DCGANGenerator(nn.Module):
    r"""The DCGAN generator for 28x28 images: ``[n, latent_dim] -> [n, 1, 28, 28]`` in [0, 1].

    :math:`z` is read as a :math:`1 \times 1` image with ``latent_dim`` channels and grown by
    transposed convolutions, :math:`1 \to 7 \to 14 \to 28` pixels, with batch normalisation
    and ReLU after each but the last, which ends in tanh (Radford et al., 2016, sec. 3),
    rescaled from [-1, 1] to the [0, 1] of the data by :math:`(\tanh + 1)/2`.

    Arguments:
        latent_dim: dimension of :math:`z`.
        channels: channels of the 14x14 layer (the 7x7 layer has twice as many).

    References:
        A. Radford, L. Metz and S. Chintala (2016). Unsupervised representation learning with
        deep convolutional generative adversarial networks, sec. 3 and Fig. 1.

    Example:
        >>> DCGANGenerator(latent_dim=16)(torch.randn(2, 16)).shape
        torch.Size([2, 1, 28, 28])
    """

    def __init__(self, latent_dim: int = 32, channels: int = 32) -> None:
        super().__init__()
        self.latent_dim = check_int(latent_dim, "latent_dim")
        c = check_int(channels, "channels")
        self.net = nn.Sequential(
            nn.ConvTranspose2d(self.latent_dim, 2 * c, 7, 1, 0, bias=False),  # 1 -> 7
            nn.BatchNorm2d(2 * c), nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1, bias=False),  # 7 -> 14
            nn.BatchNorm2d(c), nn.ReLU(),
            nn.ConvTranspose2d(c, 1, 4, 2, 1),  # 14 -> 28
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is not None:
            raise ValueError("the DCGAN generator is unconditional: give no labels")
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape [n, {self.latent_dim}], got {tuple(z.shape)}")
        return 0.5 * (self.net(z[:, :, None, None]) + 1.0)


class DCGANDiscriminator(nn.Module):
    r"""The DCGAN discriminator for 28x28 images: ``[n, 1, 28, 28] -> [n]`` logits.

    Strided convolutions, :math:`28 \to 14 \to 7` pixels, with LeakyReLU (slope 0.2), batch
    normalisation on the second, then one convolution over the whole 7x7 map to the logit
    (Radford et al., 2016, sec. 3). Input pixels in [0, 1] are first mapped to [-1, 1].
    :meth:`features` returns the flattened 7x7 maps.

    Arguments:
        channels: channels of the 14x14 layer (the 7x7 layer has twice as many).

    References:
        A. Radford, L. Metz and S. Chintala (2016). Unsupervised representation learning with
        deep convolutional generative adversarial networks, sec. 3.

    Example:
        >>> DCGANDiscriminator()(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2])
    """

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        c = check_int(channels, "channels")
        self.body = nn.Sequential(
            nn.Conv2d(1, c, 4, 2, 1), nn.LeakyReLU(0.2),  # 28 -> 14
            nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c),
            nn.LeakyReLU(0.2),  # 14 -> 7
        )
        self.out = nn.Conv2d(2 * c, 1, 7, 1, 0)  # 7 -> 1

    def features(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is not None:
            raise ValueError("the DCGAN discriminator is unconditional: give no labels")
        if x.dim() == 2 and x.shape[1] == 784:
            x = x.reshape(-1, 1, 28, 28)
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"x must have shape [n, 1, 28, 28] or [n, 784], got "
                             f"{tuple(x.shape)}")
        return self.body(2.0 * x - 1.0)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.features(x, labels)).flatten()


class GAN(nn.Module):
    r"""A generator and a discriminator, with the noise distribution :math:`z \sim \mathcal
    N(0, I)` that feeds them.

    :meth:`sample` draws :math:`G(z)`; :meth:`generate` and :meth:`discriminate` call the two
    networks (with class labels for a conditional GAN). The training losses of
    :mod:`dgm_lab.gan.training` are written against this interface, so one training code
    serves the toys, the conditional GAN on digits and the DCGAN.

    Arguments:
        generator: a module ``(z [n, latent_dim], labels=None) -> x``.
        discriminator: a module ``(x, labels=None) -> [n]`` with a ``features`` method, or
            ``None`` for a trained generator kept without its discriminator (it can sample,
            not train).
        latent_dim: dimension of :math:`z`.
        num_classes: 0 (unconditional) or the number of classes (a conditional GAN).

    References:
        I. Goodfellow et al. (2014). Generative adversarial nets.

    Example:
        >>> gan = GAN(MLPGenerator(2, 2), MLPDiscriminator(2), latent_dim=2)
        >>> gan.sample(100, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([100, 2])
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module | None, latent_dim: int,
                 num_classes: int = 0) -> None:
        super().__init__()
        for name, net in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(net, nn.Module) and not (name == "discriminator" and net is None):
                raise TypeError(f"{name} must be a torch.nn.Module, got {type(net).__name__}")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = check_int(latent_dim, "latent_dim")
        self.num_classes = check_int(num_classes, "num_classes", minimum=0)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def sample_latent(self, n: int, generator: torch.Generator | None = None, *,
                      truncation: float | None = None) -> torch.Tensor:
        """``n`` draws of :math:`z`, ``[n, latent_dim]``, on the GAN's device (truncated
        at ``truncation`` standard deviations if given: :func:`truncated_normal`)."""
        n = check_int(n, "n")
        dtype = next(self.generator.parameters()).dtype
        if truncation is not None:
            check_positive(truncation, "truncation")  # named as the caller knows it
            return truncated_normal((n, self.latent_dim), truncation, generator,
                                    device=self.device, dtype=dtype)
        return randn((n, self.latent_dim), generator, device=self.device, dtype=dtype)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """:math:`G(z)` (or :math:`G(z, y)`)."""
        return self.generator(z, labels)

    def discriminate(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The discriminator's logits (a critic's scores), ``[n]``."""
        if self.discriminator is None:
            raise ValueError("this GAN has no discriminator (it was built to sample only)")
        return self.discriminator(x, labels)

    def sample(self, n: int, generator: torch.Generator | None = None, *,
               labels: torch.Tensor | None = None,
               truncation: float | None = None) -> torch.Tensor:
        """``n`` samples :math:`G(z)` (with ``labels`` ``[n]``, int64, for a conditional GAN),
        computed without gradients and in evaluation mode (batch normalisation uses its
        running statistics)."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.generate(self.sample_latent(n, generator, truncation=truncation),
                                     labels)
        finally:
            self.train(was_training)


def truncated_normal(shape: tuple[int, ...], threshold: float,
                     generator: torch.Generator | None = None, *,
                     device: torch.device | str = "cpu",
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""Standard normal draws with every coordinate resampled until :math:`|z_i| \le` threshold.

    The *truncation trick* (Brock et al., 2019, sec. 3.1): a generator fed with noise closer to
    the centre of the prior produces typical, cleaner samples at the cost of variety; the
    threshold trades one for the other.

    Arguments:
        shape: the shape of the draw.
        threshold: :math:`\tau > 0`.
        generator: a ``torch.Generator`` (default: the global one).
        device, dtype: of the result.

    Returns:
        A tensor of ``shape``, each coordinate distributed as :math:`\mathcal N(0, 1)`
        conditioned on :math:`[-\tau, \tau]`.

    References:
        A. Brock, J. Donahue and K. Simonyan (2019). Large scale GAN training for high
        fidelity natural image synthesis, sec. 3.1.

    Example:
        >>> truncated_normal((1000, 8), 0.5).abs().max() <= 0.5
        tensor(True)
    """
    tau = check_positive(threshold, "threshold")
    z = randn(shape, generator, device=device, dtype=dtype)
    # each round redraws the coordinates still outside; at tau = 0.1 about 92 % are, so
    # allow many rounds before giving up
    for _ in range(10_000):
        outside = z.abs() > tau
        if not outside.any():
            return z
        z[outside] = randn((int(outside.sum()),), generator, device=device, dtype=dtype)
    raise RuntimeError(f"could not draw inside threshold={tau}: use a larger threshold")


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int, *,
                spherical: bool = False) -> torch.Tensor:
    r"""Points on the path from ``z0`` to ``z1`` in latent space, ends included.

    Linear: :math:`(1 - t) z_0 + t z_1`. Spherical (``spherical=True``):
    :math:`\frac{\sin((1-t)\theta)}{\sin\theta} z_0 + \frac{\sin(t\theta)}{\sin\theta} z_1`
    with :math:`\theta` the angle between the two; in high dimension a Gaussian draw lies near
    a sphere of radius :math:`\sqrt d`, and the straight line cuts through the low-norm
    interior the generator never saw in training, while the great circle keeps the norm
    (White, 2016).

    Arguments:
        z0, z1: ``[d]`` latent vectors.
        steps: number of points (>= 2).
        spherical: follow the great circle instead of the straight line.

    Returns:
        ``[steps, d]``.

    References:
        A. Radford, L. Metz and S. Chintala (2016). DCGAN, sec. 6.1 (walking the latent space).
        T. White (2016). Sampling generative networks, sec. 2.1.

    Example:
        >>> interpolate(torch.zeros(3), torch.ones(3), 5)[2]
        tensor([0.5000, 0.5000, 0.5000])
    """
    a = as_float_tensor(z0, "z0", ndim=1)
    b = as_float_tensor(z1, "z1", ndim=1).to(a)
    if a.shape != b.shape:
        raise ValueError(f"z0 and z1 must have the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    steps = check_int(steps, "steps", minimum=2)
    t = torch.linspace(0, 1, steps, dtype=a.dtype, device=a.device)[:, None]
    if not spherical:
        return (1 - t) * a + t * b
    for name, vector in (("z0", a), ("z1", b)):
        if not bool(vector.norm() > 0):
            raise ValueError(f"{name} is the zero vector: it has no direction, so the great "
                             "circle is undefined; use the linear path")
    cos = torch.dot(a, b) / (a.norm() * b.norm())
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    if theta.abs() < 1e-6 or math.isclose(float(theta), math.pi, abs_tol=1e-6):
        raise ValueError("z0 and z1 are (anti)parallel: the great circle between them is not "
                         "unique; use the linear path")
    return (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / torch.sin(theta)
