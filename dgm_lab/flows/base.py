r"""Transforms that know their Jacobian, and the flow that turns them into a density.

A normalizing flow writes the data as an invertible function of noise. This module holds
the bookkeeping every flow shares:

* :class:`Transform`, an invertible map that returns its output **and** the log of the
  absolute value of its Jacobian determinant: ``forward(x) -> (z, log|det dz/dx|)`` and
  ``inverse(z) -> (x, log|det dx/dz|)``. ``forward`` is the *normalizing* direction, from data
  to noise, as in nflows and zuko; ``inverse`` is the generative direction.
* :class:`Chain` composes transforms and **sums** their log-determinants (the chain rule:
  the Jacobian of a composition is the product of the Jacobians, and determinants
  multiply); :class:`Inverse` swaps the two directions of a transform.
* :class:`Flow`, a :class:`~dgm_lab.model.DensityModel`: a transform and a base density. By
  the change of variables,

  .. math:: \log p(x) = \log \pi\big(f(x)\big) + \log \Big|\det \frac{\partial f(x)}{\partial
            x}\Big|, \qquad x = f^{-1}(z),\ z \sim \pi,

  so ``log_prob`` runs the transform forward and ``sample`` runs it backwards.
* a few simple transforms: :class:`ElementwiseAffine` (NICE's diagonal scaling layer, and the
  lecture's cube scaled by 2), :class:`Permutation`, :class:`Reshape` and :class:`Logit`
  (which maps data in the unit cube onto the whole space, RealNVP's pre-processing).

References:
    D. J. Rezende and S. Mohamed (2015). Variational inference with normalizing flows. ICML.
    G. Papamakarios, E. Nalisnick, D. J. Rezende, S. Mohamed and B. Lakshminarayanan (2021).
    Normalizing flows for probabilistic modeling and inference. JMLR 22 (eq. 2-3: the change
    of variables; section 2.2: composition).
    L. Dinh, J. Sohl-Dickstein and S. Bengio (2017). Density estimation using Real NVP. ICLR
    (section 4.1: the logit pre-processing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from dgm_lab._validation import check_int
from dgm_lab.model import DensityModel, randn

__all__ = ["Chain", "ElementwiseAffine", "Flow", "Inverse", "Logit", "Permutation", "Reshape",
           "Squeeze", "Transform", "check_event", "negative_log_likelihood",
           "standard_normal_log_prob"]

_LOG_2PI = math.log(2 * math.pi)


def check_event(x: object, shape: Sequence[int], name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a floating tensor ``[n, *shape]``; raise naming ``name`` if not.

    Transforms are called with tensors inside a flow; this check turns a wrong call from
    outside (a list, an image where a vector is expected) into a clear message.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        want = "[n, " + ", ".join(map(str, shape)) + "]"
        raise ValueError(f"{name} must have shape {want}, got shape {tuple(x.shape)}")
    return x


def _sum_event(t: torch.Tensor) -> torch.Tensor:
    """Sum every dimension but the batch one: ``[n, ...] -> [n]``."""
    return t.reshape(len(t), -1).sum(1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    r"""``[n, ...] -> [n]``: :math:`\log \mathcal N(z; 0, I) = -\tfrac12 \|z\|^2 -
    \tfrac D2 \log 2\pi`, summed over each event."""
    return -0.5 * _sum_event(z.square()) - 0.5 * z[0].numel() * _LOG_2PI


class Transform(nn.Module):
    r"""An invertible map with a tractable Jacobian determinant.

    Subclasses implement ``forward(x) -> (z, logabsdet)`` with ``logabsdet`` ``[n]`` equal to
    :math:`\log|\det \partial z / \partial x|` for each event, and ``inverse(z) -> (x,
    logabsdet)`` with :math:`\log|\det \partial x / \partial z|` (minus the forward one at the
    corresponding point). Inputs are ``[n, *shape]``.
    """

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class Chain(Transform):
    r"""The composition :math:`f_K \circ \dots \circ f_1`: log-determinants add up.

    ``forward`` applies the transforms in list order and ``inverse`` in reverse order; each
    direction returns the sum of the log-determinants of its steps,

    .. math:: \log\Big|\det \frac{\partial z}{\partial x}\Big| = \sum_{k=1}^{K}
              \log\Big|\det \frac{\partial h_k}{\partial h_{k-1}}\Big|,
              \qquad h_0 = x,\ h_K = z.

    Arguments:
        transforms: the steps, data side first.

    Example:
        >>> t = Chain([ElementwiseAffine(2), Permutation([1, 0])])
        >>> z, logdet = t(torch.randn(5, 2))
        >>> logdet.shape
        torch.Size([5])
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        super().__init__()
        transforms = list(transforms)
        if not transforms or not all(isinstance(t, Transform) for t in transforms):
            raise TypeError("transforms must be a non-empty sequence of Transform modules")
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = x.new_zeros(len(x))
        for t in self.transforms:
            x, logdet = t(x)
            total = total + logdet
        return x, total

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = z.new_zeros(len(z))
        for t in reversed(self.transforms):
            z, logdet = t.inverse(z)
            total = total + logdet
        return z, total


