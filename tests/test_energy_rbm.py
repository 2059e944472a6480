"""dgm_lab.energy.rbm and dgm_lab.energy.ais against independent oracles.

Oracles: brute-force sums over every (v, h) written out here with itertools; autograd of a
log-likelihood built from those sums (the exact gradient that CD-k approaches); scikit-learn's
``BernoulliRBM`` (its update ``_fit`` fed the same weights, batch, chains and uniform draws,
and its ``score_samples`` with the same flipped units); scipy's chi-square test for samplers;
the exact marginal of the annealing process (products of transition matrices) for RAISE;
and the unbiasedness of AIS weights.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
import torch
from sklearn.neural_network import BernoulliRBM

import dgm_lab.energy._common as common
from dgm_lab import train
from dgm_lab.energy import (
    RBM,
    AISResult,
    ContrastiveDivergence,
    ais_log_partition,
    annealing_schedule,
    base_rate_bias,
    enumerate_states,
    raise_log_prob,
)

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def random_rbm(v: int, h: int, seed: int, scale: float = 1.0) -> RBM:
    g = torch.Generator().manual_seed(seed)
    return RBM.from_parameters(torch.randn(v, h, generator=g, dtype=F64) * scale,
                               torch.randn(v, generator=g, dtype=F64) * 0.5,
                               torch.randn(h, generator=g, dtype=F64) * 0.5)


def brute_force_log_joint(w: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """log exp(-E(v, h)) for every (v, h), [2^V, 2^H], from itertools (differentiable)."""
    vs = torch.tensor(list(itertools.product((0.0, 1.0), repeat=len(b))), dtype=w.dtype)
    hs = torch.tensor(list(itertools.product((0.0, 1.0), repeat=len(c))), dtype=w.dtype)
    return vs @ w @ hs.T + (vs @ b)[:, None] + (hs @ c)[None, :]


def code_of(v: torch.Tensor) -> torch.Tensor:
    """Row index of binary rows in itertools.product order."""
    return (v * 2.0 ** torch.arange(v.shape[1] - 1, -1, -1, dtype=v.dtype)).sum(1).round().long()


# --------------------------------------------------------------------------------------
# free energy, log Z, conditionals: exact against brute force
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("v", "h"), [(6, 3), (3, 6)])  # both layers get enumerated
def test_free_energy_log_partition_and_log_prob_against_brute_force(v, h):
    rbm = random_rbm(v, h, seed=v)
    table = brute_force_log_joint(rbm.weight.detach(), rbm.visible_bias.detach(),
                                  rbm.hidden_bias.detach())
    states = enumerate_states(v, dtype=F64)
    np.testing.assert_allclose(-rbm.free_energy(states).detach().numpy(),
                               torch.logsumexp(table, 1).numpy(), atol=1e-10)
    log_z = torch.logsumexp(table.flatten(), 0).item()
    assert rbm.log_partition().item() == pytest.approx(log_z, abs=1e-10)
    log_p = rbm.log_prob(states).detach()
    np.testing.assert_allclose(log_p.numpy(), (torch.logsumexp(table, 1) - log_z).numpy(),
                               atol=1e-10)
    hidden = enumerate_states(h, dtype=F64)
    np.testing.assert_allclose(-rbm.hidden_free_energy(hidden).detach().numpy(),
                               torch.logsumexp(table, 0).numpy(), atol=1e-10)
    # energies of paired rows
    e = rbm.energy(states[:4], hidden[:4]).detach()
    np.testing.assert_allclose(-e.numpy(), table[:4, :4].diagonal().numpy(), atol=1e-12)


def test_free_energy_is_exact_in_the_softplus_tail():
    """log(1 + e^a) for a = 30, 35: the last bits too (torch's default softplus returns a
    itself above 20, 1e-13 off)."""
    rbm = RBM.from_parameters(torch.zeros(1, 2, dtype=F64), torch.zeros(1, dtype=F64),
                              torch.tensor([30.0, 35.0], dtype=F64))
    expected = -(30 + math.log1p(math.exp(-30)) + 35 + math.log1p(math.exp(-35)))
    assert abs(rbm.free_energy(torch.zeros(1, 1, dtype=F64)).item() - expected) < 1e-14


def test_conditionals_factorise_and_match_the_joint():
    rbm = random_rbm(4, 3, seed=1)
    table = brute_force_log_joint(rbm.weight.detach(), rbm.visible_bias.detach(),
                                  rbm.hidden_bias.detach())
    posterior = torch.softmax(table, 1)  # p(h | v) for every v: [16, 8]
    hidden = enumerate_states(3, dtype=F64)
    np.testing.assert_allclose(rbm.hidden_probs(enumerate_states(4, dtype=F64)).detach().numpy(),
                               (posterior @ hidden).numpy(), atol=1e-12)
    likelihood = torch.softmax(table, 0)  # p(v | h): [16, 8]
    np.testing.assert_allclose(rbm.visible_probs(hidden).detach().numpy(),
                               (likelihood.T @ enumerate_states(4, dtype=F64)).numpy(), atol=1e-12)
    # p(h | v) is the product of its marginals: the layer's units are independent given v
    product = torch.exp(torch.stack([
        (hidden * p.log() + (1 - hidden) * (1 - p).log()).sum(1)
        for p in rbm.hidden_probs(enumerate_states(4, dtype=F64)).detach()]))
    np.testing.assert_allclose(product.numpy(), posterior.numpy(), atol=1e-12)


def test_initialize_gives_the_smoothed_pixel_marginals():
    x = (torch.rand(50, 5, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    x[:, 4] = 0  # a pixel that is never on still gets a finite bias
    rbm = RBM(3, init_std=0.0).initialize(x)
    p = (x.sum(0) + 1) / 52
    expected = (x * p.log() + (1 - x) * (1 - p).log()).sum(1)
    np.testing.assert_allclose(rbm.log_prob(x).detach().numpy(), expected.numpy(), atol=1e-10)
    assert (rbm.hidden_bias == 0).all() and (rbm.weight == 0).all()
    w = RBM(3, init_std=0.01, seed=4).initialize(x).weight
    assert w.std().item() == pytest.approx(0.01, rel=0.5) and w.dtype == F64


# --------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------

def chi_square_pvalue(draws: torch.Tensor, probs: torch.Tensor) -> float:
    observed = torch.bincount(code_of(draws), minlength=len(probs)).numpy()
    return scipy.stats.chisquare(observed, probs.numpy() * len(draws)).pvalue


@pytest.mark.parametrize(("v", "h"), [(4, 2), (3, 5)])
def test_exact_sampling_passes_a_chi_square_test(v, h):
    rbm = random_rbm(v, h, seed=3)
    draws = rbm.sample(20_000, generator=torch.Generator().manual_seed(0))
    probs = rbm.log_prob(enumerate_states(v, dtype=F64)).exp().detach()
    assert chi_square_pvalue(draws, probs) > 1e-3


def test_block_gibbs_chains_reach_the_rbm_distribution():
    rbm = random_rbm(4, 3, seed=2, scale=1.5)
    start = torch.zeros(20_000, 4, dtype=F64)  # every chain starts at the same state
    g = torch.Generator().manual_seed(0)
    v, probs = rbm.gibbs_chain(start, 30, generator=g)
    exact = rbm.log_prob(enumerate_states(4, dtype=F64)).exp().detach()
    assert chi_square_pvalue(v, exact) > 1e-3
    assert not torch.equal(probs, v) and ((probs > 0) & (probs < 1)).all()
    # one step: h is drawn from p(h | v), v' from p(v | h)
    h, v1, p1 = rbm.gibbs_step(start, generator=g)
    assert h.mean(0).numpy() == pytest.approx(rbm.hidden_probs(start[:1])[0].detach().numpy(),
                                              abs=0.015)
    torch.testing.assert_close(p1, rbm.visible_probs(h).detach())
    assert ((v1 == 0) | (v1 == 1)).all()


def test_large_rbms_sample_by_gibbs_from_the_biases_model():
    """Both layers too large to enumerate: sample() runs Gibbs chains; with W = 0 their
    pixels are independent Bernoulli(sigmoid(b))."""
    g = torch.Generator().manual_seed(0)
    b = torch.randn(24, generator=g, dtype=F64)
    rbm = RBM.from_parameters(torch.zeros(24, 22, dtype=F64), b, torch.zeros(22, dtype=F64),
                              sample_steps=3)
    draws = rbm.sample(20_000, generator=g)
    p = torch.sigmoid(b)
    assert ((draws.mean(0) - p).abs() < 4 * (p * (1 - p) / 20_000).sqrt()).all()
    with pytest.raises(ValueError, match=r"2\^22 states.*ais_log_partition"):
        rbm.log_partition()


# --------------------------------------------------------------------------------------
# learning: CD-k approaches the exact gradient; scikit-learn's update
# --------------------------------------------------------------------------------------

def test_cd_k_approaches_the_exact_gradient_as_k_grows():
    rbm = random_rbm(6, 4, seed=7, scale=1.2)
    data = torch.tensor(list(itertools.product((0.0, 1.0), repeat=6)), dtype=F64)[::7]
    params = [rbm.weight, rbm.visible_bias, rbm.hidden_bias]
    # the exact gradient, by autograd of the brute-force mean log-likelihood
    w, b, c = (p.detach().clone().requires_grad_(True) for p in params)
    table = brute_force_log_joint(w, b, c)
    rows = code_of(data)
    mean_ll = (torch.logsumexp(table, 1)[rows] - torch.logsumexp(table.flatten(), 0)).mean()
    exact = torch.cat([g.flatten() for g in torch.autograd.grad(mean_ll, (w, b, c))])

    def cd_gradient(k):
        loss = ContrastiveDivergence(k, generator=torch.Generator().manual_seed(k))
        big = data.repeat(4000, 1)  # many chains per data point: little Monte Carlo noise
        grads = torch.autograd.grad(loss(rbm, big), params)
        return -torch.cat([g.flatten() for g in grads])

    errors = {k: ((cd_gradient(k) - exact).norm() / exact.norm()).item() for k in (1, 30)}
    assert errors[30] < 0.05 < errors[1], errors


def test_the_pcd_update_is_scikit_learns_given_the_same_draws(monkeypatch):
    rbm = random_rbm(7, 5, seed=9)
    g = torch.Generator().manual_seed(1)
    v = (torch.rand(10, 7, generator=g) < 0.5).double()
    chain = (torch.rand(10, 5, generator=g) < 0.5).double()
    sk = BernoulliRBM(n_components=5, learning_rate=0.3, batch_size=10)
    sk.components_ = rbm.weight.detach().T.numpy().copy()
    sk.intercept_visible_ = rbm.visible_bias.detach().numpy().copy()
    sk.intercept_hidden_ = rbm.hidden_bias.detach().numpy().copy()
    sk.h_samples_ = chain.numpy().copy()
    sk._fit(v.numpy(), np.random.RandomState(5))

    stream = np.random.RandomState(5)  # the same uniforms, in the order scikit-learn draws them

    def same_uniforms(shape, generator, *, device, dtype):
        return torch.as_tensor(stream.uniform(size=tuple(shape)), dtype=dtype, device=device)

    monkeypatch.setattr(common, "rand", same_uniforms)
    loss = ContrastiveDivergence(1, persistent=True)
    loss.chain = chain.clone()
    train.fit(rbm, loss, v, epochs=1, batch_size=10, device="cpu", progress=False,
              optimizer=torch.optim.SGD(rbm.parameters(), lr=0.3))
    np.testing.assert_allclose(rbm.weight.detach().numpy(), sk.components_.T, atol=1e-12)
    np.testing.assert_allclose(rbm.visible_bias.detach().numpy(), sk.intercept_visible_,
                               atol=1e-12)
    np.testing.assert_allclose(rbm.hidden_bias.detach().numpy(), sk.intercept_hidden_,
                               atol=1e-12)
    np.testing.assert_array_equal(loss.chain.numpy(), sk.h_samples_)


def test_pseudo_likelihood_matches_scikit_learn_and_the_exact_conditionals():
    rbm = random_rbm(8, 5, seed=4)
    g = torch.Generator().manual_seed(2)
    v = (torch.rand(30, 8, generator=g) < 0.4).double()
    sk = BernoulliRBM(n_components=5, random_state=11)
    sk.components_ = rbm.weight.detach().T.numpy()
    sk.intercept_visible_ = rbm.visible_bias.detach().numpy()
    sk.intercept_hidden_ = rbm.hidden_bias.detach().numpy()
    index = torch.as_tensor(np.random.RandomState(11).randint(0, 8, 30))  # what it flips
    np.testing.assert_allclose(rbm.pseudo_log_likelihood(v, index).numpy(),
                               sk.score_samples(v.numpy()), atol=1e-10)
    # the full sum: log p(v_i | v_-i) from the exact joint, and the mean over all indices
    full = rbm.pseudo_log_likelihood(v)
    log_p = rbm.log_prob(enumerate_states(8, dtype=F64)).detach()
    expected = []
    for row in v:
        total = 0.0
        for i in range(8):
            flipped = row.clone()
            flipped[i] = 1 - flipped[i]
            a, b = log_p[code_of(row[None])].item(), log_p[code_of(flipped[None])].item()
            total += a - np.logaddexp(a, b)
        expected.append(total)
    np.testing.assert_allclose(full.numpy(), expected, atol=1e-10)
    each = torch.stack([rbm.pseudo_log_likelihood(v, torch.full((30,), i)) for i in range(8)])
    np.testing.assert_allclose(each.mean(0).numpy(), full.numpy(), atol=1e-10)


def test_fit_learns_held_out_structure():
    """Two noisy prototypes: the trained RBM beats independent pixels on held-out data by
    a wide margin (exact likelihoods: 5 hidden units are enumerated)."""
    g = torch.Generator().manual_seed(0)
    protos = torch.tensor([[1.0] * 5 + [0.0] * 5, [0.0] * 5 + [1.0] * 5], dtype=F64)

    def draw(n):
        x = protos[torch.randint(2, (n,), generator=g)]
        flip = torch.rand(n, 10, generator=g, dtype=F64) < 0.05
        return torch.where(flip, 1 - x, x)

    train_x, test_x = draw(400), draw(400)
    rbm = RBM(5, seed=0).fit(train_x, epochs=30, lr=0.1, batch_size=20)
    p = (train_x.sum(0) + 1) / 402
    independent = (test_x * p.log() + (1 - test_x) * (1 - p).log()).sum(1).mean().item()
    learned = rbm.log_prob(test_x).mean().item()
    assert learned > independent + 3.0, (learned, independent)
    assert len(rbm.history_.epoch["loss"]) == 30
    # CD-1 without persistent chains learns too
    cd = RBM(5, seed=0).fit(train_x, epochs=30, lr=0.1, persistent=False, anneal_lr=False)
    assert cd.log_prob(test_x).mean().item() > independent + 3.0


@pytest.mark.parametrize("persistent, k, n_chains, weight_decay, momentum, anneal, flip", [
    (True, 1, None, 0.0, 0.5, True, False), (False, 2, None, 0.01, 0.0, False, False),
    (True, 3, 7, 0.0, 0.9, True, True)])
def test_fit_takes_the_steps_of_train_fit_with_contrastive_divergence(
        persistent, k, n_chains, weight_decay, momentum, anneal, flip):
    """The lean loop of RBM.fit against the plain route: train.fit with the autograd loss
    ContrastiveDivergence, torch's SGD and a LambdaLR decay, the same seeds: the same draws,
    so the same parameters to rounding, and the same loss on each epoch's last batch."""
    x = (torch.rand(73, 9, generator=torch.Generator().manual_seed(4)) < 0.4).double()
    transform = (lambda batch: 1 - batch) if flip else None  # noqa: E731
    options = {"k": k, "persistent": persistent, "n_chains": n_chains,
               "weight_decay": weight_decay, "momentum": momentum, "anneal_lr": anneal,
               "lr": 0.2, "batch_size": 10, "transform": transform}
    lean = RBM(6, seed=3, init_std=1.0).fit(x, epochs=3, **options)  # far from p = 1/2
    plain = RBM(6, seed=3, init_std=1.0).initialize(1 - x if flip else x)
    cd = ContrastiveDivergence(k, persistent=persistent, n_chains=n_chains,
                               weight_decay=weight_decay,
                               generator=torch.Generator().manual_seed(3))
    optimizer = torch.optim.SGD(plain.parameters(), lr=0.2, momentum=momentum)
    scheduler = (torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1 - e / 3)
                 if anneal else None)
    history = train.fit(plain, lambda m, b: cd(m, 1 - b if flip else b),
                        common.shuffled_batches(x, 10, 3), epochs=3, optimizer=optimizer,
                        scheduler=scheduler, seed=3, progress=False)
    for name in ("weight", "visible_bias", "hidden_bias"):
        torch.testing.assert_close(getattr(lean, name), getattr(plain, name), rtol=0,
                                   atol=1e-12)
    last_steps = history.step["loss"][7::8]  # 73 rows in batches of 10: 8 steps an epoch
    np.testing.assert_allclose(lean.history_.epoch["loss"], last_steps, rtol=1e-12)


