r"""NADE, DeepNADE and RNADE: one hidden layer shared by every conditional.

**NADE** (Larochelle and Murray, 2011) gives every conditional of a binary vector a hidden
layer, but one weight matrix :math:`W \in \mathbb R^{H \times D}` and bias :math:`c` serve
them all:

.. math::
    h_d = \sigma(c + W_{:, <d}\, x_{<d}), \qquad
    p(x_d = 1 \mid x_{<d}) = \sigma(b_d + V_d \cdot h_d).

Sharing brings the parameter count from :math:`O(D^2 H)` (a separate network per
conditional) to :math:`O(DH)`, and it makes the pre-activations cheap: with
:math:`a_1 = c` and

.. math:: a_{d+1} = a_d + W_{:, d}\, x_d,

all :math:`D` hidden layers cost :math:`O(DH)` instead of the :math:`O(D^2 H)` of computing
each :math:`W_{:, <d} x_{<d}` from scratch. :meth:`NADE.logits` runs the recursion as a
cumulative sum; :meth:`NADE.logits_naive` recomputes every product, for the comparison.

**DeepNADE** (Uria, Murray and Larochelle, 2014; Uria et al., 2016) trains one deep network for
*every* ordering at once. Its input is the observed part of :math:`x` and the binary mask
:math:`m` saying which coordinates are observed, :math:`[x \odot m, m]` (the mask tells a
coordinate that is 0 apart from one that is unobserved), and it outputs a conditional for
every unobserved coordinate. A training step draws an ordering :math:`o` and a position
:math:`d`, observes :math:`x_{o(<d)}` and scores the :math:`D - d + 1` unobserved
coordinates, weighted by :math:`D / (D - d + 1)`: an unbiased estimate of the NLL averaged
over orderings. At test time, averaging the densities of several orderings (a mixture)
improves the likelihood.

**RNADE** (Uria, Murray and Larochelle, 2013) keeps NADE's shared recursion for real-valued
data and makes each conditional a mixture of :math:`K` Gaussians whose weights, means and
scales are computed from :math:`h_d`.

References:
    H. Larochelle and I. Murray (2011). The Neural Autoregressive Distribution Estimator.
    AISTATS (eq. 2-6, the recursion in section 3).
    B. Uria, I. Murray and H. Larochelle (2013). RNADE: The real-valued neural autoregressive
    density-estimator. NeurIPS (eq. 3-6).
    B. Uria, I. Murray and H. Larochelle (2014). A Deep and Tractable Density Estimator. ICML.
    B. Uria, M.-A. Côté, K. Gregor, I. Murray and H. Larochelle (2016). Neural Autoregressive
    Distribution Estimation. JMLR 17 (section 4: order-agnostic training, eq. 21-24).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from dgm_lab._validation import as_float_tensor, check_binary, check_int, check_seed
from dgm_lab.autoregressive.base import AutoregressiveModel, conditional_log_probs, draw_levels
from dgm_lab.model import DensityModel, rand, randn

__all__ = ["NADE", "RNADE", "DeepNADE", "nade_log_prob"]


def _uniform_(weight: torch.Tensor, fan_in: int) -> None:
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(weight, -bound, bound)


def _shared_preactivations(x: torch.Tensor, weight: torch.Tensor,
                           bias: torch.Tensor) -> torch.Tensor:
    r"""``[n, D, H]``: :math:`a_d = c + W_{:, <d} x_{<d}` for every :math:`d`, by the recursion.

    The recursion :math:`a_{d+1} = a_d + W_{:, d} x_d` is a cumulative sum of the terms
    :math:`W_{:, j} x_j`, shifted by one so that :math:`a_d` stops before :math:`x_d`.
    """
    terms = x.unsqueeze(2) * weight.T  # [n, D, H]: W[:, j] x_j
    before = torch.cumsum(terms, dim=1) - terms  # sum over j < d
    return bias + before


def _nade_logits(x: torch.Tensor, W: torch.Tensor, c: torch.Tensor, V: torch.Tensor,
                 b: torch.Tensor) -> torch.Tensor:
    h = torch.sigmoid(_shared_preactivations(x, W, c))  # [n, D, H]
    return b + (h * V).sum(-1)


def nade_log_prob(x: torch.Tensor, W: torch.Tensor, c: torch.Tensor, V: torch.Tensor,
                  b: torch.Tensor) -> torch.Tensor:
    r"""Log-probability of binary vectors under NADE, by the :math:`O(DH)` recursion.

    :math:`a_1 = c`, :math:`a_{d+1} = a_d + W_{:, d} x_d`, :math:`h_d = \sigma(a_d)`,
    :math:`p(x_d = 1 \mid x_{<d}) = \sigma(b_d + V_d \cdot h_d)`.

    Arguments:
        x: ``[n, D]`` binary (0./1.) floating tensor.
        W: ``[H, D]``; c: ``[H]``; V: ``[D, H]``; b: ``[D]``.

    Returns:
        ``[n]`` log-probabilities in nats.

    References:
        Larochelle and Murray (2011), eq. 2-6.

    Example:
        >>> h, d = 4, 3
        >>> nade_log_prob(torch.zeros(1, d), torch.zeros(h, d), torch.zeros(h),
        ...               torch.zeros(d, h), torch.zeros(d)).exp()
        tensor([0.1250])
    """
    x = check_binary(as_float_tensor(x, "x", ndim=2), "x")
    d = x.shape[1]
    W = as_float_tensor(W, "W", ndim=2, dtype=x.dtype, device=x.device)
    h = W.shape[0]
    shapes = {"W": (h, d), "c": (h,), "V": (d, h), "b": (d,)}
    given = {"W": W}
    for name, value in (("c", c), ("V", V), ("b", b)):
        given[name] = as_float_tensor(value, name, ndim=len(shapes[name]), dtype=x.dtype,
                                      device=x.device)
    for name, shape in shapes.items():
        if tuple(given[name].shape) != shape:
            raise ValueError(f"{name} must have shape {list(shape)} (H={h}, D={d}), got "
                             f"{list(given[name].shape)}")
    logits = _nade_logits(x, given["W"], given["c"], given["V"], given["b"])
    return conditional_log_probs(logits, x).sum(1)


class NADE(AutoregressiveModel):
    r"""The neural autoregressive distribution estimator for binary vectors.

    Arguments:
        n_inputs: :math:`D`.
        hidden: :math:`H`, units of the shared hidden layer.

    Attributes:
        W: ``[H, D]``; c: ``[H]``; V: ``[D, H]``; b: ``[D]`` (Larochelle and Murray's names).

    References:
        Larochelle and Murray (2011), eq. 2-6.

    Example:
        >>> model = NADE(64, hidden=100)
        >>> model.log_prob(torch.zeros(5, 64)).shape
        torch.Size([5])
    """

    def __init__(self, n_inputs: int, hidden: int = 100) -> None:
        super().__init__(check_int(n_inputs, "n_inputs"), levels=2)
        self.hidden = check_int(hidden, "hidden")
        d, h = self.n_inputs, self.hidden
        self.W = nn.Parameter(torch.empty(h, d))
        self.c = nn.Parameter(torch.zeros(h))
        self.V = nn.Parameter(torch.empty(d, h))
        self.b = nn.Parameter(torch.zeros(d))
        _uniform_(self.W, d)
        _uniform_(self.V, h)

    @property
    def n_parameters(self) -> int:
        """:math:`2DH + D + H`."""
        return sum(p.numel() for p in self.parameters())

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[n, D]`` logits of every conditional, by the O(DH) recursion."""
        return _nade_logits(x, self.W, self.c, self.V, self.b)

    def logits_naive(self, x: torch.Tensor) -> torch.Tensor:
        r"""The same logits computed the slow way: :math:`W_{:, <d} x_{<d}` from scratch for
        every :math:`d`, :math:`O(D^2 H)` operations. For the speed comparison."""
        x = self._check_input(x)
        out = []
        for d in range(self.n_inputs):
            a = self.c + x[:, :d] @ self.W[:, :d].T
            out.append(self.b[d] + torch.sigmoid(a) @ self.V[d])
        return torch.stack(out, 1)

    @torch.no_grad()
    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        # the recursion again: after drawing x_d, a += W[:, d] x_d; O(DH) per sample
        x = torch.zeros(n, self.n_inputs, device=self.device, dtype=self.dtype)
        a = self.c.expand(n, -1).clone()
        for d in range(self.n_inputs):
            logit = self.b[d] + torch.sigmoid(a) @ self.V[d]
            x[:, d] = draw_levels(logit, rand((n,), generator, device=self.device,
                                              dtype=self.dtype))
            a += x[:, d:d + 1] * self.W[:, d]
        return x


class DeepNADE(DensityModel):
    r"""Order-agnostic deep NADE: an MLP on :math:`[x \odot m, m]` for every ordering at once.

    ``log_prob`` averages the densities of ``n_orderings`` fixed orderings (drawn from
    ``seed``; the first is the natural order): :math:`\log \frac1K \sum_k p_{o_k}(x)`, each
    computed exactly with :math:`D` masked passes. ``sample`` draws an ordering of the
    ensemble, then the coordinates along it. Train with :meth:`order_agnostic_loss`.

    Arguments:
        n_inputs: :math:`D` binary coordinates.
        hidden_sizes: widths of the hidden layers (ReLU).
        n_orderings: :math:`K`, orderings averaged by ``log_prob``.
        dropout: dropout after each hidden layer while training.
        seed: draws the orderings of the ensemble.

    Attributes:
        orderings: ``[K, D]`` buffer; ``orderings[k, i]`` is the coordinate that ordering
            :math:`k` generates ``i``-th.

    References:
        Uria, Murray and Larochelle (2014); Uria et al. (2016), section 4.

    Example:
        >>> model = DeepNADE(10, [32, 32], n_orderings=2)
        >>> loss = model.order_agnostic_loss(torch.ones(4, 10)).mean()
    """

    def __init__(self, n_inputs: int, hidden_sizes: Sequence[int] = (500,), *,
                 n_orderings: int = 1, dropout: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        self.n_inputs = check_int(n_inputs, "n_inputs", minimum=2)
        self.hidden_sizes = [check_int(h, "each hidden size") for h in hidden_sizes]
        self.n_orderings = check_int(n_orderings, "n_orderings")
        self.dropout = float(dropout)
        self.seed = check_seed(seed)
        d = self.n_inputs
        sizes = [2 * d, *self.hidden_sizes]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(self.dropout)]
        layers.append(nn.Linear(sizes[-1], d))
        self.net = nn.Sequential(*layers)
        g = torch.Generator().manual_seed(self.seed)
        orders = [torch.arange(d)] + [torch.randperm(d, generator=g)
                                      for _ in range(self.n_orderings - 1)]
        self.register_buffer("orderings", torch.stack(orders))

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.n_inputs])

    def _check_input(self, x: object, name: str = "x", **kwargs: object) -> torch.Tensor:
        return check_binary(super()._check_input(x, name, **kwargs), name)

    def masked_logits(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        r"""``[n, D]`` logits of :math:`p(x_j = 1 \mid x_{m})` for every :math:`j`, from the
        observed coordinates (``mask`` 1) only. Entries where ``mask`` is 1 are meaningless."""
        return self.net(torch.cat([x * mask, mask], 1))

    def order_agnostic_loss(self, x: torch.Tensor,
                            generator: torch.Generator | None = None) -> torch.Tensor:
        r"""``[n]`` unbiased estimates of the NLL averaged over orderings (Uria et al., 2016,
        eq. 24): per row, a random ordering and position :math:`d`,
        :math:`-\frac{D}{D - d + 1} \sum_{j \notin o(<d)} \log p(x_j \mid x_{o(<d)})`."""
        x = self._check_input(x)
        n, dim = x.shape
        # a random ordering and position per row amounts to a random set of d - 1 observed
        # coordinates: the d - 1 smallest of D uniform keys
        keys = rand((n, dim), generator, device=self.device, dtype=self.dtype)
        observed_count = (rand((n, 1), generator, device=self.device, dtype=self.dtype)
                          * dim).floor()  # d - 1, uniform on 0..D-1
        rank = keys.argsort(1).argsort(1).to(self.dtype)
        mask = (rank < observed_count).to(self.dtype)
        log_p = conditional_log_probs(self.masked_logits(x, mask), x)
        return -(dim / (dim - observed_count.squeeze(1))) * ((1 - mask) * log_p).sum(1)

    def log_prob_ordering(self, x: torch.Tensor, k: int = 0) -> torch.Tensor:
        r"""``[n]`` exact :math:`\log p_{o_k}(x)` along ordering ``k`` (:math:`D` passes, as one
        batch of :math:`nD` rows)."""
        x = self._check_input(x)
        k = check_int(k, "k", minimum=0)
        if k >= self.n_orderings:
            raise ValueError(f"k must be < n_orderings={self.n_orderings}, got {k}")
        return self._log_prob_ordering(x, self.orderings[k])

    def _log_prob_ordering(self, x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        n, dim = x.shape
        position = torch.empty_like(order)
        position[order] = torch.arange(dim, device=order.device)
        # mask i observes the coordinates at positions < i; it scores coordinate order[i]
        masks = (position[None, :] < torch.arange(dim, device=order.device)[:, None])
        masks = masks.to(x.dtype)  # [D, D]
        rows = self.masked_logits(x.repeat_interleave(dim, 0), masks.repeat(n, 1))
        logits = rows.reshape(n, dim, dim)[:, torch.arange(dim), order]  # [n, D] along order
        return conditional_log_probs(logits, x[:, order]).sum(1)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        each = torch.stack([self._log_prob_ordering(x, o) for o in self.orderings], 1)
        return torch.logsumexp(each, 1) - math.log(self.n_orderings)

    @torch.no_grad()
    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        was_training = self.training
        self.eval()
        try:
            pick = (rand((n,), generator, device=self.device, dtype=self.dtype)
                    * self.n_orderings).long().clamp(max=self.n_orderings - 1)
            order = self.orderings[pick]  # [n, D]: each sample follows its own ordering
            x = torch.zeros(n, self.n_inputs, device=self.device, dtype=self.dtype)
            mask = torch.zeros_like(x)
            rows = torch.arange(n, device=self.device)
            for i in range(self.n_inputs):
                d = order[:, i]
                logit = self.masked_logits(x, mask)[rows, d]
                u = rand((n,), generator, device=self.device, dtype=self.dtype)
                x[rows, d] = draw_levels(logit, u)
                mask[rows, d] = 1.0
            return x
        finally:
            self.train(was_training)


class RNADE(DensityModel):
    r"""Real-valued NADE: NADE's shared recursion with mixture-of-Gaussians conditionals.

    .. math::
        a_1 = c, \quad a_{d+1} = a_d + W_{:, d}\, x_d, \quad h_d = \mathrm{ReLU}(\rho_d\, a_d),
        \qquad p(x_d \mid x_{<d}) = \sum_{k=1}^K \pi_{dk}\, \mathcal N(x_d;\, \mu_{dk},
        \sigma_{dk}^2),

    with :math:`\pi_d = \mathrm{softmax}(V^\pi_d h_d + b^\pi_d)`,
    :math:`\mu_d = V^\mu_d h_d + b^\mu_d` and :math:`\sigma_d = \exp(V^\sigma_d h_d +
    b^\sigma_d)`, one set of output weights per coordinate.

    Arguments:
        n_inputs: :math:`D` real coordinates.
        hidden: :math:`H`.
        components: :math:`K` Gaussians per conditional.

    References:
        Uria, Murray and Larochelle (2013), eq. 3-6 (the activation rescaling :math:`\rho_d`
        of section 2).

    Example:
        >>> model = RNADE(2, hidden=16, components=3)
        >>> model.log_prob(torch.zeros(4, 2)).shape
        torch.Size([4])
    """

    def __init__(self, n_inputs: int, hidden: int = 50, components: int = 5) -> None:
        super().__init__()
        self.n_inputs = check_int(n_inputs, "n_inputs")
        self.hidden = check_int(hidden, "hidden")
        self.components = check_int(components, "components")
        d, h, k = self.n_inputs, self.hidden, self.components
        self.W = nn.Parameter(torch.empty(h, d))
        self.c = nn.Parameter(torch.zeros(h))
        self.rho = nn.Parameter(torch.ones(d))
        # output weights per coordinate for the K logits, means and log-scales: [D, 3K, H]
        self.V = nn.Parameter(torch.empty(d, 3 * k, h))
        self.b = nn.Parameter(torch.zeros(d, 3 * k))
        _uniform_(self.W, d)
        _uniform_(self.V, h)
        with torch.no_grad():  # spread the initial means so that the components differ
            self.b[:, k:2 * k] = torch.linspace(-1.5, 1.5, k)

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.n_inputs])

    def conditionals(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""``(log_weights, means, log_scales)``, each ``[n, D, K]``: the mixture of every
        conditional :math:`p(x_d \mid x_{<d})`."""
        h = torch.relu(self.rho[:, None] * _shared_preactivations(x, self.W, self.c))
        return self._mixture(torch.einsum("ndh,dkh->ndk", h, self.V) + self.b)

    def _mixture(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, means, log_scales = out.split(self.components, -1)
        return torch.log_softmax(logits, -1), means, log_scales

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        log_w, means, log_scales = self.conditionals(x)
        z = (x.unsqueeze(-1) - means) * torch.exp(-log_scales)
        log_normal = -0.5 * z.square() - log_scales - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(log_w + log_normal, -1).sum(1)

    @torch.no_grad()
    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        x = torch.zeros(n, self.n_inputs, device=self.device, dtype=self.dtype)
        a = self.c.expand(n, -1).clone()
        for d in range(self.n_inputs):
            h = torch.relu(self.rho[d] * a)
            log_w, means, log_scales = self._mixture(h @ self.V[d].T + self.b[d])
            u = rand((n,), generator, device=self.device, dtype=self.dtype)
            k = draw_levels(log_w, u).long().unsqueeze(1)  # the component, by inverse CDF
            eps = randn((n,), generator, device=self.device, dtype=self.dtype)
            x[:, d] = (means.gather(1, k).squeeze(1)
                       + log_scales.gather(1, k).squeeze(1).exp() * eps)
            a += x[:, d:d + 1] * self.W[:, d]
        return x

