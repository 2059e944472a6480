"""Lab 4's hidden checks through the real grader: wrong answers an independent reader found.

tests/test_labs.py checks every lab generically (the solution scores full marks, a perturbed
answer fails). Here are the answers that are right in most cases but miss the point of an
exercise, or break a rule of its docstring, and what the grader must give them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lab_shares import filled_in

from dgm_lab.grading import grade_submission

LAB = Path(__file__).resolve().parents[1] / "solutions" / "lab04_boltzmann_machines"

STATES = ("    d = len(bias)\n"
          "    bits = ((torch.arange(2 ** d)[:, None] >> torch.arange(d)) & 1).to(weights.dtype)\n"
          "    states = 2 * bits - 1 if units == 'spin' else bits\n"
          "    ne = 0.5 * ((states @ weights) * states).sum(1) + states @ bias\n")
LOG_Z = "def log_partition(weights, bias, units):\n" + STATES
GIBBS = ("def {name}(v, weight, visible_bias, hidden_bias, u_h, u_v{lr}):\n"
         "    v_neg = v\n"
         "    for t in range(len(u_h)):\n"
         "        h = (u_h[t] < torch.sigmoid(v_neg @ weight + hidden_bias)).to(v.dtype)\n"
         "        v_neg = (u_v[t] < torch.sigmoid(h @ weight.T + visible_bias)).to(v.dtype)\n")
ANSWERS = {
    # a number is a number: .item() is as good as the 0-dim tensor
    "python float": {"ex1_code": LOG_Z + "    return torch.logsumexp(ne, 0).item()\n"},
    "plain exp": {"ex1_code": LOG_Z + "    return torch.log(torch.exp(ne).sum())\n"},
    "spins ignored": {"ex1_code": LOG_Z.replace("2 * bits - 1 if units == 'spin' else bits",
                                                "bits")
                      + "    return torch.logsumexp(ne, 0)\n"},
    "log(1 + exp)": {"ex2_code": (
        "def free_energy(v, weight, visible_bias, hidden_bias):\n"
        "    a = v @ weight + hidden_bias\n"
        "    return -v @ visible_bias - torch.log(1 + torch.exp(a)).sum(1)\n")},
    "float32 out": {"ex3_code": (
        "def gibbs_step(v, weight, visible_bias, hidden_bias, u_h, u_v):\n"
        "    h = (u_h < torch.sigmoid(v @ weight + hidden_bias)).float()\n"
        "    v_new = (u_v < torch.sigmoid(h.to(v.dtype) @ weight.T + visible_bias)).float()\n"
        "    return h, v_new\n")},
    "in place": {"ex4_code": GIBBS.format(name="cd_update", lr=", lr") + (
        "    h_pos = torch.sigmoid(v @ weight + hidden_bias)\n"
        "    h_neg = torch.sigmoid(v_neg @ weight + hidden_bias)\n"
        "    weight += lr * (v.T @ h_pos - v_neg.T @ h_neg) / len(v)\n"
        "    visible_bias += lr * (v - v_neg).mean(0)\n"
        "    hidden_bias += lr * (h_pos - h_neg).mean(0)\n"
        "    return weight, visible_bias, hidden_bias\n")},
}
# (answer, exercise index, the most it may earn, the least, words of the message)
EXPECTED = [
    ("python float", 0, 3.0, 3.0, "passed all"),
    ("plain exp", 0, 0.55 * 3, 0.3, "infinite value"),
    ("spins ignored", 0, 0.55 * 3, 0.3, "spin units): value differs"),
    ("log(1 + exp)", 1, 0.55 * 2, 0.3, "a hidden bias of 900): contains an infinite value"),
    ("float32 out", 2, 0.35 * 2, 0.0, "h and v_new must be float tensors in the dtype of v"),
    # (the one-unit case, weight 1/4, often needs no change at all)
    ("in place", 3, 0.2, 0.0, "changed its input weight, visible_bias, hidden_bias in place"),
]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three submissions (each exercise's wrong answers spread over them), seed 0."""
    batches = [["python float", "log(1 + exp)", "float32 out", "in place"], ["plain exp"],
               ["spins ignored"]]
    out = {}
    for i, names in enumerate(batches):
        answers = {k: v for name in names for k, v in ANSWERS[name].items()}
        report = grade_submission(LAB, filled_in(LAB / f"{LAB.name}.ipynb", answers,
                                                    tmp_path_factory.mktemp(f"s{i}")),
                                  seed=0)
        out.update({name: report for name in names})
    return out


@pytest.mark.parametrize("name, index, most, least, words", EXPECTED,
                         ids=[e[0] for e in EXPECTED])
def test_a_wrong_answer_earns_what_it_deserves(reports, name, index, most, least, words):
    verdict = reports[name].verdicts[index]
    assert least <= verdict.score <= most, (name, verdict.score, verdict.message)
    assert words in verdict.message, verdict.message
    # the other exercises of the submission are the solution's, or wrong answers of their own
    others = {n for n, r in reports.items() if r is reports[name]}
    wrong = {next(iter(ANSWERS[n])) for n in others}
    for v in reports[name].verdicts:
        if v.answer not in wrong:
            assert v.score == v.points, (v.answer, v.message)