def test_training_repeats_exactly_with_the_same_seed():
    x = (torch.rand(60, 6, generator=torch.Generator().manual_seed(3)) < 0.5).double()
    a = RBM(4, seed=2).fit(x, epochs=3)
    b = RBM(4, seed=2).fit(x, epochs=3)
    c = RBM(4, seed=3).fit(x, epochs=3)
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)


# --------------------------------------------------------------------------------------
# AIS and RAISE
# --------------------------------------------------------------------------------------

def test_ais_is_within_0_1_nats_and_does_not_drift_with_the_number_of_betas():
    rbm = random_rbm(12, 8, seed=0)
    exact = rbm.log_partition().item()
    means = {}
    for n_betas in (100, 1000):
        runs = [ais_log_partition(rbm, n_chains=100, betas=n_betas,
                                  generator=torch.Generator().manual_seed(s)).log_z
                for s in range(4)]
        means[n_betas] = float(np.mean(runs))
        assert abs(means[n_betas] - exact) < 0.1, (n_betas, runs, exact)
    assert abs(means[100] - means[1000]) < 0.1


def test_ais_weights_are_unbiased_even_with_few_betas():
    rbm = random_rbm(8, 5, seed=1)
    base = torch.randn(8, generator=torch.Generator().manual_seed(0), dtype=F64)
    result = ais_log_partition(rbm, n_chains=40_000, betas=torch.linspace(0, 1, 4, dtype=F64),
                               base_bias=base, generator=torch.Generator().manual_seed(0))
    w = torch.exp(result.log_weights + result.log_z_base - rbm.log_partition())  # Z-hat / Z
    assert abs(w.mean().item() - 1) < 4 * w.std().item() / math.sqrt(len(w))
    assert result.log_z_base == pytest.approx(
        (torch.nn.functional.softplus(base).sum() + 5 * math.log(2)).item())


