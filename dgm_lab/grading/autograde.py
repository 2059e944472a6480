"""The course's grading inside ``nbgrader autograde``: nbgrader keeps the gradebook, feedback,
export and formgrader; the verdicts come from :func:`dgm_lab.grading.grade_submission`.

``nbgrader_config.py`` puts :class:`SandboxedGrading` in place of nbgrader's ``Execute``
preprocessor (which would run the whole submission, hidden tests included, in a kernel the
student's code controls) and reads submissions with :class:`SafeNotebookExporter`::

    c.Autograde.autograde_preprocessors = [SandboxedGrading, IgnorePattern, ...]
    c.Autograde.exporter_class = SafeNotebookExporter

For each submission, nbgrader first restores the locked cells from the gradebook (its sanitize
step); then :class:`SandboxedGrading` grades the submitted file and writes each verdict into
its graded test cell's outputs: the message as text, then the score (an ``execute_result``,
which nbgrader's ``determine_grade`` reads as partial credit) or, for zero, an ``error``
output whose "traceback" is the message (nothing of the hidden checks is shown). Nothing of the
notebook is executed in nbgrader's process or in a kernel.

References:
    nbgrader 0.9 ``nbgrader/utils.py``: ``determine_grade`` and ``get_partial_grade``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.exporters import NotebookExporter
from nbformat.notebooknode import NotebookNode
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Float, Int, Unicode

from dgm_lab.grading.cache import VerdictCache, checks_key, file_sha256
from dgm_lab.grading.grader import MAX_NOTEBOOK_BYTES, Report, Verdict, grade_submission
from dgm_lab.grading.sandbox import Limits

NOT_PASSED = "NotPassed"
_warned: set[str] = set()


def verdict_outputs(verdict: Verdict | None, points: float) -> list[NotebookNode]:
    """The outputs of a graded test cell that make nbgrader record ``verdict``'s score.

    Arguments:
        verdict: the exercise's verdict; ``None`` when the lab's checks have none for this
            cell (scored 0, with a message for the instructor).
        points: the cell's maximum score (as nbgrader restored it from the gradebook).

    Returns:
        a stdout stream with the message, then an ``execute_result`` holding the score; for a
        score of 0, one ``error`` output whose traceback lines are the message.
    """
    if verdict is None:
        message = "No hidden checks grade this cell: tell your instructor (it scores 0)."
        score = 0.0
    else:
        message = verdict.message
        share = verdict.score / verdict.points if verdict.points > 0 else 0.0
        score = min(points, round(points * share, 2))
    if score <= 0:  # the message once, as the error nbgrader scores 0 (no traceback of ours)
        first = message.splitlines()[0] if message else "not passed"
        return [nbformat.v4.new_output("error", ename=NOT_PASSED, evalue=first,
                                       traceback=message.splitlines() or [first])]
    return [nbformat.v4.new_output("stream", name="stdout", text=message + "\n"),
            nbformat.v4.new_output("execute_result", data={"text/plain": f"{score:g}"},
                                   execution_count=None)]


def write_verdicts(nb: NotebookNode, report: Report) -> list[str]:
    """Write ``report`` into the graded test cells of ``nb`` (by grade_id), in place.

    Every graded code cell gets outputs, so none is left empty (nbgrader would read an empty
    cell as full marks).

    Returns:
        the grade_ids of graded cells that had no verdict (they score 0).
    """
    by_test = {v.test: v for v in report.verdicts}
    unknown = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        verdict = by_test.get(meta.get("grade_id"))
        if verdict is None:
            unknown.append(meta.get("grade_id"))
        cell.outputs = verdict_outputs(verdict, float(meta.get("points", 0)))
        cell.execution_count = None
    return unknown


class SandboxedGrading(NbGraderPreprocessor):
    """nbgrader autograde preprocessor: the course's verdicts into the graded test cells."""

    exercise_timeout = Float(60.0, help="Seconds per exercise (all its cases) and per answer "
                                        "cell run at top level.").tag(config=True)
    notebook_timeout = Float(300.0, help="Seconds of the student's code for the whole "
                                         "notebook.").tag(config=True)
    memory_limit_mb = Int(4096, help="Address-space limit of the sandboxed process (MiB).") \
        .tag(config=True)
    sandbox = Unicode("", help="'auto', 'bwrap' (required) or 'none'; empty: the environment "
                               "variable DGM_GRADING_SANDBOX, else auto.").tag(config=True)
    log_directory = Unicode("grading_log", help="Instructor-only folder (relative to the course "
                                                "root) where each grading's seed and scores are "
                                                "appended, one JSON line per submission.") \
        .tag(config=True)
    verdict_cache = Unicode("", help="A verdict cache folder (dgm_lab.grading.cache): a "
                                     "submission whose verdict it holds, for the same file and "
                                     "the same lab version, is recorded without being graded "
                                     "again. Empty: always grade. `dgm-course grade` sets it.") \
        .tag(config=True)

    def limits(self) -> Limits:
        return Limits(exercise_seconds=self.exercise_timeout,
                      notebook_seconds=self.notebook_timeout,
                      memory_bytes=int(self.memory_limit_mb) << 20)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        info = resources["nbgrader"]
        lab, student, name = info["assignment"], info["student"], info["notebook"]
        coursedir = CourseDirectory(config=self.config)
        submitted = Path(coursedir.format_path(coursedir.submitted_directory, student, lab),
                         f"{name}.ipynb")
        source = Path(coursedir.format_path(coursedir.source_directory, ".", lab))
        if name != lab:
            raise ValueError(f"{lab}: only the notebook {lab}.ipynb is graded, not {name}.ipynb")
        report = self._cached(lab, student, source, submitted)
        if report is None:
            record = Path(coursedir.root, self.log_directory, f"{lab}.jsonl")
            report = grade_submission(source, submitted, limits=self.limits(),
                                      sandbox=self.sandbox or None, record=record,
                                      student=student)
        for note in report.notes:
            if note not in _warned:  # loud, once per process; recorded for every submission
                _warned.add(note)
                self.log.warning("\n%s\n%s\n%s", "!" * 78, note, "!" * 78)
        unknown = write_verdicts(nb, report)
        if unknown:
            self.log.error("%s: graded cells without hidden checks (scored 0): %s", lab, unknown)
        self.log.info("%s/%s: %g / %g (seed %d, %d run(s), %.1f s)", student, lab, report.score,
                      report.max_score, report.seed, report.runs, report.seconds)
        return nb, resources

    def _cached(self, lab: str, student: str, source: Path, submitted: Path) -> Report | None:
        """The cached report of this very submission and lab version, if a cache is set."""
        if not self.verdict_cache or not submitted.is_file():
            return None
        try:
            cache = VerdictCache(Path(CourseDirectory(config=self.config).root,
                                      self.verdict_cache))
            return cache.report(lab, student, file_sha256(submitted), checks_key(source))
        except (OSError, ValueError):
            return None


