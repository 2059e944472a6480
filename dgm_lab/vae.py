r"""Variational autoencoders, the importance-weighted bound, and adversarial autoencoders.

A **variational autoencoder** (Kingma & Welling, 2014; Rezende, Mohamed & Wierstra, 2014) is
a latent-variable model :math:`p_\theta(x) = \int p_\theta(x \mid z)\, p(z)\, dz` with a
standard normal prior :math:`p(z) = \mathcal N(0, I)` and a neural *decoder*
:math:`p_\theta(x \mid z)`, trained together with a neural *encoder*
:math:`q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \mathrm{diag}\,\sigma^2_\phi(x))` that
approximates the intractable posterior. Both maximise the evidence lower bound

.. math:: \mathrm{ELBO}(x) = \mathbb E_{q_\phi(z \mid x)}[\log p_\theta(x \mid z)]
          - \mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big) \;\le\; \log p_\theta(x),

whose first term is estimated with reparameterised draws :math:`z = \mu + \sigma \epsilon`
and whose second is the closed-form Gaussian KL (:func:`dgm_lab.variational.gaussian_kl`).
The **importance-weighted bound** (Burda, Grosse & Salakhutdinov, 2016)

.. math:: \mathcal L_k(x) = \mathbb E\Big[\log \frac1k \sum_{i=1}^k
          \frac{p_\theta(x, z_i)}{q_\phi(z_i \mid x)}\Big], \qquad z_i \sim q_\phi(z \mid x),

equals the ELBO for :math:`k = 1`, never decreases with :math:`k` and tends to
:math:`\log p_\theta(x)`: with :math:`k = 1000` it is how the course scores a VAE.

This module holds, in the order of chapter 7:

* :func:`bernoulli_elbo` and :func:`importance_weighted_bound`: the two bounds written out from
  their pieces (the functions of the lab);
* :class:`VAE`, a :class:`~dgm_lab.model.DensityModel` with an MLP or a convolutional
  encoder/decoder and a decoder for each kind of data: ``"bernoulli"`` (binary pixels),
  ``"categorical"``, ``"discretized_logistic"`` and ``"beta_binomial"`` (integer levels
  0..L-1), ``"gaussian"`` (real vectors); its ``log_prob`` is the IWAE estimate of
  :math:`\log p(x)`, and :meth:`VAE.log_prob_on_grid` integrates a 1-D or 2-D latent exactly;
* the training losses :func:`elbo_loss` (with KL warm-up) and :func:`iwae_loss` for
  :func:`dgm_lab.train.fit`;
* :class:`AdversarialAutoencoder` (Makhzani et al., 2016): the KL term replaced by a
  discriminator that makes the codes of the data look like draws from any prior one can
  sample, here :class:`GaussianMixturePrior`; with its losses and anomaly scores;
* :func:`mmd_squared` and :func:`mmd_test`: a kernel two-sample statistic and its
  permutation p-value (Gretton et al., 2012), to check that the codes match the prior.

References:
    D. P. Kingma and M. Welling (2014). Auto-encoding variational Bayes. ICLR.
    D. J. Rezende, S. Mohamed and D. Wierstra (2014). Stochastic backpropagation and
    approximate inference in deep generative models. ICML.
    Y. Burda, R. Grosse and R. Salakhutdinov (2016). Importance weighted autoencoders. ICLR.
    A. Makhzani, J. Shlens, N. Jaitly, I. Goodfellow and B. Frey (2016). Adversarial
    autoencoders. ICLR workshop.
    T. Salimans, A. Karpathy, X. Chen and D. P. Kingma (2017). PixelCNN++ (the discretised
    logistic likelihood). ICLR.
    A. Gretton, K. M. Borgwardt, M. J. Rasch, B. Schoelkopf and A. Smola (2012). A kernel
    two-sample test. JMLR 13.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dgm_lab._validation import (
    as_float_tensor,
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
    check_seed,
)
from dgm_lab.model import DensityModel, rand, randint, randn
from dgm_lab.variational import gaussian_kl, gaussian_log_prob

__all__ = [
    "VAE",
    "AdversarialAutoencoder",
    "GaussianMixturePrior",
    "aae_losses",
    "bernoulli_elbo",
    "elbo_loss",
    "importance_weighted_bound",
    "iwae_loss",
    "mmd_squared",
    "mmd_test",
]

_LOG_2PI = math.log(2 * math.pi)
LIKELIHOODS = ("bernoulli", "categorical", "discretized_logistic", "beta_binomial", "gaussian")
ARCHITECTURES = ("mlp", "conv")
# decoder outputs per data dimension, by likelihood (categorical: one logit per level)
_OUTPUTS = {"bernoulli": 1, "discretized_logistic": 2, "beta_binomial": 2, "gaussian": 2}
# elements of decoder output per chunk when many importance samples are scored at once
_CHUNK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------------------
# the two bounds from their pieces
# --------------------------------------------------------------------------------------

def bernoulli_elbo(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor,
                   log_var: torch.Tensor) -> torch.Tensor:
    r"""One-sample ELBO of a VAE with a Bernoulli decoder and a standard normal prior.

    .. math:: \mathrm{ELBO}(x) \approx \log p(x \mid z) - \mathrm{KL}(q(z \mid x) \,\|\,
              \mathcal N(0, I)), \qquad
              \log p(x \mid z) = \sum_d x_d \log \pi_d + (1 - x_d) \log(1 - \pi_d),

    with :math:`\pi = \mathrm{sigmoid}(\text{logits})` the decoder's output at a draw
    :math:`z \sim q(z \mid x)`, computed from the logits without forming :math:`\pi` (so it
    stays finite for logits of any size), and the KL in closed form.

    Arguments:
        x: ``[n, D]`` binary data (0. / 1.).
        logits: ``[n, D]`` decoder logits at one reparameterised draw per row.
        mu, log_var: ``[n, L]`` the encoder's Gaussian.

    Returns:
        ``[n]``: the estimate of the ELBO of each row, in nats.

    References:
        D. P. Kingma and M. Welling (2014). Auto-encoding variational Bayes, eq. 10 and
        appendix C.1 (Bernoulli MLP decoder).

    Example:
        >>> bernoulli_elbo(torch.ones(2, 3), torch.zeros(2, 3), torch.zeros(2, 1),
        ...                torch.zeros(2, 1))   # 3 log(1/2): KL 0
        tensor([-2.0794, -2.0794])
    """
    x = as_float_tensor(x, "x", ndim=2)
    logits = as_float_tensor(logits, "logits", ndim=2, dtype=x.dtype, device=x.device)
    if logits.shape != x.shape:
        raise ValueError(f"logits {tuple(logits.shape)} must have the shape of x "
                         f"{tuple(x.shape)}")
    log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    return log_px - gaussian_kl(mu, log_var)


def importance_weighted_bound(log_px_given_z: torch.Tensor, z: torch.Tensor, mu: torch.Tensor,
                              log_var: torch.Tensor) -> torch.Tensor:
    r"""The importance-weighted bound :math:`\mathcal L_k` from ``k`` draws per row.

    .. math:: \mathcal L_k(x) = \log \frac1k \sum_{i=1}^k w_i, \qquad
              \log w_i = \log p(x \mid z_i) + \log \mathcal N(z_i; 0, I)
              - \log q(z_i \mid x),

    computed as a log-sum-exp of the log-weights: the weights themselves (:math:`e^{-100}`
    and smaller for an image) underflow in any floating-point format. With ``k = 1`` it is the
    one-sample ELBO; its expectation grows with ``k`` towards :math:`\log p(x)`.

    Arguments:
        log_px_given_z: ``[k, n]`` decoder log-likelihoods :math:`\log p(x \mid z_i)`.
        z: ``[k, n, L]`` the draws from :math:`q(z \mid x)`.
        mu, log_var: ``[n, L]`` the encoder's Gaussian :math:`q(z \mid x)`.

    Returns:
        ``[n]``: :math:`\mathcal L_k` of each row, in nats.

    References:
        Y. Burda, R. Grosse and R. Salakhutdinov (2016). Importance weighted autoencoders,
        eq. 8 and theorem 1.

    Example:
        >>> z = torch.randn(50, 4, 2)
        >>> importance_weighted_bound(torch.zeros(50, 4), z, torch.zeros(4, 2),
        ...                           torch.zeros(4, 2))   # q = prior: every weight is 1
        tensor([0., 0., 0., 0.])
    """
    log_px = as_float_tensor(log_px_given_z, "log_px_given_z", ndim=2)
    z = as_float_tensor(z, "z", ndim=3, dtype=log_px.dtype, device=log_px.device)
    if z.shape[:2] != log_px.shape:
        raise ValueError(f"z {tuple(z.shape)} must be [k, n, L] with [k, n] = "
                         f"{tuple(log_px.shape)}, the shape of log_px_given_z")
    log_w = _log_weights(log_px, z, mu, log_var)
    return torch.logsumexp(log_w, 0) - math.log(len(log_w))


def _log_weights(log_px: torch.Tensor, z: torch.Tensor, mu: torch.Tensor,
                 log_var: torch.Tensor) -> torch.Tensor:
    """log p(x|z) + log p(z) - log q(z|x) for every draw, ``[k, n]``."""
    log_prior = -0.5 * (z.square() + _LOG_2PI).sum(-1)
    return log_px + log_prior - gaussian_log_prob(z, mu, log_var)


# --------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------

def _mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.LeakyReLU) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class _ConvEncoder(nn.Module):
    """8x8 (or any H x W divisible by 2) image -> two strided convolutions -> linear heads."""

    def __init__(self, image_shape: tuple[int, int], hidden: int, out: int, channels: int):
        super().__init__()
        self.image_shape = image_shape
        h, w = image_shape
        self.convs = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.LeakyReLU(),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), nn.LeakyReLU(),
            nn.Flatten())
        self.head = _mlp([2 * channels * (h // 2) * (w // 2), hidden, out])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        images = x.reshape(-1, 1, *self.image_shape)
        return self.head(self.convs(images)).reshape(*lead, -1)


class _ConvDecoder(nn.Module):
    """Code -> linear layers -> a transposed convolution that doubles the size -> per-pixel
    outputs ``[..., H * W * outputs]`` (the pixels' outputs adjacent, as the MLP's)."""

    def __init__(self, image_shape: tuple[int, int], latent: int, hidden: int, outputs: int,
                 channels: int):
        super().__init__()
        self.image_shape, self.outputs, self.channels = image_shape, outputs, channels
        h, w = image_shape
        self.body = nn.Sequential(_mlp([latent, hidden, 2 * channels * (h // 2) * (w // 2)]),
                                  nn.LeakyReLU())
        self.up = nn.Sequential(
            nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1), nn.LeakyReLU(),
            nn.Conv2d(channels, outputs, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        h, w = self.image_shape
        maps = self.body(z.reshape(-1, z.shape[-1])).reshape(-1, 2 * self.channels, h // 2,
                                                            w // 2)
        out = self.up(maps)  # [b, outputs, H, W]
        return out.permute(0, 2, 3, 1).reshape(*lead, h * w * self.outputs)


# --------------------------------------------------------------------------------------
# the decoders' likelihoods
# --------------------------------------------------------------------------------------

def _discretized_logistic_log_prob(k: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                                   levels: int) -> torch.Tensor:
    r"""log P(k) for a logistic of ``mean``, ``exp(log_scale)`` rounded to 0..levels-1; the
    end levels take the tails (Salimans et al., 2017, eq. 2)."""
    inv = torch.exp(-log_scale)
    upper = (k + 0.5 - mean) * inv
    lower = (k - 0.5 - mean) * inv
    log_cdf_upper = F.logsigmoid(upper)               # log sigma(u): all mass below k + 1/2
    log_sf_lower = F.logsigmoid(-lower)               # log (1 - sigma(l)): all mass above
    # sigma(u) - sigma(l) = sigma(u) (1 - sigma(l)) (1 - e^{l - u}): a product of terms that
    # stay representable even when both sigmoids round to 1 or to 0
    log_mid = log_cdf_upper + log_sf_lower + torch.log(-torch.expm1(lower - upper))
    return torch.where(k <= 0, log_cdf_upper, torch.where(k >= levels - 1, log_sf_lower, log_mid))


def _beta_binomial_log_prob(k: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                            trials: int) -> torch.Tensor:
    r"""log P(k) of the beta-binomial(trials, a, b): a binomial count whose success probability
    is Beta(a, b) distributed, :math:`\binom{n}{k} B(k + a, n - k + b) / B(a, b)`."""
    n = torch.as_tensor(float(trials), dtype=a.dtype, device=a.device)
    log_choose = torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
    return (log_choose + torch.lgamma(k + a) + torch.lgamma(n - k + b) - torch.lgamma(n + a + b)
            - torch.lgamma(a) - torch.lgamma(b) + torch.lgamma(a + b))


# --------------------------------------------------------------------------------------
# the VAE
# --------------------------------------------------------------------------------------

class VAE(DensityModel):
    r"""A variational autoencoder: Gaussian encoder, standard normal prior, a decoder per data type.

    Encoder :math:`q_\phi(z \mid x) = \mathcal N(\mu(x), \mathrm{diag}\,\sigma^2(x))` and
    decoder :math:`p_\theta(x \mid z) = \prod_d p(x_d \mid \eta_d(z))` are MLPs (``depth``
    hidden layers of ``hidden`` units, leaky ReLUs) or, with ``architecture="conv"``,
    convolutions over ``image_shape``. The decoder's distribution per coordinate
    (``likelihood``):

    * ``"bernoulli"``: :math:`x_d \in \{0, 1\}`, one logit;
    * ``"categorical"``: :math:`x_d \in \{0, \dots, L-1\}`, one logit per level;
    * ``"discretized_logistic"``: a logistic of mean :math:`m` and scale :math:`s` rounded to
      the nearest level, the end levels taking the tails (Salimans et al., 2017);
    * ``"beta_binomial"``: :math:`x_d` counts successes in :math:`L - 1` trials whose success
      probability is Beta(:math:`a, b`) distributed. It fits the 8x8 digits by construction:
      each of their 17 levels counts the ink pixels of a 4x4 block of a 32x32 bitmap, and the
      Beta spreads the count beyond a binomial's (Alpaydin & Kaynak, 1998);
    * ``"gaussian"``: :math:`x_d \in \mathbb R`, a mean and a log standard deviation.

    The encoder sees the data standardised with the mean and standard deviation of the
    training data (``shift_``, ``scale_``, set by :meth:`fit`). ``log_prob(x)`` is the
    importance-weighted estimate :math:`\mathcal L_k(x)` with ``k = eval_samples`` draws from a
    generator seeded with ``eval_seed``: a lower bound on :math:`\log p(x)` in expectation,
    tight as :math:`k \to \infty`, repeatable call after call (so two models can be compared on
    the same draws). Train with :meth:`fit` or with :func:`dgm_lab.train.fit` and
    :func:`elbo_loss` / :func:`iwae_loss`. A ``state_dict`` reloads into a fresh
    ``VAE(...)`` built with the same arguments, in the saved dtype and on the saved device.

    Arguments:
        features: :math:`D`, the size of one event.
        latent: :math:`L_z`, the size of the code.
        hidden: units per hidden layer.
        likelihood: one of ``"bernoulli"``, ``"categorical"``, ``"discretized_logistic"``,
            ``"beta_binomial"``, ``"gaussian"``.
        levels: number of levels of discrete data (17 for the digits' ``"levels"`` form).
        depth: hidden layers of the encoder and of the decoder MLPs.
        architecture: ``"mlp"`` or ``"conv"``.
        image_shape: ``(H, W)`` with ``H * W = features`` (even sides) for ``"conv"``.
        channels: channels of the first convolution (``"conv"``).
        eval_samples: :math:`k` of ``log_prob``.
        eval_seed: seed of the draws of ``log_prob``.

    Attributes (once fitted):
        shift_: ``[D]`` mean of the training data; scale_: ``[]`` its standard deviation.
        history_: the :class:`dgm_lab.train.History` of the last :meth:`fit` (not saved).

    References:
        D. P. Kingma and M. Welling (2014). Auto-encoding variational Bayes. ICLR.
        D. J. Rezende, S. Mohamed and D. Wierstra (2014). Stochastic backpropagation and
        approximate inference in deep generative models. ICML.
        Y. Burda, R. Grosse and R. Salakhutdinov (2016). Importance weighted autoencoders.

    Example:
        >>> x, _ = load_digits("train", "binary")
        >>> vae = VAE(64, latent=8, likelihood="bernoulli").fit(x, epochs=50)
        >>> vae.log_prob(load_digits("test", "binary")[0]).mean()   # IWAE-1000, nats
    """

    _fit_hint = "fit(x)"

    def __init__(self, features: int = 64, latent: int = 16, hidden: int = 256, *,
                 likelihood: str = "bernoulli", levels: int = 17, depth: int = 2,
                 architecture: str = "mlp", image_shape: tuple[int, int] = (8, 8),
                 channels: int = 32, eval_samples: int = 1000, eval_seed: int = 0) -> None:
        super().__init__()
        self.features = check_int(features, "features")
        self.latent = check_int(latent, "latent")
        self.hidden = check_int(hidden, "hidden")
        self.likelihood = check_choice(likelihood, "likelihood", LIKELIHOODS)
        self.levels = check_int(levels, "levels", minimum=2)
        self.depth = check_int(depth, "depth")
        self.architecture = check_choice(architecture, "architecture", ARCHITECTURES)
        self.channels = check_int(channels, "channels")
        self.eval_samples = check_int(eval_samples, "eval_samples")
        self.eval_seed = check_seed(eval_seed)
        self.outputs = self.levels if likelihood == "categorical" else _OUTPUTS[likelihood]
        if architecture == "conv":
            if (not isinstance(image_shape, (tuple, list)) or len(image_shape) != 2
                    or math.prod(image_shape) != features or any(s % 2 for s in image_shape)):
                raise ValueError(f"image_shape must be (H, W) with even sides and H * W = "
                                 f"features = {features}, got {image_shape!r}")
            self.image_shape = (int(image_shape[0]), int(image_shape[1]))
            self.encoder = _ConvEncoder(self.image_shape, hidden, 2 * latent, channels)
            self.decoder = _ConvDecoder(self.image_shape, latent, hidden, self.outputs, channels)
        else:
            self.image_shape = None
            self.encoder = _mlp([features, *[hidden] * depth, 2 * latent])
            self.decoder = _mlp([latent, *[hidden] * depth, features * self.outputs])
        self.register_buffer("shift_", None)
        self.register_buffer("scale_", None)
        self.history_ = None

    # ---- the DensityModel interface ----------------------------------------------------

    @property
    def event_shape(self) -> torch.Size:
        self._require_fitted()  # the contract of every DensityModel, though it is known
        return torch.Size([self.features])

    def _check_input(self, x: object, name: str = "x", **kwargs: bool) -> torch.Tensor:
        x = super()._check_input(x, name, **kwargs)
        _check_domain(x, self.likelihood, self.levels, name)
        return x

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.eval_seed)
        with torch.no_grad():
            return self._iwae(x, self.eval_samples, generator)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        z = randn((n, self.latent), generator, device=self.device,
                  dtype=torch.float32).to(self.dtype)
        with torch.no_grad():
            return self._draw(self._decoder_output(z), generator)

    # ---- encoder and decoder -----------------------------------------------------------

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The encoder's Gaussian :math:`q(z \mid x)`: ``(mu, log_var)``, each ``[n, latent]``."""
        return self._encode(self._check_input(x))

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_var = self.encoder((x - self.shift_) / self.scale_).chunk(2, -1)
        return mu, log_var

    def _decoder_output(self, z: torch.Tensor) -> torch.Tensor:
        """``[..., D, outputs]``: the decoder's parameters for every coordinate."""
        return self.decoder(z).reshape(*z.shape[:-1], self.features, self.outputs)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        r"""The decoder's mean :math:`\mathbb E[x \mid z]`, ``[..., D]``, at codes ``[..., L]``.

        Probabilities of a 1 (Bernoulli), expected levels (discrete likelihoods) or means
        (Gaussian): what one plots as a "reconstruction" or a "sample" image.
        """
        self._require_fitted()
        z = as_float_tensor(z, "z", dtype=self.dtype, device=self.device)
        if z.shape[-1] != self.latent:
            raise ValueError(f"z must have {self.latent} entries on its last axis, got "
                             f"shape {tuple(z.shape)}")
        with torch.no_grad():
            out = self._decoder_output(z)
            if self.likelihood == "bernoulli":
                return torch.sigmoid(out[..., 0])
            if self.likelihood == "gaussian":
                return out[..., 0]
            k = torch.arange(self.levels, dtype=z.dtype, device=z.device)
            return (self._level_log_probs(out).exp() * k).sum(-1)

    def _level_log_probs(self, out: torch.Tensor) -> torch.Tensor:
        """``[..., D, L]``: log P(level) of every level, for the discrete likelihoods."""
        k = torch.arange(self.levels, dtype=out.dtype, device=out.device)
        if self.likelihood == "categorical":
            return torch.log_softmax(out, -1)
        if self.likelihood == "discretized_logistic":
            mean, log_scale = self._logistic_parameters(out)
            return _discretized_logistic_log_prob(k, mean[..., None], log_scale[..., None],
                                                  self.levels)
        a, b = self._beta_parameters(out)
        return _beta_binomial_log_prob(k, a[..., None], b[..., None], self.levels - 1)

    def _logistic_parameters(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the network works on the unit scale; the mean lives on the levels' scale
        top = self.levels - 1
        return top / 2 * (1 + out[..., 0]), out[..., 1].clamp(-7.0, 7.0) + math.log(top / 8)

    @staticmethod
    def _beta_parameters(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.softplus(out[..., 0]) + 1e-3, F.softplus(out[..., 1]) + 1e-3

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(x \mid z)` for data ``[n, D]`` and codes ``[n, L]`` or ``[k, n, L]``.

        Returns:
            ``[n]`` or ``[k, n]``, in nats.
        """
        x = self._check_input(x)
        z = as_float_tensor(z, "z", dtype=self.dtype, device=self.device)
        if z.shape[-1] != self.latent or z.shape[-2:-1] != x.shape[:1]:
            raise ValueError(f"z must be [n, {self.latent}] or [k, n, {self.latent}] with n = "
                             f"{len(x)}, got shape {tuple(z.shape)}")
        return self._log_likelihood(x, z)

    def _log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        out = self._decoder_output(z)
        x = x.expand(*z.shape[:-1], self.features)
        if self.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out[..., 0], x, reduction="none").sum(-1)
        if self.likelihood == "gaussian":
            mean, log_std = out[..., 0], out[..., 1].clamp(-7.0, 7.0)
            return -(0.5 * ((x - mean) * torch.exp(-log_std)).square() + log_std
                     + 0.5 * _LOG_2PI).sum(-1)
        if self.likelihood == "categorical":
            return torch.log_softmax(out, -1).gather(-1, x.long()[..., None])[..., 0].sum(-1)
        if self.likelihood == "discretized_logistic":
            mean, log_scale = self._logistic_parameters(out)
            return _discretized_logistic_log_prob(x, mean, log_scale, self.levels).sum(-1)
        a, b = self._beta_parameters(out)
        return _beta_binomial_log_prob(x, a, b, self.levels - 1).sum(-1)

    def _draw(self, out: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One draw from the decoder's distribution with parameters ``out`` ``[n, D, P]``."""
        shape = out.shape[:-1]
        if self.likelihood == "bernoulli":
            u = rand(shape, generator, device=out.device, dtype=out.dtype)
            return (u < torch.sigmoid(out[..., 0])).to(out.dtype)
        if self.likelihood == "gaussian":
            eps = randn(shape, generator, device=out.device, dtype=torch.float32).to(out.dtype)
            return out[..., 0] + out[..., 1].clamp(-7.0, 7.0).exp() * eps
        # discrete levels: invert the cumulative distribution at a uniform draw
        cdf = self._level_log_probs(out).exp().cumsum(-1)
        u = rand(shape, generator, device=out.device, dtype=out.dtype)
        return (u[..., None] * cdf[..., -1:] > cdf).sum(-1).clamp_max(self.levels - 1).to(
            out.dtype)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        r"""``decode(mu(x))``: the decoder's mean at the encoder's mean code, ``[n, D]``."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    # ---- the bounds ----------------------------------------------------------------------

    def elbo_terms(self, x: torch.Tensor, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``(log p(x | z), KL(q(z|x) || p(z)))`` per row ``[n]``, one reparameterised draw."""
        return self._elbo_terms(self._check_input(x), generator)

    def _elbo_terms(self, x: torch.Tensor, generator: torch.Generator | None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_var = self._encode(x)
        eps = randn(mu.shape, generator, device=mu.device, dtype=torch.float32).to(mu.dtype)
        z = mu + torch.exp(0.5 * log_var) * eps
        return self._log_likelihood(x, z), gaussian_kl(mu, log_var)

    def elbo(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""One-sample estimate of the ELBO of each row ``[n]``: :math:`\log p(x \mid z) -
        \mathrm{KL}` with the KL in closed form. Differentiable (for training)."""
        log_px, kl = self.elbo_terms(x, generator)
        return log_px - kl

    def iwae(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None
             ) -> torch.Tensor:
        r"""The importance-weighted bound :math:`\mathcal L_k` of each row ``[n]``.

        The ``k`` draws are scored in chunks so that memory stays bounded for ``k = 1000``.
        Differentiable (IWAE training uses small ``k``).
        """
        return self._iwae(self._check_input(x), check_int(k, "k"), generator)

    def _iwae(self, x: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
        mu, log_var = self._encode(x)
        per_draw = len(x) * self.features * self.outputs
        chunk = max(1, _CHUNK_ELEMENTS // per_draw)
        log_w = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            eps = randn((m, *mu.shape), generator, device=mu.device,
                        dtype=torch.float32).to(mu.dtype)
            z = mu + torch.exp(0.5 * log_var) * eps
            log_w.append(_log_weights(self._log_likelihood(x, z), z, mu, log_var))
        return torch.logsumexp(torch.cat(log_w), 0) - math.log(k)

    def log_prob_on_grid(self, x: torch.Tensor, *, limit: float = 6.0,
                         points: int = 201) -> torch.Tensor:
        r""":math:`\log p(x) = \log \int p(x \mid z)\, \mathcal N(z; 0, I)\, dz` on a grid.

        Only for a 1-D or 2-D code: the integral is a sum over a regular grid of
        ``points`` (per axis) on :math:`[-\text{limit}, \text{limit}]^{L}` with trapezoid
        weights, in log space. The prior mass outside the box is below :math:`10^{-8}` for the
        default limit; the error of the rule shrinks as the grid gets finer than the
        posterior's width. This is the exact figure the IWAE bound converges to.

        Arguments:
            x: ``[n, D]`` events.
            limit: half-width of the box.
            points: grid points per axis (odd numbers put one on 0).

        Returns:
            ``[n]`` log-densities in nats.
        """
        x = self._check_input(x)
        if self.latent > 2:
            raise ValueError(f"integration on a grid is for a 1-D or 2-D code, this VAE has "
                             f"latent = {self.latent}: use iwae(x, k) with a large k")
        limit = check_positive(limit, "limit")
        points = check_int(points, "points", minimum=3)
        axis = torch.linspace(-limit, limit, points, dtype=self.dtype, device=self.device)
        log_w1 = torch.full_like(axis, math.log(2 * limit / (points - 1)))
        log_w1[[0, -1]] -= math.log(2)  # trapezoid end weights
        if self.latent == 1:
            z, log_w = axis[:, None], log_w1
        else:
            zz = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1)
            z, log_w = zz.reshape(-1, 2), (log_w1[:, None] + log_w1[None, :]).reshape(-1)
        log_prior = -0.5 * (z.square() + _LOG_2PI).sum(-1) + log_w  # [G]
        out = []
        with torch.no_grad():
            per_point = len(x) * self.features * self.outputs
            chunk = max(1, _CHUNK_ELEMENTS // per_point)
            for start in range(0, len(z), chunk):
                zc = z[start:start + chunk, None, :].expand(-1, len(x), -1)
                out.append(self._log_likelihood(x, zc) + log_prior[start:start + chunk, None])
        return torch.logsumexp(torch.cat(out), 0)

    # ---- training --------------------------------------------------------------------------

    def _data(self, x: object, name: str) -> torch.Tensor:
        """Training data checked before anything is changed: ``[m, D]`` in the domain."""
        t = as_float_tensor(x, name, ndim=2)
        if t.shape[1] != self.features:
            raise ValueError(f"{name} has {t.shape[1]} features but this VAE expects "
                             f"{self.features}")
        _check_domain(t, self.likelihood, self.levels, name)
        return t

    def standardize(self, x: torch.Tensor) -> VAE:
        """Set ``shift_`` and ``scale_`` from training data ``x`` ``[m, D]`` and take its
        dtype and device (what :meth:`fit` does before training). Returns ``self``."""
        t = self._data(x, "x")
        self.to(device=t.device, dtype=t.dtype)
        self.shift_ = t.mean(0)
        self.scale_ = t.std().clamp_min(1e-6) if len(t) > 1 else torch.ones((), dtype=t.dtype,
                                                                               device=t.device)
        return self

    def fit(self, x: torch.Tensor, *, epochs: int, k: int = 1, warmup: float = 0.0,
            lr: float = 1e-3, batch_size: int = 64, val_data: torch.Tensor | None = None,
            patience: int | None = None, seed: int = 0, progress: bool = False,
            **fit_kwargs: object) -> VAE:
        r"""Standardise on ``x``, then train by maximising the ELBO (``k = 1``) or
        :math:`\mathcal L_k` with :func:`dgm_lab.train.fit` on ``x``'s device.

        Arguments:
            x: ``[m, D]`` training data (levels as integers or floats for the discrete
                likelihoods).
            epochs: passes over the data.
            k: importance samples per row (1: the ELBO, with the KL in closed form).
            warmup: fraction of training over which the KL weight rises from 0 to 1
                (:func:`elbo_loss`; ``k = 1`` only).
            lr: Adam's learning rate.
            batch_size: rows per step.
            val_data: optional validation data; with ``patience``, early stopping on its
                negative bound restores the best epoch's weights.
            patience: epochs without improvement before stopping.
            seed: seeds the initial draws and the shuffling.
            progress: show a progress bar.
            **fit_kwargs: further arguments of :func:`dgm_lab.train.fit` (``scheduler``, ...).

        Returns:
            ``self``, with ``history_`` set.
        """
        epochs = check_int(epochs, "epochs")
        k = check_int(k, "k")
        warmup = check_non_negative(warmup, "warmup")
        if warmup and k > 1:
            raise ValueError("KL warm-up applies to the ELBO (k = 1), not to the IWAE bound")
        data = self._data(x, "x")
        val = None if val_data is None else self._data(val_data, "val_data").to(data)
        self.standardize(data)
        from dgm_lab.train import fit as train
        loss = elbo_loss(warmup) if k == 1 else iwae_loss(k)
        self.history_ = train(self, loss, data, epochs=epochs, lr=lr, batch_size=batch_size,
                              val_data=val, patience=patience, seed=seed,
                              device=self.device, progress=progress, **fit_kwargs)
        return self

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object,
                              **kwargs: object) -> None:
        # a fresh VAE holds float32 CPU parameters: take the saved model's dtype and device
        # first, so that a float64 or GPU model reloads as it was saved
        saved = state_dict.get(prefix + "shift_")
        if isinstance(saved, torch.Tensor) and saved.is_floating_point():
            self.to(device=saved.device, dtype=saved.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _check_domain(x: torch.Tensor, likelihood: str, levels: int, name: str) -> None:
    if likelihood == "bernoulli" and not ((x == 0) | (x == 1)).all():
        raise ValueError(f"{name} must be binary (0 or 1) for a Bernoulli decoder; binarise "
                         "it, e.g. load_digits(form='binary')")
    if likelihood in ("categorical", "discretized_logistic", "beta_binomial") and (
            (x != x.round()).any() or (x < 0).any() or (x > levels - 1).any()):
        raise ValueError(f"{name} must hold integer levels 0..{levels - 1} for a {likelihood} "
                         "decoder, e.g. load_digits(form='levels')")


# --------------------------------------------------------------------------------------
# training losses for dgm_lab.train.fit
# --------------------------------------------------------------------------------------

def elbo_loss(warmup: float = 0.0) -> Callable:
    r"""The negative ELBO, averaged over the batch, with an optional KL warm-up.

    The KL term is weighted by :math:`\beta = \min(1, \text{progress} / \text{warmup})`, rising
    from 0 to 1 over the first ``warmup`` fraction of training (Bowman et al., 2016; Sonderby
    et al., 2016): early on the decoder learns to use the code before the KL pulls the
    posteriors onto the prior. Validation sees :math:`\beta = 1`, the true bound.

    Returns:
        ``loss(vae, x, state) -> {"loss", "recon", "kl", "beta"}`` for :func:`dgm_lab.train.fit`.
    """
    warmup = check_non_negative(warmup, "warmup")

    def loss(vae: VAE, x: torch.Tensor, state: object) -> dict[str, torch.Tensor | float]:
        log_px, kl = vae._elbo_terms(x, None)
        beta = min(1.0, state.progress / warmup) if warmup > 0 else 1.0
        return {"loss": (-log_px + beta * kl).mean(), "recon": -log_px.mean().detach(),
                "kl": kl.mean().detach(), "beta": beta}

    return loss


def iwae_loss(k: int) -> Callable:
    r"""The negative importance-weighted bound :math:`-\mathcal L_k`, averaged over the batch.

    Burda et al. (2016) train on it directly: its gradient weights each draw by its normalised
    importance weight, so the encoder need not cover the posterior with one draw.
    """
    k = check_int(k, "k")

    def loss(vae: VAE, x: torch.Tensor) -> torch.Tensor:
        return -vae._iwae(x, k, None).mean()

    return loss


# --------------------------------------------------------------------------------------
# the adversarial autoencoder
# --------------------------------------------------------------------------------------

class GaussianMixturePrior(DensityModel):
    r"""An equal mixture of isotropic Gaussians, a prior one can sample and evaluate.

    .. math:: p(z) = \frac1K \sum_{j=1}^K \mathcal N(z; m_j, s^2 I).

    :meth:`ring` puts ``K`` means evenly on a circle in 2-D: the "mixture of 10 Gaussians"
    prior of the adversarial autoencoder paper (Makhzani et al., 2016, figure 4).

    Arguments:
        means: ``[K, L]`` component means.
        std: :math:`s > 0`.

    Example:
        >>> prior = GaussianMixturePrior.ring(10, radius=4.0, std=0.5)
        >>> prior.sample(5).shape
        torch.Size([5, 2])
    """

    def __init__(self, means: torch.Tensor, std: float) -> None:
        super().__init__()
        self.register_buffer("means_", as_float_tensor(means, "means", ndim=2))
        self.register_buffer("std_", torch.tensor(check_positive(std, "std"),
                                                  dtype=self.means_.dtype))

    @classmethod
    def ring(cls, components: int = 10, radius: float = 4.0, std: float = 0.5
             ) -> GaussianMixturePrior:
        """``components`` Gaussians of standard deviation ``std`` on a circle of ``radius``."""
        components = check_int(components, "components")
        angle = torch.arange(components) * (2 * math.pi / components)
        radius = check_positive(radius, "radius")
        return cls(torch.stack([radius * angle.cos(), radius * angle.sin()], 1), std)

    @property
    def event_shape(self) -> torch.Size:
        return self.means_.shape[1:]

    def _log_prob(self, z: torch.Tensor) -> torch.Tensor:
        sq = (z[:, None, :] - self.means_).square().sum(-1)  # [n, K]
        d = self.means_.shape[1]
        log_norm = -d * (torch.log(self.std_) + 0.5 * _LOG_2PI) - math.log(len(self.means_))
        return torch.logsumexp(-0.5 * sq / self.std_**2, 1) + log_norm

    def sample_components(self, n: int, generator: torch.Generator | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` draws and the component each came from, ``([n, L], [n])`` (int64): the
        labelled prior draws of an AAE whose discriminator is told the class."""
        n = check_int(n, "n")
        j = randint(len(self.means_), (n,), generator, device=self.device)
        eps = randn((n, self.means_.shape[1]), generator, device=self.device, dtype=self.dtype)
        return self.means_[j] + self.std_ * eps, j

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.sample_components(n, generator)[0]


class AdversarialAutoencoder(nn.Module):
    r"""An autoencoder whose codes are made to look like draws from a chosen prior.

    A deterministic encoder :math:`z = f(x)`, a decoder :math:`p(x \mid z)` (the likelihoods
    of :class:`VAE`) and a discriminator :math:`D(z)`, the probability that :math:`z` came from
    the prior :math:`p(z)` rather than from the encoder. Each batch has two phases (Makhzani et
    al., 2016, section 2): *reconstruction*, encoder and decoder lower
    :math:`-\log p(x \mid f(x))`; *regularisation*, the discriminator learns to tell prior
    draws from codes, then the encoder learns to fool it. At the equilibrium of the game the
    distribution of the codes, the *aggregated posterior* :math:`q(z) = \mathbb E_{p_{data}}
    [\delta(z - f(x))]`, matches the prior. Unlike the VAE's KL term this needs only samples
    of :math:`p(z)`, so the prior can be a mixture, a ring, a swiss roll. Decoding prior draws
    then generates data.

    Arguments:
        features: :math:`D`.
        prior: a :class:`~dgm_lab.model.DensityModel` over codes (e.g.
            :class:`GaussianMixturePrior`); its ``event_shape`` gives the code size.
        hidden: units per hidden layer of the three MLPs (two hidden layers each).
        likelihood, levels: the decoder's distribution, as in :class:`VAE`.
        classes: 0 (default): the discriminator sees the code alone. ``K > 0``: it also sees
            a one-hot label (Makhzani et al., 2016, section 2.3): the class of the image
            beside its code, the component beside a prior draw. The prior must be a
            :class:`GaussianMixturePrior` of ``K`` components, and the encoder learns to code
            class ``k`` as component ``k``: the training data are then ``(x, labels)``.

    Example:
        >>> aae = AdversarialAutoencoder(64, GaussianMixturePrior.ring(10), likelihood="bernoulli")
        >>> history = fit(aae, aae_losses(aae.standardize(x_train)), x_train, epochs=200)
        >>> told = AdversarialAutoencoder(64, GaussianMixturePrior.ring(10), classes=10)
        >>> history = fit(told, aae_losses(told.standardize(x_train)), (x_train, y_train),
        ...               epochs=200)
    """

    def __init__(self, features: int, prior: DensityModel, hidden: int = 256, *,
                 likelihood: str = "bernoulli", levels: int = 17, classes: int = 0) -> None:
        super().__init__()
        if not isinstance(prior, DensityModel) or len(prior.event_shape) != 1:
            raise TypeError("prior must be a DensityModel over vectors [n, L] "
                            "(e.g. GaussianMixturePrior.ring(10))")
        self.features = check_int(features, "features")
        self.hidden = check_int(hidden, "hidden")
        self.classes = check_int(classes, "classes", minimum=0)
        if self.classes and not (isinstance(prior, GaussianMixturePrior)
                                 and len(prior.means_) == self.classes):
            raise ValueError(f"classes={self.classes} needs a GaussianMixturePrior of as many "
                             "components: the label of a prior draw is its component")
        self.latent = int(prior.event_shape[0])
        self.prior = prior
        # the decoder and its likelihood are a VAE's; only its encoder's mean is used
        self.autoencoder = VAE(features, self.latent, hidden, likelihood=likelihood,
                               levels=levels)
        self.discriminator = _mlp([self.latent + self.classes, hidden, hidden, 1])

    @property
    def likelihood(self) -> str:
        return self.autoencoder.likelihood

    def discriminate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The discriminator's logit ``[n, 1]`` that ``z`` is a prior draw (of component
        ``labels``, int64 ``[n]``, when the model has ``classes``; else no labels)."""
        from dgm_lab.gan.models import with_labels

        return self.discriminator(with_labels(z, labels, self.classes))

    def standardize(self, x: torch.Tensor) -> AdversarialAutoencoder:
        """Set the encoder's input standardisation from training data (see :class:`VAE`)."""
        self.autoencoder.standardize(x)
        self.to(device=self.autoencoder.device, dtype=self.autoencoder.dtype)
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic code :math:`f(x)`, ``[n, L]``."""
        return self.autoencoder.encode(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean :math:`\\mathbb E[x \\mid z]`, ``[..., D]``."""
        return self.autoencoder.decode(z)

    def reconstruction_nll(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`-\log p(x \mid f(x))` per row ``[n]``: the reconstruction term, and an anomaly
        score (data unlike the training data reconstruct badly)."""
        x = self.autoencoder._check_input(x)
        return -self.autoencoder._log_likelihood(x, self.autoencoder._encode(x)[0])

    def code_log_prior(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(f(x))` per row ``[n]``: a second anomaly score, low when the code of
        :math:`x` falls where the prior (and so the codes of the training data) has little
        mass."""
        with torch.no_grad():
            return self.prior.log_prob(self.encode(x))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means at ``n`` prior draws, ``[n, D]``: the AAE as a generator."""
        return self.decode(self.prior.sample(n, generator))


def aae_losses(aae: AdversarialAutoencoder, *, lr: float = 1e-3, lr_adversarial: float = 2e-4,
               betas: tuple[float, float] = (0.5, 0.999), input_noise: float = 0.0,
               decay_epochs: int | None = None) -> list:
    r"""The three updates of one AAE training step, for :func:`dgm_lab.train.fit`.

    1. ``"recon"``: encoder and decoder minimise :math:`-\log p(x \mid f(x))` (Adam, ``lr``);
    2. ``"d"``: the discriminator minimises the cross-entropy of telling prior draws (label 1)
       from codes (label 0);
    3. ``"g"``: the encoder minimises :math:`-\log D(f(x))`, the non-saturating generator loss
       (Goodfellow et al., 2014), pushing its codes where the discriminator sees the prior.

    With ``aae.classes`` the batches are ``(x, labels)`` and the discriminator sees
    :math:`D(z, y)`: prior draws with their component, codes with their image's class.

    The adversarial optimisers use Adam with ``lr_adversarial`` and ``betas``, as for GANs.

    Arguments:
        aae: the model whose parameters the three optimisers hold.
        lr: Adam's learning rate of the reconstruction update.
        lr_adversarial: Adam's learning rate of the discriminator and encoder updates.
        betas: Adam's betas of the adversarial updates.
        input_noise: in training, the encoder sees :math:`x + \sigma \epsilon`,
            :math:`\epsilon \sim \mathcal N(0, I)`, with :math:`\sigma` = ``input_noise`` in the
            data's units, and the decoder must rebuild the clean :math:`x` (a denoising
            encoder, Vincent et al., 2008). The discriminator then sees codes of a
            neighbourhood of every training image, not of the image alone, so that the codes
            of unseen images follow the prior too. 0 (default): the plain AAE.
        decay_epochs: if given, every learning rate decays along a cosine to 5 % of its start
            over this many epochs (one scheduler step per epoch; pass the training's epochs).

    Returns:
        A list of :class:`dgm_lab.train.Update`.

    Raises:
        RuntimeError: if ``aae`` has no input standardisation yet (call
            :meth:`AdversarialAutoencoder.standardize` first).

    References:
        A. Makhzani et al. (2016). Adversarial autoencoders. ICLR workshop, sections 2 and
        2.3 (the labelled discriminator).

    Example:
        >>> history = fit(aae, aae_losses(aae, input_noise=2.0, decay_epochs=200), x, epochs=200)
    """
    from dgm_lab.train import Update

    check_positive(lr, "lr")
    check_positive(lr_adversarial, "lr_adversarial")
    input_noise = check_non_negative(input_noise, "input_noise")
    if decay_epochs is not None:
        decay_epochs = check_int(decay_epochs, "decay_epochs")
    ae = aae.autoencoder
    if not ae.is_fitted:
        raise RuntimeError("this AdversarialAutoencoder has no input standardisation yet: "
                           "call aae.standardize(x_train) first")

    def code(model: AdversarialAutoencoder, x: torch.Tensor) -> torch.Tensor:
        if input_noise:
            x = x.to(model.autoencoder.dtype) + input_noise * randn(
                x.shape, None, device=x.device, dtype=torch.float32).to(model.autoencoder.dtype)
        return model.autoencoder._encode(x)[0]

    def images_and_labels(model: AdversarialAutoencoder, batch: object) -> tuple:
        if not model.classes:
            if isinstance(batch, (list, tuple)):
                raise ValueError("this AAE has no classes: train it on x alone, or build it "
                                 "with classes=K to give its discriminator labels")
            return batch, None
        if not isinstance(batch, (list, tuple)) or len(batch) != 2:
            raise ValueError(f"an AAE with classes={model.classes} trains on (x, labels): "
                             "pass the training data as a tuple (x, y)")
        return batch[0], batch[1]

    def recon(model: AdversarialAutoencoder, batch: object) -> torch.Tensor:
        x = images_and_labels(model, batch)[0]
        return -model.autoencoder._log_likelihood(x, code(model, x)).mean()

    def discriminator(model: AdversarialAutoencoder, batch: object) -> dict:
        x, labels = images_and_labels(model, batch)
        codes = code(model, x).detach()
        if model.classes:  # each prior draw labelled with its component
            prior, components = model.prior.sample_components(len(x))
        else:
            prior, components = model.prior.sample(len(x)), None
        real = model.discriminate(prior.to(codes), components)
        fake = model.discriminate(codes, labels)
        loss = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
        return {"loss": loss, "accuracy": 0.5 * ((real > 0).float().mean()
                                                 + (fake < 0).float().mean())}

    def generator(model: AdversarialAutoencoder, batch: object) -> torch.Tensor:
        x, labels = images_and_labels(model, batch)
        fake = model.discriminate(code(model, x), labels)
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))

    def update(loss: Callable, params: Iterable[torch.Tensor], rate: float, name: str,
               **adam: object) -> Update:
        optimizer = torch.optim.Adam(params, rate, **adam)
        scheduler = None if decay_epochs is None else torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, decay_epochs, eta_min=0.05 * rate)
        return Update(loss, optimizer, scheduler=scheduler, name=name)

    return [update(recon, ae.parameters(), lr, "recon"),
            update(discriminator, aae.discriminator.parameters(), lr_adversarial, "d",
                   betas=betas),
            update(generator, ae.encoder.parameters(), lr_adversarial, "g", betas=betas)]


# --------------------------------------------------------------------------------------
# a two-sample statistic: do the codes follow the prior?
# --------------------------------------------------------------------------------------

def _pair(x: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
    x = as_float_tensor(x, "x", ndim=2)
    y = as_float_tensor(y, "y", ndim=2, dtype=x.dtype, device=x.device)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same number of features, got {x.shape[1]} "
                         f"and {y.shape[1]}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError("x and y need at least 2 rows each")
    return x, y


def _median_bandwidth(z: torch.Tensor) -> float:
    d = torch.cdist(z, z)
    return float(d[d > 0].median()) if (d > 0).any() else 1.0


def mmd_squared(x: torch.Tensor, y: torch.Tensor, bandwidth: float | None = None) -> torch.Tensor:
    r"""Unbiased squared maximum mean discrepancy with a Gaussian kernel.

    .. math:: \widehat{\mathrm{MMD}}^2 = \frac{1}{m(m-1)} \sum_{i \ne j} k(x_i, x_j)
              + \frac{1}{n(n-1)} \sum_{i \ne j} k(y_i, y_j) - \frac{2}{mn} \sum_{i, j}
              k(x_i, y_j), \qquad k(a, b) = e^{-\|a - b\|^2 / (2h^2)} .

    Its expectation is 0 exactly when the two samples come from the same distribution (the
    Gaussian kernel is characteristic), so values near 0, or negative, mean "no evidence of a
    difference".

    Arguments:
        x: ``[m, d]``; y: ``[n, d]``.
        bandwidth: :math:`h > 0`; default the median distance between the pooled points.

    Returns:
        A scalar tensor.

    References:
        A. Gretton et al. (2012). A kernel two-sample test. JMLR 13, lemma 6 (eq. 3).
    """
    x, y = _pair(x, y)
    h = _median_bandwidth(torch.cat([x, y])) if bandwidth is None else check_positive(
        bandwidth, "bandwidth")
    return _mmd2(x, y, h)


def _mmd2(x: torch.Tensor, y: torch.Tensor, h: float) -> torch.Tensor:
    def mean_kernel(a: torch.Tensor, b: torch.Tensor, same: bool) -> torch.Tensor:
        k = torch.exp(-torch.cdist(a, b).square() / (2 * h * h))
        if same:
            return (k.sum() - k.diagonal().sum()) / (len(a) * (len(a) - 1))
        return k.mean()

    return mean_kernel(x, x, True) + mean_kernel(y, y, True) - 2 * mean_kernel(x, y, False)


def mmd_test(x: torch.Tensor, y: torch.Tensor, *, permutations: int = 200,
             bandwidth: float | None = None, generator: torch.Generator | None = None
             ) -> tuple[float, float]:
    r"""Permutation test of "x and y come from the same distribution" with :func:`mmd_squared`.

    Under that hypothesis the labels "x" and "y" are exchangeable: the statistic of the
    observed split is compared with the statistics of ``permutations`` random relabellings of
    the pooled sample. The p-value :math:`(1 + \#\{\text{permuted} \ge \text{observed}\}) /
    (1 + \text{permutations})` is valid at any sample size. The bandwidth (default: median
    distance) is fixed once from the pooled sample, as the relabelling does not change it.

    Arguments:
        x: ``[m, d]``; y: ``[n, d]``.
        permutations: number of relabellings (>= 1).
        bandwidth: the kernel's :math:`h` (default: median heuristic).
        generator: for repeatable permutations.

    Returns:
        ``(mmd2, p_value)`` as floats.

    References:
        A. Gretton et al. (2012). A kernel two-sample test, section 5 (permutation test).
    """
    x, y = _pair(x, y)
    permutations = check_int(permutations, "permutations")
    pooled = torch.cat([x, y])
    h = _median_bandwidth(pooled) if bandwidth is None else check_positive(bandwidth, "bandwidth")
    m, n = len(x), len(y)
    # the pooled kernel matrix once, in float64; a relabelling is a 0/1 column s marking the
    # "x" points, and its three kernel sums are quadratic forms in s: K s for every
    # relabelling at once
    pooled = pooled.double()
    k = torch.exp(-torch.cdist(pooled, pooled).square() / (2 * h * h))
    labels = torch.zeros(m + n, permutations + 1, dtype=k.dtype, device=k.device)
    labels[:m, 0] = 1  # column 0: the observed split
    for i in range(1, permutations + 1):
        perm = torch.randperm(m + n, generator=generator).to(k.device)
        labels[perm[:m], i] = 1
    ks = k @ labels
    xx = (labels * ks).sum(0)  # sum over x, x' (with the diagonal, which is 1 each)
    xy = ((1 - labels) * ks).sum(0)  # sum over y, x
    yy = k.sum() - xx - 2 * xy
    mmd2 = (xx - m) / (m * (m - 1)) + (yy - n) / (n * (n - 1)) - 2 * xy / (m * n)
    observed = mmd2[0].item()
    # a relabelling whose statistic equals the observed one in exact arithmetic (tied data:
    # the same points swapped) must count; rounding in the sums above (each of up to
    # (m + n)^2 terms, divided by m n) may put it just below, so compare with that slack
    slack = 1e3 * torch.finfo(torch.float64).eps * ((m + n) / min(m, n)) ** 2
    exceed = int((mmd2[1:] >= mmd2[0] - slack).sum())
    return observed, (1 + exceed) / (1 + permutations)
