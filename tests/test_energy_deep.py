"""dgm_lab.energy.dbn and dgm_lab.energy.dbm against brute force written out here.

Oracles: sums over every joint state (itertools) of the DBN's directed-plus-RBM joint and of
the DBM's energy; the variational bound computed exactly by enumerating the recognition
distribution; the bound's inequality; the fixed-point equations of mean field; scipy's
chi-square test for the samplers; autograd against the closed-form DBM gradient.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
import torch

from dgm_lab.energy import DBM, DBN, RBM, MeanFieldPCD, enumerate_states

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_rbm(v: int, h: int, seed: int, scale: float = 1.0) -> RBM:
    g = gen(seed)
    return RBM.from_parameters(torch.randn(v, h, generator=g, dtype=F64) * scale,
                               torch.randn(v, generator=g, dtype=F64) * 0.5,
                               torch.randn(h, generator=g, dtype=F64) * 0.5)


def states(n: int) -> list[torch.Tensor]:
    return [torch.tensor(s, dtype=F64) for s in itertools.product((0.0, 1.0), repeat=n)]


def log_bernoulli(x: torch.Tensor, logits: torch.Tensor) -> float:
    p = torch.sigmoid(logits)
    return float((x * p.log() + (1 - x) * (1 - p).log()).sum())


def code_of(v: torch.Tensor) -> torch.Tensor:
    return (v * 2.0 ** torch.arange(v.shape[1] - 1, -1, -1, dtype=v.dtype)).sum(1).long()


# --------------------------------------------------------------------------------------
# DBN
# --------------------------------------------------------------------------------------

def dbn_brute_force(rbms: list[RBM]) -> torch.Tensor:
    """log p(v) for every v, summing p(v | h1) ... p_top(h_{L-1}) over every hidden state."""
    top = rbms[-1]
    w, b, c = (t.detach() for t in (top.weight, top.visible_bias, top.hidden_bias))
    top_states = states(len(b))
    log_top = torch.tensor([math.log(sum(math.exp(float(s @ w @ h + s @ b + h @ c))
                                         for h in states(len(c)))) for s in top_states],
                           dtype=F64)
    log_top = log_top - torch.logsumexp(log_top, 0)  # p_top(h_{L-1})
    out = []
    for v in states(rbms[0].n_visible):
        terms = []
        for hidden in itertools.product(*[states(r.n_hidden) for r in rbms[:-1]]):
            layers = [v, *hidden]
            total = log_top[int(code_of(layers[-1][None]))].item()
            for level, r in enumerate(rbms[:-1]):
                total += log_bernoulli(layers[level], r.weight.detach() @ layers[level + 1]
                                       + r.visible_bias.detach())
            terms.append(total)
        out.append(torch.logsumexp(torch.tensor(terms, dtype=F64), 0))
    return torch.stack(out)


@pytest.mark.parametrize("sizes", [(5, 3, 2), (4, 3, 2, 2)])
def test_dbn_log_prob_against_brute_force(sizes):
    rbms = [random_rbm(a, b, seed=i)
            for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False))]
    dbn = DBN.from_rbms(rbms)
    got = dbn.log_prob(enumerate_states(sizes[0], dtype=F64)).detach()
    np.testing.assert_allclose(got.numpy(), dbn_brute_force(rbms).numpy(), atol=1e-10)
    assert got.exp().sum().item() == pytest.approx(1.0)
    assert dbn.hidden_sizes == sizes[1:] and dbn.top is dbn.rbms[-1]


def test_the_bound_is_log_p_for_one_layer_and_below_it_for_two():
    rbm1, rbm2 = random_rbm(5, 4, seed=0), random_rbm(4, 3, seed=1)
    x = enumerate_states(5, dtype=F64)[[0, 7, 19, 31]]
    one = DBN.from_rbms([rbm1])
    np.testing.assert_allclose(one.variational_bound(x, rbm1.log_partition()).numpy(),
                               rbm1.log_prob(x).detach().numpy(), atol=1e-10)
    two = DBN.from_rbms([rbm1, rbm2])
    log_z2 = rbm2.log_partition()
    # the exact bound: sum over h1 of q(h1 | v) [log p(v | h1) + log p2(h1) - log q(h1 | v)]
    exact = []
    for v in x:
        q_logits = v @ rbm1.weight.detach() + rbm1.hidden_bias.detach()
        total = 0.0
        for h in states(4):
            log_q = log_bernoulli(h, q_logits)
            log_joint = (log_bernoulli(v, rbm1.weight.detach() @ h + rbm1.visible_bias.detach())
                         - rbm2.free_energy(h[None]).item() - log_z2.item())
            total += math.exp(log_q) * (log_joint - log_q)
        exact.append(total)
    mc = two.variational_bound(x, log_z2, n_samples=3000, generator=gen(0))
    np.testing.assert_allclose(mc.numpy(), exact, atol=0.03)
    assert (torch.tensor(exact) < two.log_prob(x).detach()).all()  # Jensen: a lower bound


def test_greedy_training_trains_each_layer_on_samples_of_the_one_below():
    g = gen(0)
    protos = torch.tensor([[1.0] * 4 + [0.0] * 4, [0.0] * 4 + [1.0] * 4], dtype=F64)
    x = protos[torch.randint(2, (300,), generator=g)]
    x = torch.where(torch.rand(300, 8, generator=g, dtype=F64) < 0.05, 1 - x, x)
    dbn = DBN([6, 4], seed=1).fit(x, epochs=15, lr=0.1)
    assert all(r.is_fitted for r in dbn.rbms) and dbn.rbms[1].n_visible == 6
    # the second RBM learnt the statistics of the first layer's recognition samples: its
    # marginals (exact, by enumeration) are those of q(h1 | v) averaged over the data
    upper = dbn.rbms[1]
    h_states = enumerate_states(6, dtype=F64)
    p_upper = upper.log_prob(h_states).exp().detach() @ h_states
    q_mean = torch.sigmoid(x @ dbn.rbms[0].weight + dbn.rbms[0].hidden_bias).detach().mean(0)
    assert (p_upper - q_mean).abs().max() < 0.1, (p_upper, q_mean)
    # and the whole stack models the data well above independent pixels
    q = (x.sum(0) + 1) / 302
    independent = (x * q.log() + (1 - x) * (1 - q).log()).sum(1).mean().item()
    assert dbn.log_prob(x).mean().item() > independent + 2.0


def test_a_tied_second_layer_keeps_p_v_and_greedy_training_starts_from_it():
    bottom = random_rbm(4, 4, seed=5)
    flipped = RBM.from_parameters(bottom.weight.T, bottom.hidden_bias, bottom.visible_bias)
    v = enumerate_states(4, dtype=F64)
    # the stack with the transposed RBM on top defines the bottom RBM's p(v) (brute force)
    np.testing.assert_allclose(DBN.from_rbms([bottom, flipped]).log_prob(v).detach().numpy(),
                               bottom.log_prob(v).detach().numpy(), atol=1e-10)
    x = v[torch.randint(16, (40,), generator=gen(0))]
    tied = DBN([4, 4], seed=0).fit(x, epochs=1, lr=1e-12)  # a step too small to move
    w0, w1 = (r.weight.detach() for r in tied.rbms)
    np.testing.assert_allclose(w1.numpy(), w0.T.numpy(), atol=1e-9)
    np.testing.assert_allclose(tied.rbms[1].visible_bias.detach().numpy(),
                               tied.rbms[0].hidden_bias.detach().numpy(), atol=1e-9)
    untied = DBN([4, 4], seed=0).fit(x, epochs=1, lr=1e-12, tied_start=False)
    assert (untied.rbms[1].weight - w0.T).abs().max() > 1e-3
    # sizes that do not allow it: an ordinary random start
    narrow = DBN([4, 3], seed=0).fit(x, epochs=1, lr=1e-12)
    assert narrow.rbms[1].weight.abs().max() < 0.1


def test_upper_options_reach_the_upper_rbms_only():
    x = enumerate_states(4, dtype=F64)[torch.randint(16, (40,), generator=gen(1))]
    # the upper RBM gets a step too small to move: it stays at its tied start
    dbn = DBN([4, 4], seed=0).fit(x, epochs=2, lr=0.5, upper={"lr": 1e-12})
    w0, w1 = (r.weight.detach() for r in dbn.rbms)
    np.testing.assert_allclose(w1.numpy(), w0.T.numpy(), atol=1e-9)
    assert w0.abs().max() > 0.05  # while the first RBM trained (it starts at std 0.01)
    # the tied start swaps the trained (non-zero) biases: visible <- hidden below, and back
    lower, upper = dbn.rbms
    assert lower.hidden_bias.abs().max() > 1e-3 and lower.visible_bias.abs().max() > 1e-3
    np.testing.assert_allclose(upper.visible_bias.detach().numpy(),
                               lower.hidden_bias.detach().numpy(), atol=1e-9)
    np.testing.assert_allclose(upper.hidden_bias.detach().numpy(),
                               lower.visible_bias.detach().numpy(), atol=1e-9)
    same = DBN([4, 4], seed=0).fit(x, epochs=2, lr=0.5)
    assert (same.rbms[1].weight.detach() - w0.T).abs().max() > 1e-3
    with pytest.raises(TypeError, match="upper must be a dict"):
        DBN([4, 4]).fit(x, upper=0.01)


def test_warm_start_continues_from_the_parameters():
    rbm = random_rbm(4, 3, seed=2)
    before = rbm.weight.detach().clone()
    x = enumerate_states(4, dtype=F64)
    rbm.fit(x, epochs=1, lr=1e-12, warm_start=True)
    np.testing.assert_allclose(rbm.weight.detach().numpy(), before.numpy(), atol=1e-9)
    rbm.fit(x, epochs=1, lr=1e-12)  # a cold start re-initialises
    assert (rbm.weight.detach() - before).abs().max() > 0.1
    with pytest.raises(RuntimeError, match="not fitted"):
        RBM(3).fit(x, warm_start=True)
    with pytest.raises(ValueError, match="5 features but this RBM's visible layer has 4"):
        rbm.fit(torch.zeros(3, 5, dtype=F64), warm_start=True)


def test_dbn_samples_follow_its_distribution():
    dbn = DBN.from_rbms([random_rbm(4, 3, seed=3), random_rbm(3, 2, seed=4)], sample_steps=20)
    draws = dbn.sample(20_000, generator=gen(0))
    exact = dbn.log_prob(enumerate_states(4, dtype=F64)).exp().detach()
    observed = torch.bincount(code_of(draws), minlength=16).numpy()
    assert scipy.stats.chisquare(observed, exact.numpy() * 20_000).pvalue > 1e-3
    v, probs = dbn.sample_chains(5, 3, generator=gen(1))
    assert v.shape == probs.shape == (5, 4) and ((probs > 0) & (probs < 1)).all()
    assert dbn.encode(v).shape == (5, 2)
    assert dbn.decode(torch.zeros(2, 3, dtype=F64)).shape == (2, 4)


# --------------------------------------------------------------------------------------
# DBM
# --------------------------------------------------------------------------------------

def random_dbm(sizes: tuple[int, ...], seed: int, scale: float = 1.0) -> DBM:
    g = gen(seed)
    weights = [torch.randn(a, b, generator=g, dtype=F64) * scale
               for a, b in zip(sizes, sizes[1:], strict=False)]
    return DBM.from_parameters(weights, [torch.randn(n, generator=g, dtype=F64) * 0.5
                                         for n in sizes])


def dbm_brute_force(dbm: DBM) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(v) for every v, log Z) by summing exp(-E) over every joint state."""
    sizes = dbm.layer_sizes
    ws = [w.detach() for w in dbm.weights]
    bs = [b.detach() for b in dbm.biases]
    table = torch.zeros(2 ** sizes[0], dtype=F64)
    for i, v in enumerate(states(sizes[0])):
        terms = []
        for hidden in itertools.product(*[states(n) for n in sizes[1:]]):
            layers = [v, *hidden]
            e = -sum(float(s @ b) for s, b in zip(layers, bs, strict=True))
            e -= sum(float(layers[k] @ w @ layers[k + 1]) for k, w in enumerate(ws))
            terms.append(-e)
        table[i] = torch.logsumexp(torch.tensor(terms, dtype=F64), 0)
    log_z = torch.logsumexp(table, 0)
    return table - log_z, log_z


