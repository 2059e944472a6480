"""Hidden checks of lab 6 (autoregressive models). Instructor only: never released.

Each exercise gets float64 cases of fresh random sizes covering the kinds of input it must
handle, the edge case it is about, and one float32 case with looser tolerances: weights with
junk on and above the diagonal (FVSBN must read only the strict lower triangle), a logit far
in the tail in *every* case of exercises 1 and 2 (log-sigmoid, not log of sigmoid, is what
they ask), NADE's step given only the pre-activation a_d (never the prefix x_<d), several
hidden layers, random orderings, dilations larger than the kernel. Expected values come from
dgm_lab's references, in float64, in the grader's process.

No case is degenerate enough to let a wrong answer through: FVSBN has D >= 2 (with one
pixel a transposed or upper-triangle mask and a mean instead of a sum all look right), the
PixelCNN masks are larger than any visible test's (so that hard-coding the visible ones earns
nothing, and a transposed mask or a centre-row slip shows), and every causal convolution has
k >= 2 taps and a dilation >= 2 (with one tap any padding is right; with dilation 1 padding
that ignores the dilation is) on a signal of T >= 2 steps (with T = 1 only the last tap reads
anything). NADE's step sees at least two examples with each value of x_d in every case (so a
next pre-activation that ignores x_d, or broadcasts it along H, is wrong everywhere), every MADE
has two or more hidden layers (with one, an output mask from the first hidden layer's degrees is
right), and the one case without a bias weighs 0.2 of a case (an answer that ignores the bias
is right there). Every float result must keep its inputs' dtype (``keeps_dtype``): a float32
answer to float64 inputs would otherwise pass whenever its rounding happened to stay inside
the tolerance, a lottery over seeds. ``tests/test_lab06_checks.py`` grades such wrong answers.
"""

import numpy as np
import torch

from dgm_lab import autoregressive as ref
from dgm_lab.grading import Case, Exercise, Lab, close, exact, keeps_dtype

F32 = "float32"
NADE_NAMES = ("log_p", "a_next")
F32_CLOSE = keeps_dtype(close(rtol=1e-4, atol=1e-4))


def _binary(rng: np.random.Generator, n: int, d: int) -> torch.Tensor:
    return torch.as_tensor((rng.random((n, d)) < rng.uniform(0.2, 0.8)).astype(np.float64))


def _normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.as_tensor(rng.normal(scale=scale, size=shape))


def fvsbn_cases(rng: np.random.Generator):
    dims = (2, int(rng.integers(3, 8)), int(rng.integers(20, 65)), int(rng.integers(5, 30)))
    for i, d in enumerate(dims):
        n = int(rng.integers(10, 200))
        x = _binary(rng, n, d)
        weight = _normal(rng, d, d, scale=rng.uniform(0.5, 3.0))  # junk on the diagonal too
        bias = _normal(rng, d, scale=2.0)
        # a logit deep in the tail (>= 80 whatever the earlier pixels): log sigmoid(-80) needs
        # logsigmoid, log(1 - sigmoid(80)) is -inf
        tail = int(rng.integers(d))
        bias[tail], x[0, tail] = 80.0 + weight[tail].abs().sum(), 0.0
        expected = ref.fvsbn_log_prob(x, weight, bias)
        if i == len(dims) - 1:
            yield Case((x.float(), weight.float(), bias.float()), expected=expected,
                       label=f"{F32}, D={d}", compare=keeps_dtype(close(rtol=1e-4, atol=1e-3)))
        else:
            yield Case((x, weight, bias), expected=expected, label=f"float64, D={d}")


def nade_cases(rng: np.random.Generator):
    """One step of the recursion at coordinate d of a random NADE. The grader builds a_d from
    scratch from a real prefix x_<d, which the answer never sees (so it cannot recompute a_d
    from scratch: the O(D^2 H) answer has nothing to recompute from); the expected conditional
    is the difference of the reference's log-likelihoods of the prefixes of length d + 1 and
    d (a prefix of a NADE is a NADE), and the expected a_{d+1} is computed from scratch too."""
    shapes = ((int(rng.integers(4, 10)), 0, int(rng.integers(1, 6))),  # the first step
              (int(rng.integers(4, 10)), None, 1),
              (int(rng.integers(30, 80)), None, int(rng.integers(10, 60))),
              (int(rng.integers(5, 30)), None, int(rng.integers(3, 20))))
    for i, (n, d, h) in enumerate(shapes):
        dim = int(rng.integers(2, 40))
        d = int(rng.integers(1, dim)) if d is None else d
        x = _binary(rng, n, dim)
        W, c = _normal(rng, h, dim), _normal(rng, h)
        V, b = _normal(rng, dim, h, scale=rng.uniform(0.5, 4.0)), _normal(rng, dim)
        b[d] = -800.0  # a logit deep in the tail: log sigmoid is -800, log of sigmoid -inf
        # two examples with each value of x_d: a_next that ignores x_d (or drops the
        # [:, None] and broadcasts x_d along H) is wrong in every case
        x[:4, d] = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=x.dtype)
        a = c + x[:, :d] @ W[:, :d].T
        a_next = c + x[:, :d + 1] @ W[:, :d + 1].T
        log_p = ref.nade_log_prob(x[:, :d + 1], W[:, :d + 1], c, V[:d + 1], b[:d + 1])
        if d > 0:
            log_p = log_p - ref.nade_log_prob(x[:, :d], W[:, :d], c, V[:d], b[:d])
        args = (a, x[:, d], W[:, d], V[d], b[d])
        if i == len(shapes) - 1:
            yield Case(tuple(t.float() for t in args), expected=(log_p, a_next),
                       label=f"{F32}, d={d}, H={h}",
                       compare=keeps_dtype(close(rtol=1e-4, atol=1e-4, names=NADE_NAMES),
                                           names=NADE_NAMES))
        else:
            yield Case(args, expected=(log_p, a_next), label=f"float64, d={d}, H={h}")


