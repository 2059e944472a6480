"""Tests of dgm_lab.gan (losses, theory, techniques, models, metrics) against independent oracles.

Oracles: numerical integration and maximisation (scipy.integrate.quad,
scipy.optimize.minimize_scalar), closed forms (JS of identical and of disjoint densities,
the value at D = 1/2, the spiral of simultaneous gradient steps), finite differences (the
gradient penalty and its gradient), the defining equations written out with loops
(minibatch discrimination, mode coverage), torch's own batch normalisation (virtual batch
normalisation), scipy.stats (wasserstein_distance, truncnorm) and brute force over
permutations (the exact earth mover's distance).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import scipy.special
import scipy.stats
import torch
import torch.nn.functional as F
from torch import nn

from dgm_lab.data import load_toy, toy_density
from dgm_lab.gan import (
    GAN,
    VARIANTS,
    DCGANDiscriminator,
    DCGANGenerator,
    GANConfig,
    HistoricalAverage,
    MinibatchDiscrimination,
    MLPDiscriminator,
    MLPGenerator,
    VirtualBatchNorm,
    bilinear_game,
    build_toy_gan,
    critic_loss,
    discriminator_loss,
    empirical_wasserstein,
    feature_matching_loss,
    gan_updates,
    generator_loss,
    gradient_penalty,
    instance_noise_std,
    interpolate,
    js_divergence,
    minibatch_features,
    mode_coverage,
    optimal_discriminator,
    toy_mode_coverage,
    train_gan,
    truncated_normal,
    value_function,
    wasserstein_1d,
    wasserstein_generator_loss,
)
from dgm_lab.train import fit

LOG2 = math.log(2.0)


def t64(a: object) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


# --------------------------------------------------------------------------------------
# the theory on 1-D densities, against numerical integration
# --------------------------------------------------------------------------------------

# two 1-D densities with a known form: p_r a two-component mixture, p_g a wider Gaussian
P_R = ((0.3, -1.5, 0.5), (0.7, 1.0, 0.8))   # (weight, mean, std)
P_G = ((1.0, 2.5, 1.2),)


def scipy_pdf(mix: tuple, x: np.ndarray | float) -> np.ndarray:
    return sum(w * scipy.stats.norm.pdf(x, m, s) for w, m, s in mix)


def torch_log_pdf(mix: tuple, x: torch.Tensor) -> torch.Tensor:
    comps = torch.stack([math.log(w) + torch.distributions.Normal(m, s).log_prob(x)
                         for w, m, s in mix])
    return torch.logsumexp(comps, 0)


def grid(lo: float = -15.0, hi: float = 15.0, n: int = 30_001):
    """Nodes and trapezoid weights on [lo, hi] in float64."""
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    w = torch.full_like(x, (hi - lo) / (n - 1))
    w[0] = w[-1] = w[0] / 2
    return x, w


def test_optimal_discriminator_maximises_the_pointwise_value():
    """Oracle: at each x, argmax_y p_r log y + p_g log(1 - y) found by scipy's bounded search."""
    xs = np.array([-3.0, -1.5, 0.0, 0.7, 2.5, 4.0])
    d_star = optimal_discriminator(torch_log_pdf(P_R, t64(xs)), torch_log_pdf(P_G, t64(xs)))
    for x, d in zip(xs, d_star.numpy(), strict=True):
        a, b = scipy_pdf(P_R, x), scipy_pdf(P_G, x)
        res = scipy.optimize.minimize_scalar(
            lambda y, a=a, b=b: -(a * np.log(y) + b * np.log1p(-y)),
            bounds=(1e-12, 1 - 1e-12), method="bounded", options={"xatol": 1e-12})
        assert d == pytest.approx(res.x, abs=1e-6)


def test_value_at_the_optimal_discriminator_is_2_js_minus_2_log_2():
    """Oracle: scipy.integrate.quad of the defining integrals, to 1e-4 (the issue's bar)."""
    x, w = grid()
    lp_r, lp_g = torch_log_pdf(P_R, x), torch_log_pdf(P_G, x)
    d_logits = torch.logit(optimal_discriminator(lp_r, lp_g))
    value = value_function(lp_r, lp_g, d_logits, w).item()
    js = js_divergence(lp_r, lp_g, w).item()

    def v_integrand(u):
        a, b = scipy_pdf(P_R, u), scipy_pdf(P_G, u)
        xlogy = scipy.special.xlogy  # 0 log 0 = 0 in the tails
        return xlogy(a, a) + xlogy(b, b) - xlogy(a + b, a + b)

    def js_integrand(u):
        a, b = scipy_pdf(P_R, u), scipy_pdf(P_G, u)
        m = (a + b) / 2
        return 0.5 * scipy.special.rel_entr(a, m) + 0.5 * scipy.special.rel_entr(b, m)

    v_quad = scipy.integrate.quad(v_integrand, -30, 30, limit=400, epsabs=1e-12)[0]
    js_quad = scipy.integrate.quad(js_integrand, -30, 30, limit=400, epsabs=1e-12)[0]
    assert value == pytest.approx(v_quad, abs=1e-4)
    assert js == pytest.approx(js_quad, abs=1e-4)
    assert value == pytest.approx(2 * js_quad - 2 * LOG2, abs=1e-4)
    assert 0.05 < js_quad < LOG2 - 0.05  # a case between the two extremes


