"""Hidden checks of lab 9 (normalizing flows). Instructor only: never released.

Each exercise gets three float64 cases of fresh random sizes and weights and one float32 case.
The expected values come from dgm_lab.flows, in float64, in the grader's process: the
library's layers are loaded with the weights the student's function receives (the soft
bound on log-scales, ``max_log_scale``, is set so high that it never acts, since the lab's
layers have none). Every case keeps the property the exercise is about: log-scales of both
signs, a mask that is not the alternating one, a constant channel (actnorm's epsilon), at
least two pixels and a negative sign in the 1x1 convolution, a MAF whose inverse needs every
one of its D passes. The coupling layer trains the lab's flow, so its gradient is checked too.
"""

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from dgm_lab.autoregressive import MADE
from dgm_lab.flows import AffineCoupling, InvertibleConv1x1, MaskedAffineAutoregressive
from dgm_lab.flows import actnorm_parameters as reference_actnorm_parameters
from dgm_lab.grading import Case, Exercise, Lab, close

F32 = "float32"
NO_BOUND = 1e9  # the library's soft bound c tanh(s / c) on log-scales, switched off


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float64)


def _f32(args: tuple) -> tuple:
    return tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                 for a in args)


# ---- references -------------------------------------------------------------------------

def reference_coupling(mask, w1, b1, w2, b2) -> AffineCoupling:
    """The library's affine coupling with the lab's conditioner, tanh(W1 (m x) + b1) -> W2 h + b2."""
    d, h = w1.shape[1], w1.shape[0]
    net = nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, 2 * d)).double()
    with torch.no_grad():
        net[0].weight.copy_(w1)
        net[0].bias.copy_(b1)
        net[2].weight.copy_(w2)
        net[2].bias.copy_(b2)
    return AffineCoupling(mask.double(), net, max_log_scale=NO_BOUND).double()


def reference_conv(permutation, lower, upper, log_diag, sign) -> InvertibleConv1x1:
    conv = InvertibleConv1x1(len(log_diag)).double()
    with torch.no_grad():
        conv.permutation.copy_(permutation)
        conv.lower.copy_(lower)
        conv.upper.copy_(upper)
        conv.log_diag.copy_(log_diag)
        conv.sign.copy_(sign)
    return conv


def reference_maf_layer(w1, b1, w2, b2, mask1, mask2) -> MaskedAffineAutoregressive:
    d, h = w1.shape[1], w1.shape[0]
    layer = MaskedAffineAutoregressive(d, [h], max_log_scale=NO_BOUND).double()
    first, last = layer.made.layers
    with torch.no_grad():
        first.weight.copy_(w1)
        first.bias.copy_(b1)
        last.weight.copy_(w2)
        last.bias.copy_(b2)
    first.set_mask(mask1)
    last.set_mask(mask2)
    return layer


# ---- cases --------------------------------------------------------------------------------

def _coupling_inputs(rng: np.random.Generator, d: int, n: int) -> tuple:
    h = int(rng.integers(3, 20))
    mask = _t((rng.random(d) < 0.5).astype(float))
    mask[0], mask[-1] = 1.0, 0.0  # at least one kept and one transformed coordinate
    mask = mask[torch.as_tensor(rng.permutation(d))]
    x = _t(rng.normal(scale=2.0, size=(n, d)))
    w1, b1 = _t(rng.normal(size=(h, d))), _t(rng.normal(size=h))
    w2, b2 = _t(rng.normal(scale=0.6, size=(2 * d, h))), _t(rng.normal(scale=0.5, size=2 * d))
    return x, mask, w1, b1, w2, b2


# The coupling layer's arguments whose gradient is checked: all but the mask (the lab's flow
# trains w1, b1, w2, b2 through it, and x carries the gradient from the layer above).
COUPLING_GRADIENT_OF = {0: "x", 2: "w1", 3: "b1", 4: "w2", 5: "b2"}