class Inverse(Transform):
    """The transform ``base`` used the other way round: ``forward`` is ``base.inverse``.

    This is how IAF is built from the transform of MAF (see
    :mod:`dgm_lab.flows.autoregressive`): the same network, with the fast and the slow
    direction swapped.

    Arguments:
        base: the transform to invert.
    """

    def __init__(self, base: Transform) -> None:
        super().__init__()
        if not isinstance(base, Transform):
            raise TypeError(f"base must be a Transform, got {type(base).__name__}")
        self.base = base

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base.inverse(x)

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base(z)


class ElementwiseAffine(Transform):
    r""":math:`z = x \odot e^{s} + b`, a learned scale and shift per dimension.

    With ``shift=False`` this is the diagonal scaling layer that closes NICE (Dinh et al.,
    2015, section 3.3): additive couplings alone have determinant 1, so this layer is where
    a NICE flow changes volume, :math:`\log|\det| = \sum_j s_j`. Fixing :math:`s = \log 2`
    gives the lecture's cube scaled by 2.

    Arguments:
        shape: the event shape, e.g. ``2`` or ``(1, 8, 8)``.
        shift: learn the shift :math:`b` too (default True).

    References:
        L. Dinh, D. Krueger and Y. Bengio (2015). NICE: Non-linear independent components
        estimation. ICLR workshop. Section 3.3, the scaling matrix :math:`S`.
    """

    def __init__(self, shape: int | Sequence[int], *, shift: bool = True) -> None:
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.log_scale = nn.Parameter(torch.zeros(self.shape))
        self.shift = nn.Parameter(torch.zeros(self.shape)) if shift else None

    def _shift(self) -> torch.Tensor | float:
        return 0.0 if self.shift is None else self.shift

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(x, self.shape)
        z = x * self.log_scale.exp() + self._shift()
        return z, self.log_scale.sum().expand(len(x))

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(z, self.shape, "z")
        x = (z - self._shift()) * torch.exp(-self.log_scale)
        return x, (-self.log_scale.sum()).expand(len(z))


class Permutation(Transform):
    """Reorder the features of a vector event: ``z = x[:, perm]`` (determinant ±1).

    Between two coupling layers a permutation lets the untouched half of one layer be
    transformed by the next (the "reverse" permutation of RealNVP and MAF).

    Arguments:
        perm: a permutation of ``0..D-1``.
    """

    def __init__(self, perm: Sequence[int] | torch.Tensor) -> None:
        super().__init__()
        perm = torch.as_tensor(perm, dtype=torch.int64)
        if perm.dim() != 1 or not torch.equal(perm.sort().values, torch.arange(len(perm))):
            raise ValueError(f"perm must be a permutation of 0..D-1, got {perm.tolist()}")
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(x, (len(self.perm),))
        return x[:, self.perm], x.new_zeros(len(x))

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(z, (len(self.perm),), "z")
        return z[:, self.inverse_perm], z.new_zeros(len(z))


class Reshape(Transform):
    """Change the event shape without touching the numbers (determinant 1).

    ``Reshape(64, (1, 8, 8))`` turns a flattened 8x8 digit into a one-channel image for the
    convolutional layers of RealNVP and Glow.

    Arguments:
        in_shape: the event shape on the data side.
        out_shape: the event shape on the noise side (same number of entries).
    """

    def __init__(self, in_shape: int | Sequence[int], out_shape: int | Sequence[int]) -> None:
        super().__init__()
        self.in_shape = (in_shape,) if isinstance(in_shape, int) else tuple(in_shape)
        self.out_shape = (out_shape,) if isinstance(out_shape, int) else tuple(out_shape)
        if math.prod(self.in_shape) != math.prod(self.out_shape):
            raise ValueError(f"in_shape {self.in_shape} and out_shape {self.out_shape} must "
                             "hold the same number of entries")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(x, self.in_shape)
        return x.reshape(len(x), *self.out_shape), x.new_zeros(len(x))

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(z, self.out_shape, "z")
        return z.reshape(len(z), *self.in_shape), z.new_zeros(len(z))