def test_any_other_discriminator_has_a_lower_value():
    x, w = grid()
    lp_r, lp_g = torch_log_pdf(P_R, x), torch_log_pdf(P_G, x)
    best = value_function(lp_r, lp_g, lp_r - lp_g, w).item()
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        other = lp_r - lp_g + 0.5 * torch.randn(len(x), generator=gen, dtype=torch.float64)
        assert value_function(lp_r, lp_g, other, w).item() < best
    # D = 1/2 everywhere: the value is log(1/2) + log(1/2) whatever the densities
    half = value_function(lp_r, lp_g, torch.zeros_like(x), w).item()
    assert half == pytest.approx(-2 * LOG2, abs=1e-6)


def test_the_minimum_of_the_game_is_minus_2_log_2_at_p_g_equal_p_r():
    x, w = grid()
    lp = torch_log_pdf(P_R, x)
    d = torch.logit(optimal_discriminator(lp, lp))
    assert torch.allclose(optimal_discriminator(lp, lp), torch.full_like(x, 0.5))
    assert value_function(lp, lp, d, w).item() == pytest.approx(-2 * LOG2, abs=1e-6)
    assert js_divergence(lp, lp, w).item() == pytest.approx(0.0, abs=1e-12)


def test_js_of_disjoint_supports_is_log_2_whatever_their_distance():
    """Uniform densities on [0, 1] and [s, s + 1], s > 1: JS = log 2 exactly, for every s."""
    x, w = grid(-1.0, 10.0, 11_001)
    inside_r = (x >= 0) & (x <= 1)
    lp_r = torch.where(inside_r, 0.0, -math.inf).to(torch.float64)
    for shift in (1.5, 4.0, 8.0):
        inside_g = (x >= shift) & (x <= shift + 1)
        lp_g = torch.where(inside_g, 0.0, -math.inf).to(torch.float64)
        mass = (w * inside_g).sum().item()
        assert js_divergence(lp_r, lp_g, w).item() == pytest.approx(LOG2 * mass, abs=1e-9)
        either = inside_r | inside_g
        d = optimal_discriminator(lp_r[either], lp_g[either])
        assert set(d.unique().tolist()) == {0.0, 1.0}  # a perfect discriminator
        # V(D*, G) = 2 JS - 2 log 2 = 0: the discriminator wins the game outright
        logits = torch.where(inside_r, math.inf, -math.inf).to(torch.float64)
        assert value_function(lp_r, lp_g, logits, w).item() == pytest.approx(0.0, abs=1e-12)


