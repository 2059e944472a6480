r"""FVSBN: the fully visible sigmoid belief network, one logistic regression per pixel.

The simplest autoregressive model of binary data makes every conditional a logistic
regression on the coordinates before it:

.. math:: p(x_d = 1 \mid x_{<d}) = \sigma\Big(b_d + \sum_{j<d} W_{dj}\, x_j\Big),
          \qquad d = 1, \dots, D,

so :math:`W` is strictly lower triangular and the model has :math:`D(D-1)/2 + D` parameters,
against the :math:`2^D - 1` of a full probability table. Its log-likelihood is a sum of
:math:`D` logistic-regression log-likelihoods with separate parameters, so maximum likelihood
splits into :math:`D` independent convex problems: :meth:`FVSBN.fit` solves them jointly by
L-BFGS, and the tests check the answer against scikit-learn's ``LogisticRegression``.

References:
    R. M. Neal (1992). Connectionist learning of belief networks. Artificial Intelligence 56
    (the sigmoid belief network).
    B. J. Frey (1998). Graphical Models for Machine Learning and Digital Communication. MIT
    Press (the fully visible sigmoid belief network, FVSBN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dgm_lab._validation import as_float_tensor, check_binary, check_int, check_non_negative
from dgm_lab.autoregressive.base import AutoregressiveModel, conditional_log_probs

__all__ = ["FVSBN", "fvsbn_log_prob"]


def fvsbn_log_prob(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    r"""Log-probability of binary vectors under an FVSBN with the given parameters.

    :math:`\log p(x) = \sum_d \big[x_d \log \sigma(\ell_d) + (1 - x_d) \log \sigma(-\ell_d)
    \big]` with :math:`\ell_d = b_d + \sum_{j<d} W_{dj} x_j`: only the strict lower triangle of
    ``weight`` is read (the chain rule in the natural order).

    Arguments:
        x: ``[n, D]`` binary (0./1.) floating tensor.
        weight: ``[D, D]``; entries on and above the diagonal are ignored.
        bias: ``[D]``.

    Returns:
        ``[n]`` log-probabilities in nats, in the dtype of ``x``.

    References:
        Frey (1998); Larochelle and Murray (2011), eq. 1.

    Example:
        >>> fvsbn_log_prob(torch.zeros(1, 3), torch.zeros(3, 3), torch.zeros(3)).exp()
        tensor([0.1250])
    """
    x = check_binary(as_float_tensor(x, "x", ndim=2), "x")
    weight = as_float_tensor(weight, "weight", ndim=2, dtype=x.dtype, device=x.device)
    bias = as_float_tensor(bias, "bias", ndim=1, dtype=x.dtype, device=x.device)
    d = x.shape[1]
    if weight.shape != (d, d) or bias.shape != (d,):
        raise ValueError(f"weight must be [{d}, {d}] and bias [{d}] for x with {d} columns, "
                         f"got {tuple(weight.shape)} and {tuple(bias.shape)}")
    return conditional_log_probs(F.linear(x, weight.tril(-1), bias), x).sum(1)


class FVSBN(AutoregressiveModel):
    r"""Fully visible sigmoid belief network over :math:`D` binary coordinates.

    :math:`\mathrm{logit}\, p(x_d = 1 \mid x_{<d}) = b_d + \sum_{j<d} W_{dj} x_j`, in the
    natural order :math:`1, \dots, D`. ``weight`` is a full :math:`D \times D` parameter
    multiplied on every call by a strictly lower-triangular mask, so its upper triangle never
    reaches the output (and gets no gradient).

    Arguments:
        n_inputs: :math:`D`.

    Attributes:
        weight: ``[D, D]`` (only the strict lower triangle is used); bias: ``[D]``.

    References:
        B. J. Frey (1998), Graphical Models for Machine Learning and Digital Communication.

    Example:
        >>> x, _ = dgm_lab.data.load_digits("train", "binary")
        >>> model = FVSBN(64).fit(x, l2=1e-3)
        >>> -model.log_prob(x).mean()       # training NLL, nats per image
    """

    def __init__(self, n_inputs: int) -> None:
        super().__init__(check_int(n_inputs, "n_inputs"), levels=2)
        d = self.n_inputs
        self.weight = nn.Parameter(torch.zeros(d, d))
        self.bias = nn.Parameter(torch.zeros(d))
        self.register_buffer("mask", torch.ones(d, d).tril(-1))

    @property
    def n_parameters(self) -> int:
        """:math:`D(D-1)/2 + D`: the weights that can reach an output, and the biases."""
        return int(self.mask.sum().item()) + self.n_inputs

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[n, D]`` Bernoulli logits of every conditional."""
        return F.linear(x, self.weight * self.mask, self.bias)

    def penalty(self) -> torch.Tensor:
        r""":math:`\tfrac12 (\lVert W \odot M \rVert^2 + \lVert b \rVert^2)`, the L2 penalty of
        :meth:`fit` (the bias is penalised too: a pixel that is always 0 in training would
        otherwise get a logit of :math:`-\infty`)."""
        return 0.5 * ((self.weight * self.mask).square().sum() + self.bias.square().sum())

    def fit(self, x: torch.Tensor, *, l2: float = 1e-3, max_iter: int = 500,
            tol: float = 1e-9) -> FVSBN:
        r"""Penalised maximum likelihood by full-batch L-BFGS.

        Minimises :math:`-\frac1N \sum_n \log p(x_n) + l_2 \cdot \tfrac12 (\lVert W \rVert^2 +
        \lVert b \rVert^2)`: the sum of :math:`D` independent logistic regressions, each the
        objective of scikit-learn's ``LogisticRegression(C=1 / (l2 * N))`` with the intercept
        treated as a weight on a constant feature.

        Arguments:
            x: ``[N, D]`` binary training data.
            l2: the penalty :math:`l_2 \ge 0` (0: plain maximum likelihood, which diverges if
                a pixel is constant in the data).
            max_iter: at most this many L-BFGS iterations.
            tol: stop when the gradient's largest entry is below this.

        Returns:
            ``self``, trained (the parameters are replaced only when the fit succeeds).
        """
        x = check_binary(as_float_tensor(x, "x", ndim=2, dtype=self.dtype, device=self.device),
                         "x")
        if x.shape[1] != self.n_inputs:
            raise ValueError(f"x has {x.shape[1]} features but this FVSBN has "
                             f"n_inputs={self.n_inputs}")
        l2 = check_non_negative(l2, "l2")
        max_iter = check_int(max_iter, "max_iter")
        weight = self.weight.detach().clone().requires_grad_()
        bias = self.bias.detach().clone().requires_grad_()
        optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter,
                                      tolerance_grad=tol, tolerance_change=0.0,
                                      history_size=50, line_search_fn="strong_wolfe")

        def objective() -> torch.Tensor:
            optimizer.zero_grad()
            w = weight * self.mask
            nll = -conditional_log_probs(F.linear(x, w, bias), x).sum(1).mean()
            loss = nll + l2 * 0.5 * (w.square().sum() + bias.square().sum())
            loss.backward()
            return loss

        optimizer.step(objective)
        if not (torch.isfinite(weight).all() and torch.isfinite(bias).all()):
            raise FloatingPointError("FVSBN.fit diverged: use l2 > 0")
        with torch.no_grad():
            self.weight.copy_(weight * self.mask)
            self.bias.copy_(bias)
        return self