def transition_matrix(rbm: RBM, base: torch.Tensor, beta: float) -> torch.Tensor:
    """T[v, v'] = sum_h p_beta(h | v) p_beta(v' | h), every state enumerated."""
    w, b, c = rbm.weight.detach(), rbm.visible_bias.detach(), rbm.hidden_bias.detach()
    vs, hs = enumerate_states(len(b), dtype=F64), enumerate_states(len(c), dtype=F64)

    def bern(x, logits):  # [m, n] probabilities of rows x under every row of logits
        return torch.exp(x @ logits.T - torch.nn.functional.softplus(logits).sum(1)).T

    p_h = bern(hs, beta * (vs @ w + c))  # [2^V, 2^H]
    p_v = bern(vs, (1 - beta) * base + beta * (hs @ w.T + b))  # [2^H, 2^V]
    return p_h @ p_v


def test_raise_is_an_unbiased_estimate_of_the_annealing_model():
    rbm = random_rbm(4, 3, seed=5, scale=1.5)
    base = torch.zeros(4, dtype=F64)
    betas = torch.linspace(0, 1, 4, dtype=F64)
    p_ann = torch.full((16,), 1 / 16, dtype=F64)  # the base model: uniform
    for beta in betas[1:]:
        p_ann = p_ann @ transition_matrix(rbm, base, beta.item())
    assert p_ann.sum().item() == pytest.approx(1.0)
    x = enumerate_states(4, dtype=F64)[[3, 12]]
    est = raise_log_prob(rbm, x, n_chains=40_000, betas=betas, base_bias=base,
                         generator=torch.Generator().manual_seed(0)).exp()
    np.testing.assert_allclose(est.numpy(), p_ann[[3, 12]].numpy(), rtol=0.03)
    # with slow annealing it approaches the RBM's own log-likelihood
    slow = raise_log_prob(rbm, x, n_chains=200, betas=300, base_bias=base,
                          generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(slow.numpy(), rbm.log_prob(x).detach().numpy(), atol=0.05)


def test_schedule_base_rates_and_result_summaries():
    betas = annealing_schedule(290)
    assert len(betas) == 291 and betas[0] == 0 and betas[-1] == 1
    assert (betas.diff() > 0).all()
    assert (betas < 0.5).sum() == 10 and ((betas >= 0.5) & (betas < 0.9)).sum() == 80
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(base_rate_bias(x), torch.log(torch.tensor([3 / 2, 1 / 4])))
    equal = AISResult(torch.zeros(8, dtype=F64), 2.0)
    assert equal.log_z == 2.0 and equal.log_z_std == 0.0 and equal.effective_sample_size == \
        pytest.approx(8)
    lw = torch.tensor([0.0, math.log(3.0)], dtype=F64)
    r = AISResult(lw, 0.0)
    assert r.log_z == pytest.approx(math.log(2.0))
    assert r.log_z_std == pytest.approx(np.std([1, 3], ddof=1) / (2 * math.sqrt(2)))
    assert r.effective_sample_size == pytest.approx(16 / 10)
    low, high = r.log_z_bounds
    assert low == -math.inf and high == pytest.approx(math.log(2 * (1 + 3 * r.log_z_std)))


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------

def test_bad_input_gets_clear_errors():
    rbm = random_rbm(4, 3, seed=0)
    with pytest.raises(ValueError, match="visible_bias must have 4 entries"):
        RBM.from_parameters(torch.zeros(4, 3), torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="v has 5 features but this RBM's layer has 4"):
        rbm.free_energy(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="h has 4 features"):
        rbm.visible_probs(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="same number of rows"):
        rbm.energy(torch.zeros(2, 4), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="binary"):
        rbm.log_prob(torch.full((2, 4), 0.5))
    with pytest.raises(ValueError, match="binary"):
        RBM(3).fit(torch.full((5, 4), 0.5))
    with pytest.raises(ValueError, match="index must hold units 0..3"):
        rbm.pseudo_log_likelihood(torch.zeros(2, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="index must be"):
        rbm.pseudo_log_likelihood(torch.zeros(2, 4), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="k must be >= 1"):
        ContrastiveDivergence(0)
    with pytest.raises(TypeError, match="persistent must be True or False"):
        ContrastiveDivergence(1, persistent=1)
    with pytest.raises(TypeError, match="trains an RBM"):
        ContrastiveDivergence(1)(torch.nn.Linear(2, 2), torch.zeros(2, 2))
    with pytest.raises(TypeError, match="transform must be callable"):
        RBM(3).fit(torch.zeros(5, 4), transform=3)
    with pytest.raises(ValueError, match="betas must increase"):
        ais_log_partition(rbm, betas=torch.tensor([0.0, 0.7, 0.5, 1.0]))
    with pytest.raises(ValueError, match="base_bias has 3 entries"):
        ais_log_partition(rbm, base_bias=torch.zeros(3))
    with pytest.raises(ValueError, match="n_betas must be >= 3"):
        annealing_schedule(2)
    with pytest.raises(ValueError, match="x has 5 features"):
        raise_log_prob(rbm, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="pseudo_count"):
        base_rate_bias(torch.zeros(3, 2), pseudo_count=0)
    with pytest.raises(RuntimeError, match=r"this RBM is not fitted yet: call fit\(x\)"):
        RBM(3).free_energy(torch.zeros(2, 4))