def test_theory_functions_reject_bad_input():
    lp = torch.zeros(5, dtype=torch.float64)
    with pytest.raises(ValueError, match="same shape"):
        optimal_discriminator(lp, torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="both densities are 0"):
        optimal_discriminator(torch.full((2,), -math.inf), torch.full((2,), -math.inf))
    with pytest.raises(ValueError, match="NaN"):
        js_divergence(torch.tensor([0.0, math.nan]), torch.zeros(2), torch.ones(2))
    with pytest.raises(ValueError, match="\\+inf"):
        js_divergence(torch.tensor([0.0, math.inf]), torch.zeros(2), torch.ones(2))
    with pytest.raises(TypeError, match="log_p"):
        js_divergence([0.0, 1.0], torch.zeros(2), torch.ones(2))
    with pytest.raises(ValueError, match="weights must be >= 0"):
        js_divergence(lp, lp, -torch.ones(5))
    with pytest.raises(ValueError, match="weights must have the shape"):
        js_divergence(lp, lp, torch.ones(4))
    with pytest.raises(ValueError, match="discriminator_logits"):
        value_function(lp, lp, torch.zeros(4), torch.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        value_function(lp, lp, torch.full((5,), math.nan), torch.ones(5))


# --------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------

def bce(logits: np.ndarray, target: float) -> np.ndarray:
    """Binary cross-entropy written out on probabilities (float64, moderate logits)."""
    p = 1 / (1 + np.exp(-logits))
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


def test_discriminator_loss_is_the_cross_entropy_of_real_against_fake():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(1, 2, 7), rng.normal(-1, 2, 5)
    for t in (1.0, 0.9, 0.7):
        got = discriminator_loss(t64(real), t64(fake), real_label=t).item()
        assert got == pytest.approx(bce(real, t).mean() + bce(fake, 0.0).mean(), rel=1e-12)
    # the same as torch's own BCE-with-logits
    got = discriminator_loss(t64(real), t64(fake), 0.9)
    expected = (F.binary_cross_entropy_with_logits(t64(real), torch.full((7,), 0.9,
                                                   dtype=torch.float64))
                + F.binary_cross_entropy_with_logits(t64(fake), torch.zeros(5,
                                                     dtype=torch.float64)))
    torch.testing.assert_close(got, expected)


def test_losses_stay_finite_for_extreme_logits():
    """A confident discriminator gives logits of +-200: log(sigmoid(l)) would be -inf in
    float32 from l < -104; the softplus forms give the exact asymptote |l|."""
    big = torch.tensor([200.0, -200.0])
    assert discriminator_loss(big[:1], big[:1]).item() == pytest.approx(200.0)
    assert discriminator_loss(big[1:], big[1:]).item() == pytest.approx(200.0)
    assert generator_loss(big[1:], "non_saturating").item() == pytest.approx(200.0)
    assert generator_loss(big[:1], "minimax").item() == pytest.approx(-200.0)


def test_the_minimax_generator_loss_saturates_and_the_non_saturating_one_does_not():
    """Closed forms of the gradients with respect to the logit: -D and -(1 - D)."""
    logits = torch.tensor([-8.0, -2.0, 0.0, 3.0], dtype=torch.float64, requires_grad=True)
    d = torch.sigmoid(logits).detach()
    for kind, expected in (("minimax", -d), ("non_saturating", -(1 - d))):
        (grad,) = torch.autograd.grad(generator_loss(logits, kind) * len(logits), logits)
        torch.testing.assert_close(grad, expected)
    # the values: log(1 - D) and -log D
    torch.testing.assert_close(generator_loss(logits.detach(), "minimax"),
                               torch.log1p(-d).mean())
    torch.testing.assert_close(generator_loss(logits.detach()), -torch.log(d).mean())


def test_wasserstein_losses():
    real, fake = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, -0.5])
    assert critic_loss(real, fake).item() == pytest.approx(0.0 - 2.0)
    assert wasserstein_generator_loss(fake).item() == pytest.approx(0.0)
    assert wasserstein_generator_loss(real).item() == pytest.approx(-2.0)


def test_losses_reject_bad_input():
    good = torch.zeros(3)
    with pytest.raises(ValueError, match="shape \\[n\\]"):
        discriminator_loss(torch.zeros(3, 1), good)
    with pytest.raises(TypeError, match="fake_logits"):
        discriminator_loss(good, [0.0, 1.0])
    with pytest.raises(TypeError, match="floating"):
        generator_loss(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="NaN"):
        generator_loss(torch.tensor([0.0, math.nan]))
    with pytest.raises(ValueError, match="unknown kind"):
        generator_loss(good, "saturating")
    with pytest.raises(ValueError, match="real_label"):
        discriminator_loss(good, good, real_label=1.5)
    with pytest.raises(ValueError, match="real_label"):
        discriminator_loss(good, good, real_label=0.0)
    with pytest.raises(ValueError, match="n >= 1"):
        critic_loss(torch.zeros(0), good)


# --------------------------------------------------------------------------------------
# the gradient penalty, against finite differences
# --------------------------------------------------------------------------------------

def small_critic(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, 1), nn.Flatten(0)).double()