def _coupling_gradient(x, mask, w1, b1, w2, b2) -> tuple:
    """The reference's gradient of z.sum() + logdet.sum() with respect to x, w1, b1, w2, b2
    (autograd through the library's layer, its weights replaced by these tensors)."""
    x, w1, b1, w2, b2 = (a.detach().requires_grad_(True) for a in (x, w1, b1, w2, b2))
    weights = {"net.0.weight": w1, "net.0.bias": b1, "net.2.weight": w2, "net.2.bias": b2}
    z, logdet = functional_call(reference_coupling(mask, w1, b1, w2, b2), weights, (x,))
    return torch.autograd.grad(z.sum() + logdet.sum(), (x, w1, b1, w2, b2))


def coupling_forward_cases(rng: np.random.Generator):
    for i, d in enumerate((2, int(rng.integers(3, 8)), int(rng.integers(8, 30)), 5)):
        x, *weights = _coupling_inputs(rng, d, int(rng.integers(1, 60)))
        with torch.no_grad():
            expected = reference_coupling(*weights)(x)
        gradient = _coupling_gradient(x, *weights)
        if i == 3:  # each entry of a weight's gradient sums terms over the batch that may
            # cancel: float32 rounding follows the terms, so the gradient's tolerance follows
            # its largest entry (entry by entry, a right answer failed about one seed in 130;
            # relative to the largest, the worst of 6,000 seeds is 1.9e-5)
            yield Case(_f32((x, *weights)), expected=expected, label=f"{F32}, D={d}",
                       compare=close(rtol=1e-4, atol=1e-4, names=("z", "logdet")),
                       expected_gradient=gradient,
                       gradient_compare=close(rtol=1e-4, atol=1e-4, relative_to="largest"))
        else:
            yield Case((x, *weights), expected=expected, label=f"float64, D={d}",
                       expected_gradient=gradient)


def coupling_inverse_cases(rng: np.random.Generator):
    for i, d in enumerate((2, int(rng.integers(3, 8)), int(rng.integers(8, 30)), 5)):
        z, *weights = _coupling_inputs(rng, d, int(rng.integers(1, 60)))
        with torch.no_grad():
            expected = reference_coupling(*weights).inverse(z)
        if i == 3:
            yield Case(_f32((z, *weights)), expected=expected, label=f"{F32}, D={d}",
                       compare=close(rtol=1e-4, atol=1e-4, names=("x", "logdet")))
        else:
            yield Case((z, *weights), expected=expected, label=f"float64, D={d}")


def actnorm_cases(rng: np.random.Generator):
    shapes = [(int(rng.integers(2, 50)), int(rng.integers(2, 6))),
              (int(rng.integers(2, 10)), int(rng.integers(2, 6)), int(rng.integers(1, 6)),
               int(rng.integers(1, 6))),
              (int(rng.integers(2, 10)), 3, 4, 4), (20, 3, 2, 2)]
    for i, shape in enumerate(shapes):
        scale = rng.uniform(0.1, 10.0, size=shape[1])
        if i < 3:  # a constant channel: its scale is 1 / epsilon, which only -log(std + eps) gets
            scale[rng.integers(shape[1])] = 0.0
        scale = scale.reshape((1, -1) + (1,) * (len(shape) - 2))
        # a constant a multiple of 1/4, so that its mean is exact and its std exactly 0
        x = _t(rng.normal(size=shape) * scale + rng.integers(-20, 21) / 4)
        expected = reference_actnorm_parameters(x)
        if i == 3:
            yield Case(_f32((x,)), expected=expected, label=f"{F32}, x {list(shape)}",
                       compare=close(rtol=1e-4, atol=1e-4, names=("shift", "log_scale")))
        else:
            yield Case((x,), expected=expected, label=f"float64, x {list(shape)}")


def _lu_inputs(rng: np.random.Generator, c: int) -> tuple:
    permutation = _t(np.eye(c)[rng.permutation(c)])
    lower = _t(rng.normal(scale=0.5, size=(c, c)))  # the upper part must be ignored
    upper = _t(rng.normal(scale=0.5, size=(c, c)))  # the lower part and diagonal too
    log_diag = _t(rng.normal(scale=0.5, size=c))
    sign = _t(rng.choice([-1.0, 1.0], size=c))
    sign[rng.integers(c)] = -1.0  # an answer that ignores the signs must fail every case
    return permutation, lower, upper, log_diag, sign