@pytest.mark.parametrize("sizes", [(4, 3, 2), (3, 2, 4), (3, 2, 2, 2)])
def test_dbm_log_z_and_log_prob_against_brute_force(sizes):
    dbm = random_dbm(sizes, seed=sum(sizes))
    log_p, log_z = dbm_brute_force(dbm)
    assert dbm.log_partition().item() == pytest.approx(log_z.item(), abs=1e-10)
    got = dbm.log_prob(enumerate_states(sizes[0], dtype=F64)).detach()
    np.testing.assert_allclose(got.numpy(), log_p.numpy(), atol=1e-10)
    rbm = dbm.as_rbm()  # even layers visible, odd layers hidden
    assert rbm.n_visible == sum(sizes[0::2]) and rbm.n_hidden == sum(sizes[1::2])


def test_dbm_energy_and_conditionals():
    dbm = random_dbm((3, 2, 2), seed=0)
    layers = [torch.tensor([[1.0, 0.0, 1.0]], dtype=F64), torch.tensor([[0.0, 1.0]], dtype=F64),
              torch.tensor([[1.0, 1.0]], dtype=F64)]
    w1, w2 = (w.detach() for w in dbm.weights)
    b0, b1, b2 = (b.detach() for b in dbm.biases)
    v, h1, h2 = (t[0] for t in layers)
    expected = -(v @ w1 @ h1 + h1 @ w2 @ h2 + v @ b0 + h1 @ b1 + h2 @ b2)
    assert dbm.energy(layers).item() == pytest.approx(expected.item())
    # p(h1 | v, h2) by flipping each unit and comparing energies
    p = dbm.conditional_probs(layers, 1)[0]
    for j in range(2):
        on, off = [t.clone() for t in layers], [t.clone() for t in layers]
        on[1][0, j], off[1][0, j] = 1.0, 0.0
        gap = (dbm.energy(off) - dbm.energy(on)).item()
        assert p[j].item() == pytest.approx(1 / (1 + math.exp(-gap)))