def fd_gradient_norms(f, points: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """Central finite differences of f at each point, coordinate by coordinate."""
    norms = []
    for p in points:
        grad = []
        for j in range(len(p)):
            e = torch.zeros_like(p)
            e[j] = h
            grad.append((f((p + e)[None]) - f((p - e)[None])).item() / (2 * h))
        norms.append(np.linalg.norm(grad))
    return torch.tensor(norms, dtype=torch.float64)


def test_gradient_penalty_equals_finite_differences_of_the_critic():
    critic = small_critic()
    gen = torch.Generator().manual_seed(1)
    real = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    fake = 3 + torch.randn(6, 3, generator=gen, dtype=torch.float64)
    alpha = torch.rand(6, generator=gen, dtype=torch.float64)
    points = alpha[:, None] * real + (1 - alpha[:, None]) * fake
    with torch.no_grad():
        norms = fd_gradient_norms(critic, points)
    expected = ((norms - 1) ** 2).mean().item()
    assert gradient_penalty(critic, real, fake, alpha).item() == pytest.approx(expected,
                                                                               rel=1e-7)
    assert gradient_penalty(critic, real, fake, alpha, target=2.0).item() == pytest.approx(
        ((norms - 2) ** 2).mean().item(), rel=1e-7)
    # alpha = 1 evaluates at the real points, alpha = 0 at the fake ones
    with torch.no_grad():
        at_real = ((fd_gradient_norms(critic, real) - 1) ** 2).mean().item()
    assert gradient_penalty(critic, real, fake, torch.ones(6, dtype=torch.float64)).item() == \
        pytest.approx(at_real, rel=1e-7)


def test_gradient_penalty_trains_the_critic():
    """Its gradient with respect to a critic weight equals a finite difference of the penalty
    (the penalty must be built with create_graph=True to reach the weights)."""
    critic = small_critic(2)
    gen = torch.Generator().manual_seed(3)
    real = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    fake = torch.randn(5, 3, generator=gen, dtype=torch.float64) + 2
    alpha = torch.rand(5, generator=gen, dtype=torch.float64)
    weight = critic[2].weight
    gradient_penalty(critic, real, fake, alpha).backward()
    analytic = weight.grad[3, 4].item()
    h = 1e-6
    values = []
    for sign in (1, -1):
        with torch.no_grad():
            weight[3, 4] += sign * h
        values.append(gradient_penalty(critic, real, fake, alpha).item())
        with torch.no_grad():
            weight[3, 4] -= sign * h
    assert analytic == pytest.approx((values[0] - values[1]) / (2 * h), rel=1e-5)
    assert abs(analytic) > 1e-4


def test_gradient_penalty_draws_alpha_with_the_generator_and_checks_input():
    critic = small_critic()
    real, fake = torch.zeros(4, 3, dtype=torch.float64), torch.ones(4, 3, dtype=torch.float64)
    a = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(5))
    b = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(5))
    assert a.item() == b.item()
    # images: the norm is over every pixel of an example
    f = lambda x: 2.0 * x.sum((1, 2, 3))  # noqa: E731
    images = torch.zeros(3, 1, 2, 2)
    assert gradient_penalty(f, images, images + 1).item() == pytest.approx((2 * 2 - 1) ** 2)
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(critic, real, fake[:3])
    with pytest.raises(ValueError, match="alpha"):
        gradient_penalty(critic, real, fake, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="alpha must lie in"):
        gradient_penalty(critic, real, fake, torch.full((4,), 1.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="one score per example"):
        gradient_penalty(lambda x: x, real, fake)
    with pytest.raises(TypeError, match="critic"):
        gradient_penalty("critic", real, fake)
    with pytest.raises(TypeError, match="real"):
        gradient_penalty(critic, real.long(), fake)
    with pytest.raises(ValueError, match="NaN"):
        gradient_penalty(critic, real * math.nan, fake)


# --------------------------------------------------------------------------------------
# the improved techniques
# --------------------------------------------------------------------------------------

def test_minibatch_features_follow_the_defining_equation_on_a_hand_made_batch():
    """o(x_i)_b = sum_j exp(-||M_ib - M_jb||_1), M_i = f(x_i) T, written out with loops."""
    f = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    T = np.array([[[1.0, 0.0, 0.5], [0.0, 2.0, 0.0]],
                  [[0.0, 1.0, 0.0], [1.0, 0.0, -1.0]]])  # A=2, B=2, C=3
    n, (A, B, _) = len(f), T.shape
    expected = np.zeros((n, B))
    for i in range(n):
        for b in range(B):
            m_i = sum(f[i, a] * T[a, b] for a in range(A))
            for j in range(n):
                m_j = sum(f[j, a] * T[a, b] for a in range(A))
                expected[i, b] += math.exp(-np.abs(m_i - m_j).sum())
    np.testing.assert_allclose(minibatch_features(t64(f), t64(T)).numpy(), expected, rtol=1e-12)
    # by hand for one entry: x_0 = 0 against x_1 = (1, 0), kernel 0: M = (1, 0, 0.5), L1 = 1.5
    assert expected[0, 0] == pytest.approx(1 + math.exp(-1.5) + math.exp(-2) + math.exp(-2.5))
    # a collapsed batch: every statistic equals the batch size
    collapsed = minibatch_features(torch.ones(5, 2, dtype=torch.float64), t64(T))
    torch.testing.assert_close(collapsed, torch.full((5, 2), 5.0, dtype=torch.float64))


def test_minibatch_discrimination_layer_appends_the_statistics():
    layer = MinibatchDiscrimination(4, kernels=3, kernel_dims=2).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    out = layer(x)
    assert out.shape == (6, 7)
    torch.testing.assert_close(out[:, :4], x)
    torch.testing.assert_close(out[:, 4:], minibatch_features(x, layer.tensor))
    with pytest.raises(ValueError, match="tensor must have shape"):
        minibatch_features(x, torch.zeros(3, 2, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="tensor must have the dtype of features"):
        minibatch_features(x, layer.tensor.float())


def test_virtual_batch_norm_uses_the_reference_batch_plus_the_example():
    """Oracle: torch's batch normalisation of the reference batch with the one example added."""
    torch.manual_seed(0)
    vbn = VirtualBatchNorm(3).double()
    with torch.no_grad():
        vbn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        vbn.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
    ref = torch.randn(10, 3, dtype=torch.float64) * 2 + 1
    x = torch.randn(4, 3, dtype=torch.float64) * 3
    out = vbn(torch.cat([ref, x]), reference_size=10)
    for i in range(4):
        both = torch.cat([ref, x[i:i + 1]])
        expected = F.batch_norm(both, None, None, vbn.weight, vbn.bias, training=True,
                                eps=vbn.eps)[-1]
        torch.testing.assert_close(out[10 + i], expected)
    torch.testing.assert_close(out[:10], F.batch_norm(ref, None, None, vbn.weight, vbn.bias,
                                                      training=True, eps=vbn.eps))
    # unlike batch normalisation, an example's output does not depend on its minibatch
    alone = vbn(torch.cat([ref, x[:1]]), reference_size=10)[10]
    torch.testing.assert_close(alone, out[10])
    with pytest.raises(ValueError, match="reference_size"):
        vbn(ref, reference_size=10)


def test_historical_average_is_the_mean_of_past_parameters():
    net = nn.Linear(2, 1).double()
    history = HistoricalAverage(net)
    values = [net.weight.detach().clone()]
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        with torch.no_grad():
            net.weight.add_(torch.randn(1, 2, generator=gen, dtype=torch.float64))
        history.update(net)
        values.append(net.weight.detach().clone())
    mean = torch.stack(values).mean(0)
    torch.testing.assert_close(history.mean[0], mean)
    bias_mean = net.bias.detach()  # the bias never moved
    expected = (net.weight - mean).square().sum() + (net.bias - bias_mean).square().sum()
    torch.testing.assert_close(history.penalty(net), expected)
    with pytest.raises(ValueError, match="not the module"):
        history.penalty(nn.Linear(3, 1))


def test_feature_matching_and_instance_noise():
    real = t64([[1.0, 2.0], [3.0, 2.0]])
    fake = t64([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    # mean features (2, 2) and (0, 1): squared distance 4 + 1
    assert feature_matching_loss(real, fake).item() == pytest.approx(5.0)
    with pytest.raises(ValueError, match="same number of features"):
        feature_matching_loss(real, fake[:, :1])
    assert instance_noise_std(0.4, 0.0) == 0.4
    assert instance_noise_std(0.4, 0.75) == pytest.approx(0.1)
    assert instance_noise_std(0.4, 1.0) == 0.0
    with pytest.raises(ValueError, match="progress"):
        instance_noise_std(0.4, 1.5)


# --------------------------------------------------------------------------------------
# the game: simultaneous gradient steps on min_x max_y xy
# --------------------------------------------------------------------------------------

def test_simultaneous_steps_spiral_out_at_the_closed_form_rate():
    eta = 0.2
    path = bilinear_game(1.0, -0.5, eta, 60)
    radius = path.norm(dim=1)
    expected = radius[0] * (1 + eta**2) ** (torch.arange(61, dtype=torch.float64) / 2)
    torch.testing.assert_close(radius, expected)
    # the angle advances by atan(eta) at every step: an orbit around the equilibrium
    angle = torch.atan2(path[:, 1], path[:, 0])
    steps = torch.remainder(angle.diff(), 2 * math.pi)
    torch.testing.assert_close(steps, torch.full((60,), math.atan(eta), dtype=torch.float64))


def test_alternating_steps_stay_on_a_closed_orbit():
    """x' = x - eta y, y' = y + eta x' conserves x^2 + y^2 - eta x y (the map has det 1)."""
    eta = 0.3
    path = bilinear_game(0.4, 1.2, eta, 200, alternating=True)
    invariant = path[:, 0] ** 2 + path[:, 1] ** 2 - eta * path[:, 0] * path[:, 1]
    torch.testing.assert_close(invariant, torch.full_like(invariant, invariant[0].item()))
    assert path.norm(dim=1).max() < 2 * path[0].norm()  # bounded, but never converging
    assert path[-20:].norm(dim=1).min() > 0.5


# --------------------------------------------------------------------------------------
# models and the latent space
# --------------------------------------------------------------------------------------

def test_mlp_generator_and_discriminator_shapes_and_labels():
    g = MLPGenerator(latent_dim=3, data_dim=5, hidden=16, layers=2, num_classes=4,
                     output="sigmoid")
    d = MLPDiscriminator(data_dim=5, hidden=16, layers=2, num_classes=4, minibatch_kernels=3)
    z, y = torch.randn(7, 3), torch.randint(0, 4, (7,))
    x = g(z, y)
    assert x.shape == (7, 5) and ((x > 0) & (x < 1)).all()
    assert d(x, y).shape == (7,) and d.features(x, y).shape == (7, 16)
    # the label changes the output: it is really an input
    assert not torch.allclose(g(z, y), g(z, (y + 1) % 4))
    with pytest.raises(ValueError, match="give labels"):
        g(z)
    with pytest.raises(ValueError, match="labels must lie"):
        g(z, torch.full((7,), 4))
    with pytest.raises(ValueError, match="int64"):
        g(z, y.float())
    with pytest.raises(ValueError, match="unconditional"):
        MLPGenerator(3, 5)(z, y)
    with pytest.raises(ValueError, match="z must have shape"):
        g(torch.randn(7, 2), y)
    with pytest.raises(ValueError, match="x must have shape"):
        d(torch.randn(7, 4), y)
    with pytest.raises(ValueError, match="unknown output"):
        MLPGenerator(output="tanh")


def test_a_generator_with_virtual_batch_norm_treats_examples_independently():
    g = MLPGenerator(2, 2, hidden=8, layers=2, virtual_batch_norm=True, reference_size=16)
    z = torch.randn(5, 2)
    torch.testing.assert_close(g(z)[2], g(z[2:3])[0])
    # plain batch normalisation would not: the statistics of the batch change the output
    bn = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8))
    assert not torch.allclose(bn(z)[2], bn(z[1:4])[1])
    assert "reference_z" in g.state_dict()


def test_dcgan_networks():
    g, d = DCGANGenerator(latent_dim=8, channels=4), DCGANDiscriminator(channels=4)
    x = g(torch.randn(3, 8))
    assert x.shape == (3, 1, 28, 28) and (x >= 0).all() and (x <= 1).all()
    assert d(x).shape == (3,) and d(x.flatten(1)).shape == (3,)
    assert d.features(x).shape == (3, 8, 7, 7)
    with pytest.raises(ValueError, match="28, 28"):
        d(torch.rand(3, 1, 8, 8))
    with pytest.raises(ValueError, match="unconditional"):
        g(torch.randn(3, 8), torch.zeros(3, dtype=torch.int64))


def test_gan_sampling_is_repeatable_and_leaves_the_mode_alone():
    gan = GAN(DCGANGenerator(8, 4), DCGANDiscriminator(4), latent_dim=8)
    gan.train()
    before = {k: v.clone() for k, v in gan.generator.state_dict().items()}
    a = gan.sample(4, generator=torch.Generator().manual_seed(0))
    b = gan.sample(4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    assert gan.training  # sample switches to eval mode and back
    # in eval mode batch normalisation uses its running statistics and leaves them alone
    assert any("running_mean" in k for k in before)
    for k, v in gan.generator.state_dict().items():
        torch.testing.assert_close(v, before[k], msg=f"sampling changed {k}")
    assert not a.requires_grad
    z = gan.sample_latent(1000, truncation=0.5)
    assert z.shape == (1000, 8) and z.abs().max() <= 0.5
    for bad in (0.0, -1.0, float("nan")):  # the error names the caller's argument
        with pytest.raises(ValueError, match="truncation must be"):
            gan.sample(3, truncation=bad)
    with pytest.raises(TypeError, match="generator must be"):
        GAN("g", DCGANDiscriminator(4), 8)


def test_truncated_normal_follows_scipy_truncnorm():
    z = truncated_normal((20_000,), 0.7, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert z.abs().max() <= 0.7
    p = scipy.stats.kstest(z.numpy(), scipy.stats.truncnorm(-0.7, 0.7).cdf).pvalue
    assert p > 1e-3
    with pytest.raises(ValueError, match="threshold"):
        truncated_normal((3,), 0.0)


def test_linear_and_spherical_interpolation():
    z0, z1 = torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 3.0, 0.0])
    line = interpolate(z0, z1, 5)
    torch.testing.assert_close(line[0], z0)
    torch.testing.assert_close(line[-1], z1)
    torch.testing.assert_close(line[2], torch.tensor([1.5, 1.5, 0.0]))
    arc = interpolate(z0, z1, 5, spherical=True)
    torch.testing.assert_close(arc.norm(dim=1), torch.full((5,), 3.0))  # stays on the sphere
    torch.testing.assert_close(arc[-1], z1)
    angles = torch.atan2(arc[:, 1], arc[:, 0])
    torch.testing.assert_close(angles, torch.linspace(0, math.pi / 2, 5))
    assert line[2].norm() < 3.0 - 0.8  # the straight line cuts inside
    with pytest.raises(ValueError, match="parallel"):
        interpolate(z0, 2 * z0, 3, spherical=True)
    for a, b, name in ((torch.zeros(3), z1, "z0"), (z0, torch.zeros(3), "z1")):
        with pytest.raises(ValueError, match=f"{name} is the zero vector"):
            interpolate(a, b, 3, spherical=True)  # was silently NaN
    torch.testing.assert_close(interpolate(torch.zeros(3), z1, 3)[1], z1 / 2)  # linear: fine
    with pytest.raises(ValueError, match="steps"):
        interpolate(z0, z1, 1)


# --------------------------------------------------------------------------------------
# Wasserstein distances and mode coverage
# --------------------------------------------------------------------------------------

def test_wasserstein_1d_agrees_with_scipy():
    rng = np.random.default_rng(0)
    for n, m in ((50, 50), (40, 70), (7, 3)):
        x, y = rng.normal(size=n), rng.normal(1.0, 2.0, size=m)
        assert wasserstein_1d(t64(x), t64(y)) == pytest.approx(
            scipy.stats.wasserstein_distance(x, y), rel=1e-10)


def test_empirical_wasserstein_is_the_best_assignment():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 2)), rng.normal(2.0, 1.0, size=(6, 2))
    brute = min(np.mean([np.linalg.norm(x[i] - y[j]) for i, j in enumerate(perm)])
                for perm in itertools.permutations(range(6)))
    assert empirical_wasserstein(t64(x), t64(y)) == pytest.approx(brute, rel=1e-12)
    a, b = rng.normal(size=200), rng.normal(0.5, 1.5, size=200)  # 1-D: matches scipy's
    assert empirical_wasserstein(t64(a[:, None]), t64(b[:, None])) == pytest.approx(
        scipy.stats.wasserstein_distance(a, b), rel=1e-10)
    with pytest.raises(ValueError, match="same shape"):
        empirical_wasserstein(t64(x), t64(y[:5]))


