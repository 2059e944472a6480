"""The contract every density model of dgm_lab keeps (dgm_lab.model.DensityModel).

Parametrised over every public model and the toy densities: shapes, dtype and device rules,
the fitted check, bad input, repeatable sampling, a ``state_dict`` that reloads into a fresh
instance, CUDA (skipped without a GPU) and Apple MPS's dtype rules, faked on the CPU by a
``TorchFunctionMode`` that fails on any float64 tensor. The oracles are torch itself (the
same draws from the same generator), exact equality after a round trip, and the CPU result
for the GPU. What each model computes is checked against scikit-learn / scipy in
test_density.py, test_naive_bayes.py and test_data.py.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from dgm_lab import DensityModel
from dgm_lab import autoregressive as ar
from dgm_lab.data import TOY_DENSITIES
from dgm_lab.density import (
    BernoulliMixture,
    CategoricalMixture,
    Gaussian,
    GaussianMixture,
    Histogram,
    KernelDensity,
    e_step,
    kde_log_prob,
    knn_log_density,
    m_step,
    naive_window_log_prob,
    rule_of_thumb_bandwidth,
    select_bandwidth,
)
from dgm_lab.energy import DBM, DBN, RBM, BoltzmannMachine
from dgm_lab.flows import iaf, maf, negative_log_likelihood, neural_spline_flow, real_nvp
from dgm_lab.model import multinomial, rand, randint, randn
from dgm_lab.naive_bayes import BernoulliNaiveBayes, GaussianNaiveBayes
from dgm_lab.pca import ProbabilisticPCA
from dgm_lab.vae import VAE


def _data(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """240 points in three 2-D blobs, their labels, and 6 binary features per point."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(240) % 3
    centres = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    x = torch.randn(240, 2, generator=g, dtype=torch.float64) * 0.6 + centres[y]
    probs = torch.tensor([[0.9, 0.1, 0.5, 0.2, 0.8, 0.3], [0.1, 0.9, 0.5, 0.7, 0.2, 0.6],
                          [0.5, 0.5, 0.9, 0.1, 0.4, 0.8]], dtype=torch.float64)
    xb = (torch.rand(240, 6, generator=g, dtype=torch.float64) < probs[y]).to(torch.float64)
    return x.to(dtype), y, xb.to(dtype)


# name -> (build an unfitted model, fit it on (x, y, xb), which data its log_prob reads)
FITTED = {
    "Gaussian": (Gaussian, lambda m, x, y, xb: m.fit(x), "x"),
    "Histogram": (lambda: Histogram(0.5, origin=0.1), lambda m, x, y, xb: m.fit(x), "x"),
    "KernelDensity": (lambda: KernelDensity(0.3), lambda m, x, y, xb: m.fit(x), "x"),
    "KernelDensity-box": (lambda: KernelDensity(0.5, kernel="box"),
                          lambda m, x, y, xb: m.fit(x), "x"),
    "GaussianMixture": (lambda: GaussianMixture(3, seed=0, tol=1e-6),
                        lambda m, x, y, xb: m.fit(x), "x"),
    "GaussianNaiveBayes": (GaussianNaiveBayes, lambda m, x, y, xb: m.fit(x, y), "x"),
    "BernoulliNaiveBayes": (BernoulliNaiveBayes, lambda m, x, y, xb: m.fit(xb, y), "xb"),
    "BernoulliMixture": (lambda: BernoulliMixture(3, seed=0), lambda m, x, y, xb: m.fit(xb),
                         "xb"),
    "CategoricalMixture": (lambda: CategoricalMixture(3, 3, seed=0),
                           lambda m, x, y, xb: m.fit(xb), "xb"),
    "ProbabilisticPCA": (lambda: ProbabilisticPCA(1), lambda m, x, y, xb: m.fit(x), "x"),
    "BoltzmannMachine": (lambda: BoltzmannMachine(2, max_iter=20),
                         lambda m, x, y, xb: m.fit(xb), "xb"),
    "RBM": (lambda: RBM(4, sample_steps=20), lambda m, x, y, xb: m.fit(xb, epochs=2), "xb"),
    "DBN": (lambda: DBN([4, 3], sample_steps=20), lambda m, x, y, xb: m.fit(xb, epochs=2),
            "xb"),
    "DBM": (lambda: DBM([4, 3], sample_steps=20),
            lambda m, x, y, xb: m.fit(xb, pretrain_epochs=1, epochs=2), "xb"),
    # chapter 7: log_prob is the IWAE estimate (a fixed seed, so repeatable)
    "VAE-gaussian": (lambda: VAE(2, 2, 16, likelihood="gaussian", eval_samples=20),
                     lambda m, x, y, xb: m.fit(x, epochs=2, seed=0), "x"),
    "VAE-bernoulli": (lambda: VAE(6, 2, 16, likelihood="bernoulli", eval_samples=20),
                      lambda m, x, y, xb: m.fit(xb, epochs=2, seed=0), "xb"),
}
TOYS = {name: (cls, lambda m, x, y, xb: m, "x") for name, cls in TOY_DENSITIES.items()}


