"""Lab 6's hidden checks against wrong answers an independent reader wrote.

Each wrong answer is graded on the hidden cases of several seeds, exactly as the grader judges
a returned value (``dgm_lab.grading``'s comparison of each case), and must earn nothing: no case
may be so degenerate (one pixel, a one-tap kernel, dilation 1, a mask size the visible tests
show) that it passes. A few right answers written differently from the solution must earn full
marks on the same cases. ``tests/test_labs.py`` runs the whole pipeline on the solution.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dgm_lab.grading import runner as safe_format
from dgm_lab.grading.grader import _draw_cases

LAB = Path(__file__).resolve().parents[1] / "solutions" / "lab06_autoregressive"
SEEDS = range(8)


def _lab():
    spec = importlib.util.spec_from_file_location("lab06_hidden_checks", LAB / "hidden_checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LAB


def share(function: str, answer) -> float:
    """The smallest share of the case weights ``answer`` earns over ``SEEDS`` (the largest
    when it is wrong: see ``worst``)."""
    return min(shares(function, answer))


def shares(function: str, answer) -> list[float]:
    lab = _lab()
    index, ex = next((i, e) for i, e in enumerate(lab.exercises) if e.function == function)
    torch.set_num_threads(1)
    out = []
    for seed in SEEDS:
        cases = _draw_cases(ex, seed, index)
        earned = 0.0
        for case in cases:
            result = safe_format.call(answer, case.args, case.kwargs, [])
            if "error" not in result and (case.compare or ex.compare)(result["value"],
                                                                     case) is None:
                earned += case.weight
        out.append(earned / sum(c.weight for c in cases))
    return out


def _log_bernoulli(x, logits):
    return x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)


def _unstable_log_bernoulli(x, logits):
    p = torch.sigmoid(logits)
    return x * torch.log(p) + (1 - x) * torch.log(1 - p)


# --- exercise 1: FVSBN -------------------------------------------------------------------

WRONG_FVSBN = {
    "W not transposed": lambda x, w, b: _log_bernoulli(x, x @ torch.tril(w, -1) + b).sum(1),
    "upper triangle": lambda x, w, b: _log_bernoulli(x, x @ torch.triu(w, 1).T + b).sum(1),
    "diagonal kept": lambda x, w, b: _log_bernoulli(x, x @ torch.tril(w).T + b).sum(1),
    "mean over D": lambda x, w, b: _log_bernoulli(x, x @ torch.tril(w, -1).T + b).mean(1),
    "log of sigmoid": lambda x, w, b: _unstable_log_bernoulli(
        x, x @ torch.tril(w, -1).T + b).sum(1),
}


@pytest.mark.parametrize("name", WRONG_FVSBN)
def test_wrong_fvsbn_answers_earn_nothing(name):
    assert max(shares("fvsbn_log_prob", WRONG_FVSBN[name])) == 0


def test_fvsbn_as_a_loop_of_logistic_regressions_earns_full_marks():
    def loop(x, weight, bias):
        out = torch.zeros(len(x), dtype=x.dtype)
        for d in range(x.shape[1]):
            logit = bias[d] + x[:, :d] @ weight[d, :d]
            out = out - F.binary_cross_entropy_with_logits(logit, x[:, d], reduction="none")
        return out
    assert share("fvsbn_log_prob", loop) == 1


# --- exercise 2: NADE's step -------------------------------------------------------------

def _unstable_nade_step(a, x_d, w_d, v_d, b_d):
    logit = b_d + torch.sigmoid(a) @ v_d
    return _unstable_log_bernoulli(x_d, logit), a + x_d[:, None] * w_d


def _nade_step_without_sigmoid(a, x_d, w_d, v_d, b_d):
    return _log_bernoulli(x_d, b_d + a @ v_d), a + x_d[:, None] * w_d


@pytest.mark.parametrize("answer", [_unstable_nade_step, _nade_step_without_sigmoid])
def test_wrong_nade_steps_earn_nothing(answer):
    assert max(shares("nade_step", answer)) == 0


# --- exercise 4: the PixelCNN mask -------------------------------------------------------

def _mask(k, centre_row_end, transposed=False):
    m = torch.zeros(k, k)
    m[: k // 2] = 1
    m[k // 2, :centre_row_end] = 1
    return m.T.contiguous() if transposed else m


VISIBLE = {(1, "A"): _mask(1, 0), (1, "B"): _mask(1, 1), (3, "A"): _mask(3, 1),
           (3, "B"): _mask(3, 2), (5, "A"): _mask(5, 2), (5, "B"): _mask(5, 3)}
WRONG_MASKS = {
    "the visible tests hard-coded": lambda k, t: VISIBLE.get((k, t), torch.zeros(k, k)),
    "transposed": lambda k, t: _mask(k, k // 2 + (t == "B"), transposed=True),
    "A and B swapped": lambda k, t: _mask(k, k // 2 + (t == "A")),
    "centre row one too far": lambda k, t: _mask(k, k // 2 + 1 + (t == "B")),
}


@pytest.mark.parametrize("name", WRONG_MASKS)
def test_wrong_pixelcnn_masks_earn_nothing(name):
    assert max(shares("pixelcnn_mask", WRONG_MASKS[name])) == 0


# --- exercise 5: the causal convolution ---------------------------------------------------

def _padded(left, right, flip=False, dilate=True):
    def conv(x, weight, bias, dilation):
        span = (weight.shape[2] - 1) * dilation
        w = weight.flip(-1) if flip else weight
        return F.conv1d(F.pad(x, (left(span), right(span))), w, bias,
                        dilation=dilation if dilate else 1)[..., : x.shape[2]]
    return conv


WRONG_CAUSAL = {
    "symmetric padding": _padded(lambda p: p // 2, lambda p: p - p // 2),
    "right padding": _padded(lambda p: 0, lambda p: p),
    "flipped kernel": _padded(lambda p: p, lambda p: 0, flip=True),
    "dilation ignored": _padded(lambda p: p, lambda p: 0, dilate=False),
}


@pytest.mark.parametrize("name", WRONG_CAUSAL)
def test_wrong_causal_convolutions_earn_nothing(name):
    assert max(shares("causal_conv1d", WRONG_CAUSAL[name])) == 0


def test_a_float32_causal_convolution_earns_only_the_float32_case():
    def in_float32(x, weight, bias, dilation):
        left = (weight.shape[2] - 1) * dilation
        return F.conv1d(F.pad(x.float(), (left, 0)), weight.float(),
                        None if bias is None else bias.float(), dilation=dilation)
    assert max(shares("causal_conv1d", in_float32)) <= 0.25


def test_a_causal_convolution_as_a_loop_over_taps_earns_full_marks():
    def taps(x, weight, bias, dilation):
        n, _, length = x.shape
        k = weight.shape[2]
        y = torch.zeros(n, weight.shape[0], length, dtype=x.dtype)
        for j in range(k):
            shift = (k - 1 - j) * dilation
            if shift < length:
                y[..., shift:] += torch.einsum("oc,nct->not", weight[:, :, j],
                                               x[..., : length - shift])
        return y if bias is None else y + bias[None, :, None]
    assert share("causal_conv1d", taps) == 1
