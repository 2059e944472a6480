"""Lab 8's hidden checks against the answers an independent reader wrote.

Wrong answers that scored (nearly) full marks now lose their points: losses that cannot train
(a Python float, detached losses), a gradient penalty without ``create_graph=True`` (it carries
no gradient into the critic's weights), a one-sided penalty (every case has rows whose gradient
norm is below 1), minibatch statistics with the L2 norm (no case has C = 1, where L1 = L2). Right
answers written differently keep full marks, among them ``torch.distributions.Normal`` with
float parameters (float32 inside) for the optimal discriminator. Each answer is judged case by
case exactly as the grader judges what comes back from the sandbox (value, then gradient), on
several seeds; one submission holding several of them goes through the real grader once.
"""

from pathlib import Path

import pytest
import torch
from lab_shares import ONCE_FAILED, answer_share, filled_in

from dgm_lab.grading import grade_submission
from dgm_lab.grading.grader import LabSource, _draw_cases

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT / "notebooks" / "lab08_gans" / "lab08_gans.ipynb"
LAB = ROOT / "solutions" / "lab08_gans"
SEEDS = range(6)

HEADERS = {
    "discriminator_loss": "def discriminator_loss(real_logits, fake_logits, real_label):\n",
    "generator_losses": "def generator_losses(fake_logits):\n",
    "gaussian_optimal_discriminator":
        "def gaussian_optimal_discriminator(x, mu_r, sigma_r, mu_g, sigma_g):\n",
    "critic_gradient_penalty": "def critic_gradient_penalty(W1, b1, w2, b2, real, fake, alpha):\n",
    "minibatch_features": "def minibatch_features(features, tensor):\n",
}
SP = "softplus = torch.nn.functional.softplus\n"
X_HAT = ("x_hat = (alpha[:, None] * real + (1 - alpha[:, None]) * fake)"
         ".detach().requires_grad_(True)\n")
SCORES = "scores = torch.tanh(x_hat @ W1.T + b1) @ w2 + b2\n"
GRAD = "grad, = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)\n"
M = "m = torch.einsum('na,abc->nbc', features, tensor)\n"


def source(function: str, body: str) -> str:
    return HEADERS[function] + "".join(f"    {line}\n" for line in body.strip("\n").split("\n"))


RIGHT = [
    ("logsigmoid", "discriminator_loss",
     "ls = torch.nn.functional.logsigmoid\n"
     "real = -(real_label * ls(real_logits) + (1 - real_label) * ls(-real_logits))\n"
     "return real.mean() - ls(-fake_logits).mean()"),
    ("list of logsigmoids", "generator_losses",
     "ls = torch.nn.functional.logsigmoid\n"
     "return [ls(-fake_logits).mean(), -ls(fake_logits).mean()]"),
    ("torch.distributions with float parameters", "gaussian_optimal_discriminator",
     "lr = torch.distributions.Normal(mu_r, sigma_r).log_prob(x)\n"
     "lg = torch.distributions.Normal(mu_g, sigma_g).log_prob(x)\n"
     "return torch.sigmoid(lr - lg)"),
    ("logaddexp", "gaussian_optimal_discriminator",
     "lp = lambda mu, s: -0.5 * ((x - mu) / s) ** 2 - math.log(s)\n"
     "lr, lg = lp(mu_r, sigma_r), lp(mu_g, sigma_g)\n"
     "return torch.exp(lr - torch.logaddexp(lr, lg))"),
    ("analytic gradient", "critic_gradient_penalty",
     "x_hat = alpha[:, None] * real + (1 - alpha[:, None]) * fake\n"
     "h = torch.tanh(x_hat @ W1.T + b1)\ngrad = ((1 - h ** 2) * w2) @ W1\n"
     "return ((grad.norm(dim=1) - 1) ** 2).mean()"),
    ("vector_norm", "critic_gradient_penalty",
     X_HAT + SCORES + GRAD + "return torch.mean((torch.linalg.vector_norm(grad, dim=1) - 1) ** 2)"),
    ("per-row loop", "minibatch_features",
     M + "return torch.stack([torch.exp(-(m[i][None] - m).abs().sum(-1)).sum(0) "
     "for i in range(len(m))])"),
]
# (name, function, answer, the most of the points it may keep): a partial share where a case
# is right for it (the loss that forgot the (1 - t) term is right for t = 1, the case without
# label smoothing, and, on some seeds, in the float32 case when the real logits are so negative
# that the missing term is below its tolerance; a float32 result keeps the float32 case)
WRONG = [
    ("loss as a Python float", "discriminator_loss",
     SP + "real = real_label * softplus(-real_logits) + (1 - real_label) * softplus(real_logits)\n"
     "return float(real.mean() + softplus(fake_logits).mean())", 0.0),
    ("forgot the (1 - t) term", "discriminator_loss",
     SP + "return (real_label * softplus(-real_logits)).mean() + softplus(fake_logits).mean()",
     0.5),
    ("detached losses", "generator_losses",
     SP + "return -softplus(fake_logits).mean().detach(), softplus(-fake_logits).mean().detach()",
     0.0),
    ("computed under no_grad", "generator_losses",
     SP + "with torch.no_grad():\n    return -softplus(fake_logits).mean(), "
     "softplus(-fake_logits).mean()", 0.0),
    ("a Normal 1 % too wide", "gaussian_optimal_discriminator",
     "lr = torch.distributions.Normal(mu_r, 1.01 * sigma_r).log_prob(x)\n"
     "lg = torch.distributions.Normal(mu_g, sigma_g).log_prob(x)\n"
     "return torch.sigmoid(lr - lg)", 0.0),
    ("no create_graph", "critic_gradient_penalty",
     X_HAT + SCORES + GRAD.replace(", create_graph=True", "")
     + "return ((grad.norm(dim=1) - 1) ** 2).mean()", 0.0),
    ("one-sided penalty", "critic_gradient_penalty",
     X_HAT + SCORES + GRAD + "return (torch.relu(grad.norm(dim=1) - 1) ** 2).mean()", 0.0),
    ("squared norm", "critic_gradient_penalty",
     X_HAT + SCORES + GRAD + "return ((grad.pow(2).sum(1) - 1) ** 2).mean()", 0.0),
    ("L2 instead of L1", "minibatch_features",
     M + "return torch.exp(-(m[:, None] - m[None, :]).norm(dim=-1)).sum(1)", 0.0),
    ("float32 result", "minibatch_features",
     M + "return torch.exp(-(m[:, None] - m[None, :]).abs().sum(-1)).sum(1).float()", 0.25),
]