def test_mean_field_is_a_fixed_point_and_its_bound_is_below_log_p():
    dbm = random_dbm((5, 4, 3), seed=2)
    x = enumerate_states(5, dtype=F64)[[1, 10, 22, 30]]
    mu1, mu2 = dbm.mean_field(x, steps=200)
    w1, w2 = (w.detach() for w in dbm.weights)
    _, b1, b2 = (b.detach() for b in dbm.biases)
    np.testing.assert_allclose(mu1.numpy(), torch.sigmoid(x @ w1 + mu2 @ w2.T + b1).numpy(),
                               atol=1e-8)
    np.testing.assert_allclose(mu2.numpy(), torch.sigmoid(mu1 @ w2 + b2).numpy(), atol=1e-8)
    log_z = dbm.log_partition()
    bound = dbm.variational_bound(x, log_z, steps=200)
    exact = dbm.log_prob(x).detach()
    assert (bound <= exact + 1e-9).all()
    # mean-field updates are coordinate ascent on the bound: more iterations, no worse
    assert (dbm.variational_bound(x, log_z, steps=0) <= bound + 1e-9).all()
    # the bound written out: -E(v, mu) + entropies - log Z
    entropy = sum(-(m * m.log() + (1 - m) * (1 - m).log()).sum(1) for m in (mu1, mu2))
    direct = -dbm.energy([x, mu1, mu2]) + entropy - log_z
    np.testing.assert_allclose(bound.numpy(), direct.detach().numpy(), atol=1e-10)


