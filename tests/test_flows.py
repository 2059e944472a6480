"""Normalizing flows (dgm_lab.flows) against independent oracles.

Every layer and every composed flow, in float64 with random parameters (a freshly built
coupling starts as the identity, which would make the checks trivial): inverse(forward(x))
returns x; the log-determinant each direction returns equals ``torch.linalg.slogdet`` of the
Jacobian that autograd computes; gradients reach every parameter. Then what each layer is
supposed to compute, against closed forms, ``torch.distributions``, ``pixel_unshuffle`` and
integration on a grid.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dgm_lab.density import Gaussian
from dgm_lab.flows import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    Chain,
    ConvNet,
    ElementwiseAffine,
    Flow,
    Inverse,
    InvertibleConv1x1,
    Logit,
    MaskedAffineAutoregressive,
    MaskedSplineAutoregressive,
    Permutation,
    Reshape,
    SplineCoupling,
    Squeeze,
    actnorm_parameters,
    alternating_mask,
    autoregressive_spline_flow,
    channel_mask,
    checkerboard_mask,
    glow,
    iaf,
    maf,
    mlp,
    neural_spline_flow,
    nice,
    rational_quadratic_spline,
    real_nvp,
    real_nvp_image,
)
from dgm_lab.model import DensityModel, rand

pytestmark = pytest.mark.usefixtures("one_thread")


def randomize(module: nn.Module, seed: int = 0, scale: float = 0.3) -> nn.Module:
    """Random float64 parameters everywhere (and every actnorm initialised), in place."""
    g = torch.Generator().manual_seed(seed)
    module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    for m in module.modules():
        if isinstance(m, ActNorm):
            m.initialized.fill_(True)
    return module


# name -> (build the transform, the event shape it reads)
LAYERS = {
    "elementwise-affine": (lambda: ElementwiseAffine(3), (3,)),
    "elementwise-scale-image": (lambda: ElementwiseAffine((2, 2, 2), shift=False), (2, 2, 2)),
    "permutation": (lambda: Permutation([2, 0, 3, 1]), (4,)),
    "reshape": (lambda: Reshape(8, (2, 2, 2)), (8,)),
    "squeeze": (lambda: Squeeze((2, 4, 4)), (2, 4, 4)),
    "logit": (lambda: Logit(3, alpha=0.05), (3,)),
    "additive-coupling": (lambda: AdditiveCoupling(alternating_mask(5), mlp(5, 5, [8])), (5,)),
    "additive-coupling-checkerboard": (
        lambda: AdditiveCoupling(checkerboard_mask((1, 4, 4)), ConvNet(1, 1, 4)), (1, 4, 4)),
    "affine-coupling": (lambda: AffineCoupling(alternating_mask(5, 1), mlp(5, 10, [8])), (5,)),
    "affine-coupling-checkerboard": (
        lambda: AffineCoupling(checkerboard_mask((2, 4, 4), 1), ConvNet(2, 4, 4)), (2, 4, 4)),
    "affine-coupling-channels": (
        lambda: AffineCoupling(channel_mask((4, 2, 2)), ConvNet(4, 8, 4)), (4, 2, 2)),
    "actnorm-vector": (lambda: ActNorm(3), (3,)),
    "actnorm-image": (lambda: ActNorm(2), (2, 3, 3)),
    "conv1x1-lu-vector": (lambda: InvertibleConv1x1(4), (4,)),
    "conv1x1-lu-image": (lambda: InvertibleConv1x1(3), (3, 2, 2)),
    "conv1x1-plain-image": (lambda: InvertibleConv1x1(3, lu=False), (3, 2, 2)),
    "spline-coupling": (lambda: SplineCoupling(alternating_mask(4), mlp(4, 4 * 14, [8]), bins=5,
                                               bound=1.5), (4,)),
    "spline-coupling-image": (lambda: SplineCoupling(checkerboard_mask((1, 4, 4)),
                                                     ConvNet(1, 11, 4), bins=4), (1, 4, 4)),
    "made-affine": (lambda: MaskedAffineAutoregressive(4, [12, 12]), (4,)),
    "made-affine-inverse": (lambda: Inverse(MaskedAffineAutoregressive(4, [12], seed=3)), (4,)),
    "made-spline": (lambda: MaskedSplineAutoregressive(4, [12, 12], bins=5, bound=1.5), (4,)),
    "made-spline-reversed": (lambda: MaskedSplineAutoregressive(3, [12], bins=4, order=[2, 0, 1],
                                                                seed=2), (3,)),
    "chain": (lambda: Chain([ElementwiseAffine(4), Permutation([3, 2, 1, 0]),
                             AffineCoupling(alternating_mask(4), mlp(4, 8, [8]))]), (4,)),
}

# name -> (build the flow, its event shape); events in (0, 1) where the flow starts with a logit
FLOWS = {
    "nice": (lambda: nice(4, n_layers=3, hidden=[8]), (4,)),
    "real-nvp": (lambda: real_nvp(4, n_layers=3, hidden=[8]), (4,)),
    "real-nvp-2d": (lambda: real_nvp(2, n_layers=3, hidden=[8]), (2,)),
    "maf": (lambda: maf(4, n_layers=2, hidden=[8]), (4,)),
    "iaf": (lambda: iaf(4, n_layers=2, hidden=[8]), (4,)),
    "neural-spline": (lambda: neural_spline_flow(4, n_layers=3, hidden=[8], bins=4), (4,)),
    "autoregressive-spline": (lambda: autoregressive_spline_flow(3, n_layers=2, hidden=[8],
                                                                 bins=4, bound=2.0), (3,)),
    "glow": (lambda: glow((1, 4, 4), n_steps=2, hidden=4), (16,)),
    "real-nvp-image": (lambda: real_nvp_image((1, 4, 4), n_blocks=2, hidden=4), (16,)),
}
ALL = {**LAYERS, **{f"flow-{k}": (lambda b=b: b().transform, s) for k, (b, s) in FLOWS.items()}}


def _inputs(name: str, shape: tuple[int, ...], n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if name == "logit" or "glow" in name or "image" in name and name.startswith("flow"):
        return torch.rand(n, *shape, generator=g, dtype=torch.float64) * 0.9 + 0.05
    return torch.randn(n, *shape, generator=g, dtype=torch.float64)


def _jacobian(f, x: torch.Tensor) -> torch.Tensor:
    """``[D, D]`` Jacobian of ``f`` (one event in, one event out) at ``x``, flattened."""
    def flat(v):
        return f(v.reshape(1, *x.shape))[0].reshape(-1)
    return torch.autograd.functional.jacobian(flat, x.reshape(-1))


@pytest.mark.parametrize("name", ALL)
def test_inverse_undoes_forward_and_log_dets_match_autograd(name):
    build, shape = ALL[name]
    t = randomize(build())
    x = _inputs(name, shape)
    z, logdet = t(x)
    x_back, logdet_inv = t.inverse(z)
    assert logdet.shape == (len(x),) and logdet_inv.shape == (len(x),)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-5)
    for i in range(3):
        jac = _jacobian(lambda v: t(v)[0], x[i])
        sign, log_abs = torch.linalg.slogdet(jac)
        assert sign != 0
        torch.testing.assert_close(logdet[i], log_abs, rtol=0, atol=1e-4)
        jac_inv = _jacobian(lambda v: t.inverse(v)[0], z[i])
        torch.testing.assert_close(logdet_inv[i], torch.linalg.slogdet(jac_inv)[1],
                                   rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_gradients_reach_every_parameter(name):
    build, shape = ALL[name]
    torch.manual_seed(0)  # the default initialisation draws from the global generator
    t = randomize(build())
    params = dict(t.named_parameters())
    if not params:
        pytest.skip("no parameters")
    x = _inputs(name, shape)
    z, logdet = t(x)
    (z.square().sum() + logdet.sum()).backward()
    for pname, p in params.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {pname}"


# --------------------------------------------------------------------------------------
# what each layer computes
# --------------------------------------------------------------------------------------

def test_the_lecture_cube_scaled_by_two_has_density_one_eighth():
    """x = 2 z with z uniform on the unit cube: p(x) = 1/8 inside [0, 2)^3 (volumes 1 and 8)."""

    class UnitCube(DensityModel):
        def __init__(self):
            super().__init__()
            self.register_buffer("low_", torch.zeros(3))

        @property
        def event_shape(self):
            return self.low_.shape

        def _log_prob(self, z):
            inside = ((z >= 0) & (z < 1)).all(1)
            return torch.where(inside, 0.0, -math.inf).to(z)

        def _sample(self, n, generator):
            return rand((n, 3), generator, device=self.device, dtype=self.dtype)

    scale = ElementwiseAffine(3, shift=False)
    with torch.no_grad():
        scale.log_scale.fill_(-math.log(2))  # forward is data -> noise: z = x / 2
    cube = Flow(scale, 3, base=UnitCube())
    x = cube.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert x.min() >= 0 and x.max() < 2 and x.max() > 1.99
    inside = torch.tensor([[0.5, 1.5, 1.9], [1.0, 1.0, 1.0]])
    torch.testing.assert_close(cube.log_prob(inside).exp(), torch.full((2,), 1 / 8))
    assert cube.log_prob(torch.tensor([[2.5, 1.0, 1.0]])).item() == -math.inf
    # a Monte Carlo check of the density: the fraction of samples in a small box / its volume
    box = ((x > 0.4) & (x < 0.9)).all(1).double().mean() / 0.5**3
    assert abs(box.item() - 1 / 8) < 4 * math.sqrt(1 / 8 * 0.5**3 / 20_000) / 0.5**3


def test_a_chain_sums_the_log_determinants_of_its_steps():
    steps = [randomize(ElementwiseAffine(3), seed=s) for s in range(3)]
    x = torch.randn(5, 3, dtype=torch.float64)
    z, total = Chain(steps)(x)
    expected = sum(s.log_scale.sum() for s in steps)
    torch.testing.assert_close(total, expected.expand(5))
    h = x
    for s in steps:
        h = h * s.log_scale.exp() + s.shift
    torch.testing.assert_close(z, h)


def test_squeeze_is_pixel_unshuffle():
    x = torch.randn(3, 2, 4, 6, dtype=torch.float64)
    z, logdet = Squeeze((2, 4, 6))(x)
    assert torch.equal(z, nn.functional.pixel_unshuffle(x, 2)) and torch.equal(logdet,
                                                                                torch.zeros(3))


def test_logit_density_is_the_logit_normal_of_torch_distributions():
    alpha = 0.0
    flow = Flow(Logit(2, alpha=alpha), 2)
    x = torch.rand(50, 2, dtype=torch.float64) * 0.98 + 0.01
    flow.double()
    logit_normal = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(torch.zeros(2, dtype=torch.float64), 1.0),
        [torch.distributions.SigmoidTransform()])
    torch.testing.assert_close(flow.log_prob(x), logit_normal.log_prob(x).sum(1))


def test_logit_and_actnorm_initialisation_reject_input_they_cannot_take():
    """A point outside the unit cube has no logit: a clear error, not a NaN log-density; an
    integer batch is named, not left to a RuntimeError deep in torch.mean."""
    flow = Flow(Logit(2), 2)
    for outside in ([[1.5, 0.5]], [[0.5, -0.01]]):
        with pytest.raises(ValueError, match="x must lie in \\[0, 1\\]"):
            flow.log_prob(torch.tensor(outside))
    assert torch.isfinite(flow.log_prob(torch.tensor([[0.0, 1.0]]))).all()  # the closed cube
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        actnorm_parameters(torch.ones(4, 2, dtype=torch.long))


def test_coupling_layers_leave_the_masked_half_alone_and_nice_preserves_volume():
    mask = alternating_mask(6, 1)
    x = torch.randn(10, 6, dtype=torch.float64)
    for layer in (randomize(AdditiveCoupling(mask, mlp(6, 6, [8]))),
                  randomize(AffineCoupling(mask, mlp(6, 12, [8])))):
        z, _ = layer(x)
        kept = mask.bool()
        assert torch.equal(z[:, kept], x[:, kept]) and not torch.allclose(z[:, ~kept], x[:, ~kept])
    additive = randomize(AdditiveCoupling(mask, mlp(6, 6, [8])))
    jac = _jacobian(lambda v: additive(v)[0], x[0])
    assert abs(torch.linalg.det(jac).item() - 1) < 1e-10
    # the Jacobian of an affine coupling is triangular once the kept half comes first
    affine = randomize(AffineCoupling(mask, mlp(6, 12, [8])))
    order = torch.cat([mask.nonzero().flatten(), (1 - mask).nonzero().flatten()])
    jac = _jacobian(lambda v: affine(v)[0], x[0])[order][:, order]
    assert torch.equal(jac, jac.tril())


def test_masks():
    assert alternating_mask(4).tolist() == [1, 0, 1, 0]
    assert alternating_mask(5, 1).tolist() == [0, 1, 0, 1, 0]  # the other half
    board = checkerboard_mask((2, 3, 3), 0)
    assert board[0].tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]] and torch.equal(board[0],
                                                                                  board[1])
    assert torch.equal(checkerboard_mask((1, 3, 3), 1), 1 - checkerboard_mask((1, 3, 3), 0))
    channels = channel_mask((4, 2, 2), 1)
    assert channels[:, 0, 0].tolist() == [0, 0, 1, 1]


def test_affine_coupling_computes_realnvp_equation_with_a_known_conditioner():
    """A linear conditioner with known weights: z_2 = x_2 e^{s(x_1)} + t(x_1) by hand."""
    net = nn.Linear(2, 4).double()
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.5, 0.0], [0.3, 0.0], [-1.0, 0.0], [2.0, 0.0]]))
        net.bias.copy_(torch.tensor([0.0, 0.1, 0.0, -0.2]))
    layer = AffineCoupling(torch.tensor([1.0, 0.0]), net, max_log_scale=1e6).double()
    x = torch.tensor([[0.7, -1.2]], dtype=torch.float64)
    z, logdet = layer(x)
    s, t = 0.3 * 0.7 + 0.1, 2.0 * 0.7 - 0.2  # outputs 2 and 4 are s and t of dimension 2
    torch.testing.assert_close(z, torch.tensor([[0.7, -1.2 * math.exp(s) + t]],
                                               dtype=torch.float64))
    torch.testing.assert_close(logdet, torch.tensor([s], dtype=torch.float64))


def test_affine_coupling_bounds_the_log_scale():
    net = nn.Linear(2, 4)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.fill_(100.0)
    _, logdet = AffineCoupling(torch.tensor([1.0, 0.0]), net, max_log_scale=2.0)(torch.zeros(1, 2))
    assert logdet.item() == pytest.approx(2.0)


def test_actnorm_initialises_each_channel_to_mean_zero_and_unit_variance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, 4, 4, generator=g, dtype=torch.float64) * torch.tensor(
        [0.2, 3.0, 7.0], dtype=torch.float64)[:, None, None] + 5.0
    layer = ActNorm(3).double()
    z, logdet = layer(x)  # training mode: the first batch initialises
    flat = z.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(3, dtype=torch.float64), atol=1e-10,
                               rtol=0)
    torch.testing.assert_close(flat.std(1, unbiased=False), torch.ones(3, dtype=torch.float64),
                               atol=1e-5, rtol=0)
    per_channel_std = x.transpose(0, 1).reshape(3, -1).double().std(1, unbiased=False)
    torch.testing.assert_close(logdet, (-16 * per_channel_std.log().sum()).expand(40),
                               atol=1e-4, rtol=0)
    assert bool(layer.initialized)
    # later batches do not re-initialise; parameters are now trained like any other
    shift = layer.shift.detach().clone()
    layer(x * 10)
    assert torch.equal(layer.shift.detach(), shift)
    # evaluation mode never initialises; the flag travels in the state_dict
    fresh = ActNorm(3).double().eval()
    fresh(x)
    assert not bool(fresh.initialized) and torch.equal(fresh.shift.detach(),
                                                       torch.zeros(3, dtype=torch.float64))
    fresh.load_state_dict(layer.state_dict())
    assert bool(fresh.initialized)
    b, s = actnorm_parameters(torch.tensor([[1.0, 0.0], [3.0, 0.0]]))
    assert b.tolist() == [-2.0, 0.0] and s[0].exp().item() == pytest.approx(1.0, rel=1e-5)


def test_lu_convolution_is_an_lu_factorisation_with_the_determinant_of_its_diagonal():
    conv = randomize(InvertibleConv1x1(5), seed=3)
    eye = torch.eye(5, dtype=torch.float64)
    with torch.no_grad():  # a permutation and signs that a lost factor cannot hide from
        conv.permutation.copy_(eye[[2, 0, 4, 1, 3]])
        conv.sign.copy_(torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0]))
    w = conv.matrix()
    # W = P L (U + diag(sign * exp(v))), assembled by hand (Kingma and Dhariwal, 2018, eq. 10)
    by_hand = conv.permutation @ (torch.tril(conv.lower, -1) + eye) @ (
        torch.triu(conv.upper, 1) + torch.diag(conv.sign * conv.log_diag.exp()))
    torch.testing.assert_close(w, by_hand)
    sign, log_abs = torch.linalg.slogdet(w)
    torch.testing.assert_close(conv.log_abs_det(), log_abs)
    p, lower, upper = torch.linalg.lu(w)  # scipy-style LU of the assembled matrix
    torch.testing.assert_close(p @ lower @ upper, w)
    torch.testing.assert_close(torch.diagonal(upper).abs().log().sum(), conv.log_diag.sum())
    # a 1x1 convolution is torch's conv2d with a 1x1 kernel
    x = torch.randn(2, 5, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(conv(x)[0], nn.functional.conv2d(x, w[:, :, None, None]))
    torch.testing.assert_close(conv(x)[1], (9 * log_abs).expand(2))
    # the masked entries of L stay out of W even when the optimiser moves them
    with torch.no_grad():
        conv.lower.add_(torch.triu(torch.ones(5, 5, dtype=torch.float64)))
    torch.testing.assert_close(conv.matrix(), w)
    # it starts as a rotation: orthogonal, volume-preserving
    start = InvertibleConv1x1(6).matrix().detach()
    torch.testing.assert_close(start @ start.T, torch.eye(6), atol=1e-5, rtol=0)
    assert abs(InvertibleConv1x1(6).log_abs_det().item()) < 1e-5


def test_made_affine_is_triangular_in_its_order_and_matches_gaussian_conditionals():
    """One MAF layer is an autoregressive Gaussian: log p(x) = sum_i log N(x_i; mu_i, e^a_i)."""
    layer = randomize(MaskedAffineAutoregressive(5, [20, 20], order=[3, 1, 4, 0, 2]))
    x = torch.randn(4, 5, dtype=torch.float64)
    position = torch.empty(5, dtype=torch.int64)
    position[layer.made.order] = torch.arange(5)
    jac = _jacobian(lambda v: layer(v)[0], x[0])
    later = position[None, :] > position[:, None]  # input j comes after output i
    assert (jac[later] == 0).all() and (jac.diagonal() != 0).all()
    # the inverse fills the coordinates in the layer's own order, not the natural one
    torch.testing.assert_close(layer.inverse(layer(x)[0])[0], x)
    flow = Flow(layer, 5)
    mu, raw = layer.made(x).unbind(2)
    alpha = 3 * torch.tanh(raw / 3)
    expected = torch.distributions.Normal(mu, alpha.exp()).log_prob(x).sum(1)
    torch.testing.assert_close(flow.log_prob(x), expected)


def test_iaf_is_maf_turned_around():
    """Same weights: IAF's sampling runs MAF's density pass, and IAF's density MAF's sampling."""
    torch.manual_seed(0)
    m = randomize(maf(3, n_layers=2, hidden=[10]))
    i = iaf(3, n_layers=2, hidden=[10]).double()
    i.transform.base.load_state_dict(m.transform.state_dict())
    x = torch.randn(6, 3, dtype=torch.float64)
    z_maf, ld_maf = m.transform(x)
    x_iaf, ld_iaf = i.transform.inverse(x)  # IAF's noise -> data is MAF's data -> noise
    torch.testing.assert_close(x_iaf, z_maf)
    torch.testing.assert_close(ld_iaf, ld_maf)
    # IAF scores its own samples in the same pass that draws them
    xs, log_p = i.sample_with_log_prob(50, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(log_p, i.log_prob(xs))


def test_stacked_layers_alternate_their_order():
    """One MAF layer's Jacobian is triangular; two, with the order reversed between them, make
    every output depend on every input (without the reversal it would stay triangular); the
    same for two RealNVP couplings with alternating masks."""
    torch.manual_seed(0)
    x = torch.randn(3, dtype=torch.float64)
    one = randomize(maf(3, n_layers=1, hidden=[10]))
    jac = _jacobian(lambda v: one.transform(v)[0], x)
    assert torch.equal(jac.triu(1), torch.zeros_like(jac))  # natural order: z_i needs x_<=i
    two = randomize(maf(3, n_layers=2, hidden=[10]))
    jac = _jacobian(lambda v: two.transform(v)[0], x)
    assert (jac.abs() > 1e-8).all()
    # RealNVP's couplings alternate their masks: two layers transform both halves
    nvp = randomize(real_nvp(2, n_layers=2, hidden=[10]))
    jac = _jacobian(lambda v: nvp.transform(v)[0], x[:2])
    assert (jac.abs() > 1e-8).all()


def test_autoregressive_layers_start_as_the_identity():
    """The MADE's last layer starts at zero: no shift, no scale, equal bins with unit slopes."""
    x = 2 * torch.randn(5, 3)
    for layer in (MaskedAffineAutoregressive(3, [8]), MaskedSplineAutoregressive(3, [8])):
        z, log_det = layer(x)
        torch.testing.assert_close(z, x)
        torch.testing.assert_close(log_det, torch.zeros(5))


