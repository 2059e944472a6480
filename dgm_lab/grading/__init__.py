"""Grading of the labs: verdicts that a submission cannot forge.

**Trust model.** A student's code is untrusted: inside its own process it may change anything
(patch assertion helpers, replace modules in ``sys.modules``, read files, loop forever, end or
crash the process). So no grade depends on code that ran in that process after the student's
code did. The student's answer cells run only in a sandboxed process that has no ``dgm_lab``
and no view of the course (:mod:`dgm_lab.grading.sandbox`); that process gets fresh random
inputs and sends back plain data (tensors, arrays, numbers) in a format that cannot carry code
(:mod:`dgm_lab.grading.runner`); the expected values, the comparisons and the points are
computed in the grader's own process (:mod:`dgm_lab.grading.grader`), from hidden checks that
live outside the notebooks (``solutions/<lab>/hidden_checks.py``, written with
:mod:`dgm_lab.grading.checks`) and are never released.

The pieces:

- :func:`grade_submission` grades one notebook and returns a :class:`Report` of
  :class:`Verdict` s (independent of nbgrader);
- :mod:`dgm_lab.grading.autograde` plugs it into ``nbgrader autograde`` (configured in the
  course's ``nbgrader_config.py``): the verdicts become the graded test cells' outputs, from
  which nbgrader's gradebook, feedback and export take the scores;
- :func:`collect_zip` puts a student's zip into ``submitted/<student>/<lab>/`` safely;
- :class:`Lab`, :class:`Exercise`, :class:`Case`, :func:`close`, :func:`exact`,
  :func:`each`, :func:`satisfies`, :func:`all_of` write a lab's hidden checks (see
  ``docs/grading.md``).
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
    read_notebook,
)
from dgm_lab.grading.runner import Unsupported
from dgm_lab.grading.sandbox import Limits, SandboxError, status

__all__ = [
    "Case", "CaseResult", "CheckFileError", "Exercise", "Lab", "LabSource", "Limits", "Report",
    "SandboxError", "UnreadableNotebook", "UnsafeArchive", "Unsupported", "Verdict", "all_of",
    "close", "collect_zip", "each", "exact", "grade_submission", "load_lab", "read_notebook",
    "satisfies", "status",
]
