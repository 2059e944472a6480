"""Tests of PacGAN's packing and of the R1 penalty (dgm_lab.gan) against independent oracles.

Oracles: packs written out row by row with Python loops; the unpacked discriminator itself
(m = 1); autograd through a hand-made concatenation and central finite differences (every
sample of a pack reaches the logit); the squared gradient norm of the logit by finite
differences (R1) and by closed form for a linear discriminator.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from dgm_lab.gan import (
    VARIANTS,
    GANConfig,
    MLPDiscriminator,
    PackedDiscriminator,
    build_toy_gan,
    discriminator_loss,
    gan_updates,
    pack_samples,
    r1_penalty,
    toy_discriminator,
    train_gan,
)


def test_pack_samples_concatenates_consecutive_rows():
    """Oracle: pack k is [x_{km}, ..., x_{km+m-1}], built with a loop."""
    x = torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
    for m in (1, 2, 3, 4, 6):
        expected = torch.stack([torch.cat([x[k * m + j] for j in range(m)])
                                for k in range(12 // m)])
        assert torch.equal(pack_samples(x, m), expected)
    assert torch.equal(pack_samples(x, 1), x)


def test_pack_samples_checks_its_input():
    with pytest.raises(ValueError, match="multiple of pack=4"):
        pack_samples(torch.zeros(6, 2), 4)
    with pytest.raises(ValueError, match="pack"):
        pack_samples(torch.zeros(6, 2), 0)
    with pytest.raises(ValueError, match=r"shape \[n, d\]"):
        pack_samples(torch.zeros(6), 2)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        pack_samples(np.zeros((6, 2)), 2)


def _mlp(data_dim: int, seed: int = 0) -> MLPDiscriminator:
    torch.manual_seed(seed)
    return MLPDiscriminator(data_dim, hidden=16, layers=2).double()


def test_a_pack_of_one_is_the_unpacked_discriminator():
    net = _mlp(2)
    x = torch.randn(7, 2, dtype=torch.float64)
    assert torch.equal(PackedDiscriminator(net, 1)(x), net(x))
    assert torch.equal(PackedDiscriminator(net, 1).features(x), net.features(x))
    # a config without packing builds the plain network, as before the switch existed
    assert isinstance(toy_discriminator(GANConfig(hidden=8)), MLPDiscriminator)


def test_the_packed_discriminator_scores_the_intended_packs():
    """Oracle: the inner network applied to packs concatenated by hand."""
    net = _mlp(6)
    x = torch.randn(9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    by_hand = torch.stack([torch.cat([x[3 * k], x[3 * k + 1], x[3 * k + 2]]) for k in range(3)])
    packed = PackedDiscriminator(net, 3)
    torch.testing.assert_close(packed(x), net(by_hand), rtol=0, atol=0)
    torch.testing.assert_close(packed.features(x), net.features(by_hand), rtol=0, atol=0)
    # swapping two samples of one pack changes its logit (the order inside a pack is part of
    # the input), swapping two whole packs swaps their logits
    swapped = x[[1, 0, 2, 3, 4, 5, 6, 7, 8]]
    assert packed(swapped)[0] != packed(x)[0] and torch.equal(packed(swapped)[1:], packed(x)[1:])
    assert torch.equal(packed(x[[3, 4, 5, 0, 1, 2, 6, 7, 8]]), packed(x)[[1, 0, 2]])


def test_gradients_reach_every_sample_of_a_pack():
    """Oracle: central finite differences of the pack's logit in each coordinate of each of
    its samples; a sample only moves its own pack's logit."""
    packed = PackedDiscriminator(_mlp(8, seed=2), 4)
    x = torch.randn(8, 2, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    (grad,) = torch.autograd.grad(packed(x)[0], x)
    h = 1e-6
    fd = torch.zeros_like(grad)
    for i in range(8):
        for j in range(2):
            e = torch.zeros_like(x)
            e[i, j] = h
            with torch.no_grad():
                fd[i, j] = (packed(x + e)[0] - packed(x - e)[0]) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-9)
    assert (grad[:4].abs().sum(1) > 1e-6).all()  # every sample of pack 0 counts
    assert torch.equal(grad[4:], torch.zeros(4, 2, dtype=torch.float64))


