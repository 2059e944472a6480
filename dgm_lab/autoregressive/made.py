r"""MADE: masked layers that turn a feed-forward network into an autoregressive one.

An autoregressive model factorises a density with the chain rule,
:math:`p(x) = \prod_{d=1}^{D} p(x_{o(d)} \mid x_{o(1)}, \dots, x_{o(d-1)})`, for an ordering
:math:`o` of the dimensions. MADE (Germain et al., 2015) computes every conditional in **one
pass** of an ordinary network whose weight matrices are multiplied elementwise by binary masks:

1. every input dimension :math:`d` gets a *degree* :math:`m(d) \in \{1..D\}`, its position in
   the ordering;
2. every hidden unit :math:`k` gets a degree :math:`m(k) \in \{\min_{\text{prev}}, \dots, D - 1\}`:
   the largest input position it may see;
3. a hidden unit may receive a connection from a unit of the layer below when
   :math:`m(k) \ge m(j)` (hidden layers) and an output for dimension :math:`d` from a hidden
   unit when :math:`m(d) > m(k)` (strict: output :math:`d` never sees input :math:`d` itself).

Every path from input :math:`j` to output :math:`d` then passes through degrees that grow
from :math:`m(j)` to below :math:`m(d)`, so output :math:`d` depends only on inputs that come
earlier in the ordering: the Jacobian of the outputs with respect to the inputs, with rows and
columns sorted by the ordering, is strictly lower triangular. The tests check exactly that with
autograd.

This module holds the pieces shared by the autoregressive models of chapter 6 (MADE as a
density) and the autoregressive flows of chapter 9 (MAF, IAF): :class:`MaskedLinear`,
:func:`made_degrees`, :func:`made_masks` and the network :class:`MADE`, whose ``forward``
returns ``outputs_per_dim`` numbers for each input dimension (logits, means, log-scales, ...).
Drawing new degrees (:meth:`MADE.resample_masks`) gives order-agnostic and
connectivity-agnostic training, and an ensemble of masks at test time.

References:
    M. Germain, K. Gregor, I. Murray and H. Larochelle (2015). MADE: Masked Autoencoder for
    Distribution Estimation. ICML. Section 4 (masks from degrees, eq. 12-13).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dgm_lab._validation import check_choice, check_int, check_seed

__all__ = ["MADE", "MaskedLinear", "made_degrees", "made_masks"]


class MaskedLinear(nn.Linear):
    r"""A linear layer whose weight is multiplied by a fixed binary mask on every call.

    :math:`y = (W \odot M) x + b`. The mask is a buffer (it follows ``.to(device)`` and is
    saved in the ``state_dict``), and it is applied in ``forward`` rather than written into the
    weight, so the optimiser can never switch a masked connection back on, and changing the
    mask (:meth:`set_mask`) keeps the weights.

    Arguments:
        in_features: size of each input.
        out_features: size of each output.
        mask: ``[out_features, in_features]``, zeros and ones.
        bias: learn an additive bias (default True).

    Example:
        >>> layer = MaskedLinear(3, 2, torch.tensor([[1., 0., 0.], [1., 1., 0.]]))
        >>> layer(torch.randn(5, 3)).shape
        torch.Size([5, 2])
    """

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor,
                 bias: bool = True) -> None:
        super().__init__(check_int(in_features, "in_features"),
                         check_int(out_features, "out_features"), bias=bias)
        self.register_buffer("mask", torch.ones(out_features, in_features))
        self.set_mask(mask)

    def set_mask(self, mask: torch.Tensor) -> None:
        """Replace the mask ``[out_features, in_features]`` (values 0 or 1)."""
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        if tuple(mask.shape) != tuple(self.mask.shape):
            raise ValueError(f"mask must have shape {tuple(self.mask.shape)} "
                             f"[out_features, in_features], got {tuple(mask.shape)}")
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError("mask must hold only zeros and ones")
        self.mask.copy_(mask.to(self.mask))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


def made_degrees(n_inputs: int, hidden_sizes: Sequence[int], *,
                 order: Sequence[int] | torch.Tensor | None = None,
                 connectivity: str = "random",
                 generator: torch.Generator | None = None) -> list[torch.Tensor]:
    r"""The degrees :math:`m(\cdot)` of the input units and of every hidden layer.

    Arguments:
        n_inputs: :math:`D`, the number of input dimensions (>= 2).
        hidden_sizes: number of units of each hidden layer (each >= 1).
        order: the ordering as a permutation of ``0..D-1``: ``order[i]`` is the input
            dimension that comes ``i``-th. ``None`` keeps the natural order ``0..D-1``.
            Input dimension ``order[i]`` gets degree ``i + 1``.
        connectivity: ``"random"`` draws each hidden degree uniformly from
            :math:`\{\min_{\text{prev}}, \dots, D-1\}` (Germain et al., 2015, section 4);
            ``"even"`` spreads them evenly over that range, deterministically.
        generator: random source for ``"random"`` connectivity.

    Returns:
        ``[input degrees [D], layer-1 degrees [H1], ...]`` as int64 tensors on the CPU.

    Example:
        >>> made_degrees(3, [4], order=[2, 0, 1], connectivity="even")[0]
        tensor([2, 3, 1])
    """
    d = check_int(n_inputs, "n_inputs", minimum=2)
    sizes = [check_int(h, "each hidden size") for h in hidden_sizes]
    check_choice(connectivity, "connectivity", ("random", "even"))
    if order is None:
        perm = torch.arange(d)
    else:
        perm = torch.as_tensor(order, dtype=torch.int64)
        if perm.dim() != 1 or not torch.equal(perm.sort().values, torch.arange(d)):
            raise ValueError(f"order must be a permutation of 0..{d - 1}, got {perm.tolist()}")
    inputs = torch.empty(d, dtype=torch.int64)
    inputs[perm] = torch.arange(1, d + 1)
    degrees = [inputs]
    for size in sizes:
        low = min(int(degrees[-1].min()), d - 1)
        if connectivity == "even":
            layer = low + (torch.arange(size) * (d - low)) // size
        else:
            layer = torch.randint(low, d, (size,), generator=generator)
        degrees.append(layer)
    return degrees


def made_masks(degrees: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    r"""The masks of a MADE network from the degrees of its layers.

    Hidden layer :math:`l` gets :math:`M^{(l)}_{kj} = 1[m^{(l)}(k) \ge m^{(l-1)}(j)]`; the
    output layer gets :math:`M_{dk} = 1[m(d) > m^{(L)}(k)]` with :math:`m(d)` the input degrees
    (Germain et al., 2015, eq. 12 and 13).

    Arguments:
        degrees: ``[input degrees [D], hidden degrees [H1], ..., [HL]]`` as from
            :func:`made_degrees` (at least the input degrees).

    Returns:
        ``L + 1`` float masks, ``[H1, D]``, ``[H2, H1]``, ..., ``[D, HL]`` (``[D, D]`` when
        there is no hidden layer: a strictly triangular, fully visible model).
    """
    if len(degrees) < 1:
        raise ValueError("degrees must hold at least the input degrees")
    masks = [(later[:, None] >= earlier[None, :]).float()
             for earlier, later in zip(degrees[:-1], degrees[1:], strict=True)]
    masks.append((degrees[0][:, None] > degrees[-1][None, :]).float())
    return masks


class MADE(nn.Module):
    r"""The MADE network: an MLP whose masks make output :math:`d` depend on inputs before it.

    ``forward(x)`` maps ``[n, D]`` to ``[n, D, outputs_per_dim]``: for every dimension the
    parameters of its conditional :math:`p(x_d \mid x_{<d})` (one logit for a Bernoulli,
    ``K`` logits for a categorical, a mean and a log-scale for a Gaussian or an affine flow).
    The output units of one dimension share its degree, so all of them obey the ordering.

    Arguments:
        n_inputs: :math:`D`.
        hidden_sizes: widths of the hidden layers.
        outputs_per_dim: numbers produced per input dimension (default 1).
        order: the ordering (see :func:`made_degrees`); ``None`` is the natural order.
        connectivity: ``"random"`` or ``"even"`` hidden degrees.
        seed: seeds the random degrees (and every later :meth:`resample_masks`).
        activation: the nonlinearity between layers (a module class, default ``nn.ReLU``).

    References:
        M. Germain, K. Gregor, I. Murray and H. Larochelle (2015). MADE: Masked Autoencoder
        for Distribution Estimation. ICML.

    Example:
        >>> net = MADE(4, [32, 32], outputs_per_dim=2, seed=0)
        >>> net(torch.zeros(8, 4)).shape
        torch.Size([8, 4, 2])
    """

    def __init__(self, n_inputs: int, hidden_sizes: Sequence[int], *, outputs_per_dim: int = 1,
                 order: Sequence[int] | torch.Tensor | None = None,
                 connectivity: str = "random", seed: int = 0,
                 activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.n_inputs = check_int(n_inputs, "n_inputs", minimum=2)
        self.outputs_per_dim = check_int(outputs_per_dim, "outputs_per_dim")
        self.hidden_sizes = [check_int(h, "each hidden size") for h in hidden_sizes]
        self.connectivity = check_choice(connectivity, "connectivity", ("random", "even"))
        self._generator = torch.Generator().manual_seed(check_seed(seed))
        sizes = [self.n_inputs, *self.hidden_sizes, self.n_inputs * self.outputs_per_dim]
        self.layers = nn.ModuleList(
            MaskedLinear(a, b, torch.ones(b, a)) for a, b in zip(sizes[:-1], sizes[1:],
                                                                 strict=True))
        self.activation = activation()
        self.register_buffer("order", torch.arange(self.n_inputs))
        self.resample_masks(order)

    def resample_masks(self, order: Sequence[int] | torch.Tensor | None = None) -> None:
        """Draw new hidden degrees (and take ``order``, default the natural one) and set masks.

        Training with a new mask every few steps and averaging the conditionals of several
        masks at test time is the order/connectivity-agnostic training of Germain et al.
        """
        degrees = made_degrees(self.n_inputs, self.hidden_sizes, order=order,
                               connectivity=self.connectivity, generator=self._generator)
        masks = made_masks(degrees)
        # the outputs of dimension d are rows d*k .. d*k + k - 1: repeat its mask row k times
        masks[-1] = masks[-1].repeat_interleave(self.outputs_per_dim, dim=0)
        for layer, mask in zip(self.layers, masks, strict=True):
            layer.set_mask(mask)
        self.order.copy_(torch.argsort(degrees[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"x must have shape [n, {self.n_inputs}], got {tuple(x.shape)}")
        h = x
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        out = self.layers[-1](h)
        return out.reshape(len(x), self.n_inputs, self.outputs_per_dim)