def made_cases(rng: np.random.Generator):
    # two or more hidden layers in every case: with one, an output mask built from the first
    # hidden layer's degrees (instead of the last's) is right
    for layers in (2, int(rng.integers(2, 5)), int(rng.integers(3, 5))):
        d = int(rng.integers(2, 30))
        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        hidden = [int(rng.integers(1, 60)) for _ in range(layers)]
        order = torch.randperm(d, generator=g)
        degrees = ref.made_degrees(d, hidden, order=order, generator=g)
        yield Case((degrees,), expected=ref.made_masks(degrees),
                   label=f"D={d}, hidden layers {hidden}")
    # a small network: three inputs, two hidden layers of one unit (of different degrees:
    # with D = 2 every hidden degree is 1, and the two layers' masks cannot be told apart)
    degrees = [torch.tensor([2, 3, 1]), torch.tensor([1]), torch.tensor([2])]
    yield Case((degrees,), expected=ref.made_masks(degrees),
               label="D=3, two hidden layers of one unit")


def mask_cases(rng: np.random.Generator):
    # three odd sizes from 7 to 31; the visible tests show k = 1, 3, 5
    sizes = sorted(int(k) for k in rng.choice(np.arange(7, 32, 2), size=3, replace=False))
    for k in sizes:
        for kind in ("A", "B"):
            yield Case((k, kind), expected=ref.pixelcnn_mask(k, kind), label=f"k={k}, mask {kind}")


def causal_cases(rng: np.random.Generator):
    for i in range(4):
        n, c_in, c_out = (int(rng.integers(1, 6)) for _ in range(3))
        k, dilation = int(rng.integers(2, 6)), int(rng.integers(2, 9))
        # T >= 2 everywhere (with T = 1 only the last tap reads anything, and a convolution
        # that forgets the dilation is right); case 2 has T <= the reach (k - 1) * dilation
        reach = (k - 1) * dilation
        length = int(rng.integers(2, 60)) if i != 2 else int(rng.integers(2, reach + 1))
        x = _normal(rng, n, c_in, length)
        weight = _normal(rng, c_out, c_in, k)
        bias = _normal(rng, c_out) if i != 1 else None
        expected = ref.causal_conv1d(x, weight, bias, dilation)
        label = f"k={k}, dilation={dilation}, T={length}" + (", no bias" if bias is None else "")
        # an answer that ignores the bias is right on the no-bias case: it weighs little
        weight_of_case = 0.2 if bias is None else 1.0
        if i == 3:
            yield Case((x.float(), weight.float(), bias.float(), dilation), expected=expected,
                       label=f"{F32}, {label}", compare=F32_CLOSE)
        else:
            yield Case((x, weight, bias, dilation), expected=expected, label=f"float64, {label}",
                       weight=weight_of_case)


LAB = Lab(exercises=[
    Exercise(answer="ex1_code", test="ex1_tests", function="fvsbn_log_prob",
             cases=fvsbn_cases, compare=keeps_dtype(close(rtol=1e-7, atol=1e-7))),
    Exercise(answer="ex2_code", test="ex2_tests", function="nade_step", cases=nade_cases,
             compare=keeps_dtype(close(rtol=1e-7, atol=1e-7, names=NADE_NAMES),
                                 names=NADE_NAMES)),
    Exercise(answer="ex3_code", test="ex3_tests", function="made_masks", cases=made_cases,
             compare=exact()),
    Exercise(answer="ex4_code", test="ex4_tests", function="pixelcnn_mask", cases=mask_cases,
             compare=exact()),
    Exercise(answer="ex5_code", test="ex5_tests", function="causal_conv1d",
             cases=causal_cases, compare=keeps_dtype(close(rtol=1e-7, atol=1e-9))),
])
