r"""Deep belief networks: directed sigmoid layers under an RBM, trained greedily.

A DBN with hidden layers :math:`h^{(1)}, \dots, h^{(L)}` (Hinton, Osindero & Teh, 2006) is a
hybrid graphical model. Its top two layers form an RBM, an undirected prior over
:math:`h^{(L-1)}`; every layer below is generated from the one above by a directed sigmoid
layer:

.. math::

    p(v, h^{(1)}, \dots, h^{(L)}) = p(v \mid h^{(1)})\, p(h^{(1)} \mid h^{(2)}) \cdots
    p(h^{(L-2)} \mid h^{(L-1)})\; p_\text{RBM}(h^{(L-1)}, h^{(L)}),
    \qquad p(h^{(l-1)}_i = 1 \mid h^{(l)}) = \sigma\big(b^{(l)}_i + W^{(l)}_{i:} h^{(l)}\big),

with :math:`h^{(0)} = v`. **Greedy layer-wise training** fits an RBM to the data, then a
second RBM to samples of the first one's hidden units :math:`h^{(1)} \sim q(h^{(1)} \mid v)
= \sigma(c^{(1)} + v^\top W^{(1)})`, and so on: each RBM ``l`` supplies the generative weights
:math:`W^{(l)}, b^{(l)}` of its layer and its recognition biases :math:`c^{(l)}`.

Why adding a layer can help: for any :math:`q`, by Jensen's inequality,

.. math::

    \log p(v) \ge \mathbb E_{q(h^{(1)} \mid v)}\big[\log p(v \mid h^{(1)})
      + \log p(h^{(1)})\big] + \mathcal H\big(q(h^{(1)} \mid v)\big),

and with one RBM and its own :math:`q` the bound is tight. The second RBM replaces the
first RBM's implicit prior :math:`p(h^{(1)})` by a model trained to maximise the middle
term, so the bound can only go up if that training succeeds (Hinton et al., 2006, section 4).
:meth:`DBN.variational_bound` computes the bound (:math:`\log Z` of the top RBM from
:func:`dgm_lab.energy.ais_log_partition`).

Sampling: Gibbs sampling in the top RBM, then one ancestral pass down the directed layers.

References:
    G. E. Hinton, S. Osindero and Y.-W. Teh (2006). A fast learning algorithm for deep belief
    nets. Neural Computation 18(7), 1527-1554.
    R. Salakhutdinov and I. Murray (2008). On the quantitative analysis of deep belief
    networks. ICML (the bound, estimated with AIS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dgm_lab._validation import (
    as_float_tensor,
    check_binary,
    check_bool,
    check_int,
    check_seed,
)
from dgm_lab.energy._common import bernoulli, check_enumerable, logsumexp_over_states
from dgm_lab.energy.rbm import RBM
from dgm_lab.model import DensityModel

__all__ = ["DBN", "bernoulli_log_prob", "bernoulli_entropy"]


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    r""":math:`\sum_i \log p(x_i)` under independent Bernoullis with the given logits
    ``[..., D]`` (:math:`x_i \log \sigma(a_i) + (1 - x_i) \log \sigma(-a_i)`), ``[...]``."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def bernoulli_entropy(logits: torch.Tensor) -> torch.Tensor:
    r"""Entropy (nats) of independent Bernoullis with the given logits ``[..., D]``, ``[...]``."""
    p = torch.sigmoid(logits)
    return F.binary_cross_entropy_with_logits(logits, p, reduction="none").sum(-1)