def test_made_spline_is_triangular_in_its_order_and_two_layers_are_not():
    """z_i of one autoregressive spline layer needs x_i and the coordinates before i in the
    layer's order only (here the order 2, 0, 1); two layers with the order reversed between
    them make every output depend on every input."""
    torch.manual_seed(0)
    x = torch.randn(3, dtype=torch.float64) * 0.5
    one = randomize(MaskedSplineAutoregressive(3, [10], bins=4, order=[2, 0, 1]))
    jac = _jacobian(lambda v: one(v)[0], x)
    order = [2, 0, 1]
    for a, i in enumerate(order):
        for j in order[a + 1:]:
            assert jac[i, j] == 0, (i, j)  # z_i does not read a later coordinate
        for j in order[:a + 1]:
            assert jac[i, j] != 0, (i, j)
    two = randomize(autoregressive_spline_flow(3, n_layers=2, hidden=[10], bins=4))
    jac = _jacobian(lambda v: two.transform(v)[0], x)
    assert (jac.abs() > 1e-8).all()


@pytest.mark.parametrize("build", [lambda: maf(3, n_layers=3, hidden=[8]),
                                   lambda: maf(3, n_layers=3, hidden=[8], normalize=False),
                                   lambda: autoregressive_spline_flow(3, n_layers=3, hidden=[8])],
                         ids=["maf", "maf-unnormalized", "spline"])
