r"""The "improved techniques" for training GANs, each a small piece the training code switches on.

Salimans et al. (2016) proposed several heuristics against the two classic failures of GAN
training, non-convergence and mode collapse; Sønderby et al. (2017) and Arjovsky & Bottou
(2017) added noise. Each is here as one function or module, and
:class:`dgm_lab.gan.GANConfig` turns it on in the same training code:

* **feature matching** (:func:`feature_matching_loss`): the generator matches the mean of an
  intermediate layer of the discriminator on real data instead of fooling its output;
* **minibatch discrimination** (:func:`minibatch_features`, :class:`MinibatchDiscrimination`):
  the discriminator sees how close each example is to the others of its minibatch, so a
  generator that puts the whole batch on one point is easy to spot;
* **historical averaging** (:class:`HistoricalAverage`): a penalty
  :math:`\|\theta - \frac1t\sum_{i<t}\theta_i\|^2` pulls each player towards the average of
  its past parameters, damping the oscillations of the game;
* **one-sided label smoothing**: the ``real_label`` of
  :func:`dgm_lab.gan.discriminator_loss`;
* **virtual batch normalisation** (:class:`VirtualBatchNorm`): batch normalisation with the
  statistics of a fixed reference batch, so an example's output no longer depends on the other
  examples of its minibatch;
* **instance noise** (:func:`instance_noise_std`): Gaussian noise added to the
  discriminator's inputs, real and fake, annealed to zero, so that the two distributions
  overlap and the discriminator cannot become perfect (Sønderby et al., 2017, sec. 3.1;
  Arjovsky & Bottou, 2017, sec. 3);
* **packing** (:func:`pack_samples`, :class:`PackedDiscriminator`, Lin et al., 2018): the
  discriminator judges :math:`m` samples at a time, all real or all generated, concatenated
  into one input; a generator that drops modes makes packs whose joint distribution is much
  further from the real packs' than its single samples are from single real ones.

References:
    T. Salimans, I. Goodfellow, W. Zaremba, V. Cheung, A. Radford and X. Chen (2016).
    Improved techniques for training GANs. NeurIPS.
    C. K. Sønderby, J. Caballero, L. Theis, W. Shi and F. Huszár (2017). Amortised MAP
    inference for image super-resolution. ICLR.
    M. Arjovsky and L. Bottou (2017). Towards principled methods for training generative
    adversarial networks. ICLR.
"""

from __future__ import annotations

import torch
from torch import nn

from dgm_lab._validation import check_finite, check_int, check_non_negative

__all__ = [
    "HistoricalAverage",
    "MinibatchDiscrimination",
    "PackedDiscriminator",
    "VirtualBatchNorm",
    "feature_matching_loss",
    "instance_noise_std",
    "minibatch_features",
    "pack_samples",
]


def _float(x: object, name: str, ndim: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating torch.Tensor, got "
                        f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}")
    if x.dim() != ndim or x.numel() == 0:
        raise ValueError(f"{name} must be a non-empty tensor with {ndim} dimensions, got shape "
                         f"{tuple(x.shape)}")
    return check_finite(x, name)


def feature_matching_loss(real_features: torch.Tensor,
                          fake_features: torch.Tensor) -> torch.Tensor:
    r"""Feature matching: :math:`\|\mathbb E_{x \sim p_r} f(x) - \mathbb E_{z} f(G(z))\|_2^2`.

    :math:`f` is an intermediate layer of the discriminator. The generator no longer chases the
    discriminator's current verdict, which moves; it matches the statistics the discriminator
    finds worth computing (Salimans et al., 2016, sec. 3.1). The real features are a target:
    detach them if they should not train the discriminator.

    Arguments:
        real_features: ``[m, k]`` features of a batch of real examples.
        fake_features: ``[m', k]`` features of a batch of generated examples.

    Returns:
        A scalar tensor.

    References:
        T. Salimans et al. (2016). Improved techniques for training GANs, sec. 3.1.

    Example:
        >>> feature_matching_loss(torch.ones(4, 3), torch.zeros(5, 3))
        tensor(3.)
    """
    real = _float(real_features, "real_features", 2)
    fake = _float(fake_features, "fake_features", 2)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real_features and fake_features must have the same number of "
                         f"features, got {real.shape[1]} and {fake.shape[1]}")
    return (real.mean(0) - fake.mean(0)).square().sum()


