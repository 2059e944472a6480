r"""What every discrete autoregressive model of chapter 6 shares: the chain rule, one pass.

A model of :math:`D` discrete coordinates :math:`x_d \in \{0, \dots, L-1\}` writes the
density with the chain rule along an ordering :math:`o` of the coordinates,

.. math:: \log p(x) = \sum_{i=1}^{D} \log p(x_{o(i)} \mid x_{o(1)}, \dots, x_{o(i-1)}),

and a network computes the parameters of every conditional: one logit for a Bernoulli
(:math:`L = 2`, binary pixels) or :math:`L` logits for a categorical (the 17 grey levels of
the digits). :class:`AutoregressiveModel` turns any such network into a
:class:`~dgm_lab.model.DensityModel`. A subclass writes only ``logits(x)``, which must obey the
*autoregressive property*: the logits of coordinate :math:`o(i)` may depend on
:math:`x_{o(1)}, \dots, x_{o(i-1)}` and on nothing else. Then

* ``log_prob`` is **exact and parallel**: one call of ``logits`` on the observed :math:`x`
  gives every conditional at once (the observed values play the role of the earlier ones);
* ``sample`` is **sequential**: coordinate :math:`o(i)` can only be drawn once the earlier
  ones are known, so generation takes :math:`D` calls of ``logits`` (models with a faster
  path, such as NADE's recursion or a cached convolution, override ``_sample``).

References:
    B. J. Frey (1998). Graphical Models for Machine Learning and Digital Communication.
    MIT Press (the chain-rule factorisation of a fully visible belief network).
    H. Larochelle and I. Murray (2011). The Neural Autoregressive Distribution Estimator.
    AISTATS (exact likelihood, sequential sampling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dgm_lab._validation import check_int, generator_device
from dgm_lab.model import DensityModel, rand

__all__ = ["AutoregressiveModel", "conditional_log_probs", "draw_levels"]


def conditional_log_probs(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\log p(x_d \mid \text{its parents})` of every coordinate, from the logits.

    Arguments:
        logits: ``[n, D]`` (one Bernoulli logit per coordinate: :math:`p(x_d = 1) =
            \sigma(\text{logit})`) or ``[n, D, L]`` (categorical logits over ``L`` levels).
        x: ``[n, D]`` observed levels (0/1 for Bernoulli logits), any dtype.

    Returns:
        ``[n, D]`` log-probabilities in nats.

    Example:
        >>> conditional_log_probs(torch.zeros(1, 2), torch.tensor([[0., 1.]])).exp()
        tensor([[0.5000, 0.5000]])
    """
    if logits.dim() == 2:
        # log sigma(l) for x = 1, log(1 - sigma(l)) = log sigma(-l) for x = 0, never log(0)
        return -F.binary_cross_entropy_with_logits(logits, x.to(logits.dtype), reduction="none")
    return torch.gather(torch.log_softmax(logits, -1), -1, x.long().unsqueeze(-1)).squeeze(-1)


def draw_levels(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    r"""Draw one level per row from logits, by inverting the CDF at uniforms ``u``.

    Arguments:
        logits: ``[n]`` Bernoulli logits or ``[n, L]`` categorical logits.
        u: ``[n]`` uniform draws on :math:`[0, 1)`.

    Returns:
        ``[n]`` levels as floats (0./1. for Bernoulli), in ``logits``' dtype.
    """
    if logits.dim() == 1:
        return (u < torch.sigmoid(logits)).to(logits.dtype)
    cdf = torch.softmax(logits, -1).cumsum(-1)
    # the level is the number of CDF values at or below u; clamp guards the rounding of 1.0
    level = (cdf <= u.unsqueeze(-1)).sum(-1).clamp(max=logits.shape[-1] - 1)
    return level.to(logits.dtype)


class AutoregressiveModel(DensityModel):
    r"""A density over :math:`D` discrete coordinates computed by the chain rule.

    Subclasses implement ``logits(x)`` (``[n, D]`` levels in, ``[n, D]`` Bernoulli logits or
    ``[n, D, L]`` categorical logits out) with the autoregressive property along
    ``self.order`` (a buffer: ``order[i]`` is the coordinate generated ``i``-th).

    Arguments:
        n_inputs: :math:`D`.
        levels: :math:`L`, the number of values of each coordinate; 2 gives Bernoulli
            conditionals with one logit, more gives categorical conditionals.

    References:
        H. Larochelle and I. Murray (2011). The Neural Autoregressive Distribution Estimator.
        AISTATS, eq. 1.
    """

    def __init__(self, n_inputs: int, levels: int = 2) -> None:
        super().__init__()
        self.n_inputs = check_int(n_inputs, "n_inputs", minimum=1)
        self.levels = check_int(levels, "levels", minimum=2)
        self.register_buffer("order", torch.arange(self.n_inputs))

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.n_inputs])

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The parameters of every conditional, ``[n, D]`` or ``[n, D, L]``."""
        raise NotImplementedError

    def _check_input(self, x: object, name: str = "x", **kwargs: object) -> torch.Tensor:
        t = super()._check_input(x, name, **kwargs)
        if not (t == t.round()).all() or (t < 0).any() or (t > self.levels - 1).any():
            kind = "binary (every entry 0 or 1)" if self.levels == 2 else \
                f"integer levels 0..{self.levels - 1}"
            raise ValueError(f"{name} must be {kind} for this {type(self).__name__} "
                             f"(levels={self.levels})")
        return t

    def conditional_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        r"""``[n, D]``: :math:`\log p(x_d \mid x_{<d})` of every coordinate (nats)."""
        x = self._check_input(x)
        return conditional_log_probs(self.logits(x), x)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return conditional_log_probs(self.logits(x), x).sum(1)

    def sample_naive(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` events the naive way: one full pass of the network per coordinate.

        The draws equal those of :meth:`sample` with the same generator; models with a faster
        path (NADE's recursion, cached convolutions) use it in :meth:`sample`, and this method
        is there to measure the difference.
        """
        self._require_fitted()
        n = check_int(n, "n")
        generator_device(generator, self.device)  # checks its type
        return self._sample_naive(n, generator)

    @torch.no_grad()
    def _sample_naive(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        was_training = self.training
        self.eval()  # no dropout while sampling
        try:
            x = torch.zeros(n, self.n_inputs, device=self.device, dtype=self.dtype)
            for d in self.order.tolist():
                u = rand((n,), generator, device=self.device, dtype=self.dtype)
                x[:, d] = draw_levels(self.logits(x)[:, d], u)
            return x
        finally:
            self.train(was_training)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return self._sample_naive(n, generator)