def test_mode_coverage_against_a_loop():
    rng = np.random.default_rng(2)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    # 60 points on mode 0, 15 on mode 1, 5 on mode 2, 20 far away
    pts = np.concatenate([rng.normal(centres[0], 0.1, (60, 2)), rng.normal(centres[1], 0.1,
                          (15, 2)), rng.normal(centres[2], 0.1, (5, 2)),
                          rng.uniform(10, 20, (20, 2))])
    result = mode_coverage(t64(pts), t64(centres), std=0.1)
    counts, good = np.zeros(3, int), 0
    for p in pts:
        d = [np.linalg.norm(p - c) for c in centres]
        if min(d) <= 0.3:
            good += 1
            counts[int(np.argmin(d))] += 1
    fair = len(pts) / 3
    assert result.counts.tolist() == counts.tolist()
    assert result.high_quality == pytest.approx(good / len(pts))
    assert result.modes == int((counts >= 0.2 * fair).sum()) == 2
    assert mode_coverage(t64(pts), t64(centres), 0.1, min_share=0.1).modes == 3


def test_the_true_toys_cover_every_mode_with_98_9_percent_high_quality():
    """The data itself: 1 - exp(-9/2) = 98.9 % of a 2-D Gaussian lies within 3 sigma."""
    for name, k in (("eight_gaussians", 8), ("grid25", 25)):
        result = toy_mode_coverage(load_toy(name, "test")[:2500], name)
        assert result.modes == k
        assert abs(result.high_quality - (1 - math.exp(-4.5))) < 3 * math.sqrt(
            0.011 * 0.989 / 2500)
    with pytest.raises(ValueError, match="not a mixture"):
        toy_mode_coverage(torch.zeros(3, 2), "two_moons")
    with pytest.raises(ValueError, match="coordinates"):
        mode_coverage(torch.zeros(3, 3), toy_density("grid25").means, 0.1)


