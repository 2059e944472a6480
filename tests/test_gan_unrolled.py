"""The unrolled GAN (Metz et al., 2017) against independent oracles.

* the unrolled parameters against ``torch.optim.SGD`` / ``torch.optim.Adam`` stepping a copy
  of the discriminator (Adam continuing from a trained optimiser's state);
* the generator's gradient through the unrolling against central finite differences in
  float64, and against the plain gradient (the look-ahead term is not zero);
* the training code's unrolled generator loss against the surrogate written out by hand, and
  ``K = 0`` against the plain non-saturating step.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch.func import functional_call

from dgm_lab.gan import (
    GAN,
    VARIANTS,
    GANConfig,
    MLPDiscriminator,
    build_toy_gan,
    discriminator_loss,
    gan_updates,
    generator_loss,
    train_gan,
    unrolled_parameters,
)


def _setup(minibatch_kernels: int = 0, dtype: torch.dtype = torch.float64):
    torch.manual_seed(0)
    d = MLPDiscriminator(2, hidden=5, layers=2, minibatch_kernels=minibatch_kernels).to(dtype)
    g = torch.Generator().manual_seed(1)
    real = torch.randn(6, 2, generator=g, dtype=dtype)
    fake = 0.5 + torch.randn(6, 2, generator=g, dtype=dtype)
    return d, real, fake


def _objective(d, real, fake):
    return lambda p: discriminator_loss(functional_call(d, p, (real,)),
                                        functional_call(d, p, (fake,)))


def _manual_steps(d, real, fake, steps, opt_class, state=None, **opt_kwargs):
    """The oracle: a deep copy of ``d`` trained by a real torch optimiser."""
    twin = copy.deepcopy(d)
    opt = opt_class(twin.parameters(), **opt_kwargs)
    if state is not None:
        opt.load_state_dict(state)
    for _ in range(steps):
        opt.zero_grad()
        discriminator_loss(twin(real), twin(fake)).backward()
        opt.step()
    return dict(twin.named_parameters())


@pytest.mark.parametrize("kernels", [0, 3])
def test_unrolled_sgd_steps_equal_torch_sgd(kernels):
    d, real, fake = _setup(kernels)
    before = {n: p.detach().clone() for n, p in d.named_parameters()}
    theta = unrolled_parameters(d, _objective(d, real, fake), 4, lr=0.3, optimizer="sgd")
    expected = _manual_steps(d, real, fake, 4, torch.optim.SGD, lr=0.3)
    assert theta.keys() == expected.keys()
    for name in theta:
        torch.testing.assert_close(theta[name], expected[name].detach())
        assert not torch.equal(theta[name], before[name])          # it moved
        torch.testing.assert_close(dict(d.named_parameters())[name], before[name], rtol=0,
                                   atol=0)                          # the module did not


def test_unrolled_adam_steps_continue_a_trained_optimiser():
    """Oracle: torch.optim.Adam, loaded with the state of an optimiser that took 3 steps."""
    d, real, fake = _setup(minibatch_kernels=2)
    opt = torch.optim.Adam(d.parameters(), lr=0.05, betas=(0.5, 0.9))
    for _ in range(3):
        opt.zero_grad()
        discriminator_loss(d(real), d(0.3 * fake)).backward()
        opt.step()
    state = copy.deepcopy(opt.state_dict())
    named = {n: opt.state[p] for n, p in d.named_parameters()}
    theta = unrolled_parameters(d, _objective(d, real, fake), 3, lr=0.05, optimizer="adam",
                                betas=(0.5, 0.9), adam_state=named)
    expected = _manual_steps(d, real, fake, 3, torch.optim.Adam, state, lr=0.05,
                             betas=(0.5, 0.9))
    for name in theta:
        torch.testing.assert_close(theta[name], expected[name].detach())
    # the optimiser's own state is left alone
    assert all(s["step"].item() == 3 for s in opt.state.values())
    # from fresh moments (no state) it is the first three steps of a new Adam
    fresh = unrolled_parameters(d, _objective(d, real, fake), 3, lr=0.05, optimizer="adam",
                                betas=(0.5, 0.9))
    expected = _manual_steps(d, real, fake, 3, torch.optim.Adam, lr=0.05, betas=(0.5, 0.9))
    for name in fresh:
        torch.testing.assert_close(fresh[name], expected[name].detach())


def test_zero_steps_return_the_current_parameters():
    d, real, fake = _setup()
    theta = unrolled_parameters(d, _objective(d, real, fake), 0, lr=0.1)
    assert all(theta[n] is p for n, p in d.named_parameters())


def _surrogate(d, real, steps, optimizer, lr=0.2):
    """f_K(fake): the non-saturating generator loss at the discriminator unrolled K steps."""
    def f(fake: torch.Tensor) -> torch.Tensor:
        theta = unrolled_parameters(d, _objective(d, real, fake), steps, lr=lr,
                                    optimizer=optimizer)
        return generator_loss(functional_call(d, theta, (fake,)))
    return f


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_gradient_through_the_unrolling_matches_finite_differences(optimizer):
    d, real, fake = _setup(minibatch_kernels=2)
    lr = 0.2 if optimizer == "sgd" else 0.02
    f = _surrogate(d, real, 3, optimizer, lr)
    x = fake.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x), x)
    numeric = torch.zeros_like(fake)
    h = 1e-6
    for i in range(fake.shape[0]):
        for j in range(fake.shape[1]):
            e = torch.zeros_like(fake)
            e[i, j] = h
            numeric[i, j] = (f(fake + e) - f(fake - e)).detach() / (2 * h)
    torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-7)
    # the look-ahead matters: the plain gradient at the unrolled discriminator (its
    # parameters held fixed) differs from the gradient through the unrolling
    theta = {n: p.detach() for n, p in unrolled_parameters(
        d, _objective(d, real, fake), 3, lr=lr, optimizer=optimizer).items()}
    x = fake.clone().requires_grad_(True)
    (held,) = torch.autograd.grad(generator_loss(functional_call(d, theta, (x,))), x)
    assert (grad - held).abs().max() > 1e-4 * grad.abs().max()


def test_unrolled_parameters_reject_bad_input():
    d, real, fake = _setup()
    objective = _objective(d, real, fake)
    with pytest.raises(TypeError, match="discriminator"):
        unrolled_parameters(lambda x: x, objective, 1, lr=0.1)
    with pytest.raises(TypeError, match="loss"):
        unrolled_parameters(d, 3.0, 1, lr=0.1)
    with pytest.raises(ValueError, match="steps"):
        unrolled_parameters(d, objective, -1, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        unrolled_parameters(d, objective, 1, lr=-0.1)
    with pytest.raises(ValueError, match="optimizer"):
        unrolled_parameters(d, objective, 1, lr=0.1, optimizer="rmsprop")
    with pytest.raises(ValueError, match="betas"):
        unrolled_parameters(d, objective, 1, lr=0.1, optimizer="adam", betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="scalar"):
        unrolled_parameters(d, lambda p: functional_call(d, p, (real,)), 1, lr=0.1)


# --------------------------------------------------------------------------------------
# the unrolled GAN in the training code
# --------------------------------------------------------------------------------------

def _g_loss(config: GANConfig, gan: GAN, batch: torch.Tensor, d_steps: int = 2):
    """The generator's loss of ``gan_updates`` after ``d_steps`` discriminator steps."""
    d_update, g_update = gan_updates(gan, config)
    state = SimpleNamespace(progress=0.0)
    for _ in range(d_steps):
        d_update.optimizer.zero_grad()
        d_update.loss(gan, batch, state)["loss"].backward()
        d_update.optimizer.step()
    torch.manual_seed(5)
    return g_update.loss(gan, batch, state), d_update.optimizer


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_training_code_takes_the_generator_loss_at_the_unrolled_discriminator(optimizer):
    """Oracle: the surrogate f_K written out with a deep copy of the discriminator stepped
    by torch's own optimiser (for the value) on the same noise."""
    config = VARIANTS["unrolled"].replace(latent_dim=2, hidden=8, layers=1, unrolled_steps=3,
                                          unroll_optimizer=optimizer, lr=0.01)
    torch.manual_seed(0)
    gan = build_toy_gan(config)
    batch = torch.randn(16, 2, generator=torch.Generator().manual_seed(2))
    loss, d_opt = _g_loss(config, gan, batch)
    torch.manual_seed(5)
    fake = gan.generate(gan.sample_latent(16)).detach()
    twin = copy.deepcopy(gan.discriminator)
    opt_class = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    kwargs = {} if optimizer == "sgd" else {"betas": config.betas}
    opt = opt_class(twin.parameters(), lr=0.01, **kwargs)
    if optimizer == "adam":
        # a deep copy: load_state_dict keeps the very moment tensors, which step() updates
        opt.load_state_dict(copy.deepcopy(d_opt.state_dict()))
    for _ in range(3):
        opt.zero_grad()
        discriminator_loss(twin(batch), twin(fake)).backward()
        opt.step()
    with torch.no_grad():
        expected = generator_loss(twin(fake))
    torch.testing.assert_close(loss.detach(), expected)
    # and the loss is not the one at the current discriminator
    with torch.no_grad():
        plain = generator_loss(gan.discriminator(fake))
    assert abs(loss.item() - plain.item()) > 1e-4
    # the generator's gradient runs through the unrolled steps too (the unrolling itself is
    # checked against finite differences above): f_K of the generator's own samples
    torch.manual_seed(5)
    fake = gan.generate(gan.sample_latent(16))
    d = gan.discriminator
    state = {n: d_opt.state.get(p) for n, p in d.named_parameters()}
    theta = unrolled_parameters(d, _objective(d, batch, fake), 3, lr=0.01, optimizer=optimizer,
                                betas=config.betas, adam_state=state)
    params = list(gan.generator.parameters())
    expected_grads = torch.autograd.grad(generator_loss(functional_call(d, theta, (fake,))),
                                         params)
    for a, b in zip(torch.autograd.grad(loss, params), expected_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_zero_unrolled_steps_are_the_plain_non_saturating_step():
    """K = 0: the same loss and the same generator gradient as the plain variant, and a
    different gradient with K = 3 (the look-ahead term)."""
    def grads(config):
        torch.manual_seed(0)
        gan = build_toy_gan(config)
        batch = torch.randn(16, 2, generator=torch.Generator().manual_seed(2))
        loss, _ = _g_loss(config, gan, batch)
        return loss, torch.autograd.grad(loss, list(gan.generator.parameters()))

    small = dict(latent_dim=2, hidden=8, layers=1, lr=0.01)
    plain_loss, plain = grads(VARIANTS["non_saturating"].replace(**small))
    zero_loss, zero = grads(VARIANTS["unrolled"].replace(unrolled_steps=0, **small))
    three_loss, three = grads(VARIANTS["unrolled"].replace(**small, unrolled_steps=3))
    torch.testing.assert_close(zero_loss, plain_loss, rtol=0, atol=0)
    for a, b in zip(zero, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert max((a - b).abs().max().item() for a, b in zip(three, plain, strict=True)) > 1e-5


def test_an_unrolled_gan_trains_and_rejects_other_losses():
    config = VARIANTS["unrolled"].replace(latent_dim=2, hidden=8, layers=1, unrolled_steps=2,
                                          lr_decay=True)
    torch.manual_seed(0)
    gan = build_toy_gan(config)
    before = [p.detach().clone() for p in gan.generator.parameters()]
    history = train_gan(gan, torch.randn(40, 2), config, epochs=2, batch_size=20, seed=0,
                        device="cpu")
    assert len(history.step["g.loss"]) == 4
    assert all(torch.isfinite(torch.tensor(history.step["g.loss"])))
    assert any(not torch.equal(a, b) for a, b in zip(before, gan.generator.parameters(),
                                                     strict=True))
    with pytest.raises(ValueError, match="unrolled_steps"):
        GANConfig(loss="wasserstein", unrolled_steps=2)
    with pytest.raises(ValueError, match="unrolled_steps"):
        GANConfig(feature_matching=True, unrolled_steps=2)
    with pytest.raises(ValueError, match="unrolled_steps"):
        GANConfig(unrolled_steps=-1)
    with pytest.raises(ValueError, match="unroll_optimizer"):
        GANConfig(unrolled_steps=2, unroll_optimizer="lbfgs")