def test_autoregressive_flows_reverse_the_order_between_every_two_layers(build):
    """Between any two consecutive autoregressive layers the features are reversed once."""
    kinds = [type(t).__name__ for t in build().transform.transforms
             if not isinstance(t, ElementwiseAffine)]
    layer = kinds[0]
    assert layer in ("MaskedAffineAutoregressive", "MaskedSplineAutoregressive")
    assert kinds == [layer, "Permutation", layer, "Permutation", layer]
    for t in build().transform.transforms:
        if isinstance(t, Permutation):
            assert t.perm.tolist() == [2, 1, 0]


def test_a_2d_spline_flow_transforms_both_coordinates():
    """Two spline couplings with alternating masks: every output depends on every input."""
    torch.manual_seed(0)
    flow = randomize(neural_spline_flow(2, n_layers=2, hidden=[10], bins=4))
    jac = _jacobian(lambda v: flow.transform(v)[0], torch.tensor([0.3, -0.4],
                                                                 dtype=torch.float64))
    assert (jac.abs() > 1e-8).all()


def test_sample_with_log_prob_agrees_with_log_prob_for_every_flow():
    for name, (build, shape) in FLOWS.items():
        flow = randomize(build(), seed=2, scale=0.1)
        x, log_p = flow.sample_with_log_prob(20, generator=torch.Generator().manual_seed(0))
        assert x.shape == (20, *shape)
        torch.testing.assert_close(flow.log_prob(x), log_p, rtol=1e-6, atol=1e-6, msg=name)