# --------------------------------------------------------------------------------------
# the training code (Algorithm 1 with every switch)
# --------------------------------------------------------------------------------------

def _tiny(config: GANConfig, data_dim: int = 1, num_classes: int = 0) -> GAN:
    torch.manual_seed(0)
    return build_toy_gan(config, data_dim=data_dim, num_classes=num_classes)


@pytest.mark.parametrize("kind", ["minimax", "non_saturating"])
def test_the_generator_update_uses_the_configured_loss(kind):
    """Oracle: log(1 - D) and -log D written with torch's logsigmoid on the same samples."""
    from types import SimpleNamespace

    config = VARIANTS[kind].replace(latent_dim=1, hidden=8, layers=1)
    gan = _tiny(config)
    g_update = gan_updates(gan, config)[1]
    torch.manual_seed(1)
    loss = g_update.loss(gan, torch.randn(16, 1), SimpleNamespace(progress=0.0))
    torch.manual_seed(1)
    torch.randn(16, 1)  # the batch above
    logits = gan.discriminate(gan.generate(gan.sample_latent(16)))
    expected = (F.logsigmoid(-logits).mean() if kind == "minimax"
                else -F.logsigmoid(logits).mean())
    torch.testing.assert_close(loss, expected)


@pytest.mark.usefixtures("one_thread")  # tiny networks: more threads only contend (86 s -> s)
@pytest.mark.parametrize("variant", ["non_saturating", "wgan_gp"])
def test_a_short_run_moves_the_generator_onto_a_1d_gaussian(variant):
    """Oracle: the data's own mean and standard deviation (3 and 0.5); an untrained generator
    puts its samples near 0."""
    data = 3.0 + 0.5 * torch.randn(512, 1, generator=torch.Generator().manual_seed(0))
    config = VARIANTS[variant].replace(latent_dim=1, hidden=16, layers=2, lr=5e-3)
    gan = _tiny(config)
    assert abs(gan.sample(1000, torch.Generator().manual_seed(1)).mean().item()) < 1.5
    history = train_gan(gan, data, config, epochs=40, batch_size=64, seed=0, device="cpu")
    x = gan.sample(2000, torch.Generator().manual_seed(1))
    assert abs(x.mean().item() - 3.0) < 0.25
    assert 0.2 < x.std().item() < 0.9
    assert len(history.step["d.loss"]) == 40 * 8
    assert np.isfinite(history.step["d.estimate"]).all()


