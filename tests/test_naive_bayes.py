"""Tests of dgm_lab.naive_bayes against independent oracles.

Oracles: scikit-learn's GaussianNB / BernoulliNB (parameters, joint log-likelihoods,
posteriors, predictions), exact enumeration over {0,1}^d and numerical integration
(the marginal p(x) sums / integrates to 1), scipy's normal CDF (Bayes error), and
sample moments against the fitted parameters (central limit theorem tolerances).
"""

import itertools

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import BernoulliNB, GaussianNB

from dgm_lab.data import load_digits
from dgm_lab.naive_bayes import (
    BernoulliNaiveBayes,
    GaussianNaiveBayes,
    LearningCurve,
    conditionally_independent_gaussians_bayes_error,
    learning_curve,
    make_conditionally_independent_gaussians,
)


def _random_gaussian_data(n=300, d=7, k=3, seed=0, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=2.0, size=(k, d))
    scales = rng.uniform(0.3, 2.0, size=(k, d))
    y = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    x = means[y] + scales[y] * rng.normal(size=(n, d))
    return torch.tensor(x, dtype=dtype), torch.tensor(y)


def _random_binary_data(n=300, d=12, k=4, seed=0):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.05, 0.95, size=(k, d))
    y = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    x = (rng.uniform(size=(n, d)) < probs[y]).astype(np.float64)
    return torch.tensor(x), torch.tensor(y)