def test_packed_discriminator_rejects_labels_and_ragged_batches():
    packed = PackedDiscriminator(_mlp(4), 2)
    with pytest.raises(ValueError, match="unconditional"):
        packed(torch.zeros(4, 2, dtype=torch.float64), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="multiple of pack=2"):
        packed(torch.zeros(5, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="net"):
        PackedDiscriminator("mlp", 2)
    with pytest.raises(ValueError, match="features"):
        PackedDiscriminator(nn.Linear(4, 1), 2).features(torch.zeros(2, 2))


def test_the_config_builds_a_discriminator_on_packs():
    config = VARIANTS["pacgan"].replace(hidden=8, pack=4)
    d = toy_discriminator(config)
    assert isinstance(d, PackedDiscriminator) and d.pack == 4
    assert d.net.hidden[0].in_features == 8  # four 2-D samples
    assert d(torch.zeros(12, 2)).shape == (3,)
    with pytest.raises(ValueError, match="unconditional"):
        toy_discriminator(config, num_classes=3)
    with pytest.raises(ValueError, match="gradient_penalty"):
        VARIANTS["wgan_gp"].replace(pack=2)
    with pytest.raises(ValueError, match="pack"):
        GANConfig(pack=0)


def test_the_training_code_feeds_packs_of_real_and_of_generated_samples():
    """Oracle: the discriminator's loss on packs of this batch and of the same fake draws,
    concatenated by hand."""
    config = VARIANTS["pacgan"].replace(latent_dim=2, hidden=8, layers=1)
    torch.manual_seed(0)
    gan = build_toy_gan(config)
    d_update = gan_updates(gan, config)[0]
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(5)
    loss = d_update.loss(gan, x, SimpleNamespace(progress=0.0))["loss"]
    torch.manual_seed(5)
    with torch.no_grad():
        fake = gan.generate(gan.sample_latent(6))
    net = gan.discriminator.net
    real_packs = torch.stack([torch.cat([x[2 * k], x[2 * k + 1]]) for k in range(3)])
    fake_packs = torch.stack([torch.cat([fake[2 * k], fake[2 * k + 1]]) for k in range(3)])
    torch.testing.assert_close(loss, discriminator_loss(net(real_packs), net(fake_packs)))


def test_a_short_pacgan_run_trains_both_players():
    config = VARIANTS["pacgan"].replace(latent_dim=1, hidden=8, layers=1)
    torch.manual_seed(0)
    gan = build_toy_gan(config, data_dim=1)
    before = [p.detach().clone() for p in gan.generator.parameters()]
    history = train_gan(gan, torch.randn(40, 1), config, epochs=2, batch_size=20, seed=0,
                        device="cpu")
    assert np.isfinite(history.step["g.loss"]).all() and len(history.step["d.loss"]) == 4
    assert all(not torch.equal(a, b) for a, b in zip(before, gan.generator.parameters(),
                                                     strict=True))


# --------------------------------------------------------------------------------------
# R1
# --------------------------------------------------------------------------------------

def test_r1_penalty_of_a_linear_discriminator_is_its_squared_weight_norm():
    w = torch.tensor([1.5, -2.0, 0.5], dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64)
    assert r1_penalty(lambda v: v @ w + 3.0, x).item() == pytest.approx(w.square().sum().item())


def test_r1_penalty_equals_finite_differences_and_trains_the_discriminator():
    """Oracle: the mean over real points of the squared finite-difference gradient of the
    logit; and its gradient in one weight against a finite difference of the penalty."""
    net = _mlp(3, seed=4)
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    h = 1e-6
    sq = []
    with torch.no_grad():
        for p in x:
            g = [(net((p + e)[None]) - net((p - e)[None])).item() / (2 * h)
                 for e in torch.eye(3, dtype=torch.float64) * h]
            sq.append(np.sum(np.square(g)))
    assert r1_penalty(net, x).item() == pytest.approx(np.mean(sq), rel=1e-6)
    weight = net.hidden[1].weight
    r1_penalty(net, x).backward()
    analytic = weight.grad[2, 5].item()
    values = []
    for sign in (1, -1):
        with torch.no_grad():
            weight[2, 5] += sign * h
        values.append(r1_penalty(net, x).item())
        with torch.no_grad():
            weight[2, 5] -= sign * h
    assert analytic == pytest.approx((values[0] - values[1]) / (2 * h), rel=1e-5)
    assert abs(analytic) > 1e-6


def test_r1_penalty_of_packs_is_per_pack():
    """On packs of m samples the penalty is the mean over packs of the squared norm of the
    pack's gradient: m times the unpacked per-sample mean for a linear discriminator."""
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)  # packs of two 2-D samples
    net = nn.Linear(4, 1).double()
    with torch.no_grad():
        net.weight.copy_(w[None])

    class Net(nn.Module):
        def forward(self, v):
            return net(v).squeeze(1)

    x = torch.randn(6, 2, dtype=torch.float64)
    assert r1_penalty(PackedDiscriminator(Net(), 2), x).item() == pytest.approx(
        w.square().sum().item())


def test_r1_in_the_training_code_and_its_checks():
    """Oracle: the discriminator's loss is the cross-entropy plus gamma / 2 times the
    penalty, both computed on the same batch and fake draws."""
    config = GANConfig(latent_dim=2, hidden=8, layers=1, r1=10.0)
    torch.manual_seed(0)
    gan = build_toy_gan(config)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(5)
    loss = gan_updates(gan, config)[0].loss(gan, x, SimpleNamespace(progress=0.0))["loss"]
    torch.manual_seed(5)
    with torch.no_grad():
        fake = gan.generate(gan.sample_latent(6))
    expected = (discriminator_loss(gan.discriminate(x), gan.discriminate(fake))
                + 5.0 * r1_penalty(gan.discriminate, x))
    torch.testing.assert_close(loss, expected)
    with pytest.raises(ValueError, match="r1"):
        VARIANTS["wgan_gp"].replace(r1=1.0)
    with pytest.raises(ValueError, match="r1"):
        GANConfig(r1=-1.0)
    with pytest.raises(TypeError, match="real"):
        r1_penalty(gan.discriminate, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="vector of logits"):
        r1_penalty(lambda v: v, torch.zeros(3, 2))


def test_the_generator_can_be_larger_than_its_discriminator():
    config = VARIANTS["pacgan_large"]
    gan = build_toy_gan(config)
    assert [layer.out_features for layer in gan.generator.hidden] == [400] * 4
    assert [layer.out_features for layer in gan.discriminator.net.hidden] == [200] * 3
    plain = build_toy_gan(GANConfig(hidden=8, layers=2))
    assert [layer.out_features for layer in plain.generator.hidden] == [8, 8]
    with pytest.raises(ValueError, match="g_hidden"):
        GANConfig(g_hidden=0)