def conv1x1_cases(rng: np.random.Generator):
    # at least two pixels everywhere: with one, a log-det without its factor H * W is right
    sizes = [(2, 1), (int(rng.integers(1, 6)), int(rng.integers(2, 6))), (4, 4), (3, 2)]
    for i, (c, (h, w)) in enumerate(zip((2, 3, int(rng.integers(4, 12)), 4), sizes,
                                        strict=True)):
        n = int(rng.integers(1, 20))
        x = _t(rng.normal(size=(n, c, h, w)))
        params = _lu_inputs(rng, c)
        with torch.no_grad():
            expected = reference_conv(*params)(x)
        if i == 3:
            yield Case(_f32((x, *params)), expected=expected, label=f"{F32}, C={c}",
                       compare=close(rtol=1e-4, atol=1e-4, names=("z", "logdet")))
        else:
            yield Case((x, *params), expected=expected, label=f"float64, C={c}, {h}x{w} pixels")


def _maf_inputs(rng: np.random.Generator, d: int) -> tuple:
    """Weights of a one-hidden-layer MADE whose inverse stays of moderate size: the inverse
    feeds each new coordinate into the next pass, so large weights would compound over the D
    passes (redraw until every coordinate stays below 100 in absolute value)."""
    h = int(rng.integers(d, 4 * d + 4))
    made = MADE(d, [h], outputs_per_dim=2, seed=int(rng.integers(0, 2**31)))
    mask1, mask2 = (layer.mask.double() for layer in made.layers)
    while True:
        w1 = _t(rng.normal(scale=1 / np.sqrt(d), size=(h, d)))
        b1 = _t(rng.normal(scale=0.5, size=h))
        w2 = _t(rng.normal(scale=0.5 / np.sqrt(h), size=(2 * d, h)))
        b2 = _t(rng.normal(scale=0.3, size=2 * d))
        z = _t(rng.normal(size=(int(rng.integers(1, 40)), d)))
        with torch.no_grad():
            expected = reference_maf_layer(w1, b1, w2, b2, mask1, mask2).inverse(z)
        if expected[0].abs().max() < 100:
            return (z, w1, b1, w2, b2, mask1, mask2), expected


def maf_inverse_cases(rng: np.random.Generator):
    for i, d in enumerate((2, int(rng.integers(3, 7)), int(rng.integers(7, 16)), 4)):
        args, expected = _maf_inputs(rng, d)
        if i == 3:
            yield Case(_f32(args), expected=expected, label=f"{F32}, D={d}",
                       compare=close(rtol=1e-4, atol=1e-4, names=("x", "logdet")))
        else:
            yield Case(args, expected=expected,
                       label=f"float64, D={d}, {args[1].shape[0]} hidden units")


LAB = Lab(exercises=[
    Exercise(answer="ex1_code", test="ex1_tests", function="coupling_forward",
             cases=coupling_forward_cases, compare=close(rtol=1e-6, atol=1e-8,
                                                         names=("z", "logdet")),
             gradient_of=COUPLING_GRADIENT_OF),
    Exercise(answer="ex2_code", test="ex2_tests", function="coupling_inverse",
             cases=coupling_inverse_cases, compare=close(rtol=1e-6, atol=1e-8,
                                                         names=("x", "logdet"))),
    Exercise(answer="ex3_code", test="ex3_tests", function="actnorm_parameters",
             cases=actnorm_cases, compare=close(rtol=1e-6, atol=1e-8,
                                                names=("shift", "log_scale"))),
    Exercise(answer="ex4_code", test="ex4_tests", function="conv1x1_forward",
             cases=conv1x1_cases, compare=close(rtol=1e-6, atol=1e-8, names=("z", "logdet"))),
    Exercise(answer="ex5_code", test="ex5_tests", function="maf_inverse",
             cases=maf_inverse_cases, compare=close(rtol=1e-6, atol=1e-8,
                                                    names=("x", "logdet"))),
])