def _spline_params(n: int, bins: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, k, generator=g, dtype=torch.float64)
                 for k in (bins, bins, bins - 1))


def test_rational_quadratic_spline_passes_through_its_knots_with_their_slopes():
    """Knots by hand (softmax sizes, at least 1e-3 of the interval, cumulated from -B),
    slopes 1 + softplus shifted so that 0 gives 1; the spline goes through every knot with the
    derivative given there (autograd), and is the identity outside [-B, B]."""
    bins, bound = 5, 2.0
    w, h, d = (t[:1] for t in _spline_params(1, bins))
    def knots(raw):
        size = 1e-3 + (1 - 1e-3 * bins) * torch.softmax(raw[0], 0)
        return torch.cat([torch.zeros(1, dtype=torch.float64), size.cumsum(0)]) * 2 * bound - bound
    xk, yk = knots(w), knots(h)
    slope = torch.cat([torch.ones(1, dtype=torch.float64),
                       1e-3 + nn.functional.softplus(d[0] + math.log(math.expm1(1 - 1e-3))),
                       torch.ones(1, dtype=torch.float64)])
    # just inside each knot (the end knots themselves belong to the identity tails)
    x = (xk + torch.tensor([1e-9] + [0.0] * (bins - 1) + [-1e-9], dtype=torch.float64))
    x.requires_grad_(True)
    y, logd = rational_quadratic_spline(x, w.expand(bins + 1, bins), h.expand(bins + 1, bins),
                                        d.expand(bins + 1, bins - 1), bound=bound)
    torch.testing.assert_close(y.detach(), yk, atol=1e-7, rtol=0)
    grad, = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, slope, atol=1e-5, rtol=0)
    torch.testing.assert_close(logd.detach(), slope.log(), atol=1e-5, rtol=0)
    outside = torch.tensor([-5.0, -2.0, 2.0, 7.5], dtype=torch.float64)
    y, logd = rational_quadratic_spline(outside, w.expand(4, bins), h.expand(4, bins),
                                        d.expand(4, bins - 1), bound=bound)
    assert torch.equal(y, outside) and torch.equal(logd, torch.zeros(4, dtype=torch.float64))
    # zero parameters: equal bins and unit slopes, the identity everywhere
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    zeros = torch.zeros(13, bins, dtype=torch.float64)
    y, logd = rational_quadratic_spline(x, zeros, zeros, zeros[:, 1:], bound=bound)
    torch.testing.assert_close(y, x)
    torch.testing.assert_close(logd, torch.zeros_like(x))