def test_dbm_gibbs_sampling_reaches_its_distribution():
    dbm = random_dbm((3, 2, 2), seed=6, scale=1.5)
    dbm.sample_steps = 100
    draws = dbm.sample(10_000, generator=gen(0))
    exact = dbm.log_prob(enumerate_states(3, dtype=F64)).exp().detach()
    observed = torch.bincount(code_of(draws), minlength=8).numpy()
    assert scipy.stats.chisquare(observed, exact.numpy() * 10_000).pvalue > 1e-3


def test_a_dbm_sweep_updates_the_odd_layers_first():
    """Both orders are valid Gibbs samplers; the documented one (odd layers, then even ones
    given the new odd ones) is what the clamped-visible training chains rely on. With
    weights 20 I and biases -10, v and h1 copy each other almost surely (h2 stays off)."""
    eye, minus = 20 * torch.eye(3, dtype=F64), -10 * torch.ones(3, dtype=F64)
    dbm = DBM.from_parameters([eye, torch.zeros(3, 3, dtype=F64)], [minus, minus, minus])
    v, h = torch.tensor([[1.0, 0, 1]], dtype=F64), torch.tensor([[0.0, 1, 0]], dtype=F64)
    new_v, new_h, _ = dbm.gibbs_sweep([v, h, torch.zeros(1, 3, dtype=F64)], generator=gen(0))
    np.testing.assert_array_equal(new_h.numpy(), v.numpy())  # h from the old v
    np.testing.assert_array_equal(new_v.numpy(), v.numpy())  # v from the new h


