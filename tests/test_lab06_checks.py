"""Lab 6's hidden checks against wrong answers an independent reader wrote.

Each wrong answer is graded on the hidden cases of many seeds, exactly as the grader judges
them (the grader's own drawing of the cases, the runner's call, which notes inputs changed in
place, and the grader's judgement of each case: only the sandbox is left out, to afford many
seeds), and must earn nothing: no case may be so degenerate (one pixel, a one-tap kernel,
dilation 1, one example, one hidden layer, T = 1, a mask size the visible tests show) that it
passes. An answer of the wrong dtype earns exactly the float32 case, on every seed, not a
seed-dependent share. A few right answers written differently from the solution must earn full
marks on the same cases. ``tests/test_labs.py`` grades some of these answers through the whole
pipeline (``READER_FOUND``), and the solution.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from lab_shares import answer_share

from dgm_lab.grading.grader import _draw_cases

LAB = Path(__file__).resolve().parents[1] / "solutions" / "lab06_autoregressive"
SEEDS = range(30)


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
    """The share of the case weights ``answer`` earns on each seed of ``SEEDS``."""
    lab = _lab()
    return [answer_share(lab, function, answer, seed) for seed in SEEDS]


def float32_share(function: str) -> float:
    """The float32 case's share of the weights (the same on every seed)."""
    lab = _lab()
    index, ex = next((i, e) for i, e in enumerate(lab.exercises) if e.function == function)
    cases = _draw_cases(ex, 0, index)
    return sum(c.weight for c in cases if c.label.startswith("float32")) / sum(
        c.weight for c in cases)


def _in_float32(answer):
    """``answer`` computed in float32, whatever the inputs' dtype (the reader's float32 answers:
    close enough to pass a float64 case on some seeds before the dtype was checked)."""
    def cast(*args):
        return answer(*(a.float() if isinstance(a, torch.Tensor) else a for a in args))
    return cast


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
    "right values, weight masked in place": lambda x, w, b: _log_bernoulli(
        x, x @ w.tril_(-1).T + b).sum(1),
}


def _fvsbn(x, weight, bias):
    return _log_bernoulli(x, x @ torch.tril(weight, -1).T + bias).sum(1)


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
    assert share("fvsbn_log_prob", _fvsbn) == 1


def test_a_float32_fvsbn_earns_the_float32_case_on_every_seed():
    assert set(shares("fvsbn_log_prob", _in_float32(_fvsbn))) == {
        float32_share("fvsbn_log_prob")} == {0.25}


# --- exercise 2: NADE's step -------------------------------------------------------------

def _unstable_nade_step(a, x_d, w_d, v_d, b_d):
    logit = b_d + torch.sigmoid(a) @ v_d
    return _unstable_log_bernoulli(x_d, logit), a + x_d[:, None] * w_d


def _nade_step_without_sigmoid(a, x_d, w_d, v_d, b_d):
    return _log_bernoulli(x_d, b_d + a @ v_d), a + x_d[:, None] * w_d


def _nade_step(a, x_d, w_d, v_d, b_d):
    return _log_bernoulli(x_d, b_d + torch.sigmoid(a) @ v_d), a + x_d[:, None] * w_d


def _nade_step_in_place(a, x_d, w_d, v_d, b_d):
    log_p = _log_bernoulli(x_d, b_d + torch.sigmoid(a) @ v_d)
    a += x_d[:, None] * w_d
    return log_p, a


WRONG_NADE = {
    "log of sigmoid": _unstable_nade_step,
    "no sigmoid": _nade_step_without_sigmoid,
    "a_next without [:, None]": lambda a, x_d, w_d, v_d, b_d: (
        _nade_step(a, x_d, w_d, v_d, b_d)[0], a + x_d * w_d),
    "a_next ignores x_d": lambda a, x_d, w_d, v_d, b_d: (
        _nade_step(a, x_d, w_d, v_d, b_d)[0], a + w_d),
    "right values, a changed in place": _nade_step_in_place,
}


@pytest.mark.parametrize("name", WRONG_NADE)
def test_wrong_nade_steps_earn_nothing(name):
    assert max(shares("nade_step", WRONG_NADE[name])) == 0


def test_a_float32_nade_step_earns_the_float32_case_on_every_seed():
    assert share("nade_step", _nade_step) == 1
    assert set(shares("nade_step", _in_float32(_nade_step))) == {
        float32_share("nade_step")} == {0.25}


# --- exercise 3: MADE's masks ------------------------------------------------------------

def _made_masks(degrees, output_from=-1):
    masks = [(b[:, None] >= a[None, :]).float()
             for a, b in zip(degrees[:-1], degrees[1:], strict=True)]
    return [*masks, (degrees[0][:, None] > degrees[output_from][None, :]).float()]


def _made_masks_from_the_inputs(degrees):
    masks = [(b[:, None] >= degrees[0][None, :]).float() for b in degrees[1:]]
    return [*masks, (degrees[0][:, None] > degrees[-1][None, :]).float()]


WRONG_MADE = {
    # right with one hidden layer: every case has two or more
    "output mask from the first hidden layer": lambda degrees: _made_masks(degrees, 1),
    "every hidden layer compared with the inputs": _made_masks_from_the_inputs,
}


@pytest.mark.parametrize("name", WRONG_MADE)
def test_wrong_made_masks_earn_nothing(name):
    assert max(shares("made_masks", WRONG_MADE[name])) == 0


def test_made_masks_as_in_the_solution_earn_full_marks():
    assert share("made_masks", _made_masks) == 1


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
    # right wherever T = 1 (only the last tap reads anything): every case has T >= 2
    "dilation ignored, the last T kept": lambda x, w, b, d: F.conv1d(
        F.pad(x, ((w.shape[2] - 1) * d, 0)), w, b)[..., -x.shape[2]:],
}


@pytest.mark.parametrize("name", WRONG_CAUSAL)
def test_wrong_causal_convolutions_earn_nothing(name):
    assert max(shares("causal_conv1d", WRONG_CAUSAL[name])) == 0


def test_a_float32_causal_convolution_earns_the_float32_case_on_every_seed():
    right = _padded(lambda p: p, lambda p: 0)
    assert share("causal_conv1d", right) == 1
    assert set(shares("causal_conv1d", _in_float32(right))) == {
        float32_share("causal_conv1d")} == {1 / 3.2}


def test_a_causal_convolution_that_ignores_the_bias_earns_only_the_no_bias_case():
    """It is right where there is no bias, so that case weighs 0.2 of a case (0.12 of 2
    points, rounded down to the cent)."""
    ignored = _padded(lambda p: p, lambda p: 0)
    assert set(shares("causal_conv1d", lambda x, w, b, d: ignored(x, w, None, d))) == {0.2 / 3.2}


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