def test_rational_quadratic_spline_is_increasing_and_its_inverse_is_found_by_bisection():
    """The closed-form inverse against bisection on the forward map (an independent root
    finder), and the log-derivatives of both directions against autograd."""
    n, bins, bound = 400, 7, 3.0
    w, h, d = (t[:1].expand(n, -1) for t in _spline_params(1, bins, seed=4))
    x = torch.linspace(-3.5, 3.5, n, dtype=torch.float64)
    y, logd = rational_quadratic_spline(x, w, h, d, bound=bound)
    assert (y.diff() > 0).all()
    lo, hi = torch.full_like(y, -4.0), torch.full_like(y, 4.0)
    for _ in range(60):
        mid = (lo + hi) / 2
        above = rational_quadratic_spline(mid, w, h, d, bound=bound)[0] > y
        lo, hi = torch.where(above, lo, mid), torch.where(above, mid, hi)
    x_back, logd_inv = rational_quadratic_spline(y, w, h, d, inverse=True, bound=bound)
    torch.testing.assert_close(x_back, (lo + hi) / 2, atol=1e-9, rtol=0)
    torch.testing.assert_close(logd_inv, -logd)
    # log-derivatives of random splines (one per point) against autograd, both directions
    w, h, d = _spline_params(n, bins, seed=5)
    for inverse in (False, True):
        v = x.clone().requires_grad_(True)
        out, logd = rational_quadratic_spline(v, w, h, d, inverse=inverse, bound=bound)
        grad, = torch.autograd.grad(out.sum(), v)
        torch.testing.assert_close(logd.detach(), grad.log(), atol=1e-8, rtol=0)


