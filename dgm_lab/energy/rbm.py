r"""Restricted Boltzmann machines: block Gibbs sampling, free energy, CD-k and PCD.

An RBM (Smolensky, 1986; Hinton, 2002) is a Boltzmann machine whose units form two layers,
visible :math:`v \in \{0,1\}^V` and hidden :math:`h \in \{0,1\}^H`, with connections only
between the layers:

.. math::

    E(v, h) = -v^\top W h - b^\top v - c^\top h, \qquad
    p(v, h) = \frac{e^{-E(v, h)}}{Z} .

Because no two units of a layer are connected, each layer is conditionally independent given
the other, and the conditionals are logistic:

.. math::

    p(h_j = 1 \mid v) = \sigma(c_j + v^\top W_{:j}), \qquad
    p(v_i = 1 \mid h) = \sigma(b_i + W_{i:} h),

so a Gibbs sampler redraws a whole layer at once (**block Gibbs sampling**). Summing the
hidden units out gives the **free energy** :math:`F(v)`, with
:math:`p(v) = e^{-F(v)} / Z`:

.. math::

    F(v) = -b^\top v - \sum_{j=1}^H \log\big(1 + e^{c_j + v^\top W_{:j}}\big) .

The log-likelihood gradient is again data minus model statistics,
:math:`\partial \log p(v) / \partial W = v\, \sigma(c + W^\top v)^\top -
\mathbb E_{p}[v\, \sigma(c + W^\top v)^\top]`, and the model term is estimated with a few
Gibbs steps: from the data (**contrastive divergence**, CD-k; Hinton, 2002) or from chains
that persist between updates (**persistent CD**, PCD; Tieleman, 2008).
:class:`ContrastiveDivergence` writes that estimate as a loss for
:func:`dgm_lab.train.fit`: the gradient of :math:`\overline{F(v_\text{data})} -
\overline{F(v_\text{model})}` (model samples held fixed) is minus the estimated
log-likelihood gradient.

References:
    P. Smolensky (1986). Information processing in dynamical systems: foundations of harmony
    theory. In Parallel Distributed Processing, vol. 1, ch. 6.
    G. E. Hinton (2002). Training products of experts by minimizing contrastive divergence.
    Neural Computation 14(8), 1771-1800.
    T. Tieleman (2008). Training restricted Boltzmann machines using approximations to the
    likelihood gradient. ICML.
    G. E. Hinton (2010). A practical guide to training restricted Boltzmann machines.
    UTML TR 2010-003.
    J. Besag (1975). Statistical analysis of non-lattice data. The Statistician 24(3)
    (pseudo-likelihood).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler
from tqdm.auto import tqdm

from dgm_lab import train
from dgm_lab._validation import (
    as_float_tensor,
    check_binary,
    check_bool,
    check_int,
    check_non_negative,
    check_positive,
    check_same_width,
    check_seed,
)
from dgm_lab.energy._common import (
    MAX_ENUMERATION_UNITS,
    LazyParameters,
    bernoulli,
    check_enumerable,
    iter_states,
    logsumexp_over_states,
    shuffled_batches,
    softplus,
)
from dgm_lab.model import DensityModel, multinomial, randn
from dgm_lab.runtime import seed_everything

__all__ = ["RBM", "ContrastiveDivergence"]


class RBM(LazyParameters, DensityModel):
    r"""Bernoulli restricted Boltzmann machine (binary visible and hidden units).

    ``log_prob`` is exact, :math:`-F(v) - \log Z`, when one layer has at most
    :data:`~dgm_lab.energy.MAX_ENUMERATION_UNITS` units (``log_partition`` enumerates it and
    sums the other out); for larger machines estimate :math:`\log Z` with
    :func:`dgm_lab.energy.ais_log_partition` and use ``-free_energy(v) - log_z``. ``sample`` is
    exact for small machines too, and otherwise runs ``sample_steps`` steps of block Gibbs
    sampling from the biases-only model.

    Arguments:
        n_hidden: number of hidden units :math:`H`.
        init_std: standard deviation of the initial weights (Hinton, 2010, section 8: 0.01).
        seed: seed of the initial weights and, in ``fit``, of the Gibbs draws.
        sample_steps: block Gibbs steps of ``sample`` when exact sampling is too costly.

    Attributes:
        weight: :math:`W`, ``[V, H]``; ``visible_bias``: :math:`b`, ``[V]``;
            ``hidden_bias``: :math:`c`, ``[H]``. ``None`` until ``initialize`` or ``fit``.
        history_: the :class:`dgm_lab.train.History` of the last ``fit``.

    References:
        Smolensky (1986); Hinton (2002), contrastive divergence; Tieleman (2008), PCD.

    Example:
        >>> x, _ = dgm_lab.data.load_digits("train", "binary")
        >>> rbm = RBM(32).fit(x, epochs=5)
        >>> rbm.free_energy(x[:3]).shape
        torch.Size([3])
    """

    _fit_hint = "fit(x), initialize(x) or RBM.from_parameters(...)"

    def __init__(self, n_hidden: int, *, init_std: float = 0.01, seed: int = 0,
                 sample_steps: int = 1000) -> None:
        super().__init__()
        self.n_hidden = check_int(n_hidden, "n_hidden")
        self.init_std = check_non_negative(init_std, "init_std")
        self.seed = check_seed(seed)
        self.sample_steps = check_int(sample_steps, "sample_steps")
        self.register_parameter("weight", None)
        self.register_parameter("visible_bias", None)
        self.register_parameter("hidden_bias", None)
        self.history_: train.History | None = None

    # ---- construction ------------------------------------------------------------------

    @classmethod
    def from_parameters(cls, weight: torch.Tensor, visible_bias: torch.Tensor,
                        hidden_bias: torch.Tensor, **kwargs: object) -> RBM:
        """An RBM with the given :math:`W` ``[V, H]``, :math:`b` ``[V]`` and :math:`c` ``[H]``
        (copied); ``kwargs`` are the constructor's other arguments.

        Example:
            >>> rbm = RBM.from_parameters(torch.zeros(3, 2), torch.zeros(3), torch.zeros(2))
            >>> rbm.log_partition()   # 2^5 states of energy 0
            tensor(3.4657)
        """
        w = as_float_tensor(weight, "weight", ndim=2)
        b = as_float_tensor(visible_bias, "visible_bias", ndim=1, dtype=w.dtype, device=w.device)
        c = as_float_tensor(hidden_bias, "hidden_bias", ndim=1, dtype=w.dtype, device=w.device)
        if len(b) != w.shape[0] or len(c) != w.shape[1]:
            raise ValueError(f"weight is {tuple(w.shape)} = [V, H], so visible_bias must have "
                             f"{w.shape[0]} entries and hidden_bias {w.shape[1]}; got "
                             f"{len(b)} and {len(c)}")
        rbm = cls(w.shape[1], **kwargs)  # type: ignore[arg-type]
        rbm._set_parameters(weight=w, visible_bias=b, hidden_bias=c)
        return rbm

    def initialize(self, x: torch.Tensor) -> RBM:
        """Set the parameters from data ``x`` ``[n, V]`` (Hinton, 2010, section 8).

        :math:`W \\sim \\mathcal N(0, \\text{init\\_std}^2)` (drawn from ``seed``, on the CPU,
        so every device starts alike), :math:`c = 0`, and :math:`b_i = \\log(p_i / (1 - p_i))`
        with :math:`p_i` the fraction of examples with pixel :math:`i` on, smoothed as
        :math:`(\\text{count} + 1) / (n + 2)` so that a pixel never on gets a finite bias.
        With :math:`W = 0` the model is then the data's pixel marginals.
        """
        x = check_binary(as_float_tensor(x, "x", ndim=2), "x")
        n, v = x.shape
        g = torch.Generator().manual_seed(self.seed)
        w = randn((v, self.n_hidden), g, device=x.device, dtype=x.dtype) * self.init_std
        p = (x.sum(0) + 1) / (n + 2)
        self._set_parameters(weight=w, visible_bias=torch.log(p) - torch.log1p(-p),
                             hidden_bias=torch.zeros(self.n_hidden, dtype=x.dtype,
                                                     device=x.device))
        return self

    # ---- sizes -------------------------------------------------------------------------

    @property
    def n_visible(self) -> int:
        """:math:`V`, the width of the data."""
        self._require_fitted()
        return self.weight.shape[0]

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.n_visible])

    # ---- energies ----------------------------------------------------------------------

    def _as_layer(self, x: object, name: str, width: int) -> torch.Tensor:
        self._require_fitted()
        t = as_float_tensor(x, name, ndim=2, dtype=self.dtype, device=self.device)
        check_same_width(t, width, name, expected_by="this RBM's layer has")
        return t

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """:math:`E(v, h) = -v^\\top W h - b^\\top v - c^\\top h` ``[n]`` of paired rows of
        ``v`` ``[n, V]`` and ``h`` ``[n, H]``."""
        v = self._as_layer(v, "v", self.n_visible)
        h = self._as_layer(h, "h", self.n_hidden)
        if len(v) != len(h):
            raise ValueError(f"v and h must have the same number of rows, got {len(v)} and "
                             f"{len(h)}")
        return -((v @ self.weight) * h).sum(1) - v @ self.visible_bias - h @ self.hidden_bias

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        r"""Free energy :math:`F(v) = -b^\top v - \sum_j \operatorname{softplus}(c_j +
        v^\top W_{:j})` ``[n]``: :math:`p(v) = e^{-F(v)} / Z` with the hidden units summed out.

        ``v`` ``[n, V]`` may hold any real values (probabilities too); the formula is exact
        for binary ``v``.

        References:
            Hinton (2010), section 16.1.
        """
        return self._free_energy(self._as_layer(v, "v", self.n_visible))

    def _free_energy(self, v: torch.Tensor) -> torch.Tensor:
        return -v @ self.visible_bias - softplus(v @ self.weight + self.hidden_bias).sum(1)

    def hidden_free_energy(self, h: torch.Tensor) -> torch.Tensor:
        r"""The free energy of the hidden layer, visible units summed out:
        :math:`F(h) = -c^\top h - \sum_i \operatorname{softplus}(b_i + W_{i:} h)` ``[n]``, so
        that the RBM's marginal of the hidden units is :math:`p(h) = e^{-F(h)} / Z`.

        It is the prior over :math:`h` that the RBM implies: a deep belief network replaces
        it by a second RBM.
        """
        return self._hidden_free_energy(self._as_layer(h, "h", self.n_hidden))

    def _hidden_free_energy(self, h: torch.Tensor) -> torch.Tensor:
        return -h @ self.hidden_bias - softplus(h @ self.weight.T + self.visible_bias).sum(1)

    def unnormalized_log_prob(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p(v) + \\log Z = -F(v)` ``[n]``, for binary ``v``."""
        return -self._free_energy(self._check_visible(v))

    # ---- conditionals and block Gibbs sampling -----------------------------------------

    def hidden_probs(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`p(h_j = 1 \mid v) = \sigma(c_j + v^\top W_{:j})`, ``[n, H]``."""
        return self._hidden_probs(self._as_layer(v, "v", self.n_visible))

    def visible_probs(self, h: torch.Tensor) -> torch.Tensor:
        r""":math:`p(v_i = 1 \mid h) = \sigma(b_i + W_{i:} h)`, ``[n, V]``."""
        return self._visible_probs(self._as_layer(h, "h", self.n_hidden))

    #: ``encode(v)`` is :meth:`hidden_probs`: the hidden layer's code for ``v``.
    encode = hidden_probs
    #: ``decode(h)`` is :meth:`visible_probs`.
    decode = visible_probs

    def _hidden_probs(self, v: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(v @ self.weight + self.hidden_bias)

    def _visible_probs(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(h @ self.weight.T + self.visible_bias)

    def gibbs_step(self, v: torch.Tensor, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of block Gibbs sampling, :math:`h \\sim p(h \\mid v)` then
        :math:`v' \\sim p(v \\mid h)`.

        Arguments:
            v: ``[n, V]`` current visible states of ``n`` chains.
            generator: for repeatable draws.

        Returns:
            ``(h [n, H], v_new [n, V], v_new_probs [n, V])``: the hidden draw, the new visible
            draw, and :math:`p(v = 1 \\mid h)` it was drawn from (a smoother picture of the
            chain's state).
        """
        v = self._as_layer(v, "v", self.n_visible)
        with torch.no_grad():
            h = bernoulli(self._hidden_probs(v), generator)
            probs = self._visible_probs(h)
            return h, bernoulli(probs, generator), probs

    def gibbs_chain(self, v: torch.Tensor, n_steps: int,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run ``n_steps`` block Gibbs steps from ``v`` ``[n, V]``.

        Returns:
            ``(v [n, V], v_probs [n, V])`` after the last step (see :meth:`gibbs_step`).
        """
        n_steps = check_int(n_steps, "n_steps")
        v = self._as_layer(v, "v", self.n_visible)
        with torch.no_grad():
            for _ in range(n_steps):
                probs = self._visible_probs(bernoulli(self._hidden_probs(v), generator))
                v = bernoulli(probs, generator)
        return v, probs

    # ---- the partition function and the likelihood --------------------------------------

    def log_partition(self) -> torch.Tensor:
        r"""Exact :math:`\log Z`, enumerating the smaller layer and summing the other out:

        .. math::

            \log Z = \log \sum_h e^{-F(h)} = \log \sum_v e^{-F(v)} .

        Raises:
            ValueError: when both layers have more than
                :data:`~dgm_lab.energy.MAX_ENUMERATION_UNITS` units.
        """
        self._require_fitted()
        n_small = min(self.n_visible, self.n_hidden)
        check_enumerable(n_small, f"log Z of an RBM with {self.n_visible} visible and "
                                  f"{self.n_hidden} hidden units")
        with torch.no_grad():
            if self.n_hidden <= self.n_visible:
                return logsumexp_over_states(self.n_hidden, lambda h: -self._hidden_free_energy(h),
                                             dtype=self.dtype, device=self.device)
            return logsumexp_over_states(self.n_visible, lambda v: -self._free_energy(v),
                                         dtype=self.dtype, device=self.device)

    def _check_visible(self, v: object) -> torch.Tensor:
        return check_binary(self._check_input(v, "v"), "v")

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return -self._free_energy(check_binary(x, "x")) - self.log_partition()

    def pseudo_log_likelihood(self, v: torch.Tensor,
                              index: torch.Tensor | None = None) -> torch.Tensor:
        r"""Pseudo-log-likelihood :math:`\sum_i \log p(v_i \mid v_{-i})` of each row (nats).

        Each conditional needs no :math:`Z`: with :math:`\tilde v^{(i)}` the row with unit
        :math:`i` flipped, :math:`p(v_i \mid v_{-i}) = \sigma(F(\tilde v^{(i)}) - F(v))`.

        Arguments:
            v: ``[n, V]`` binary rows.
            index: optional ``[n]`` unit per row. Then the estimate
                :math:`V \log p(v_i \mid v_{-i})` for that one unit :math:`i` is returned, as
                scikit-learn's ``BernoulliRBM.score_samples`` does with a random index; its
                mean over a uniform random index is the full sum.

        Returns:
            ``[n]``.

        References:
            Besag (1975).
        """
        v = self._check_visible(v)
        n, d = v.shape
        with torch.no_grad():
            if index is not None:
                index = torch.as_tensor(index, device=self.device)
                if index.shape != (n,) or index.dtype not in (torch.int32, torch.int64):
                    raise ValueError(f"index must be [n] integers (one unit per row), got "
                                     f"shape {tuple(index.shape)} and dtype {index.dtype}")
                if ((index < 0) | (index >= d)).any():
                    raise ValueError(f"index must hold units 0..{d - 1}")
                flipped = v.clone()
                rows = torch.arange(n, device=self.device)
                flipped[rows, index] = 1 - flipped[rows, index]
                return d * F.logsigmoid(self._free_energy(flipped) - self._free_energy(v))
            # all d flips of every row at once: [n, d, d] -> n * d free energies
            eye = torch.eye(d, dtype=v.dtype, device=v.device)
            flipped = (v[:, None, :] + eye - 2 * v[:, None, :] * eye).reshape(n * d, d)
            delta = self._free_energy(flipped).reshape(n, d) - self._free_energy(v)[:, None]
            return F.logsigmoid(delta).sum(1)

    # ---- sampling ----------------------------------------------------------------------

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        with torch.no_grad():
            if min(self.n_visible, self.n_hidden) <= MAX_ENUMERATION_UNITS:
                # exact: draw the smaller layer from its marginal, then the other given it
                hidden_first = self.n_hidden <= self.n_visible
                width = self.n_hidden if hidden_first else self.n_visible
                states = torch.cat(list(iter_states(width, dtype=self.dtype,
                                                    device=self.device)))
                free = self._hidden_free_energy if hidden_first else self._free_energy
                drawn = states[multinomial(torch.softmax(-free(states), 0), n, generator)]
                return bernoulli(self._visible_probs(drawn), generator) if hidden_first else drawn
            start = bernoulli(torch.sigmoid(self.visible_bias).expand(n, -1), generator)
            return self.gibbs_chain(start, self.sample_steps, generator)[0]

    # ---- training ----------------------------------------------------------------------

    def fit(self, x: torch.Tensor, *, epochs: int = 50, batch_size: int = 20, lr: float = 0.05,
            momentum: float = 0.5, weight_decay: float = 0.0, k: int = 1,
            persistent: bool = True, n_chains: int | None = None, anneal_lr: bool = True,
            transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
            warm_start: bool = False, progress: bool = False) -> RBM:
        """Train from scratch by stochastic gradient ascent with CD-k or PCD-k.

        :meth:`initialize` on ``x``, then SGD with momentum along the closed-form gradients of
        :meth:`ContrastiveDivergence.loss_and_gradients`, the learning rate decaying linearly
        to 0 over the epochs when ``anneal_lr`` (which lets persistent chains and parameters
        settle). The loop is written out here rather than run by :func:`dgm_lab.train.fit`:
        an update of a small RBM costs about as much as that loop's bookkeeping per batch
        (autograd, optimiser, progress and history), and the lean loop is what keeps an
        epoch as fast as scikit-learn's ``BernoulliRBM`` (``benchmarks/ch04_results.py``).
        Draws and shuffling follow ``seed``: runs repeat exactly on a CPU.

        Arguments:
            x: ``[n, V]`` binary training data.
            epochs, batch_size, lr, momentum: of the SGD loop.
            weight_decay: L2 penalty on :math:`W` (not the biases).
            k: Gibbs steps per update.
            persistent: PCD (chains kept between updates) rather than CD (chains restarted
                at the data).
            n_chains: persistent chains (default ``batch_size``).
            anneal_lr: linear decay of the learning rate.
            transform: applied to every batch of ``x`` (and to ``x`` once, for
                :meth:`initialize`) to give the RBM's visible data: a deep belief network
                passes a fresh sample of the layer below for each batch.
            warm_start: continue from the current parameters (the model must be fitted, or
                built by :meth:`from_parameters`) instead of :meth:`initialize`.
            progress: show a progress bar.

        Returns:
            ``self``, with ``history_``.
        """
        x = as_float_tensor(x, "x", ndim=2)
        check_bool(warm_start, "warm_start")
        if warm_start:
            self._require_fitted()
        epochs = check_int(epochs, "epochs")
        check_bool(anneal_lr, "anneal_lr")
        check_bool(progress, "progress")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        lr = check_positive(lr, "lr")
        momentum = check_non_negative(momentum, "momentum")
        batch_size = check_int(batch_size, "batch_size")
        check_int(k, "k")
        seed_everything(self.seed)  # a transform that draws from the global stream repeats too
        visible = check_binary(x, "x") if transform is None else transform(x)
        if warm_start:
            check_same_width(visible, self.n_visible, "x",
                             expected_by="this RBM's visible layer has")
        else:
            self.initialize(visible)
        cd = ContrastiveDivergence(k, persistent=persistent, n_chains=n_chains,
                                   weight_decay=weight_decay)  # checks the arguments
        self.history_ = train.History()
        _lean_cd(self, x, transform, shuffled_batches(x, batch_size, self.seed).sampler,
                 cd, torch.Generator().manual_seed(self.seed), epochs=epochs, lr=lr,
                 momentum=momentum, anneal_lr=anneal_lr, progress=progress)
        return self

    def extra_repr(self) -> str:
        return f"n_hidden={self.n_hidden}"


class ContrastiveDivergence:
    r"""The CD-k / PCD-k estimate of the log-likelihood gradient, as a loss for
    :func:`dgm_lab.train.fit`.

    ``loss(rbm, v)`` draws negative samples :math:`\tilde v` with ``k`` block Gibbs steps
    (without gradient) and returns :math:`\frac1n \sum F(v) - \frac1m \sum F(\tilde v)`
    (plus :math:`\frac\lambda2 \lVert W \rVert^2`). Its gradient with respect to
    :math:`W` is :math:`-\big(\frac1n \sum v\, \sigma(c + W^\top v)^\top - \frac1m \sum
    \tilde v\, \sigma(c + W^\top \tilde v)^\top\big)`: minus data statistics plus model
    statistics, so a gradient *descent* step on the loss is the CD update (Hinton, 2002;
    scikit-learn's ``BernoulliRBM`` takes the same step).

    * CD-k: the chains start at the data batch: :math:`h \sim p(h \mid v)`, then ``k`` times
      :math:`\tilde v \sim p(v \mid h)`, :math:`h \sim p(h \mid \tilde v)`.
    * PCD-k (``persistent=True``): the hidden states of ``n_chains`` chains are kept in
      ``chain`` and continued at the next update (started from the first batch).

    Arguments:
        k: Gibbs steps per update (>= 1).
        persistent: PCD instead of CD.
        n_chains: number of persistent chains (default: the first batch's size).
        weight_decay: :math:`\lambda \ge 0`, an L2 penalty on the weights only.
        generator: for repeatable draws (``None``: PyTorch's global random state).

    Attributes:
        chain: ``[n_chains, H]`` hidden states of the persistent chains (``None`` before the
            first update, and for CD).

    References:
        Hinton (2002), equation 5; Tieleman (2008), persistent CD.

    Example:
        >>> rbm = RBM(16).initialize(x)
        >>> history = dgm_lab.train.fit(rbm, ContrastiveDivergence(k=1, persistent=True), x,
        ...                             epochs=5, optimizer=torch.optim.SGD(rbm.parameters(), 0.05))
    """

    def __init__(self, k: int = 1, *, persistent: bool = False, n_chains: int | None = None,
                 weight_decay: float = 0.0, generator: torch.Generator | None = None) -> None:
        self.k = check_int(k, "k")
        self.persistent = check_bool(persistent, "persistent")
        self.n_chains = None if n_chains is None else check_int(n_chains, "n_chains")
        self.weight_decay = check_non_negative(weight_decay, "weight_decay")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, "
                            f"got {type(generator).__name__}")
        self.generator = generator
        self.chain: torch.Tensor | None = None

    def negative_samples(self, rbm: RBM, v: torch.Tensor) -> torch.Tensor:
        """Draw the negative samples :math:`\\tilde v` for the batch ``v`` (no gradient)."""
        with torch.no_grad():
            if self.persistent and self.chain is not None:
                h = self.chain
            else:
                start = v
                if self.persistent and self.n_chains is not None:  # start the chains at data
                    start = v[torch.arange(self.n_chains, device=v.device) % len(v)]
                h = bernoulli(rbm._hidden_probs(start), self.generator)
            for _ in range(self.k):
                v_neg = bernoulli(rbm._visible_probs(h), self.generator)
                h = bernoulli(rbm._hidden_probs(v_neg), self.generator)
            if self.persistent:
                self.chain = h
        return v_neg

    def __call__(self, rbm: nn.Module, v: torch.Tensor) -> torch.Tensor:
        if not isinstance(rbm, RBM):
            raise TypeError(f"ContrastiveDivergence trains an RBM, got {type(rbm).__name__}")
        v_neg = self.negative_samples(rbm, v)
        loss = rbm._free_energy(v).mean() - rbm._free_energy(v_neg).mean()
        if self.weight_decay:
            loss = loss + 0.5 * self.weight_decay * rbm.weight.square().sum()
        return loss


class _Workspace:
    """The buffers of :func:`_lean_cd` for ``n`` data rows and ``m`` chains, allocated once
    per batch size, with the views the loop reads and writes (slicing costs time too)."""

    def __init__(self, n: int, m: int, n_visible: int, n_hidden: int, *, dtype: torch.dtype,
                 device: torch.device, generator_device: torch.device) -> None:
        def ones(rows: int, width: int) -> torch.Tensor:  # [rows, width + 1], last column 1
            return torch.ones(rows, width + 1, dtype=dtype, device=device)

        # the data [v, 1] in the first n rows, the chains' [v~, 1] in the last m: one product
        # gives both hidden layers, one more both sides of the gradient
        self.both, self.probs = ones(n + m, n_visible), ones(n + m, n_hidden)
        self.data, self.v_neg = self.both[:n, :n_visible], self.both[n:, :n_visible]
        self.negative = self.both[n:]
        self.hidden_probs, self.chain_probs = self.probs[:, :n_hidden], self.probs[n:, :n_hidden]
        self.scale = torch.cat([torch.full((n, 1), -1 / n, dtype=dtype, device=device),
                                torch.full((m, 1), 1 / m, dtype=dtype, device=device)])
        self.u_visible = torch.empty(m, n_visible, dtype=dtype, device=generator_device)
        self.u_hidden = torch.empty(m, n_hidden, dtype=dtype, device=generator_device)


def _lean_cd(rbm: RBM, x: torch.Tensor,
             transform: Callable[[torch.Tensor], torch.Tensor] | None,
             batches: BatchSampler, cd: ContrastiveDivergence,
             generator: torch.Generator, *, epochs: int, lr: float, momentum: float,
             anneal_lr: bool, progress: bool) -> None:
    """The training loop of :meth:`RBM.fit`: the same updates as :func:`dgm_lab.train.fit`
    with the loss ``cd``, ``torch.optim.SGD`` (momentum, no dampening) and a linear decay of
    the learning rate, the same draws in the same order, in few tensor operations per batch.

    Every parameter lives in one matrix ``wa = [[W, b], [c, 0]]`` ``[V + 1, H + 1]`` and
    every layer carries a trailing column of ones, ``[v, 1]`` and ``[h, 1]``: then one product
    gives each layer's pre-activations, biases included, and one product of data and hidden
    probabilities gives the gradients of ``W``, ``b`` and ``c`` together.
    """
    n_visible, n_hidden = rbm.n_visible, rbm.n_hidden
    dtype, device = rbm.weight.dtype, rbm.weight.device
    wa = torch.zeros(n_visible + 1, n_hidden + 1, dtype=dtype, device=device)
    wa[:n_visible, :n_hidden] = rbm.weight
    wa[:n_visible, n_hidden] = rbm.visible_bias
    wa[n_visible, :n_hidden] = rbm.hidden_bias
    to_hidden, to_visible = wa[:, :n_hidden], wa[:n_visible].T  # views: [V+1, H], [H+1, V]
    velocity = torch.zeros_like(wa)
    spaces: dict[tuple[int, int], _Workspace] = {}
    where = generator.device

    def draw(u: torch.Tensor, probs: torch.Tensor, into: torch.Tensor) -> None:
        torch.rand(u.shape, generator=generator, out=u)  # as bernoulli(): u < p
        into.copy_(u.to(device) < probs)

    chain = chain_units = None  # the hidden states [h, 1] of the persistent chains
    start = time.perf_counter()
    with torch.no_grad():
        for epoch in tqdm(range(epochs), disable=not progress, leave=False):
            step_lr = lr * (1 - epoch / epochs) if anneal_lr else lr
            # the epoch's order from the sampler, then every batch a slice of one gather
            shuffled = x[torch.as_tensor(list(batches.sampler), device=x.device)]
            for first_row in range(0, len(x), batches.batch_size):
                v = shuffled[first_row:first_row + batches.batch_size]
                if transform is not None:
                    v = transform(v)
                n = len(v)
                if chain is None or not cd.persistent:
                    if cd.persistent and cd.n_chains is not None:  # start the chains at data
                        first = v[torch.arange(cd.n_chains, device=device) % n]
                    else:
                        first = v
                    chain = torch.ones(len(first), n_hidden + 1, dtype=dtype, device=device)
                    chain_units = chain[:, :n_hidden]
                    u = torch.empty(chain_units.shape, dtype=dtype, device=where)
                    draw(u, torch.sigmoid(first @ to_hidden[:n_visible] + to_hidden[n_visible]),
                         chain_units)
                m = len(chain)
                if (n, m) not in spaces:
                    spaces[n, m] = _Workspace(n, m, n_visible, n_hidden, dtype=dtype,
                                              device=device, generator_device=where)
                w = spaces[n, m]
                w.data.copy_(v)
                for step in range(cd.k):
                    draw(w.u_visible, torch.sigmoid(chain @ to_visible), w.v_neg)
                    if step < cd.k - 1:
                        draw(w.u_hidden, torch.sigmoid(w.negative @ to_hidden), chain_units)
                pre = w.both @ to_hidden
                w.hidden_probs.copy_(torch.sigmoid(pre))
                draw(w.u_hidden, w.chain_probs, chain_units)
                # gradients of mean F(v) - mean F(v~): model minus data statistics; the corner
                # [V, H] (ones times ones) is no parameter and is never read
                grad = w.both.T @ (w.probs * w.scale)
                if cd.weight_decay:
                    grad[:n_visible, :n_hidden] += cd.weight_decay * wa[:n_visible, :n_hidden]
                if first_row + batches.batch_size >= len(x):
                    # the loss of the epoch's last batch only: every batch's would cost a
                    # fifth of the time
                    free = -w.both[:, :n_visible] @ wa[:n_visible, n_hidden] - softplus(pre).sum(1)
                    loss = free[:n].mean() - free[n:].mean()
                    if cd.weight_decay:
                        loss += 0.5 * cd.weight_decay * wa[:n_visible, :n_hidden].square().sum()
                if momentum:
                    grad = velocity.mul_(momentum).add_(grad)
                wa.sub_(grad, alpha=step_lr)
            history = rbm.history_.epoch
            history.setdefault("loss", []).append(loss.item())
            history.setdefault("lr", []).append(step_lr)
            history.setdefault("seconds", []).append(time.perf_counter() - start)
        rbm.weight.copy_(wa[:n_visible, :n_hidden])
        rbm.visible_bias.copy_(wa[:n_visible, n_hidden])
        rbm.hidden_bias.copy_(wa[n_visible, :n_hidden])