def _train_flow(flow, x):
    """A flow has no fit: it is a density from the start. Two epochs of maximum likelihood
    through dgm_lab.train.fit, in the data's dtype (float32 for half data), on its device."""
    from dgm_lab.train import fit  # noqa: PLC0415

    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    fit(flow.to(dtype), negative_log_likelihood, x.to(dtype), epochs=2, batch_size=60, lr=1e-2,
        seed=0, device=x.device, progress=False)
    return flow


# flows (chapter 9) are valid densities before any training, so they have no unfitted state
FLOWS = {name: (make, lambda m, x, y, xb: _train_flow(m, x), "x") for name, make in {
    "RealNVP": lambda: real_nvp(2, n_layers=2, hidden=[8]),
    "MAF": lambda: maf(2, n_layers=2, hidden=[8]),
    "IAF": lambda: iaf(2, n_layers=2, hidden=[8]),
    "NSF": lambda: neural_spline_flow(2, n_layers=2, hidden=[8], bins=4),
}.items()}


def _random_weights(model: DensityModel, like: torch.Tensor) -> DensityModel:
    """A network trained by gradient descent is usable from the start: give it fixed random
    weights (the same on every build), on the data's device and in its dtype."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    half = like.dtype in (torch.float16, torch.bfloat16)  # half data: compute in float32
    return model.to(device=like.device, dtype=torch.float32 if half else like.dtype)


# chapter 6: autoregressive networks over the 6 binary features (levels=3 models read 0/1 as
# two of three levels; the images are 2 x 3, the signal 6 steps long)
NETWORKS = {name: (make, lambda m, x, y, xb: _random_weights(m, x), which)
            for name, (make, which) in {
    "FVSBN": (lambda: ar.FVSBN(6), "xb"),
    "NADE": (lambda: ar.NADE(6, hidden=5), "xb"),
    "DeepNADE": (lambda: ar.DeepNADE(6, [8], n_orderings=2, seed=0), "xb"),
    "MADEDensity": (lambda: ar.MADEDensity(6, [10], n_masks=2, random_order=True), "xb"),
    "MADEDensity-levels": (lambda: ar.MADEDensity(6, [10], levels=3), "xb"),
    "RNADE": (lambda: ar.RNADE(2, hidden=8, components=3), "x"),
    "PixelCNN": (lambda: ar.PixelCNN((2, 3), channels=4, n_blocks=1, first_kernel_size=3),
                 "xb"),
    "GatedPixelCNN": (lambda: ar.GatedPixelCNN((2, 3), levels=3, channels=4, n_layers=2,
                                               kernel_size=3), "xb"),
    "WaveNet": (lambda: ar.WaveNet(6, levels=2, channels=4, dilations=(1, 2)), "xb"),
}.items()}


def _with_grad(fit):
    """Fitting may train by gradient descent (RBMs, flows): autograd on for it, although the
    tests themselves run under no_grad (see no_autograd below)."""
    def fit_with_grad(*args):
        with torch.enable_grad():
            return fit(*args)
    return fit_with_grad


ALL = {name: (make, _with_grad(fit), which)
       for name, (make, fit, which) in {**FITTED, **TOYS, **FLOWS, **NETWORKS}.items()}


@pytest.fixture(autouse=True)
def no_autograd():
    """The contract is about values, shapes, dtypes and devices: the networks' log_prob
    (differentiable, for training) is read here without a graph, like the fitted models'."""
    with torch.no_grad():
        yield


