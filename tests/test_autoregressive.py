"""Chapter 6's fully connected autoregressive models against independent oracles.

Oracles: exact enumeration of every configuration (a density sums to 1 over {0,1}^n or over a
small categorical grid), autograd Jacobians (the autoregressive property), the O(D^2 H)
computation of NADE written out here, scikit-learn's LogisticRegression (FVSBN), numerical
integration on a grid and torch.distributions (RNADE), Markov random fields enumerated
exactly (looking-back Markov blankets), chi-square tests of samples against enumerated
probabilities (scipy).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from ar_helpers import every_configuration, randomise, support
from scipy import stats

from dgm_lab.autoregressive import (
    FVSBN,
    NADE,
    RNADE,
    DeepNADE,
    MADEDensity,
    conditional_log_probs,
    draw_levels,
    fvsbn_log_prob,
    looking_back_blankets,
    made_degrees,
    made_masks,
    nade_log_prob,
    structured_made_masks,
)
from dgm_lab.data import load_digits
from dgm_lab.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")




def earlier(order: torch.Tensor) -> torch.Tensor:
    """``[D, D]``: input j comes strictly before output i in ``order``."""
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order))
    return position[None, :] < position[:, None]


# --------------------------------------------------------------------------------------
# the chain rule: helpers of the base class
# --------------------------------------------------------------------------------------

def test_conditional_log_probs_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=g, dtype=torch.float64) * 30  # far into the tails
    x = (torch.rand(5, 4, generator=g) < 0.5).double()
    expected = torch.distributions.Bernoulli(logits=logits).log_prob(x)
    torch.testing.assert_close(conditional_log_probs(logits, x), expected)
    cat_logits = torch.randn(5, 4, 7, generator=g, dtype=torch.float64)
    levels = torch.randint(0, 7, (5, 4), generator=g).double()
    expected = torch.distributions.Categorical(logits=cat_logits).log_prob(levels.long())
    torch.testing.assert_close(conditional_log_probs(cat_logits, levels), expected)


def test_draw_levels_inverts_the_cdf():
    probs = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    u = torch.tensor([0.0, 0.19, 0.21, 0.69, 0.71, 0.999999], dtype=torch.float64)
    got = draw_levels(probs.log().expand(6, 3), u)
    assert got.tolist() == [0, 0, 1, 1, 2, 2]
    logit = torch.full((4,), math.log(0.3 / 0.7), dtype=torch.float64)  # p(1) = 0.3
    assert draw_levels(logit, torch.tensor([0.0, 0.29, 0.31, 0.9],
                                           dtype=torch.float64)).tolist() == [1, 1, 0, 0]


# --------------------------------------------------------------------------------------
# every model: exact normalisation, the autoregressive property, sampling
# --------------------------------------------------------------------------------------

BINARY = {  # name -> (build with random weights, D)
    "FVSBN": (lambda: FVSBN(10), 10),
    "NADE": (lambda: NADE(11, hidden=6), 11),
    "DeepNADE": (lambda: DeepNADE(9, [12, 8], n_orderings=3, seed=1), 9),
    "MADE": (lambda: MADEDensity(12, [16, 14], n_masks=3, random_order=True, seed=2), 12),
    "MADE-even": (lambda: MADEDensity(10, [9], connectivity="even"), 10),
}
CATEGORICAL = {  # name -> (build, D, levels)
    "MADE-L3": (lambda: MADEDensity(5, [12, 10], levels=3, n_masks=2, random_order=True,
                                    seed=4), 5, 3),
    "MADE-L4": (lambda: MADEDensity(4, [10], levels=4, seed=5), 4, 4),
}


@pytest.mark.parametrize("name", BINARY)
def test_binary_models_sum_to_one_over_every_configuration(name):
    build, d = BINARY[name]
    model = randomise(build().double())
    total = model.log_prob(every_configuration(d)).exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", CATEGORICAL)
def test_categorical_models_sum_to_one_over_every_configuration(name):
    build, d, levels = CATEGORICAL[name]
    model = randomise(build().double())
    lp = model.log_prob(every_configuration(d, levels))
    assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    assert lp.exp().std() > 1e-4  # and the weights make a real difference


def test_fvsbn_and_nade_outputs_depend_only_on_earlier_inputs():
    x = torch.rand(7, dtype=torch.float64)  # autograd sees the inputs as real numbers
    nat = earlier(torch.arange(7))
    fvsbn = randomise(FVSBN(7).double())
    assert torch.equal(support(lambda v: fvsbn.logits(v[None])[0], x), nat)
    nade = randomise(NADE(7, hidden=5).double())
    assert torch.equal(support(lambda v: nade.logits(v[None])[0], x), nat)


@pytest.mark.parametrize("levels", [2, 3])
def test_made_density_is_autoregressive_under_every_mask(levels):
    model = randomise(MADEDensity(6, [20, 20], levels=levels, n_masks=4, random_order=True,
                                  connectivity="even", seed=3).double())
    x = torch.rand(6, dtype=torch.float64)
    for k in range(4):
        model.use_mask(k)
        got = support(lambda v: model.logits(v[None])[0], x)
        allowed = earlier(model.orderings[k])
        assert not (got & ~allowed).any(), k  # no output sees its own or a later input
        assert got.sum() > allowed.sum() // 2, k  # and the gradient does flow (ReLUs at x
        # may close a few paths, so the full connectivity is read from the masks' product)
        paths = torch.eye(6, dtype=torch.float64)
        for layer in model.net.layers:
            paths = layer.mask.double() @ paths
        reach = paths.reshape(6, -1, 6).sum(1) > 0
        assert torch.equal(reach, allowed), k  # even degrees connect every allowed pair
    assert len({tuple(o.tolist()) for o in model.orderings}) == 4  # four different orderings


def test_deep_nade_is_autoregressive_along_each_ordering():
    model = randomise(DeepNADE(6, [10, 10], n_orderings=3, seed=0).double())
    x = torch.rand(6, dtype=torch.float64)
    for order in model.orderings:
        position = torch.empty_like(order)
        position[order] = torch.arange(6)

        def logits_along(v, order=order, position=position):
            masks = (position[None, :] < torch.arange(6)[:, None]).double()  # [D, D]
            rows = model.masked_logits(v.expand(6, 6), masks)
            return rows[torch.arange(6), order]  # logit of the i-th coordinate in the order

        got = support(logits_along, x)  # [position i, input j]
        expected = position[None, :] < torch.arange(6)[:, None]
        assert torch.equal(got, expected)


def test_nade_recursion_equals_the_naive_computation():
    """The O(DH) recursion against the definition, written out here: for each d, the hidden
    layer sigma(c + W[:, :d] x[:d]) from scratch (O(D^2 H))."""
    g = torch.Generator().manual_seed(1)
    d, h = 13, 7
    W, c = torch.randn(h, d, generator=g, dtype=torch.float64), torch.randn(h, generator=g,
                                                                             dtype=torch.float64)
    V, b = torch.randn(d, h, generator=g, dtype=torch.float64), torch.randn(d, generator=g,
                                                                             dtype=torch.float64)
    x = (torch.rand(20, d, generator=g) < 0.5).double()
    expected = torch.zeros(20, dtype=torch.float64)
    for n in range(20):
        for i in range(d):
            hidden = torch.sigmoid(c + sum((W[:, j] * x[n, j] for j in range(i)),
                                           torch.zeros(h, dtype=torch.float64)))
            p1 = torch.sigmoid(b[i] + V[i] @ hidden)
            expected[n] += torch.log(p1 if x[n, i] == 1 else 1 - p1)
    torch.testing.assert_close(nade_log_prob(x, W, c, V, b), expected)
    model = NADE(d, hidden=h).double()
    with torch.no_grad():
        model.W.copy_(W), model.c.copy_(c), model.V.copy_(V), model.b.copy_(b)
    torch.testing.assert_close(model.log_prob(x), expected)
    torch.testing.assert_close(model.logits_naive(x), model.logits(x))
    assert model.n_parameters == 2 * d * h + d + h


def test_fvsbn_log_prob_reads_only_the_strict_lower_triangle():
    g = torch.Generator().manual_seed(2)
    d = 6
    w, b = torch.randn(d, d, generator=g, dtype=torch.float64), torch.randn(d, generator=g,
                                                                             dtype=torch.float64)
    x = every_configuration(d)
    expected = torch.zeros(len(x), dtype=torch.float64)
    for i in range(d):  # logistic regression of x_i on x_0..x_{i-1}, one term at a time
        logit = b[i] + sum((w[i, j] * x[:, j] for j in range(i)),
                           torch.zeros(len(x), dtype=torch.float64))
        expected += torch.distributions.Bernoulli(logits=logit).log_prob(x[:, i])
    torch.testing.assert_close(fvsbn_log_prob(x, w, b), expected)
    torch.testing.assert_close(fvsbn_log_prob(x, w + torch.eye(d).triu() * 5, b), expected)
    model = FVSBN(d).double()
    with torch.no_grad():
        model.weight.copy_(w), model.bias.copy_(b)
    torch.testing.assert_close(model.log_prob(x), expected)
    assert model.n_parameters == d * (d - 1) // 2 + d


def _chi_square_p(samples: torch.Tensor, log_probs: torch.Tensor, d: int, levels: int) -> float:
    index = (samples.long() * levels ** torch.arange(d - 1, -1, -1)).sum(1)
    counts = torch.bincount(index, minlength=levels ** d).double().numpy()
    expected = log_probs.detach().exp().numpy() * len(samples)
    keep = expected > 5  # pool the rare cells, as the test needs
    observed, expect = counts[keep], expected[keep]
    if not keep.all():  # an empty pooled cell would make the statistic 0/0
        observed = np.append(observed, counts[~keep].sum())
        expect = np.append(expect, expected[~keep].sum())
    return stats.chisquare(observed, expect * observed.sum() / expect.sum()).pvalue


SAMPLED = {
    "FVSBN": (lambda: FVSBN(4), 4, 2),
    "NADE": (lambda: NADE(4, hidden=3), 4, 2),
    "DeepNADE": (lambda: DeepNADE(4, [8], n_orderings=2, seed=3), 4, 2),
    "MADE": (lambda: MADEDensity(4, [8], n_masks=2, random_order=True, seed=6), 4, 2),
    "MADE-L3": (lambda: MADEDensity(3, [8], levels=3, n_masks=2, random_order=True), 3, 3),
}


@pytest.mark.parametrize("name", SAMPLED)
def test_samples_follow_the_enumerated_probabilities(name):
    build, d, levels = SAMPLED[name]
    model = randomise(build().double(), scale=0.8)
    samples = model.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert _chi_square_p(samples, model.log_prob(every_configuration(d, levels)),
                         d, levels) > 1e-3
    if hasattr(model, "sample_naive"):  # the fast path draws exactly what the naive one does
        fast = model.sample(50, generator=torch.Generator().manual_seed(1))
        assert torch.equal(fast, model.sample_naive(50, generator=torch.Generator()
                                                    .manual_seed(1)))


def test_a_sampler_that_ignores_the_parents_fails_the_chi_square():
    """The chi-square check has power: independent draws with the right marginals fail."""
    model = randomise(FVSBN(4).double(), scale=2.0)
    samples = model.sample(20_000, generator=torch.Generator().manual_seed(0))
    shuffled = torch.stack([col[torch.randperm(len(col), generator=torch.Generator()
                                               .manual_seed(i))]
                            for i, col in enumerate(samples.T)], 1)
    assert _chi_square_p(shuffled, model.log_prob(every_configuration(4)), 4, 2) < 1e-6


# --------------------------------------------------------------------------------------
# mask ensembles, order-agnostic training
# --------------------------------------------------------------------------------------

def test_mask_ensemble_is_the_mean_of_the_single_mask_densities():
    model = randomise(MADEDensity(5, [12], n_masks=3, random_order=True, seed=1).double())
    x = every_configuration(5)
    each = []
    for k in range(3):  # each mask set alone, built here from its degrees
        net = MADEDensity(5, [12]).double().net
        net.load_state_dict({**{n: p for n, p in model.net.named_parameters()}},
                            strict=False)
        model.use_mask(k)
        for layer, own in zip(model.net.layers, net.layers, strict=True):
            own.set_mask(layer.mask)
        logits = net(x)[..., 0]
        each.append(torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(1).exp())
        assert each[-1].sum().item() == pytest.approx(1.0, abs=1e-9)
    model.use_mask(0)
    torch.testing.assert_close(model.log_prob(x).exp(), sum(each) / 3)
    assert int(model.mask_index) == 0  # log_prob leaves the current mask where it was


def test_made_masks_come_from_the_drawn_degrees_and_the_state_dict_stays_small():
    model = MADEDensity(8, [30, 30], levels=5, n_masks=2, random_order=True, seed=7)
    g = torch.Generator().manual_seed(7)
    degrees = made_degrees(8, [30, 30], order=torch.randperm(8, generator=g), generator=g)
    for layer, mask in zip(model.net.layers, made_masks(degrees), strict=True):
        expected = mask.repeat_interleave(5, 0) if mask.shape[0] == 8 else mask
        assert torch.equal(layer.mask, expected)
    state = model.state_dict()
    assert not any(k.endswith(".mask") for k in state)  # packed bits instead of float masks
    fresh = MADEDensity(8, [30, 30], levels=5, n_masks=2, random_order=True, seed=99)
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    model.next_mask()
    fresh.load_state_dict(model.state_dict())
    x = torch.randint(0, 5, (6, 8)).float()
    assert int(fresh.mask_index) == 1
    torch.testing.assert_close(fresh.log_prob(x), model.log_prob(x))
    torch.testing.assert_close(fresh.log_prob_current_mask(x), model.log_prob_current_mask(x))
    for a, b in zip(fresh.net.layers, model.net.layers, strict=True):
        assert torch.equal(a.mask, b.mask)


def test_order_agnostic_loss_is_unbiased_for_the_ordering_average():
    """Uria et al.'s estimator: its mean over random (ordering, position) draws is the NLL
    averaged over orderings. For D = 3 every ordering is enumerated here."""
    model = randomise(DeepNADE(3, [6], seed=0).double(), scale=0.7)
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    exact = torch.zeros(2, dtype=torch.float64)
    for order in itertools.permutations(range(3)):
        exact -= model._log_prob_ordering(x, torch.tensor(order)) / 6
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # 20,000 independent draws for each of the two rows
        draws = model.order_agnostic_loss(x.repeat(20_000, 1), generator=g).reshape(-1, 2)
    stderr = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - exact).abs() < 4 * stderr).all()
    assert (draws.std(0) > 0.05).all()  # the draws do vary: the check has power


# --------------------------------------------------------------------------------------
# structured MADE: looking-back Markov blankets
# --------------------------------------------------------------------------------------

def _random_graph(d: int, p: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    upper = (torch.rand(d, d, generator=g) < p).triu(1)
    return (upper | upper.T).int()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_looking_back_blankets_match_an_enumerated_markov_random_field(seed):
    """A pairwise MRF on the graph with random potentials, enumerated: p(x_i | x_<i) changes
    with x_j (j < i) exactly when j is in the looking-back blanket of i."""
    d = 7
    adjacency = _random_graph(d, 0.35, seed)
    g = torch.Generator().manual_seed(seed + 10)
    coupling = torch.randn(d, d, generator=g, dtype=torch.float64).triu(1) * 2
    coupling = (coupling + coupling.T) * adjacency
    field = torch.randn(d, generator=g, dtype=torch.float64)
    x = every_configuration(d)
    log_p = x @ field + 0.5 * ((x @ coupling) * x).sum(1)
    p = torch.softmax(log_p, 0).reshape((2,) * d)
    blankets = looking_back_blankets(adjacency)
    for i in range(1, d):
        # p(x_<=i) by summing out the later coordinates, then p(x_i = 1 | x_<i)
        joint = p.sum(dim=tuple(range(i + 1, d))) if i + 1 < d else p
        cond = joint.select(i, 1) / joint.sum(i)  # [2] * i
        for j in range(i):
            change = (cond.select(j, 1) - cond.select(j, 0)).abs().max().item()
            assert (change > 1e-9) == bool(blankets[i, j]), (i, j)


def test_structured_made_sees_exactly_the_blankets_and_sums_to_one():
    adjacency = _random_graph(8, 0.3, 4)
    blankets = looking_back_blankets(adjacency)
    model = randomise(MADEDensity(8, [64, 64], structure=adjacency, seed=0).double())
    got = support(lambda v: model.logits(v[None])[0], torch.rand(8, dtype=torch.float64))
    assert torch.equal(got, blankets)
    assert model.log_prob(every_configuration(8)).exp().sum().item() == pytest.approx(1.0,
                                                                                       abs=1e-6)
    masks = structured_made_masks(blankets, [5], generator=torch.Generator().manual_seed(0))
    assert [tuple(m.shape) for m in masks] == [(5, 8), (8, 5)]


def test_blankets_of_a_chain_and_a_grid():
    chain = torch.diag(torch.ones(4), 1) + torch.diag(torch.ones(4), -1)
    assert torch.equal(looking_back_blankets(chain), torch.diag(torch.ones(4), -1).bool())
    # 3 x 3 grid, 4-neighbours, raster order: pixel 4 (the centre) looks back at its left
    # neighbour 3 and at the row above from its own column on: 1, 2 (2 through pixel 5)
    grid = torch.zeros(9, 9)
    for r, c in itertools.product(range(3), range(3)):
        for dr, dc in ((0, 1), (1, 0)):
            if r + dr < 3 and c + dc < 3:
                grid[r * 3 + c, (r + dr) * 3 + c + dc] = grid[(r + dr) * 3 + c + dc, r * 3 + c] = 1
    assert looking_back_blankets(grid)[4].nonzero().flatten().tolist() == [1, 2, 3]


# --------------------------------------------------------------------------------------
# RNADE
# --------------------------------------------------------------------------------------

def test_rnade_density_integrates_to_one_on_a_grid():
    model = randomise(RNADE(2, hidden=8, components=3).double(), scale=0.4, seed=3)
    grid = torch.linspace(-10, 10, 801, dtype=torch.float64)
    step = (grid[1] - grid[0]).item()
    points = torch.cartesian_prod(grid, grid)
    total = model.log_prob(points).exp().sum().item() * step ** 2
    assert total == pytest.approx(1.0, abs=1e-4)


def test_rnade_first_conditional_is_the_mixture_torch_distributions_computes():
    model = randomise(RNADE(3, hidden=5, components=4).double(), scale=0.5, seed=1)
    x = torch.randn(9, 3, dtype=torch.float64)
    h = torch.relu(model.rho[0] * model.c)  # a_1 = c: nothing observed yet
    out = model.V[0] @ h + model.b[0]
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=out[:4]),
        torch.distributions.Normal(out[4:8], out[8:].exp()))
    log_w, means, log_scales = model.conditionals(x)
    torch.testing.assert_close(torch.logsumexp(log_w[:, 0] + torch.distributions.Normal(
        means[:, 0], log_scales[:, 0].exp()).log_prob(x[:, :1]), 1), mixture.log_prob(x[:, 0]))
    samples = model.sample(4000, generator=torch.Generator().manual_seed(0))
    cdf = lambda v: mixture.cdf(torch.as_tensor(v)).detach().numpy()  # noqa: E731
    assert stats.kstest(samples[:, 0].numpy(), cdf).pvalue > 1e-3


# --------------------------------------------------------------------------------------
# learning: FVSBN against scikit-learn, small models against the independent baseline
# --------------------------------------------------------------------------------------

def sklearn_fvsbn_nll(train: np.ndarray, test: np.ndarray, l2: float) -> float:
    """Test NLL (nats per image) of one scikit-learn logistic regression per pixel on the
    pixels before it, penalised like FVSBN.fit: C = 1 / (l2 N), the intercept a penalised
    weight on a constant feature."""
    from sklearn.linear_model import LogisticRegression

    n, d = train.shape
    total = 0.0
    for i in range(d):
        features = np.hstack([np.ones((n, 1)), train[:, :i]])
        target = train[:, i]
        weights = np.ones(n)
        if target.min() == target.max():  # one class: add an almost weightless other one
            features = np.vstack([features, features[:1]])
            target = np.append(target, 1 - target[0])
            weights = np.append(weights, 1e-12)
        # Newton's method with a Cholesky solve: exact to 1e-10 in a few steps for 64 features
        model = LogisticRegression(C=1.0 / (l2 * n), fit_intercept=False, tol=1e-10,
                                   solver="newton-cholesky", max_iter=100)
        model.fit(features, target, sample_weight=weights)
        test_features = np.hstack([np.ones((len(test), 1)), test[:, :i]])
        log_p = model.predict_log_proba(test_features)
        total -= log_p[np.arange(len(test)), (test[:, i] == model.classes_[1]).astype(int)].sum()
    return total / len(test)


def test_fvsbn_fit_reaches_the_scikit_learn_maximum_likelihood():
    # the middle four rows of the digits (32 pixels) keep the 32 scikit-learn fits cheap;
    # benchmarks/ch06_results.py compares all 64 pixels and records both figures
    x_train = load_digits("train", "binary")[0][:, 16:48]
    x_test = load_digits("test", "binary")[0][:, 16:48]
    l2 = 1e-2
    model = FVSBN(32).double().fit(x_train.double(), l2=l2, tol=1e-7)
    ours = -model.log_prob(x_test).mean().item()
    theirs = sklearn_fvsbn_nll(x_train.numpy().astype(float), x_test.numpy().astype(float), l2)
    assert ours == pytest.approx(theirs, abs=0.01)
    # and it learned: far better than one Bernoulli per pixel
    p = (x_train.double().mean(0) * len(x_train) + 1) / (len(x_train) + 2)
    independent = -torch.distributions.Bernoulli(p).log_prob(x_test.double()).sum(1).mean()
    assert ours < independent.item() - 2  # 11.2 vs 13.7 nats on these 32 pixels


def test_small_nade_and_made_learn_the_binary_digits():
    x_train, x_val = load_digits("train", "binary")[0], load_digits("val", "binary")[0]
    p = (x_train.mean(0) * len(x_train) + 1) / (len(x_train) + 2)
    independent = -torch.distributions.Bernoulli(p).log_prob(x_val).sum(1).mean().item()

    def nll(model, x):
        return -model.log_prob(x).mean()

    for model in (NADE(64, hidden=40), MADEDensity(64, [100], seed=0)):
        fit(model, nll, x_train, epochs=8, batch_size=64, lr=5e-3, seed=0, device="cpu",
            progress=False)
        model.eval()
        assert nll(model, x_val).item() < independent - 2, type(model).__name__


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda: FVSBN(3).log_prob(torch.full((2, 3), 0.5)), ValueError, "binary"),
    (lambda: MADEDensity(3, [4], levels=3).log_prob(torch.full((2, 3), 3.0)), ValueError,
     "levels 0..2"),
    (lambda: MADEDensity(3, [4], levels=3).log_prob(torch.full((2, 3), 1.5)), ValueError,
     "integer"),
    (lambda: MADEDensity(3, []), ValueError, "hidden"),
    (lambda: MADEDensity(3, [4], n_masks=2).use_mask(2), ValueError, "n_masks"),
    (lambda: DeepNADE(3, [4]).log_prob(torch.full((1, 3), 2.0)), ValueError, "binary"),
    (lambda: DeepNADE(3, [4]).log_prob_ordering(torch.zeros(1, 3), k=1), ValueError,
     "n_orderings"),
    (lambda: NADE(3, hidden=0), ValueError, "hidden"),
    (lambda: NADE(4).sample_naive(0), ValueError, "n must"),
    (lambda: NADE(4).sample_naive(2, generator=1), TypeError, "generator"),
    (lambda: RNADE(2, components=0), ValueError, "components"),
    (lambda: FVSBN(3).fit(torch.zeros(4, 2)), ValueError, "3"),
    (lambda: FVSBN(3).fit(torch.full((4, 3), 0.5)), ValueError, "binary"),
    (lambda: FVSBN(3).fit(torch.zeros(4, 3), l2=-1.0), ValueError, "l2"),
    (lambda: fvsbn_log_prob(torch.zeros(2, 3), torch.zeros(3, 2), torch.zeros(3)), ValueError,
     "weight"),
    (lambda: fvsbn_log_prob(torch.zeros(2, 3), torch.zeros(3, 3), torch.zeros(3, 1)),
     ValueError, "bias"),
    (lambda: nade_log_prob(torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(4),
                           torch.zeros(4, 3), torch.zeros(3)), ValueError, "V"),
    (lambda: nade_log_prob(torch.full((2, 3), 2.0), torch.zeros(4, 3), torch.zeros(4),
                           torch.zeros(3, 4), torch.zeros(3)), ValueError, "binary"),
    (lambda: looking_back_blankets(torch.triu(torch.ones(3, 3), 1)), ValueError, "symmetric"),
    (lambda: looking_back_blankets(torch.ones(3, 2)), ValueError, "square"),
    (lambda: structured_made_masks(torch.ones(3, 3).bool(), [4]), ValueError, "lower"),
    (lambda: structured_made_masks(torch.zeros(3, 3).bool(), [4]), ValueError, "empty"),
    (lambda: structured_made_masks(torch.ones(3, 3).tril(-1).bool(), []), ValueError,
     "hidden"),
    (lambda: MADEDensity(3, [4], structure=torch.zeros(4, 4)), ValueError, "structure"),
])
def test_bad_input_is_refused_with_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