class SafeNotebookExporter(NotebookExporter):
    """Reads submissions for ``nbgrader autograde`` without failing on a broken file.

    A submission that is not a readable notebook (not JSON, over the size limit, not UTF-8,
    not nbformat) would make nbgrader drop the whole submission with a traceback. Here it is
    replaced by the released version of the lab (stub answers), so the pipeline goes on, and
    :class:`SandboxedGrading` (which reads the submitted file itself) gives every exercise 0
    with a message saying why the notebook could not be read.
    """

    def from_file(self, file_stream: Any, resources: dict | None = None,
                  **kw: Any) -> tuple[Any, dict]:
        try:
            text = file_stream.read(MAX_NOTEBOOK_BYTES + 1)
            if len(text) > MAX_NOTEBOOK_BYTES:
                raise ValueError("the notebook is over the size limit")
            nb = nbformat.reads(text, as_version=4)
            if not isinstance(nb.get("cells"), list):
                raise ValueError("no list of cells")
        except Exception as err:  # noqa: BLE001 - any unreadable file gets the placeholder
            nb = self._placeholder(resources or {}, err)
        return self.from_notebook_node(nb, resources=resources, **kw)

    def _placeholder(self, resources: dict, err: Exception) -> NotebookNode:
        info = resources.get("nbgrader", {})
        coursedir = CourseDirectory(config=self.config)
        released = os.path.join(coursedir.format_path(coursedir.release_directory, ".",
                                                      info.get("assignment", "")),
                                f"{info.get('notebook', '')}.ipynb")
        self.log.warning("%s/%s: the submitted notebook cannot be read (%s: %s); grading the "
                         "released version in its place (every exercise scores 0)",
                         info.get("student"), info.get("assignment"), type(err).__name__,
                         str(err)[:200])
        nb = nbformat.read(released, as_version=4)
        nb.metadata["dgm_grading"] = {"unreadable": f"{type(err).__name__}: {str(err)[:200]}"}
        return nb