def build(name: str, dtype: torch.dtype = torch.float32,
          device: str = "cpu") -> tuple[DensityModel, torch.Tensor]:
    """The model ``name`` fitted on data of ``dtype`` on ``device``, and data it can score."""
    make, fit, which = ALL[name]
    x, y, xb = (t.to(device) for t in _data(dtype))
    model = make()
    if name in TOYS:
        model = model.to(device=device, dtype=dtype)
    model = fit(model, x, y, xb)
    return model, (x if which == "x" else xb)


def _saved_and_loaded(model: DensityModel) -> dict:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)  # plain tensors and Python numbers only


# --------------------------------------------------------------------------------------
# shapes, dtypes and the fitted check
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_log_prob_and_sample_shapes_dtype_and_device(name):
    model, x = build(name)
    assert isinstance(model, DensityModel) and model.is_fitted
    assert model.dtype == torch.float32 and model.device == torch.device("cpu")
    event = tuple(model.event_shape)
    assert event == tuple(x.shape[1:])
    lp = model.log_prob(x[:50])
    assert lp.shape == (50,) and lp.dtype == torch.float32
    if name != "checkerboard":  # the blobs reach beyond the board
        assert torch.isfinite(lp).all()
    s = model.sample(7, generator=torch.Generator().manual_seed(0))
    assert s.shape == (7, *event) and s.dtype == torch.float32
    # every sample lies where the model puts probability
    assert torch.isfinite(model.log_prob(s)).all()
    # input in another dtype is converted to the model's
    assert model.log_prob(x[:5].double()).dtype == torch.float32


@pytest.mark.parametrize("name", FITTED)
def test_unfitted_model_says_what_to_call(name):
    make, _, _ = FITTED[name]
    model = make()
    assert not model.is_fitted
    if len(model._buffers) > 1:  # one fitted tensor set by hand is not a fitted model
        setattr(model, next(iter(model._buffers)), torch.zeros(3))
        assert not model.is_fitted
    model = make()
    for call in (lambda: model.log_prob(torch.zeros(3, 2)), lambda: model.sample(3),
                 lambda: model.device, lambda: model.event_shape):
        with pytest.raises(RuntimeError, match=rf"this {type(model).__name__} is not fitted "
                                               r"yet: call fit\("):
            call()


