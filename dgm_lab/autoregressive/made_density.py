r"""MADE as a density: Bernoulli or categorical conditionals, mask ensembles, structured masks.

:class:`~dgm_lab.autoregressive.made.MADE` is the masked network; :class:`MADEDensity` makes it
a :class:`~dgm_lab.model.DensityModel` over discrete vectors. Its output for coordinate
:math:`d` is one Bernoulli logit (``levels=2``) or the :math:`L` logits of a categorical
distribution (``levels=L``), and the masks guarantee that those logits depend only on the
coordinates before :math:`d` in the mask's ordering, so one forward pass gives every
conditional of the chain rule.

**Mask ensembles.** A MADE with ``n_masks=K`` keeps :math:`K` sets of degrees (an ordering
of the inputs, if ``random_order``, and the labels of the hidden units). Training cycles
through them, one set per step (order- and connectivity-agnostic training), and ``log_prob``
averages the :math:`K` densities, :math:`\log \frac1K \sum_k p_k(x)`: a mixture of :math:`K`
autoregressive models sharing their weights, which is again a normalised density (Germain et
al., 2015, section 4.2).

**Structured MADE.** When the data come with a graph (a Markov random field over the
coordinates), the conditional :math:`p(x_i \mid x_{<i})` depends only on the *looking-back
Markov blanket* :math:`B_i \subseteq \{<i\}`: the earlier coordinates joined to :math:`i` by a
path of the graph whose inner nodes all come after :math:`i` (summing the later coordinates
out links exactly those). :func:`looking_back_blankets` computes these sets, and
:func:`structured_made_masks` builds masks whose every hidden unit carries one of them as its
label: a unit sees the inputs of its label, a later unit sees an earlier one whose label is a
subset of its own, and output :math:`i` sees the units whose label lies inside :math:`B_i`
(Khajenezhad, Madani and Beigy, 2021). With the prefix sets :math:`\{1, \dots, m\}` as labels
this is MADE's degree rule again.

References:
    M. Germain, K. Gregor, I. Murray and H. Larochelle (2015). MADE: Masked Autoencoder for
    Distribution Estimation. ICML (section 4: masks, ordering/connectivity-agnostic training,
    ensembles of masks at test time).
    A. Khajenezhad, H. Madani and H. Beigy (2021). Masked Autoencoder for Distribution
    Estimation on Small Structured Data Sets. IEEE Transactions on Neural Networks and
    Learning Systems 32(11) (looking-back Markov blankets, MASDE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from dgm_lab._validation import check_bool, check_int, check_non_negative, check_seed
from dgm_lab.autoregressive.base import conditional_log_probs, draw_levels
from dgm_lab.autoregressive.made import MADE, made_degrees, made_masks
from dgm_lab.model import DensityModel, rand

__all__ = ["MADEDensity", "looking_back_blankets", "structured_made_masks"]


def looking_back_blankets(adjacency: torch.Tensor) -> torch.Tensor:
    r"""The looking-back Markov blankets of a Markov random field, in the natural order.

    :math:`j \in B_i` when :math:`j < i` and the graph has a path from :math:`i` to :math:`j`
    whose inner nodes are all :math:`> i`. Then :math:`p(x_i \mid x_{<i}) = p(x_i \mid
    x_{B_i})` for every distribution that factorises over the graph.

    Arguments:
        adjacency: ``[D, D]`` symmetric 0/1 (or boolean) adjacency matrix of the graph.

    Returns:
        ``[D, D]`` boolean, ``B[i, j]`` true when :math:`j \in B_i` (strictly lower triangular).

    References:
        Khajenezhad, Madani and Beigy (2021), section III.

    Example:
        >>> chain = torch.tensor([[0, 1, 0], [1, 0, 1], [0, 1, 0]])   # x0 - x1 - x2
        >>> looking_back_blankets(chain).int()
        tensor([[0, 0, 0],
                [1, 0, 0],
                [0, 1, 0]], dtype=torch.int32)
    """
    if not isinstance(adjacency, torch.Tensor) or adjacency.dim() != 2 \
            or adjacency.shape[0] != adjacency.shape[1]:
        raise ValueError("adjacency must be a square [D, D] tensor")
    adj = adjacency.bool().cpu()
    if not torch.equal(adj, adj.T):
        raise ValueError("adjacency must be symmetric (an undirected graph)")
    dim = len(adj)
    blankets = torch.zeros(dim, dim, dtype=torch.bool)
    for i in range(dim):
        # breadth-first search from i that may only pass through later nodes
        reached = adj[i].clone()
        frontier = reached & (torch.arange(dim) > i)
        while frontier.any():
            new = adj[frontier].any(0) & ~reached
            new[i] = False
            reached |= new
            frontier = new & (torch.arange(dim) > i)
        blankets[i, :i] = reached[:i]
    return blankets


def structured_made_masks(blankets: torch.Tensor, hidden_sizes: Sequence[int], *,
                          generator: torch.Generator | None = None) -> list[torch.Tensor]:
    r"""MADE masks whose output :math:`i` sees only the inputs of :math:`B_i`.

    Every hidden unit gets a label, one of the non-empty blankets :math:`B_i` (spread evenly
    over them, in a random order drawn from ``generator``). A first-layer unit sees the inputs
    in its label; a unit of a later layer sees the units of the layer below whose label is a
    subset of its own; output :math:`i` sees the last layer's units whose label is a subset
    of :math:`B_i`. So every path from input :math:`j` to output :math:`i` passes through labels
    that contain :math:`j` and lie in :math:`B_i`.

    Arguments:
        blankets: ``[D, D]`` boolean, as from :func:`looking_back_blankets` (strictly lower
            triangular, at least one non-empty row).
        hidden_sizes: widths of the hidden layers.
        generator: shuffles which unit gets which label.

    Returns:
        Float masks ``[H1, D]``, ``[H2, H1]``, ..., ``[D, HL]``, as :func:`made_masks`.
    """
    if not isinstance(blankets, torch.Tensor) or blankets.dim() != 2 \
            or blankets.shape[0] != blankets.shape[1]:
        raise ValueError("blankets must be a square [D, D] boolean tensor")
    b = blankets.bool().cpu()
    if (b & ~torch.ones_like(b).tril(-1)).any():
        raise ValueError("blankets must be strictly lower triangular: B_i holds earlier "
                         "coordinates only")
    labels = b[b.any(1)]  # the distinct non-trivial blankets, one row each
    if len(labels) == 0:
        raise ValueError("every blanket is empty: the coordinates are independent")
    labels = torch.unique(labels, dim=0)
    sizes = [check_int(h, "each hidden size") for h in hidden_sizes]
    if not sizes:
        raise ValueError("hidden_sizes must name at least one hidden layer")
    layer_labels = []
    for size in sizes:
        pick = torch.randperm(len(labels), generator=generator)
        layer_labels.append(labels[pick.repeat(size // len(labels) + 1)[:size]])

    def subset(small: torch.Tensor, large: torch.Tensor) -> torch.Tensor:
        """``[len(large), len(small)]``: is small[k] a subset of large[m]?"""
        return ~(small[None, :, :] & ~large[:, None, :]).any(-1)

    masks = [layer_labels[0].float()]  # [H1, D]: unit k sees input j when j is in its label
    for below, above in zip(layer_labels[:-1], layer_labels[1:], strict=True):
        masks.append(subset(below, above).float())
    masks.append(subset(layer_labels[-1], b).float())
    return masks


class MADEDensity(DensityModel):
    r"""MADE over :math:`D` discrete coordinates, with an ensemble of masks.

    Arguments:
        n_inputs: :math:`D`.
        hidden_sizes: widths of the hidden layers.
        levels: 2 (binary data, one Bernoulli logit per coordinate) or :math:`L > 2` (levels
            ``0..L-1``, :math:`L` categorical logits per coordinate; the network reads each
            level scaled to :math:`[-1, 1]`).
        n_masks: :math:`K`, mask sets cycled through in training and averaged by ``log_prob``.
        random_order: draw a random ordering for every mask set (order-agnostic), rather than
            the natural order for all.
        connectivity: ``"random"`` or ``"even"`` hidden degrees (see
            :func:`~dgm_lab.autoregressive.made.made_degrees`).
        structure: optional ``[D, D]`` adjacency of a graph over the coordinates: the masks
            then follow its looking-back Markov blankets (natural order; structured MADE).
        dropout: dropout after each hidden layer while training.
        seed: draws the mask sets.

    References:
        Germain et al. (2015); Khajenezhad, Madani and Beigy (2021).

    Example:
        >>> model = MADEDensity(64, [256], levels=17, n_masks=4, seed=0)
        >>> model.log_prob(torch.zeros(3, 64)).shape
        torch.Size([3])
    """

    def __init__(self, n_inputs: int, hidden_sizes: Sequence[int], *, levels: int = 2,
                 n_masks: int = 1, random_order: bool = False, connectivity: str = "random",
                 structure: torch.Tensor | None = None, dropout: float = 0.0,
                 seed: int = 0) -> None:
        super().__init__()
        self.n_inputs = check_int(n_inputs, "n_inputs", minimum=2)
        self.hidden_sizes = [check_int(h, "each hidden size") for h in hidden_sizes]
        if not self.hidden_sizes:
            raise ValueError("hidden_sizes must name at least one hidden layer")
        self.levels = check_int(levels, "levels", minimum=2)
        self.n_masks = check_int(n_masks, "n_masks")
        self.random_order = check_bool(random_order, "random_order")
        self.dropout = check_non_negative(dropout, "dropout")
        self.seed = check_seed(seed)
        outputs = 1 if self.levels == 2 else self.levels
        self.net = MADE(self.n_inputs, self.hidden_sizes, outputs_per_dim=outputs,
                        connectivity=connectivity, seed=self.seed)
        self.drop = nn.Dropout(self.dropout)
        self.connectivity = connectivity
        g = torch.Generator().manual_seed(self.seed)
        if structure is not None:
            blankets = looking_back_blankets(structure)
            if len(blankets) != self.n_inputs:
                raise ValueError(f"structure must be [{self.n_inputs}, {self.n_inputs}]")
            sets = [self._expand(structured_made_masks(blankets, self.hidden_sizes,
                                                       generator=g))
                    for _ in range(self.n_masks)]
            orders = torch.arange(self.n_inputs).expand(self.n_masks, -1)
        else:
            sets, orders = [], []
            for _ in range(self.n_masks):
                order = torch.randperm(self.n_inputs, generator=g) if self.random_order \
                    else None
                degrees = made_degrees(self.n_inputs, self.hidden_sizes, order=order,
                                       connectivity=connectivity, generator=g)
                sets.append(self._expand(made_masks(degrees)))
                orders.append(torch.argsort(degrees[0]))
            orders = torch.stack(orders)
        # the masks of every set, packed as bits (uint8): the float masks of the layers are
        # rebuilt from them, and the state_dict stores these instead of the layers' masks
        for layer, _ in enumerate(self.net.layers):
            packed = torch.stack([_pack(s[layer]) for s in sets])
            self.register_buffer(f"mask_bits_{layer}", packed)
        self.register_buffer("orderings", orders.clone())
        self.register_buffer("mask_index", torch.zeros((), dtype=torch.int64))
        self.use_mask(0)
        self.register_state_dict_post_hook(_drop_layer_masks)
        self.register_load_state_dict_pre_hook(_restore_layer_masks)

    def _expand(self, masks: list[torch.Tensor]) -> list[torch.Tensor]:
        out = self.net.outputs_per_dim  # outputs of coordinate d are rows d*k .. d*k + k - 1
        return [*masks[:-1], masks[-1].repeat_interleave(out, dim=0)]

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.n_inputs])

    def use_mask(self, k: int) -> None:
        """Set the layers' masks to mask set ``k`` (0 <= k < n_masks)."""
        k = check_int(k, "k", minimum=0)
        if k >= self.n_masks:
            raise ValueError(f"k must be < n_masks={self.n_masks}, got {k}")
        for i, layer in enumerate(self.net.layers):
            bits = getattr(self, f"mask_bits_{i}")[k]
            layer.set_mask(_unpack(bits, layer.mask.shape))
        self.mask_index.fill_(k)

    def next_mask(self) -> None:
        """Move on to the next mask set (cyclically): call once per training step."""
        self.use_mask((int(self.mask_index) + 1) % self.n_masks)

    def _check_input(self, x: object, name: str = "x", **kwargs: object) -> torch.Tensor:
        t = super()._check_input(x, name, **kwargs)
        if not (t == t.round()).all() or (t < 0).any() or (t > self.levels - 1).any():
            raise ValueError(f"{name} must hold integer levels 0..{self.levels - 1} "
                             f"(levels={self.levels})")
        return t

    def layer_masks(self, k: int) -> list[torch.Tensor]:
        """The float masks of mask set ``k``, one per layer (new tensors, not the layers')."""
        return [_unpack(getattr(self, f"mask_bits_{i}")[k], layer.mask.shape).to(layer.mask)
                for i, layer in enumerate(self.net.layers)]

    def logits(self, x: torch.Tensor, masks: Sequence[torch.Tensor] | None = None
               ) -> torch.Tensor:
        """Logits of every conditional under the current mask set (or under ``masks``, as
        from :meth:`layer_masks`): ``[n, D]`` (Bernoulli) or ``[n, D, L]`` (categorical)."""
        h = x if self.levels == 2 else x * (2.0 / (self.levels - 1)) - 1.0
        if masks is None:
            masks = [layer.mask for layer in self.net.layers]
        last = len(self.net.layers) - 1
        for i, (layer, mask) in enumerate(zip(self.net.layers, masks, strict=True)):
            # masks passed explicitly, never swapped in place: autograd keeps the mask of
            # every product it will differentiate
            h = nn.functional.linear(h, layer.weight * mask, layer.bias)
            if i < last:
                h = self.drop(self.net.activation(h))
        return h if self.levels == 2 else h.reshape(len(x), self.n_inputs, self.levels)

    def log_prob_current_mask(self, x: torch.Tensor) -> torch.Tensor:
        """``[n]`` log-density under the current mask set only (the training loss)."""
        x = self._check_input(x)
        return conditional_log_probs(self.logits(x), x).sum(1)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        each = [conditional_log_probs(self.logits(x, self.layer_masks(k)), x).sum(1)
                for k in range(self.n_masks)]
        return torch.logsumexp(torch.stack(each, 1), 1) - math.log(self.n_masks)

    @torch.no_grad()
    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        was_training, current = self.training, int(self.mask_index)
        self.eval()
        try:
            # a mixture: each sample picks its mask set, then follows that set's ordering
            u = rand((n,), generator, device=self.device, dtype=self.dtype)
            pick = (u * self.n_masks).long().clamp(max=self.n_masks - 1)
            x = torch.zeros(n, self.n_inputs, device=self.device, dtype=self.dtype)
            for k in range(self.n_masks):
                self.use_mask(k)
                rows = (pick == k).nonzero().flatten()
                xs = x[rows]
                for d in self.orderings[k].tolist():
                    logits = self.logits(xs)[:, d]
                    v = rand((len(rows),), generator, device=self.device, dtype=self.dtype)
                    xs[:, d] = draw_levels(logits, v)
                x[rows] = xs
            return x
        finally:
            self.use_mask(current)
            self.train(was_training)


