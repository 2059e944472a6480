"""Flows on integer images: dequantisation and the bound on log P(k), against exact bin
probabilities (a flow whose density factorises has closed-form bin masses, from the normal
CDF of torch.distributions), autograd Jacobians and Monte Carlo identities."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from dgm_lab.flows import (
    Chain,
    DequantizedFlow,
    ElementwiseAffine,
    Flow,
    Logit,
    VariationalDequantizer,
    uniform_dequantize,
)

pytestmark = pytest.mark.usefixtures("one_thread")


LEVELS = 4


def logit_normal_flow(d: int = 2, seed: int = 0) -> Flow:
    """z_j = logit(v_j) e^{s_j} + b_j ~ N(0, 1): independent coordinates, closed-form bins.
    (Moderate parameters: every bin keeps a fair share of mass, so that 2,000 importance
    samples estimate it well.)"""
    g = torch.Generator().manual_seed(seed)
    affine = ElementwiseAffine(d)
    with torch.no_grad():
        affine.log_scale.copy_(0.3 * torch.randn(d, generator=g))
        affine.shift.copy_(0.5 * torch.randn(d, generator=g))
    return Flow(Chain([Logit(d, alpha=0.0), affine]), d).double()


def exact_log_prob(flow: Flow, k: torch.Tensor, levels: int) -> torch.Tensor:
    """log P(k) = sum_j log(Phi(z(hi_j)) - Phi(z(lo_j))): the flow's mass on each bin."""
    affine = flow.transform.transforms[1]
    lo, hi = k.double() / levels, (k.double() + 1) / levels

    def z(v):
        return torch.logit(v) * affine.log_scale.exp() + affine.shift

    normal = torch.distributions.Normal(0.0, 1.0)
    mass = normal.cdf(z(hi)) - normal.cdf(z(lo))
    return mass.log().sum(1)


def all_images(d: int = 2, levels: int = LEVELS) -> torch.Tensor:
    return torch.cartesian_prod(*[torch.arange(levels)] * d)


def test_uniform_dequantization_lands_in_the_bin_and_is_uniform_there():
    k = torch.randint(0, 17, (2000, 8), generator=torch.Generator().manual_seed(0))
    x = uniform_dequantize(k, 17, generator=torch.Generator().manual_seed(1))
    assert torch.equal((x * 17).floor().long(), k)
    u = (x * 17 - k).flatten().double().numpy()
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    again = uniform_dequantize(k, 17, generator=torch.Generator().manual_seed(1))
    fresh = uniform_dequantize(k, 17, generator=torch.Generator().manual_seed(2))
    assert torch.equal(x, again) and not torch.equal(x, fresh)


def test_the_exact_bin_masses_of_the_oracle_sum_to_one():
    flow = logit_normal_flow()
    total = torch.logsumexp(exact_log_prob(flow, all_images(), LEVELS), 0)
    assert abs(total.item()) < 1e-10


def test_uniform_bound_is_below_log_p_and_importance_sampling_closes_the_gap():
    flow = logit_normal_flow()
    model = DequantizedFlow(flow, LEVELS)
    k = all_images()
    exact = exact_log_prob(flow, k, LEVELS)
    g = torch.Generator().manual_seed(0)
    one = torch.stack([model.log_prob_bound(k, 1, generator=g) for _ in range(400)])
    mean, se = one.mean(0), one.std(0) / math.sqrt(400)
    # Jensen: E log w <= log E w = log P(k), for every image (beyond Monte Carlo error)
    assert (mean <= exact + 4 * se).all()
    assert (exact - mean).mean() > 0.02  # and the gap is real for this curved density
    iw = model.log_prob_bound(k, 2000, generator=g)
    # the importance-weighted estimate is within Monte Carlo error of log P(k): its standard
    # error is about std(w) / (mean(w) sqrt(S)), from weights drawn separately
    w = model.log_weight(k.repeat_interleave(4000, 0), g).view(len(k), 4000).exp()
    se = w.std(1) / (w.mean(1) * math.sqrt(2000))
    assert ((iw - exact).abs() < 4 * se + 1e-3).all()
    assert (iw > mean).all()
    # the mean of the weights themselves is unbiased for P(k)
    assert ((w.mean(1).log() - exact).abs() < 4 * se / math.sqrt(2) + 1e-3).all()


