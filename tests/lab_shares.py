"""The share of an exercise's points an answer earns, judged exactly as the grader judges what
comes back from the sandbox (value, gradient, inputs left unchanged), case by case on a seed's
hidden cases. Shared by the tests that hold a lab's hidden checks against wrong answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch

from dgm_lab.grading import Limits
from dgm_lab.grading import runner as safe_format
from dgm_lab.grading.grader import _draw_cases, _judge


def answer_share(lab, function: str, answer: Callable, seed: int) -> float:
    """The share of ``function``'s case weights that ``answer`` earns on ``seed``'s cases of
    ``lab`` (a hidden checks module's ``LAB``)."""
    index, ex = next((i, e) for i, e in enumerate(lab.exercises) if e.function == function)
    torch.set_num_threads(1)
    cases = _draw_cases(ex, seed, index)
    results = [safe_format.call(answer, c.args, c.kwargs, list(ex.gradient_of)) for c in cases]
    # the grader reads only the source's Lab (to word an error)
    judged, _ = _judge(ex, cases, results, SimpleNamespace(lab=lab), Limits())
    return sum(c.weight for c in judged if c.passed) / sum(c.weight for c in cases)


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
