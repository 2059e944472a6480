"""Tests of dgm_lab.density against independent oracles.

Oracles: numpy / scipy (mean, covariance, multivariate_normal.logpdf, logsumexp,
gaussian_kde, numerical integration), scikit-learn (KernelDensity, GaussianMixture,
NearestNeighbors) and closed forms (uniform densities, the 1/|x| tail of the kNN estimate,
the variance of a KDE).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats
import torch
from scipy.special import gamma, logsumexp
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.neighbors import KernelDensity as SkKernelDensity
from sklearn.neighbors import NearestNeighbors

import dgm_lab.density as density
from dgm_lab.data import toy_density
from dgm_lab.density import (
    ConvergenceWarning,
    Gaussian,
    GaussianMixture,
    Histogram,
    KernelDensity,
    e_step,
    fit_gaussian,
    kde_log_prob,
    knn_density,
    knn_log_density,
    m_step,
    naive_window_log_prob,
    rule_of_thumb_bandwidth,
    select_bandwidth,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def correlated(n: int, d: int, seed: int = 0) -> np.ndarray:
    r = rng(seed)
    return r.normal(size=(n, d)) @ r.normal(size=(d, d)) + r.normal(size=d)


def whiten(x: np.ndarray) -> np.ndarray:
    """Affine map making the (unbiased) sample covariance exactly the identity."""
    cov = np.atleast_2d(np.cov(x.T))
    w, v = np.linalg.eigh(cov)
    return (x - x.mean(0)) @ (v @ np.diag(w**-0.5) @ v.T)


# --------------------------------------------------------------------------------------
# maximum likelihood Gaussian
# --------------------------------------------------------------------------------------

def test_fit_gaussian_matches_numpy_ml_estimates():
    x = correlated(500, 4)
    mean, cov = fit_gaussian(t(x))
    np.testing.assert_allclose(mean.numpy(), x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov.numpy(), np.cov(x.T, bias=True), rtol=1e-10, atol=1e-12)
    mean1, cov1 = fit_gaussian(t(x[:, 0]))  # 1-D input is [m] -> D = 1
    assert cov1.shape == (1, 1)
    np.testing.assert_allclose(cov1.item(), x[:, 0].var(), rtol=1e-12)


def test_gaussian_log_prob_matches_scipy_and_ml_is_the_maximum():
    x = correlated(400, 3, seed=1)
    model = Gaussian().fit(t(x))
    q = correlated(50, 3, seed=2)
    ref = scipy.stats.multivariate_normal(x.mean(0), np.cov(x.T, bias=True)).logpdf(q)
    np.testing.assert_allclose(model.log_prob(t(q)).numpy(), ref, rtol=1e-10)
    # any perturbation of the ML parameters lowers the training log-likelihood
    best = model.log_prob(t(x)).mean().item()
    for delta in (0.05, -0.05):
        moved = Gaussian(model.mean_ + delta, model.covariance_ * (1 + delta))
        assert moved.log_prob(t(x)).mean().item() < best


def test_gaussian_sample_moments_and_reg_covar():
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64)
    cov = torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    s = Gaussian(mean, cov).sample(40_000, generator=torch.Generator().manual_seed(0))
    assert s.shape == (40_000, 2)
    np.testing.assert_allclose(s.mean(0).numpy(), mean.numpy(), atol=0.03)
    np.testing.assert_allclose(np.cov(s.numpy().T), cov.numpy(), atol=0.04)
    flat = np.c_[rng().normal(size=100), np.zeros(100)]  # a direction with zero variance
    with pytest.raises(ValueError, match="not positive definite"):
        Gaussian().fit(t(flat))
    model = Gaussian().fit(t(flat), reg_covar=1e-3)
    np.testing.assert_allclose(model.covariance_[1, 1].item(), 1e-3)


def test_gaussian_bad_input():
    with pytest.raises(RuntimeError, match="call fit"):
        Gaussian().log_prob(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="both mean and covariance"):
        Gaussian(mean=torch.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        Gaussian(torch.zeros(2), torch.eye(3))
    with pytest.raises(ValueError, match="symmetric"):
        Gaussian(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="at least 2"):
        Gaussian().fit(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="NaN"):
        fit_gaussian(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="empty"):
        fit_gaussian(torch.zeros(0, 2))
    with pytest.raises(ValueError, match="shape"):
        fit_gaussian(torch.zeros(3, 2, 2))
    with pytest.raises(TypeError, match="torch.Tensor or numpy"):
        fit_gaussian("data")
    model = Gaussian().fit(torch.randn(10, 2))
    with pytest.raises(ValueError, match="features"):
        model.log_prob(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="reg_covar"):
        Gaussian().fit(torch.randn(10, 2), reg_covar=-1.0)


# --------------------------------------------------------------------------------------
# histogram
# --------------------------------------------------------------------------------------

def grid_edges(x: np.ndarray, h: float, origin: float) -> np.ndarray:
    """Cell edges origin + j h covering x, computed here in float64 (independent of dgm_lab)."""
    first = math.floor((x.min() - origin) / h)
    last = math.floor((x.max() - origin) / h)
    return origin + h * np.arange(first, last + 2)


def test_histogram_matches_numpy_and_integrates_to_one():
    x = rng(3).normal(size=1000)
    hist = Histogram(bin_width=0.3, origin=0.1).fit(t(x))
    edges = grid_edges(x, 0.3, 0.1)
    np.testing.assert_allclose(hist.edges[0].numpy(), edges, rtol=0, atol=1e-12)
    np_density, _ = np.histogram(x, bins=edges, density=True)
    np.testing.assert_allclose(hist.density.numpy(), np_density, rtol=1e-12)
    assert (hist.density * 0.3).sum().item() == pytest.approx(1.0, abs=1e-12)
    # log_prob at each bin centre is the log of numpy's bar height
    centres = t((edges[:-1] + edges[1:]) / 2)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(hist.log_prob(centres).numpy(), np.log(np_density))
    assert hist.log_prob(t([x.max() + 5, x.min() - 5])).tolist() == [-math.inf, -math.inf]


@pytest.mark.parametrize("origin", [0.0, 0.37, -0.81])
def test_histogram_origin_moves_the_grid_like_numpy(origin):
    x = rng(4).normal(size=300)
    hist = Histogram(1.0, origin=origin).fit(t(x))
    counts, edges = np.histogram(x, bins=grid_edges(x, 1.0, origin))
    with np.errstate(divide="ignore"):
        ref = np.log(counts / 300)
    # the log-density of every cell, read at points just inside its two edges
    for q in (edges[:-1] + 1e-9, edges[1:] - 1e-9):
        np.testing.assert_allclose(hist.log_prob(t(q)).numpy(), ref, rtol=1e-12)


def test_histogram_works_in_2d():
    x2 = rng(5).normal(size=(2000, 2))
    hist = Histogram(0.5, origin=-0.25).fit(t(x2))
    edges = [grid_edges(x2[:, i], 0.5, -0.25) for i in range(2)]
    ref, _ = np.histogramdd(x2, bins=edges, density=True)
    np.testing.assert_allclose(hist.density.numpy(), ref, rtol=1e-12)
    assert (hist.density.sum() * 0.25).item() == pytest.approx(1.0)


def test_histogram_samples_follow_the_piecewise_uniform_density():
    # oracle: the histogram's own CDF, piecewise linear between numpy's cumulative counts
    x = rng(6).exponential(size=3000)
    hist = Histogram(0.5, origin=0.1).fit(t(x))
    s = hist.sample(20_000, generator=torch.Generator().manual_seed(0)).numpy()[:, 0]
    counts, edges = np.histogram(x, bins=grid_edges(x, 0.5, 0.1))
    cdf_at_edges = np.concatenate([[0.0], np.cumsum(counts)]) / len(x)
    assert scipy.stats.kstest(s, lambda v: np.interp(v, edges, cdf_at_edges)).pvalue > 1e-3
    assert torch.isfinite(hist.log_prob(t(s))).all()  # samples land only in occupied cells
    # in 2-D: cells as often as their counts (chi-square), positions uniform inside a cell
    x2 = rng(7).normal(size=(4000, 2))
    hist2 = Histogram(0.7, origin=0.2).fit(t(x2))
    s2 = hist2.sample(20_000, generator=torch.Generator().manual_seed(1)).numpy()
    inside = (s2 - 0.2) / 0.7 - np.floor((s2 - 0.2) / 0.7)
    for i in range(2):
        assert scipy.stats.kstest(inside[:, i], "uniform").pvalue > 1e-3
    edges2 = [grid_edges(x2[:, i], 0.7, 0.2) for i in range(2)]
    observed, _ = np.histogramdd(s2, bins=edges2)
    expected, _ = np.histogramdd(x2, bins=edges2)
    big = expected.ravel() >= 20
    assert observed.ravel()[expected.ravel() == 0].sum() == 0
    o, e = observed.ravel()[big], expected.ravel()[big] * 20_000 / 4000
    o, e = np.append(o, 20_000 - o.sum()), np.append(e, 20_000 - e.sum())
    assert scipy.stats.chisquare(o, e).pvalue > 1e-3


def test_histogram_bad_input():
    with pytest.raises(ValueError, match="bin_width"):
        Histogram(0.0)
    with pytest.raises(TypeError, match="origin"):
        Histogram(1.0, origin="left")
    with pytest.raises(RuntimeError, match="fit"):
        Histogram(1.0).log_prob(torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        Histogram(1.0).fit(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="impractical in 64 dimensions"):
        Histogram(0.25).fit(torch.rand(100, 64))
    with pytest.raises(ValueError, match="features"):
        Histogram(1.0).fit(torch.randn(50)).log_prob(torch.zeros(3, 2))


# --------------------------------------------------------------------------------------
# naive window and Gaussian KDE
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("d", [1, 2])
def test_naive_window_is_a_count_in_a_cube(d):
    data = rng(7).normal(size=(500, d))
    q = rng(8).normal(size=(40, d))
    h = 0.6
    counts = (np.abs(q[:, None, :] - data[None]) <= h / 2).all(-1).sum(1)
    with np.errstate(divide="ignore"):
        ref = np.log(counts / (500 * h**d))
    got = naive_window_log_prob(t(q), t(data), h, batch_size=7).numpy()
    np.testing.assert_allclose(got, ref)
    # the window is closed: points exactly h/2 away count (exact in binary: h = 0.5)
    edge = t(np.array([0.25, -0.25, 0.2500001] * d).reshape(d, 3).T.copy())
    assert naive_window_log_prob(t(np.zeros((1, d))), edge, 0.5).item() == pytest.approx(
        math.log(2 / (3 * 0.5**d)))


def test_naive_window_and_kde_integrate_to_one_in_1d():
    data = t(rng(9).normal(size=200))
    grid = torch.linspace(-8, 8, 40_001, dtype=torch.float64)
    box = naive_window_log_prob(grid, data, 0.5).exp()
    kde = kde_log_prob(grid, data, 0.3).exp()
    assert torch.trapezoid(box, grid).item() == pytest.approx(1.0, abs=2e-3)
    assert torch.trapezoid(kde, grid).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("d", [1, 2, 5, 16])
def test_kde_matches_sklearn_kernel_density(d):
    x = correlated(400, d, seed=d)
    q = x[:60] + rng(d).normal(scale=0.5, size=(60, d))
    h = 0.4 * math.sqrt(d)
    # leaf_size >= n: scikit-learn's tree is one leaf and its sum exact. With its default
    # tree, pruning is inexact where the density is low (scikit-learn issues #7492, #25799,
    # #27186): for 16-D queries drawn wider than the data we saw errors of tenths of a nat.
    ref = SkKernelDensity(kernel="gaussian", bandwidth=h, leaf_size=len(x)).fit(x)
    got = kde_log_prob(t(q), t(x), h).numpy()
    np.testing.assert_allclose(got, ref.score_samples(q), rtol=1e-6)


@pytest.mark.parametrize("d", [1, 2, 5, 16])
def test_kde_matches_scipy_gaussian_kde_on_whitened_data(d):
    # scipy's kernel covariance is factor^2 * (sample covariance of the data). On data
    # whitened to covariance exactly I, bw_method=h gives the kernel h^2 I of our KDE.
    x = whiten(correlated(300, d, seed=10 + d))
    np.testing.assert_allclose(np.atleast_2d(np.cov(x.T)), np.eye(d), atol=1e-10)
    q = rng(d).normal(size=(50, d)) * 1.5
    h = 0.5
    ref = scipy.stats.gaussian_kde(x.T, bw_method=h).logpdf(q.T)
    got = kde_log_prob(t(q), t(x), h).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_kde_blocks_far_queries_float32_and_autograd():
    data = correlated(700, 3, seed=11)
    q = rng(12).normal(size=(90, 3)) * 30  # many queries far from every point
    h = 0.1
    d2 = ((q[:, None, :] - data[None]) ** 2).sum(-1)
    ref = logsumexp(-d2 / (2 * h * h), axis=1) - math.log(700) - 1.5 * math.log(2 * math.pi * h * h)
    for batch_size in (None, 1, 13):
        got = kde_log_prob(t(q), t(data), h, batch_size=batch_size).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-10)
    # tiny blocks also split the data into chunks merged with logaddexp
    old = density._BLOCK_PAIRS
    density._BLOCK_PAIRS = 64
    try:
        np.testing.assert_allclose(kde_log_prob(t(q), t(data), h, batch_size=4).numpy(), ref,
                                   rtol=1e-10)
    finally:
        density._BLOCK_PAIRS = old
    got32 = kde_log_prob(t(q).float(), t(data).float(), h)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.double().numpy(), ref, rtol=1e-5)
    qq = t(q[:10]).requires_grad_()
    out = kde_log_prob(qq, t(data), 2.0)
    out.sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), ref_grad_free(q[:10], data, 2.0), rtol=1e-10)
    assert torch.isfinite(qq.grad).all()


def ref_grad_free(q: np.ndarray, data: np.ndarray, h: float) -> np.ndarray:
    return SkKernelDensity(bandwidth=h, leaf_size=len(data)).fit(data).score_samples(q)


def test_kde_bad_input():
    data = torch.randn(20, 2)
    with pytest.raises(ValueError, match="bandwidth"):
        kde_log_prob(torch.zeros(3, 2), data, 0.0)
    with pytest.raises(ValueError, match="bandwidth"):
        kde_log_prob(torch.zeros(3, 2), data, -1.0)
    with pytest.raises(TypeError, match="bandwidth"):
        kde_log_prob(torch.zeros(3, 2), data, "wide")
    with pytest.raises(ValueError, match="features"):
        kde_log_prob(torch.zeros(3, 3), data, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        kde_log_prob(torch.full((3, 2), float("nan")), data, 1.0)
    with pytest.raises(ValueError, match="empty"):
        kde_log_prob(torch.zeros(3, 2), torch.zeros(0, 2), 1.0)
    with pytest.raises(ValueError, match="shape"):
        kde_log_prob(torch.zeros(3, 2, 1), data, 1.0)
    with pytest.raises(ValueError, match="batch_size"):
        kde_log_prob(torch.zeros(3, 2), data, 1.0, batch_size=0)
    with pytest.raises(ValueError, match="bandwidth"):
        naive_window_log_prob(torch.zeros(3, 2), data, float("inf"))


def test_kernel_density_module_matches_sklearn_and_brute_force_counting():
    x = correlated(300, 2, seed=13)
    kde = KernelDensity(bandwidth=0.3).fit(t(x))
    q = correlated(40, 2, seed=14)
    ref = SkKernelDensity(bandwidth=0.3, leaf_size=300).fit(x).score_samples(q)
    np.testing.assert_allclose(kde.log_prob(t(q)).numpy(), ref, rtol=1e-8)
    # box kernel: count the training points in the cube of side h centred on the query
    box = KernelDensity(0.5, kernel="box").fit(t(x))
    counts = (np.abs(q[:, None, :] - x[None]) <= 0.25).all(-1).sum(1)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(box.log_prob(t(q)).numpy(), np.log(counts / (300 * 0.25)))
    with pytest.raises(ValueError, match="unknown kernel 'tophat'"):
        KernelDensity(0.5, kernel="tophat")
    with pytest.raises(TypeError, match="kernel must be a string"):
        KernelDensity(0.5, kernel=None)
    with pytest.raises(RuntimeError, match="fit"):
        KernelDensity(0.5).sample(3)


@pytest.mark.parametrize("kernel", ["gaussian", "box"])
def test_kernel_density_samples_are_a_training_point_plus_kernel_noise(kernel):
    # oracle: with centres far apart, each sample has one parent; sample - parent must
    # follow the kernel exactly (KS test against scipy's normal / uniform distribution)
    centres = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0]])
    h = 0.8
    kde = KernelDensity(h, kernel=kernel).fit(t(centres))
    s = kde.sample(6000, generator=torch.Generator().manual_seed(2)).numpy()
    parent = np.abs(s[:, None, :] - centres[None]).max(-1).argmin(1)
    noise = s - centres[parent]
    kernel_cdf = (scipy.stats.norm(scale=h).cdf if kernel == "gaussian"
                  else scipy.stats.uniform(loc=-h / 2, scale=h).cdf)
    for i in range(2):
        assert scipy.stats.kstest(noise[:, i], kernel_cdf).pvalue > 1e-3
    counts = np.bincount(parent, minlength=3)
    assert scipy.stats.chisquare(counts).pvalue > 1e-3  # every centre equally likely
    assert torch.isfinite(kde.log_prob(t(s))).all()


def test_select_bandwidth_is_sensible_and_matches_sklearn_scores():
    toy = toy_density("two_moons")
    train = toy.sample(1000, generator=torch.Generator().manual_seed(0)).double()
    val = toy.sample(500, generator=torch.Generator().manual_seed(1)).double()
    grid = np.logspace(-3, 1, 17).tolist()
    best, scores = select_bandwidth(train, val, grid)
    assert grid[0] < best < grid[-1]
    assert best == grid[int(np.argmax(scores.numpy()))]
    for i in (0, 8, 16):
        sk = SkKernelDensity(bandwidth=grid[i], leaf_size=1000).fit(train.numpy())
        assert scores[i].item() == pytest.approx(sk.score_samples(val.numpy()).mean(), rel=1e-8)
    # the chosen KDE is good: close to the true entropy on fresh test points
    test = toy.sample(2000, generator=torch.Generator().manual_seed(2)).double()
    nll = -kde_log_prob(test, train, best).mean().item()
    assert nll < toy.entropy(50_000, generator=torch.Generator().manual_seed(3)) + 0.2
    with pytest.raises(ValueError, match="empty"):
        select_bandwidth(train, val, [])
    with pytest.raises(ValueError, match="candidate"):
        select_bandwidth(train, val, [0.1, 0.0])


@pytest.mark.parametrize("rule", ["scott", "silverman"])
def test_rule_of_thumb_matches_scipy_in_1d(rule):
    x = rng(15).normal(scale=2.0, size=500)
    kde = scipy.stats.gaussian_kde(x, bw_method=rule)
    expected = kde.factor * x.std(ddof=1)
    assert rule_of_thumb_bandwidth(t(x), rule) == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="rule"):
        rule_of_thumb_bandwidth(t(x), "magic")
    with pytest.raises(ValueError, match="zero variance"):
        rule_of_thumb_bandwidth(torch.ones(10, 2), rule)


@pytest.mark.parametrize("rule", ["scott", "silverman"])
@pytest.mark.parametrize("d", [2, 5])
def test_rule_of_thumb_matches_scipy_in_d_dimensions(rule, d):
    # on whitened data (covariance exactly I) scipy's kernel covariance is factor^2 I
    x = whiten(rng(18).normal(size=(400, d)))
    expected = scipy.stats.gaussian_kde(x.T, bw_method=rule).factor
    assert rule_of_thumb_bandwidth(t(x), rule) == pytest.approx(expected, rel=1e-10)


# --------------------------------------------------------------------------------------
# k nearest neighbours
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("d", [1, 2, 3])
def test_knn_density_matches_the_formula_with_sklearn_neighbours(d):
    data = rng(16).normal(size=(300, d))
    q = rng(17).normal(size=(40, d))
    k = 7
    dist, _ = NearestNeighbors(n_neighbors=k).fit(data).kneighbors(q)
    volume = math.pi ** (d / 2) / gamma(d / 2 + 1)
    ref = k / (300 * volume * dist[:, -1] ** d)
    np.testing.assert_allclose(knn_density(t(q), t(data), k, batch_size=9).numpy(), ref,
                               rtol=1e-9)
    np.testing.assert_allclose(knn_log_density(t(q), t(data), k).numpy(), np.log(ref),
                               rtol=1e-9)


def test_knn_in_float32_far_from_the_origin_matches_sklearn():
    # the expanded square ||x||^2 - 2 x.y + ||y||^2 loses every small distance in float32
    # unless the points are centred first
    data = (rng(30).normal(size=(2000, 2)) * 0.1 + 1000.0).astype(np.float32)
    q = (data[:200] + rng(31).normal(size=(200, 2)) * 0.01).astype(np.float32)
    # the oracle works in float64 on the same (float32-representable) points
    dist, _ = NearestNeighbors(n_neighbors=5).fit(data.astype(float)).kneighbors(q.astype(float))
    ref = math.log(5 / 2000) - math.log(math.pi) - 2 * np.log(dist[:, -1])
    got = knn_log_density(torch.from_numpy(q), torch.from_numpy(data), 5)
    np.testing.assert_allclose(got.double().numpy(), ref, atol=1e-3)


def test_gmm_kmeans_seeding_in_float32_far_from_the_origin():
    # three well-separated blobs around (3000, 3000): the fitted means land on the blobs
    centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]]) + 3000.0
    x = np.concatenate([c + 0.3 * rng(40 + i).normal(size=(300, 2))
                        for i, c in enumerate(centres)])
    gmm = GaussianMixture(3, seed=0).fit(torch.from_numpy(x).float())
    found = gmm.means_.double().numpy()
    assert np.abs(found[:, None] - centres[None]).max(-1).min(0).max() < 0.1


def test_knn_counts_a_data_point_at_distance_zero():
    # queries that are data points: their own point is the first neighbour (distance 0),
    # as scikit-learn's kneighbors(X) with an explicit X counts it
    data = rng(19).normal(size=(200, 2))
    dist, _ = NearestNeighbors(n_neighbors=4).fit(data).kneighbors(data[:30])
    assert np.all(dist[:, 0] == 0)
    ref = math.log(4 / 200) - math.log(math.pi) - 2 * np.log(dist[:, -1])
    np.testing.assert_allclose(knn_log_density(t(data[:30]), t(data), 4).numpy(), ref,
                               rtol=1e-9)
    # k = 1 at a data point: r_1 = 0, the estimate is +inf
    assert knn_log_density(t(data[:3]), t(data), 1).tolist() == [math.inf] * 3


def test_knn_density_of_uniform_data_is_close_to_one():
    data = torch.rand(20_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    q = 0.25 + 0.5 * torch.rand(200, 2, generator=torch.Generator().manual_seed(1),
                                dtype=torch.float64)
    p = knn_density(q, data, 200)
    assert p.mean().item() == pytest.approx(1.0, abs=0.03)
    assert (p - 1).abs().max().item() < 0.25


def test_knn_density_is_not_normalised_in_1d():
    # far from the data r_k(x) ~ |x|, so p(x) ~ k / (2 m |x|): the integral over [-L, L]
    # grows like (k/m) log L without bound
    m, k = 200, 10
    data = t(rng(18).normal(size=m))
    inner = torch.linspace(-5, 5, 20_001, dtype=torch.float64)
    tail = torch.logspace(math.log10(5), 6, 20_001, dtype=torch.float64)[1:]
    grid = torch.cat([-tail.flip(0), inner, tail])
    p = knn_density(grid, data, k)
    masses = []
    for L in (10.0, 100.0, 1e4, 1e6):
        keep = grid.abs() <= L
        masses.append(torch.trapezoid(p[keep], grid[keep]).item())
    assert all(a < b for a, b in zip(masses, masses[1:], strict=False))
    assert masses[-1] > 1.0
    # the growth from 1e4 to 1e6 is the closed-form tail (k/m) * log(1e6 / 1e4)
    assert masses[3] - masses[2] == pytest.approx(k / m * math.log(100), rel=1e-3)


def test_knn_bad_input():
    data = torch.randn(10, 2)
    with pytest.raises(ValueError, match="larger than the number"):
        knn_density(torch.zeros(1, 2), data, 11)
    with pytest.raises(ValueError, match="k must be"):
        knn_density(torch.zeros(1, 2), data, 0)
    with pytest.raises(TypeError, match="k must be an integer"):
        knn_density(torch.zeros(1, 2), data, 2.5)
    with pytest.raises(ValueError, match="features"):
        knn_density(torch.zeros(1, 3), data, 2)
    with pytest.raises(ValueError, match="infinite"):
        knn_density(torch.tensor([[math.inf, 0.0]]), data, 2)


# --------------------------------------------------------------------------------------
# Gaussian mixtures and EM
# --------------------------------------------------------------------------------------

def blobs(seed: int = 0) -> np.ndarray:
    r = rng(seed)
    return np.concatenate([
        r.normal(size=(300, 2)) + [3, 0],
        r.normal(size=(250, 2)) * 0.5,
        r.normal(size=(350, 2)) @ np.array([[1.0, 0.8], [0.0, 0.5]]) - [2, 3],
    ])


def random_init(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, ...]:
    r = rng(seed)
    weights = r.dirichlet(np.ones(k) * 5)
    means = x[r.choice(len(x), k, replace=False)]
    a = r.normal(size=(k, x.shape[1], x.shape[1]))
    covs = a @ a.transpose(0, 2, 1) * 0.3 + np.eye(x.shape[1])
    return weights, means, covs


@pytest.mark.parametrize(("data", "k", "seed", "reg_covar"), [
    ("blobs", 3, 0, 1e-4), ("blobs", 5, 1, 1e-2), ("correlated", 4, 2, 1e-4)])
def test_em_matches_sklearn_from_the_same_initialisation(data, k, seed, reg_covar):
    # same start, same stopping rule: both run the same iterations and agree to rounding
    # (measured: 4e-14 at most), so the tolerance below catches any change to EM
    x = blobs(seed) if data == "blobs" else correlated(600, 5, seed=seed)
    weights, means, covs = random_init(x, k, seed)
    settings = dict(tol=1e-5, reg_covar=reg_covar, max_iter=300)
    ours = GaussianMixture(k, **settings).fit(
        t(x), weights_init=t(weights), means_init=t(means), covariances_init=t(covs))
    sk = SkGaussianMixture(k, weights_init=weights, means_init=means,
                           precisions_init=np.linalg.inv(covs), **settings).fit(x)
    assert ours.converged_ and sk.converged_
    assert ours.n_iter_ == sk.n_iter_ == len(ours.lower_bound_history_)
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, abs=1e-10)
    assert ours.log_prob(t(x)).mean().item() == pytest.approx(sk.score(x), abs=1e-10)
    np.testing.assert_allclose(ours.weights_.numpy(), sk.weights_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.means_.numpy(), sk.means_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.covariances_.numpy(), sk.covariances_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(t(x)).numpy(), sk.predict_proba(x), atol=1e-9)
    # EM never lowers the likelihood (up to the tiny effect of reg_covar and rounding)
    assert np.diff(ours.lower_bound_history_).min() > -1e-9


def test_e_step_matches_scipy_bayes_rule():
    x = blobs(3)
    weights, means, covs = random_init(x, 3, 3)
    log_joint = np.stack([np.log(w) + scipy.stats.multivariate_normal(m, c).logpdf(x)
                          for w, m, c in zip(weights, means, covs, strict=True)], 1)
    log_px = logsumexp(log_joint, axis=1)
    log_resp, got_px = e_step(t(x), t(weights), t(means), t(covs))
    np.testing.assert_allclose(got_px.numpy(), log_px, rtol=1e-10)
    np.testing.assert_allclose(log_resp.numpy(), log_joint - log_px[:, None], atol=1e-9)
    # far away points: every component density underflows, responsibilities stay valid
    far = t(np.array([[1e3, -1e3]]))
    log_resp_far, _ = e_step(far, t(weights), t(means), t(covs))
    assert torch.isfinite(log_resp_far).all()
    assert log_resp_far.exp().sum().item() == pytest.approx(1.0)


def test_m_step_matches_weighted_numpy_estimates():
    x = correlated(400, 3, seed=4)
    resp = rng(4).dirichlet(np.ones(4), size=400)
    weights, means, covs = m_step(t(x), t(resp), reg_covar=1e-3)
    np.testing.assert_allclose(weights.numpy(), resp.mean(0), rtol=1e-10)
    for j in range(4):
        np.testing.assert_allclose(means[j].numpy(), np.average(x, axis=0, weights=resp[:, j]),
                                   rtol=1e-10)
        ref = np.cov(x.T, aweights=resp[:, j], bias=True) + 1e-3 * np.eye(3)
        np.testing.assert_allclose(covs[j].numpy(), ref, rtol=1e-8)


def test_gmm_learns_eight_gaussians_close_to_the_true_entropy():
    toy = toy_density("eight_gaussians")
    train = toy.sample(4000, generator=torch.Generator().manual_seed(0))
    test = toy.sample(4000, generator=torch.Generator().manual_seed(1))
    gmm = GaussianMixture(8, seed=0, tol=1e-4).fit(train)
    assert gmm.converged_
    nll = -gmm.log_prob(test).mean().item()
    entropy = -toy.log_prob(test).mean().item()
    assert nll < entropy + 0.05
    assert sorted(gmm.weights_.tolist())[0] > 0.08  # no component was wasted
    s = gmm.sample(8000, generator=torch.Generator().manual_seed(2))
    assert s.shape == (8000, 2)
    assert -toy.log_prob(s).mean().item() < entropy + 0.1
    counts = torch.bincount(gmm.predict(s), minlength=8).double() / 8000
    np.testing.assert_allclose(counts.numpy(), gmm.weights_.double().numpy(), atol=0.03)


def test_gmm_init_from_responsibilities_and_convergence_warning():
    x = blobs(5)
    labels = np.repeat([0, 1, 2], [300, 250, 350])
    resp = np.eye(3)[labels]
    gmm = GaussianMixture(3, tol=1e-6, max_iter=500).fit(t(x), resp_init=t(resp))
    assert gmm.converged_
    np.testing.assert_allclose(sorted(gmm.weights_.tolist()), [250 / 900, 300 / 900, 350 / 900],
                               atol=0.02)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        short = GaussianMixture(3, max_iter=2, tol=1e-12).fit(t(x))
    assert not short.converged_ and short.n_iter_ == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GaussianMixture(3, max_iter=500).fit(t(x))  # converges: no warning


def test_gmm_samples_have_each_components_covariance():
    # two far-apart components with strongly correlated, differently scaled covariances:
    # whitening each component's samples with its own covariance must give the identity
    # (a transposed Cholesky factor gives L^T L instead of L L^T and fails)
    covs = np.array([[[4.0, 1.9, 0.5], [1.9, 1.0, 0.1], [0.5, 0.1, 0.3]],
                     [[0.2, -0.3, 0.0], [-0.3, 2.0, 0.9], [0.0, 0.9, 1.0]]])
    means = np.array([[0.0, 0.0, 0.0], [40.0, -40.0, 10.0]])
    r = rng(50)
    x = np.concatenate([r.multivariate_normal(means[j], covs[j], size=500) for j in range(2)])
    gmm = GaussianMixture(2, tol=1e-8).fit(t(x), means_init=t(means))
    n = 40_000
    s = gmm.sample(n, generator=torch.Generator().manual_seed(0)).numpy()
    which = np.linalg.norm(s[:, None] - gmm.means_.numpy()[None], axis=-1).argmin(1)
    counts = np.bincount(which, minlength=2)
    p = gmm.weights_.numpy()
    assert np.all(np.abs(counts - n * p) < 5 * np.sqrt(n * p * (1 - p)))
    for j in range(2):
        chol = np.linalg.cholesky(gmm.covariances_[j].numpy())
        z = np.linalg.solve(chol, (s[which == j] - gmm.means_[j].numpy()).T).T
        m = len(z)
        np.testing.assert_allclose(z.mean(0), 0.0, atol=5 / np.sqrt(m))
        np.testing.assert_allclose(np.cov(z.T), np.eye(3), atol=5 * np.sqrt(2 / m))


def test_gmm_n_init_keeps_the_best_of_several_starts():
    # on this data the first k-means++ start (all that n_init=1 runs) ends 0.03 nats per
    # point below the best of four
    x = t(correlated(500, 3, seed=8))
    one = GaussianMixture(6, seed=0, max_iter=500).fit(x)
    several = GaussianMixture(6, seed=0, max_iter=500, n_init=4).fit(x)
    assert several.lower_bound_ > one.lower_bound_ + 0.02
    # the kept run is a real fit: its parameters give the recorded likelihood
    assert several.log_prob(x).mean().item() == pytest.approx(several.lower_bound_, abs=1e-3)


def test_gmm_in_float32_far_from_the_origin_matches_float64_sklearn():
    # three blobs moved by 1e6 and stored in float32 (numbers 0.0625 apart there). Oracle:
    # scikit-learn in float64 on the same float32 values, from the same start. Measured
    # before centring: the float32 fit collapsed (a non positive definite covariance).
    x = (blobs(9) + 1e6).astype(np.float32).astype(np.float64)
    weights, means, covs = random_init(x, 3, 9)
    init = dict(weights_init=weights, means_init=means)
    sk = SkGaussianMixture(3, tol=1e-6, reg_covar=1e-6, precisions_init=np.linalg.inv(covs),
                           **init).fit(x)
    ours = GaussianMixture(3, tol=1e-6).fit(
        torch.from_numpy(x).float(), covariances_init=t(covs).float(),
        **{k: t(v).float() for k, v in init.items()})
    assert ours.dtype == torch.float32
    got = ours.log_prob(torch.from_numpy(x).float()).double().numpy()
    ref = sk.score_samples(x)
    assert abs(got.mean() - ref.mean()) < 1e-3
    assert np.abs(got - ref).max() < 2e-2
    np.testing.assert_allclose(ours.means_.double().numpy(), sk.means_, atol=0.04)
    # the means relative to the data's centre keep far more digits than float32 at 1e6
    np.testing.assert_allclose(ours.centred_means_.double().numpy(),
                               sk.means_ - ours.shift_.double().numpy(), atol=1e-3)


def test_gaussian_and_histogram_in_float32_far_from_the_origin():
    # oracle: float64 computations (scipy, numpy) on the same float32 values
    x = (correlated(3000, 3, seed=21) + 1e6).astype(np.float32)
    xd = x.astype(np.float64)
    model = Gaussian().fit(torch.from_numpy(x))
    ref = scipy.stats.multivariate_normal(xd.mean(0), np.cov(xd.T, bias=True)).logpdf(xd)
    got = model.log_prob(torch.from_numpy(x)).double().numpy()
    assert abs(got.mean() - ref.mean()) < 1e-3  # measured before: 0.027 (max error 1.1)
    assert np.abs(got - ref).max() < 0.1
    # histogram cells of width 0.05 at 1e6: before, 75 % of the points got the wrong cell
    x1 = (rng(22).normal(size=20_000) * 3 + 1e6).astype(np.float32)
    hist = Histogram(0.05, origin=0.01).fit(torch.from_numpy(x1))
    cells = np.floor((x1.astype(np.float64) - 0.01) / 0.05)
    counts = np.bincount((cells - cells.min()).astype(int))
    want = np.log(counts[(cells - cells.min()).astype(int)] / (20_000 * 0.05))
    np.testing.assert_allclose(hist.log_prob(torch.from_numpy(x1)).double().numpy(), want,
                               rtol=0, atol=1e-5)


def test_gmm_bad_input():
    x = torch.randn(20, 2)
    with pytest.raises(ValueError, match="larger than the number"):
        GaussianMixture(21).fit(x)
    with pytest.raises(ValueError, match="n_components"):
        GaussianMixture(0)
    with pytest.raises(ValueError, match="n_init"):
        GaussianMixture(2, n_init=0)
    with pytest.raises(ValueError, match="tol"):
        GaussianMixture(2, tol=0)
    with pytest.raises(ValueError, match="reg_covar"):
        GaussianMixture(2, reg_covar=-1e-6)
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixture(2).fit(torch.full((5, 2), float("nan")))
    with pytest.raises(ValueError, match="means_init"):
        GaussianMixture(2).fit(x, means_init=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="resp_init"):
        GaussianMixture(2).fit(x, resp_init=torch.ones(20, 3) / 3)
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture(2).fit(x, weights_init=torch.tensor([0.5, 0.6]))
    with pytest.raises(RuntimeError, match="fit"):
        GaussianMixture(2).log_prob(x)
    w, m, c = torch.full((2,), 0.5), torch.zeros(2, 2), torch.eye(2).repeat(2, 1, 1)
    with pytest.raises(ValueError, match="covariances must have shape"):
        e_step(x, w, m, torch.eye(2).repeat(3, 1, 1))
    with pytest.raises(ValueError, match="not positive definite"):
        e_step(x, w, m, torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="features"):
        e_step(torch.zeros(3, 3), w, m, c)
    with pytest.raises(ValueError, match="log-responsibilities"):
        m_step(x, torch.full((20, 2), -0.7))
    with pytest.raises(ValueError, match="rows"):
        m_step(x, torch.full((19, 2), 0.5))
    # a covariance that is not symmetric is refused, not silently read as its lower triangle
    skew = torch.tensor([[1.0, 0.5], [0.0, 1.0]]).repeat(2, 1, 1)
    with pytest.raises(ValueError, match="covariances must be symmetric"):
        e_step(x, w, m, skew)
    with pytest.raises(ValueError, match="covariances_init must be symmetric"):
        GaussianMixture(2).fit(x, covariances_init=skew)
    with pytest.raises(ValueError, match=r"covariances_init must have shape \[2, 2, 2\]"):
        GaussianMixture(2).fit(x, covariances_init=torch.eye(2).repeat(3, 1, 1))
    with pytest.raises(ValueError, match="weights_init has 3 entries"):
        GaussianMixture(2).fit(x, weights_init=torch.full((3,), 1 / 3))
    with pytest.raises(ValueError, match="means_init contains NaN"):
        GaussianMixture(2).fit(x, means_init=torch.full((2, 2), math.nan))
    with pytest.raises(ValueError, match="resp_init must be non-negative"):
        GaussianMixture(2).fit(x, resp_init=torch.tensor([[1.5, -0.5]]).repeat(20, 1))
    with pytest.raises(TypeError, match="n_components must be an integer"):
        GaussianMixture(2.0)
    with pytest.raises(ValueError, match="seed must be non-negative"):
        GaussianMixture(2, seed=-1)
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        GaussianMixture(2, max_iter=0)


# --------------------------------------------------------------------------------------
# CUDA
# --------------------------------------------------------------------------------------

@pytest.mark.cuda
def test_density_functions_on_cuda_match_the_cpu():
    # every model is checked on CUDA in test_models.py; here the plain functions
    cuda = torch.device("cuda")
    x = t(blobs(6))
    q = t(correlated(100, 2, seed=7))
    for h in (0.05, 0.5):
        got = kde_log_prob(q.to(cuda), x.to(cuda), h)
        assert got.device.type == "cuda"
        np.testing.assert_allclose(got.cpu().numpy(), kde_log_prob(q, x, h).numpy(), rtol=1e-9)
        np.testing.assert_array_equal(naive_window_log_prob(q.to(cuda), x.to(cuda), h).cpu(),
                                      naive_window_log_prob(q, x, h))
    np.testing.assert_allclose(knn_density(q.to(cuda), x.to(cuda), 5).cpu().numpy(),
                               knn_density(q, x, 5).numpy(), rtol=1e-9)
    assert rule_of_thumb_bandwidth(x.to(cuda)) == pytest.approx(rule_of_thumb_bandwidth(x))
    best, scores = select_bandwidth(x[:600].to(cuda), x[600:].to(cuda), [0.1, 0.3])
    assert scores.device.type == "cuda"
    weights, means, covs = (t(a).to(cuda) for a in random_init(x.numpy(), 3, 0))
    log_resp, log_px = e_step(x.to(cuda), weights, means, covs)
    ref_resp, ref_px = e_step(x, weights.cpu(), means.cpu(), covs.cpu())
    np.testing.assert_allclose(log_px.cpu().numpy(), ref_px.numpy(), rtol=1e-9)
    new = m_step(x.to(cuda), log_resp.exp())
    for a, b in zip(new, m_step(x, ref_resp.exp()), strict=True):
        np.testing.assert_allclose(a.cpu().numpy(), b.numpy(), rtol=1e-9, atol=1e-12)


def test_extreme_bin_widths_and_bandwidths_get_clear_errors_or_exact_results():
    with pytest.raises(ValueError, match="cell indices would overflow"):
        Histogram(1e-300).fit(torch.tensor([0.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="origin must be finite"):
        Histogram(1.0, origin=math.inf)
    data = torch.tensor([[0.0], [0.0], [3.0]], dtype=torch.float64)
    query = torch.zeros(1, 1, dtype=torch.float64)
    # tiny h: only the two points at the query count, log(2 / (3 sqrt(2 pi) h)) in closed form
    for h in (1e-3, 1e-100):
        want = math.log(2 / 3) - 0.5 * math.log(2 * math.pi) - math.log(h)
        assert kde_log_prob(query, data, h).item() == pytest.approx(want, rel=1e-12)
    # h = 1e-160: h**2 is subnormal and 1 / h**2 overflows float64; exact while the squared
    # distances in units of h fit in a float64, refused with the reason once they do not
    want = -0.5 * math.log(2 * math.pi) - math.log(1e-160)
    assert kde_log_prob(query, torch.zeros(3, 1, dtype=torch.float64), 1e-160).item() == (
        pytest.approx(want, rel=1e-12))
    with pytest.raises(ValueError, match="bandwidth=1e-160 is too small .*float64"):
        kde_log_prob(query, data, 1e-160)
    # huge h (h**2 overflows a Python float): every kernel is flat, p = N(0; 0, h^2)
    for h in (1e10, 1e200):
        want = -0.5 * math.log(2 * math.pi) - math.log(h)
        assert kde_log_prob(query, data, h).item() == pytest.approx(want, rel=1e-12)
        assert kde_log_prob(query.float(), data.float(), h).item() == pytest.approx(want, rel=1e-6)
    # float32: 1 / h**2 overflows for h = 1e-20, yet data on that scale get the exact
    # result; a bandwidth whose squared distances overflow is refused with the reason
    tiny = torch.tensor([[0.0], [1e-19]])
    assert kde_log_prob(torch.zeros(1, 1), tiny, 1e-20).item() == pytest.approx(
        math.log((1 + math.exp(-50)) / 2) - 0.5 * math.log(2 * math.pi) - math.log(1e-20),
        rel=1e-6)
    far = torch.tensor([[1.0], [0.0]])
    with pytest.raises(ValueError, match="bandwidth=1e-30 is too small .*float32"):
        kde_log_prob(torch.zeros(1, 1), far, 1e-30)
    # exponents are clamped at 0: at a training point hundreds of bandwidths from the others
    # the estimate is one kernel peak / m; in float32 the rounding of the expanded square
    # (0.03 nats here) must not lift it above that (measured without the clamp: +0.031)
    x = (torch.rand(50, 3, generator=torch.Generator().manual_seed(0)) - 0.5) * 100
    peak = -1.5 * math.log(2 * math.pi * 0.1**2) - math.log(50)
    assert (kde_log_prob(x, x, 0.1) - peak).max().item() <= 1e-6
