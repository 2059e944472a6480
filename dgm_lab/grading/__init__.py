"""Grading of the labs: verdicts that a submission cannot forge (see ``docs/grading.md``).

Student code is untrusted: inside its own process it may change anything, so no grade depends
on code that ran there after it did. Only the answer cells run, in a sandbox without
``dgm_lab`` (:mod:`.sandbox`, :mod:`.runner`); they get fresh random inputs and send back plain
data; the hidden checks (``solutions/<lab>/hidden_checks.py``, written with :mod:`.checks`)
judge them in the grader's process (:func:`grade_submission`, :mod:`.grader`), and
:mod:`.autograde` hands the verdicts to ``nbgrader autograde``. :func:`collect_zip` files a
student's zip safely.
"""

from dgm_lab.grading.checks import (
    Case,
    CheckFileError,
    Exercise,
    Lab,
    all_of,
    close,
    each,
    exact,
    keeps_dtype,
    load_lab,
    satisfies,
)
from dgm_lab.grading.collect import UnsafeArchive, collect_zip
from dgm_lab.grading.grader import (
    CaseResult,
    LabSource,
    Report,
    UnreadableNotebook,
    Verdict,
    grade_submission,
    judge_in_process,
    read_notebook,
    solution_namespace,
)
from dgm_lab.grading.runner import Unsupported
from dgm_lab.grading.sandbox import Limits, SandboxError, status

__all__ = [
    "Case", "CaseResult", "CheckFileError", "Exercise", "Lab", "LabSource", "Limits", "Report",
    "SandboxError", "UnreadableNotebook", "UnsafeArchive", "Unsupported", "Verdict", "all_of",
    "close", "collect_zip", "each", "exact", "grade_submission", "judge_in_process",
    "keeps_dtype", "load_lab", "read_notebook", "satisfies", "solution_namespace", "status",
]