def _assert_matches_sklearn(model, sk, x_test):
    x_np = x_test.double().numpy()
    jll = sk.predict_joint_log_proba(x_np)
    np.testing.assert_allclose(model.predict_joint_log_proba(x_test).double().numpy(), jll,
                               rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(model.predict_log_proba(x_test).double().numpy(),
                               sk.predict_log_proba(x_np), rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(model.predict(x_test).numpy(), sk.predict(x_np))
    np.testing.assert_allclose(model.log_prob(x_test).double().numpy(),
                               logsumexp(jll, axis=1), rtol=1e-5, atol=1e-8)
    y = sk.predict(x_np)[::-1].copy()  # any labels: log p(x, y) picks column y of the joint
    np.testing.assert_allclose(model.log_joint(x_test, torch.tensor(y)).double().numpy(),
                               jll[np.arange(len(y)), y], rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------------------------------
# Agreement with scikit-learn
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("var_smoothing", [1e-9, 1e-2])
def test_gaussian_matches_sklearn_on_digits(var_smoothing):
    x, y = load_digits("train")
    x_test, _ = load_digits("test")
    model = GaussianNaiveBayes(var_smoothing).fit(x.double(), y)
    sk = GaussianNB(var_smoothing=var_smoothing).fit(x.double().numpy(), y.numpy())
    np.testing.assert_allclose(model.means_.numpy(), sk.theta_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.variances_.numpy(), sk.var_, rtol=1e-8)
    np.testing.assert_allclose(model.class_log_prior_.exp().numpy(), sk.class_prior_, rtol=1e-12)
    _assert_matches_sklearn(model, sk, x_test.double())


@pytest.mark.parametrize("seed,d,k", [(0, 7, 3), (1, 30, 2), (2, 5, 6)])
def test_gaussian_matches_sklearn_on_random_data(seed, d, k):
    x, y = _random_gaussian_data(d=d, k=k, seed=seed)
    x_test, _ = _random_gaussian_data(n=100, d=d, k=k, seed=seed + 100)
    model = GaussianNaiveBayes().fit(x, y)
    sk = GaussianNB().fit(x.numpy(), y.numpy())
    _assert_matches_sklearn(model, sk, x_test)


def test_shared_variance_is_the_pooled_within_class_variance():
    """Oracles: the diagonal of scikit-learn LDA's pooled covariance and scipy's normal log-pdf."""
    from scipy.stats import norm as normal
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    x, y = _random_gaussian_data(n=400, d=6, k=3, seed=7)
    model = GaussianNaiveBayes(var_smoothing=1e-3, shared_variance=True).fit(x, y)
    lda = LinearDiscriminantAnalysis(solver="lsqr", store_covariance=True).fit(x.numpy(), y.numpy())
    epsilon = 1e-3 * x.var(0, unbiased=False).max().item()
    pooled = np.diag(lda.covariance_) + epsilon
    np.testing.assert_allclose(model.variances_.numpy(), np.tile(pooled, (3, 1)), rtol=1e-10)
    x_test, _ = _random_gaussian_data(n=50, d=6, k=3, seed=8)
    expected = np.stack([np.log(lda.priors_[k]) + normal.logpdf(
        x_test.numpy(), lda.means_[k], np.sqrt(pooled)).sum(1) for k in range(3)], 1)
    np.testing.assert_allclose(model.predict_joint_log_proba(x_test).numpy(), expected, rtol=1e-10)


def test_shared_variance_gives_logistic_linear_log_odds():
    """The generative-discriminative pair: with shared variances the log-odds are affine in x."""
    x, y = _random_gaussian_data(n=300, d=5, k=2, seed=3)
    x_query, _ = _random_gaussian_data(n=40, d=5, k=2, seed=4)
    for shared, affine in ((True, True), (False, False)):
        log_post = GaussianNaiveBayes(shared_variance=shared).fit(x, y).predict_log_proba(x_query)
        log_odds = (log_post[:, 1] - log_post[:, 0]).numpy()
        design = np.hstack([x_query.numpy(), np.ones((40, 1))])
        coef, *_ = np.linalg.lstsq(design, log_odds, rcond=None)
        residual = np.abs(design @ coef - log_odds).max()
        assert (residual < 1e-9) == affine


def test_gaussian_float32_agrees_with_sklearn():
    """Single precision (the default for digits) gives the same decisions and close posteriors."""
    x, y = load_digits("train")
    x_test, _ = load_digits("test")
    model = GaussianNaiveBayes(var_smoothing=1e-2).fit(x, y)
    assert model.means_.dtype == torch.float32
    sk = GaussianNB(var_smoothing=1e-2).fit(x.double().numpy(), y.numpy())
    np.testing.assert_array_equal(model.predict(x_test).numpy(), sk.predict(x_test.numpy()))
    np.testing.assert_allclose(model.predict_proba(x_test).numpy(),
                               sk.predict_proba(x_test.double().numpy()), atol=1e-4)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
def test_bernoulli_matches_sklearn_on_binary_digits(alpha):
    x, y = load_digits("train", form="binary")
    x_test, _ = load_digits("test", form="binary")
    model = BernoulliNaiveBayes(alpha).fit(x.double(), y)
    sk = BernoulliNB(alpha=alpha, binarize=None).fit(x.numpy(), y.numpy())
    np.testing.assert_allclose(model.probs_.log().numpy(), sk.feature_log_prob_, rtol=1e-10)
    np.testing.assert_allclose(model.class_log_prior_.numpy(), sk.class_log_prior_, rtol=1e-10)
    _assert_matches_sklearn(model, sk, x_test.double())


def test_bernoulli_matches_sklearn_on_random_data():
    x, y = _random_binary_data()
    x_test, _ = _random_binary_data(n=80, seed=5)
    model = BernoulliNaiveBayes(alpha=0.7).fit(x, y)
    sk = BernoulliNB(alpha=0.7, binarize=None).fit(x.numpy(), y.numpy())
    _assert_matches_sklearn(model, sk, x_test)
    # float32 input: same decisions
    model32 = BernoulliNaiveBayes(alpha=0.7).fit(x.float(), y)
    np.testing.assert_array_equal(model32.predict(x_test.float()).numpy(),
                                  sk.predict(x_test.numpy()))


def test_fit_accepts_numpy_and_explicit_n_classes():
    x, y = _random_gaussian_data(k=3)
    model = GaussianNaiveBayes().fit(x.numpy(), y.numpy(), n_classes=3)
    assert model.n_classes == 3 and model.n_features == x.shape[1]
    assert model.fit(x, y) is model


@pytest.mark.parametrize("kind", ["gaussian", "bernoulli"])
def test_parameters_assigned_by_hand_give_sklearn_posteriors(kind):
    """A model can be set from given parameters (as the labs do): the posterior is then
    scikit-learn's for those parameters."""
    if kind == "gaussian":
        x, y = _random_gaussian_data(seed=11)
        sk = GaussianNB().fit(x.numpy(), y.numpy())
        model = GaussianNaiveBayes()
        model.class_log_prior_ = torch.tensor(np.log(sk.class_prior_))
        model.means_ = torch.tensor(sk.theta_)
        model.variances_ = torch.tensor(sk.var_)
    else:
        x, y = _random_binary_data(seed=11)
        sk = BernoulliNB(alpha=0.3, binarize=None).fit(x.numpy(), y.numpy())
        model = BernoulliNaiveBayes()
        model.class_log_prior_ = torch.tensor(sk.class_log_prior_)
        model.probs_ = torch.tensor(np.exp(sk.feature_log_prob_))
    assert model.is_fitted
    np.testing.assert_allclose(model.predict_log_proba(x).numpy(), sk.predict_log_proba(x.numpy()),
                               rtol=1e-9, atol=1e-9)
    assert model.fit(x, y) is model  # and it can be refitted


# ---------------------------------------------------------------------------------------
# The marginal is a normalised density; marginalising missing features
# ---------------------------------------------------------------------------------------


def test_bernoulli_marginal_sums_to_one_by_enumeration():
    x, y = _random_binary_data(n=60, d=5, k=3)
    model = BernoulliNaiveBayes(alpha=1.0).fit(x, y)
    every_x = torch.tensor(list(itertools.product([0.0, 1.0], repeat=5)), dtype=torch.float64)
    total = model.log_prob(every_x).exp().sum()
    assert abs(float(total) - 1.0) < 1e-12
    # and the joint over (x, y) too
    joint = model.predict_joint_log_proba(every_x).exp().sum()
    assert abs(float(joint) - 1.0) < 1e-12


def test_gaussian_marginal_integrates_to_one_on_a_grid():
    x, y = _random_gaussian_data(n=200, d=2, k=3, seed=3)
    model = GaussianNaiveBayes().fit(x, y)
    lo = (x.min(0).values - 8).numpy()
    hi = (x.max(0).values + 8).numpy()
    g0, g1 = np.linspace(lo[0], hi[0], 600), np.linspace(lo[1], hi[1], 600)
    grid = torch.tensor(np.stack(np.meshgrid(g0, g1), -1).reshape(-1, 2))
    dens = model.log_prob(grid).exp().numpy()
    area = (g0[1] - g0[0]) * (g1[1] - g1[0])
    assert abs(dens.sum() * area - 1.0) < 1e-3


@pytest.mark.parametrize("kind", ["gaussian", "bernoulli"])
def test_missing_features_are_marginalised(kind):
    """Oracle: scikit-learn refitted on the observed columns only."""
    if kind == "gaussian":
        x, y = _random_gaussian_data(n=200, d=8, k=3)
        x_test, _ = _random_gaussian_data(n=50, d=8, k=3, seed=9)
        model, sk = GaussianNaiveBayes(), GaussianNB()
    else:
        x, y = _random_binary_data(n=200, d=8, k=3)
        x_test, _ = _random_binary_data(n=50, d=8, k=3, seed=9)
        model, sk = BernoulliNaiveBayes(), BernoulliNB(binarize=None)
    observed = torch.tensor([True, False, True, True, False, False, True, True])
    model.fit(x, y)
    cols = observed.numpy()
    if kind == "gaussian":
        # the smoothing epsilon depends on the largest variance over *all* columns
        sk.set_params(var_smoothing=1e-9 * x.var(0, unbiased=False).max().item()
                      / x[:, observed].var(0, unbiased=False).max().item())
    sk.fit(x.numpy()[:, cols], y.numpy())
    x_hidden = x_test.clone()
    x_hidden[:, ~observed] = 0.0  # values at missing positions must not matter
    np.testing.assert_allclose(model.predict_joint_log_proba(x_hidden, observed).numpy(),
                               sk.predict_joint_log_proba(x_test.numpy()[:, cols]), rtol=1e-6)
    np.testing.assert_allclose(model.predict_log_proba(x_test, observed.expand_as(x_test)).numpy(),
                               sk.predict_log_proba(x_test.numpy()[:, cols]), rtol=1e-6, atol=1e-9)


def test_bernoulli_impute_is_the_conditional_mean_by_enumeration():
    x, y = _random_binary_data(n=100, d=6, k=3, seed=4)
    model = BernoulliNaiveBayes().fit(x, y)
    observed = torch.tensor([True, True, False, True, False, True])
    query = x[:5]
    filled = model.impute(query, observed)
    # brute force: p(x_missing | x_obs) by enumerating every completion of the missing bits
    every_x = torch.tensor(list(itertools.product([0.0, 1.0], repeat=6)), dtype=torch.float64)
    log_p = model.log_prob(every_x)
    for row, got in zip(query, filled, strict=True):
        consistent = (every_x[:, observed] == row[observed]).all(dim=1)
        w = torch.softmax(log_p[consistent], dim=0)
        expected = w @ every_x[consistent]
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
        torch.testing.assert_close(got[observed], row[observed])


def test_gaussian_impute_keeps_observed_values_and_uses_class_means():
    x, y = _random_gaussian_data(n=300, d=6, k=3, seed=2)
    model = GaussianNaiveBayes().fit(x, y)
    sk = GaussianNB().fit(x.numpy()[:, :3], y.numpy())
    mask = torch.zeros(10, 6, dtype=torch.bool)
    mask[:, :3] = True
    filled = model.impute(x[:10], mask)
    torch.testing.assert_close(filled[:, :3], x[:10, :3])
    post = sk.predict_proba(x[:10, :3].numpy())  # slightly different epsilon: loose tolerance
    np.testing.assert_allclose(filled[:, 3:].numpy(), post @ model.means_[:, 3:].numpy(), atol=1e-6)
    drawn = model.impute(x[:10], mask, sample=True, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(drawn[:, :3], x[:10, :3])
    assert not torch.equal(drawn[:, 3:], filled[:, 3:])


# ---------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------


def test_gaussian_samples_have_the_fitted_moments():
    x, y = _random_gaussian_data(n=300, d=5, k=3, seed=1)
    model = GaussianNaiveBayes().fit(x, y)
    n = 60_000
    xs, ys = model.sample_joint(n, generator=torch.Generator().manual_seed(0))
    assert xs.shape == (n, 5) and ys.shape == (n,) and ys.dtype == torch.int64
    prior = model.class_log_prior_.exp()
    freq = torch.bincount(ys, minlength=3) / n
    assert torch.all((freq - prior).abs() < 5 * torch.sqrt(prior * (1 - prior) / n))
    for k in range(3):
        xk = xs[ys == k]
        se = (model.variances_[k] / len(xk)).sqrt()
        assert torch.all((xk.mean(0) - model.means_[k]).abs() < 5 * se)
        # relative standard error of a sample variance is sqrt(2 / m)
        rel = (xk.var(0) / model.variances_[k] - 1).abs()
        assert torch.all(rel < 5 * np.sqrt(2 / len(xk)))


def test_bernoulli_samples_have_the_fitted_frequencies():
    x, y = load_digits("train", form="binary")
    model = BernoulliNaiveBayes().fit(x, y)
    n = 20_000
    xs = model.sample_conditional(torch.full((n,), 3), generator=torch.Generator().manual_seed(1))
    assert set(xs.unique().tolist()) <= {0.0, 1.0}
    p = model.probs_[3]
    assert torch.all((xs.mean(0) - p).abs() < 5 * torch.sqrt(p * (1 - p) / n) + 1e-9)


def test_sample_conditional_with_label_tensor_and_generator_repeats():
    x, y = _random_gaussian_data()
    model = GaussianNaiveBayes().fit(x, y)
    labels = torch.tensor([0, 2, 1, 2])
    a = model.sample_conditional(labels, generator=torch.Generator().manual_seed(5))
    b = model.sample_conditional(labels, generator=torch.Generator().manual_seed(5))
    assert a.shape == (4, x.shape[1])
    torch.testing.assert_close(a, b)
    xs = model.sample(5, generator=torch.Generator().manual_seed(6))
    xj, _ = model.sample_joint(5, generator=torch.Generator().manual_seed(6))
    assert torch.equal(xs, xj)  # sample() is the x of sample_joint(): the marginal p(x)


def test_impute_with_sample_draws_the_class_from_the_posterior():
    """Oracle: scikit-learn's posterior from the observed feature. Two classes whose hidden
    feature sits at -10 or +10: each draw reveals the class it came from."""
    rng = np.random.default_rng(12)
    y = np.repeat([0, 1], [700, 300])  # prior (0.7, 0.3)
    seen = np.where(y == 0, -0.4, 0.4) + rng.normal(size=1000)
    hidden = np.where(y == 0, -10.0, 10.0) + 0.5 * rng.normal(size=1000)
    model = GaussianNaiveBayes().fit(torch.tensor(np.c_[seen, hidden]), torch.tensor(y))
    query = torch.tensor([[1.5, np.nan]]).repeat(20_000, 1)  # NaN marks the missing entry
    post = GaussianNB().fit(seen[:, None], y).predict_proba([[1.5]])[0]
    assert post[1] > 0.5  # the observed value favours the rarer class: the prior is wrong
    drawn = model.impute(query, sample=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(drawn[:, 0], query[:, 0])
    freq = (drawn[:, 1] > 0).double().mean().item()
    assert abs(freq - post[1]) < 5 * np.sqrt(post[1] * post[0] / 20_000)
    # and sample=False gives the posterior mean of the hidden feature
    means = GaussianNB().fit(np.c_[seen, hidden], y).theta_[:, 1]
    assert model.impute(query[:1])[0, 1].item() == pytest.approx(post @ means, rel=1e-6)


# ---------------------------------------------------------------------------------------
# Numerics: tiny smoothing in float32, data far from the origin, bool and NaN input
# ---------------------------------------------------------------------------------------


def test_bernoulli_with_tiny_alpha_in_float32_has_no_nan_and_matches_float64_sklearn():
    # pixels that are always on (or off) in a class: theta rounds to 1 (or 0) in float32,
    # and x log(theta) + (1 - x) log(1 - theta) became 0 * (-inf) = NaN on 511 test digits
    x, y = load_digits("train", form="binary")
    x_test, _ = load_digits("test", form="binary")
    model = BernoulliNaiveBayes(alpha=1e-6).fit(x, y)
    assert model.logits_.dtype == torch.float32
    sk = BernoulliNB(alpha=1e-6, binarize=None).fit(x.double().numpy(), y.numpy())
    got = model.predict_joint_log_proba(x_test)
    assert torch.isfinite(got).all()
    ref = sk.predict_joint_log_proba(x_test.double().numpy())
    np.testing.assert_allclose(got.double().numpy(), ref, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(x_test).numpy(), sk.predict(x_test.numpy()))
    assert torch.isfinite(model.log_prob(x_test)).all()


@pytest.mark.parametrize("var_smoothing", [1e-9, 0.03])
def test_gaussian_in_float32_far_from_the_origin_matches_float64_sklearn(var_smoothing):
    """Digits moved by 1e6 (their pixels k/16 are still exact in float32 there). Measured
    before the means were kept relative to the data's mean: 10.8 % (1e-9) and 17.8 % (0.03)
    of the test digits were classified differently from scikit-learn in float64."""
    x, y = load_digits("train")
    x_test, _ = load_digits("test")
    far, far_test = (x.double() + 1e6).float(), (x_test.double() + 1e6).float()
    model = GaussianNaiveBayes(var_smoothing).fit(far, y)
    sk = GaussianNB(var_smoothing=var_smoothing).fit(far.double().numpy(), y.numpy())
    np.testing.assert_array_equal(model.predict(far_test).numpy(),
                                  sk.predict(far_test.double().numpy()))
    np.testing.assert_allclose(model.predict_proba(far_test).numpy(),
                               sk.predict_proba(far_test.double().numpy()), atol=1e-3)
    np.testing.assert_allclose(model.centred_means_.double().numpy(),
                               sk.theta_ - model.shift_.double().numpy(), atol=1e-5)


def test_bernoulli_accepts_bool_data():
    x, y = _random_binary_data()
    ref = BernoulliNaiveBayes(0.5).fit(x.float(), y)
    model = BernoulliNaiveBayes(0.5).fit(x.bool(), y)
    assert model.dtype == torch.float32
    torch.testing.assert_close(model.predict_log_proba(x.bool()), ref.predict_log_proba(x.float()))
    with pytest.raises(TypeError, match="real numbers"):
        GaussianNaiveBayes().fit(x.bool(), y)


@pytest.mark.parametrize("kind", ["gaussian", "bernoulli"])
def test_nan_marks_missing_entries(kind):
    if kind == "gaussian":
        x, y = _random_gaussian_data(n=200, d=6, k=3)
        model = GaussianNaiveBayes().fit(x, y)
    else:
        x, y = _random_binary_data(n=200, d=6, k=3)
        model = BernoulliNaiveBayes().fit(x, y)
    observed = torch.rand(20, 6, generator=torch.Generator().manual_seed(0)) < 0.6
    with_nan = torch.where(observed, x[:20], torch.nan)
    for method in ("log_prob", "predict_joint_log_proba", "predict_log_proba", "predict"):
        torch.testing.assert_close(getattr(model, method)(with_nan),
                                   getattr(model, method)(x[:20], observed))
    torch.testing.assert_close(model.impute(with_nan), model.impute(x[:20], observed))
    torch.testing.assert_close(model.impute(x[:20]), x[:20])  # nothing missing
    with pytest.raises(ValueError, match="NaN at an observed position"):
        model.impute(with_nan, torch.ones(6, dtype=torch.bool))
    with pytest.raises(ValueError, match="infinite"):
        model.log_prob(torch.full((2, 6), torch.inf))
    with pytest.raises(ValueError, match="x contains NaN"):
        type(model)().fit(with_nan, y[:20])  # but fitting needs complete data


# ---------------------------------------------------------------------------------------
# Quality on held-out digits
# ---------------------------------------------------------------------------------------


def test_quality_on_the_digits_test_split():
    """Measured: 0.864 (var_smoothing 1e-9), 0.933 (0.03), Bernoulli 0.897 (binary digits)."""
    x, y = load_digits("train")
    x_test, y_test = load_digits("test")
    acc = (GaussianNaiveBayes().fit(x, y).predict(x_test) == y_test).float().mean()
    assert acc > 0.83
    acc = (GaussianNaiveBayes(0.03).fit(x, y).predict(x_test) == y_test).float().mean()
    assert acc > 0.90
    xb, yb = load_digits("train", form="binary")
    xb_test, yb_test = load_digits("test", form="binary")
    acc = (BernoulliNaiveBayes().fit(xb, yb).predict(xb_test) == yb_test).float().mean()
    assert acc > 0.86


def test_imputation_of_the_bottom_half_of_digits_is_better_than_the_mean_image():
    """Measured: squared error 0.71 x that of the mean image (0.56 x if the class were known);
    0.79 accuracy from the top half alone."""
    x, y = load_digits("train")
    x_test, y_test = load_digits("test")
    model = GaussianNaiveBayes(0.03).fit(x, y)
    observed = torch.arange(64) < 32  # the top four rows of each 8x8 image
    filled = model.impute(x_test, observed)
    err_model = (filled[:, 32:] - x_test[:, 32:]).square().mean()
    err_mean = (x.mean(0)[32:] - x_test[:, 32:]).square().mean()
    assert err_model < 0.8 * err_mean
    # the top half alone still classifies most digits
    acc = (model.predict(x_test, observed) == y_test).float().mean()
    assert acc > 0.72


# ---------------------------------------------------------------------------------------
# Synthetic data and learning curves (Ng & Jordan, 2002)
# ---------------------------------------------------------------------------------------


def test_synthetic_data_generator_and_bayes_error():
    x, y = make_conditionally_independent_gaussians(20_000, d=10, class_sep=2.5, seed=3)
    assert x.shape == (20_000, 10) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(y.float().mean().item() - 0.5) < 0.02
    gap = x[y == 1].mean(0) - x[y == 0].mean(0)
    assert abs(gap.norm().item() - 2.5) < 0.1
    assert torch.allclose(x[y == 1].var(0), torch.ones(10), atol=0.06)  # unit variances
    # same problem_seed -> same means; different seed -> different draws
    x2, y2 = make_conditionally_independent_gaussians(20_000, d=10, class_sep=2.5, seed=4)
    assert not torch.equal(x, x2)
    assert (x2[y2 == 1].mean(0) - x2[y2 == 0].mean(0) - gap).abs().max() < 0.1
    bayes = conditionally_independent_gaussians_bayes_error(2.5)
    assert bayes == pytest.approx(norm.cdf(-1.25), rel=1e-12)
    # a naive Bayes fitted on lots of data reaches the Bayes error
    x_test, y_test = make_conditionally_independent_gaussians(20_000, d=10, class_sep=2.5, seed=5)
    err = (GaussianNaiveBayes().fit(x, y).predict(x_test) != y_test).float().mean().item()
    assert abs(err - bayes) < 0.012


def test_learning_curve_shape_and_repeatability():
    x, y = load_digits("train")
    x_test, y_test = load_digits("test")
    curve = learning_curve(GaussianNaiveBayes, x, y, x_test, y_test, [10, 40, 200], repeats=3)
    assert isinstance(curve, LearningCurve)
    assert curve.errors.shape == (3, 3) and curve.mean.shape == (3,) and curve.std.shape == (3,)
    assert np.all((curve.errors >= 0) & (curve.errors <= 1))
    assert curve.mean[2] < curve.mean[0]
    again = learning_curve(GaussianNaiveBayes, x, y, x_test, y_test, [10, 40, 200], repeats=3)
    np.testing.assert_array_equal(curve.errors, again.errors)
    # every subset holds every class, and sklearn models get NumPy arrays of the right size
    seen = []

    class Recorder(GaussianNB):
        def fit(self, xs, ys):
            assert isinstance(xs, np.ndarray) and isinstance(ys, np.ndarray)
            seen.append((len(xs), len(np.unique(ys))))
            return super().fit(xs, ys)

    learning_curve(Recorder, x, y, x_test, y_test, [10, 25], repeats=2)
    assert seen == [(10, 10), (10, 10), (25, 10), (25, 10)]


def test_naive_bayes_wins_at_small_n_on_data_that_satisfies_its_assumption():
    """Ng & Jordan's regime. Measured (8 repeats): NB with shared variances 0.224/0.091/0.080
    at 20/250/500 examples, per-class variances 0.325/0.104/0.088, LR 0.226/0.119/0.109 (C=1);
    at 4000 all 0.072-0.076 (Bayes error 0.067)."""
    x, y = make_conditionally_independent_gaussians(4000, d=100, class_sep=3.0, seed=1)
    x_test, y_test = make_conditionally_independent_gaussians(3000, d=100, class_sep=3.0, seed=2)
    def logistic():
        return LogisticRegression(solver="newton-cg")
    def shared():
        return GaussianNaiveBayes(shared_variance=True)
    sizes = [20, 250, 500, 4000]
    nb = learning_curve(GaussianNaiveBayes, x, y, x_test, y_test, sizes, repeats=4)
    nb_shared = learning_curve(shared, x, y, x_test, y_test, sizes, repeats=4)
    lr = learning_curve(logistic, x, y, x_test, y_test, sizes, repeats=4)
    assert nb.mean[1] < lr.mean[1] - 0.005
    assert nb.mean[2] < lr.mean[2] - 0.01
    assert np.all(nb_shared.mean[:3] < lr.mean[:3] - 0.01)  # the exact twin wins from n = 20
    assert abs(nb.mean[3] - lr.mean[3]) < 0.01  # they meet once data is plentiful
    assert abs(nb_shared.mean[3] - lr.mean[3]) < 0.01
    bayes = conditionally_independent_gaussians_bayes_error(3.0)
    assert nb.mean[3] < bayes + 0.01


def test_learning_curves_on_digits():
    """Digits break the independence assumption. Measured (30 paired repeats): naive Bayes with
    shared variances ahead by 0.05 at 20 examples, the two equal near 40-50, logistic regression
    ahead from there on (0.031 vs 0.083 at 1078); per-class variances: behind at every size."""
    x, y = load_digits("train")
    x_test, y_test = load_digits("test")
    sizes = [20, 200, 1078]
    def lr():
        return LogisticRegression(solver="newton-cg")
    nb = learning_curve(lambda: GaussianNaiveBayes(0.03), x, y, x_test, y_test, sizes, repeats=8)
    shared = learning_curve(lambda: GaussianNaiveBayes(0.03, shared_variance=True),
                            x, y, x_test, y_test, sizes, repeats=8)
    logistic = learning_curve(lr, x, y, x_test, y_test, sizes, repeats=8)
    assert np.all(logistic.mean < nb.mean)
    assert shared.mean[0] < logistic.mean[0] - 0.01  # generative wins with little data
    assert logistic.mean[1] < shared.mean[1] - 0.02  # discriminative wins with more
    assert logistic.mean[2] < 0.6 * shared.mean[2]   # and has the lower asymptote


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------


@pytest.fixture
def fitted():
    x, y = _random_gaussian_data(n=50, d=4, k=3)
    return GaussianNaiveBayes().fit(x, y), BernoulliNaiveBayes().fit((x > 0).double(), y)


def test_bad_labels():
    x, y = _random_gaussian_data(n=50, d=4, k=3)
    model = GaussianNaiveBayes()
    with pytest.raises(TypeError, match="integer class labels"):
        model.fit(x, y.float())
    with pytest.raises(TypeError, match="integer class labels"):
        model.fit(x, np.array(["a"] * 50))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model.fit(x, "labels")
    with pytest.raises(ValueError, match="negative label"):
        model.fit(x, y - 1)
    with pytest.raises(ValueError, match="49 labels but x has 50 rows"):
        model.fit(x, y[:49])
    with pytest.raises(ValueError, match=r"shape \[n\]"):
        model.fit(x, y[:, None])
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have no training example"):
        model.fit(x, torch.where(y == 1, 2, y))
    with pytest.raises(ValueError, match="n_classes is 2"):
        model.fit(x, y, n_classes=2)


def test_bad_inputs(fitted):
    gauss, bern = fitted
    x, y = _random_gaussian_data(n=50, d=4, k=3)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        GaussianNaiveBayes().fit(bad, y)
    with pytest.raises(ValueError, match=r"shape \[n, d\]"):
        GaussianNaiveBayes().fit(x[0], y)
    with pytest.raises(ValueError, match="empty"):
        gauss.predict_log_proba(x[:0])
    with pytest.raises(ValueError, match="5 features but this GaussianNaiveBayes expects 4"):
        gauss.predict_joint_log_proba(torch.zeros(2, 5))
    with pytest.raises(TypeError, match="torch.Tensor or numpy array"):
        gauss.log_prob("x")
    with pytest.raises(ValueError, match="binary"):
        BernoulliNaiveBayes().fit(x, y)
    with pytest.raises(ValueError, match="binary"):
        bern.predict(x)
    with pytest.raises(ValueError, match=r"class labels in 0..2, got 3"):
        gauss.log_joint(x, torch.full((50,), 3))
    with pytest.raises(ValueError, match="49 labels but x has 50 rows"):
        gauss.log_joint(x, y[:49])
    with pytest.raises(TypeError, match="integer class labels"):
        gauss.log_joint(x, y.float())


def test_unfitted_model_and_bad_hyperparameters():
    for model in (GaussianNaiveBayes(), BernoulliNaiveBayes()):
        with pytest.raises(RuntimeError, match="not fitted yet"):
            model.predict(torch.zeros(2, 3))
        with pytest.raises(RuntimeError, match="not fitted yet"):
            model.sample(3)
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        BernoulliNaiveBayes(alpha=0.0)
    with pytest.raises(TypeError, match="alpha must be a positive number"):
        BernoulliNaiveBayes(alpha="1")
    with pytest.raises(ValueError, match="var_smoothing must be a finite number >= 0"):
        GaussianNaiveBayes(var_smoothing=-1e-3)
    with pytest.raises(TypeError, match="var_smoothing must be a number"):
        GaussianNaiveBayes(var_smoothing=None)
    with pytest.raises(TypeError, match="shared_variance must be True or False"):
        GaussianNaiveBayes(shared_variance="yes")
    with pytest.raises(ValueError, match="use var_smoothing > 0"):
        GaussianNaiveBayes(var_smoothing=0).fit(torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]))


def test_bad_sample_and_mask_arguments(fitted):
    gauss, bern = fitted
    with pytest.raises(ValueError, match="n must be >= 1"):
        gauss.sample(0)
    with pytest.raises(TypeError, match="n must be an integer"):
        gauss.sample_joint(2.5)
    with pytest.raises(ValueError, match=r"class labels in 0..2, got 3"):
        gauss.sample_conditional(torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="negative label"):
        gauss.sample_conditional(torch.tensor([-1]))
    with pytest.raises(TypeError, match="torch.Tensor of integer labels"):
        gauss.sample_conditional(3)
    with pytest.raises(ValueError, match=r"shape \[n\]"):
        gauss.sample_conditional(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        gauss.sample_conditional(torch.tensor([0]), generator=1)
    x = torch.zeros(5, 4, dtype=torch.float64)
    with pytest.raises(TypeError, match="boolean mask"):
        gauss.impute(x, torch.ones(5, 4))
    with pytest.raises(TypeError, match="boolean torch.Tensor"):
        gauss.impute(x, [True] * 4)
    with pytest.raises(ValueError, match=r"observed must have the shape of x \(5, 4\)"):
        bern.impute(x, torch.ones(5, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"observed must have the shape of x \(5, 4\) or \[d\]"):
        bern.impute(x, torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="sample must be True or False"):
        gauss.impute(x, torch.ones(4, dtype=torch.bool), sample=1)
    # non-binary values are allowed only where the feature is missing
    x[:, 0] = 0.5
    mask = torch.tensor([False, True, True, True])
    assert bern.impute(x, mask).shape == (5, 4)
    with pytest.raises(ValueError, match="binary"):
        bern.impute(x, ~mask)


def test_bad_learning_curve_and_generator_arguments():
    x, y = _random_gaussian_data(n=60, d=4, k=3)
    with pytest.raises(TypeError, match="make_model must be callable"):
        learning_curve(GaussianNaiveBayes(), x, y, x, y, [10])
    with pytest.raises(TypeError, match="make_model must be callable"):
        learning_curve(GaussianNB(), x, y, x, y, [10])
    with pytest.raises(ValueError, match="between the number of classes"):
        learning_curve(GaussianNaiveBayes, x, y, x, y, [2, 10])
    with pytest.raises(ValueError, match="between the number of classes"):
        learning_curve(GaussianNaiveBayes, x, y, x, y, [61])
    with pytest.raises(ValueError, match="non-empty sequence"):
        learning_curve(GaussianNaiveBayes, x, y, x, y, [])
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        learning_curve(GaussianNaiveBayes, x, y, x, y, [10], repeats=0)
    with pytest.raises(ValueError, match="x_test has 3 features"):
        learning_curve(GaussianNaiveBayes, x, y, x[:, :3], y, [10])
    with pytest.raises(ValueError, match="every class"):
        learning_curve(GaussianNaiveBayes, x, torch.where(y == 1, 2, y), x, y, [10])
    with pytest.raises(ValueError, match="n must be >= 1"):
        make_conditionally_independent_gaussians(0)
    with pytest.raises(ValueError, match="d must be >= 1"):
        make_conditionally_independent_gaussians(10, d=0)
    with pytest.raises(ValueError, match="class_sep must be a finite number > 0"):
        make_conditionally_independent_gaussians(10, class_sep=-1.0)
    with pytest.raises(ValueError, match="class_sep must be a finite number > 0"):
        conditionally_independent_gaussians_bayes_error(0.0)


# ---------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------


@pytest.mark.cuda
def test_runs_on_cuda_and_matches_cpu():
    x, y = load_digits("train")
    x_test, _ = load_digits("test")
    cpu = GaussianNaiveBayes(0.03).fit(x.double(), y)
    gpu = GaussianNaiveBayes(0.03).fit(x.double().cuda(), y.cuda())
    assert gpu.means_.is_cuda and gpu.class_log_prior_.is_cuda
    torch.testing.assert_close(gpu.predict_joint_log_proba(x_test.double().cuda()).cpu(),
                               cpu.predict_joint_log_proba(x_test.double()))
    xs, ys = gpu.sample_joint(100)
    assert xs.is_cuda and ys.is_cuda
    xb, yb = load_digits("train", form="binary")
    bern = BernoulliNaiveBayes().fit(xb.cuda(), yb.cuda())
    filled = bern.impute(xb[:8].cuda(), torch.arange(64, device="cuda") < 32, sample=True)
    assert filled.is_cuda and set(filled.unique().tolist()) <= {0.0, 1.0}
    missing = torch.where(torch.arange(64) < 32, xb[:8], torch.nan)
    torch.testing.assert_close(bern.impute(missing).cpu(),
                               BernoulliNaiveBayes().fit(xb, yb).impute(missing))