def test_train_gan_takes_a_loader_of_fresh_batches():
    """A ``DataLoader`` is used as it is: each of its batches is one step (``epochs * len``
    steps, the learning rate decayed to 0 over exactly those), and fresh draws of N(3, 0.5^2)
    every batch teach the generator the data's mean and spread (oracle: 3 and 0.5)."""
    from torch.utils.data import DataLoader, IterableDataset

    class Fresh(IterableDataset):
        def __init__(self):
            self.rng = torch.Generator().manual_seed(0)

        def __len__(self):
            return 8

        def __iter__(self):
            for _ in range(8):
                yield 3.0 + 0.5 * torch.randn(64, 1, generator=self.rng)

    config = VARIANTS["non_saturating"].replace(latent_dim=1, hidden=16, layers=2, lr=5e-3,
                                                lr_decay=True)
    gan = _tiny(config)
    history = train_gan(gan, DataLoader(Fresh(), batch_size=None), config, epochs=40,
                        batch_size=999, seed=0, device="cpu")
    assert len(history.step["d.loss"]) == 40 * 8
    x = gan.sample(2000, torch.Generator().manual_seed(1))
    assert abs(x.mean().item() - 3.0) < 0.25
    assert 0.2 < x.std().item() < 0.9


def test_n_critic_weight_clipping_and_learning_rate_decay():
    config = VARIANTS["wgan"].replace(latent_dim=1, hidden=8, layers=1, n_critic=3,
                                      weight_clip=0.01, lr_decay=True)
    gan = _tiny(config)
    updates = gan_updates(gan, config, total_steps=12)
    fit(gan, updates, torch.randn(48, 1), epochs=3, batch_size=12, seed=0, device="cpu")
    d_opt, g_opt = updates[0].optimizer, updates[1].optimizer
    steps = [d_opt.state[p]["step"].item() for p in gan.discriminator.parameters()]
    assert steps == [12] * len(steps)
    assert {g_opt.state[p]["step"].item() for p in gan.generator.parameters()} == {4}
    assert all(p.abs().max() <= 0.01 for p in gan.discriminator.parameters())
    assert d_opt.param_groups[0]["lr"] == 0.0 and g_opt.param_groups[0]["lr"] == 0.0
    with pytest.raises(ValueError, match="total_steps"):
        gan_updates(gan, config)


