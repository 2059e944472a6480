"""Tests of dgm_lab.vae against independent oracles.

Oracles: torch.distributions (Bernoulli, Categorical, Normal and their KL) and scipy.stats
(beta-binomial pmf, logistic CDF) for every decoder likelihood; a Monte Carlo average of
log p(x, z) - log q(z | x) written with torch.distributions for the ELBO; a float64 NumPy
log-mean-exp for the IWAE bound; scipy.integrate.quad / dblquad for the exact log p(x) of a
VAE with a 1-D / 2-D code, which IWAE(k) must approach from below as k grows; chi-square tests
against exact pmfs for the samplers; plain loops for the MMD; the committed checkpoints for the
learned quality bars.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
from torch.distributions import Bernoulli, Categorical, Independent, Normal, kl_divergence

from dgm_lab import results
from dgm_lab.data import load_digits
from dgm_lab.vae import (
    VAE,
    AdversarialAutoencoder,
    GaussianMixturePrior,
    aae_losses,
    bernoulli_elbo,
    elbo_loss,
    importance_weighted_bound,
    iwae_loss,
    mmd_squared,
    mmd_test,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def digits(split: str, form: str, n: int | None = None) -> torch.Tensor:
    x = load_digits(split, form)[0]
    return x[:n] if n else x


def tiny_vae(likelihood: str, latent: int = 2, *, seed: int = 0, dtype=torch.float64,
             **kwargs) -> tuple[VAE, torch.Tensor]:
    """A small untrained VAE standardised on 100 training digits (or 2-D points)."""
    torch.manual_seed(seed)
    if likelihood == "gaussian":
        x = torch.randn(100, 3, generator=gen(seed), dtype=dtype)
        vae = VAE(3, latent, 16, likelihood="gaussian", **kwargs)
    else:
        form = "binary" if likelihood == "bernoulli" else "levels"
        x = digits("train", form, 100).to(dtype)
        vae = VAE(64, latent, 32, likelihood=likelihood, **kwargs)
    return vae.standardize(x), x


# --------------------------------------------------------------------------------------
# the bounds from their pieces
# --------------------------------------------------------------------------------------

def test_bernoulli_elbo_equals_torch_distributions():
    g = gen(0)
    x = (torch.rand(5, 7, generator=g) < 0.5).double()
    logits = torch.randn(5, 7, generator=g, dtype=torch.float64) * 30  # saturated sigmoids
    mu, log_var = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(
        5, 3, generator=g, dtype=torch.float64)
    expected = (Bernoulli(logits=logits).log_prob(x).sum(1)
                - kl_divergence(Independent(Normal(mu, (0.5 * log_var).exp()), 1),
                                Independent(Normal(torch.zeros_like(mu), 1.0), 1)))
    got = bernoulli_elbo(x, logits, mu, log_var)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="shape of x"):
        bernoulli_elbo(x, logits[:, :3], mu, log_var)


def numpy_log_mean_exp(a: np.ndarray) -> np.ndarray:
    top = a.max(0)
    return top + np.log(np.mean(np.exp(a - top), 0))


def test_importance_weighted_bound_is_a_log_mean_exp_of_the_weights():
    g = gen(1)
    k, n, latent = 50, 4, 3
    mu, log_var = torch.randn(n, latent, generator=g, dtype=torch.float64), torch.randn(
        n, latent, generator=g, dtype=torch.float64)
    z = mu + (0.5 * log_var).exp() * torch.randn(k, n, latent, generator=g, dtype=torch.float64)
    log_px = -500 + 10 * torch.randn(k, n, generator=g, dtype=torch.float64)  # e^-500 underflows
    log_w = (log_px + Normal(0.0, 1.0).log_prob(z).sum(-1)
             - Normal(mu, (0.5 * log_var).exp()).log_prob(z).sum(-1))
    got = importance_weighted_bound(log_px, z, mu, log_var)
    np.testing.assert_allclose(got.numpy(), numpy_log_mean_exp(log_w.numpy()), rtol=1e-12)
    # k = 1 is the single-sample ELBO log w
    np.testing.assert_allclose(importance_weighted_bound(log_px[:1], z[:1], mu, log_var).numpy(),
                               log_w[0].numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match=r"\[k, n, L\]"):
        importance_weighted_bound(log_px, z[:, :2], mu, log_var)


# --------------------------------------------------------------------------------------
# the decoders' likelihoods
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("likelihood", ["bernoulli", "categorical", "discretized_logistic",
                                        "beta_binomial", "gaussian"])
def test_each_decoder_likelihood_matches_an_independent_pmf(likelihood):
    vae, x = tiny_vae(likelihood)
    x = x[:6]
    z = torch.randn(6, 2, generator=gen(2), dtype=torch.float64) * 2
    got = vae.log_likelihood(x, z)
    with torch.no_grad():
        out = vae._decoder_output(z)
    if likelihood == "bernoulli":
        expected = Bernoulli(logits=out[..., 0]).log_prob(x).sum(1)
    elif likelihood == "categorical":
        expected = Categorical(logits=out).log_prob(x.long()).sum(1)
    elif likelihood == "gaussian":
        expected = Normal(out[..., 0], out[..., 1].clamp(-7, 7).exp()).log_prob(x).sum(1)
    elif likelihood == "beta_binomial":
        a, b = (torch.nn.functional.softplus(out[..., i]).numpy() + 1e-3 for i in (0, 1))
        expected = torch.as_tensor(scipy.stats.betabinom.logpmf(x.numpy(), 16, a, b).sum(1))
    else:
        mean = 8 * (1 + out[..., 0].numpy())
        scale = np.exp(out[..., 1].clamp(-7, 7).numpy() + math.log(2.0))
        cdf = scipy.stats.logistic.cdf
        k = x.numpy()
        upper = np.where(k >= 16, 1.0, cdf(k + 0.5, mean, scale))
        lower = np.where(k <= 0, 0.0, cdf(k - 0.5, mean, scale))
        expected = torch.as_tensor(np.log(upper - lower).sum(1))
    torch.testing.assert_close(got.detach(), expected, rtol=1e-7, atol=1e-7)
    if likelihood not in ("bernoulli", "gaussian"):  # a pmf over the 17 levels
        total = vae._level_log_probs(out).exp().sum(-1)
        torch.testing.assert_close(total, torch.ones_like(total))


def test_discretized_logistic_stays_finite_far_in_the_tails():
    vae, x = tiny_vae("discretized_logistic")
    with torch.no_grad():
        for layer in vae.decoder[-1:]:
            layer.weight.zero_()
            layer.bias.copy_(torch.tensor([30.0, -7.0]).repeat(64))  # mean ~ 250, tiny scale
    lp = vae.log_likelihood(x[:3], torch.zeros(3, 2, dtype=torch.float64))
    assert torch.isfinite(lp).all()


@pytest.mark.parametrize("likelihood", ["categorical", "beta_binomial", "discretized_logistic",
                                        "bernoulli"])
def test_samples_follow_the_decoder_pmf(likelihood):
    """With the decoder's last layer zeroed, p(x | z) is the same for every z: the draws of
    each pixel must follow that pmf (chi-square test)."""
    vae, _ = tiny_vae(likelihood, dtype=torch.float32)
    with torch.no_grad():
        last = vae.decoder[-1]
        last.weight.zero_()
        last.bias.copy_(torch.randn(last.bias.shape, generator=gen(3)))
        pmf = (vae._level_log_probs(vae._decoder_output(torch.zeros(1, 2))).exp()[0]
               if likelihood != "bernoulli" else None)
    draws = vae.sample(4000, generator=gen(4))
    assert draws.shape == (4000, 64) and draws.dtype == torch.float32
    for d in (5, 20, 43):
        if likelihood == "bernoulli":
            p1 = torch.sigmoid(last.bias[d]).item()
            expected = np.array([1 - p1, p1]) * 4000
            observed = np.bincount(draws[:, d].long().numpy(), minlength=2)
        else:
            expected = pmf[d].double().numpy() * 4000
            observed = np.bincount(draws[:, d].long().numpy(), minlength=17)
        keep = expected > 5  # pool the rare levels so that the chi-square law holds
        obs = np.append(observed[keep], observed[~keep].sum())
        exp = np.append(expected[keep], expected[~keep].sum())
        if exp[-1] < 1e-9:
            obs, exp = obs[:-1], exp[:-1]
        p_value = scipy.stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue
        assert p_value > 1e-3, (likelihood, d, p_value)


# --------------------------------------------------------------------------------------
# the ELBO and the IWAE bound of a model, against Monte Carlo and exact integration
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_2d():
    """A Bernoulli VAE with a 2-D code trained briefly on 300 binary digits (float64)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = digits("train", "binary", 300).double()
    vae = VAE(64, 2, 32, likelihood="bernoulli", eval_samples=200).fit(x, epochs=30, lr=3e-3)
    torch.set_num_threads(threads)
    return vae, x


