r"""Deep Boltzmann machines: mean-field inference, persistent chains, layer-wise pre-training.

A DBM (Salakhutdinov & Hinton, 2009) stacks hidden layers like a DBN, but every connection is
undirected: with :math:`h^{(0)} = v`,

.. math::

    E(v, h^{(1)}, \dots, h^{(L)}) = -\sum_{l=1}^{L} h^{(l-1)\top} W^{(l)} h^{(l)}
      - \sum_{l=0}^{L} b^{(l)\top} h^{(l)} ,

so a hidden layer hears both its neighbours,
:math:`p(h^{(l)}_j = 1 \mid \cdot) = \sigma(b^{(l)}_j + h^{(l-1)\top} W^{(l)}_{:j} +
W^{(l+1)}_{j:} h^{(l+1)})`, and the posterior :math:`p(h \mid v)` no longer factorises. The
layers split into odd and even ones with no connection inside either group, so a DBM *is* an
RBM between its even layers (:math:`v, h^{(2)}, \dots`) and its odd layers
(:math:`h^{(1)}, h^{(3)}, \dots`): :meth:`DBM.as_rbm` builds it, which gives block Gibbs
sampling, exact :math:`\log Z` for small machines and AIS for large ones for free.

Learning follows the log-likelihood gradient, data minus model statistics, with both
expectations approximated:

* the data term by **mean-field** inference: the factorised
  :math:`q(h \mid v) = \prod_{l,j} \mu^{(l)\,h_j}_j (1 - \mu^{(l)}_j)^{1 - h_j}` that
  maximises the variational lower bound, found by iterating
  :math:`\mu^{(l)} \leftarrow \sigma(b^{(l)} + \mu^{(l-1)} W^{(l)} + \mu^{(l+1)}
  W^{(l+1)\top})` (:meth:`DBM.mean_field`);
* the model term by **persistent** Gibbs chains (Tieleman, 2008), as in PCD.

:class:`MeanFieldPCD` is that estimate as a loss for :func:`dgm_lab.train.fit`. Training
from random weights rarely works; :meth:`DBM.pretrain` first trains RBMs layer by layer,
with the doubled inputs of Salakhutdinov & Hinton (2009, section 3.1) that compensate for a
DBM layer receiving input from above and below.

DBM vs DBN: the DBN's lower layers are directed and its recognition pass is a single
bottom-up sweep; in a DBM, inference combines bottom-up and top-down signals (mean field
iterates), at the cost of an intractable posterior in both training and evaluation.

References:
    R. Salakhutdinov and G. E. Hinton (2009). Deep Boltzmann machines. AISTATS.
    R. Salakhutdinov and H. Larochelle (2010). Efficient learning of deep Boltzmann machines.
    AISTATS.
    R. Salakhutdinov and G. E. Hinton (2012). An efficient learning procedure for deep
    Boltzmann machines. Neural Computation 24(8), 1967-2006.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dgm_lab import train
from dgm_lab._validation import (
    as_float_tensor,
    check_binary,
    check_bool,
    check_int,
    check_non_negative,
    check_positive,
    check_seed,
)
from dgm_lab.energy._common import (
    LazyParameters,
    bernoulli,
    check_enumerable,
    logsumexp_over_states,
    shuffled_batches,
    softplus,
)
from dgm_lab.energy.rbm import RBM
from dgm_lab.model import DensityModel, randn

__all__ = ["DBM", "MeanFieldPCD"]


class DBM(LazyParameters, DensityModel):
    r"""A deep Boltzmann machine with binary units and ``len(hidden_sizes)`` hidden layers.

    Parameters ``weight_l`` (:math:`W^{(l)}`, ``[n_{l-1}, n_l]``, ``l = 1..L``) and
    ``bias_l`` (:math:`b^{(l)}`, ``l = 0..L``; ``bias_0`` is the visible bias); ``None`` until
    ``initialize``, ``pretrain`` or ``fit``. ``states`` arguments are lists of ``L + 1``
    tensors ``[n, n_l]``, the visible layer first.

    ``log_prob`` is exact for small machines (the units of the even or of the odd hidden
    layers, at most :data:`~dgm_lab.energy.MAX_ENUMERATION_UNITS`, are enumerated and the
    rest summed out). For larger ones :meth:`variational_bound` with an AIS estimate of
    :math:`\log Z` (``ais_log_partition(dbm.as_rbm())``) bounds it from below.

    Arguments:
        hidden_sizes: units of the hidden layers, bottom to top (at least two; with one, use
            :class:`~dgm_lab.energy.RBM`).
        init_std: standard deviation of random initial weights.
        seed: of the initial weights and of the draws in ``pretrain`` / ``fit``.
        sample_steps: Gibbs sweeps of ``sample``.
        mean_field_steps: fixed-point iterations of :meth:`mean_field`.

    References:
        Salakhutdinov & Hinton (2009).

    Example:
        >>> x, _ = dgm_lab.data.load_digits("train", "binary")
        >>> dbm = DBM([64, 32]).fit(x, pretrain_epochs=5, epochs=5)
        >>> [mu.shape for mu in dbm.mean_field(x[:3])]
        [torch.Size([3, 64]), torch.Size([3, 32])]
    """

    _fit_hint = "fit(x), pretrain(x) or initialize(x)"

    def __init__(self, hidden_sizes: Sequence[int], *, init_std: float = 0.01, seed: int = 0,
                 sample_steps: int = 1000, mean_field_steps: int = 10) -> None:
        super().__init__()
        if isinstance(hidden_sizes, (str, bytes)) or not isinstance(hidden_sizes, Sequence) \
                or len(hidden_sizes) < 2:
            raise ValueError("hidden_sizes must list at least two hidden layers, e.g. (100, 50); "
                             f"got {hidden_sizes!r} (one hidden layer is an RBM)")
        self.hidden_sizes = tuple(check_int(h, "hidden_sizes") for h in hidden_sizes)
        self.init_std = check_non_negative(init_std, "init_std")
        self.seed = check_seed(seed)
        self.sample_steps = check_int(sample_steps, "sample_steps")
        self.mean_field_steps = check_int(mean_field_steps, "mean_field_steps")
        for level in range(self.n_layers + 1):
            if level:
                self.register_parameter(f"weight_{level}", None)
            self.register_parameter(f"bias_{level}", None)
        self.history_: train.History | None = None

    # ---- parameters and sizes ----------------------------------------------------------

    @property
    def n_layers(self) -> int:
        """Hidden layers :math:`L`."""
        return len(self.hidden_sizes)

    @property
    def weights(self) -> list[torch.Tensor]:
        """:math:`[W^{(1)}, \\dots, W^{(L)}]`."""
        self._require_fitted()
        return [getattr(self, f"weight_{level}") for level in range(1, self.n_layers + 1)]

    @property
    def biases(self) -> list[torch.Tensor]:
        """:math:`[b^{(0)}, \\dots, b^{(L)}]`."""
        self._require_fitted()
        return [getattr(self, f"bias_{level}") for level in range(self.n_layers + 1)]

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """``(V, n_1, ..., n_L)``."""
        return (len(self.biases[0]), *self.hidden_sizes)

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.layer_sizes[0]])

    def _set_layers(self, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor]) -> None:
        sizes = [len(b) for b in biases]
        if sizes[1:] != list(self.hidden_sizes) or len(weights) != self.n_layers or any(
                tuple(w.shape) != (sizes[i], sizes[i + 1]) for i, w in enumerate(weights)):
            raise ValueError(f"layers of sizes {sizes} and weights "
                             f"{[tuple(w.shape) for w in weights]} do not fit hidden_sizes "
                             f"{self.hidden_sizes}")
        self._set_parameters(**{f"weight_{i + 1}": w for i, w in enumerate(weights)},
                             **{f"bias_{i}": b for i, b in enumerate(biases)})

    @classmethod
    def from_parameters(cls, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor],
                        **kwargs: object) -> DBM:
        """A DBM with weights ``[W1 [V, n1], ..., WL]`` and biases ``[b0 [V], ..., bL]``."""
        ws = [as_float_tensor(w, "weights", ndim=2) for w in weights]
        bs = [as_float_tensor(b, "biases", ndim=1, dtype=ws[0].dtype, device=ws[0].device)
              for b in biases]
        dbm = cls([len(b) for b in bs[1:]], **kwargs)  # type: ignore[arg-type]
        dbm._set_layers([w.to(bs[0]) for w in ws], bs)
        return dbm

    def initialize(self, x: torch.Tensor) -> DBM:
        """Random weights (``init_std``, from ``seed``, drawn on the CPU), zero hidden biases
        and visible biases at the data's smoothed log-odds (as :meth:`RBM.initialize`)."""
        x = check_binary(as_float_tensor(x, "x", ndim=2), "x")
        sizes = (x.shape[1], *self.hidden_sizes)
        g = torch.Generator().manual_seed(self.seed)
        weights = [randn((a, b), g, device=x.device, dtype=x.dtype) * self.init_std
                   for a, b in zip(sizes, sizes[1:], strict=False)]
        p = (x.sum(0) + 1) / (len(x) + 2)
        biases = [torch.log(p) - torch.log1p(-p)]
        biases += [torch.zeros(n, dtype=x.dtype, device=x.device) for n in self.hidden_sizes]
        self._set_layers(weights, biases)
        return self

    # ---- energy and conditionals ------------------------------------------------------

    def _check_states(self, states: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        self._require_fitted()
        if not isinstance(states, (list, tuple)) or len(states) != self.n_layers + 1:
            raise ValueError(f"states must be a list of {self.n_layers + 1} tensors (the "
                             "visible layer, then each hidden layer)")
        out = []
        for level, (s, width) in enumerate(zip(states, self.layer_sizes, strict=True)):
            t = as_float_tensor(s, f"states[{level}]", ndim=2, dtype=self.dtype,
                                device=self.device)
            if t.shape != (len(states[0]), width):
                raise ValueError(f"states[{level}] must have shape [{len(states[0])}, {width}], "
                                 f"got {tuple(t.shape)}")
            out.append(t)
        return out

    def energy(self, states: Sequence[torch.Tensor]) -> torch.Tensor:
        """:math:`E(v, h^{(1)}, \\dots, h^{(L)})` ``[n]`` of the joint states."""
        return self._energy(self._check_states(states))

    def _energy(self, states: Sequence[torch.Tensor]) -> torch.Tensor:
        e = -sum(s @ b for s, b in zip(states, self.biases, strict=True))
        for level, w in enumerate(self.weights):
            e = e - ((states[level] @ w) * states[level + 1]).sum(1)
        return e

    def _logits(self, states: Sequence[torch.Tensor], level: int) -> torch.Tensor:
        """The input to layer ``level`` from its neighbours, plus its bias."""
        weights, biases = self.weights, self.biases
        total = biases[level]
        if level > 0:
            total = total + states[level - 1] @ weights[level - 1]
        if level < self.n_layers:
            total = total + states[level + 1] @ weights[level].T
        return total

    def conditional_probs(self, states: Sequence[torch.Tensor], level: int) -> torch.Tensor:
        """:math:`p(h^{(l)} = 1 \\mid h^{(l-1)}, h^{(l+1)})` ``[n, n_l]`` (``level`` = l)."""
        states = self._check_states(states)
        level = check_int(level, "level", minimum=0)
        if level > self.n_layers:
            raise ValueError(f"level must be 0..{self.n_layers}, got {level}")
        return torch.sigmoid(self._logits(states, level))

    def gibbs_sweep(self, states: Sequence[torch.Tensor],
                    generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """One sweep of block Gibbs sampling: the odd layers given the even ones, then the
        even layers (the visible one included) given the new odd ones."""
        states = self._check_states(states)
        with torch.no_grad():
            return self._sweep(states, generator, clamp_visible=False)

    def _sweep(self, states: list[torch.Tensor], generator: torch.Generator | None, *,
               clamp_visible: bool) -> list[torch.Tensor]:
        states = list(states)
        for parity in (1, 0):
            for level in range(parity, self.n_layers + 1, 2):
                if level == 0 and clamp_visible:
                    continue
                states[level] = bernoulli(torch.sigmoid(self._logits(states, level)), generator)
        return states

    def mean_field(self, v: torch.Tensor, steps: int | None = None) -> list[torch.Tensor]:
        r"""Mean-field posterior means :math:`[\mu^{(1)}, \dots, \mu^{(L)}]` for ``v``.

        Starts from one bottom-up pass with doubled input to every layer but the top (which
        stands in for the missing top-down input; Salakhutdinov & Hinton, 2012), then iterates
        the fixed-point equations layer by layer ``steps`` times (default
        ``mean_field_steps``); each update can only raise the variational bound.

        Returns:
            ``L`` tensors ``[n, n_l]`` in (0, 1).
        """
        self._require_fitted()
        v = self._check_input(v, "v")
        steps = self.mean_field_steps if steps is None else check_int(steps, "steps",
                                                                      minimum=0)
        return self._mean_field(v, steps)

    def _mean_field(self, v: torch.Tensor, steps: int) -> list[torch.Tensor]:
        weights, biases = self.weights, self.biases
        with torch.no_grad():
            states = [v]
            for level in range(1, self.n_layers + 1):
                scale = 1.0 if level == self.n_layers else 2.0
                states.append(torch.sigmoid(scale * states[-1] @ weights[level - 1]
                                            + biases[level]))
            for _ in range(steps):
                for level in range(1, self.n_layers + 1):
                    states[level] = torch.sigmoid(self._logits(states, level))
        return states[1:]

    def encode(self, v: torch.Tensor) -> list[torch.Tensor]:
        """:meth:`mean_field` with the default number of steps."""
        return self.mean_field(v)

    # ---- the RBM between even and odd layers -------------------------------------------

    def _parity_layout(self) -> tuple[list[int], list[int]]:
        levels = range(self.n_layers + 1)
        return [lv for lv in levels if lv % 2 == 0], [lv for lv in levels if lv % 2 == 1]

    def as_rbm(self) -> RBM:
        r"""The same distribution as an RBM: visible units = the even layers
        :math:`(v, h^{(2)}, \dots)`, hidden units = the odd layers :math:`(h^{(1)},
        h^{(3)}, \dots)`, concatenated in that order. Its :math:`\log Z` is the DBM's, and its
        free energy :math:`F(v, h^{(2)}, \dots)` sums the odd layers out.

        Example:
            >>> ais_log_partition(dbm.as_rbm(), n_chains=100, betas=1000)   # log Z of the DBM
        """
        self._require_fitted()
        even, odd = self._parity_layout()
        sizes = self.layer_sizes
        start = {}
        for group in (even, odd):
            offset = 0
            for level in group:
                start[level], offset = offset, offset + sizes[level]
        w = torch.zeros(sum(sizes[lv] for lv in even), sum(sizes[lv] for lv in odd),
                        dtype=self.dtype, device=self.device)
        for level, weight in enumerate(self.weights, start=1):
            lower, upper = level - 1, level  # one of them is even, the other odd
            block = weight.detach() if lower % 2 == 0 else weight.detach().T
            e, o = (lower, upper) if lower % 2 == 0 else (upper, lower)
            w[start[e]:start[e] + sizes[e], start[o]:start[o] + sizes[o]] = block
        biases = [b.detach() for b in self.biases]
        return RBM.from_parameters(w, torch.cat([biases[lv] for lv in even]),
                                   torch.cat([biases[lv] for lv in odd]))

    def log_partition(self) -> torch.Tensor:
        """Exact :math:`\\log Z` through :meth:`as_rbm` (one parity class of layers must have at
        most :data:`~dgm_lab.energy.MAX_ENUMERATION_UNITS` units)."""
        return self.as_rbm().log_partition()

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        v = check_binary(x, "x")
        rbm = self.as_rbm()
        n_v, n_rest = len(v), rbm.n_visible - v.shape[1]
        log_z = rbm.log_partition()
        enumerate_even = n_rest <= rbm.n_hidden  # enumerate the smaller group of hidden units
        width = n_rest if enumerate_even else rbm.n_hidden
        check_enumerable(width, "summing out the hidden layers of this DBM")
        if enumerate_even:

            def score(rest: torch.Tensor) -> torch.Tensor:  # even hidden units -> [m, n]
                full = torch.cat([v.repeat(len(rest), 1), rest.repeat_interleave(n_v, 0)], 1)
                return -rbm._free_energy(full).reshape(len(rest), n_v)
        else:
            w_v, w_rest = rbm.weight[:v.shape[1]], rbm.weight[v.shape[1]:]
            b_v, b_rest = rbm.visible_bias[:v.shape[1]], rbm.visible_bias[v.shape[1]:]

            def score(odd: torch.Tensor) -> torch.Tensor:  # odd units -> [m, n]
                own = odd @ rbm.hidden_bias + softplus(odd @ w_rest.T + b_rest).sum(1)
                return own[:, None] + (odd @ w_v.T) @ v.T + (v @ b_v)[None, :]
        return logsumexp_over_states(width, score, dtype=self.dtype, device=self.device) - log_z

    def variational_bound(self, v: torch.Tensor, log_z: float | torch.Tensor, *,
                          steps: int | None = None) -> torch.Tensor:
        r"""The mean-field lower bound on :math:`\log p(v)` ``[n]``:

        .. math::

            \log p(v) \ge -E(v, \mu^{(1)}, \dots, \mu^{(L)}) + \sum_l \mathcal H(\mu^{(l)})
            - \log Z,

        exact in the expectation of the energy because :math:`E` is linear in each layer and
        :math:`q` factorises over units.

        Arguments:
            v: ``[n, V]`` binary data.
            log_z: :math:`\log Z` (exact, or an AIS estimate from :meth:`as_rbm`).
            steps: mean-field iterations (default ``mean_field_steps``).

        References:
            Salakhutdinov & Hinton (2009), equation 7.
        """
        v = check_binary(self._check_input(v, "v"), "v")
        mu = self.mean_field(v, steps)
        with torch.no_grad():
            entropy = sum(-(torch.xlogy(m, m) + torch.xlogy(1 - m, 1 - m)).sum(1) for m in mu)
            return -self._energy([v, *mu]) + entropy - torch.as_tensor(log_z).to(v)

    # ---- sampling ----------------------------------------------------------------------

    def sample_chains(self, n: int, n_steps: int, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` chains of ``n_steps`` Gibbs sweeps from random states: returns the visible
        samples ``[n, V]`` and :math:`p(v = 1 \\mid h^{(1)})` they were drawn from."""
        self._require_fitted()
        n, n_steps = check_int(n, "n"), check_int(n_steps, "n_steps")
        with torch.no_grad():
            states = [bernoulli(torch.sigmoid(b.detach()).expand(n, -1), generator)
                      for b in self.biases]
            for _ in range(n_steps):
                states = self._sweep(states, generator, clamp_visible=False)
            return states[0], torch.sigmoid(self._logits(states, 0))

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.sample_chains(n, self.sample_steps, generator)[0]

    # ---- training ----------------------------------------------------------------------

    def pretrain(self, x: torch.Tensor, *, epochs: int = 50, batch_size: int = 20,
                 lr: float = 0.05, momentum: float = 0.5, weight_decay: float = 0.0,
                 n_chains: int | None = None) -> DBM:
        """Greedy layer-wise pre-training with doubled inputs (Salakhutdinov & Hinton, 2009,
        section 3.1; 2012, section 4).

        A DBM's hidden layer receives input from both neighbours, an RBM's from one. So the
        bottom RBM is trained with two tied copies of the visible layer (its hidden units see
        :math:`2 v^\\top W`), the top RBM with two tied copies of its hidden layer, and middle
        RBMs with both; each is trained by PCD on samples of the layer below. The DBM then
        takes every weight matrix as it is, and for each hidden layer the mean of the biases
        the RBMs above and below learnt for it (the average of the two conditionals' log-odds).

        Returns:
            ``self``.
        """
        x = check_binary(as_float_tensor(x, "x", ndim=2), "x")
        sizes = (x.shape[1], *self.hidden_sizes)
        generator = torch.Generator().manual_seed(self.seed)
        layer_data, weights, ups, downs = x, [], [], []
        for level in range(1, self.n_layers + 1):
            copies_below = 2 if level == 1 or level < self.n_layers else 1
            copies_above = 2 if level == self.n_layers or level > 1 else 1
            rbm = RBM(sizes[level], init_std=self.init_std, seed=self.seed + level)
            _train_doubled(rbm, layer_data, copies_below, copies_above, epochs=epochs,
                           batch_size=batch_size, lr=lr, momentum=momentum,
                           weight_decay=weight_decay, n_chains=n_chains)
            weights.append(rbm.weight.detach())
            ups.append(rbm.hidden_bias.detach())
            downs.append(rbm.visible_bias.detach())
            with torch.no_grad():  # the next RBM sees samples of this layer
                probs = torch.sigmoid(copies_below * layer_data @ rbm.weight + rbm.hidden_bias)
                layer_data = bernoulli(probs, generator)
        biases = [downs[0]]
        biases += [(ups[i] + downs[i + 1]) / 2 for i in range(self.n_layers - 1)]
        biases.append(ups[-1])
        self._set_layers(weights, biases)
        return self

    def fit(self, x: torch.Tensor, *, pretrain_epochs: int = 50, epochs: int = 50,
            batch_size: int = 20, lr: float = 0.01, momentum: float = 0.5,
            weight_decay: float = 0.0, n_chains: int = 100, gibbs_steps: int = 1,
            anneal_lr: bool = True, progress: bool = False) -> DBM:
        """Pre-train (:meth:`pretrain`, with ``lr * 5``) then train jointly with
        :class:`MeanFieldPCD` and SGD (the learning rate decaying linearly to 0 when
        ``anneal_lr``).

        Arguments:
            x: ``[n, V]`` binary data.
            pretrain_epochs: epochs of each pre-training RBM (0: start from random weights).
            epochs, batch_size, lr, momentum, weight_decay: of the joint training.
            n_chains, gibbs_steps: persistent chains and Gibbs sweeps per update.
            anneal_lr, progress: as :meth:`RBM.fit`.

        Returns:
            ``self``, with ``history_``.
        """
        x = check_binary(as_float_tensor(x, "x", ndim=2), "x")
        check_bool(anneal_lr, "anneal_lr")
        epochs = check_int(epochs, "epochs")
        pretrain_epochs = check_int(pretrain_epochs, "pretrain_epochs", minimum=0)
        if pretrain_epochs:
            self.pretrain(x, epochs=pretrain_epochs, batch_size=batch_size, lr=5 * lr,
                          momentum=momentum, weight_decay=weight_decay)
        else:
            self.initialize(x)
        loss = MeanFieldPCD(n_chains, gibbs_steps=gibbs_steps, weight_decay=weight_decay,
                            generator=torch.Generator().manual_seed(self.seed))
        optimizer = torch.optim.SGD(self.parameters(), lr=check_positive(lr, "lr"),
                                    momentum=check_non_negative(momentum, "momentum"))
        scheduler = (torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1 - e / epochs)
                     if anneal_lr else None)
        batches = shuffled_batches(x, check_int(batch_size, "batch_size"), self.seed)
        self.history_ = train.fit(self, loss, batches, epochs=epochs, optimizer=optimizer,
                                  scheduler=scheduler, seed=self.seed, device=x.device,
                                  progress=progress)
        return self

    def extra_repr(self) -> str:
        return f"hidden_sizes={self.hidden_sizes}"


class MeanFieldPCD:
    r"""The DBM learning signal as a loss for :func:`dgm_lab.train.fit`: mean field for the
    data term, persistent Gibbs chains for the model term.

    ``loss(dbm, v)`` returns :math:`\overline{E(v, \mu)} - \overline{E(\tilde x)}` (plus
    :math:`\frac\lambda2 \sum_l \lVert W^{(l)} \rVert^2`), with :math:`\mu` the mean-field
    means for the batch and :math:`\tilde x` the states of the persistent chains after
    ``gibbs_steps`` more sweeps, both held fixed. Its gradient with respect to
    :math:`W^{(l)}` is :math:`-(\overline{\mu^{(l-1)} \mu^{(l)\top}} - \overline{\tilde
    h^{(l-1)} \tilde h^{(l)\top}})`: a descent step is the update of Salakhutdinov & Hinton
    (2009, algorithm 1).

    Arguments:
        n_chains: number of persistent chains (``M`` fantasy particles).
        gibbs_steps: sweeps per update.
        weight_decay: L2 penalty on the weights.
        generator: for repeatable draws.

    Attributes:
        chains: the chains' states (``None`` before the first update, which starts them from
            random states of the biases-only model).
    """

    def __init__(self, n_chains: int = 100, *, gibbs_steps: int = 1, weight_decay: float = 0.0,
                 generator: torch.Generator | None = None) -> None:
        self.n_chains = check_int(n_chains, "n_chains")
        self.gibbs_steps = check_int(gibbs_steps, "gibbs_steps")
        self.weight_decay = check_non_negative(weight_decay, "weight_decay")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, "
                            f"got {type(generator).__name__}")
        self.generator = generator
        self.chains: list[torch.Tensor] | None = None

    def __call__(self, dbm: nn.Module, v: torch.Tensor) -> torch.Tensor:
        if not isinstance(dbm, DBM):
            raise TypeError(f"MeanFieldPCD trains a DBM, got {type(dbm).__name__}")
        mu = dbm._mean_field(v, dbm.mean_field_steps)
        with torch.no_grad():
            if self.chains is None:
                self.chains = [bernoulli(torch.sigmoid(b.detach()).expand(self.n_chains, -1),
                                         self.generator) for b in dbm.biases]
            for _ in range(self.gibbs_steps):
                self.chains = dbm._sweep(self.chains, self.generator, clamp_visible=False)
        loss = dbm._energy([v, *mu]).mean() - dbm._energy(self.chains).mean()
        if self.weight_decay:
            loss = loss + 0.5 * self.weight_decay * sum(w.square().sum() for w in dbm.weights)
        return loss


def _train_doubled(rbm: RBM, x: torch.Tensor, copies_below: int, copies_above: int, *,
                   epochs: int, batch_size: int, lr: float, momentum: float,
                   weight_decay: float, n_chains: int | None) -> None:
    r"""PCD training of an RBM whose visible layer has ``copies_below`` tied copies and whose
    hidden layer has ``copies_above`` (the pre-training RBMs of a DBM).

    With :math:`m_v` visible and :math:`m_h` hidden copies, only the sums
    :math:`s_v = \sum v^{(c)} \in \{0..m_v\}^V` and :math:`s_h` matter:
    :math:`s_h \mid s_v \sim \text{Binomial}(m_h, \sigma(c + W^\top s_v))`,
    :math:`s_v \mid s_h \sim \text{Binomial}(m_v, \sigma(b + W s_h))`, and the free energy is
    :math:`F(s_v) = -b^\top s_v - m_h \sum_j \operatorname{softplus}(c_j + s_v^\top W_{:j})`.
    The data set every visible copy to the data, :math:`s_v = m_v v`.
    """
    rbm.initialize(x)
    generator = torch.Generator().manual_seed(rbm.seed)

    def binomial(copies: int, probs: torch.Tensor) -> torch.Tensor:
        return sum(bernoulli(probs, generator) for _ in range(copies))

    def free_energy(model: RBM, s_v: torch.Tensor) -> torch.Tensor:
        hidden = softplus(s_v @ model.weight + model.hidden_bias).sum(1)
        return -s_v @ model.visible_bias - copies_above * hidden

    chain: list[torch.Tensor] = []

    def loss(model: RBM, v: torch.Tensor) -> torch.Tensor:
        s_data = copies_below * v
        with torch.no_grad():
            if not chain:
                start = s_data[torch.arange(n_chains or len(v), device=v.device) % len(v)]
                chain.append(binomial(copies_above,
                                      torch.sigmoid(start @ model.weight + model.hidden_bias)))
            s_v = binomial(copies_below, torch.sigmoid(chain[0] @ model.weight.T
                                                       + model.visible_bias))
            chain[0] = binomial(copies_above, torch.sigmoid(s_v @ model.weight
                                                            + model.hidden_bias))
        out = free_energy(model, s_data).mean() - free_energy(model, s_v).mean()
        return out + 0.5 * weight_decay * model.weight.square().sum()

    optimizer = torch.optim.SGD(rbm.parameters(), lr=lr, momentum=momentum)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1 - e / epochs)
    train.fit(rbm, loss, shuffled_batches(x, batch_size, rbm.seed), epochs=epochs,
              optimizer=optimizer, scheduler=scheduler, seed=rbm.seed, device=x.device,
              progress=False)
