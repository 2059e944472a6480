r"""One training code for every GAN of the chapter, with each variant a switch.

:class:`GANConfig` names a variant: the loss (minimax, non-saturating, Wasserstein with
weight clipping or with a gradient penalty), the number of critic steps per generator step
(Algorithm 1's :math:`k`) and the improved techniques of Salimans et al. (2016), each off by
default. :func:`gan_updates` turns a config into the two :class:`dgm_lab.train.Update` objects
(discriminator, then generator every :math:`k` batches) that :func:`dgm_lab.train.fit` runs;
:func:`train_gan` does both. :data:`VARIANTS` holds the variants the chapter compares on the
2-D toys, and :func:`train_toy_gan` is the one-line entry point to train one of them on a toy:

    >>> from dgm_lab.data import load_toy
    >>> from dgm_lab.gan import VARIANTS, train_toy_gan, toy_mode_coverage
    >>> gan, history = train_toy_gan(load_toy("eight_gaussians"), VARIANTS["wgan_gp"], seed=0)
    >>> toy_mode_coverage(gan.sample(2500), "eight_gaussians")

:func:`bilinear_game` shows why a game is harder than a minimisation: on
:math:`\min_x \max_y xy` simultaneous gradient steps spiral away from the equilibrium.

References:
    I. Goodfellow et al. (2014). Generative adversarial nets, Algorithm 1.
    T. Salimans et al. (2016). Improved techniques for training GANs.
    L. Metz et al. (2017). Unrolled generative adversarial networks, sec. 2.2.
    M. Arjovsky, S. Chintala and L. Bottou (2017). Wasserstein GAN, Algorithm 1.
    I. Gulrajani et al. (2017). Improved training of Wasserstein GANs, Algorithm 1.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import functional_call
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from dgm_lab._validation import (
    check_bool,
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
)
from dgm_lab.gan.losses import (
    critic_loss,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
    wasserstein_generator_loss,
)
from dgm_lab.gan.models import GAN, MLPDiscriminator, MLPGenerator
from dgm_lab.gan.techniques import (
    HistoricalAverage,
    PackedDiscriminator,
    feature_matching_loss,
    instance_noise_std,
)
from dgm_lab.gan.unrolled import UNROLL_OPTIMIZERS, unrolled_parameters
from dgm_lab.train import History, TrainState, Update, fit

__all__ = [
    "GANConfig",
    "VARIANTS",
    "bilinear_game",
    "build_toy_gan",
    "gan_updates",
    "toy_discriminator",
    "toy_generator",
    "train_gan",
    "train_toy_gan",
]

LOSSES = ("minimax", "non_saturating", "wasserstein")


@dataclass(frozen=True)
class GANConfig:
    """A GAN variant: the loss, the schedule and every improved technique, each a switch.

    Attributes:
        loss: ``"minimax"`` (the generator minimises :math:`\\log(1 - D(G(z)))`),
            ``"non_saturating"`` (:math:`-\\log D(G(z))`) or ``"wasserstein"`` (a critic).
        n_critic: discriminator steps per generator step (Algorithm 1's :math:`k`).
        weight_clip: WGAN: clip every critic weight to ``[-c, c]`` after each step (None: off).
        gradient_penalty: WGAN-GP: the weight :math:`\\lambda` of the gradient penalty (0: off).
        feature_matching: the generator matches the mean features of the discriminator's last
            hidden layer instead of fooling its output.
        minibatch_kernels: minibatch discrimination with that many kernels (0: off).
        historical_averaging: the weight of the historical-averaging penalty of both
            players (0: off).
        real_label: one-sided label smoothing: the target of real examples (1: off).
        virtual_batch_norm: virtual batch normalisation in the generator.
        instance_noise: the initial standard deviation of instance noise, annealed linearly
            to 0 over training (0: off).
        latent_dim, hidden, layers: the networks (toy GANs).
        g_hidden, g_layers: the generator's own width and depth (None: ``hidden`` and
            ``layers``), for a generator larger than its discriminator.
        lr, betas: Adam's learning rate and betas for both players.
        d_lr: the discriminator's own learning rate (None: ``lr``).
        lr_decay: decay both learning rates linearly to 0 over training (needs the number of
            steps: :func:`train_gan` gives it to :func:`gan_updates`), so that the last steps
            are small and the generator settles instead of circling.
        unrolled_steps: the unrolled GAN (Metz et al., 2017): the generator's loss is taken
            at the discriminator after that many more differentiable steps of its own
            (:func:`~dgm_lab.gan.unrolled_parameters`; 0: off). Not with the Wasserstein loss
            or feature matching.
        unroll_optimizer: the unrolled steps' rule: ``"adam"`` (the discriminator's Adam,
            continuing from its current moments and learning rate) or ``"sgd"``.
        pack: PacGAN (Lin et al., 2018): the discriminator judges packs of that many samples
            (:class:`~dgm_lab.gan.PackedDiscriminator`; 1: off). Batches must split into
            whole packs. Not with a gradient penalty (its norm is taken per sample, not per
            pack) or a conditional GAN.
        r1: the weight :math:`\\gamma` of the R1 penalty (Mescheder et al., 2018): the
            discriminator's loss gains :math:`\\frac{\\gamma}{2} \\mathbb E_{p_r}
            \\|\\nabla_x \\ell(x)\\|^2` (:func:`~dgm_lab.gan.r1_penalty`; 0: off). Not
            with the Wasserstein loss (it has its own penalty).

    References:
        I. Goodfellow et al. (2014). Generative adversarial nets, Algorithm 1 (``n_critic``).
        T. Salimans et al. (2016). Improved techniques for training GANs, sec. 3 (feature
        matching, minibatch discrimination, historical averaging, label smoothing, VBN).
        M. Arjovsky et al. (2017), Algorithm 1; I. Gulrajani et al. (2017), Algorithm 1.
        L. Metz et al. (2017), unrolled GANs; Z. Lin et al. (2018), PacGAN; L. Mescheder et al.
        (2018), Which training methods for GANs do actually converge? (R1).

    Example:
        >>> GANConfig(real_label=0.9).replace(hidden=32).hidden
        32
    """

    loss: str = "non_saturating"
    n_critic: int = 1
    weight_clip: float | None = None
    gradient_penalty: float = 0.0
    feature_matching: bool = False
    minibatch_kernels: int = 0
    historical_averaging: float = 0.0
    real_label: float = 1.0
    virtual_batch_norm: bool = False
    instance_noise: float = 0.0
    latent_dim: int = 2
    hidden: int = 128
    layers: int = 3
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    d_lr: float | None = None
    lr_decay: bool = False
    unrolled_steps: int = 0
    unroll_optimizer: str = "adam"
    pack: int = 1
    r1: float = 0.0
    g_hidden: int | None = None
    g_layers: int | None = None

    def __post_init__(self) -> None:
        check_choice(self.loss, "loss", LOSSES)
        check_int(self.n_critic, "n_critic")
        if self.weight_clip is not None:
            check_positive(self.weight_clip, "weight_clip")
        check_non_negative(self.gradient_penalty, "gradient_penalty")
        check_bool(self.feature_matching, "feature_matching")
        check_int(self.minibatch_kernels, "minibatch_kernels", minimum=0)
        check_non_negative(self.historical_averaging, "historical_averaging")
        if not 0 < check_positive(self.real_label, "real_label") <= 1:
            raise ValueError(f"real_label must be in (0, 1], got {self.real_label}")
        check_bool(self.virtual_batch_norm, "virtual_batch_norm")
        check_bool(self.lr_decay, "lr_decay")
        check_non_negative(self.instance_noise, "instance_noise")
        for name in ("latent_dim", "hidden", "layers", "g_hidden", "g_layers"):
            if getattr(self, name) is not None or not name.startswith("g_"):
                check_int(getattr(self, name), name)
        check_positive(self.lr, "lr")
        if self.d_lr is not None:
            check_positive(self.d_lr, "d_lr")
        if self.loss != "wasserstein" and (self.weight_clip or self.gradient_penalty):
            raise ValueError("weight_clip and gradient_penalty belong to loss='wasserstein'")
        if self.loss == "wasserstein" and self.real_label != 1.0:
            raise ValueError("label smoothing needs labels: not with loss='wasserstein'")
        check_int(self.unrolled_steps, "unrolled_steps", minimum=0)
        check_choice(self.unroll_optimizer, "unroll_optimizer", UNROLL_OPTIMIZERS)
        if self.unrolled_steps and (self.loss == "wasserstein" or self.feature_matching):
            raise ValueError("unrolled_steps unrolls the discriminator's cross-entropy: not "
                             "with loss='wasserstein' or feature_matching")
        if check_non_negative(self.r1, "r1") and self.loss == "wasserstein":
            raise ValueError("r1 penalises a discriminator's logits: not with "
                             "loss='wasserstein' (use gradient_penalty)")
        if check_int(self.pack, "pack") > 1 and self.gradient_penalty:
            raise ValueError("pack > 1 with gradient_penalty: the penalty's norm would be per "
                             "sample, not per pack")

    def replace(self, **changes: object) -> GANConfig:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


#: The variants the chapter compares on the 2-D toys: the plain games, each improved
#: technique switched on alone on top of the non-saturating GAN, and the Wasserstein GANs.
VARIANTS: dict[str, GANConfig] = {
    "minimax": GANConfig(loss="minimax"),
    "non_saturating": GANConfig(),
    "feature_matching": GANConfig(feature_matching=True),
    "minibatch_discrimination": GANConfig(minibatch_kernels=8),
    "historical_averaging": GANConfig(historical_averaging=1e-3),
    "label_smoothing": GANConfig(real_label=0.9),
    "virtual_batch_norm": GANConfig(virtual_batch_norm=True),
    "instance_noise": GANConfig(instance_noise=0.3),
    "unrolled": GANConfig(unrolled_steps=5),
    "pacgan": GANConfig(pack=2),
    "r1": GANConfig(r1=1.0),
    # the sizes of PacGAN's networks for the 2-D toys (Lin et al., 2018, sec. 4.1): a generator
    # of four hidden layers of 400 units against a discriminator of three of 200 (without the
    # paper's batch normalisation in the generator and maxout units in the discriminator)
    "pacgan_large": GANConfig(pack=2, hidden=200, g_hidden=400, g_layers=4),
    "wgan": GANConfig(loss="wasserstein", n_critic=5, weight_clip=0.05, lr=1e-4,
                      betas=(0.5, 0.9)),
    "wgan_gp": GANConfig(loss="wasserstein", n_critic=5, gradient_penalty=0.1,
                         betas=(0.5, 0.9)),
}


def _checked(config: GANConfig | None) -> GANConfig:
    config = config or GANConfig()
    if not isinstance(config, GANConfig):
        raise TypeError(f"config must be a GANConfig, got {type(config).__name__}")
    return config


def toy_generator(config: GANConfig | None = None, *, data_dim: int = 2, num_classes: int = 0,
                  output: str = "identity") -> MLPGenerator:
    """The MLP generator a config describes (see :func:`build_toy_gan`).

    Arguments:
        config: its ``latent_dim``, ``hidden``, ``layers`` (or ``g_hidden``, ``g_layers`` when
            set) and ``virtual_batch_norm`` are used (default: ``GANConfig()``).
        data_dim: dimension of the samples.
        num_classes: > 0 for a conditional generator :math:`G(z, y)`.
        output: the output activation, ``"identity"`` or ``"sigmoid"``.

    Returns:
        An :class:`MLPGenerator` from the global random state.

    References:
        I. Goodfellow et al. (2014). Generative adversarial nets, sec. 3 (an MLP generator).

    Example:
        >>> toy_generator(GANConfig(latent_dim=2, hidden=8, layers=1))(torch.randn(5, 2)).shape
        torch.Size([5, 2])
    """
    config = _checked(config)
    return MLPGenerator(config.latent_dim, data_dim, config.g_hidden or config.hidden,
                        config.g_layers or config.layers,
                        num_classes=num_classes, output=output,
                        virtual_batch_norm=config.virtual_batch_norm)


def toy_discriminator(config: GANConfig | None = None, *, data_dim: int = 2,
                      num_classes: int = 0) -> MLPDiscriminator:
    """The MLP discriminator a config describes (see :func:`build_toy_gan`); with
    ``config.pack`` = m > 1, an MLP on ``m * data_dim`` inputs inside a
    :class:`~dgm_lab.gan.PackedDiscriminator`.

    Arguments:
        config: its ``hidden``, ``layers``, ``minibatch_kernels`` and ``pack`` are used
            (default: ``GANConfig()``).
        data_dim: dimension of the examples.
        num_classes: > 0 for a conditional discriminator :math:`D(x, y)`.

    Returns:
        An :class:`MLPDiscriminator` (logits ``[n]``) from the global random state.

    References:
        I. Goodfellow et al. (2014). Generative adversarial nets, sec. 3.

    Example:
        >>> toy_discriminator(GANConfig(hidden=8, layers=1))(torch.randn(5, 2)).shape
        torch.Size([5])
    """
    config = _checked(config)
    if config.pack > 1 and num_classes:
        raise ValueError("pack > 1 (PacGAN) is for unconditional GANs: num_classes must be 0")
    net = MLPDiscriminator(data_dim * config.pack, config.hidden, config.layers,
                           num_classes=num_classes, minibatch_kernels=config.minibatch_kernels)
    return PackedDiscriminator(net, config.pack) if config.pack > 1 else net


def build_toy_gan(config: GANConfig | None = None, *, data_dim: int = 2,
                  num_classes: int = 0, output: str = "identity") -> GAN:
    """The MLP generator and discriminator a config describes, in a :class:`GAN`.

    The generator is built first, then the discriminator, both from the global random state:
    after ``seed_everything(s)``, ``toy_generator(config)`` alone gives the same generator as
    ``build_toy_gan(config).generator`` (so a checkpoint can hold the generator only).

    Arguments:
        config: the variant (default :class:`GANConfig()`, the non-saturating GAN).
        data_dim: dimension of the data (2 for the toys, 64 for the 8x8 digits).
        num_classes: 0, or the number of classes of a conditional GAN.
        output: the generator's output, ``"identity"`` or ``"sigmoid"`` (pixels in [0, 1]).

    Returns:
        An untrained :class:`GAN`.

    References:
        L. Metz et al. (2017). Unrolled generative adversarial networks, sec. 3.1 (MLP
        players on the 2-D toys).

    Example:
        >>> gan = build_toy_gan(VARIANTS["minibatch_discrimination"])
    """
    config = _checked(config)
    generator = toy_generator(config, data_dim=data_dim, num_classes=num_classes, output=output)
    discriminator = toy_discriminator(config, data_dim=data_dim, num_classes=num_classes)
    return GAN(generator, discriminator, config.latent_dim, num_classes)


def _split(batch: torch.Tensor | list[torch.Tensor]) -> tuple[torch.Tensor,
                                                               torch.Tensor | None]:
    """``(x, labels)`` of a batch: a tensor (unconditional) or ``[x, y]`` (conditional)."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    x, y = batch
    return x, y


def _linear_decay(steps: int) -> Callable[[int], float]:
    """The factor 1 - step / steps of a learning rate that decays linearly to 0."""
    steps = max(steps, 1)
    return lambda step: max(0.0, 1.0 - step / steps)


def gan_updates(gan: GAN, config: GANConfig | None = None, *,
                total_steps: int | None = None) -> list[Update]:
    r"""The discriminator's and the generator's :class:`~dgm_lab.train.Update` for ``fit``.

    Each batch of real data (``x``, or ``[x, y]`` for a conditional GAN, whose generator then
    receives the real labels) gives the discriminator one Adam step on its loss; every
    ``n_critic``-th batch the generator takes one step on its own (Algorithm 1). Fresh noise
    :math:`z` is drawn from the global random state for each step. Figures logged per step:
    ``d.loss``, ``g.loss`` and ``d.estimate``, the discriminator's estimate of the divergence
    it measures (for a WGAN, :math:`\mathbb E f(x) - \mathbb E f(G(z))`, an estimate of
    :math:`W_1`; for the other losses, :math:`\log 4 - L_D`, which estimates
    :math:`2\,\mathrm{JS}` when the discriminator is optimal).

    Arguments:
        gan: a :class:`GAN`.
        config: the variant (default :class:`GANConfig()`).
        total_steps: the number of batches of the whole run; needed (only) with
            ``config.lr_decay``.

    Returns:
        ``[discriminator update, generator update]``.

    References:
        I. Goodfellow et al. (2014). Generative adversarial nets, Algorithm 1.
        M. Arjovsky et al. (2017). Wasserstein GAN, Algorithm 1.
        I. Gulrajani et al. (2017). Improved training of Wasserstein GANs, Algorithm 1.

    Example:
        >>> fit(gan, gan_updates(gan, VARIANTS["wgan_gp"]), x, epochs=100)
    """
    config = _checked(config)
    if not isinstance(gan, GAN):
        raise TypeError(f"gan must be a dgm_lab.gan.GAN, got {type(gan).__name__}")
    if gan.discriminator is None:
        raise ValueError("this GAN has no discriminator to train against")
    if config.feature_matching and not hasattr(gan.discriminator, "features"):
        raise ValueError("feature matching needs a discriminator with a features(x) method")
    d_net, g_net = gan.discriminator, gan.generator
    averages = ((HistoricalAverage(d_net), HistoricalAverage(g_net))
                if config.historical_averaging else None)
    wasserstein = config.loss == "wasserstein"

    def noisy(x: torch.Tensor, state: TrainState) -> torch.Tensor:
        sigma = instance_noise_std(config.instance_noise, min(state.progress, 1.0))
        return x + sigma * torch.randn_like(x) if sigma > 0 else x

    def d_loss(model: GAN, batch: torch.Tensor | list[torch.Tensor],
               state: TrainState) -> dict[str, torch.Tensor]:
        x, y = _split(batch)
        with torch.no_grad():
            fake = model.generate(model.sample_latent(len(x)), y)
        x, fake = noisy(x, state), noisy(fake, state)
        real_out, fake_out = model.discriminate(x, y), model.discriminate(fake, y)
        if wasserstein:
            loss = critic_loss(real_out, fake_out)
            estimate = -loss.detach()
            if config.gradient_penalty:
                penalty = gradient_penalty(lambda v: model.discriminate(v, y), x, fake)
                loss = loss + config.gradient_penalty * penalty
        else:
            loss = discriminator_loss(real_out, fake_out, config.real_label)
            estimate = math.log(4.0) - loss.detach()
            if config.r1:
                loss = loss + 0.5 * config.r1 * r1_penalty(lambda v: model.discriminate(v, y),
                                                           x)
        if averages is not None:
            loss = loss + config.historical_averaging * averages[0].penalty(model.discriminator)
        return {"loss": loss, "estimate": estimate}

    def g_loss(model: GAN, batch: torch.Tensor | list[torch.Tensor],
               state: TrainState) -> torch.Tensor:
        x, y = _split(batch)
        fake = model.generate(model.sample_latent(len(x)), y)
        if config.feature_matching:
            real_f = model.discriminator.features(noisy(x, state), y).detach()
            loss = feature_matching_loss(real_f, model.discriminator.features(noisy(fake, state),
                                                                             y))
        elif wasserstein:
            loss = wasserstein_generator_loss(model.discriminate(noisy(fake, state), y))
        elif config.unrolled_steps:
            loss = generator_loss(unrolled_logits(model, noisy(x, state), noisy(fake, state), y),
                                  config.loss)
        else:
            loss = generator_loss(model.discriminate(noisy(fake, state), y), config.loss)
        if averages is not None:
            loss = loss + config.historical_averaging * averages[1].penalty(model.generator)
        return loss

    def unrolled_logits(model: GAN, x: torch.Tensor, fake: torch.Tensor,
                        y: torch.Tensor | None) -> torch.Tensor:
        """The logits of ``fake`` under the discriminator unrolled on this very batch."""
        def d_objective(params: dict[str, torch.Tensor]) -> torch.Tensor:
            return discriminator_loss(functional_call(d_net, params, (x, y)),
                                      functional_call(d_net, params, (fake, y)),
                                      config.real_label)

        group = d_opt.param_groups[0]
        adam_state = {name: d_opt.state.get(p) for name, p in d_net.named_parameters()}
        params = unrolled_parameters(d_net, d_objective, config.unrolled_steps, lr=group["lr"],
                                     optimizer=config.unroll_optimizer, betas=group["betas"],
                                     eps=group["eps"], adam_state=adam_state)
        return functional_call(d_net, params, (fake, y))

    def after_d(model: GAN) -> None:
        if config.weight_clip is not None:
            with torch.no_grad():
                for p in model.discriminator.parameters():
                    p.clamp_(-config.weight_clip, config.weight_clip)
        if averages is not None:
            averages[0].update(model.discriminator)

    def after_g(model: GAN) -> None:
        if averages is not None:
            averages[1].update(model.generator)

    d_opt = torch.optim.Adam(d_net.parameters(), lr=config.d_lr or config.lr, betas=config.betas)
    g_opt = torch.optim.Adam(g_net.parameters(), lr=config.lr, betas=config.betas)
    schedules = [None, None]
    if config.lr_decay:
        if total_steps is None:
            raise ValueError("lr_decay needs total_steps, the number of batches of the run")
        total = check_int(total_steps, "total_steps")
        # one scheduler step per optimiser step: the generator takes total / n_critic steps
        schedules = [torch.optim.lr_scheduler.LambdaLR(opt, _linear_decay(total // every))
                     for opt, every in ((d_opt, 1), (g_opt, config.n_critic))]
    return [Update(d_loss, d_opt, after_step=after_d, scheduler=schedules[0],
                   scheduler_interval="step", name="d"),
            Update(g_loss, g_opt, every=config.n_critic, after_step=after_g,
                   scheduler=schedules[1], scheduler_interval="step", name="g")]


def train_gan(gan: GAN, data: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | DataLoader,
              config: GANConfig | None = None, *, epochs: int, batch_size: int = 128,
              seed: int | None = None, device: torch.device | str | None = None,
              progress: bool = False) -> History:
    """Train ``gan`` on ``data`` with the variant ``config``, through :func:`dgm_lab.train.fit`.

    Arguments:
        gan: a :class:`GAN`.
        data: real examples ``[n, ...]``, or ``(x, y)`` with int64 labels for a conditional GAN,
            or a ``DataLoader`` of batches used as it is (e.g. fresh draws from a known
            density each batch: ``dgm_lab.flows.fresh.fresh_loader``).
        config: the variant (default :class:`GANConfig()`).
        epochs: passes over the data (each batch is one discriminator step).
        batch_size: examples per batch (and generated examples per step); a ``DataLoader``
            sets its own.
        seed: seeds the weights' later updates, the noise and the shuffling (CPU runs repeat
            exactly); seed before building the GAN as well for a fully repeatable run.
        device: where to train (default :func:`dgm_lab.device`).
        progress: show a progress bar.

    Returns:
        The :class:`~dgm_lab.train.History` (``step["d.loss"]``, ``step["g.loss"]``,
        ``step["d.estimate"]``, ...).

    References:
        I. Goodfellow et al. (2014). Generative adversarial nets, Algorithm 1.

    Example:
        >>> history = train_gan(gan, x_train, VARIANTS["non_saturating"], epochs=200, seed=0)
    """
    if isinstance(data, DataLoader):
        loader = data
    else:
        tensors = (data,) if isinstance(data, torch.Tensor) else tuple(data)
        batch_size = check_int(batch_size, "batch_size")
        # whole batches by fancy indexing: a DataLoader that fetches example by example spends
        # more time than the small networks of the toys do
        order = torch.Generator().manual_seed(seed) if seed is not None else None
        sampler = BatchSampler(RandomSampler(range(len(tensors[0])), generator=order),
                               batch_size, drop_last=False)
        loader = DataLoader(TensorDataset(*tensors), sampler=sampler, batch_size=None)
    epochs = check_int(epochs, "epochs")
    updates = gan_updates(gan, config, total_steps=epochs * len(loader))
    return fit(gan, updates, loader, epochs=epochs, seed=seed, device=device, progress=progress)


def train_toy_gan(data: torch.Tensor, config: GANConfig | None = None, *, epochs: int = 400,
                  batch_size: int = 128, seed: int = 0,
                  device: torch.device | str | None = "cpu",
                  progress: bool = False) -> tuple[GAN, History]:
    """Build and train a GAN variant on a 2-D toy: the chapter's entry point for the toys.

    Seeds :func:`dgm_lab.seed_everything` with ``seed``, builds the networks of ``config``
    (:func:`build_toy_gan`) and trains them with :func:`train_gan`. With the defaults, a run on
    the 2,000 training points of ``dgm_lab.data.load_toy`` is 6,400 discriminator steps and
    repeats exactly on the CPU.

    Arguments:
        data: ``[n, 2]`` training points (e.g. ``load_toy("eight_gaussians")``).
        config: the variant, e.g. ``VARIANTS["minibatch_discrimination"]`` (default: the
            non-saturating GAN).
        epochs, batch_size, seed, device, progress: as in :func:`train_gan`.

    Returns:
        ``(gan, history)``, the trained :class:`GAN` (in evaluation mode) and its history.

    References:
        L. Metz et al. (2017). Unrolled generative adversarial networks, sec. 3.1 (the toys).

    Example:
        >>> gan, history = train_toy_gan(load_toy("grid25"), VARIANTS["wgan_gp"], seed=1)
        >>> toy_mode_coverage(gan.sample(2500), "grid25").modes
    """
    from dgm_lab.runtime import seed_everything

    if not isinstance(data, torch.Tensor) or data.dim() != 2:
        raise ValueError(f"data must be a tensor [n, d] of points, got "
                         f"{tuple(getattr(data, 'shape', ())) or type(data).__name__}")
    seed_everything(seed)
    gan = build_toy_gan(config, data_dim=data.shape[1])
    history = train_gan(gan, data, config, epochs=epochs, batch_size=batch_size, seed=seed,
                        device=device, progress=progress)
    return gan.eval(), history


def bilinear_game(x0: float, y0: float, lr: float, steps: int, *,
                  alternating: bool = False) -> torch.Tensor:
    r"""Gradient play on :math:`\min_x \max_y\; xy`, whose only equilibrium is :math:`(0, 0)`.

    Simultaneous steps, :math:`x \leftarrow x - \eta y`, :math:`y \leftarrow y + \eta x`
    (both from the old values), multiply the distance to the equilibrium by
    :math:`\sqrt{1 + \eta^2}` at every step: the players spiral outwards for any step size.
    Alternating steps (:math:`y` responds to the new :math:`x`) stay on a closed orbit and
    circle the equilibrium forever. Either way gradient play does not find the Nash
    equilibrium that a minimisation would (Salimans et al., 2016, sec. 3; Goodfellow, 2016,
    sec. 8.2).

    Arguments:
        x0, y0: the starting point.
        lr: the step size :math:`\eta > 0`.
        steps: number of steps.
        alternating: update :math:`y` with the new :math:`x`.

    Returns:
        ``[steps + 1, 2]`` float64: the trajectory, starting point first.

    References:
        T. Salimans et al. (2016). Improved techniques for training GANs, sec. 3.
        I. Goodfellow (2016). NIPS 2016 tutorial: generative adversarial networks, sec. 8.2.

    Example:
        >>> path = bilinear_game(1.0, 0.0, lr=0.1, steps=100)
        >>> path[-1].norm() / path[0].norm()          # (1 + 0.01) ** 50
    """
    eta = check_positive(lr, "lr")
    steps = check_int(steps, "steps")
    for name, v in (("x0", x0), ("y0", y0)):
        check_non_negative(abs(v), name)
    x, y = float(x0), float(y0)
    path = [(x, y)]
    for _ in range(steps):
        # d(xy)/dx = y (x descends), d(xy)/dy = x (y ascends)
        if alternating:
            x = x - eta * y
            y = y + eta * x
        else:
            x, y = x - eta * y, y + eta * x
        path.append((x, y))
    return torch.tensor(path, dtype=torch.float64)
