"""Lab 9's hidden checks reject the wrong answers an independent reader found scoring full or
most marks: a coupling layer that cannot train (detached), actnorm without its epsilon on a
constant channel, a 1x1 convolution whose log-det forgets H * W or whose matrix ignores the
signs. Each answer is graded case by case exactly as the grader judges what comes back from
the sandbox (value, then gradient), on several seeds; one submission holding them all goes
through the real grader once."""

from pathlib import Path

import pytest
import torch
from lab_shares import ONCE_FAILED, answer_share, filled_in

from dgm_lab.grading import grade_submission
from dgm_lab.grading.grader import LabSource

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT / "notebooks" / "lab09_flows" / "lab09_flows.ipynb"
LAB = ROOT / "solutions" / "lab09_flows"

COUPLING = """\
def coupling_forward(x, mask, w1, b1, w2, b2):
    d = x.shape[1]
    out = torch.tanh((x * mask) @ w1.T + b1) @ w2.T + b2
    s = out[:, :d] * (1 - mask)
    t = out[:, d:] * (1 - mask)
    return {ret}
"""
ACTNORM = """\
def actnorm_parameters(x):
    dims = (0,) if x.dim() == 2 else (0, 2, 3)
    mean = x.mean(dims)
    return -mean, {log_scale}
"""
CONV = """\
def conv1x1_forward(x, permutation, lower, upper, log_diag, sign):
    c, h, w = x.shape[1:]
    eye = torch.eye(c, dtype=x.dtype)
    diag = torch.diag({signed} torch.exp(log_diag))
    weight = permutation @ (torch.tril(lower, -1) + eye) @ (torch.triu(upper, 1) + diag)
    return torch.einsum("oc,nchw->nohw", weight, x), ({pixels} log_diag.sum()).expand(len(x))
"""
RIGHT = {
    "coupling_forward": COUPLING.format(ret="x * torch.exp(s) + t, s.sum(1)"),
    "actnorm_parameters": ACTNORM.format(
        log_scale="-torch.log(x.var(dims, unbiased=False).sqrt() + 1e-6)"),
    "conv1x1_forward": CONV.format(signed="sign *", pixels="h * w *"),
}
# (name, function, answer, the most of the points it may keep: the float32 case's share where
# that case cannot tell it apart)
WRONG = [
    ("coupling detached", "coupling_forward",
     COUPLING.format(ret="(x * torch.exp(s) + t).detach(), s.sum(1).detach()"), 0.0),
    ("coupling under no_grad", "coupling_forward", COUPLING.replace(
        "    d = x.shape[1]\n", "    d = x.shape[1]\n    torch.set_grad_enabled(False)\n").replace(
        "    return", "    torch.set_grad_enabled(True)\n    return").format(
        ret="x * torch.exp(s) + t, s.sum(1)"), 0.0),
    ("coupling logdet detached", "coupling_forward",
     COUPLING.format(ret="x * torch.exp(s) + t, s.sum(1).detach()"), 0.0),
    ("coupling shift detached", "coupling_forward",
     COUPLING.format(ret="x * torch.exp(s) + t.detach(), s.sum(1)"), 0.0),
    ("actnorm without epsilon", "actnorm_parameters",
     ACTNORM.format(log_scale="-torch.log(x.var(dims, unbiased=False).sqrt())"), 0.25),
    ("actnorm epsilon inside the root", "actnorm_parameters",
     ACTNORM.format(log_scale="-0.5 * torch.log(x.var(dims, unbiased=False) + 1e-6)"), 0.25),
    ("conv log-det without H * W", "conv1x1_forward",
     CONV.format(signed="sign *", pixels=""), 0.0),
    ("conv signs ignored", "conv1x1_forward", CONV.format(signed="", pixels="h * w *"), 0.0),
]
SEEDS = range(5)


def _share(function: str, answer: str, seed: int) -> float:
    """The share of the exercise's points the answer gets on this seed's cases (see
    ``lab_shares``)."""
    namespace: dict = {"torch": torch}
    exec(answer, namespace)  # noqa: S102 - the test's own answers
    return answer_share(LabSource.load(LAB).lab, function, namespace[function], seed)


@pytest.mark.parametrize("function", sorted(RIGHT))
def test_a_right_answer_written_differently_keeps_full_marks(function):
    torch.set_num_threads(1)
    seeds = [*SEEDS, *ONCE_FAILED["lab09_flows"]]  # and the seeds that once failed the solution
    assert [_share(function, RIGHT[function], seed) for seed in seeds] == [1.0] * len(seeds)


@pytest.mark.parametrize("name, function, answer, most", WRONG, ids=[w[0] for w in WRONG])
def test_the_wrong_answers_the_reader_found_lose_their_points(name, function, answer, most):
    torch.set_num_threads(1)
    shares = [_share(function, answer, seed) for seed in SEEDS]
    assert max(shares) <= most, (name, shares)


def test_the_real_grader_takes_the_points_of_the_wrong_answers(tmp_path):
    """Through the sandbox: a detached coupling layer, actnorm without epsilon and a 1x1
    convolution without H * W each lost (almost) all their points."""
    answers = {"ex1_code": WRONG[0][2], "ex3_code": WRONG[4][2], "ex4_code": WRONG[6][2]}
    report = grade_submission(LAB, filled_in(RELEASED, answers, tmp_path), seed=3)
    by_function = {v.function: v for v in report.verdicts}
    coupling, actnorm, conv = (by_function[f] for f in
                               ("coupling_forward", "actnorm_parameters", "conv1x1_forward"))
    assert coupling.score == 0 and "carries no gradient" in coupling.message, coupling.message
    assert actnorm.score <= 0.25 * actnorm.points, actnorm.message
    assert conv.score == 0, conv.message
