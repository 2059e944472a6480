r"""Unrolled GANs: the generator looks ahead at how the discriminator will answer.

A generator step of a plain GAN treats the discriminator as fixed, so the generator can move
all its mass onto whatever region the current discriminator likes best, and the discriminator
then chases it there: mode hopping. Metz et al. (2017) give the generator a surrogate loss
taken at the discriminator as it will be after :math:`K` more of its own steps,

.. math:: \theta_D^{0} = \theta_D, \qquad
          \theta_D^{k+1} = \theta_D^{k} - \eta\, \nabla_{\theta_D} L_D(\theta_D^{k}, \theta_G),
          \qquad f_K(\theta_G) = L_G\bigl(\theta_G, \theta_D^{K}(\theta_G)\bigr),

and differentiate *through* the :math:`K` steps (eq. 4-6): the gradient of :math:`f_K` has a
second term, :math:`\partial L_G / \partial \theta_D^K \cdot d\theta_D^K / d\theta_G`, that
tells the generator how the discriminator would react to its move, which penalises collapsing
onto one mode. :math:`K = 0` is the ordinary generator step. The discriminator itself is still
trained with ordinary steps; the unrolled copies exist only inside the generator's loss.

:func:`unrolled_parameters` takes the :math:`K` steps functionally (the network's own
parameters are left alone) with plain gradient descent, as in eq. 5, or with Adam continuing
from the discriminator optimiser's current moments, as the authors' implementation does.

References:
    L. Metz, B. Poole, D. Pfau and J. Sohl-Dickstein (2017). Unrolled generative adversarial
    networks. ICLR. Sec. 2.2, eq. 4-6.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from dgm_lab._validation import check_choice, check_int, check_non_negative

__all__ = ["unrolled_parameters"]

UNROLL_OPTIMIZERS = ("sgd", "adam")


def _adam_state(state: Mapping[str, dict] | None, name: str,
                p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(exp_avg, exp_avg_sq, step)`` of parameter ``name`` (zeros and 0 when it has none)."""
    s = (state or {}).get(name) or {}
    if not s:
        return torch.zeros_like(p), torch.zeros_like(p), 0.0
    return s["exp_avg"].detach(), s["exp_avg_sq"].detach(), float(s["step"])


def unrolled_parameters(discriminator: nn.Module,
                        loss: Callable[[dict[str, torch.Tensor]], torch.Tensor], steps: int, *,
                        lr: float, optimizer: str = "sgd",
                        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                        adam_state: Mapping[str, dict] | None = None,
                        create_graph: bool = True) -> dict[str, torch.Tensor]:
    r"""The discriminator's parameters after ``steps`` differentiable optimiser steps.

    Starting from ``discriminator``'s current parameters :math:`\theta_D^0`, takes
    :math:`K` = ``steps`` steps on ``loss(params)`` (a function of a name -> tensor dict, to be
    evaluated with ``torch.func.functional_call``):

    * ``"sgd"``: :math:`\theta^{k+1} = \theta^k - \eta \nabla L(\theta^k)` (Metz et al., eq. 5);
    * ``"adam"``: the update of ``torch.optim.Adam`` (no weight decay, no amsgrad), continuing
      from ``adam_state`` (name -> the optimiser's state of that parameter: ``exp_avg``,
      ``exp_avg_sq``, ``step``; absent: fresh moments).

    With ``create_graph`` the result stays a differentiable function of whatever ``loss``
    depends on besides the parameters (the generator's samples), so that a generator loss
    evaluated at the result is Metz et al.'s surrogate :math:`f_K`. The module's own parameters
    and the optimiser's state are not modified.

    Arguments:
        discriminator: the network whose named parameters are the starting point.
        loss: maps a dict of parameters (same names as ``discriminator.named_parameters()``)
            to the scalar loss the discriminator minimises.
        steps: :math:`K \ge 0` (0 returns the current parameters).
        lr: the step size :math:`\eta \ge 0` (a decayed learning rate may reach 0).
        optimizer: ``"sgd"`` or ``"adam"``.
        betas, eps: Adam's constants.
        adam_state: the discriminator optimiser's state per parameter *name* (Adam only).
        create_graph: keep the graph of every step, so the result can be differentiated
            through the unrolling (False: a plain look-ahead, cheaper).

    Returns:
        ``{name: tensor}`` of the unrolled parameters :math:`\theta_D^K`.

    References:
        L. Metz et al. (2017). Unrolled generative adversarial networks, eq. 4-6.
        D. Kingma and J. Ba (2015). Adam: a method for stochastic optimization, Algorithm 1.

    Example:
        >>> from torch.func import functional_call
        >>> d = nn.Linear(2, 1)
        >>> x = torch.randn(8, 2)
        >>> theta = unrolled_parameters(d, lambda p: functional_call(d, p, (x,)).pow(2).mean(),
        ...                             3, lr=0.1)
        >>> sorted(theta)
        ['bias', 'weight']
    """
    if not isinstance(discriminator, nn.Module):
        raise TypeError(f"discriminator must be an nn.Module, got {type(discriminator).__name__}")
    if not callable(loss):
        raise TypeError("loss must be a function of a dict of parameters")
    steps = check_int(steps, "steps", minimum=0)
    eta = check_non_negative(lr, "lr")
    check_choice(optimizer, "optimizer", UNROLL_OPTIMIZERS)
    b1, b2 = betas
    for name, b in (("betas[0]", b1), ("betas[1]", b2)):
        if not 0 <= b < 1:
            raise ValueError(f"{name} must be in [0, 1), got {b}")
    params = {n: p for n, p in discriminator.named_parameters() if p.requires_grad}
    moments = {n: _adam_state(adam_state, n, p) for n, p in params.items()}
    for _ in range(steps):
        value = loss(params)
        if not isinstance(value, torch.Tensor) or value.dim() != 0:
            raise ValueError("loss must return a scalar tensor")
        grads = torch.autograd.grad(value, list(params.values()), create_graph=create_graph)
        new = {}
        for (name, p), g in zip(params.items(), grads, strict=True):
            if optimizer == "sgd":
                new[name] = p - eta * g
                continue
            m, v, t = moments[name]
            m, v, t = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g, t + 1
            moments[name] = (m, v, t)
            # the square root's derivative is infinite at 0: clamp (a change below 1e-15,
            # far under eps) so that a zero gradient does not turn the backward pass into NaN
            denom = (v.clamp_min(1e-30).sqrt() / (1 - b2 ** t) ** 0.5) + eps
            new[name] = p - eta / (1 - b1 ** t) * m / denom
        params = new
    return params
