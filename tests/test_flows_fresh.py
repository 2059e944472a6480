"""Fresh samples of a known density as training data (dgm_lab.flows.fresh).

Oracles: the closed-form moments and marginal CDF of the 5x5 grid of Gaussians (its
coordinates are independent mixtures of five Gaussians, N(2i, 0.1^2), i = -2..2), scipy's
Kolmogorov-Smirnov test, and plain tensor comparisons for "no batch repeats".
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch.utils.data import DataLoader

from dgm_lab.data import TOY_SPLITS, load_toy, toy_density
from dgm_lab.density import Gaussian
from dgm_lab.flows import negative_log_likelihood, real_nvp
from dgm_lab.flows.fresh import FreshSamples, fresh_loader
from dgm_lab.train import evaluate, fit

pytestmark = pytest.mark.usefixtures("one_thread")


def _passes(data: FreshSamples, n: int) -> list[list[torch.Tensor]]:
    loader = fresh_loader(data)
    return [list(loader) for _ in range(n)]


def test_every_batch_is_new_within_a_pass_and_across_passes():
    data = FreshSamples(toy_density("two_moons"), batch_size=64, batches=5, seed=0)
    first, second = _passes(data, 2)
    assert len(first) == len(second) == len(data) == 5
    batches = first + second
    assert all(b.shape == (64, 2) and b.dtype == torch.float32 for b in batches)
    for i, a in enumerate(batches):
        for b in batches[i + 1:]:
            assert not torch.isclose(a[:, None, :], b[None, :, :]).all(-1).any()  # no shared row


def test_the_same_seed_repeats_the_stream_whatever_else_draws():
    density = toy_density("rings")
    a = _passes(FreshSamples(density, 32, 3, seed=7), 2)
    torch.rand(100)  # the global random state moves; the dataset has its own generator
    b = _passes(FreshSamples(density, 32, 3, seed=7), 2)
    c = _passes(FreshSamples(density, 32, 3, seed=8), 1)
    assert all(torch.equal(x, y) for p, q in zip(a, b, strict=True)
               for x, y in zip(p, q, strict=True))
    assert not torch.equal(a[0][0], c[0][0])


def _grid_marginal_cdf(x):
    """The CDF of one coordinate of grid25: an equal mixture of N(2i, 0.1^2), i = -2..2."""
    return sum(stats.norm.cdf(x, loc=2.0 * i, scale=0.1) for i in range(-2, 3)) / 5


def test_the_draws_follow_the_density_moments_and_marginals():
    """Two passes of 40 x 500 points: the mean is 0 and each coordinate's variance is
    E[(2i)^2] + 0.1^2 = 8.01, within 4 standard errors; each coordinate passes a KS test
    against the closed-form marginal CDF (a wrong scale, shift or a dropped mode fails)."""
    data = FreshSamples(toy_density("grid25"), batch_size=500, batches=40, seed=0)
    x = torch.cat([b for p in _passes(data, 2) for b in p]).double()
    n = len(x)
    assert n == 40_000
    var = 8.01
    assert x.mean(0).abs().max().item() < 4 * math.sqrt(var / n)
    # Var of the sample variance ~ (E[x^4] - var^2) / n; E[(2i)^4] = 16 * 34 / 5 = 108.8 (+ tiny)
    fourth = 108.8 + 6 * 8.0 * 0.01 + 3 * 0.01**2
    assert (x.var(0) - var).abs().max().item() < 4 * math.sqrt((fourth - var**2) / n)
    for coordinate in range(2):
        assert stats.kstest(x[:, coordinate].numpy(), _grid_marginal_cdf).pvalue > 1e-3
    # the two coordinates are independent: their correlation is 0 within 4 standard errors
    assert abs(torch.corrcoef(x.T)[0, 1].item()) < 4 / math.sqrt(n)


def test_fit_trains_a_flow_on_fresh_batches():
    """Autograd stays on during training (a draw under no_grad held across the yield would
    switch it off: fit then refuses the loss), and a few dozen fresh steps improve the
    validation NLL of a small flow clearly."""
    torch.manual_seed(0)
    flow = real_nvp(2, n_layers=2, hidden=[16])
    val = load_toy("eight_gaussians", "val")
    before = evaluate(flow, negative_log_likelihood, val)
    data = FreshSamples(toy_density("eight_gaussians"), batch_size=128, batches=20, seed=0)
    history = fit(flow, negative_log_likelihood, fresh_loader(data), epochs=3, lr=1e-2,
                  val_data=val, seed=0, device="cpu", progress=False)
    assert len(history.train_loss) == 3
    assert torch.is_grad_enabled()
    assert history.val_loss[-1] < before - 0.3  # 3.87 -> 3.41 nats


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="density"):
        FreshSamples(torch.randn(10, 2), 8, 2)
    with pytest.raises(ValueError, match="batch_size"):
        FreshSamples(toy_density("rings"), 0, 2)
    with pytest.raises(ValueError, match="batches"):
        FreshSamples(toy_density("rings"), 8, 0)
    with pytest.raises(TypeError, match="seed"):
        FreshSamples(toy_density("rings"), 8, 2, seed=0.5)
    # the seeds of the fixed splits are refused: their streams replay points of the split
    for split, (_, seed) in TOY_SPLITS.items():
        with pytest.raises(ValueError, match=f"seed must not be {seed}: .*'{split}'"):
            FreshSamples(toy_density("rings"), 8, 2, seed=seed)
    density, stream = toy_density("eight_gaussians"), torch.Generator().manual_seed(1)
    replayed = {tuple(x) for _ in range(4) for x in density.sample(512, generator=stream).tolist()}
    assert len(replayed & {tuple(x) for x in load_toy("eight_gaussians").tolist()}) == 190
    with pytest.raises(TypeError, match="data"):
        fresh_loader(load_toy("rings"))
    # any fitted DensityModel is a source, not only the toys
    gaussian = Gaussian().fit(torch.randn(50, 3, dtype=torch.float64))
    loader = fresh_loader(FreshSamples(gaussian, 4, 2))
    assert isinstance(loader, DataLoader)
    assert [b.shape for b in loader] == [(4, 3), (4, 3)]
