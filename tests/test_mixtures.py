"""Mixtures of Bernoullis and of categoricals fitted by EM (dgm_lab.density), against oracles:
exact enumeration of every configuration, EM written out with NumPy loops, closed-form
smoothed frequencies, a chi-square test of the samples, and a quality bar on the digits."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from dgm_lab.data import load_digits
from dgm_lab.density import BernoulliMixture, CategoricalMixture


def random_mixture(k: int, d: int, levels: int, seed: int = 0) -> CategoricalMixture:
    """A CategoricalMixture with random (not fitted) parameters, float64."""
    g = torch.Generator().manual_seed(seed)
    model = CategoricalMixture(k, levels)
    model.weights_ = torch.softmax(torch.randn(k, generator=g, dtype=torch.float64), 0)
    model.log_probs_ = torch.log_softmax(2 * torch.randn(k, d, levels, generator=g,
                                                         dtype=torch.float64), -1)
    return model


@pytest.mark.parametrize("k, d, levels", [(1, 4, 3), (3, 3, 4), (4, 10, 2)])
def test_probabilities_of_all_configurations_sum_to_one(k, d, levels):
    model = random_mixture(k, d, levels)
    every = torch.tensor(list(itertools.product(range(levels), repeat=d)), dtype=torch.float64)
    assert model.log_prob(every).exp().sum().item() == pytest.approx(1.0, abs=1e-12)


def naive_em(x: np.ndarray, resp: np.ndarray, levels: int, alpha: float, iterations: int):
    """EM for a mixture of categoricals, written out with loops (the oracle)."""
    n, d = x.shape
    k = resp.shape[1]

    def m_step(resp):
        nk = resp.sum(0)
        theta = np.zeros((k, d, levels))
        for j in range(k):
            for i in range(n):
                for dim in range(d):
                    theta[j, dim, x[i, dim]] += resp[i, j]
            theta[j] = (theta[j] + alpha) / (nk[j] + levels * alpha)
        return nk / n, theta

    weights, theta = m_step(resp)
    for _ in range(iterations):
        log_joint = np.log(weights)[None, :] + np.array(
            [[sum(math.log(theta[j, dim, x[i, dim]]) for dim in range(d)) for j in range(k)]
             for i in range(n)])
        resp = np.exp(log_joint - np.logaddexp.reduce(log_joint, axis=1, keepdims=True))
        weights, theta = m_step(resp)
    return weights, theta


def test_em_iterations_match_em_written_out_with_loops():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(40, 5))
    resp = rng.dirichlet(np.ones(3), size=40)
    model = CategoricalMixture(3, 3, alpha=0.5, max_iter=4, tol=1e-12)
    with pytest.warns(UserWarning, match="did not converge"):
        model.fit(torch.as_tensor(x, dtype=torch.float64), resp_init=torch.as_tensor(resp))
    weights, theta = naive_em(x, resp, 3, 0.5, iterations=4)
    np.testing.assert_allclose(model.weights_.numpy(), weights, rtol=1e-10)
    np.testing.assert_allclose(model.log_probs_.exp().numpy(), theta, rtol=1e-10)
    assert model.n_iter_ == 4 and not model.converged_


def test_one_component_is_the_smoothed_frequency_of_each_level():
    x, _ = load_digits("train", "levels")
    model = CategoricalMixture(1, 17, alpha=0.5).fit(x)
    counts = torch.stack([(x == level).sum(0) for level in range(17)], 1).double()  # [64, 17]
    expected = (counts + 0.5) / (len(x) + 17 * 0.5)
    np.testing.assert_allclose(model.log_probs_[0].exp().double().numpy(), expected.numpy(),
                               rtol=1e-5)
    assert model.weights_.item() == pytest.approx(1.0)


def test_em_never_lowers_the_penalised_log_likelihood():
    x, _ = load_digits("train", "binary")
    x = x[:300].double()
    resp = torch.distributions.Dirichlet(torch.ones(4)).sample((300,)).double()
    objective = []
    for iterations in range(1, 13):
        model = BernoulliMixture(4, alpha=1.0, max_iter=iterations, tol=1e-12)
        with pytest.warns(UserWarning):
            model.fit(x, resp_init=resp)
        # log-likelihood plus the log of the Dirichlet prior that the smoothing stands for
        objective.append(model.log_prob(x).sum().item() + model.log_probs_.sum().item())
    assert np.all(np.diff(objective) > -1e-9), np.diff(objective)


def test_samples_follow_the_mixture_marginals():
    model = random_mixture(3, 6, 4, seed=1)
    samples = model.sample(20_000, generator=torch.Generator().manual_seed(0)).long()
    marginal = (model.weights_[:, None, None] * model.log_probs_.exp()).sum(0)  # [D, L]
    for dim in range(6):
        observed = torch.bincount(samples[:, dim], minlength=4).numpy()
        _, p = stats.chisquare(observed, 20_000 * marginal[dim].numpy())
        assert p > 1e-3, (dim, observed, marginal[dim])
    # and the dependence between pixels that only the latent component creates
    pair = (samples[:, 0] * 4 + samples[:, 1]).bincount(minlength=16).numpy()
    joint = (model.weights_[:, None, None] * model.log_probs_[:, 0, :, None].exp()
             * model.log_probs_[:, 1, None, :].exp()).sum(0).reshape(-1)
    assert stats.chisquare(pair, 20_000 * joint.numpy())[1] > 1e-3


def test_mixtures_learn_the_digits_better_than_independent_pixels():
    for form, make in (("binary", lambda k: BernoulliMixture(k, seed=0)),
                       ("levels", lambda k: CategoricalMixture(k, 17, alpha=0.1, seed=0))):
        x, _ = load_digits("train", form)
        x_test, _ = load_digits("test", form)
        independent = -make(1).fit(x).log_prob(x_test).mean().item()
        mixture = -make(10).fit(x).log_prob(x_test).mean().item()
        # binary: 25.1 -> 19.6 nats per image; 17 levels: 107.6 -> 100.5
        assert mixture < independent - 4.0, (form, independent, mixture)


def test_bernoulli_mixture_reads_its_probabilities_and_samples_binary_images():
    x, _ = load_digits("train", "binary")
    model = BernoulliMixture(5, seed=0).fit(x)
    assert model.probs_.shape == (5, 64)
    torch.testing.assert_close(model.probs_, model.log_probs_[..., 1].exp())
    s = model.sample(30)
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    posterior = model.predict_proba(x[:10])
    torch.testing.assert_close(posterior.sum(1), torch.ones(10))


@pytest.mark.parametrize("call, error, match", [
    (lambda: CategoricalMixture(2, 1), ValueError, "n_levels"),
    (lambda: CategoricalMixture(0, 3), ValueError, "n_components"),
    (lambda: CategoricalMixture(2, 3, alpha=0), ValueError, "alpha"),
    (lambda: CategoricalMixture(2, 3).fit(torch.tensor([[0.5, 1.0]])), ValueError, "levels"),
    (lambda: CategoricalMixture(2, 3).fit(torch.tensor([[0, 3], [1, 1]])), ValueError, "0..2"),
    (lambda: CategoricalMixture(2, 3).fit(torch.tensor([[-1, 0], [1, 1]])), ValueError, "0..2"),
    (lambda: CategoricalMixture(5, 3).fit(torch.tensor([[0, 1], [1, 1]])), ValueError,
     "larger than"),
    (lambda: BernoulliMixture(2).fit(torch.tensor([[0.0, float("nan")]])), ValueError, "NaN"),
    (lambda: BernoulliMixture(2).fit(torch.tensor([[0, 1], [1, 1], [0, 0]]),
                                     resp_init=torch.ones(3, 3) / 3), ValueError, "resp_init"),
    (lambda: random_mixture(2, 3, 3).log_prob(torch.zeros(4, 2)), ValueError, "features"),
    (lambda: random_mixture(2, 3, 3).log_prob(torch.full((4, 3), 3.0)), ValueError, "0..2"),
])
def test_bad_input_gets_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_n_init_keeps_the_best_of_several_starts():
    x, _ = load_digits("train", "binary")
    single = BernoulliMixture(8, seed=0, n_init=1).fit(x)
    several = BernoulliMixture(8, seed=0, n_init=6).fit(x)  # the first start is the same
    assert several.lower_bound_ > single.lower_bound_ + 1e-2  # -19.876 vs -19.910 nats
    assert several.lower_bound_ == several.lower_bound_history_[-1]
