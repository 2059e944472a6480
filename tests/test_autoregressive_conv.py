"""Chapter 6's convolutional autoregressive models (PixelCNN, gated PixelCNN, WaveNet).

Oracles: exact enumeration of small images and signals (the density sums to 1), autograd
Jacobians (masked and causal convolutions see only the past; the gated PixelCNN sees *all*
of it; the plain PixelCNN has a blind spot), F.conv1d / F.conv2d on hand-padded input, the
naive generation (the cached generation must draw exactly the same samples), chi-square tests
of samples against enumerated probabilities (scipy).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from ar_helpers import every_configuration, support
from ar_helpers import randomise as _randomise
from scipy import stats

from dgm_lab.autoregressive import (
    CausalConv1d,
    GatedPixelCNN,
    MaskedConv2d,
    PixelCNN,
    WaveNet,
    causal_conv1d,
    horizontal_mask,
    pixelcnn_mask,
    receptive_field,
    sine_waves,
    vertical_mask,
)
from dgm_lab.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")


def randomise(model: torch.nn.Module, scale: float = 0.5, seed: int = 0) -> torch.nn.Module:
    """Smaller random weights by default: deep convolution stacks saturate at scale 1."""
    return _randomise(model, scale, seed)


def raster_before(d: int) -> torch.Tensor:
    return torch.arange(d)[None, :] < torch.arange(d)[:, None]


# --------------------------------------------------------------------------------------
# masks and masked convolutions
# --------------------------------------------------------------------------------------

def test_masks_written_out_by_hand():
    assert pixelcnn_mask(3, "A").tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert pixelcnn_mask(3, "B").tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert pixelcnn_mask(5, "A").sum() == 12 and pixelcnn_mask(5, "B").sum() == 13
    assert vertical_mask(3, include_centre_row=False).tolist() == [[1, 1, 1], [0, 0, 0],
                                                                    [0, 0, 0]]
    assert vertical_mask(3, include_centre_row=True).tolist() == [[1, 1, 1], [1, 1, 1],
                                                                   [0, 0, 0]]
    assert horizontal_mask(5, include_centre=False).tolist() == [[1, 1, 0, 0, 0]]
    assert horizontal_mask(5, include_centre=True).tolist() == [[1, 1, 1, 0, 0]]


@pytest.mark.parametrize("mask_type, k", [("A", 3), ("B", 3), ("A", 5), ("B", 7)])
def test_one_masked_convolution_sees_exactly_the_unmasked_earlier_pixels(mask_type, k):
    """Autograd: output pixel (r, c) depends on input (r', c') exactly when (r', c') is in the
    kernel's window and before (r, c) in raster order (or is (r, c) itself, for mask B)."""
    conv = randomise(MaskedConv2d(1, 1, pixelcnn_mask(k, mask_type)).double(), 1.0)
    h, w = 6, 7
    got = support(lambda v: conv(v.reshape(1, 1, h, w)).flatten(), torch.rand(h * w).double())
    r, c = torch.arange(h * w) // w, torch.arange(h * w) % w
    window = ((r[:, None] - r[None, :]).abs() <= k // 2) & ((c[:, None] - c[None, :]).abs()
                                                            <= k // 2)
    index = torch.arange(h * w)
    before = index[None, :] < index[:, None] if mask_type == "A" else \
        index[None, :] <= index[:, None]
    assert torch.equal(got, window & before)


def test_masked_convolution_equals_conv2d_with_the_masked_kernel():
    """The cropped kernel and asymmetric padding compute the same as F.conv2d with the full
    k x k kernel times the mask and symmetric padding, dilated or not."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 8, generator=g, dtype=torch.float64)
    cases = ((pixelcnn_mask(5, "A"), 1), (vertical_mask(5, include_centre_row=False), 2),
             (horizontal_mask(3, include_centre=True), 1))
    for mask, dilation in cases:
        conv = randomise(MaskedConv2d(3, 4, mask, dilation=dilation).double(), 1.0)
        kh, kw = mask.shape
        full = torch.zeros(4, 3, kh, kw, dtype=torch.float64)
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        full[:, :, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = conv.weight
        expected = F.conv2d(x, full * mask, conv.conv.bias, padding=(dilation * (kh // 2),
                                                                     dilation * (kw // 2)),
                            dilation=dilation)
        torch.testing.assert_close(conv(x), expected)
        for r in (0, 4, 8):
            torch.testing.assert_close(conv.row(x, r), expected[:, :, r:r + 1])
        before = conv.weight.detach().clone()
        conv(x).sum().backward()
        assert torch.equal(conv.weight.detach(), before)  # the mask is never written in


# --------------------------------------------------------------------------------------
# PixelCNN and gated PixelCNN
# --------------------------------------------------------------------------------------

def test_pixelcnn_is_autoregressive_and_has_a_blind_spot():
    h, w = 6, 6
    model = randomise(PixelCNN((h, w), channels=6, n_blocks=4, first_kernel_size=3).double())
    got = support(lambda v: model.logits(v[None])[0], torch.rand(h * w).double())
    allowed = raster_before(h * w)
    assert not (got & ~allowed).any()  # never a later pixel, never itself
    # the blind spot: pixel (4, 2) never sees (3, 5), up and to the right beyond the kernel
    # reach, though it comes earlier in raster order
    assert allowed[4 * w + 2, 3 * w + 5] and not got[4 * w + 2, 3 * w + 5]
    assert (allowed & ~got).sum() > 10


@pytest.mark.parametrize("levels, k, layers", [(2, 3, 5), (2, 5, 3), (5, 5, 3)])
def test_gated_pixelcnn_sees_every_earlier_pixel_and_no_other(levels, k, layers):
    """No blind spot: with enough layers every earlier pixel reaches the output."""
    h, w = 5, 6
    model = randomise(GatedPixelCNN((h, w), levels=levels, channels=6, n_layers=layers,
                                    kernel_size=k).double())

    def outputs(v):  # the scaled grey level is the differentiable input channel
        out = model.logits(v[None])[0]
        return out if levels == 2 else out.sum(-1)

    # the union over three inputs: at one input a saturated unit can zero a path's gradient
    g = torch.Generator().manual_seed(0)
    xs = [torch.rand(h * w, generator=g).double() * (levels - 1) for _ in range(3)]
    got = torch.stack([support(outputs, x) for x in xs]).any(0)
    assert torch.equal(got, raster_before(h * w))


def test_gated_pixelcnn_reach_grows_with_depth():
    """Fewer layers than the image needs: the output sees only a bounded window."""
    model = randomise(GatedPixelCNN((6, 6), channels=4, n_layers=2, kernel_size=3).double())
    # the union over three seeded inputs: at one input a saturated unit can zero a path's
    # gradient (with an unseeded input the test failed now and then, by the order tests ran)
    g = torch.Generator().manual_seed(0)
    got = torch.stack([support(lambda v: model.logits(v[None])[0],
                               torch.rand(36, generator=g).double()) for _ in range(3)]).any(0)
    assert got[5 * 6 + 5, 4 * 6 + 5] and got[5 * 6 + 5, 3 * 6 + 4]  # two rows up
    assert not got[5 * 6 + 5, 2 * 6 + 5] and not got[5 * 6 + 5, 0]  # three rows up: not yet


IMAGE_MODELS = {  # name -> (build, D, levels)
    "PixelCNN": (lambda: PixelCNN((3, 4), channels=6, n_blocks=2, first_kernel_size=3), 12, 2),
    "PixelCNN-L3": (lambda: PixelCNN((2, 3), levels=3, channels=5, n_blocks=1,
                                     first_kernel_size=5), 6, 3),
    "Gated": (lambda: GatedPixelCNN((3, 4), channels=6, n_layers=3, kernel_size=3), 12, 2),
    "Gated-L4": (lambda: GatedPixelCNN((2, 2), levels=4, channels=5, n_layers=2,
                                       kernel_size=3), 4, 4),
    "WaveNet": (lambda: WaveNet(11, levels=2, channels=6, dilations=(1, 2, 4)), 11, 2),
    "WaveNet-L3": (lambda: WaveNet(6, levels=3, channels=5, dilations=(1, 2)), 6, 3),
}


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_convolutional_models_sum_to_one_over_every_configuration(name):
    build, d, levels = IMAGE_MODELS[name]
    model = randomise(build().double())
    lp = model.log_prob(every_configuration(d, levels))
    assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    assert lp.exp().std() > 1e-4


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_cached_generation_draws_what_the_naive_generation_draws(name):
    build, d, levels = IMAGE_MODELS[name]
    model = randomise(build().double())
    model.train()  # sampling switches dropout off and restores the mode
    fast = model.sample(30, generator=torch.Generator().manual_seed(5))
    slow = model.sample_naive(30, generator=torch.Generator().manual_seed(5))
    assert torch.equal(fast, slow) and model.training
    assert set(fast.unique().tolist()) <= set(range(levels))


@pytest.mark.parametrize("name", ["Gated", "WaveNet-L3"])
def test_samples_follow_the_enumerated_probabilities(name):
    build, d, levels = IMAGE_MODELS[name]
    model = randomise(build().double(), scale=0.4)
    samples = model.sample(20_000, generator=torch.Generator().manual_seed(0))
    probs = model.log_prob(every_configuration(d, levels)).detach().exp()
    index = (samples.long() * levels ** torch.arange(d - 1, -1, -1)).sum(1)
    counts = torch.bincount(index, minlength=levels ** d).double()
    expected = probs * len(samples)
    keep = expected > 5
    observed = torch.cat([counts[keep], counts[~keep].sum()[None]]).numpy()
    expect = torch.cat([expected[keep], expected[~keep].sum()[None]]).numpy()
    assert stats.chisquare(observed, expect * observed.sum() / expect.sum()).pvalue > 1e-3


# --------------------------------------------------------------------------------------
# WaveNet: causal and dilated convolutions
# --------------------------------------------------------------------------------------

def test_causal_conv1d_against_conv1d_on_a_hand_padded_signal():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 17, generator=g, dtype=torch.float64)
    weight = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(4, generator=g, dtype=torch.float64)
    for dilation in (1, 2, 5):
        padded = torch.cat([torch.zeros(3, 2, 2 * dilation, dtype=torch.float64), x], 2)
        expected = torch.stack([
            sum(weight[:, :, j] @ padded[:, :, t + j * dilation].T for j in range(3)).T + bias
            for t in range(17)], 2)
        torch.testing.assert_close(causal_conv1d(x, weight, bias, dilation), expected)
        layer = CausalConv1d(2, 4, 3, dilation=dilation).double()
        with torch.no_grad():
            layer.weight.copy_(weight), layer.bias.copy_(bias)
        torch.testing.assert_close(layer(x), expected)
        torch.testing.assert_close(layer.step(padded[:, :, -(2 * dilation + 1):]),
                                   expected[:, :, -1])


@pytest.mark.parametrize("dilations, kernel_size", [((1,), 2), ((1, 2, 4, 8), 2),
                                                    ((1, 3), 3), ((2, 2, 1), 2)])
def test_wavenet_output_sees_exactly_its_receptive_field(dilations, kernel_size):
    """Output t depends on x_{t-R} .. x_{t-1} and nothing else, R = 1 + sum (k-1) d."""
    length = 40
    model = randomise(WaveNet(length, levels=2, channels=5, dilations=dilations,
                              kernel_size=kernel_size).double())
    got = support(lambda v: model.logits(v[None])[0], torch.rand(length).double())
    r = model.receptive_field
    assert r == receptive_field(dilations, kernel_size) == 1 + sum((kernel_size - 1) * d
                                                                    for d in dilations)
    t = torch.arange(length)
    expected = (t[None, :] < t[:, None]) & (t[None, :] >= t[:, None] - r)
    assert torch.equal(got, expected)


def test_receptive_field_doubles_with_each_doubled_dilation():
    assert [receptive_field([2 ** i for i in range(n)]) for n in range(1, 8)] == \
        [2 ** n for n in range(1, 8)]
    assert receptive_field([1] * 7) == 8  # undilated: linear growth


def test_a_wavenet_learns_the_sine_waves():
    """A small WaveNet trained briefly beats the best independent model per time step (its
    entropy) on held-out signals."""
    train, val = sine_waves(256, 48, 8, seed=1), sine_waves(128, 48, 8, seed=2)
    counts = torch.stack([torch.bincount(train[:, t].long(), minlength=8) for t in range(48)])
    probs = (counts + 1) / (counts + 1).sum(1, keepdim=True)
    independent = -probs.log().gather(1, val.long().T).sum(0).mean().item()
    model = WaveNet(48, levels=8, channels=16, dilations=(1, 2, 4, 8))
    fit(model, lambda m, x: -m.log_prob(x).mean(), train, epochs=15, batch_size=32, lr=1e-2,
        seed=0, device="cpu", progress=False)
    model.eval()
    assert -model.log_prob(val).mean().item() < independent - 15


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda: pixelcnn_mask(4, "A"), ValueError, "odd"),
    (lambda: pixelcnn_mask(3, "C"), ValueError, "mask_type"),
    (lambda: MaskedConv2d(1, 1, torch.zeros(3, 3)), ValueError, "at least one 1"),
    (lambda: MaskedConv2d(1, 1, torch.ones(3)), TypeError, "2-D"),
    (lambda: MaskedConv2d(1, 1, torch.full((3, 3), 0.5)), ValueError, "zeros and ones"),
    (lambda: PixelCNN((8,)), ValueError, "image_shape"),
    (lambda: PixelCNN((4, 4), dropout=1.0), ValueError, "dropout"),
    (lambda: PixelCNN((2, 2)).log_prob(torch.full((1, 4), 2.0)), ValueError, "binary"),
    (lambda: GatedPixelCNN((2, 2), levels=3).log_prob(torch.full((1, 4), 0.5)), ValueError,
     "integer levels 0..2"),
    (lambda: GatedPixelCNN((2, 2), kernel_size=1), ValueError, "at least 3"),
    (lambda: GatedPixelCNN((2, 2)).log_prob(torch.zeros(1, 5)), ValueError, "features"),
    (lambda: WaveNet(8, dilations=()), ValueError, "dilations"),
    (lambda: WaveNet(8, kernel_size=1), ValueError, "kernel_size"),
    (lambda: causal_conv1d(torch.zeros(1, 2, 5), torch.zeros(1, 3, 2)), ValueError, "weight"),
    (lambda: causal_conv1d(torch.zeros(1, 2, 5), torch.zeros(1, 2, 2), torch.zeros(2)),
     ValueError, "bias"),
    (lambda: causal_conv1d(torch.zeros(2, 5), torch.zeros(1, 2, 2)), ValueError, "shape"),
    (lambda: causal_conv1d(torch.zeros(1, 2, 5), torch.zeros(1, 2, 2), None, 0), ValueError,
     "dilation"),
    (lambda: receptive_field([1, 0]), ValueError, "dilation"),
    (lambda: sine_waves(0), ValueError, "n"),
])
def test_bad_input_is_refused_with_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.cuda
def test_convolutional_models_on_cuda_match_the_cpu():
    for build, d, levels in IMAGE_MODELS.values():
        cpu = randomise(build().double())
        gpu = randomise(build().double()).to("cuda")
        x = every_configuration(d, levels)[:50]
        torch.testing.assert_close(gpu.log_prob(x).cpu(), cpu.log_prob(x))
        g = torch.Generator().manual_seed(0)
        assert torch.equal(gpu.sample(5, generator=g).cpu(),
                           cpu.sample(5, generator=torch.Generator().manual_seed(0)))
