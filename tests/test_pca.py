"""Tests of dgm_lab.pca against independent oracles.

Oracles: scikit-learn's ``PCA`` (components, explained variance, ``get_covariance``,
``score_samples``: its probabilistic-PCA density, with the N - 1 normalisation converted to
our 1/N), numpy / scipy (eigenvalues of the sample covariance, ``multivariate_normal``,
``subspace_angles``, Kolmogorov-Smirnov tests of samples), autograd (gradients of the linear
autoencoder's loss, the stationarity of the maximum-likelihood fit) and closed forms (the
reconstruction error of PCA is the sum of the discarded eigenvalues; Gaussian conditioning for
the posterior).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA as SkPCA

from dgm_lab import results
from dgm_lab.data import load_digits
from dgm_lab.pca import (
    PCA,
    LinearAutoencoder,
    ProbabilisticPCA,
    linear_autoencoder_step,
    pca_svd,
    ppca_fit,
    ppca_log_prob,
    principal_angles,
)

ROOT = Path(__file__).resolve().parents[1]


def correlated(n: int, d: int, seed: int = 0, shift: float = 3.0) -> np.ndarray:
    r = np.random.default_rng(seed)
    return r.normal(size=(n, d)) @ r.normal(size=(d, d)) + shift * r.normal(size=d)


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def ml_eigenvalues(x: np.ndarray) -> np.ndarray:
    """Eigenvalues of the 1/N sample covariance, largest first (numpy)."""
    return np.linalg.eigvalsh(np.cov(x.T, bias=True))[::-1]


def sklearn_ppca(x: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray, float]:
    """scikit-learn's probabilistic PCA at our 1/N normalisation: (mean, covariance, sigma^2).

    scikit-learn estimates the covariance with 1/(N - 1); its PPCA covariance scales with it.
    """
    sk = SkPCA(q).fit(x)
    n = len(x)
    return sk.mean_, sk.get_covariance() * (n - 1) / n, sk.noise_variance_ * (n - 1) / n


# --------------------------------------------------------------------------------------
# PCA by SVD
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, d, q", [(300, 6, 3), (40, 10, 10), (8, 20, 5)])
def test_pca_svd_matches_sklearn(n, d, q):
    """Components up to sign, explained variance to 1e-6 (scikit-learn's times (N-1)/N)."""
    x = correlated(n, d, seed=n)
    mean, components, variance = pca_svd(t(x), q)
    sk = SkPCA(q, svd_solver="full").fit(x)
    np.testing.assert_allclose(mean.numpy(), x.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(variance.numpy(), sk.explained_variance_ * (n - 1) / n,
                               rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(variance.numpy(), ml_eigenvalues(x)[:q], rtol=1e-6, atol=1e-10)
    signs = np.sign((components.numpy() * sk.components_).sum(1))
    np.testing.assert_allclose(components.numpy() * signs[:, None], sk.components_, atol=1e-6)
    np.testing.assert_allclose(components.numpy() @ components.numpy().T, np.eye(q), atol=1e-12)
    # the sign convention: the entry of largest magnitude of every component is positive
    big = components.gather(1, components.abs().argmax(1, keepdim=True))
    assert (big > 0).all()


def test_pca_svd_default_keeps_every_component_and_float32_far_from_the_origin():
    x = correlated(200, 5, seed=3)
    mean, components, variance = pca_svd(t(x))
    assert components.shape == (5, 5) and variance.shape == (5,)
    np.testing.assert_allclose(variance.sum().item(), np.trace(np.cov(x.T, bias=True)),
                               rtol=1e-12)
    far = x * 0.01 + 1e4  # tiny spread far away: float32 keeps it through the two-pass mean
    _, _, v32 = pca_svd(torch.from_numpy(far).float())
    reference = ml_eigenvalues(far.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(v32.double().numpy(), reference, rtol=2e-2)


def test_pca_svd_bad_input():
    with pytest.raises(ValueError, match="at least 2 rows"):
        pca_svd(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"min\(N, D\) = 3"):
        pca_svd(torch.randn(10, 3), 4)
    with pytest.raises(ValueError, match="n_components must be >= 1"):
        pca_svd(torch.randn(10, 3), 0)
    with pytest.raises(TypeError, match="n_components must be an integer"):
        pca_svd(torch.randn(10, 3), 2.0)
    with pytest.raises(ValueError, match=r"shape \[n, d\]"):
        pca_svd(torch.randn(10))
    with pytest.raises(ValueError, match="NaN"):
        pca_svd(torch.full((4, 2), math.nan))


def test_pca_model_reconstruction_error_is_the_discarded_variance():
    """Closed form: the mean squared error of the rank-Q projection is sum_{j > Q} lambda_j,
    and no other Q-dimensional subspace does better (random ones are compared)."""
    x = correlated(400, 7, seed=5)
    pca = PCA(3).fit(t(x))
    error = (pca(t(x)) - t(x)).square().sum(1).mean().item()
    eig = ml_eigenvalues(x)
    assert error == pytest.approx(eig[3:].sum(), rel=1e-10)
    assert pca.total_variance_.item() == pytest.approx(eig.sum(), rel=1e-10)
    sk = SkPCA(3).fit(x)
    np.testing.assert_allclose(pca.explained_variance_ratio_.numpy(),
                               sk.explained_variance_ratio_, rtol=1e-8)
    signs = np.sign((pca.components_.numpy() * sk.components_).sum(1))
    np.testing.assert_allclose(pca.encode(t(x[:20])).numpy() * signs, sk.transform(x[:20]),
                               atol=1e-8)
    np.testing.assert_allclose(pca(t(x[:20])).numpy(),
                               sk.inverse_transform(sk.transform(x[:20])), atol=1e-8)
    rng = np.random.default_rng(0)
    centred = x - x.mean(0)
    for _ in range(20):
        basis, _ = np.linalg.qr(rng.normal(size=(7, 3)))
        other = ((centred - centred @ basis @ basis.T) ** 2).sum(1).mean()
        assert other > error


def test_pca_model_checks_its_input():
    with pytest.raises(RuntimeError, match="not fitted yet: call fit"):
        PCA(2).encode(torch.zeros(3, 4))
    pca = PCA(2).fit(torch.randn(50, 4))
    with pytest.raises(ValueError, match="has 3 features but this PCA expects 4"):
        pca.encode(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="z has 3 features but this PCA expects 2"):
        pca.decode(torch.zeros(5, 3))
    assert pca.encode(torch.zeros(5, 4, dtype=torch.float64)).dtype == torch.float32
    with pytest.raises(TypeError, match="n_components"):
        PCA("2")


# --------------------------------------------------------------------------------------
# probabilistic PCA
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, d, q", [(500, 6, 2), (300, 10, 9), (12, 30, 4)])
def test_ppca_fit_matches_sklearn_and_the_eigenvalues(n, d, q):
    """scikit-learn's PPCA (N >= D) and numpy's eigenvalues. With N < D scikit-learn averages
    only the min(N, D) - Q eigenvalues it computed; the maximum-likelihood sigma^2 averages all
    D - Q, the zero ones included (Tipping & Bishop, eq. 8)."""
    x = correlated(n, d, seed=d)
    mean, weight, sigma2 = ppca_fit(t(x), q)
    eig = ml_eigenvalues(x).clip(0)
    assert sigma2.item() == pytest.approx(eig[q:].sum() / (d - q), rel=1e-6)
    cov = weight.numpy() @ weight.numpy().T + sigma2.item() * np.eye(d)
    np.testing.assert_allclose(np.linalg.eigvalsh(cov)[::-1][:q], eig[:q], rtol=1e-6)
    gram = weight.numpy().T @ weight.numpy()  # orthogonal columns along the principal axes
    np.testing.assert_allclose(gram, np.diag(np.diag(gram)), atol=1e-8)
    np.testing.assert_allclose(mean.numpy(), x.mean(0), rtol=1e-10, atol=1e-10)
    if n >= d:
        sk_mean, sk_cov, sk_sigma2 = sklearn_ppca(x, q)
        assert sigma2.item() == pytest.approx(sk_sigma2, rel=1e-6)
        np.testing.assert_allclose(cov, sk_cov, rtol=1e-6, atol=1e-8)


def test_ppca_fit_is_a_maximum_of_the_likelihood():
    """Autograd through torch.distributions: the gradient of the total log-likelihood in
    (mean, weight, log sigma^2) vanishes at the fit, and random perturbations lower it."""
    x = t(correlated(400, 5, seed=7))
    mean, weight, sigma2 = ppca_fit(x, 2)
    params = [mean.clone().requires_grad_(), weight.clone().requires_grad_(),
              sigma2.log().clone().requires_grad_()]

    def total(m, w, log_s2):
        cov = w @ w.T + log_s2.exp() * torch.eye(5, dtype=w.dtype)
        return torch.distributions.MultivariateNormal(m, cov).log_prob(x).sum()

    best = total(*params)
    for g in torch.autograd.grad(best, params):
        assert g.abs().max() < 1e-6 * len(x)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(10):
            moved = [p + 0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype)
                     for p in params]
            assert total(*moved) < best


def test_ppca_fit_bad_input():
    with pytest.raises(ValueError, match="1 <= Q < D = 3"):
        ppca_fit(torch.randn(50, 3), 3)
    with pytest.raises(ValueError, match="Q <= N = 4"):
        ppca_fit(torch.randn(4, 10), 5)
    flat = torch.randn(100, 2, dtype=torch.float64) @ torch.randn(2, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="no variance outside 2 principal directions"):
        ppca_fit(flat, 2)  # data in a plane: sigma^2 = 0
    with pytest.raises(ValueError, match="at least 2 rows"):
        ppca_fit(torch.randn(1, 3), 1)


def test_ppca_log_prob_matches_sklearn_score_samples():
    """The density of scikit-learn's fitted PPCA, evaluated with our function from its own
    parameters (its W is components * sqrt(explained variance - noise variance))."""
    x = correlated(300, 8, seed=11)
    sk = SkPCA(3).fit(x)
    weight = sk.components_.T * np.sqrt(sk.explained_variance_ - sk.noise_variance_)
    ours = ppca_log_prob(t(x), t(sk.mean_), t(weight), sk.noise_variance_)
    np.testing.assert_allclose(ours.numpy(), sk.score_samples(x), rtol=1e-8, atol=1e-8)
    assert ours.mean().item() == pytest.approx(sk.score(x), abs=1e-6)
    model = ProbabilisticPCA(mean=t(sk.mean_), weight=t(weight),
                             noise_variance=sk.noise_variance_)
    np.testing.assert_allclose(model.log_prob(t(x)).numpy(), sk.score_samples(x), atol=1e-8)


@pytest.mark.parametrize("d, q", [(6, 1), (9, 4), (5, 5)])
def test_ppca_log_prob_of_any_weight_matches_scipy(d, q):
    """A general (non-orthogonal, even full-rank Q = D) W: the dense Gaussian of scipy."""
    r = np.random.default_rng(d)
    x, mean, weight = r.normal(size=(50, d)) * 3, r.normal(size=d), r.normal(size=(d, q))
    cov = weight @ weight.T + 0.3 * np.eye(d)
    expected = scipy.stats.multivariate_normal(mean, cov).logpdf(x)
    got = ppca_log_prob(t(x), t(mean), t(weight), torch.tensor(0.3, dtype=torch.float64))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-10)
    got32 = ppca_log_prob(t(x).float(), t(mean).float(), t(weight).float(), 0.3)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.double().numpy(), expected, rtol=1e-4, atol=1e-3)


def test_ppca_log_prob_is_differentiable_in_every_parameter():
    """Gradients with respect to sigma^2 (a tensor), mean and weight: those of the dense
    Gaussian's log-density by torch.distributions, and a finite difference in sigma^2."""
    r = np.random.default_rng(7)
    x, mean, weight = t(r.normal(size=(30, 5)) * 2), t(r.normal(size=5)), t(r.normal(size=(5, 2)))
    sigma2 = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    mean.requires_grad_(True)
    weight.requires_grad_(True)
    ours = torch.autograd.grad(ppca_log_prob(x, mean, weight, sigma2).sum(), (sigma2, mean, weight))
    cov = weight @ weight.T + sigma2 * torch.eye(5, dtype=torch.float64)
    dense = torch.distributions.MultivariateNormal(mean, cov).log_prob(x).sum()
    for got, want in zip(ours, torch.autograd.grad(dense, (sigma2, mean, weight)), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    assert ours[0].abs() > 1.0  # a real dependence, not a zero gradient

    def total(s2: float) -> float:
        return ppca_log_prob(x.detach(), mean.detach(), weight.detach(), s2).sum().item()

    h = 1e-6
    assert ours[0].item() == pytest.approx((total(0.4 + h) - total(0.4 - h)) / (2 * h), rel=1e-6)
    assert torch.autograd.gradcheck(
        lambda s2: ppca_log_prob(x.detach(), mean.detach(), weight.detach(), s2), (sigma2,))
    # a model built from a tensor that requires grad holds a plain buffer (state_dict, copy)
    model = ProbabilisticPCA(mean=mean, weight=weight.detach(), noise_variance=sigma2)
    assert not model.noise_variance_.requires_grad


def test_ppca_log_prob_bad_input():
    x, mean, w = torch.zeros(4, 3), torch.zeros(3), torch.ones(3, 1)
    with pytest.raises(ValueError, match=r"mean must have shape \[3\]"):
        ppca_log_prob(x, torch.zeros(2), w, 1.0)
    with pytest.raises(ValueError, match="x has 2 features but mean and weight have 3"):
        ppca_log_prob(torch.zeros(4, 2), mean, w, 1.0)
    with pytest.raises(ValueError, match=r"Q <= D"):
        ppca_log_prob(torch.zeros(4, 2), torch.zeros(2), torch.ones(2, 3), 1.0)
    with pytest.raises(ValueError, match="noise_variance must be a finite number > 0"):
        ppca_log_prob(x, mean, w, 0.0)
    with pytest.raises(ValueError, match="noise_variance must be a finite number > 0"):
        ppca_log_prob(x, mean, w, torch.tensor(-1.0, requires_grad=True))
    with pytest.raises(ValueError, match="noise_variance must be a number, got shape"):
        ppca_log_prob(x, mean, w, torch.ones(2))
    with pytest.raises(ValueError, match=r"weight must have shape \[n, d\]"):
        ppca_log_prob(x, mean, torch.ones(3), 1.0)


def test_probabilistic_pca_model_fit_and_log_prob_match_sklearn():
    x = correlated(400, 6, seed=2)
    model = ProbabilisticPCA(2).fit(t(x))
    sk_mean, sk_cov, _ = sklearn_ppca(x, 2)
    np.testing.assert_allclose(model.mean_.numpy(), sk_mean, atol=1e-10)
    np.testing.assert_allclose(model.covariance_.numpy(), sk_cov, rtol=1e-6, atol=1e-8)
    q = correlated(50, 6, seed=3)
    np.testing.assert_allclose(model.log_prob(t(q)).numpy(),
                               scipy.stats.multivariate_normal(sk_mean, sk_cov).logpdf(q),
                               rtol=1e-8, atol=1e-8)
    # with Q = D - 1 and D - 1 components the model is the full-covariance ML Gaussian up to
    # the last direction: its training likelihood is at most the Gaussian's
    full = scipy.stats.multivariate_normal(x.mean(0), np.cov(x.T, bias=True)).logpdf(x).mean()
    assert ProbabilisticPCA(5).fit(t(x)).log_prob(t(x)).mean().item() <= full + 1e-9
    assert model.log_prob(t(x)).mean().item() < full


def test_probabilistic_pca_far_from_the_origin_in_float32():
    """A float64 oracle for float32 data far away: the shift keeps the small spread."""
    x = correlated(300, 4, seed=9, shift=0.0) * 0.1 + 1e5
    x32 = torch.from_numpy(x).float()
    model = ProbabilisticPCA(2).fit(x32)
    reference = ProbabilisticPCA(2).fit(x32.double())
    np.testing.assert_allclose(model.log_prob(x32[:50]).double().numpy(),
                               reference.log_prob(x32[:50].double()).numpy(), atol=2e-2)


def test_probabilistic_pca_samples_follow_the_marginal():
    """Kolmogorov-Smirnov tests of standardised projections of the samples, along the
    principal directions and across them, against N(0, 1); a sampler without the noise term or
    with the transposed weight fails them."""
    x = correlated(500, 5, seed=4)
    model = ProbabilisticPCA(2).fit(t(x))
    s = model.sample(20_000, generator=torch.Generator().manual_seed(0)).numpy()
    cov = model.covariance_.numpy()
    mean = model.mean_.numpy()
    directions = [*model.weight_.T.numpy(), *np.random.default_rng(1).normal(size=(3, 5))]
    for u in directions:
        z = (s - mean) @ u / np.sqrt(u @ cov @ u)
        assert scipy.stats.kstest(z, "norm").pvalue > 1e-3


def test_probabilistic_pca_posterior_decode_and_joint_samples():
    """Gaussian conditioning of the joint N((0, mu), [[I, W^T], [W, C]]) as the oracle."""
    x = correlated(300, 6, seed=8)
    model = ProbabilisticPCA(2).fit(t(x))
    w, c, mu = model.weight_.numpy(), model.covariance_.numpy(), model.mean_.numpy()
    q = correlated(10, 6, seed=9)
    means, cov = model.posterior(t(q))
    np.testing.assert_allclose(means.numpy(), (q - mu) @ np.linalg.solve(c, w), atol=1e-10)
    np.testing.assert_allclose(cov.numpy(), np.eye(2) - w.T @ np.linalg.solve(c, w),
                               atol=1e-10)
    np.testing.assert_allclose(model.encode(t(q)).numpy(), means.numpy())
    z = np.random.default_rng(0).normal(size=(4, 2))
    np.testing.assert_allclose(model.decode(t(z)).numpy(), z @ w.T + mu, atol=1e-12)
    xs, zs = model.sample_joint(4000, generator=torch.Generator().manual_seed(2))
    same = model.sample(4000, generator=torch.Generator().manual_seed(2))
    assert torch.equal(xs, same) and zs.shape == (4000, 2)
    noise = (xs - model.decode(zs)).numpy()  # x - (W z + mu) is the isotropic noise
    np.testing.assert_allclose(noise.var(0), model.noise_variance_.item(), rtol=0.1)
    np.testing.assert_allclose(zs.numpy().std(0), [1, 1], rtol=0.05)


def test_probabilistic_pca_constructor_checks():
    with pytest.raises(ValueError, match="give mean, weight and noise_variance together"):
        ProbabilisticPCA(mean=torch.zeros(3))
    with pytest.raises(ValueError, match="give n_components"):
        ProbabilisticPCA()
    with pytest.raises(ValueError, match="n_components=2 but weight has 1 columns"):
        ProbabilisticPCA(2, mean=torch.zeros(3), weight=torch.ones(3, 1), noise_variance=1.0)
    with pytest.raises(RuntimeError, match="not fitted yet"):
        ProbabilisticPCA(2).encode(torch.zeros(3, 4))
    model = ProbabilisticPCA(1).fit(torch.randn(30, 3))
    with pytest.raises(ValueError, match="z has 2 features but the code of this model has 1"):
        model.decode(torch.zeros(2, 2))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        model.sample_joint(3, generator=1)


def test_probabilistic_pca_on_the_digits_is_between_a_few_and_all_directions():
    """On the dequantised digits the validation likelihood grows with Q while Q is small."""
    train = load_digits("train", "dequantized")[0].double()
    val = load_digits("val", "dequantized")[0].double()
    scores = [ProbabilisticPCA(q).fit(train).log_prob(val).mean().item() for q in (1, 5, 20)]
    assert scores[0] < scores[1] < scores[2]


# --------------------------------------------------------------------------------------
# principal angles
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("p, q", [(3, 3), (2, 5), (6, 1), (10, 10)])
def test_principal_angles_match_scipy(p, q):
    r = np.random.default_rng(p * 10 + q)
    a, b = r.normal(size=(12, p)), r.normal(size=(12, q))
    np.testing.assert_allclose(principal_angles(t(a), t(b)).numpy(), subspace_angles(a, b),
                               atol=1e-12)


def test_principal_angles_small_angles_rank_and_float32():
    r = np.random.default_rng(0)
    a = r.normal(size=(8, 3))
    tilt = np.zeros((8, 3))
    tilt[3:6] = np.diag([1e-9, 2e-5, 3e-3])  # three tiny angles out of span(a)
    basis, _ = np.linalg.qr(np.hstack([a, r.normal(size=(8, 5))]))
    b = basis[:, :3] + basis @ tilt
    angles = principal_angles(t(basis[:, :3]), t(b)).numpy()
    np.testing.assert_allclose(angles, subspace_angles(basis[:, :3], b), rtol=1e-6, atol=1e-15)
    assert angles[-1] == pytest.approx(1e-9, rel=1e-3)  # arccos would give 0 or 1e-8 noise
    # a rank-deficient matrix spans a smaller subspace: the extra column adds nothing
    doubled = np.hstack([a, a[:, :1] * 2])
    assert principal_angles(t(doubled), t(a)).shape == (3,)
    assert principal_angles(t(doubled), t(a)).max() < 1e-7
    got32 = principal_angles(t(a).float(), t(b).double())
    assert got32.dtype == torch.float64


def test_principal_angles_bad_input():
    with pytest.raises(ValueError, match="same number of rows"):
        principal_angles(torch.ones(3, 1), torch.ones(4, 1))
    with pytest.raises(ValueError, match="a spans no subspace"):
        principal_angles(torch.zeros(3, 2), torch.ones(3, 1))
    with pytest.raises(ValueError, match=r"b must have shape \[n, d\]"):
        principal_angles(torch.ones(3, 1), torch.ones(3))


# --------------------------------------------------------------------------------------
# the linear autoencoder
# --------------------------------------------------------------------------------------

def test_linear_autoencoder_step_matches_autograd():
    r = np.random.default_rng(0)
    x = t(r.normal(size=(40, 6)))
    x = x - x.mean(0)
    a, b = t(r.normal(size=(2, 6))), t(r.normal(size=(6, 2)))
    loss, new_a, new_b = linear_autoencoder_step(x, a, b, 0.05)
    a_, b_ = a.clone().requires_grad_(), b.clone().requires_grad_()
    reference = ((x @ a_.T @ b_.T - x) ** 2).sum(1).mean()
    grad_a, grad_b = torch.autograd.grad(reference, [a_, b_])
    assert loss.item() == pytest.approx(reference.item(), rel=1e-12)
    np.testing.assert_allclose(new_a.numpy(), (a - 0.05 * grad_a).numpy(), rtol=1e-12)
    np.testing.assert_allclose(new_b.numpy(), (b - 0.05 * grad_b).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match=r"encoder_weight must be \[Q, 6\]"):
        linear_autoencoder_step(x, b, a, 0.1)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        linear_autoencoder_step(x, a, b, -0.1)


def test_every_mix_of_the_principal_axes_is_a_global_minimum():
    """Why the decoder need not find the axes: B = U_Q T, A = T^-1 U_Q^T reconstructs as
    well as PCA for any invertible T (closed form: the discarded eigenvalues)."""
    x = t(correlated(300, 6, seed=1))
    x = x - x.mean(0)
    _, components, _ = pca_svd(x, 3)
    mix = t(np.random.default_rng(2).normal(size=(3, 3)))
    loss, _, _ = linear_autoencoder_step(x, torch.linalg.inv(mix) @ components,
                                         components.T @ mix, 1.0)
    assert loss.item() == pytest.approx(ml_eigenvalues(x.numpy())[3:].sum(), rel=1e-9)
    assert principal_angles(components.T @ mix, components.T).max() < 1e-7


def test_linear_autoencoder_trained_by_fit_reaches_the_pca_subspace(one_thread):
    """The bar of the chapter: on the digits, within 5 degrees (largest principal angle, scipy)
    of the PCA subspace of the training data, trained by SGD with momentum through
    dgm_lab.train.fit (the recipe of benchmarks/ch03_results.py and of the page)."""
    ch03 = _script("ch03_results")
    model = ch03.train_linear_autoencoder()
    x = load_digits("train")[0]
    sk = SkPCA(4).fit(x.double().numpy())
    decoder = model.decoder.weight.detach().double().numpy()
    angle = np.degrees(subspace_angles(decoder, sk.components_.T)).max()
    assert angle < 5.0
    ours = principal_angles(model.decoder.weight, t(sk.components_.T))
    assert torch.rad2deg(ours).max().item() == pytest.approx(angle, abs=1e-3)
    # a basis of the subspace, not the axes: the decoder's columns are not orthogonal
    gram = decoder.T @ decoder
    assert np.abs(gram - np.diag(np.diag(gram))).max() > 0.1 * np.diag(gram).min()


def test_linear_autoencoder_shapes_and_checks():
    model = LinearAutoencoder(5, 2, mean=torch.arange(5.0))
    assert model.encode(torch.zeros(3, 5)).shape == (3, 2)
    assert model(torch.zeros(3, 5)).shape == (3, 5)
    torch.testing.assert_close(model.decode(torch.zeros(1, 2))[0], torch.arange(5.0))
    with pytest.raises(ValueError, match="x has 4 features but this autoencoder expects 5"):
        model.encode(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="n_components must be at most n_features = 5"):
        LinearAutoencoder(5, 6)
    with pytest.raises(ValueError, match=r"mean must have shape \[5\]"):
        LinearAutoencoder(5, 2, mean=torch.zeros(4))


# --------------------------------------------------------------------------------------
# the committed results of chapter 3
# --------------------------------------------------------------------------------------

def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_committed_chapter_3_results_agree_with_a_re_run(one_thread):
    """Re-runs the probabilistic-PCA rows of benchmarks/ch03_results.py (closed form, fast)
    and checks the committed file, including the linear autoencoder's bar."""
    ch03 = _script("ch03_results")
    committed = {r.key: r for r in results.load(3)}
    for r in ch03.ppca_rows():
        assert r.key in committed, f"{r.key} is not in ch03.csv: run benchmarks/ch03_results.py"
        assert r.value == pytest.approx(committed[r.key].value, rel=1e-6), r.key
        assert r.config == committed[r.key].config, r.key
    angle = committed[("linear-autoencoder", "digits-float", "train", "max-angle-deg")]
    assert angle.value < 5.0


@pytest.mark.cuda
def test_pca_models_on_cuda_match_the_cpu():
    x = t(correlated(200, 6, seed=0))
    cpu = ProbabilisticPCA(2).fit(x)
    gpu = ProbabilisticPCA(2).fit(x.cuda())
    np.testing.assert_allclose(gpu.log_prob(x).cpu().numpy(), cpu.log_prob(x).numpy(), atol=1e-9)
    pca_cpu, pca_gpu = PCA(3).fit(x), PCA(3).fit(x.cuda())
    np.testing.assert_allclose(pca_gpu(x).cpu().numpy(), pca_cpu(x).numpy(), atol=1e-9)
    a, b = x[:, :3], x[:, 2:5]
    np.testing.assert_allclose(principal_angles(a.cuda(), b.cuda()).cpu().numpy(),
                               principal_angles(a, b).numpy(), atol=1e-9)
    ae = LinearAutoencoder(6, 2).double().cuda()
    assert ae(x).device.type == "cuda"