def _share(function: str, body: str, seed: int) -> float:
    """The share of the exercise's points the answer gets on this seed's cases (see
    ``lab_shares``)."""
    namespace: dict = {"torch": torch, "math": __import__("math")}
    exec(source(function, body), namespace)  # noqa: S102 - the test's own answers
    return answer_share(LabSource.load(LAB).lab, function, namespace[function], seed)


@pytest.mark.parametrize("name, function, body", RIGHT, ids=[r[0] for r in RIGHT])
def test_a_right_answer_written_differently_keeps_full_marks(name, function, body):
    torch.set_num_threads(1)
    seeds = [*SEEDS, *ONCE_FAILED["lab08_gans"]]  # and the seeds that once failed the solution
    assert [_share(function, body, seed) for seed in seeds] == [1.0] * len(seeds)


@pytest.mark.parametrize("name, function, body, most", WRONG, ids=[w[0] for w in WRONG])
def test_the_wrong_answers_the_reader_found_lose_their_points(name, function, body, most):
    torch.set_num_threads(1)
    shares = [_share(function, body, seed) for seed in SEEDS]
    assert max(shares) <= most, (name, shares)


def test_every_penalty_case_has_rows_on_both_sides_of_norm_one():
    """The one-sided penalty is wrong only on rows whose gradient norm is below 1: every case
    has some, and rows above 1 too (so a penalty that only sees the rows below fails too)."""
    lab = LabSource.load(LAB).lab
    index, ex = next((i, e) for i, e in enumerate(lab.exercises)
                     if e.function == "critic_gradient_penalty")
    for seed in SEEDS:
        for case in _draw_cases(ex, seed, index):
            W1, b1, w2, b2, real, fake, alpha = (a.double() if torch.is_tensor(a) else a
                                                 for a in case.args)
            x = (alpha[:, None] * real + (1 - alpha[:, None]) * fake).requires_grad_(True)
            grad, = torch.autograd.grad((torch.tanh(x @ W1.T + b1) @ w2 + b2).sum(), x)
            norms = grad.norm(dim=1)
            assert (norms < 1).any() and (norms > 1).any(), (seed, case.label, norms)


def _named(name: str) -> tuple[str, str]:
    function, body = next((w[1], w[2]) for w in WRONG + RIGHT if w[0] == name)
    return function, source(function, body)


def test_the_real_grader_takes_the_points_of_the_wrong_answers(tmp_path):
    """Through the sandbox: a loss returned as a float, detached generator losses and a
    penalty without create_graph score 0; torch.distributions with float parameters scores
    full marks; L2 minibatch statistics score 0."""
    cells = {"ex1_code": "loss as a Python float", "ex2_code": "detached losses",
             "ex3_code": "torch.distributions with float parameters",
             "ex4_code": "no create_graph", "ex5_code": "L2 instead of L1"}
    answers = {k: _named(v)[1] for k, v in cells.items()}
    report = grade_submission(LAB, filled_in(RELEASED, answers, tmp_path), seed=11)
    by_function = {v.function: v for v in report.verdicts}
    for function in ("discriminator_loss", "generator_losses", "critic_gradient_penalty"):
        verdict = by_function[function]
        assert verdict.score == 0 and "carries no gradient" in verdict.message, verdict.message
    optimal = by_function["gaussian_optimal_discriminator"]
    assert optimal.score == optimal.points, optimal.message
    assert by_function["minibatch_features"].score == 0, by_function["minibatch_features"].message