@pytest.mark.parametrize("name", ALL)
def test_float64_models_and_conversions(name):
    model, x = build(name, torch.float64)
    assert model.dtype == torch.float64
    lp64 = model.log_prob(x[:40])
    assert lp64.dtype == torch.float64
    assert model.log_prob(x[:40].float()).dtype == torch.float64
    assert model.sample(3).dtype == torch.float64
    model.float()  # nn.Module conversion reaches every fitted tensor
    assert model.dtype == torch.float32 and model.sample(3).dtype == torch.float32
    lp32 = model.log_prob(x[:40].float())
    assert lp32.dtype == torch.float32
    # .detach(): a model with nn.Parameters returns a log_prob that carries gradients
    np.testing.assert_allclose(lp32.detach().double().numpy(), lp64.detach().numpy(),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_half_precision_input_is_upcast_to_float32(name):
    make, fit, which = ALL[name]
    x, y, xb = _data(torch.float16)
    model = fit(make(), x, y, xb)
    assert model.dtype == torch.float32  # fitted on half data: computes in float32
    data = x if which == "x" else xb
    for half in (data[:20], data[:20].to(torch.bfloat16)):
        torch.testing.assert_close(model.log_prob(half), model.log_prob(half.float()))
    model.half()
    with pytest.raises(TypeError, match=r"float16 tensors.*call \.float\(\)"):
        model.log_prob(data[:3])


@pytest.mark.parametrize("name", ALL)
def test_sampling_repeats_with_a_generator_and_draws_what_torch_draws(name):
    model, _ = build(name)
    a = model.sample(200, generator=torch.Generator().manual_seed(3))
    b = model.sample(200, generator=torch.Generator().manual_seed(3))
    c = model.sample(200, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(5)
    d = model.sample(20)
    torch.manual_seed(5)
    assert torch.equal(d, model.sample(20))  # the global generator when none is given


# --------------------------------------------------------------------------------------
# state_dict: a fitted model reloads into a fresh one built with the same arguments
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ALL)
def test_state_dict_reloads_into_a_fresh_instance(name, dtype):
    model, x = build(name, dtype)
    fresh = ALL[name][0]()
    if name in TOYS or name in NETWORKS:  # constants / parameters are copied into the
        fresh.to(dtype)  # fresh instance's tensors: convert it first, as for any nn.Module
    fresh.load_state_dict(_saved_and_loaded(model))
    assert fresh.is_fitted and fresh.dtype == dtype
    assert torch.equal(fresh.log_prob(x), model.log_prob(x))
    g = torch.Generator().manual_seed(0)
    assert torch.equal(fresh.sample(50, generator=g),
                       model.sample(50, generator=torch.Generator().manual_seed(0)))
    for attr in type(model)._extra_fitted:  # n_samples_, converged_, n_iter_, ...
        assert getattr(fresh, attr) == getattr(model, attr)
    for attr, value in vars(model).items():  # and the constructor arguments agree
        if not attr.startswith("_") and not attr.endswith("_"):
            assert getattr(fresh, attr) == value, attr


def test_state_dict_of_another_model_is_refused():
    gmm, _ = build("GaussianMixture")
    with pytest.raises(ValueError, match="does not belong to a Gaussian: unexpected extra"):
        Gaussian().load_state_dict(gmm.state_dict())
    kde, _ = build("KernelDensity")
    with pytest.raises(RuntimeError, match="Unexpected key.*data_"):
        Gaussian().load_state_dict(kde.state_dict())
    with pytest.raises(ValueError, match="unexpected extra state"):
        Histogram(0.5).set_extra_state({"n_iter_": 3})


def test_state_dict_keeps_the_fitted_bookkeeping():
    gmm, x = build("GaussianMixture")
    state = _saved_and_loaded(gmm)
    assert state["_extra_state"]["n_iter_"] == gmm.n_iter_ > 1
    assert state["_extra_state"]["lower_bound_history_"] == gmm.lower_bound_history_
    hist, _ = build("Histogram")
    assert _saved_and_loaded(hist)["_extra_state"] == {"n_samples_": 240}


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_bad_input_gets_a_clear_error(name):
    model, x = build(name)
    d = x.shape[1]
    cases = [
        ("x", TypeError, "torch.Tensor or numpy array"),
        (np.array([["a"] * d]), TypeError, "real numbers"),
        (torch.zeros(3, d, dtype=torch.complex64), TypeError, "real numbers"),
        (torch.zeros(3, d + 1), ValueError, f"3 features|{d + 1} features"),
        (torch.zeros(3, d, 1), ValueError, r"shape \[n, "),
        (torch.zeros(0, d), ValueError, "empty"),
        (torch.full((2, d), math.inf), ValueError, "infinite"),
    ]
    if not isinstance(model, (BernoulliNaiveBayes, CategoricalMixture)):  # binary data
        cases.append((torch.ones(3, d, dtype=torch.bool), TypeError, "real numbers"))
    if not isinstance(model, (GaussianNaiveBayes, BernoulliNaiveBayes)):  # NaN = missing there
        cases.append((torch.full((2, d), math.nan), ValueError, "NaN"))
    for value, error, match in cases:
        with pytest.raises(error, match=match):
            model.log_prob(value)
    for n, error in ((0, ValueError), (2.5, TypeError), (True, TypeError), ("3", TypeError)):
        with pytest.raises(error, match="n must"):
            model.sample(n)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        model.sample(3, generator=0)


@pytest.mark.parametrize("name", FITTED)
def test_bad_training_data_gets_a_clear_error(name):
    make, fit, _ = FITTED[name]
    x, y, xb = _data()
    bad = [("x", TypeError, "torch.Tensor or numpy array"),
           (torch.full((10, 2), math.nan), ValueError, "NaN"),
           (torch.zeros(0, 2), ValueError, "empty")]
    for value, error, match in bad:
        with pytest.raises(error, match=match):
            fit(make(), value, y[:len(value)] if isinstance(value, torch.Tensor) else y, value)
    model = make()
    with pytest.raises(RuntimeError):  # a failed fit leaves the model unfitted
        model.log_prob(x)


def test_event_shape_checks_of_the_base_class():
    class Grid(DensityModel):  # events are 2 x 3 arrays, standard normal entries
        def __init__(self):
            super().__init__()
            self.register_buffer("scale_", torch.ones(2, 3))

        @property
        def event_shape(self):
            return self.scale_.shape

        def _log_prob(self, x):
            return torch.distributions.Normal(0.0, self.scale_).log_prob(x).sum((1, 2))

        def _sample(self, n, generator):
            return randn((n, 2, 3), generator, device=self.device, dtype=self.dtype)

    model = Grid()
    x = torch.randn(4, 2, 3)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum((1, 2))
    torch.testing.assert_close(model.log_prob(x), expected)
    assert model.sample(5).shape == (5, 2, 3)
    with pytest.raises(ValueError, match=r"x must have shape \[n, 2, 3\].*got shape \(4, 3, 2\)"):
        model.log_prob(x.transpose(1, 2))
    with pytest.raises(ValueError, match=r"shape \[n, 2, 3\]"):
        model.log_prob(torch.zeros(4, 6))
    assert model.get_extra_state() == {} and model.is_fitted


def test_a_model_without_floating_tensors_says_so():
    class Empty(DensityModel):
        pass

    with pytest.raises(RuntimeError, match="holds no floating-point tensor"):
        _ = Empty().dtype


# --------------------------------------------------------------------------------------
# the random-draw helpers
# --------------------------------------------------------------------------------------

def test_random_helpers_draw_what_torch_draws_from_the_same_generator():
    def gen():
        return torch.Generator().manual_seed(7)

    torch.testing.assert_close(randn((3, 2), gen(), device="cpu", dtype=torch.float64),
                               torch.randn(3, 2, generator=gen(), dtype=torch.float64))
    torch.testing.assert_close(rand((4,), gen(), device="cpu", dtype=torch.float32),
                               torch.rand(4, generator=gen()))
    assert torch.equal(randint(5, (6,), gen(), device="cpu"),
                       torch.randint(5, (6,), generator=gen()))
    probs = torch.tensor([[0.2, 0.8], [1.0, 0.0]])
    draws = multinomial(probs, 3, gen())
    assert torch.equal(draws, torch.multinomial(probs, 3, replacement=True, generator=gen()))
    assert torch.equal(draws[1], torch.zeros(3, dtype=torch.long))  # probability 1
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        randn((2,), 0, device="cpu", dtype=torch.float32)


# --------------------------------------------------------------------------------------
# Apple MPS has no float64: fake its rule on the CPU
# --------------------------------------------------------------------------------------

class NoFloat64(TorchFunctionMode):
    """Fail as soon as a torch call receives, is asked for, or returns a float64 tensor."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        leaves = tree_leaves((args, kwargs))
        if any(a is torch.float64 or (isinstance(a, torch.Tensor) and a.dtype == torch.float64)
               for a in leaves):
            raise AssertionError(f"float64 reaches {getattr(func, '__name__', func)}")
        out = func(*args, **kwargs)
        if any(isinstance(o, torch.Tensor) and o.dtype == torch.float64
               for o in tree_leaves(out)):
            raise AssertionError(f"{getattr(func, '__name__', func)} returned float64")
        return out


def test_the_fake_mps_mode_catches_float64():
    with NoFloat64(), pytest.raises(AssertionError, match="float64"):
        torch.ones(2).double()
    with NoFloat64(), pytest.raises(AssertionError, match="float64"):
        torch.zeros(2, dtype=torch.float64)


@pytest.mark.parametrize("name", ALL)
def test_no_float64_anywhere_for_a_float32_model(name):
    make, fit, which = ALL[name]
    x, y, xb = _data(torch.float32)
    data = x if which == "x" else xb
    with NoFloat64():
        model = fit(make(), x, y, xb)
        model.log_prob(data)
        model.sample(20)
        model.sample(20, generator=torch.Generator().manual_seed(0))
        fresh = make()
        fresh.load_state_dict(model.state_dict())
        fresh.log_prob(data[:5])
        if hasattr(model, "predict_proba"):
            model.predict_proba(data)
        if isinstance(model, (GaussianNaiveBayes, BernoulliNaiveBayes)):
            missing = torch.where(torch.arange(data.shape[1]) < 1, data, torch.nan)
            model.impute(missing, sample=True, generator=torch.Generator().manual_seed(0))
            model.impute(missing)
            model.sample_joint(5)
        if name in TOYS:
            model.entropy(100)


def test_no_float64_in_the_density_functions():
    x, _, _ = _data(torch.float32)
    with NoFloat64():
        kde_log_prob(x[:10], x, 0.3)
        naive_window_log_prob(x[:10], x, 0.3)
        knn_log_density(x[:10], x, 5)
        rule_of_thumb_bandwidth(x, "silverman")
        select_bandwidth(x[:100], x[100:], [0.1, 0.3])
        resp = torch.softmax(torch.randn(240, 3), 1)
        w, m, c = m_step(x, resp)
        e_step(x, w, m, c)


# --------------------------------------------------------------------------------------
# CUDA: every model, against its CPU twin
# --------------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("name", ALL)
def test_every_model_on_cuda_matches_the_cpu(name):
    cpu, x = build(name, torch.float64)
    gpu, x_gpu = build(name, torch.float64, device="cuda")
    assert gpu.device.type == "cuda"
    lp = gpu.log_prob(x_gpu)
    assert lp.device.type == "cuda"
    np.testing.assert_allclose(lp.detach().cpu().numpy(), cpu.log_prob(x).detach().numpy(),
                               rtol=1e-7, atol=1e-9)
    # a CPU tensor is moved to the model's device
    assert gpu.log_prob(x[:5]).device.type == "cuda"
    # a CPU generator draws the same numbers whatever the model's device
    same = gpu.sample(100, generator=torch.Generator().manual_seed(0))
    assert same.device.type == "cuda"
    np.testing.assert_allclose(same.cpu().numpy(),
                               cpu.sample(100, generator=torch.Generator().manual_seed(0)).numpy(),
                               rtol=1e-7, atol=1e-9)
    on_gpu = gpu.sample(100, generator=torch.Generator(device="cuda").manual_seed(0))
    assert on_gpu.device.type == "cuda" and torch.isfinite(gpu.log_prob(on_gpu)).all()
    assert gpu.sample(5).device.type == "cuda"
    fresh = ALL[name][0]()
    fresh.load_state_dict(gpu.state_dict())
    assert fresh.device.type == "cuda"
    assert torch.equal(fresh.log_prob(x_gpu), lp)
    moved = ALL[name][0]()
    moved.load_state_dict({k: v.cpu() if isinstance(v, torch.Tensor) else v
                           for k, v in gpu.state_dict().items()})
    np.testing.assert_allclose(moved.log_prob(x).detach().numpy(), lp.detach().cpu().numpy(),
                               rtol=1e-7, atol=1e-9)
    cpu.to("cuda")  # a CPU model moved to the GPU gives the same values
    np.testing.assert_allclose(cpu.log_prob(x_gpu).detach().cpu().numpy(),
                               lp.detach().cpu().numpy(),
                               rtol=1e-7, atol=1e-9)
