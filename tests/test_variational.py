"""Tests of dgm_lab.variational against independent oracles.

Oracles: scipy.stats.entropy (discrete KL), torch.distributions.kl_divergence and Normal
(Gaussian KL and log-density), Kolmogorov-Smirnov tests against scipy.stats.norm
(reparameterised draws), closed-form gradients of Gaussian expectations (the two gradient
estimators), plain-Python enumeration of every state (Boltzmann machine: log Z, J(q), the KL
gap), autograd (stationarity of the mean-field fixed point), closed-form mixture moments and
scipy.integrate.quad + scipy.optimize.minimize (forward and reverse KL fits).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import scipy.stats
import torch
from torch.distributions import Independent, Normal, kl_divergence

from dgm_lab.variational import (
    boltzmann_log_partition,
    boltzmann_log_potential,
    discrete_kl,
    fit_gaussian_forward_kl,
    fit_gaussian_reverse_kl,
    gaussian_kl,
    gaussian_log_prob,
    kl_on_grid,
    mean_field,
    mean_field_objective,
    reparameterization_gradients,
    reparameterize,
    score_function_gradients,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------
# KL divergences
# --------------------------------------------------------------------------------------

def test_discrete_kl_matches_scipy_and_handles_zeros():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(7), size=5), rng.dirichlet(np.ones(7), size=5)
    p[0, :3] = 0.0  # p has zeros: those terms vanish
    p[0] /= p[0].sum()
    got = discrete_kl(torch.as_tensor(p), torch.as_tensor(q))
    expected = [scipy.stats.entropy(a, b) for a, b in zip(p, q, strict=True)]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    assert discrete_kl(torch.as_tensor(p[1]), torch.as_tensor(p[1])).item() == 0.0
    # q misses an outcome p can produce: infinite; the reverse is finite
    a, b = torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])
    assert discrete_kl(a, b).item() == math.inf
    assert discrete_kl(b, a).item() == pytest.approx(math.log(2))


def test_discrete_kl_rejects_bad_input():
    with pytest.raises(ValueError, match="sum to 1"):
        discrete_kl(torch.tensor([0.5, 0.6]), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match=">= 0"):
        discrete_kl(torch.tensor([1.5, -0.5]), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"\[\.\.\., K\]"):
        discrete_kl(torch.tensor(1.0), torch.tensor(1.0))
    with pytest.raises(TypeError, match="p must"):
        discrete_kl("p", torch.tensor([1.0]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gaussian_kl_equals_torch_distributions(dtype):
    g = gen(0)
    mu, log_var = torch.randn(6, 4, generator=g, dtype=dtype), torch.randn(6, 4, generator=g,
                                                                          dtype=dtype)
    m, log_s2 = torch.randn(6, 4, generator=g, dtype=dtype), torch.randn(6, 4, generator=g,
                                                                        dtype=dtype)

    def normal(a, lv):
        return Independent(Normal(a, (0.5 * lv).exp()), 1)

    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == torch.float64 else {}
    got = gaussian_kl(mu, log_var, m, log_s2)
    assert got.dtype == dtype and got.shape == (6,)
    torch.testing.assert_close(got, kl_divergence(normal(mu, log_var), normal(m, log_s2)), **tol)
    zero = torch.zeros_like(mu)
    torch.testing.assert_close(gaussian_kl(mu, log_var),  # default prior N(0, I)
                               kl_divergence(normal(mu, log_var), normal(zero, zero)), **tol)
    # a non-negative divergence, zero only at q = p
    assert (got > 0).all()
    torch.testing.assert_close(gaussian_kl(m, log_s2, m, log_s2), torch.zeros(6, dtype=dtype))


def test_gaussian_kl_broadcasts_and_rejects_bad_input():
    mu = torch.randn(5, 3)
    torch.testing.assert_close(gaussian_kl(mu, torch.zeros(3)),
                               0.5 * mu.square().sum(1))  # unit variance: half the square
    with pytest.raises(ValueError, match="do not broadcast"):
        gaussian_kl(torch.zeros(5, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        gaussian_kl(torch.full((2, 2), math.nan), torch.zeros(2, 2))
    with pytest.raises(TypeError, match="mu must"):
        gaussian_kl("mu", torch.zeros(2))


def test_gaussian_log_prob_equals_torch_distributions():
    g = gen(1)
    z, mu, log_var = (torch.randn(7, 3, generator=g, dtype=torch.float64) for _ in range(3))
    expected = Normal(mu, (0.5 * log_var).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(gaussian_log_prob(z, mu, log_var), expected, rtol=1e-12,
                               atol=1e-12)
    # [k, n, L] draws against [n, L] parameters
    zk = torch.randn(4, 7, 3, generator=g, dtype=torch.float64)
    assert gaussian_log_prob(zk, mu, log_var).shape == (4, 7)
    with pytest.raises(ValueError, match="do not broadcast"):
        gaussian_log_prob(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 4))


# --------------------------------------------------------------------------------------
# reparameterisation and the gradient estimators
# --------------------------------------------------------------------------------------

def test_reparameterized_draws_have_the_right_distribution_and_gradients():
    mu, log_var = torch.tensor([1.5, -2.0]), torch.tensor([0.4, -1.0])
    z = reparameterize(mu.expand(20000, 2), log_var.expand(20000, 2), generator=gen(0))
    for j in range(2):  # Kolmogorov-Smirnov against the exact normal CDF
        sd = math.exp(0.5 * log_var[j].item())
        p_value = scipy.stats.kstest(z[:, j].numpy(), "norm", args=(mu[j].item(), sd)).pvalue
        assert p_value > 1e-3, (j, p_value)
    # gradients flow to both parameters: dz/dmu = 1, dz/dlog_var = sigma * eps / 2
    mu_r, lv_r = mu.clone().requires_grad_(True), log_var.clone().requires_grad_(True)
    eps = torch.randn(2, generator=gen(1))
    reparameterize(mu_r, lv_r, eps).sum().backward()
    torch.testing.assert_close(mu_r.grad, torch.ones(2))
    torch.testing.assert_close(lv_r.grad, 0.5 * (0.5 * log_var).exp() * eps)
    # k draws per row from noise [k, n, L]
    assert reparameterize(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(5, 3, 2)).shape == \
        (5, 3, 2)


def test_reparameterize_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        reparameterize(torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="must end with the shape of mu"):
        reparameterize(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(TypeError, match="generator"):
        reparameterize(torch.zeros(2), torch.zeros(2), generator=1)


# Two functions whose Gaussian expectations and their gradients have closed forms.
A = torch.tensor([0.5, -1.0], dtype=torch.float64)


def square(z):
    return (z - A).square().sum(1)  # E = sum (mu - a)^2 + sigma^2


def square_gradient(mu, sigma):
    return torch.cat([2 * (mu - A), 2 * sigma**2])


def sine(z):
    return z.sin().sum(1)  # E = sum sin(mu) exp(-sigma^2 / 2)


def sine_gradient(mu, sigma):
    damp = torch.exp(-sigma**2 / 2)
    return torch.cat([mu.cos() * damp, -sigma**2 * mu.sin() * damp])


@pytest.mark.parametrize("f, exact", [(square, square_gradient), (sine, sine_gradient)])
def test_both_estimators_are_unbiased(f, exact):
    """Both estimators average to the exact gradient; the pathwise one has the smaller
    variance on the quadratic (not a law: on the sine the score function wins one entry)."""
    mu, log_std = torch.tensor([0.3, 1.2], dtype=torch.float64), torch.tensor(
        [-0.2, 0.4], dtype=torch.float64)
    eps = torch.randn(100_000, 2, generator=gen(2), dtype=torch.float64)
    truth = exact(mu, log_std.exp())
    variances = {}
    for name, grads in [("pathwise", reparameterization_gradients(f, mu, log_std, eps)),
                        ("score", score_function_gradients(f, mu, log_std, eps)),
                        ("score+baseline", score_function_gradients(f, mu, log_std, eps,
                                                                    baseline=True))]:
        assert grads.shape == (100_000, 4)
        stderr = grads.std(0) / math.sqrt(len(grads))
        assert ((grads.mean(0) - truth).abs() < 5 * stderr + 1e-12).all(), (name, grads.mean(0))
        variances[name] = grads.var(0)
    if f is square:  # values far from 0: the baseline removes most of the noise
        assert (variances["pathwise"] < variances["score"]).all()
        assert (variances["score+baseline"] < variances["score"]).all()


def test_pathwise_gradients_per_draw_follow_the_chain_rule():
    """For f = sum (z - a)^2 each draw's gradient is 2(z - a) and 2(z - a) sigma eps."""
    mu, log_std = torch.tensor([0.3, 1.2], dtype=torch.float64), torch.tensor(
        [-0.2, 0.4], dtype=torch.float64)
    eps = torch.randn(50, 2, generator=gen(3), dtype=torch.float64)
    z = mu + log_std.exp() * eps
    got = reparameterization_gradients(square, mu, log_std, eps)
    torch.testing.assert_close(got, torch.cat([2 * (z - A), 2 * (z - A) * log_std.exp() * eps],
                                              1))
    # the score-function estimate per draw: f(z) times the score of N(mu, sigma^2)
    # (the score of N(mu, sigma^2) checked with autograd, parameter by parameter); with the
    # baseline, draw i's value is offset by the mean of the *other* draws' values
    score = score_function_gradients(square, mu, log_std, eps)
    with_baseline = score_function_gradients(square, mu, log_std, eps, baseline=True)
    values = square(z)
    for i in range(3):
        m, ls = mu.clone().requires_grad_(True), log_std.clone().requires_grad_(True)
        Normal(m, ls.exp()).log_prob(z[i]).sum().backward()
        grad_log_q = torch.cat([m.grad, ls.grad])
        torch.testing.assert_close(score[i], values[i] * grad_log_q)
        others = torch.cat([values[:i], values[i + 1:]]).mean()
        torch.testing.assert_close(with_baseline[i], (values[i] - others) * grad_log_q)


