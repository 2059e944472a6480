r"""Boltzmann machines: energies, the partition function, and exact answers by enumeration.

A Boltzmann machine (Ackley, Hinton & Sejnowski, 1985) gives every joint state
:math:`x \in \{0, 1\}^d` (or :math:`\{-1, +1\}^d`, "spins") of its units an **energy**

.. math::

    E(x) = -\sum_{i<j} w_{ij} x_i x_j - \sum_i b_i x_i
         = -\tfrac12 x^\top W x - b^\top x,

with a symmetric weight matrix :math:`W` whose diagonal is zero, and turns energies into
probabilities with the Boltzmann distribution

.. math::

    p(x) = \frac{e^{-E(x)}}{Z}, \qquad Z = \sum_{x} e^{-E(x)} .

The **partition function** :math:`Z` sums over all :math:`2^d` states, which is what makes
these models hard: for the 64 pixels of a digit that is :math:`1.8 \times 10^{19}` terms.
For small machines (up to :data:`MAX_ENUMERATION_UNITS` units) everything is exact here:
:func:`log_partition`, :func:`marginals`, :func:`joint_probabilities` and the conditionals
:func:`conditional_probs`, which are what Gibbs sampling draws from,

.. math::

    p(x_i = 1 \mid x_{-i}) = \sigma\Big(\sum_{j \ne i} w_{ij} x_j + b_i\Big)
    \quad\text{(0/1 units)}, \qquad
    p(x_i = +1 \mid x_{-i}) = \sigma\Big(2\Big(\sum_{j \ne i} w_{ij} x_j + b_i\Big)\Big)
    \quad\text{(spins)} .

The functions take the parameters ``(weights, bias)`` directly, so other chapters can reuse
them (chapter 7 compares a mean-field bound with the exact :math:`\log Z`).
:class:`BoltzmannMachine` wraps them into a density model with hidden units: its
``log_prob`` sums the hidden units out, ``sample`` draws exactly, ``gibbs_chain`` runs the
sampler, and ``fit`` climbs the exact log-likelihood gradient, the data statistics minus the
model statistics (Ackley et al., 1985):

.. math::

    \frac{\partial \log p(v)}{\partial w_{ij}} = \mathbb E_{\text{data}}[x_i x_j]
    - \mathbb E_{\text{model}}[x_i x_j] .

References:
    D. H. Ackley, G. E. Hinton and T. J. Sejnowski (1985). A learning algorithm for Boltzmann
    machines. Cognitive Science 9(1), 147-169.
    S. Geman and D. Geman (1984). Stochastic relaxation, Gibbs distributions, and the Bayesian
    restoration of images. IEEE TPAMI 6(6), 721-741 (Gibbs sampling).
"""

from __future__ import annotations

import torch

from dgm_lab._validation import (
    as_float_tensor,
    check_binary,
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
    check_seed,
    check_symmetric,
)
from dgm_lab.energy._common import (
    MAX_ENUMERATION_UNITS,
    check_enumerable,
    iter_states,
    logsumexp_over_states,
)
from dgm_lab.model import DensityModel, multinomial, rand, randn

__all__ = [
    "MAX_ENUMERATION_UNITS",
    "UNITS",
    "BoltzmannMachine",
    "conditional_probs",
    "energy",
    "enumerate_states",
    "joint_probabilities",
    "log_partition",
    "marginals",
]

#: The two kinds of units: 0/1 ("binary") and -1/+1 ("spin").
UNITS = ("binary", "spin")


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------