def _pack(mask: torch.Tensor) -> torch.Tensor:
    """A 0/1 float mask as packed bits, ``uint8 [ceil(numel / 8)]``."""
    flat = mask.flatten().bool()
    pad = (-len(flat)) % 8
    bits = torch.cat([flat, flat.new_zeros(pad)]).reshape(-1, 8).to(torch.uint8)
    return (bits << torch.arange(8, dtype=torch.uint8)).sum(1, dtype=torch.uint8)


def _unpack(packed: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    bits = (packed[:, None] >> torch.arange(8, dtype=torch.uint8, device=packed.device)) & 1
    return bits.flatten()[:math.prod(shape)].reshape(shape).float()


def _drop_layer_masks(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                      local_metadata: Any) -> None:
    # the layers' float masks are rebuilt from mask_bits_* and mask_index: do not save them
    for key in [k for k in state_dict if k.startswith(prefix + "net.layers.")
                and k.endswith(".mask")]:
        del state_dict[key]


def _restore_layer_masks(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                         *args: Any) -> None:
    index = state_dict.get(prefix + "mask_index")
    if index is None:
        return
    for i, layer in enumerate(module.net.layers):
        key = f"{prefix}net.layers.{i}.mask"
        bits = state_dict.get(f"{prefix}mask_bits_{i}")
        if key not in state_dict and bits is not None:
            state_dict[key] = _unpack(bits[int(index)].to(layer.mask.device), layer.mask.shape)
