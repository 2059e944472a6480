r"""Energy-based latent models of chapter 4: Boltzmann machines, RBMs, DBNs, DBMs and AIS.

Every model here defines a distribution through an energy, :math:`p(x) = e^{-E(x)} / Z`, with
a partition function :math:`Z` that sums over every joint state. They are exact where the
state space is small enough to enumerate, and otherwise rely on Markov chains (Gibbs
sampling) for sampling and learning, and on annealed importance sampling for :math:`\log Z`.

* :mod:`~dgm_lab.energy.boltzmann`: the general Boltzmann machine (0/1 or -1/+1 units) and
  exact answers by enumeration for small machines: :func:`log_partition`,
  :func:`marginals`, :func:`joint_probabilities`, :func:`conditional_probs`,
  :class:`BoltzmannMachine` (exact log-likelihood gradient, Gibbs sampling).
* :mod:`~dgm_lab.energy.rbm`: :class:`RBM` (free energy, block Gibbs sampling,
  pseudo-likelihood) and :class:`ContrastiveDivergence` (CD-k and PCD as a loss for
  :func:`dgm_lab.train.fit`).
* :mod:`~dgm_lab.energy.ais`: :func:`ais_log_partition`, :func:`raise_log_prob`.
* :mod:`~dgm_lab.energy.dbn`: :class:`DBN`, greedy layer-wise training and its variational
  bound.
* :mod:`~dgm_lab.energy.dbm`: :class:`DBM`, mean-field inference, persistent chains and
  layer-wise pre-training.

References:
    Ackley, Hinton & Sejnowski (1985); Smolensky (1986); Hinton (2002); Hinton, Osindero &
    Teh (2006); Tieleman (2008); Salakhutdinov & Murray (2008); Salakhutdinov & Hinton (2009).
"""

from dgm_lab.energy._common import MAX_ENUMERATION_UNITS
from dgm_lab.energy.ais import (
    AISResult,
    ais_log_partition,
    annealing_schedule,
    base_rate_bias,
    raise_log_prob,
)
from dgm_lab.energy.boltzmann import (
    UNITS,
    BoltzmannMachine,
    conditional_probs,
    energy,
    enumerate_states,
    joint_probabilities,
    log_partition,
    marginals,
)
from dgm_lab.energy.dbm import DBM, MeanFieldPCD
from dgm_lab.energy.dbn import DBN
from dgm_lab.energy.rbm import RBM, ContrastiveDivergence

__all__ = [
    "MAX_ENUMERATION_UNITS",
    "UNITS",
    "AISResult",
    "BoltzmannMachine",
    "ContrastiveDivergence",
    "DBM",
    "DBN",
    "MeanFieldPCD",
    "RBM",
    "ais_log_partition",
    "annealing_schedule",
    "base_rate_bias",
    "conditional_probs",
    "energy",
    "enumerate_states",
    "joint_probabilities",
    "log_partition",
    "marginals",
    "raise_log_prob",
]