def _check_machine(weights: object, bias: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``weights`` [d, d] symmetric with a zero diagonal and ``bias`` [d], same dtype/device."""
    w = as_float_tensor(weights, "weights", ndim=2)
    b = as_float_tensor(bias, "bias", ndim=1, dtype=w.dtype, device=w.device)
    check_symmetric(w, "weights")
    if len(b) != len(w):
        raise ValueError(f"bias has {len(b)} entries but weights is {tuple(w.shape)}: "
                         "one bias per unit")
    if w.diagonal().abs().max() > 0:
        raise ValueError("weights must have a zero diagonal (a unit is not connected to "
                         "itself)")
    return w, b


def _check_states(x: object, name: str, d: int, units: str, *, dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor:
    """``x`` [n, d] of 0/1 values (binary units) or -1/+1 values (spins)."""
    t = as_float_tensor(x, name, ndim=2, dtype=dtype, device=device)
    if t.shape[1] != d:
        raise ValueError(f"{name} has {t.shape[1]} units per row but the machine has {d}")
    if units == "binary":
        check_binary(t, name)
    elif not (t.abs() == 1).all():
        raise ValueError(f"{name} must hold spins: every entry -1 or +1")
    return t


# --------------------------------------------------------------------------------------
# exact answers by enumeration: functions of (weights, bias)
# --------------------------------------------------------------------------------------

def enumerate_states(n: int, units: str = "binary", *, dtype: torch.dtype = torch.float32,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """All ``2**n`` joint states of ``n`` units, one per row, in counting order.

    The first unit is the most significant: for spins the rows run
    ``(-1, -1, -1), (-1, -1, +1), (-1, +1, -1), ...``.

    Arguments:
        n: number of units, 1 to :data:`MAX_ENUMERATION_UNITS`.
        units: ``"binary"`` (0/1) or ``"spin"`` (-1/+1).
        dtype, device: of the result.

    Returns:
        ``[2**n, n]``.

    Example:
        >>> enumerate_states(2, "spin")
        tensor([[-1., -1.],
                [-1.,  1.],
                [ 1., -1.],
                [ 1.,  1.]])
    """
    n = check_int(n, "n")
    check_choice(units, "units", UNITS)
    check_enumerable(n, f"enumerating the states of {n} units")
    return torch.cat(list(iter_states(n, dtype=dtype, device=device, spins=units == "spin")))


def energy(x: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    r"""Energy :math:`E(x) = -\frac12 x^\top W x - b^\top x` of each row of ``x``.

    With a symmetric ``weights`` whose diagonal is zero, the quadratic term counts every pair
    once: :math:`-\sum_{i<j} w_{ij} x_i x_j`.

    Arguments:
        x: ``[n, d]`` states (any real values; 0/1 or -1/+1 for a Boltzmann machine).
        weights: ``[d, d]`` symmetric, zero diagonal.
        bias: ``[d]``.

    Returns:
        ``[n]`` energies.

    References:
        Ackley, Hinton & Sejnowski (1985), the energy of a global state.

    Example:
        >>> w = torch.tensor([[0.0, 2.0], [2.0, 0.0]])
        >>> energy(torch.tensor([[1.0, 1.0]]), w, torch.tensor([0.5, 0.0]))
        tensor([-2.5000])
    """
    w, b = _check_machine(weights, bias)
    x = as_float_tensor(x, "x", ndim=2, dtype=w.dtype, device=w.device)
    if x.shape[1] != len(w):
        raise ValueError(f"x has {x.shape[1]} units per row but weights is {tuple(w.shape)}")
    return _energy(x, w, b)


def _energy(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((x @ w) * x).sum(-1) - x @ b


def log_partition(weights: torch.Tensor, bias: torch.Tensor, *,
                  units: str = "binary") -> torch.Tensor:
    r"""Exact :math:`\log Z = \log \sum_x e^{-E(x)}` by enumerating all :math:`2^d` states.

    Computed with log-sum-exp in chunks, so large weights do not overflow and up to
    :data:`MAX_ENUMERATION_UNITS` units fit in memory.

    Arguments:
        weights: ``[d, d]`` symmetric, zero diagonal.
        bias: ``[d]``.
        units: ``"binary"`` (0/1) or ``"spin"`` (-1/+1).

    Returns:
        A 0-dimensional tensor in the dtype of ``weights`` when it is floating-point;
        integer weights are computed in float32, like every integer input of dgm_lab.

    References:
        Ackley, Hinton & Sejnowski (1985), the Boltzmann distribution.

    Example:
        >>> log_partition(torch.zeros(3, 3), torch.zeros(3))   # 8 states of energy 0
        tensor(2.0794)
    """
    w, b = _check_machine(weights, bias)
    check_choice(units, "units", UNITS)
    check_enumerable(len(w), f"log Z of a machine with {len(w)} units")
    return logsumexp_over_states(len(w), lambda s: -_energy(s, w, b), dtype=w.dtype,
                                 device=w.device, spins=units == "spin")


def joint_probabilities(weights: torch.Tensor, bias: torch.Tensor, *,
                        units: str = "binary") -> tuple[torch.Tensor, torch.Tensor]:
    """Every state and its probability :math:`e^{-E(x)} / Z` (the whole table).

    Arguments:
        weights, bias, units: as :func:`log_partition`.

    Returns:
        ``states`` ``[2**d, d]`` (the order of :func:`enumerate_states`) and ``probs``
        ``[2**d]``, which sum to 1.

    Example:
        >>> states, probs = joint_probabilities(torch.zeros(2, 2), torch.tensor([0.0, 1.0]))
        >>> probs
        tensor([0.1345, 0.3655, 0.1345, 0.3655])
    """
    w, b = _check_machine(weights, bias)
    states = enumerate_states(len(w), units, dtype=w.dtype, device=w.device)
    log_p = -_energy(states, w, b)
    return states, torch.softmax(log_p, dim=0)


def _moments(w: torch.Tensor, b: torch.Tensor,
             units: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``log Z``, :math:`\\mathbb E[x]` ``[d]`` and :math:`\\mathbb E[x x^\\top]` ``[d, d]``
    under the machine, by enumeration in chunks (a first pass for ``log Z``)."""
    d, spins = len(w), units == "spin"
    check_enumerable(d, f"the statistics of a machine with {d} units")
    log_z = logsumexp_over_states(d, lambda s: -_energy(s, w, b), dtype=w.dtype,
                                  device=w.device, spins=spins)
    mean, second = torch.zeros_like(b), torch.zeros_like(w)
    for states in iter_states(d, dtype=w.dtype, device=w.device, spins=spins):
        p = torch.exp(-_energy(states, w, b) - log_z)
        mean += p @ states
        second += (states * p[:, None]).T @ states
    return log_z, mean, second


def marginals(weights: torch.Tensor, bias: torch.Tensor, *,
              units: str = "binary") -> torch.Tensor:
    """Exact marginal probability that each unit is on, by enumeration.

    Arguments:
        weights, bias, units: as :func:`log_partition`.

    Returns:
        ``[d]``: :math:`p(x_i = 1)` for 0/1 units, :math:`p(x_i = +1)` for spins.

    Example:
        >>> marginals(torch.zeros(2, 2), torch.tensor([0.0, 1.0]))
        tensor([0.5000, 0.7311])
    """
    w, b = _check_machine(weights, bias)
    check_choice(units, "units", UNITS)
    _, mean, _ = _moments(w, b, units)
    return (1 + mean) / 2 if units == "spin" else mean


def _local_fields(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # w has a zero diagonal, so x @ w leaves out x_i itself: sum_{j != i} w_ij x_j + b_i
    return x @ w + b


def conditional_probs(x: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor, *,
                      units: str = "binary") -> torch.Tensor:
    r"""For every row and unit :math:`i`, the probability that unit :math:`i` is on given the
    other units of that row (whatever its own value).

    :math:`\sigma(a_i)` for 0/1 units and :math:`\sigma(2 a_i)` for spins, with the local field
    :math:`a_i = \sum_{j \ne i} w_{ij} x_j + b_i`: the two states of unit :math:`i` differ in
    energy by :math:`a_i` (0/1) or :math:`2 a_i` (-1/+1). These are the distributions a Gibbs
    sampler draws from.

    Arguments:
        x: ``[n, d]`` states.
        weights, bias, units: as :func:`log_partition`.

    Returns:
        ``[n, d]``.

    References:
        Geman & Geman (1984), Gibbs sampling; Ackley, Hinton & Sejnowski (1985).

    Example:
        >>> w = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
        >>> conditional_probs(torch.tensor([[1.0, 1.0]]), w, torch.zeros(2))
        tensor([[0.7311, 0.7311]])
    """
    w, b = _check_machine(weights, bias)
    check_choice(units, "units", UNITS)
    x = _check_states(x, "x", len(w), units, dtype=w.dtype, device=w.device)
    field = _local_fields(x, w, b)
    return torch.sigmoid(2 * field if units == "spin" else field)


# --------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------

class BoltzmannMachine(DensityModel):
    r"""A Boltzmann machine with visible and hidden units, exact for small machines.

    The first ``n_visible`` units are visible (the data), the last ``n_hidden`` hidden; all are
    connected to all. ``log_prob(v)`` is the marginal :math:`\log \sum_h e^{-E(v, h)} - \log Z`,
    exact by enumeration, as is ``sample``. ``fit`` learns ``weights_`` and ``bias_`` by
    gradient ascent on the mean log-likelihood with the exact gradient,
    :meth:`log_likelihood_gradient`: data statistics (hidden units filled in by their exact
    posterior :math:`p(h \mid v)`) minus model statistics.

    Arguments:
        n_hidden: number of hidden units (0: a fully visible machine, whose best fit matches
            the data's means and pairwise correlations, nothing more).
        units: ``"binary"`` (0/1, the default) or ``"spin"`` (-1/+1).
        lr: step size of the gradient ascent of ``fit``.
        momentum: the heavy-ball momentum of that ascent (each step adds ``momentum`` times
            the previous one).
        max_iter: gradient steps of ``fit``.
        tol: ``fit`` stops when every entry of the gradient is below ``tol``.
        init_std: standard deviation of the random initial weights. Hidden units need them
            to break the symmetry between them; on data whose pairwise correlations vanish
            (parity) the gradient is zero at zero weights, so small ones learn slowly.
        seed: seed of the initial weights.

    Attributes:
        weights_: ``[d, d]`` symmetric, zero diagonal (:math:`d` = visible + hidden units).
        bias_: ``[d]``.
        n_iter_, converged_: how ``fit`` ended.

    References:
        Ackley, Hinton & Sejnowski (1985), A learning algorithm for Boltzmann machines.

    Example:
        >>> x = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
        >>> bm = BoltzmannMachine(n_hidden=2, max_iter=200).fit(x)
        >>> bm.log_prob(x).exp().sum() <= 1
        tensor(True)
    """

    _fit_hint = "fit(x) or BoltzmannMachine.from_parameters(weights, bias)"
    _extra_fitted = ("n_iter_", "converged_")

    def __init__(self, n_hidden: int = 0, *, units: str = "binary", lr: float = 0.5,
                 momentum: float = 0.9, max_iter: int = 500, tol: float = 1e-5,
                 init_std: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        self.n_hidden = check_int(n_hidden, "n_hidden", minimum=0)
        self.units = check_choice(units, "units", UNITS)
        self.lr = check_positive(lr, "lr")
        if not 0 <= check_non_negative(momentum, "momentum") < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.max_iter = check_int(max_iter, "max_iter", minimum=0)
        self.tol = check_non_negative(tol, "tol")
        self.init_std = check_non_negative(init_std, "init_std")
        self.seed = check_seed(seed)
        self.register_buffer("weights_", None)
        self.register_buffer("bias_", None)
        self.n_iter_, self.converged_ = 0, False

    @classmethod
    def from_parameters(cls, weights: torch.Tensor, bias: torch.Tensor, *, n_hidden: int = 0,
                        units: str = "binary") -> BoltzmannMachine:
        """A machine with the given ``weights`` ``[d, d]`` and ``bias`` ``[d]``; the last
        ``n_hidden`` units are hidden.

        Example:
            >>> bm = BoltzmannMachine.from_parameters(torch.zeros(3, 3), torch.zeros(3))
            >>> bm.log_partition()
            tensor(2.0794)
        """
        w, b = _check_machine(weights, bias)
        machine = cls(n_hidden, units=units)
        if machine.n_hidden >= len(w):
            raise ValueError(f"n_hidden={n_hidden} leaves no visible unit among {len(w)} units")
        machine.weights_, machine.bias_ = w.clone(), b.clone()
        return machine

    # ---- sizes -------------------------------------------------------------------------

    @property
    def n_units(self) -> int:
        """Visible plus hidden units."""
        self._require_fitted()
        return len(self.bias_)

    @property
    def n_visible(self) -> int:
        """Visible units: the width of the data."""
        return self.n_units - self.n_hidden

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size([self.n_visible])

    # ---- exact answers -----------------------------------------------------------------

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """:func:`energy` of full states ``x`` ``[n, d]`` (visible then hidden units)."""
        self._require_fitted()
        x = _check_states(x, "x", self.n_units, self.units, dtype=self.dtype, device=self.device)
        return _energy(x, self.weights_, self.bias_)

    def log_partition(self) -> torch.Tensor:
        """Exact :math:`\\log Z` (:func:`log_partition`)."""
        self._require_fitted()
        return log_partition(self.weights_, self.bias_, units=self.units)

    def joint_probabilities(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every full state and its probability (:func:`joint_probabilities`)."""
        self._require_fitted()
        return joint_probabilities(self.weights_, self.bias_, units=self.units)

    def marginals(self) -> torch.Tensor:
        """:math:`p(x_i \\text{ on})` of every unit ``[d]`` (:func:`marginals`)."""
        self._require_fitted()
        return marginals(self.weights_, self.bias_, units=self.units)

    def conditional_probs(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`p(x_i \\text{ on} \\mid x_{-i})` ``[n, d]`` (:func:`conditional_probs`)."""
        self._require_fitted()
        return conditional_probs(x, self.weights_, self.bias_, units=self.units)

    def _hidden_log_sum(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`\\log \\sum_h e^{-E(v, h)}` ``[n]`` for checked visible rows ``v``."""
        if self.n_hidden == 0:
            return -_energy(v, self.weights_, self.bias_)
        check_enumerable(self.n_hidden, "summing out the hidden units")

        def score(h: torch.Tensor) -> torch.Tensor:  # [m, H] -> [m, n]
            full = torch.cat([v.expand(len(h), *v.shape),
                              h[:, None, :].expand(len(h), len(v), self.n_hidden)], dim=-1)
            return -_energy(full, self.weights_, self.bias_)

        return logsumexp_over_states(self.n_hidden, score, dtype=self.dtype, device=self.device,
                                     spins=self.units == "spin")

    def _check_visible(self, v: object) -> torch.Tensor:
        v = self._check_input(v, "v")
        return _check_states(v, "v", self.n_visible, self.units, dtype=self.dtype,
                             device=self.device)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        v = _check_states(x, "x", self.n_visible, self.units, dtype=self.dtype,
                          device=self.device)
        return self._hidden_log_sum(v) - self.log_partition()

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        states, probs = self.joint_probabilities()
        return states[multinomial(probs, n, generator)][:, :self.n_visible]

    # ---- Gibbs sampling ----------------------------------------------------------------

    def gibbs_sweep(self, x: torch.Tensor, generator: torch.Generator | None = None
                    ) -> torch.Tensor:
        """One sweep of Gibbs sampling: each unit in turn, ``0, 1, ..., d-1``, is redrawn
        from its conditional given the current values of all others (the new values of the
        units before it included).

        Arguments:
            x: ``[n, d]`` full states of ``n`` independent chains.
            generator: for repeatable draws.

        Returns:
            ``[n, d]``, the states after the sweep (``x`` is not modified).

        References:
            Geman & Geman (1984).
        """
        self._require_fitted()
        x = _check_states(x, "x", self.n_units, self.units, dtype=self.dtype,
                          device=self.device)
        return self._sweep(x.clone(), generator)

    def _sweep(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The sweep of :meth:`gibbs_sweep` on a checked ``x``, in place."""
        spins = self.units == "spin"
        u = rand(x.shape, generator, device=self.device, dtype=self.dtype)
        for i in range(self.n_units):
            field = x @ self.weights_[:, i] + self.bias_[i]
            on = u[:, i] < torch.sigmoid(2 * field if spins else field)
            x[:, i] = 2 * on - 1 if spins else on
        return x

    def gibbs_chain(self, x: torch.Tensor, n_sweeps: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Run ``n_sweeps`` Gibbs sweeps from ``x`` ``[n, d]``; returns the trace
        ``[n_sweeps, n, d]`` of the states after each sweep.

        Averages over the trace (after a burn-in) estimate expectations under the model,
        e.g. ``trace[100:].mean((0, 1))`` the marginals.
        """
        n_sweeps = check_int(n_sweeps, "n_sweeps")
        x = self.gibbs_sweep(x, generator)
        trace = [x]
        for _ in range(n_sweeps - 1):
            x = self._sweep(x.clone(), generator)
            trace.append(x)
        return torch.stack(trace)

    # ---- learning: data statistics minus model statistics -------------------------------

    def _data_statistics(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean of ``x`` and of ``x x^T`` over the data, hidden units drawn from p(h | v)."""
        if self.n_hidden == 0:
            return v.mean(0), v.T @ v / len(v)
        check_enumerable(self.n_hidden, "the posterior over the hidden units")
        hidden = torch.cat(list(iter_states(self.n_hidden, dtype=self.dtype, device=self.device,
                                            spins=self.units == "spin")))
        full = torch.cat([v[:, None, :].expand(len(v), len(hidden), self.n_visible),
                          hidden[None].expand(len(v), *hidden.shape)], dim=-1)  # [n, 2^H, d]
        posterior = torch.softmax(-_energy(full, self.weights_, self.bias_), dim=1)
        weights = posterior / len(v)  # each data point counts 1/n, spread over its h
        mean = torch.einsum("nk,nki->i", weights, full)
        second = torch.einsum("nk,nki,nkj->ij", weights, full, full)
        return mean, second

    def log_likelihood_gradient(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Exact gradient of the mean log-likelihood of ``v`` with respect to ``weights_``
        and ``bias_``: data statistics minus model statistics.

        .. math::

            \frac{\partial}{\partial w_{ij}} \frac1n \sum_k \log p(v_k)
            = \mathbb E_{\text{data}}[x_i x_j] - \mathbb E_{\text{model}}[x_i x_j],
            \qquad
            \frac{\partial}{\partial b_i} = \mathbb E_{\text{data}}[x_i]
            - \mathbb E_{\text{model}}[x_i],

        where the data expectation fills in the hidden units with their posterior
        :math:`p(h \mid v_k)`. Both expectations are exact (enumeration).

        Arguments:
            v: ``[n, n_visible]`` training data.

        Returns:
            ``(grad_weights [d, d]`` with a zero diagonal, ``grad_bias [d])``.

        References:
            Ackley, Hinton & Sejnowski (1985), equation 10.
        """
        v = self._check_visible(v)
        data_mean, data_second = self._data_statistics(v)
        _, model_mean, model_second = _moments(self.weights_, self.bias_, self.units)
        grad_w = (data_second - model_second).fill_diagonal_(0.0)
        return grad_w, data_mean - model_mean

    def fit(self, x: torch.Tensor) -> BoltzmannMachine:
        """Learn ``weights_`` and ``bias_`` by gradient ascent with the exact gradient.

        Starts from small random weights (``init_std``, ``seed``) and zero biases, then takes
        ``max_iter`` steps of gradient ascent with momentum, ``step = momentum * step + lr *
        gradient`` and ``theta += step`` (:meth:`log_likelihood_gradient`), stopping early
        when every gradient entry is below ``tol``.

        Arguments:
            x: ``[n, n_visible]`` data: 0/1 values, or -1/+1 for spins.

        Returns:
            ``self``.
        """
        t = as_float_tensor(x, "x", ndim=2)
        d = t.shape[1] + self.n_hidden
        check_enumerable(d, f"fitting a Boltzmann machine with {d} units")
        _check_states(t, "x", t.shape[1], self.units, dtype=t.dtype, device=t.device)
        g = torch.Generator().manual_seed(self.seed)
        noise = randn((d, d), g, device=t.device, dtype=t.dtype) * self.init_std
        w = torch.triu(noise, diagonal=1)
        fitted = type(self).from_parameters(w + w.T, torch.zeros(d, dtype=t.dtype,
                                                                 device=t.device),
                                            n_hidden=self.n_hidden, units=self.units)
        converged, steps = False, 0
        step_w, step_b = torch.zeros_like(fitted.weights_), torch.zeros_like(fitted.bias_)
        for steps in range(1, self.max_iter + 1):
            grad_w, grad_b = fitted.log_likelihood_gradient(t)
            if max(grad_w.abs().max().item(), grad_b.abs().max().item()) < self.tol:
                converged, steps = True, steps - 1
                break
            step_w = self.momentum * step_w + self.lr * grad_w
            step_b = self.momentum * step_b + self.lr * grad_b
            fitted.weights_ += step_w
            fitted.bias_ += step_b
        self.weights_, self.bias_ = fitted.weights_, fitted.bias_
        self.n_iter_, self.converged_ = steps, converged
        return self

    def extra_repr(self) -> str:
        return f"n_hidden={self.n_hidden}, units={self.units!r}"