def test_elbo_equals_a_monte_carlo_average_of_log_joint_minus_log_q(trained_2d):
    vae, x = trained_2d
    x = x[:5]
    mu, log_var = vae.encode(x)
    q = Independent(Normal(mu, (0.5 * log_var).exp()), 1)
    z = q.sample((20000,))
    with torch.no_grad():
        logits = vae._decoder_output(z)[..., 0]
    log_joint = (Bernoulli(logits=logits).log_prob(x).sum(-1)
                 + Independent(Normal(torch.zeros_like(mu), 1.0), 1).log_prob(z))
    terms = log_joint - q.log_prob(z)  # [20000, 5]
    mc, stderr = terms.mean(0), terms.std(0) / math.sqrt(len(terms))
    with torch.no_grad():  # 4000 one-draw estimates per row, KL in closed form
        elbo = vae.elbo(x.repeat(4000, 1), generator=gen(5)).reshape(4000, 5)
    diff = (elbo.mean(0) - mc).abs()
    assert (diff < 5 * (stderr + elbo.std(0) / math.sqrt(len(elbo)))).all(), (diff, stderr)


def test_iwae_grows_with_k_towards_the_exact_log_likelihood(trained_2d):
    """E[L_k] <= log p(x), non-decreasing in k, and L_1000 within a few hundredths of a nat
    of log p(x) integrated on a grid; each comparison allows 4 standard errors of the
    averages over repeated draws."""
    vae, x = trained_2d
    x = x[:8]
    exact = vae.log_prob_on_grid(x, points=401)
    g = gen(6)
    means, errors = {}, {}
    with torch.no_grad():
        for k in (1, 10, 100, 1000):
            draws = torch.stack([vae.iwae(x, k, generator=g) for _ in range(max(4, 800 // k))])
            means[k], errors[k] = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    ks = list(means)
    for k in ks:
        assert (means[k] <= exact + 4 * errors[k] + 1e-9).all(), k
    for k, k_next in zip(ks, ks[1:], strict=False):
        slack = 4 * math.sqrt(errors[k].square().mean() + errors[k_next].square().mean())
        assert means[k_next].mean() >= means[k].mean() - slack, (k, k_next)
    gap = (exact - means[1000]).mean().item()
    assert -0.01 < gap < 0.05, gap
    assert (exact - means[1]).mean().item() > 5 * max(gap, 0.01)  # the ELBO is the loosest


def test_log_prob_on_grid_matches_scipy_quadrature(trained_2d):
    """The trapezoid sum of log_prob_on_grid against scipy: Simpson's rule on a finer grid
    around each posterior (2-D code), adaptive quadrature (1-D code)."""
    vae, x = trained_2d
    x3 = x[:3]
    mu, log_var = vae.encode(x3)
    for i in range(3):  # a box of 8 posterior standard deviations, at least 1 wide
        half = torch.clamp(4 * (0.5 * log_var[i]).exp(), min=0.5).tolist()
        axes = [np.linspace(mu[i, j].item() - half[j], mu[i, j].item() + half[j], 401)
                for j in range(2)]
        z1, z2 = np.meshgrid(*axes, indexing="ij")
        z = torch.as_tensor(np.stack([z1.ravel(), z2.ravel()], 1))
        with torch.no_grad():
            log_px = vae.log_likelihood(x3[i:i + 1].expand(len(z), -1), z).numpy()
        log_joint = (log_px + scipy.stats.norm.logpdf(z1.ravel())
                     + scipy.stats.norm.logpdf(z2.ravel())).reshape(z1.shape)
        top = log_joint.max()
        inner = scipy.integrate.simpson(np.exp(log_joint - top), x=axes[1], axis=1)
        expected = top + math.log(scipy.integrate.simpson(inner, x=axes[0]))
        got = vae.log_prob_on_grid(x3[i:i + 1], points=401).item()
        assert got == pytest.approx(expected, abs=2e-3), i
    # a 1-D code against scipy.integrate.quad
    vae1, xl = tiny_vae("categorical", latent=1)

    def integrand1(z1):
        z = torch.tensor([[z1]], dtype=torch.float64)
        with torch.no_grad():
            return math.exp(vae1.log_likelihood(xl[:1], z).item() + 200
                            + scipy.stats.norm.logpdf(z1))

    value1, _ = scipy.integrate.quad(integrand1, -8, 8, epsabs=0, epsrel=1e-10, limit=200)
    assert vae1.log_prob_on_grid(xl[:1], limit=8.0, points=4001).item() == pytest.approx(
        math.log(value1) - 200, abs=1e-6)
    with pytest.raises(ValueError, match="1-D or 2-D code"):
        tiny_vae("bernoulli", latent=3)[0].log_prob_on_grid(x3)


def test_log_prob_is_a_repeatable_iwae_estimate(trained_2d):
    vae, x = trained_2d
    a, b = vae.log_prob(x[:10]), vae.log_prob(x[:10])
    assert torch.equal(a, b) and not a.requires_grad
    exact = vae.log_prob_on_grid(x[:10])
    gap = exact - a  # >= 0 in expectation; one estimate of k = 200 draws scatters around it
    assert gap.abs().mean().item() < 0.1 and (gap.abs() < 0.5).all(), gap


# --------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------

def independent_bernoulli_nll(train: torch.Tensor, test: torch.Tensor) -> float:
    """The test NLL of independent pixels with smoothed training frequencies (closed form)."""
    p = (train.sum(0) + 1) / (len(train) + 2)
    return -Bernoulli(probs=p).log_prob(test).sum(1).mean().item()


def test_a_vae_learns_the_binary_digits():
    """Bar on the test split: the IWAE estimate beats independent pixels (closed form) by
    4+ nats (it reaches about 6), and the warm-up schedule goes from 0 to 1."""
    torch.manual_seed(0)
    train, test = digits("train", "binary"), digits("test", "binary")
    vae = VAE(64, 8, 64, likelihood="bernoulli", eval_samples=100)
    vae.fit(train, epochs=40, warmup=0.25, lr=2e-3)
    nll = -vae.log_prob(test).mean().item()
    baseline = independent_bernoulli_nll(train, test)
    assert nll < baseline - 4, (nll, baseline)
    beta = vae.history_.step["beta"]
    assert beta[0] == 0.0 and beta[-1] == 1.0
    assert vae.history_.epoch["kl"][-1] > 1.0  # the code is used


def test_iwae_training_and_the_conv_architecture_learn():
    torch.manual_seed(0)
    train = digits("train", "levels", 400)
    for vae in (VAE(64, 4, 32, likelihood="beta_binomial", eval_samples=50),
                VAE(64, 4, 32, likelihood="categorical", architecture="conv", channels=8,
                    eval_samples=50)):
        before = None
        vae.standardize(train)
        before = -vae.log_prob(train[:100]).mean().item()
        vae.fit(train, epochs=8, k=5 if vae.architecture == "mlp" else 1, lr=3e-3)
        after = -vae.log_prob(train[:100]).mean().item()
        assert after < before - 20, (vae.architecture, before, after)


def test_losses_for_the_training_loop():
    vae, x = tiny_vae("bernoulli")
    from dgm_lab.train import TrainState
    torch.manual_seed(0)
    out = elbo_loss(0.5)(vae, x, TrainState(progress=0.25))
    assert out["beta"] == 0.5
    assert out["loss"].item() == pytest.approx((out["recon"] + 0.5 * out["kl"]).item())
    # k = 1: minus the mean log-weight of one draw, log p(x|z) + log p(z) - log q(z|x)
    # (the draw made as the model makes it: float32 standard normals from the global seed)
    torch.manual_seed(0)
    got = iwae_loss(1)(vae, x)
    torch.manual_seed(0)
    mu, log_var = vae.encode(x)
    q = Normal(mu, (0.5 * log_var).exp())
    z = mu + q.scale * torch.randn(mu.shape).double()
    with torch.no_grad():
        logits = vae._decoder_output(z)[..., 0]
    log_w = (Bernoulli(logits=logits).log_prob(x).sum(1) + Normal(0.0, 1.0).log_prob(z).sum(1)
             - q.log_prob(z).sum(1))
    torch.testing.assert_close(got.detach(), -log_w.mean().detach())
    with pytest.raises(ValueError, match="warmup"):
        elbo_loss(-1.0)


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------

def test_vae_rejects_bad_arguments_and_data():
    with pytest.raises(ValueError, match="likelihood"):
        VAE(64, likelihood="poisson")
    with pytest.raises(ValueError, match="image_shape"):
        VAE(64, architecture="conv", image_shape=(7, 9))
    with pytest.raises(ValueError, match="latent must be"):
        VAE(64, latent=0)
    vae = VAE(64, 2, 16, likelihood="bernoulli")
    with pytest.raises(RuntimeError, match="not fitted yet"):
        vae.log_prob(torch.zeros(2, 64))
    with pytest.raises(ValueError, match="binary"):
        vae.fit(digits("train", "levels", 10), epochs=1)
    with pytest.raises(ValueError, match="features"):
        vae.fit(torch.zeros(10, 8), epochs=1)
    with pytest.raises(ValueError, match="warm-up"):
        vae.fit(digits("train", "binary", 10), epochs=1, k=5, warmup=0.2)
    assert not vae.is_fitted  # nothing changed by the failed fits
    cat = VAE(64, 2, 16, likelihood="categorical").standardize(digits("train", "levels", 10))
    with pytest.raises(ValueError, match="integer levels 0..16"):
        cat.log_prob(torch.full((2, 64), 0.5))
    with pytest.raises(ValueError, match="integer levels"):
        cat.log_prob(torch.full((2, 64), 17.0))
    with pytest.raises(ValueError, match=r"\[n, 2\] or \[k, n, 2\]"):
        cat.log_likelihood(digits("train", "levels", 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="2 entries"):
        cat.decode(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="k must be"):
        cat.iwae(digits("train", "levels", 3), 0)


def test_state_dict_reloads_in_the_saved_dtype():
    vae, x = tiny_vae("beta_binomial")  # float64
    fresh = VAE(64, 2, 32, likelihood="beta_binomial")
    fresh.load_state_dict(vae.state_dict())
    assert fresh.dtype == torch.float64
    torch.testing.assert_close(fresh.log_prob(x[:5]), vae.log_prob(x[:5]))


# --------------------------------------------------------------------------------------
# the adversarial autoencoder, its prior and the two-sample test
# --------------------------------------------------------------------------------------

def test_mixture_prior_density_and_sampler():
    prior = GaussianMixturePrior.ring(5, radius=3.0, std=0.4)
    z = torch.randn(10, 2, generator=gen(7)) * 3
    means = prior.means_.numpy()
    expected = np.log(np.mean([scipy.stats.multivariate_normal(m, 0.16 * np.eye(2)).pdf(z)
                               for m in means], 0))
    np.testing.assert_allclose(prior.log_prob(z).numpy(), expected, rtol=1e-5)
    draws = prior.sample(5000, generator=gen(8))
    nearest = torch.cdist(draws, prior.means_).argmin(1)
    counts = np.bincount(nearest.numpy(), minlength=5)
    assert scipy.stats.chisquare(counts).pvalue > 1e-3
    within = (draws - prior.means_[nearest]).square().sum(1) / 0.16  # chi-square with 2 dof
    assert scipy.stats.kstest(within.numpy(), "chi2", args=(2,)).pvalue > 1e-3
    with pytest.raises(ValueError, match="std"):
        GaussianMixturePrior(torch.zeros(2, 2), std=0.0)


def brute_mmd2(x, y, h):
    def k(a, b):
        return math.exp(-float(((a - b) ** 2).sum()) / (2 * h * h))
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd_matches_loops_and_the_permutation_test_is_calibrated():
    g = gen(9)
    x, y = torch.randn(15, 2, generator=g, dtype=torch.float64), torch.randn(
        12, 2, generator=g, dtype=torch.float64) + 0.5
    assert mmd_squared(x, y, 0.7).item() == pytest.approx(brute_mmd2(x.numpy(), y.numpy(), 0.7),
                                                          rel=1e-10)
    # same distribution: p-values spread over (0, 1]; different: tiny
    p_null = [mmd_test(torch.randn(30, 2, generator=g), torch.randn(30, 2, generator=g),
                       permutations=50, generator=g)[1] for _ in range(40)]
    assert np.mean(np.array(p_null) < 0.05) < 0.2 and np.mean(p_null) > 0.3
    _, p_alt = mmd_test(torch.randn(100, 2, generator=g), torch.randn(100, 2, generator=g) + 1,
                        permutations=100, generator=g)
    assert p_alt < 0.02
    with pytest.raises(ValueError, match="same number of features"):
        mmd_squared(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="at least 2 rows"):
        mmd_test(torch.zeros(1, 2), torch.zeros(3, 2))


def test_mmd_test_equals_a_loop_over_the_same_relabellings():
    """Oracle: the permutation test written out, one relabelling at a time with the loops of
    brute_mmd2, on the permutations that the same generator gives; statistic and p-value
    agree (mmd_test computes every relabelling at once from one kernel matrix)."""
    g = gen(4)
    x = torch.randn(9, 2, generator=g, dtype=torch.float64)
    y = torch.randn(7, 2, generator=g, dtype=torch.float64) + 0.4
    for bandwidth in (0.6, 1.5):
        observed, p = mmd_test(x, y, permutations=40, bandwidth=bandwidth, generator=gen(5))
        pooled, perms = torch.cat([x, y]).numpy(), gen(5)
        truth = brute_mmd2(x.numpy(), y.numpy(), bandwidth)
        exceed = 0
        for _ in range(40):
            perm = torch.randperm(16, generator=perms).numpy()
            exceed += brute_mmd2(pooled[perm[:9]], pooled[perm[9:]], bandwidth) >= truth - 1e-12
        assert observed == pytest.approx(truth, rel=1e-10)
        assert p == (1 + exceed) / 41


def test_mmd_test_counts_ties_of_discrete_data():
    """Oracle: exact arithmetic. On points in {0, 1, 2} with bandwidth 1 the kernel takes the
    values 1, t = e^(-1/2) and t^4 = e^(-2), and the statistic is c0 + c1 t + c2 t^4 with
    rational c; t being transcendental, two relabellings tie exactly when their c agree.
    Every tie counts as "at least as large" (a float comparison may round it below)."""
    from fractions import Fraction

    def coefficients(a, b):
        def sums(u, v, same):
            c = [Fraction(0)] * 3
            for i, p in enumerate(u):
                for j, q in enumerate(v):
                    if not (same and i == j):
                        c[int(abs(p - q))] += 1
            return c
        m, n = len(a), len(b)
        xx, yy, xy = sums(a, a, True), sums(b, b, True), sums(a, b, False)
        return tuple(xx[d] / (m * (m - 1)) + yy[d] / (n * (n - 1)) - 2 * xy[d] / (m * n)
                     for d in range(3))

    def value(c):
        return float(c[0]) + float(c[1]) * math.exp(-0.5) + float(c[2]) * math.exp(-2.0)

    g = gen(6)
    for m, n in ((5, 7), (6, 6), (9, 4)):
        x = torch.randint(3, (m,), generator=g).double()
        y = torch.randint(3, (n,), generator=g).double()
        for dtype in (torch.float64, torch.float32):
            observed, p = mmd_test(x[:, None].to(dtype), y[:, None].to(dtype), permutations=60,
                                   bandwidth=1.0, generator=gen(7))
            pooled, perms = torch.cat([x, y]).tolist(), gen(7)
            truth = coefficients(x.tolist(), y.tolist())
            exceed = 0
            for _ in range(60):
                perm = torch.randperm(m + n, generator=perms).tolist()
                c = coefficients([pooled[i] for i in perm[:m]], [pooled[i] for i in perm[m:]])
                exceed += c == truth or value(c) > value(truth)
            assert observed == pytest.approx(value(truth), rel=1e-5, abs=1e-7)
            assert p == (1 + exceed) / 61, (m, n, dtype)


def test_aae_losses_train_every_part():
    torch.manual_seed(0)
    x = digits("train", "binary", 200)
    aae = AdversarialAutoencoder(64, GaussianMixturePrior.ring(4), 32).standardize(x)
    from dgm_lab.train import fit
    before = {name: p.detach().clone() for name, p in aae.named_parameters()}
    history = fit(aae, aae_losses(aae), x, epochs=3, batch_size=50, seed=0, device="cpu",
                  progress=False)
    assert {"recon.loss", "d.loss", "d.accuracy", "g.loss"} <= set(history.epoch)
    changed = {name.split(".")[0] for name, p in aae.named_parameters()
               if not torch.equal(p, before[name])}
    assert changed == {"autoencoder", "discriminator"}
    assert history.epoch["recon.loss"][-1] < history.epoch["recon.loss"][0]
    assert aae.sample(3).shape == (3, 64) and aae.code_log_prior(x[:4]).shape == (4,)
    with pytest.raises(TypeError, match="prior must be a DensityModel"):
        AdversarialAutoencoder(64, torch.zeros(2))


def test_bernoulli_decode_is_the_decoders_pixel_probability():
    """decode(z) of a Bernoulli VAE is P(x_d = 1 | z), read independently off log_likelihood:
    switching pixel d from 0 to 1 changes log p(x | z) by the logit of that probability."""
    torch.manual_seed(0)
    vae = VAE(6, latent=2, hidden=8, likelihood="bernoulli").standardize(
        torch.bernoulli(torch.full((10, 6), 0.5)))
    z = torch.randn(3, 2)
    mean = vae.decode(z)
    zeros = torch.zeros(3, 6)
    with torch.no_grad():
        base = vae.log_likelihood(zeros, z)
        for d in range(6):
            one = zeros.clone()
            one[:, d] = 1.0
            torch.testing.assert_close(mean[:, d], torch.sigmoid(vae.log_likelihood(one, z) - base))


# --------------------------------------------------------------------------------------
# the committed model: the chapter's bar on the 17-level digits
# --------------------------------------------------------------------------------------

def test_committed_vae_meets_the_bar_on_the_levels():
    """benchmarks/results/ch07.csv holds the checkpoint's test IWAE-1000 figure, and it beats
    the peer's better seed, 91.67 nats per image, by 3 nats or more. The checkpoint records its
    IWAE-100 figure, which tests/test_results.py recomputes from the weights: a looser bound
    (fewer draws), so it must lie above the IWAE-1000 figure, and it meets the bar itself, so
    weights that reproduce it meet the bar whatever the file says. The ELBO is looser still."""
    meta = results.checkpoint_meta("ch07_vae_digits_levels")
    assert meta["metric"] == "nll-iwae100"
    nll = results.lookup(7, "vae", "digits-levels", "test", "nll")
    assert nll.value < meta["value"] < nll.value + 1.0
    assert meta["value"] <= 88.7 and nll.value <= 88.7
    assert results.lookup(7, "vae", "digits-levels", "test", "neg-elbo").value > meta["value"]


def test_committed_binary_vaes_sit_beside_chapter_6():
    """The Bernoulli VAE of the binarised digits: its IWAE-1000 figure is below its IWAE-100
    checkpoint figure and its ELBO, and it beats chapter 6's independent pixels and mixture.
    The 2-D model's exact -log p(x) (integration over the code) is below its IWAE-1000 bound,
    which is below its -ELBO, as the theory orders them."""
    meta = results.checkpoint_meta("ch07_vae_digits_binary")
    nll = results.lookup(7, "vae", "digits-binary", "test", "nll").value
    assert nll < meta["value"] < nll + 1.0
    assert nll < results.lookup(7, "vae", "digits-binary", "test", "neg-elbo").value
    for baseline in ("independent-bernoulli", "bernoulli-mixture"):
        assert nll < results.lookup(6, baseline, "digits-binary", "test", "nll").value
    exact = results.lookup(7, "vae-2d", "digits-binary", "test", "nll-exact").value
    bound = results.lookup(7, "vae-2d", "digits-binary", "test", "nll").value
    assert exact < bound < results.lookup(7, "vae-2d", "digits-binary", "test", "neg-elbo").value
    assert bound <= results.checkpoint_meta("ch07_vae_digits_2d")["value"]
