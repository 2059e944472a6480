"""Tests of dgm_lab.autoencoders against independent oracles.

Oracles: PyTorch's own convolution layers (the output sizes), scikit-learn (``roc_auc_score``,
``NearestNeighbors``), scipy (Mahalanobis distances, a Kolmogorov-Smirnov test of the
corruption noise, binomial bounds on masking), closed forms (a one-layer autoencoder written
out, the squared errors), and learned bars on held-out data. The chapter's heavy bars (the
denoising and anomaly-detection figures) are measured by ``benchmarks/ch05_results.py``; the
end of this file re-checks its committed results against the committed checkpoints.
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
from scipy.spatial.distance import mahalanobis
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors
from torch import nn

from dgm_lab import results
from dgm_lab.autoencoders import (
    ConvAutoencoder,
    MLPAutoencoder,
    blob_and_dot_images,
    conv_output_size,
    conv_transpose_matrix,
    conv_transpose_output_size,
    corrupt,
    denoising_loss,
    knn_distance_score,
    mahalanobis_score,
    reconstruction_error,
    reconstruction_loss,
    roc_auc,
)
from dgm_lab.data import load_digits
from dgm_lab.train import fit

ROOT = Path(__file__).resolve().parents[1]


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


# --------------------------------------------------------------------------------------
# convolution arithmetic
# --------------------------------------------------------------------------------------

GRID = [(size, k, s, p, d) for size in (1, 5, 8, 13) for k in (1, 2, 3, 4) for s in (1, 2, 3)
        for p in (0, 1, 2) for d in (1, 2)]


@pytest.mark.parametrize("size, k, s, p, d", GRID)
def test_conv_sizes_match_torch_layers(size, k, s, p, d):
    x = torch.zeros(1, 1, size)
    if size + 2 * p >= d * (k - 1) + 1:
        out = nn.Conv1d(1, 1, k, stride=s, padding=p, dilation=d)(x).shape[-1]
        assert conv_output_size(size, k, s, p, d) == out
    else:
        with pytest.raises(ValueError, match="kernel spans"):
            conv_output_size(size, k, s, p, d)
    for a in range(max(s, d)):
        expected = (size - 1) * s - 2 * p + d * (k - 1) + a + 1
        if expected < 1:
            with pytest.raises(ValueError, match="removes the whole output"):
                conv_transpose_output_size(size, k, s, p, a, d)
            continue
        layer = nn.ConvTranspose1d(1, 1, k, stride=s, padding=p, output_padding=a, dilation=d)
        assert conv_transpose_output_size(size, k, s, p, a, d) == layer(x).shape[-1]


def test_conv_transpose_inverts_the_shapes_of_a_strided_convolution():
    for size in range(4, 20):
        down = conv_output_size(size, 3, stride=2, padding=1)
        back = [conv_transpose_output_size(down, 3, 2, 1, a) for a in (0, 1)]
        assert size in back  # output_padding picks which of the two input sizes to produce


@pytest.mark.parametrize("size, k, s, p", [(1, 1, 1, 0), (4, 4, 2, 1), (5, 3, 2, 0), (7, 5, 3, 2),
                                            (3, 2, 4, 1)])
def test_conv_transpose_matrix_is_what_torch_computes_and_the_transposed_convolution(size, k, s,
                                                                                     p):
    w = torch.randn(k, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
    matrix = conv_transpose_matrix(size, w, s, p)
    eye = torch.eye(size, dtype=torch.float64)[:, None, :]            # one input per basis vector
    columns = torch.nn.functional.conv_transpose1d(eye, w[None, None], stride=s, padding=p)
    torch.testing.assert_close(matrix, columns[:, 0, :].T)
    # the convolution with the same kernel maps back: its matrix is the transpose
    eye_out = torch.eye(matrix.shape[0], dtype=torch.float64)[:, None, :]
    conv = torch.nn.functional.conv1d(eye_out, w[None, None], stride=s, padding=p)[:, 0, :]
    if conv.shape[1] == size:
        torch.testing.assert_close(matrix.T, conv.T)
    with pytest.raises(ValueError, match=r"weight must have shape \[n\]"):
        conv_transpose_matrix(size, w[None], s, p)


def test_conv_sizes_bad_input():
    with pytest.raises(ValueError, match="output_padding must be smaller than stride"):
        conv_transpose_output_size(4, 3, stride=2, output_padding=2)
    with pytest.raises(TypeError, match="kernel_size must be an integer"):
        conv_output_size(8, 2.0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        conv_transpose_output_size(8, 3, padding=-1)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        conv_output_size(8, 3, stride=0)


# --------------------------------------------------------------------------------------
# architectures
# --------------------------------------------------------------------------------------

def test_one_layer_mlp_autoencoder_is_the_formula():
    """hidden_sizes=(): z = W_e x + b_e, x_hat = sigmoid(W_d z + b_d), written out."""
    torch.manual_seed(0)
    ae = MLPAutoencoder(6, 2, hidden_sizes=()).double()
    x = torch.rand(5, 6, dtype=torch.float64)
    (we, be), (wd, bd) = [(m.weight, m.bias) for m in (ae.encoder[0], ae.decoder[0])]
    z = x @ we.T + be
    torch.testing.assert_close(ae.encode(x), z)
    torch.testing.assert_close(ae(x), torch.sigmoid(z @ wd.T + bd))
    linear = MLPAutoencoder(6, 2, hidden_sizes=(), output="linear")
    assert not any(isinstance(m, nn.Sigmoid) for m in linear.decoder)


def test_mlp_autoencoder_shapes_gradients_and_checks():
    ae = MLPAutoencoder(64, 3, hidden_sizes=(32, 16))
    x = torch.rand(7, 64)
    assert ae.encode(x).shape == (7, 3) and ae(x).shape == (7, 64)
    assert ae.decode(torch.zeros(2, 3)).shape == (2, 64)
    reconstruction_loss(ae, x).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ae.parameters())
    assert ae(x.double()).dtype == torch.float32  # input follows the model's dtype
    with pytest.raises(ValueError, match="x has 63 features but this MLPAutoencoder expects 64"):
        ae(torch.rand(2, 63))
    with pytest.raises(ValueError, match="z has 2 features"):
        ae.decode(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="unknown output"):
        MLPAutoencoder(4, 2, output="tanh")
    with pytest.raises(ValueError, match="each hidden size must be >= 1"):
        MLPAutoencoder(4, 2, hidden_sizes=(0,))


@pytest.mark.parametrize("upsampling", ["transposed", "unpool"])
def test_conv_autoencoder_shapes_and_layouts(upsampling):
    ae = ConvAutoencoder(8, 5, channels=(4, 6), upsampling=upsampling)
    flat, images = torch.rand(3, 64), torch.rand(3, 1, 8, 8)
    assert ae(flat).shape == (3, 64) and ae(images).shape == (3, 1, 8, 8)
    torch.testing.assert_close(ae(flat), ae(flat.reshape(3, 1, 8, 8)).flatten(1))
    z, switches = ae.encode(images, return_switches=True)
    assert z.shape == (3, 5) and [s.shape for s in switches] == [(3, 4, 4, 4), (3, 6, 2, 2)]
    assert ae.grid == 2
    reconstruction_loss(ae, flat).backward()
    assert all(p.grad is not None for p in ae.parameters())
    with pytest.raises(ValueError, match=r"shape \[n, 64\] or \[n, 1, 8, 8\]"):
        ae(torch.rand(3, 1, 4, 4))


def test_conv_autoencoder_unpooling_puts_values_back_at_the_switches():
    """Max-unpooling: the decoder's first feature maps are zero except where the encoder's
    pooling found its maxima, so two images with the same code but different switches decode
    differently, and a code alone cannot be decoded."""
    ae = ConvAutoencoder(8, 4, channels=(3,), upsampling="unpool")
    x = torch.rand(2, 64)
    z, switches = ae.encode(x, return_switches=True)
    unpooled = {}
    ae.unpool.register_forward_hook(lambda m, args, out: unpooled.setdefault("out", out))
    ae.decode(z, switches)
    out = unpooled["out"]  # [2, 3, 8, 8]
    nonzero = out.flatten(2) != 0
    positions = torch.zeros_like(nonzero)
    positions.scatter_(2, switches[0].flatten(2), True)
    assert not (nonzero & ~positions).any()  # nothing outside the switches
    same_code = ae.decode(z[:1].repeat(2, 1), switches)  # one code, the switches of two images
    assert (same_code[0] - same_code[1]).abs().max() > 1e-5
    with pytest.raises(ValueError, match="needs the switches"):
        ae.decode(z)
    with pytest.raises(ValueError, match="only used with upsampling='unpool'"):
        ConvAutoencoder(8, 4, channels=(3,)).decode(z, switches)
    with pytest.raises(ValueError, match="divisible by 2 \\*\\* len\\(channels\\) = 8"):
        ConvAutoencoder(12, 4, channels=(3, 3, 3))


def test_conv_autoencoder_learns_a_batch(one_thread):
    """A learned bar: trained on 16 digits it reconstructs them better than their mean does
    (the chapter's trained convolutional autoencoder is checked through its checkpoint)."""
    x = load_digits("train")[0][:16]
    torch.manual_seed(0)
    ae = ConvAutoencoder(8, 8, channels=(8, 16))
    fit(ae, reconstruction_loss, x, epochs=100, batch_size=16, lr=1e-2, seed=0, device="cpu",
        progress=False)
    baseline = (x - x.mean(0)).square().sum(1).mean()
    assert reconstruction_error(ae, x).mean() < 0.6 * baseline


# --------------------------------------------------------------------------------------
# losses and corruption
# --------------------------------------------------------------------------------------

def test_reconstruction_loss_and_error_are_the_squared_errors():
    torch.manual_seed(1)
    ae = MLPAutoencoder(10, 2, hidden_sizes=(8,))
    x = torch.rand(33, 10)
    manual = ((ae(x) - x) ** 2).sum(1)
    torch.testing.assert_close(reconstruction_loss(ae, x), manual.mean())
    ae.train()
    errors = reconstruction_error(ae, x, batch_size=5)  # batches agree with one pass
    torch.testing.assert_close(errors, manual.detach())
    assert ae.training and not errors.requires_grad  # the mode is restored, no graph kept
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        reconstruction_error(ae, x, batch_size=0)


def test_gaussian_corruption_is_clipped_noise_of_the_given_level():
    x = torch.full((4000, 5), 0.5, dtype=torch.float64)
    noise = torch.randn(4000, 5, generator=torch.Generator().manual_seed(0),
                        dtype=torch.float64)
    torch.testing.assert_close(corrupt(x, 0.3, noise=noise), (x + 0.3 * noise).clamp(0, 1))
    raw = corrupt(x, 0.3, generator=torch.Generator().manual_seed(1), clip=False)
    assert scipy.stats.kstest(((raw - 0.5) / 0.3).flatten().numpy(), "norm").pvalue > 1e-3
    clipped = corrupt(x, 0.3, generator=torch.Generator().manual_seed(1))
    assert clipped.min() >= 0 and clipped.max() <= 1
    torch.testing.assert_close(clipped, raw.clamp(0, 1))  # the same draws from the same seed
    torch.testing.assert_close(corrupt(x, 0.0), x)


def test_masking_corruption_zeroes_a_binomial_share():
    x = torch.rand(200, 50) + 0.5
    masked = corrupt(x, 0.25, kind="masking", generator=torch.Generator().manual_seed(0))
    zeroed = int((masked == 0).sum())
    lo, hi = scipy.stats.binom(x.numel(), 0.25).interval(0.9999)
    assert lo <= zeroed <= hi
    kept = masked != 0
    torch.testing.assert_close(masked[kept], x[kept])
    u = torch.rand(200, 50, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(corrupt(x, 0.25, kind="masking", noise=u),
                               torch.where(u < 0.25, 0.0, x))


def test_corrupt_bad_input():
    x = torch.rand(3, 4)
    with pytest.raises(ValueError, match="level is a probability"):
        corrupt(x, 1.5, kind="masking")
    with pytest.raises(ValueError, match="level must be a finite number >= 0"):
        corrupt(x, -0.1)
    with pytest.raises(ValueError, match=r"noise must have the shape of x \(3, 4\)"):
        corrupt(x, 0.1, noise=torch.zeros(3, 5))
    with pytest.raises(ValueError, match="unknown kind"):
        corrupt(x, 0.1, kind="salt")
    with pytest.raises(TypeError, match="clip must be True or False"):
        corrupt(x, 0.1, clip=1)


def test_denoising_loss_targets_the_clean_input():
    """A model that returns its input scores ||x_tilde - x||^2 (not 0): the target is clean."""
    x = torch.rand(20, 6)
    noise = torch.randn(20, 6, generator=torch.Generator().manual_seed(0))

    class Identity(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def forward(self, v):
            return v * self.w

    noisy = (x + 0.4 * noise).clamp(0, 1)
    expected = (noisy - x).square().sum(1).mean()
    torch.testing.assert_close(denoising_loss(Identity(), x, 0.4, noise=noise), expected)
    assert expected > 0.1
    ae = MLPAutoencoder(6, 2, hidden_sizes=())
    torch.testing.assert_close(denoising_loss(ae, x, 0.4, noise=noise),
                               (ae(noisy) - x).square().sum(1).mean())


# --------------------------------------------------------------------------------------
# anomaly scores and the ROC AUC
# --------------------------------------------------------------------------------------

def test_knn_distance_score_matches_sklearn():
    r = np.random.default_rng(0)
    reference, x = r.normal(size=(200, 3)), r.normal(size=(30, 3)) * 2
    for k in (1, 7):
        dist, _ = NearestNeighbors(n_neighbors=k).fit(reference).kneighbors(x)
        np.testing.assert_allclose(knn_distance_score(t(x), t(reference), k).numpy(),
                                   dist.mean(1), rtol=1e-10)
    with pytest.raises(ValueError, match="k=201 is larger than the number of reference"):
        knn_distance_score(t(x), t(reference), 201)
    with pytest.raises(ValueError, match="x has 2 features but reference has 3"):
        knn_distance_score(torch.zeros(2, 2), t(reference))


def test_mahalanobis_score_matches_scipy():
    r = np.random.default_rng(1)
    reference = r.normal(size=(300, 4)) @ r.normal(size=(4, 4)) + 2
    x = r.normal(size=(20, 4)) * 3
    inverse = np.linalg.inv(np.cov(reference.T, bias=True))
    expected = [mahalanobis(v, reference.mean(0), inverse) ** 2 for v in x]
    np.testing.assert_allclose(mahalanobis_score(t(x), t(reference)).numpy(), expected,
                               rtol=1e-9)
    flat = np.hstack([reference[:, :1], reference[:, :1]])  # a direction without spread
    with pytest.raises(ValueError, match="covariance of reference is singular"):
        mahalanobis_score(t(x[:, :2]), t(flat))
    assert torch.isfinite(mahalanobis_score(t(x[:, :2]), t(flat), reg_covar=1e-3)).all()


@pytest.mark.parametrize("seed", range(4))
def test_roc_auc_matches_sklearn(seed):
    r = np.random.default_rng(seed)
    n = int(r.integers(5, 300))
    labels = r.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = np.round(r.normal(size=n) + labels * r.uniform(0, 2), 1)  # rounded: many ties
    assert roc_auc(t(scores), torch.from_numpy(labels)) == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-12)
    assert roc_auc(t(scores).float(), torch.from_numpy(labels).bool()) == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-6)


def test_roc_auc_extremes_and_bad_input():
    y = torch.tensor([0, 0, 1, 1])
    assert roc_auc(torch.tensor([0.1, 0.2, 0.3, 0.4]), y) == 1.0
    assert roc_auc(torch.tensor([0.4, 0.3, 0.2, 0.1]), y) == 0.0
    assert roc_auc(torch.ones(4), y) == 0.5
    with pytest.raises(ValueError, match="both anomalies"):
        roc_auc(torch.rand(3), torch.ones(3))
    with pytest.raises(ValueError, match="0 \\(normal\\) or 1"):
        roc_auc(torch.rand(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="same length"):
        roc_auc(torch.rand(3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        roc_auc(torch.tensor([0.1, math.nan]), torch.tensor([0, 1]))


# --------------------------------------------------------------------------------------
# the images with a blob and a dot
# --------------------------------------------------------------------------------------

def test_blob_and_dot_images():
    images, blobs, dots = blob_and_dot_images(300, size=16,
                                              generator=torch.Generator().manual_seed(0))
    assert images.shape == blobs.shape == dots.shape == (300, 256)
    assert dots.dtype == torch.bool and (dots.sum(1) == 1).all()
    assert (images[dots] == 1).all() and torch.equal(images[~dots], blobs[~dots])
    assert blobs.max() <= 0.8 + 1e-6 and blobs.max(1).values.min() > 0.6
    centre = blobs.argmax(1)
    rows, cols = centre // 16, centre % 16
    assert rows.min() >= 3 and rows.max() <= 12 and cols.min() >= 3 and cols.max() <= 12
    again, _, _ = blob_and_dot_images(300, size=16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(images, again)
    # the dot carries almost none of the energy of an image: why squared error ignores it
    assert (blobs.square().sum(1) > 5 * (1 - blobs[dots]) ** 2).all()
    with pytest.raises(ValueError, match="size must be >= 4"):
        blob_and_dot_images(3, size=2)


# --------------------------------------------------------------------------------------
# learned bars: a fresh small training, then the committed results of chapter 5
# --------------------------------------------------------------------------------------

def test_mlp_autoencoder_learns_the_digits(one_thread):
    """Trained through fit on the training digits, an 8-dimensional code reconstructs the
    held-out test digits with less than half the squared error of the mean image."""
    x, _ = load_digits("train")
    x_test, _ = load_digits("test")
    torch.manual_seed(0)
    ae = MLPAutoencoder(64, 8, hidden_sizes=(64,))
    fit(ae, reconstruction_loss, x, epochs=25, batch_size=64, lr=3e-3, seed=0, device="cpu",
        progress=False)
    baseline = (x_test - x.mean(0)).square().sum(1).mean()
    assert reconstruction_error(ae, x_test).mean() < 0.5 * baseline


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_committed_chapter_5_results_meet_the_bars_and_agree_with_the_checkpoints(one_thread):
    """The committed figures of benchmarks/ch05_results.py pass the issue's bars, and a cheap
    subset recomputed from the committed checkpoints (two held-out classes, the denoising
    figures) agrees with them; scikit-learn's roc_auc_score is the oracle of the metric."""
    ch05 = _script("ch05_results")
    committed = {r.key: r.value for r in results.load(5)}
    aucs = [committed[(f"ae-without-{c}", "digits-float", "test", "auc-reconstruction")]
            for c in range(10)]
    assert np.mean(aucs) >= 0.90
    assert committed[("ae-anomaly-mean", "digits-float", "test", "auc-reconstruction")] == \
        pytest.approx(np.mean(aucs))
    dae = committed[("dae", "digits-float", "test", "mse-reduction")]
    assert dae >= 0.5
    for held_out in (1, 8):
        model = ch05.load_model(f"ch05_ae_without_{held_out}")
        scores, labels = ch05.anomaly_scores(model, held_out)
        assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
        assert roc_auc(scores, labels) == pytest.approx(
            committed[(f"ae-without-{held_out}", "digits-float", "test", "auc-reconstruction")],
            abs=1e-6)
    noisy, denoised = ch05.denoising_figures(ch05.load_model("ch05_dae"))
    assert 1 - denoised / noisy == pytest.approx(dae, abs=1e-6)


@pytest.mark.cuda
def test_autoencoders_on_cuda_match_the_cpu():
    torch.manual_seed(0)
    for ae in (MLPAutoencoder(64, 4), ConvAutoencoder(8, 4, channels=(4, 8)),
               ConvAutoencoder(8, 4, channels=(4,), upsampling="unpool")):
        ae = ae.double()
        x = torch.rand(6, 64, dtype=torch.float64)
        cpu = ae(x)
        gpu = ae.cuda()(x)  # CPU input is moved to the model's device
        assert gpu.device.type == "cuda"
        np.testing.assert_allclose(gpu.detach().cpu().numpy(), cpu.detach().numpy(), atol=1e-9)
    scores = torch.rand(50, device="cuda")
    labels = (torch.arange(50, device="cuda") % 2)
    assert roc_auc(scores, labels) == pytest.approx(
        roc_auc_score(labels.cpu().numpy(), scores.cpu().numpy()))
    x = torch.rand(5, 3, device="cuda")
    assert corrupt(x, 0.2, generator=torch.Generator().manual_seed(0)).device.type == "cuda"
    assert knn_distance_score(x, x, 2).device.type == "cuda"
