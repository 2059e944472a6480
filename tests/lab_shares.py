"""The share of an exercise's points an answer earns, judged exactly as the grader judges what
comes back from the sandbox (value, gradient, inputs left unchanged), case by case on a seed's
hidden cases; and the seeds on which a float32 case once failed a lab's solution. Shared by the
tests that hold a lab's hidden checks against right and wrong answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from dgm_lab.grading import judge_in_process

# Seeds on which a float32 case once failed the solution (found by grading it on thousands of
# seeds, scripts/check_tolerances.py, after CI failed on one): float32 loses digits in a gradient
# summed over a batch, near saturated tanh units, and in log-densities in the thousands
# (docs/grading.md, "Float32"). Every right answer is graded on them.
ONCE_FAILED = {"lab02_density_estimation": (769,), "lab08_gans": (456, 606, 955, 1526, 4358),
               "lab09_flows": (149, 207, 246)}


def answer_share(lab, function: str, answer: Callable, seed: int) -> float:
    """The share of ``function``'s case weights that ``answer`` earns on ``seed``'s cases of
    ``lab`` (a hidden checks module's ``LAB``)."""
    torch.set_num_threads(1)
    judged = judge_in_process(lab, function, answer, seed)
    return sum(c.weight for c in judged if c.passed) / sum(c.weight for c in judged)


def filled_in(notebook: Path, answers: dict[str, str], out_dir: Path) -> Path:
    """A copy of ``notebook`` in ``out_dir`` whose answer cells (by nbgrader ``grade_id``) hold
    ``answers``: a submission for the real grader."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell["source"] = answers[grade_id]
    path = out_dir / notebook.name
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path