def test_variational_dequantizer_log_q_is_the_change_of_variables_of_its_map():
    torch.manual_seed(0)
    q = VariationalDequantizer(3, LEVELS, [16]).double()
    with torch.no_grad():
        for p in q.parameters():
            p.add_(0.3 * torch.randn_like(p))
    k = torch.tensor([[0, 3, 1], [2, 2, 0]])
    eps = torch.randn(2, 3, dtype=torch.float64)
    u, logdet = q.transform(eps, k)
    assert ((u > 0) & (u < 1)).all()
    for i in range(2):
        def one(e, image=k[i:i + 1]):
            return q.transform(e[None], image)[0][0]
        jac = torch.autograd.functional.jacobian(one, eps[i])
        torch.testing.assert_close(logdet[i], torch.linalg.slogdet(jac)[1])
    # log_prob runs the map backwards and gives the same density (logistic base noise)
    logistic = (torch.nn.functional.logsigmoid(eps) + torch.nn.functional.logsigmoid(-eps)).sum(1)
    torch.testing.assert_close(q.log_prob(u, k), logistic - logdet)
    # a fresh dequantizer is uniform dequantization: log q = 0 everywhere
    fresh = VariationalDequantizer(3, LEVELS, [16]).double()
    u0, log_q0 = fresh.sample(k.repeat(100, 1), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(log_q0, torch.zeros(200, dtype=torch.float64), atol=1e-6, rtol=0)
    assert stats.kstest(u0.detach().flatten().numpy(), "uniform").pvalue > 1e-3
    # q is a density on the unit cube: it integrates to 1. Its density may grow without
    # bound (integrably) at the edges of the cube, so integrate in logit coordinates,
    # u = sigmoid(h), du = sigmoid(h) sigmoid(-h) dh, with the midpoint rule on [-30, 30]^2
    q2 = VariationalDequantizer(2, LEVELS, [16]).double()
    with torch.no_grad():
        for p in q2.parameters():
            p.add_(0.3 * torch.randn_like(p))
    n, width = 600, 30.0
    mid = (torch.arange(n, dtype=torch.float64) + 0.5) / n * 2 * width - width
    h = torch.cartesian_prod(mid, mid)
    jacobian = (torch.nn.functional.logsigmoid(h) + torch.nn.functional.logsigmoid(-h)).sum(1)
    for image in ([0, 3], [2, 1]):
        with torch.no_grad():
            log_q = q2.log_prob(torch.sigmoid(h), torch.tensor([image]).expand(len(h), 2))
        mass = (log_q + jacobian).exp().sum() * (2 * width / n) ** 2
        assert abs(mass.item() - 1) < 0.01


def test_variational_bound_is_below_log_p_and_its_gradient_reaches_both_models():
    flow = logit_normal_flow(seed=1)
    torch.manual_seed(1)
    q = VariationalDequantizer(2, LEVELS, [16]).double()
    with torch.no_grad():  # a q away from uniform, but near it: weights of moderate spread
        for p in q.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model = DequantizedFlow(flow, LEVELS, q)
    k = all_images()
    exact = exact_log_prob(flow, k, LEVELS)
    g = torch.Generator().manual_seed(0)
    one = torch.stack([model.elbo(k, g).detach() for _ in range(400)])
    assert (one.mean(0) <= exact + 4 * one.std(0) / 20).all()
    iw = model.log_prob_bound(k, 2000, generator=g)
    w = model.log_weight(k.repeat_interleave(4000, 0), g).view(len(k), 4000).exp()
    se = w.std(1) / (w.mean(1) * math.sqrt(2000))
    assert ((iw - exact).abs() < 4 * se + 1e-3).all() and (iw > one.mean(0)).all()
    (-model.elbo(k, g).mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_the_density_of_noisy_pixels_is_not_a_likelihood_of_the_pixels():
    """Scored on the unit cube, without its D log L, the flow 'beats' the exact entropy of its
    own integer images, which no probability of k can do; the bound does not."""
    flow = logit_normal_flow()
    model = DequantizedFlow(flow, LEVELS)
    k = all_images()
    exact = exact_log_prob(flow, k, LEVELS)
    weight = exact.exp()  # images drawn from the model itself: E log P(k) = -H(P)
    g = torch.Generator().manual_seed(0)
    x = uniform_dequantize(k.repeat(400, 1), LEVELS, generator=g, dtype=torch.float64)
    printed = flow.log_prob(x).view(400, len(k)).mean(0)
    entropy = -(weight * exact).sum()
    assert -(weight * printed).sum() < entropy - 1.0
    bound = model.log_prob_bound(k, 1, generator=g)
    assert -(weight * bound).sum() > entropy


def test_bad_input_gets_a_clear_error():
    flow = logit_normal_flow()
    model = DequantizedFlow(flow, LEVELS)
    good = torch.tensor([[0, 1]])
    with pytest.raises(TypeError, match="integer levels"):
        model.log_prob_bound(good.double())
    with pytest.raises(ValueError, match=r"0\.\.3"):
        model.log_prob_bound(torch.tensor([[0, 4]]))
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        model.log_prob_bound(torch.tensor([[0, 1, 2]]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model.log_prob_bound([[0, 1]])
    with pytest.raises(ValueError, match="n_samples"):
        model.log_prob_bound(good, 0)
    with pytest.raises(TypeError, match="Flow"):
        DequantizedFlow(torch.nn.Linear(2, 2), LEVELS)
    with pytest.raises(ValueError, match="features and levels"):
        DequantizedFlow(flow, LEVELS, VariationalDequantizer(2, 5))
    with pytest.raises(ValueError, match="levels"):
        uniform_dequantize(good, 1)
    with pytest.raises(ValueError, match=r"0\.\.16"):
        uniform_dequantize(torch.tensor([[-1, 0]]), 17)