def test_rational_quadratic_spline_checks_its_arguments():
    x = torch.zeros(3)
    w = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="widths and heights"):
        rational_quadratic_spline(x, w, torch.zeros(3, 5), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="derivatives"):
        rational_quadratic_spline(x, w, w, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="bound"):
        rational_quadratic_spline(x, w, w, torch.zeros(3, 3), bound=0.0)
    with pytest.raises(ValueError, match="bins"):
        SplineCoupling(alternating_mask(2), mlp(2, 2), bins=1)
    with pytest.raises(ValueError, match="bins"):
        MaskedSplineAutoregressive(2, [4], bins=1)
    with pytest.raises(ValueError, match="bound"):
        autoregressive_spline_flow(2, bound=-1.0)
    with pytest.raises(ValueError, match=r"x must have shape \[n, 3\], got shape"):
        MaskedSplineAutoregressive(3, [4])(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"z must have shape \[n, 3\], got shape"):
        MaskedSplineAutoregressive(3, [4]).inverse(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="net must output 14 numbers"):
        SplineCoupling(alternating_mask(2), mlp(2, 6, [4]), bins=5)(torch.zeros(1, 2))


def test_one_spline_layer_makes_one_coordinate_bimodal_where_an_affine_one_cannot():
    """One spline layer (coupling or autoregressive) fitted to a 1-D two-component mixture (in
    the second coordinate, the first one standard normal and independent) gets close to the
    mixture's entropy; one affine coupling is a Gaussian in that coordinate and cannot."""
    from dgm_lab.flows import negative_log_likelihood
    from dgm_lab.train import fit

    g = torch.Generator().manual_seed(0)
    n = 1000
    second = torch.where(torch.rand(n, generator=g) < 0.5, -1.5, 1.5) + 0.3 * torch.randn(
        n, generator=g)
    x = torch.stack([torch.randn(n, generator=g), second], 1)
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.tensor([0.5, 0.5])),
        torch.distributions.Normal(torch.tensor([-1.5, 1.5]), 0.3))
    floor = -(mixture.log_prob(x[:, 1]) + torch.distributions.Normal(0, 1).log_prob(x[:, 0]))
    nll = {}
    for name, layer in {"spline": SplineCoupling(torch.tensor([1.0, 0.0]), mlp(2, 2 * 23, [16]),
                                                 bins=8),
                        "made-spline": MaskedSplineAutoregressive(2, [16], bins=8),
                        "affine": AffineCoupling(torch.tensor([1.0, 0.0]), mlp(2, 4, [16]))
                        }.items():
        torch.manual_seed(0)
        flow = Flow(layer, 2)
        fit(flow, negative_log_likelihood, x, epochs=10, batch_size=100, lr=1e-2, seed=0,
            device="cpu", progress=False)
        with torch.no_grad():
            nll[name] = -flow.log_prob(x).mean().item()
    assert nll["spline"] < floor.mean().item() + 0.05
    assert nll["made-spline"] < floor.mean().item() + 0.05
    assert nll["affine"] > floor.mean().item() + 0.3