class Squeeze(Transform):
    r"""Trade space for channels: each 2x2 block of pixels becomes 4 channels (determinant 1).

    ``[n, C, H, W] -> [n, 4C, H/2, W/2]`` (RealNVP, section 3.6, fig. 3). After a squeeze, a
    channel mask splits every 2x2 neighbourhood, and a 3x3 convolution sees a wider field.

    Arguments:
        shape: the event shape ``(C, H, W)`` on the data side (``H`` and ``W`` even).
    """

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(shape)
        if len(self.shape) != 3 or self.shape[1] % 2 or self.shape[2] % 2:
            raise ValueError(f"shape must be (C, H, W) with H and W even, got {self.shape}")
        c, h, w = self.shape
        self.out_shape = (4 * c, h // 2, w // 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(x, self.shape)
        c, h, w = self.shape
        z = x.reshape(len(x), c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return z.reshape(len(x), *self.out_shape), x.new_zeros(len(x))

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(z, self.out_shape, "z")
        c, h, w = self.shape
        x = z.reshape(len(z), c, 2, 2, h // 2, w // 2).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(len(z), c, h, w), z.new_zeros(len(z))


class Logit(Transform):
    r"""Map data in the unit cube onto :math:`\mathbb R^D`: :math:`z = \operatorname{logit}
    (\alpha + (1 - 2\alpha) x)`.

    A flow with a Gaussian base puts mass on the whole space; dequantised pixels live in
    :math:`(0, 1)`. RealNVP (Dinh et al., 2017, section 4.1) first squeezes the data into
    :math:`[\alpha, 1 - \alpha]` so that the logit stays finite, then takes the logit; the
    log-determinant of both steps counts in the likelihood, so the density stays one on
    :math:`(0, 1)^D`:

    .. math:: \log\Big|\frac{dz_j}{dx_j}\Big| = \log(1 - 2\alpha) - \log y_j - \log(1 - y_j),
              \qquad y_j = \alpha + (1 - 2\alpha) x_j .

    Arguments:
        shape: the event shape.
        alpha: the margin :math:`\alpha \in [0, 0.5)` (default 1e-3).
    """

    def __init__(self, shape: int | Sequence[int], alpha: float = 1e-3) -> None:
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0 <= alpha < 0.5:
            raise ValueError(f"alpha must be a number in [0, 0.5), got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(x, self.shape)
        # outside [0, 1] the logit is NaN: say so instead of returning a NaN density
        if bool(((x < 0) | (x > 1)).any()):
            raise ValueError(f"x must lie in [0, 1] (the domain of Logit), got values in "
                             f"[{x.min().item():.4g}, {x.max().item():.4g}]")
        y = self.alpha + (1 - 2 * self.alpha) * x
        z = torch.log(y) - torch.log1p(-y)
        logdet = math.log1p(-2 * self.alpha) - torch.log(y) - torch.log1p(-y)
        return z, _sum_event(logdet)

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_event(z, self.shape, "z")
        y = torch.sigmoid(z)
        x = (y - self.alpha) / (1 - 2 * self.alpha)
        # log dy/dz = log sigmoid(z) + log sigmoid(-z), stable for large |z|
        logdet = (nn.functional.logsigmoid(z) + nn.functional.logsigmoid(-z)
                  - math.log1p(-2 * self.alpha))
        return x, _sum_event(logdet)


class Flow(DensityModel):
    r"""A normalizing flow: a :class:`Transform` from data to noise and a base density.

    .. math:: \log p(x) = \log \pi\big(f(x)\big) + \log\Big|\det \frac{\partial f(x)}
              {\partial x}\Big|, \qquad \text{sample: } x = f^{-1}(z),\ z \sim \pi .

    The base :math:`\pi` is the standard normal on the noise side unless ``base`` says
    otherwise. A flow is a valid density from its first step (any invertible ``transform``
    gives one), so it needs no ``fit``: train it by maximum likelihood with
    :func:`dgm_lab.train.fit` and :func:`negative_log_likelihood`.

    Arguments:
        transform: the map :math:`f` from data to noise.
        event_shape: the shape of one data event, e.g. ``2`` or ``64``.
        base: a fitted :class:`~dgm_lab.model.DensityModel` on the noise side (its
            ``event_shape`` is that of the transform's output); ``None`` is the standard
            normal of the same shape as the data.

    References:
        D. J. Rezende and S. Mohamed (2015). Variational inference with normalizing flows.
        ICML. G. Papamakarios et al. (2021). Normalizing flows for probabilistic modeling
        and inference. JMLR (eq. 2-3).

    Example:
        >>> flow = Flow(ElementwiseAffine(2), 2)
        >>> flow.log_prob(torch.zeros(3, 2))          # the standard normal at the origin
        tensor([-1.8379, -1.8379, -1.8379], grad_fn=<AddBackward0>)
        >>> flow.sample(4).shape
        torch.Size([4, 2])
    """

    def __init__(self, transform: Transform, event_shape: int | Sequence[int], *,
                 base: DensityModel | None = None) -> None:
        super().__init__()
        if not isinstance(transform, Transform):
            raise TypeError(f"transform must be a Transform, got {type(transform).__name__}")
        if base is not None and not isinstance(base, DensityModel):
            raise TypeError(f"base must be a DensityModel or None, got {type(base).__name__}")
        self.transform = transform
        self.base = base
        shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        # a constant buffer: carries the flow's dtype and device even before it has parameters
        self.register_buffer("_shape", torch.tensor(shape, dtype=torch.float32))

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size(int(s) for s in self._shape.tolist())

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object,
                              **kwargs: object) -> None:
        # like every DensityModel, a reloaded flow takes the dtype and device of the saved
        # state (a float64 flow saved on a GPU reloads as a float64 flow on that GPU)
        saved = next((v for k, v in state_dict.items() if k.startswith(prefix)
                      and isinstance(v, torch.Tensor) and v.is_floating_point()), None)
        if saved is not None:
            self.to(device=saved.device, dtype=saved.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _base_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_prob(z) if self.base is None else self.base.log_prob(z)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z, logdet = self.transform(x)
        return self._base_log_prob(z) + logdet

    @property
    def noise_shape(self) -> torch.Size:
        """The shape of one noise event (the transform's output), found by one call."""
        if not hasattr(self, "_noise_shape"):
            with torch.no_grad():
                was = self.training
                self.eval()  # no data-dependent initialisation on a dummy input
                z, _ = self.transform(torch.full((1, *self.event_shape), 0.5,
                                                 device=self.device, dtype=self.dtype))
                self.train(was)
            self._noise_shape = z.shape[1:]
        return self._noise_shape

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        with torch.no_grad():  # like torch.distributions' sample; sample_with_log_prob keeps
            return self.sample_with_log_prob(n, generator)[0]  # gradients (rsample-like)

    def sample_with_log_prob(self, n: int, generator: torch.Generator | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Draw ``n`` events and their log-density in one inverse pass.

        :math:`\log p(x) = \log \pi(z) - \log|\det \partial x / \partial z|` with the
        log-determinant that the inverse pass computes anyway. For an IAF this is the fast
        way to score its own samples (a VAE's posterior does exactly this). Unlike
        :meth:`sample`, the draws keep their gradients with respect to the flow's parameters
        (a reparameterised sample, ``rsample`` in ``torch.distributions``).

        Returns:
            ``x`` ``[n, *event_shape]`` and ``log_prob`` ``[n]``.
        """
        self._require_fitted()
        n = check_int(n, "n")
        if self.base is None:
            z = randn((n, *self.noise_shape), generator, device=self.device, dtype=self.dtype)
        else:
            z = self.base.sample(n, generator=generator)
        x, logdet = self.transform.inverse(z)
        return x, self._base_log_prob(z) - logdet

    def transform_to_noise(self, x: torch.Tensor) -> torch.Tensor:
        """The noise :math:`z = f(x)` of data ``x`` ``[n, *event_shape]``."""
        return self.transform(self._check_input(x))[0]


def negative_log_likelihood(model: DensityModel, x: torch.Tensor) -> torch.Tensor:
    """The loss of maximum-likelihood training, ``-model.log_prob(x).mean()`` (nats).

    Pass it to :func:`dgm_lab.train.fit`: ``fit(flow, negative_log_likelihood, x, epochs=50)``.

    Arguments:
        model: any :class:`~dgm_lab.model.DensityModel` (a flow).
        x: a batch ``[n, *event_shape]``.

    Returns:
        A 0-dim tensor that keeps its gradient.

    References:
        G. Papamakarios et al. (2021). Normalizing flows for probabilistic modeling and
        inference. JMLR (eq. 13).

    Example:
        >>> negative_log_likelihood(Flow(ElementwiseAffine(2), 2), torch.zeros(3, 2))
        tensor(1.8379, grad_fn=<NegBackward0>)
    """
    return -model.log_prob(x).mean()