@pytest.mark.parametrize("switch", [dict(feature_matching=True), dict(minibatch_kernels=4),
                                    dict(historical_averaging=0.1), dict(real_label=0.9),
                                    dict(virtual_batch_norm=True), dict(instance_noise=0.5),
                                    dict(loss="minimax")])
def test_every_technique_trains_a_conditional_gan(switch):
    config = GANConfig(latent_dim=2, hidden=8, layers=1, **switch)
    gan = _tiny(config, data_dim=3, num_classes=2)
    before = [p.detach().clone() for p in gan.generator.parameters()]
    data = (torch.randn(40, 3), torch.arange(40) % 2)
    history = train_gan(gan, data, config, epochs=2, batch_size=20, seed=0, device="cpu")
    assert np.isfinite(history.step["g.loss"]).all() and len(history.step["g.loss"]) == 4
    assert any(not torch.equal(a, b) for a, b in zip(before, gan.generator.parameters(),
                                                     strict=True))


def test_gan_config_rejects_bad_switches():
    with pytest.raises(ValueError, match="loss"):
        GANConfig(loss="hinge")
    with pytest.raises(ValueError, match="weight_clip and gradient_penalty"):
        GANConfig(weight_clip=0.01)
    with pytest.raises(ValueError, match="label smoothing"):
        GANConfig(loss="wasserstein", real_label=0.9)
    with pytest.raises(ValueError, match="real_label"):
        GANConfig(real_label=1.5)
    with pytest.raises(TypeError, match="config"):
        build_toy_gan("wgan")
    with pytest.raises(ValueError, match="no discriminator"):
        gan_updates(GAN(MLPGenerator(2, 2), None, 2))