# --------------------------------------------------------------------------------------
# densities integrate to one
# --------------------------------------------------------------------------------------

def _mass_on_grid(flow: Flow, half_width: float, n: int = 801) -> float:
    """Midpoint-rule integral of the flow's 2-D density over [-w, w]^2."""
    edges = torch.linspace(-half_width, half_width, n + 1, dtype=torch.float64)
    mid = (edges[1:] + edges[:-1]) / 2
    grid = torch.cartesian_prod(mid, mid)
    with torch.no_grad():
        density = torch.cat([flow.log_prob(c).exp() for c in grid.split(100_000)])
    return (density.sum() * (edges[1] - edges[0]) ** 2).item()


@pytest.mark.parametrize("build", [lambda: real_nvp(2, n_layers=4, hidden=[16]),
                                   lambda: maf(2, n_layers=3, hidden=[16]),
                                   lambda: nice(2, n_layers=3, hidden=[16])],
                         ids=["real-nvp", "maf", "nice"])
def test_untrained_2d_flows_integrate_to_one(build):
    torch.manual_seed(0)  # the layers' default initialisation, before randomize's noise
    flow = randomize(build(), seed=5, scale=0.2)
    assert abs(_mass_on_grid(flow, 30.0, n=1501) - 1) < 0.01


@pytest.mark.parametrize("build", [lambda: neural_spline_flow(2, n_layers=3, hidden=[16]),
                                   lambda: autoregressive_spline_flow(2, n_layers=3, hidden=[16])],
                         ids=["coupling", "autoregressive"])
def test_an_untrained_spline_flow_integrates_to_one(build):
    """Each spline maps [-3, 3] onto itself and is the identity outside, so a coordinate
    beyond +-6 keeps its value through the flow: the mass outside [-6, 6]^2 is the standard
    normal's, 4e-9."""
    flow = randomize(build(), seed=5, scale=0.2)
    assert abs(_mass_on_grid(flow, 6.0, n=401) - 1) < 0.01


def test_a_trained_2d_flow_integrates_to_one_and_beats_a_gaussian():
    from dgm_lab.data import load_toy
    from dgm_lab.flows import negative_log_likelihood
    from dgm_lab.train import fit

    train, test = load_toy("two_moons", "train"), load_toy("two_moons", "test")
    torch.manual_seed(0)
    flow = real_nvp(2, n_layers=4, hidden=[32, 32])
    fit(flow, negative_log_likelihood, train, epochs=40, batch_size=256, lr=5e-3, seed=0,
        device="cpu", progress=False)
    flow.double()
    assert abs(_mass_on_grid(flow, 6.0) - 1) < 0.01
    gaussian = Gaussian().fit(train.double())
    assert -flow.log_prob(test.double()).mean() < -gaussian.log_prob(test.double()).mean() - 0.4