def test_the_dbm_loss_gradient_is_mean_field_minus_chain_statistics():
    dbm = random_dbm((4, 3, 2), seed=1)
    x = enumerate_states(4, dtype=F64)[[2, 9, 13]]
    loss = MeanFieldPCD(5, generator=gen(0))
    value = loss(dbm, x)
    grads = torch.autograd.grad(value, dbm.weights)
    mu1, mu2 = dbm.mean_field(x)
    v_t, h1_t, h2_t = loss.chains
    expected_w1 = -(x.T @ mu1 / 3 - v_t.T @ h1_t / 5)
    expected_w2 = -(mu1.T @ mu2 / 3 - h1_t.T @ h2_t / 5)
    np.testing.assert_allclose(grads[0].numpy(), expected_w1.numpy(), atol=1e-12)
    np.testing.assert_allclose(grads[1].numpy(), expected_w2.numpy(), atol=1e-12)


def test_pretraining_and_joint_training_learn_held_out_structure():
    g = gen(0)
    protos = torch.tensor([[1.0] * 4 + [0.0] * 4, [0.0] * 4 + [1.0] * 4], dtype=F64)

    def draw(n):
        x = protos[torch.randint(2, (n,), generator=g)]
        return torch.where(torch.rand(n, 8, generator=g, dtype=F64) < 0.05, 1 - x, x)

    train_x, test_x = draw(300), draw(300)
    q = (train_x.sum(0) + 1) / 302
    independent = (test_x * q.log() + (1 - test_x) * (1 - q).log()).sum(1).mean().item()
    pre = DBM([5, 3], seed=0).pretrain(train_x, epochs=40, lr=0.1)
    assert pre.log_prob(test_x).mean().item() > independent + 2.0
    # a small joint learning rate: the persistent chains rarely cross between the two
    # well-separated modes, so large steps make the modes' weights oscillate (at lr=0.02 the
    # held-out log-likelihood falls below the independent model's within 15 epochs)
    dbm = DBM([5, 3], seed=0).fit(train_x, pretrain_epochs=40, epochs=5, lr=0.005)
    assert dbm.log_prob(test_x).mean().item() > independent + 2.0
    assert len(dbm.history_.epoch["loss"]) == 5


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match="at least two hidden layers"):
        DBM([5])
    with pytest.raises(TypeError, match="non-empty sequence"):
        DBN([])
    with pytest.raises(ValueError, match="hidden_sizes must be >= 1"):
        DBN([3, 0])
    with pytest.raises(ValueError, match="cannot sit on"):
        DBN.from_rbms([random_rbm(4, 3, 0), random_rbm(2, 2, 1)])
    with pytest.raises(TypeError, match="fitted RBMs"):
        DBN.from_rbms([RBM(3)])
    dbm = random_dbm((3, 2, 2), seed=0)
    with pytest.raises(ValueError, match="list of 3 tensors"):
        dbm.energy([torch.zeros(1, 3)])
    with pytest.raises(ValueError, match=r"states\[1\] must have shape \[1, 2\]"):
        dbm.energy([torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 2)])
    with pytest.raises(ValueError, match="level must be 0..2"):
        dbm.conditional_probs([torch.zeros(1, 3), torch.zeros(1, 2), torch.zeros(1, 2)], 3)
    with pytest.raises(ValueError, match="do not fit hidden_sizes"):
        DBM.from_parameters([torch.zeros(3, 2), torch.zeros(3, 2)],
                            [torch.zeros(3), torch.zeros(2), torch.zeros(2)])
    with pytest.raises(ValueError, match="binary"):
        dbm.variational_bound(torch.full((1, 3), 0.5), 0.0)
    with pytest.raises(TypeError, match="trains a DBM"):
        MeanFieldPCD()(torch.nn.Linear(2, 2), torch.zeros(1, 2))
    dbn = DBN.from_rbms([random_rbm(3, 2, 0), random_rbm(2, 2, 1)])
    with pytest.raises(ValueError, match="h must have 2 units"):
        dbn.decode(torch.zeros(1, 3))
    with pytest.raises(RuntimeError, match=r"this DBM is not fitted yet: call fit\(x\)"):
        DBM([2, 2]).mean_field(torch.zeros(1, 3))