class DBN(DensityModel):
    r"""A deep belief network: an RBM on top of directed sigmoid layers.

    ``rbms[l]`` connects layer ``l`` to layer ``l + 1`` (layer 0 is the data). The last one
    is the undirected top; the others give the generative conditionals
    :math:`p(h^{(l)} \mid h^{(l+1)})` (their weights and *visible* biases) and the
    recognition conditionals :math:`q(h^{(l+1)} \mid h^{(l)})` (their weights and *hidden*
    biases). With one hidden layer a DBN is an RBM.

    ``log_prob`` is exact for small networks (all directed hidden layers together at most
    :data:`~dgm_lab.energy.MAX_ENUMERATION_UNITS` units, and a top RBM whose
    :math:`\log Z` can be enumerated); for larger ones use :meth:`variational_bound`.

    Arguments:
        hidden_sizes: units of the hidden layers, bottom to top (at least one layer).
        init_std, sample_steps: as :class:`~dgm_lab.energy.RBM` (``sample_steps``: Gibbs
            steps in the top RBM before the pass down).
        seed: layer ``l`` is seeded ``seed + l``.

    References:
        Hinton, Osindero & Teh (2006).

    Example:
        >>> x, _ = dgm_lab.data.load_digits("train", "binary")
        >>> dbn = DBN([64, 32]).fit(x, epochs=5)
        >>> dbn.sample(4).shape
        torch.Size([4, 64])
    """

    _fit_hint = "fit(x) or DBN.from_rbms(rbms)"

    def __init__(self, hidden_sizes: Sequence[int], *, init_std: float = 0.01, seed: int = 0,
                 sample_steps: int = 1000) -> None:
        super().__init__()
        if isinstance(hidden_sizes, (str, bytes)) or not isinstance(hidden_sizes, Sequence) \
                or not hidden_sizes:
            raise TypeError("hidden_sizes must be a non-empty sequence of layer sizes, e.g. "
                            f"(100, 50); got {hidden_sizes!r}")
        self.hidden_sizes = tuple(check_int(h, "hidden_sizes") for h in hidden_sizes)
        self.seed = check_seed(seed)
        self.sample_steps = check_int(sample_steps, "sample_steps")
        self.rbms = nn.ModuleList(RBM(h, init_std=init_std, seed=self.seed + i,
                                      sample_steps=sample_steps)
                                  for i, h in enumerate(self.hidden_sizes))

    @classmethod
    def from_rbms(cls, rbms: Sequence[RBM], **kwargs: object) -> DBN:
        """A DBN made of trained RBMs, bottom first (each one's visible layer is the previous
        one's hidden layer)."""
        if not rbms or not all(isinstance(r, RBM) and r.is_fitted for r in rbms):
            raise TypeError("rbms must be a non-empty sequence of fitted RBMs")
        for below, above in zip(rbms, rbms[1:], strict=False):
            if above.n_visible != below.n_hidden:
                raise ValueError(f"an RBM with {above.n_visible} visible units cannot sit on "
                                 f"one with {below.n_hidden} hidden units")
        dbn = cls([r.n_hidden for r in rbms], **kwargs)  # type: ignore[arg-type]
        for mine, given in zip(dbn.rbms, rbms, strict=True):
            mine.load_state_dict(given.state_dict())  # copies: the stack owns its layers
        return dbn

    @property
    def is_fitted(self) -> bool:
        """Whether every RBM of the stack is fitted."""
        return all(r.is_fitted for r in self.rbms)

    @property
    def event_shape(self) -> torch.Size:
        self._require_fitted()  # names the DBN, not its first RBM, when unfitted
        return self.rbms[0].event_shape

    @property
    def top(self) -> RBM:
        """The top RBM, over the last two layers."""
        return self.rbms[-1]

    # ---- training ----------------------------------------------------------------------

    def fit(self, x: torch.Tensor, *, epochs: int = 50, tied_start: bool = True,
            upper: Mapping[str, object] | None = None, **fit_kwargs: object) -> DBN:
        """Greedy layer-wise training (Hinton et al., 2006, section 4).

        RBM 0 is fitted to ``x``; RBM ``l`` to samples of layer ``l`` drawn upwards through
        the recognition conditionals of the RBMs below, a fresh sample for every batch.

        With ``tied_start``, an RBM with as many hidden units as the layer below it has starts
        from the RBM below turned upside down (weights transposed, biases swapped). The new
        stack then defines the same :math:`p(v)` as before, its variational bound equals the
        old log-likelihood, and training the new top RBM raises the bound: the argument of
        Hinton et al. (2006, section 4) that each added layer can only help. From random
        weights the bound can instead start (and stay) below the old likelihood.

        A tied start is already a good model, so the upper RBMs want gentler training than the
        first (``upper``): with the first RBM's learning rate and persistent chains the top
        RBM wanders off its start and the bound falls, on the training data too; a smaller
        rate with CD-1 raises it (``benchmarks/ch04_results.py`` has the figures).

        Arguments:
            x: ``[n, V]`` binary data.
            epochs: epochs of each RBM.
            tied_start: start an RBM from the transposed one below where the sizes allow.
            upper: arguments of :meth:`RBM.fit` for the RBMs above the first, overriding
                ``fit_kwargs`` (e.g. ``{"lr": 0.01, "persistent": False}``).
            fit_kwargs: passed to every :meth:`RBM.fit` (``lr``, ``batch_size``, ``k``, ...).

        Returns:
            ``self``.
        """
        x = check_binary(as_float_tensor(x, "x", ndim=2), "x")
        check_bool(tied_start, "tied_start")
        if upper is not None and not isinstance(upper, Mapping):
            raise TypeError(f"upper must be a dict of RBM.fit arguments or None, "
                            f"got {type(upper).__name__}")
        generator = torch.Generator().manual_seed(self.seed)
        for level, rbm in enumerate(self.rbms):
            def up(batch: torch.Tensor, level: int = level) -> torch.Tensor:
                return self._sample_up(batch, level, generator)[-1]
            below = self.rbms[level - 1] if level else None
            warm = bool(tied_start and below is not None and below.n_visible == rbm.n_hidden)
            if warm:
                rbm._set_parameters(weight=below.weight.T.contiguous(),
                                    visible_bias=below.hidden_bias,
                                    hidden_bias=below.visible_bias)
            options = {**fit_kwargs, **(upper or {})} if level else fit_kwargs
            rbm.fit(x, epochs=epochs, transform=up if level else None, warm_start=warm,
                    **options)  # type: ignore[arg-type]
        return self

    # ---- the two directions --------------------------------------------------------------

    def _sample_up(self, v: torch.Tensor, levels: int,
                   generator: torch.Generator | None) -> list[torch.Tensor]:
        """``[v, h1, ..., h_levels]``: binary recognition samples up to layer ``levels``."""
        layers = [v]
        with torch.no_grad():
            for rbm in self.rbms[:levels]:
                layers.append(bernoulli(rbm._hidden_probs(layers[-1]), generator))
        return layers

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        """The recognition pass with probabilities instead of samples: the top layer's
        activation probabilities ``[n, H_L]``, a feature vector for ``v``."""
        self._require_fitted()
        h = self._check_input(v, "v")
        with torch.no_grad():
            for rbm in self.rbms:
                h = rbm._hidden_probs(h)
        return h

    def decode(self, h: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One ancestral pass down from a state ``h`` of layer ``L - 1`` (the top RBM's visible
        layer): binary samples at every directed layer, probabilities
        :math:`p(v = 1 \\mid h^{(1)})` at the bottom, ``[n, V]``."""
        self._require_fitted()
        h = as_float_tensor(h, "h", ndim=2, dtype=self.dtype, device=self.device)
        if h.shape[1] != self.top.n_visible:
            raise ValueError(f"h must have {self.top.n_visible} units (the layer below the top "
                             f"RBM's hidden layer), got {h.shape[1]}")
        with torch.no_grad():
            for rbm in reversed(self.rbms[1:-1]):
                h = bernoulli(rbm._visible_probs(h), generator)
            if len(self.rbms) == 1:
                return h
            return self.rbms[0]._visible_probs(h)

    def sample_chains(self, n: int, n_steps: int, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` samples after ``n_steps`` Gibbs steps in the top RBM (from its biases-only
        model) and one pass down: ``(v [n, V]`` binary, ``v_probs [n, V])``."""
        self._require_fitted()
        n = check_int(n, "n")
        top = self.top
        start = bernoulli(torch.sigmoid(top.visible_bias.detach()).expand(n, -1), generator)
        h, probs = top.gibbs_chain(start, n_steps, generator)
        if len(self.rbms) > 1:
            probs = self.decode(h, generator)
        return bernoulli(probs, generator), probs

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.sample_chains(n, self.sample_steps, generator)[0]

    # ---- likelihood and its bound --------------------------------------------------------

    def _directed_log_prob(self, layers: list[torch.Tensor]) -> torch.Tensor:
        """:math:`\\sum_l \\log p(h^{(l-1)} \\mid h^{(l)})` over the directed layers."""
        total = torch.zeros(len(layers[0]), dtype=layers[0].dtype, device=layers[0].device)
        for level, rbm in enumerate(self.rbms[:-1]):
            logits = layers[level + 1] @ rbm.weight.T + rbm.visible_bias
            total = total + bernoulli_log_prob(layers[level], logits)
        return total

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        v = check_binary(x, "x")
        if len(self.rbms) == 1:
            return self.top._log_prob(v)
        widths = [r.n_hidden for r in self.rbms[:-1]]
        check_enumerable(sum(widths), "summing out the directed hidden layers of this DBN")
        log_z_top = self.top.log_partition()
        bounds = torch.tensor(widths).cumsum(0).tolist()

        def score(states: torch.Tensor) -> torch.Tensor:  # [m, sum(widths)] -> [m, n]
            hidden = list(torch.tensor_split(states, bounds[:-1], dim=1))
            m, n = len(states), len(v)
            layers = [v.repeat(m, 1)] + [h.repeat_interleave(n, 0) for h in hidden]
            log_top = -self.top._free_energy(layers[-1]) - log_z_top
            return (self._directed_log_prob(layers) + log_top).reshape(m, n)

        return logsumexp_over_states(sum(widths), score, dtype=self.dtype, device=self.device)

    def variational_bound(self, v: torch.Tensor, log_z_top: float | torch.Tensor, *,
                          n_samples: int = 10,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        r"""A Monte Carlo estimate of the variational lower bound on :math:`\log p(v)`.

        .. math::

            \mathbb E_q\Big[\log p(v \mid h^{(1)}) + \sum_{l=2}^{L-1}
            \log p(h^{(l-1)} \mid h^{(l)}) - F_\text{top}(h^{(L-1)}) - \log Z_\text{top}\Big]
            + \mathbb E_q\Big[\sum_{l=1}^{L-1} \mathcal H\big(q(h^{(l)} \mid h^{(l-1)})\big)\Big]

        with :math:`q` the recognition conditionals and :math:`F_\text{top}` the free energy
        of the top RBM (its hidden layer summed out). The entropies are exact given the layer
        below (which lowers the variance); the expectation averages ``n_samples`` upward
        samples. With one hidden layer this is :math:`\log p(v)` itself.

        Arguments:
            v: ``[n, V]`` binary data.
            log_z_top: :math:`\log Z` of the top RBM (``self.top.log_partition()`` when small,
                else an AIS estimate).
            n_samples: upward samples per example.
            generator: for repeatable draws.

        Returns:
            ``[n]`` bounds in nats (their mean over a test set bounds the mean test
            log-likelihood from below, up to the Monte Carlo and AIS errors).

        References:
            Hinton et al. (2006), section 4; Salakhutdinov & Murray (2008), section 5.
        """
        v = check_binary(self._check_input(v, "v"), "v")
        n_samples = check_int(n_samples, "n_samples")
        log_z_top = torch.as_tensor(log_z_top, dtype=self.dtype, device=self.device)
        levels = len(self.rbms) - 1
        with torch.no_grad():
            if levels == 0:
                return -self.top._free_energy(v) - log_z_top
            layers = self._sample_up(v.repeat(n_samples, 1), levels, generator)  # all at once
            entropy = sum(bernoulli_entropy(layers[i] @ rbm.weight + rbm.hidden_bias)
                          for i, rbm in enumerate(self.rbms[:levels]))
            terms = self._directed_log_prob(layers) - self.top._free_energy(layers[-1]) + entropy
            return terms.reshape(n_samples, len(v)).mean(0) - log_z_top

    def extra_repr(self) -> str:
        return f"hidden_sizes={self.hidden_sizes}"
