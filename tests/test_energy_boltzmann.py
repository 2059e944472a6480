"""dgm_lab.energy.boltzmann against brute force written out here with itertools and floats.

Oracles: the lecture's worked 3-unit example recomputed by plain Python loops; exact sums
over every state (itertools.product, math.exp); autograd of a log-likelihood built here from
scratch; scipy's chi-square test for exact sampling; and Gibbs averages against the exact
marginals.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
import torch

from dgm_lab.energy import (
    MAX_ENUMERATION_UNITS,
    BoltzmannMachine,
    conditional_probs,
    energy,
    enumerate_states,
    joint_probabilities,
    log_partition,
    marginals,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# The lecture's example: spins x1, x2, x3; w12 = -1, w13 = -1, w23 = 2, b2 = 1 (the table's
# columns w12*x1*x2, w13*x1*x3, w23*x2*x3, b2*x2 read off its first row).
PAIRS = {(0, 1): -1.0, (0, 2): -1.0, (1, 2): 2.0}
BIAS3 = (0.0, 1.0, 0.0)


def example_machine() -> tuple[torch.Tensor, torch.Tensor]:
    w = torch.zeros(3, 3, dtype=torch.float64)
    for (i, j), value in PAIRS.items():
        w[i, j] = w[j, i] = value
    return w, torch.tensor(BIAS3, dtype=torch.float64)


def brute_force(pairs: dict, bias, values=(-1, 1)) -> dict[tuple, float]:
    """Unnormalised probability exp(-E(x)) of every state, E = -sum_{i<j} w_ij x_i x_j - b.x."""
    table = {}
    for x in itertools.product(values, repeat=len(bias)):
        happiness = sum(w * x[i] * x[j] for (i, j), w in pairs.items())
        happiness += sum(b * xi for b, xi in zip(bias, x, strict=True))
        table[x] = math.exp(happiness)
    return table


def random_machine(d: int, seed: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64) * scale
    w = torch.triu(a, 1)
    return w + w.T, torch.randn(d, generator=g, dtype=torch.float64) * scale


def pairs_of(w: torch.Tensor) -> dict:
    return {(i, j): w[i, j].item() for i in range(len(w)) for j in range(i + 1, len(w))}


# --------------------------------------------------------------------------------------
# the worked example of the lecture
# --------------------------------------------------------------------------------------

def test_the_three_unit_example_against_brute_force_and_the_notes():
    table = brute_force(PAIRS, BIAS3)
    z = sum(table.values())
    w, b = example_machine()
    assert log_partition(w, b, units="spin").exp().item() == pytest.approx(z, rel=1e-12)
    states, probs = joint_probabilities(w, b, units="spin")
    for state, p in zip(states.tolist(), probs.tolist(), strict=True):
        assert p == pytest.approx(table[tuple(int(s) for s in state)] / z, rel=1e-12)
    # what the notes print: Z = 172.420, p(x1 = 1) = 0.135, p(x1 = 1 | x2 = -1) = 0.980
    assert round(z, 3) == 172.420
    p_x1 = sum(p for x, p in table.items() if x[0] == 1) / z
    assert round(p_x1, 3) == 0.135
    assert marginals(w, b, units="spin")[0].item() == pytest.approx(p_x1, rel=1e-12)
    cond = (sum(p for x, p in table.items() if x[:2] == (1, -1))
            / sum(p for x, p in table.items() if x[1] == -1))
    assert round(cond, 3) == 0.980
    # the notes' happiness column prints -3 for (-1, 1, -1); the energy is 1, exp(-E) = 0.368
    row = torch.tensor([[-1.0, 1.0, -1.0]], dtype=torch.float64)
    assert -energy(row, w, b).item() == pytest.approx(-1.0)
    assert round(table[(-1, 1, -1)], 3) == 0.368


def test_enumerate_states_counts_in_order():
    s = enumerate_states(3, "spin")
    assert s.shape == (8, 3) and s.dtype == torch.float32
    assert s.tolist() == [list(x) for x in itertools.product((-1.0, 1.0), repeat=3)]
    b = enumerate_states(4, dtype=torch.float64)
    assert b.tolist() == [list(x) for x in itertools.product((0.0, 1.0), repeat=4)]
    assert len(enumerate_states(MAX_ENUMERATION_UNITS - 4)) == 2 ** (MAX_ENUMERATION_UNITS - 4)


# --------------------------------------------------------------------------------------
# exact answers on random machines
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("units", ["binary", "spin"])
@pytest.mark.parametrize("d", [1, 4, 9])
def test_log_partition_marginals_and_energy_match_brute_force(units, d):
    w, b = random_machine(d, seed=d)
    values = (0, 1) if units == "binary" else (-1, 1)
    table = brute_force(pairs_of(w), b.tolist(), values)
    z = sum(table.values())
    assert log_partition(w, b, units=units).item() == pytest.approx(math.log(z), abs=1e-10)
    on = 1
    expected = [sum(p for x, p in table.items() if x[i] == on) / z for i in range(d)]
    np.testing.assert_allclose(marginals(w, b, units=units).numpy(), expected, atol=1e-12)
    states = enumerate_states(d, units, dtype=torch.float64)
    log_table = [math.log(table[tuple(int(v) for v in s)]) for s in states.tolist()]
    np.testing.assert_allclose(-energy(states, w, b).numpy(), log_table, atol=1e-10)


def test_large_weights_do_not_overflow_and_float32_agrees():
    w, b = random_machine(12, seed=3, scale=60.0)
    exact = log_partition(w, b)
    assert torch.isfinite(exact) and exact > 100  # e^100 overflows nothing in log space
    states = enumerate_states(12, dtype=torch.float64)
    assert exact.item() == pytest.approx((-energy(states, w, b)).max().item(), abs=1e-6)
    f32 = log_partition(w.float(), b.float())
    assert f32.dtype == torch.float32
    assert f32.item() == pytest.approx(exact.item(), rel=1e-6)


def test_integer_weights_are_computed_in_float32_as_documented():
    """The docstring: integer weights give a float32 result (not an integer one, not float64)."""
    w, b = random_machine(6, seed=4, scale=3.0)
    w, b = w.round(), b.round()
    got = log_partition(w.long(), b.long())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(log_partition(w, b).item(), rel=1e-6)


def test_the_chunked_sum_covers_every_state():
    """18 units: 2^18 states, several chunks; zero weights give log Z = sum log(1 + e^b)."""
    g = torch.Generator().manual_seed(0)
    b = torch.randn(18, generator=g, dtype=torch.float64)
    expected = torch.log1p(b.exp()).sum()
    assert log_partition(torch.zeros(18, 18, dtype=torch.float64), b).item() == \
        pytest.approx(expected.item(), abs=1e-9)
    np.testing.assert_allclose(marginals(torch.zeros(18, 18, dtype=torch.float64), b).numpy(),
                               torch.sigmoid(b).numpy(), atol=1e-12)


@pytest.mark.parametrize("units", ["binary", "spin"])
def test_conditionals_are_ratios_of_joint_probabilities(units):
    w, b = random_machine(5, seed=11)
    values = (0, 1) if units == "binary" else (-1, 1)
    table = brute_force(pairs_of(w), b.tolist(), values)
    states = enumerate_states(5, units, dtype=torch.float64)
    got = conditional_probs(states, w, b, units=units)
    for row, state in zip(got.tolist(), states.tolist(), strict=True):
        for i in range(5):
            on, off = list(map(int, state)), list(map(int, state))
            on[i], off[i] = values[1], values[0]
            expected = table[tuple(on)] / (table[tuple(on)] + table[tuple(off)])
            assert row[i] == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------------------
# the model: exact sampling, Gibbs sampling, the gradient, learning
# --------------------------------------------------------------------------------------

def test_exact_sampling_passes_a_chi_square_test():
    w, b = random_machine(4, seed=5)
    bm = BoltzmannMachine.from_parameters(w, b, n_hidden=1)
    draws = bm.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (20_000, 3)
    codes = (draws @ torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)).long()
    observed = torch.bincount(codes, minlength=8).numpy()
    visible = enumerate_states(3, dtype=torch.float64)
    expected = bm.log_prob(visible).exp().detach().numpy() * len(draws)
    assert expected.sum() == pytest.approx(len(draws))
    assert scipy.stats.chisquare(observed, expected).pvalue > 1e-3


@pytest.mark.parametrize("units", ["binary", "spin"])
def test_gibbs_marginals_match_the_exact_ones_within_0_02(units):
    w, b = random_machine(5, seed=21)
    bm = BoltzmannMachine.from_parameters(w, b, units=units)
    g = torch.Generator().manual_seed(1)
    low = -1.0 if units == "spin" else 0.0
    start = torch.full((200, 5), low, dtype=torch.float64)  # every chain starts in one corner
    trace = bm.gibbs_chain(start, 150, generator=g)
    assert trace.shape == (150, 200, 5)
    on = (trace[30:] == 1).double().mean((0, 1))
    assert (on - bm.marginals()).abs().max() < 0.02
    # the worked example too: its two likeliest states differ in every unit, and the chains
    # cross between them rarely (a few percent of sweeps), so they run longer
    ex = BoltzmannMachine.from_parameters(*example_machine(), units="spin")
    trace = ex.gibbs_chain(-torch.ones(200, 3, dtype=torch.float64), 800, generator=g)
    assert ((trace[100:] == 1).double().mean((0, 1)) - ex.marginals()).abs().max() < 0.02


def test_a_gibbs_sweep_redraws_each_unit_from_its_conditional():
    """Unit 0's new value follows sigma(field) of the other units' current values."""
    w, b = random_machine(3, seed=2)
    bm = BoltzmannMachine.from_parameters(w, b)
    x = torch.tensor([[0.0, 1.0, 1.0]], dtype=torch.float64).repeat(40_000, 1)
    after = bm.gibbs_sweep(x, generator=torch.Generator().manual_seed(0))
    p0 = conditional_probs(x[:1], w, b)[0, 0].item()
    assert after[:, 0].mean().item() == pytest.approx(p0, abs=4 * math.sqrt(p0 * (1 - p0) / 4e4))
    assert torch.equal(x[:, 1:], torch.tensor([[1.0, 1.0]], dtype=torch.float64).expand(40_000, 2))


def exact_mean_log_likelihood(theta: torch.Tensor, bias: torch.Tensor, v: torch.Tensor,
                              n_hidden: int) -> torch.Tensor:
    """Written from scratch: W from its upper triangle theta, sums over itertools states."""
    d = len(bias)
    w = torch.zeros(d, d, dtype=theta.dtype)
    iu = torch.triu_indices(d, d, 1)
    w = w.index_put((iu[0], iu[1]), theta).index_put((iu[1], iu[0]), theta)

    def log_unnorm(x):
        return sum(w[i, j] * x[i] * x[j] for i in range(d) for j in range(i + 1, d)) + bias @ x

    every = [torch.tensor(s, dtype=theta.dtype) for s in itertools.product((0.0, 1.0), repeat=d)]
    log_z = torch.logsumexp(torch.stack([log_unnorm(x) for x in every]), 0)
    total = 0
    for row in v:
        hidden = [torch.cat([row, torch.tensor(h, dtype=theta.dtype)])
                  for h in itertools.product((0.0, 1.0), repeat=n_hidden)]
        total = total + torch.logsumexp(torch.stack([log_unnorm(x) for x in hidden]), 0) - log_z
    return total / len(v)


def test_the_gradient_is_data_minus_model_statistics_as_autograd_says():
    w, b = random_machine(5, seed=4)
    bm = BoltzmannMachine.from_parameters(w, b, n_hidden=2)
    v = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    grad_w, grad_b = bm.log_likelihood_gradient(v)
    iu = torch.triu_indices(5, 5, 1)
    theta = w[iu[0], iu[1]].clone().requires_grad_(True)
    bias = b.clone().requires_grad_(True)
    exact_mean_log_likelihood(theta, bias, v, n_hidden=2).backward()
    np.testing.assert_allclose(grad_w[iu[0], iu[1]].numpy(), theta.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(grad_b.numpy(), bias.grad.numpy(), atol=1e-10)
    assert torch.equal(grad_w, grad_w.T) and (grad_w.diagonal() == 0).all()
    # and the model's log_prob is the same likelihood
    assert bm.log_prob(v).mean().item() == pytest.approx(
        exact_mean_log_likelihood(theta, bias, v, 2).item(), abs=1e-10)


def test_hidden_units_let_a_boltzmann_machine_learn_parity():
    """Even-parity triples: a fully visible machine can only match means and pairwise
    correlations, which are those of the uniform distribution (log 8 nats per example);
    with hidden units the likelihood approaches the truth (log 4)."""
    x = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]],
                     dtype=torch.float64)
    visible_only = BoltzmannMachine(0, max_iter=300).fit(x)
    assert -visible_only.log_prob(x).mean().item() == pytest.approx(math.log(8), abs=0.01)
    for seed in (0, 1):
        hidden = BoltzmannMachine(3, max_iter=300, seed=seed).fit(x)
        assert -hidden.log_prob(x).mean().item() < math.log(4) + 0.05
    assert hidden.n_iter_ > 0 and isinstance(hidden.converged_, bool)


def test_fit_stops_when_the_gradient_vanishes():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    bm = BoltzmannMachine(0, lr=1.0, momentum=0.0, max_iter=1000, tol=1e-8).fit(x)
    assert bm.converged_ and bm.n_iter_ < 1000
    np.testing.assert_allclose(bm.marginals().numpy(), [0.5, 0.5], atol=1e-7)


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------

def test_bad_machines_and_states_get_clear_errors():
    w, b = example_machine()
    with pytest.raises(ValueError, match="weights must be symmetric"):
        log_partition(torch.triu(w), b)
    with pytest.raises(ValueError, match="zero diagonal"):
        log_partition(w + torch.eye(3, dtype=w.dtype), b)
    with pytest.raises(ValueError, match="one bias per unit"):
        log_partition(w, b[:2])
    with pytest.raises(ValueError, match="unknown units"):
        marginals(w, b, units="ising")
    with pytest.raises(ValueError, match=r"2\^21 states.*ais_log_partition"):
        log_partition(torch.zeros(21, 21), torch.zeros(21))
    with pytest.raises(ValueError, match="spins"):
        conditional_probs(torch.zeros(2, 3), w, b, units="spin")
    with pytest.raises(ValueError, match="binary"):
        conditional_probs(-torch.ones(2, 3), w, b)
    with pytest.raises(ValueError, match="x has 4 units per row but the machine has 3"):
        conditional_probs(torch.zeros(2, 4), w, b)
    with pytest.raises(ValueError, match="x has 2 units per row"):
        energy(torch.zeros(1, 2), w, b)
    with pytest.raises(TypeError, match="real numbers"):
        energy(torch.zeros(1, 3), w.to(torch.complex128), b)
    with pytest.raises(ValueError, match="leaves no visible unit"):
        BoltzmannMachine.from_parameters(w, b, n_hidden=3)
    with pytest.raises(ValueError, match="n_hidden must be >= 0"):
        BoltzmannMachine(-1)
    with pytest.raises(ValueError, match="2\\^22 states"):
        BoltzmannMachine(20).fit(torch.zeros(3, 2))
    bm = BoltzmannMachine.from_parameters(w, b, units="spin")
    with pytest.raises(ValueError, match="spins"):
        bm.log_prob(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="n_sweeps must be"):
        bm.gibbs_chain(torch.ones(2, 3), 0)
    with pytest.raises(RuntimeError, match=r"not fitted yet: call fit\(x\) or"):
        BoltzmannMachine().log_partition()