def test_gradient_estimators_reject_bad_input():
    mu, ls, eps = torch.zeros(2), torch.zeros(2), torch.zeros(5, 2)
    with pytest.raises(TypeError, match="f must be a function"):
        reparameterization_gradients(3.0, mu, ls, eps)
    with pytest.raises(ValueError, match="same D"):
        score_function_gradients(square, mu, ls, torch.zeros(5, 3))
    with pytest.raises(ValueError, match="one value per row"):
        reparameterization_gradients(lambda z: z, mu, ls, eps)
    with pytest.raises(ValueError, match="at least 2 draws"):
        score_function_gradients(square, mu, ls, eps[:1], baseline=True)
    with pytest.raises(TypeError, match="baseline"):
        score_function_gradients(square, mu, ls, eps, baseline=1)


# --------------------------------------------------------------------------------------
# mean-field VI on a Boltzmann machine
# --------------------------------------------------------------------------------------

# The 3-unit machine of the lecture notes: w12 = w13 = -1, w23 = 2, b2 = 1, units in {-1, 1}.
W3 = torch.tensor([[0.0, -1.0, -1.0], [-1.0, 0.0, 2.0], [-1.0, 2.0, 0.0]], dtype=torch.float64)
B3 = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)


def random_machine(d: int, scale: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = gen(seed)
    w = torch.randn(d, d, generator=g, dtype=torch.float64) * scale
    w = torch.triu(w, 1)
    return w + w.T, torch.randn(d, generator=g, dtype=torch.float64) * 0.5


def brute_force(w, b):
    """Every state, its log-potential and log Z, with plain Python loops."""
    d = len(b)
    states = list(itertools.product([-1.0, 1.0], repeat=d))
    pot = [sum(w[i, j].item() * x[i] * x[j] for i in range(d) for j in range(i + 1, d))
           + sum(b[i].item() * x[i] for i in range(d)) for x in states]
    return states, pot, math.log(sum(math.exp(h) for h in pot))


def test_log_partition_of_the_lecture_example_and_by_enumeration():
    assert boltzmann_log_partition(W3, B3).exp().item() == pytest.approx(172.420, abs=1e-3)
    x = torch.tensor([[-1.0, 1.0, 1.0], [1.0, -1.0, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(boltzmann_log_potential(x, W3, B3),
                               torch.tensor([5.0, 3.0], dtype=torch.float64))
    for d in (1, 4, 9):
        w, b = random_machine(d, 0.7, seed=d)
        states, pot, log_z = brute_force(w, b)
        assert boltzmann_log_partition(w, b).item() == pytest.approx(log_z, rel=1e-12)
        torch.testing.assert_close(
            boltzmann_log_potential(torch.tensor(states, dtype=torch.float64), w, b),
            torch.tensor(pot, dtype=torch.float64))


def q_probabilities(states, m):
    """q(x) of the factorised distribution with means m, for every state."""
    return np.array([math.prod((1 + mi * xi) / 2 for mi, xi in zip(m.tolist(), x, strict=True))
                     for x in states])


def test_mean_field_objective_is_kl_minus_log_z():
    w, b = random_machine(6, 0.8, seed=0)
    states, pot, log_z = brute_force(w, b)
    p = np.exp(np.array(pot) - log_z)
    g = gen(4)
    for m in [torch.rand(6, generator=g, dtype=torch.float64) * 2 - 1,
              torch.tensor([1.0, -1.0, 0.3, 0.0, 1.0, -0.9], dtype=torch.float64)]:
        q = q_probabilities(states, m)
        keep = q > 0
        j_enumerated = float(np.sum(q[keep] * (np.log(q[keep]) - np.array(pot)[keep])))
        j = mean_field_objective(m, w, b).item()
        assert j == pytest.approx(j_enumerated, rel=1e-10, abs=1e-10)
        assert j == pytest.approx(scipy.stats.entropy(q, p) - log_z, rel=1e-9)
        assert -j <= log_z  # the ELBO is below log Z
    batch = torch.zeros(3, 6, dtype=torch.float64)
    assert mean_field_objective(batch, w, b).shape == (3,)


def test_mean_field_descends_to_a_stationary_point_below_the_bound():
    w, b = random_machine(8, 0.4, seed=1)
    log_z = boltzmann_log_partition(w, b).item()
    m, history = mean_field(w, b)
    assert all(b <= a + 1e-12 for a, b in zip(history, history[1:], strict=False))
    assert -history[-1] <= log_z and len(history) > 2
    # stationary: the gradient of J (autograd) vanishes at the fixed point
    m_r = m.clone().requires_grad_(True)
    mean_field_objective(m_r, w, b).backward()
    assert m_r.grad.abs().max() < 1e-6
    # weak couplings: the mean-field means approximate the exact marginal means
    states, pot, lz = brute_force(w, b)
    p = np.exp(np.array(pot) - lz)
    exact_means = (np.array(states) * p[:, None]).sum(0)
    np.testing.assert_allclose(m.numpy(), exact_means, atol=0.1)


def test_mean_field_is_exact_without_couplings():
    b = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    w = torch.zeros(3, 3, dtype=torch.float64)
    m, history = mean_field(w, b)
    torch.testing.assert_close(m, torch.tanh(b))
    assert -history[-1] == pytest.approx(boltzmann_log_partition(w, b).item(), abs=1e-12)


def test_boltzmann_functions_reject_bad_input():
    with pytest.raises(ValueError, match="symmetric with a zero diagonal"):
        boltzmann_log_partition(torch.eye(3), torch.zeros(3))
    with pytest.raises(ValueError, match="symmetric"):
        boltzmann_log_partition(torch.triu(torch.ones(3, 3), 1), torch.zeros(3))
    with pytest.raises(ValueError, match=r"shape \[2, 2\]"):
        boltzmann_log_partition(torch.zeros(3, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="too much"):
        boltzmann_log_partition(torch.zeros(21, 21), torch.zeros(21))
    with pytest.raises(ValueError, match="-1 or \\+1"):
        boltzmann_log_potential(torch.zeros(2, 3), W3, B3)
    with pytest.raises(ValueError, match="machine has 3"):
        boltzmann_log_potential(torch.ones(2, 2), W3, B3)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        mean_field_objective(torch.full((3,), 1.5), W3, B3)
    with pytest.raises(ValueError, match="init"):
        mean_field(W3, B3, init=torch.zeros(2))
    with pytest.raises(ValueError, match="max_sweeps"):
        mean_field(W3, B3, max_sweeps=0)


# --------------------------------------------------------------------------------------
# forward and reverse KL fits on a grid
# --------------------------------------------------------------------------------------

GRID = torch.linspace(-12, 12, 4801, dtype=torch.float64)
WEIGHTS, MEANS, STDS = [0.3, 0.7], [-3.0, 2.5], [0.8, 1.0]


def mixture_log_prob(x):
    comps = [math.log(w) + Normal(m, s).log_prob(x)
             for w, m, s in zip(WEIGHTS, MEANS, STDS, strict=True)]
    return torch.logsumexp(torch.stack(comps), 0)


def mixture_pdf(x):
    return sum(w * scipy.stats.norm.pdf(x, m, s) for w, m, s in zip(WEIGHTS, MEANS, STDS,
                                                                     strict=True))


def test_kl_on_grid_matches_closed_forms_and_quadrature():
    p, q = Normal(torch.tensor(0.5, dtype=torch.float64), 1.3), Normal(
        torch.tensor(-1.0, dtype=torch.float64), 0.7)
    assert kl_on_grid(GRID, p.log_prob(GRID), q.log_prob(GRID)).item() == pytest.approx(
        kl_divergence(p, q).item(), rel=1e-6)
    # mixture against a Gaussian, against scipy's adaptive quadrature
    log_q = Normal(torch.tensor(0.0, dtype=torch.float64), 2.0).log_prob(GRID)
    expected = scipy.integrate.quad(
        lambda t: mixture_pdf(t) * (np.log(mixture_pdf(t)) - scipy.stats.norm.logpdf(t, 0, 2)),
        -12, 12, points=MEANS, limit=200)[0]
    assert kl_on_grid(GRID, mixture_log_prob(GRID), log_q).item() == pytest.approx(expected,
                                                                                   rel=1e-6)
    # p = 0 somewhere adds nothing; q = 0 where p > 0 is infinite
    log_u = torch.where(GRID.abs() <= 1, -math.log(2.0), -math.inf)
    assert kl_on_grid(GRID, log_u, log_u).item() == pytest.approx(0.0, abs=1e-12)
    assert kl_on_grid(GRID, q.log_prob(GRID), log_u).item() == math.inf


def test_forward_fit_matches_the_moments_of_the_mixture():
    mean, std = fit_gaussian_forward_kl(GRID, mixture_log_prob(GRID))
    m = sum(w * mu for w, mu in zip(WEIGHTS, MEANS, strict=True))
    second = sum(w * (s**2 + mu**2) for w, mu, s in zip(WEIGHTS, MEANS, STDS, strict=True))
    assert mean.item() == pytest.approx(m, abs=1e-6)
    assert std.item() == pytest.approx(math.sqrt(second - m**2), abs=1e-6)
    # an unnormalised log-density gives the same fit
    mean2, std2 = fit_gaussian_forward_kl(GRID, mixture_log_prob(GRID) + 3.0)
    assert (mean2.item(), std2.item()) == pytest.approx((mean.item(), std.item()))


def scipy_reverse_kl(start, pdf=mixture_pdf):
    """KL(q || p) by Gauss-Hermite quadrature (exact for polynomials of degree < 400 under
    the Gaussian weight), minimised by scipy's Nelder-Mead from ``start`` = (mean, log std);
    ``pdf`` is the density of p."""
    nodes, weights = np.polynomial.hermite.hermgauss(200)

    def objective(theta):
        mu, s = theta[0], math.exp(theta[1])
        t = mu + math.sqrt(2) * s * nodes
        integrand = scipy.stats.norm.logpdf(t, mu, s) - np.log(pdf(t))
        return float(weights @ integrand / math.sqrt(math.pi))
    res = scipy.optimize.minimize(objective, start, method="Nelder-Mead",
                                  options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 4000})
    return res.x[0], math.exp(res.x[1]), res.fun


def test_reverse_fit_finds_the_best_mode_as_scipy_does():
    mean, std, kl = fit_gaussian_reverse_kl(GRID, mixture_log_prob(GRID))
    candidates = [scipy_reverse_kl([m, 0.0]) for m in MEANS]  # one local optimum per mode
    best = min(candidates, key=lambda c: c[2])
    assert mean.item() == pytest.approx(best[0], abs=1e-3)
    assert std.item() == pytest.approx(best[1], abs=1e-3)
    assert kl.item() == pytest.approx(best[2], abs=1e-5)
    # mode seeking: it sits on the heavier mode, unlike the moment-matching fit in between
    assert abs(mean.item() - MEANS[1]) < 0.1
    # a Gaussian target is recovered exactly
    mean_g, std_g, kl_g = fit_gaussian_reverse_kl(GRID, Normal(
        torch.tensor(1.0, dtype=torch.float64), 1.5).log_prob(GRID), starts=3)
    assert (mean_g.item(), std_g.item(), kl_g.item()) == pytest.approx((1.0, 1.5, 0.0),
                                                                       abs=1e-5)


def test_reverse_fit_leaves_a_light_mode_at_the_centre_for_a_heavy_one_off_centre():
    """The light mode sits at the grid's centre, where a single start would settle (a local
    minimum of the reverse KL); the several starts find the heavy mode, the global minimum
    that scipy reaches from a start on it, and not the other local one."""
    weights, means = (0.35, 0.65), (0.0, 6.0)

    def pdf(t):
        return sum(w * scipy.stats.norm.pdf(t, m, 1.0) for w, m in zip(weights, means,
                                                                      strict=True))
    log_p = torch.as_tensor(np.log(pdf(GRID.numpy())))
    mean, std, kl = fit_gaussian_reverse_kl(GRID, log_p)
    heavy, light = (scipy_reverse_kl([m, 0.0], pdf) for m in (means[1], means[0]))
    assert light[2] > heavy[2] + 0.3  # two local minima, far apart in value
    assert (mean.item(), std.item(), kl.item()) == pytest.approx(heavy, abs=1e-3)
    # one start at the centre settles on the light mode: the reason for several starts
    mean_1, _, kl_1 = fit_gaussian_reverse_kl(GRID, log_p, starts=1)
    assert mean_1.item() == pytest.approx(light[0], abs=1e-2) and kl_1.item() > kl.item() + 0.3


def test_grid_functions_reject_bad_input():
    log_p = mixture_log_prob(GRID)
    with pytest.raises(ValueError, match="increasing"):
        kl_on_grid(GRID.flip(0), log_p, log_p)
    with pytest.raises(ValueError, match="same length"):
        fit_gaussian_forward_kl(GRID, log_p[:-1])
    with pytest.raises(ValueError, match="finite values or -inf"):
        kl_on_grid(GRID, torch.full_like(GRID, math.nan), log_p)
    with pytest.raises(ValueError, match="no mass"):
        fit_gaussian_forward_kl(GRID, torch.full_like(GRID, -math.inf))
    with pytest.raises(ValueError, match="starts"):
        fit_gaussian_reverse_kl(GRID, log_p, starts=0)