def minibatch_features(features: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    r"""The minibatch-discrimination statistics of each example against its batch.

    Each example's features :math:`f(x_i) \in \mathbb R^A` are multiplied by a tensor
    :math:`T \in \mathbb R^{A \times B \times C}` into :math:`B` rows :math:`M_{i,b} \in
    \mathbb R^C`; then, for each kernel :math:`b`,

    .. math:: c_b(x_i, x_j) = \exp\big(-\|M_{i,b} - M_{j,b}\|_{L_1}\big), \qquad
              o(x_i)_b = \sum_{j=1}^{n} c_b(x_i, x_j)

    (the sum includes :math:`j = i`, whose term is 1). A batch that collapsed onto one point
    has every :math:`o(x_i)_b = n`, a value a discriminator learns to spot (Salimans et al.,
    2016, sec. 3.2).

    Arguments:
        features: ``[n, A]``, the features :math:`f(x_i)` of one minibatch.
        tensor: ``[A, B, C]``, the learned tensor :math:`T`.

    Returns:
        ``[n, B]``: :math:`o(x_i)_b`.

    References:
        T. Salimans et al. (2016). Improved techniques for training GANs, sec. 3.2.

    Example:
        >>> minibatch_features(torch.zeros(3, 4), torch.randn(4, 2, 5))   # all identical
        tensor([[3., 3.],
                [3., 3.],
                [3., 3.]])
    """
    f = _float(features, "features", 2)
    t = _float(tensor, "tensor", 3)
    if t.shape[0] != f.shape[1]:
        raise ValueError(f"tensor must have shape [A, B, C] with A = {f.shape[1]} (the number "
                         f"of features), got {tuple(t.shape)}")
    if t.dtype != f.dtype:
        raise TypeError(f"tensor must have the dtype of features ({f.dtype}), got {t.dtype}")
    m = torch.einsum("na,abc->nbc", f, t)  # [n, B, C]
    l1 = (m[:, None] - m[None, :]).abs().sum(-1)  # [n, n, B]: ||M_i,b - M_j,b||_1
    return torch.exp(-l1).sum(1)


class MinibatchDiscrimination(nn.Module):
    r"""A layer that appends :func:`minibatch_features` to each example's features.

    ``[n, A] -> [n, A + B]``: :math:`[f(x_i), o(x_i)]`, the input of the discriminator's last
    layer (Salimans et al., 2016, sec. 3.2). :math:`T` starts small (standard deviation 0.1),
    as in the authors' code, so that at first the statistics are close to :math:`n`.

    Arguments:
        in_features: :math:`A`.
        kernels: :math:`B`, the number of statistics.
        kernel_dims: :math:`C`, the dimension each is computed in.

    References:
        T. Salimans et al. (2016). Improved techniques for training GANs, sec. 3.2.

    Example:
        >>> MinibatchDiscrimination(8, 4, 3)(torch.randn(10, 8)).shape
        torch.Size([10, 12])
    """

    def __init__(self, in_features: int, kernels: int = 8, kernel_dims: int = 4) -> None:
        super().__init__()
        shape = (check_int(in_features, "in_features"), check_int(kernels, "kernels"),
                 check_int(kernel_dims, "kernel_dims"))
        self.tensor = nn.Parameter(0.1 * torch.randn(shape))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.cat([features, minibatch_features(features, self.tensor)], 1)


class VirtualBatchNorm(nn.Module):
    r"""Batch normalisation against a fixed reference batch (Salimans et al., 2016, sec. 3.5).

    Batch normalisation makes each output depend on the other examples of the minibatch, which
    in a GAN's generator couples samples that should be independent. Virtual batch
    normalisation normalises each example :math:`x` with the statistics of a *reference
    batch* chosen once, together with :math:`x` itself:

    .. math:: \mu(x) = \frac{N \bar\mu_{\text{ref}} + x}{N + 1}, \quad
              \sigma^2(x) = \frac{N \overline{x^2}_{\text{ref}} + x^2}{N + 1} - \mu(x)^2,
              \quad \text{out} = \gamma \frac{x - \mu(x)}{\sqrt{\sigma^2(x) + \epsilon}}
              + \beta,

    where :math:`N` is the size of the reference batch. The reference batch travels through the
    network with every minibatch: the layer receives ``[N + n, k]``, its first ``N`` rows the
    reference (normalised with their own statistics), and returns the same shape.

    Arguments:
        num_features: :math:`k`.
        eps: :math:`\epsilon`.

    References:
        T. Salimans et al. (2016). Improved techniques for training GANs, sec. 3.5.

    Example:
        >>> vbn = VirtualBatchNorm(3)
        >>> vbn(torch.randn(64 + 5, 3), reference_size=64).shape
        torch.Size([69, 3])
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        k = check_int(num_features, "num_features")
        self.eps = check_non_negative(eps, "eps")
        self.weight = nn.Parameter(torch.ones(k))
        self.bias = nn.Parameter(torch.zeros(k))

    def forward(self, h: torch.Tensor, reference_size: int) -> torch.Tensor:
        n_ref = check_int(reference_size, "reference_size")
        if h.dim() != 2 or len(h) <= n_ref:
            raise ValueError(f"the input must be [reference_size + n, k] with n >= 1, got "
                             f"shape {tuple(h.shape)} and reference_size={n_ref}")
        ref, x = h[:n_ref], h[n_ref:]
        mean_ref, sq_ref = ref.mean(0), ref.square().mean(0)
        c = 1.0 / (n_ref + 1)
        mean = (1 - c) * mean_ref + c * x  # [n, k]: each example with the reference batch
        var = (1 - c) * sq_ref + c * x.square() - mean.square()
        out_x = (x - mean) / torch.sqrt(var + self.eps)
        out_ref = (ref - mean_ref) / torch.sqrt(sq_ref - mean_ref.square() + self.eps)
        return torch.cat([out_ref, out_x]) * self.weight + self.bias


class HistoricalAverage:
    r"""The historical-averaging penalty :math:`\|\theta - \frac1t \sum_{i=1}^{t}
    \theta[i]\|^2` of one player (Salimans et al., 2016, sec. 3.3).

    Keeps the running mean of a module's parameters over the steps taken so far
    (:meth:`update`, called after each optimiser step) and returns the squared distance of the
    current parameters to it (:meth:`penalty`, added to the player's loss). In games that
    gradient descent circles around, such as :math:`\min_x \max_y xy`, the penalty pulls both
    players towards the centre of their orbits.

    Arguments:
        module: the player (a generator or a discriminator).

    References:
        T. Salimans et al. (2016). Improved techniques for training GANs, sec. 3.3.

    Example:
        >>> net = nn.Linear(2, 1)
        >>> history = HistoricalAverage(net)
        >>> loss = my_loss(net) + 0.1 * history.penalty(net)   # then step, then:
        >>> history.update(net)
    """

    def __init__(self, module: nn.Module) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        self.count = 1
        self.mean = [p.detach().clone() for p in module.parameters()]

    def _params(self, module: nn.Module) -> list[torch.Tensor]:
        params = list(module.parameters())
        if len(params) != len(self.mean) or any(
                p.shape != m.shape for p, m in zip(params, self.mean, strict=True)):
            raise ValueError("module is not the module this HistoricalAverage was built for")
        return params

    def penalty(self, module: nn.Module) -> torch.Tensor:
        params = self._params(module)
        return sum(((p - m.to(p)).square().sum() for p, m in zip(params, self.mean, strict=True)),
                   torch.zeros((), device=params[0].device, dtype=params[0].dtype))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.count += 1
        for p, m in zip(self._params(module), self.mean, strict=True):
            m.add_((p.to(m) - m) / self.count)  # running mean of count values


def instance_noise_std(initial: float, progress: float) -> float:
    r"""The standard deviation of instance noise at a point of training: linear annealing
    :math:`\sigma_0 (1 - \text{progress})`, from ``initial`` to 0.

    Adding :math:`\mathcal N(0, \sigma^2 I)` to every input of the discriminator, real and fake,
    replaces :math:`p_r` and :math:`p_g` by their convolutions with a Gaussian: they overlap
    even when their supports do not, so the JS divergence is no longer stuck at
    :math:`\log 2` and the discriminator's gradient stays informative (Arjovsky & Bottou,
    2017, sec. 3; Sønderby et al., 2017, sec. 3.1). Annealing it to zero recovers the
    original problem.

    Arguments:
        initial: :math:`\sigma_0 \ge 0`.
        progress: the fraction of training done, in [0, 1].

    Returns:
        :math:`\sigma` (a float).

    References:
        C. K. Sønderby et al. (2017). Amortised MAP inference for image super-resolution,
        sec. 3.1 (instance noise).
        M. Arjovsky and L. Bottou (2017). Towards principled methods for training GANs, sec. 3.

    Example:
        >>> instance_noise_std(0.5, 0.25)
        0.375
    """
    sigma = check_non_negative(initial, "initial")
    done = check_non_negative(progress, "progress")
    if done > 1:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    return sigma * (1.0 - done)


def pack_samples(x: torch.Tensor, pack: int) -> torch.Tensor:
    r"""Concatenate each run of ``pack`` consecutive rows of ``x`` into one row.

    ``[n, d] -> [n / m, m d]``: row :math:`k` of the result is
    :math:`[x_{km}, x_{km+1}, \dots, x_{km+m-1}]`, the input of a PacGAN discriminator
    (Lin et al., 2018, sec. 3). The rows of a shuffled batch, or of independent generator
    draws, are independent, so each pack is :math:`m` independent samples.

    Arguments:
        x: ``[n, d]`` samples, ``n`` a multiple of ``pack``.
        pack: :math:`m \ge 1`, the samples per pack.

    Returns:
        ``[n / m, m d]`` (a view of ``x``: gradients reach every sample).

    References:
        Z. Lin, A. Khetan, G. Fanti and S. Oh (2018). PacGAN: the power of two samples in
        generative adversarial networks, sec. 3.

    Example:
        >>> pack_samples(torch.arange(8.0).reshape(4, 2), 2)
        tensor([[0., 1., 2., 3.],
                [4., 5., 6., 7.]])
    """
    m = check_int(pack, "pack")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2 or len(x) == 0:
        raise ValueError(f"x must have shape [n, d] with n >= 1, got {tuple(x.shape)}")
    if len(x) % m:
        raise ValueError(f"x must have a multiple of pack={m} rows to make whole packs, got "
                         f"{len(x)}")
    return x.reshape(len(x) // m, m * x.shape[1])


class PackedDiscriminator(nn.Module):
    r"""A discriminator that judges packs of ``pack`` samples (PacGAN, Lin et al., 2018).

    ``[n, d] -> [n / m]`` logits: the input is cut into packs by :func:`pack_samples` and the
    inner network, built for inputs of dimension :math:`m d`, scores each pack. The losses of
    :mod:`dgm_lab.gan.losses` average over whatever logits they get, so the training code is
    unchanged: a batch of :math:`n` real and :math:`n` generated samples becomes :math:`n/m`
    real and :math:`n/m` generated packs. With :math:`m = 1` the wrapper is the inner network.

    Packing fights mode collapse through the divergence itself: the distribution of
    :math:`m` independent samples of a generator that misses a mode of mass :math:`w` puts
    mass :math:`1 - (1 - w)^m` on packs that real data would make but it never does, so the
    gap the discriminator sees grows with :math:`m` (Lin et al., 2018, sec. 4).

    Arguments:
        net: the inner discriminator, ``[n / m, m d] -> [n / m]``; its ``features`` method, if
            any, is exposed on packs too (for feature matching).
        pack: :math:`m \ge 1`.

    References:
        Z. Lin, A. Khetan, G. Fanti and S. Oh (2018). PacGAN: the power of two samples in
        generative adversarial networks, sec. 3 and 4.

    Example:
        >>> from dgm_lab.gan import MLPDiscriminator
        >>> PackedDiscriminator(MLPDiscriminator(data_dim=2 * 4), 4)(torch.randn(12, 2)).shape
        torch.Size([3])
    """

    def __init__(self, net: nn.Module, pack: int) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        self.net = net
        self.pack = check_int(pack, "pack")

    def _packed(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if labels is not None:
            raise ValueError("a PackedDiscriminator is unconditional: give no labels")
        return pack_samples(x, self.pack)

    def features(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if not hasattr(self.net, "features"):
            raise ValueError("the inner discriminator has no features(x) method")
        return self.net.features(self._packed(x, labels))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(self._packed(x, labels))
