"""Grade a whole class: verdicts in parallel workers, recorded in nbgrader's gradebook serially.

:func:`grade_lab` is what ``dgm-course autograde LAB`` runs:

1. **register** the lab in the gradebook (nbgrader ``generate_assignment`` into a scratch
   release folder, so ``notebooks/`` is untouched). A gradebook that holds an *older version*
   of the lab (other graded cells or points) with graded submissions is an error that says
   what changed, unless ``force``, which removes the lab's old grades and regrades everyone;
2. **plan**: each submission's SHA-256 is compared with what was graded before. New and
   resubmitted submissions are graded, and a resubmission is announced; unchanged ones keep
   their grades (``force`` regrades them); if the lab's checks changed since a submission was
   graded, that is said, and ``force`` regrades;
3. **verdicts**: :func:`dgm_lab.grading.grade_submission` for each submission to grade, in
   ``jobs`` worker processes (each verdict runs the student's answers in its own sandbox, with
   the per-exercise and per-notebook time limits), each stored in the verdict cache
   (:mod:`dgm_lab.grading.cache`) as soon as it is computed;
4. **record**: nbgrader's ``autograde`` for each of those students, one after the other, in
   this process; the course's preprocessor takes each verdict from the cache (nothing runs
   twice) and nbgrader commits the grades of each student before the next.

So a crash in the middle of a batch loses nothing: verdicts already computed are in the cache,
grades already recorded are in the gradebook, and running the command again records the rest
without computing them again.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from dgm_lab.course.layout import Course, CourseError
from dgm_lab.grading.cache import VerdictCache, checks_key, file_sha256
from dgm_lab.grading.grader import Report, grade_submission
from dgm_lab.grading.sandbox import Limits

TO_GRADE = ("new", "resubmitted", "unrecorded", "forced")
LOG_FOLDER = "grading_log"


@dataclass
class Planned:
    """One submission and what the batch does with it: ``state`` is ``"new"``,
    ``"resubmitted"`` (changed since it was graded), ``"unrecorded"`` (its verdict was computed
    but not recorded), ``"forced"``, ``"unchanged"`` or ``"checks-changed"`` (graded by an
    earlier version of the lab's checks; kept without ``force``)."""

    student: str
    path: Path
    sha256: str
    state: str
    graded_at: str = ""


@dataclass
class Batch:
    """The outcome of :func:`grade_lab`."""

    lab: str
    planned: list[Planned]
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    verdict_seconds: float = 0.0
    record_seconds: float = 0.0

    def students(self, *states: str) -> list[str]:
        return [p.student for p in self.planned if p.state in states]


# ----------------------------------------------------------------------------- nbgrader


def nbgrader_api(course: Course, **settings: Any) -> Any:
    """nbgrader's Python API on the course's configuration, with ``settings`` on top
    (``{"SandboxedGrading": {"verdict_cache": ...}}``)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config = course.config()
    for section, values in settings.items():
        for name, value in values.items():
            config[section][name] = value
    coursedir = CourseDirectory(config=config)
    coursedir.root = str(course.root)
    return NbGraderAPI(coursedir=coursedir, config=config)


@contextlib.contextmanager
def gradebook(course: Course) -> Iterator[Any]:
    from nbgrader.api import Gradebook

    config = course.config()
    with Gradebook(str(config.CourseDirectory.db_url),
                   str(config.CourseDirectory.get("course_id", "default_course"))) as gb:
        yield gb


def _cells(notebook: dict) -> dict[str, Any]:
    """The cells nbgrader records for a source notebook, as the gradebook stores them."""
    grade, solution, task, source = {}, set(), set(), set()
    for cell in notebook["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        gid = meta.get("grade_id")
        if not gid:
            continue
        if meta.get("grade"):
            grade[gid] = float(meta.get("points", 0))
        if meta.get("solution"):
            solution.add(gid)
        if meta.get("task"):
            task.add(gid)
        if meta.get("grade") or meta.get("solution") or meta.get("locked") or meta.get("task"):
            source.add(gid)
    return {"grade cells": grade, "answer cells": solution, "task cells": task,
            "locked cells": source}


def version_changes(course: Course, lab: str) -> tuple[list[str], int]:
    """How the lab recorded in the gradebook differs from ``solutions/<lab>/`` now, and how
    many submissions the gradebook holds for it (``([], 0)`` when it is not recorded)."""
    import json

    from nbgrader.api import MissingEntry

    now = _cells(json.loads((course.solutions / lab / f"{lab}.ipynb").read_text("utf-8")))
    with gradebook(course) as gb:
        try:
            assignment = gb.find_assignment(lab)
        except MissingEntry:
            return [], 0
        notebooks = {nb.name: nb for nb in assignment.notebooks}
        n_submissions = len(assignment.submissions)
        if lab not in notebooks:
            return [f"the gradebook's version has no notebook {lab}"], n_submissions
        nb = notebooks[lab]
        then = {"grade cells": {c.name: float(c.max_score) for c in nb.grade_cells},
                "answer cells": {c.name for c in nb.solution_cells},
                "task cells": {c.name for c in nb.task_cells},
                "locked cells": {c.name for c in nb.source_cells}}
    changes = []
    for what in ("grade cells", "answer cells", "task cells", "locked cells"):
        old, new = set(then[what]), set(now[what])
        if new - old:
            changes.append(f"{what} added: {', '.join(sorted(new - old))}")
        if old - new:
            changes.append(f"{what} removed: {', '.join(sorted(old - new))}")
    for gid in sorted(set(then["grade cells"]) & set(now["grade cells"])):
        if then["grade cells"][gid] != now["grade cells"][gid]:
            changes.append(f"points of {gid}: {then['grade cells'][gid]:g} -> "
                           f"{now['grade cells'][gid]:g}")
    return changes, n_submissions


def register(course: Course, lab: str, force: bool = False) -> bool:
    """Record the lab's current version in the gradebook.

    Returns:
        True when an older version with graded submissions was removed (``force``): every
        submission must then be graded again.

    Raises:
        CourseError: the gradebook holds an older version of the lab with graded submissions
            (and not ``force``), or nbgrader fails.
    """
    changes, n_submissions = version_changes(course, lab)
    removed = False
    if changes and n_submissions:
        if not force:
            raise CourseError(
                f"the gradebook holds an older version of {lab} ({'; '.join(changes)}), and "
                f"its {n_submissions} graded submission(s) were graded against that version. "
                f"To regrade every submission against solutions/{lab} as it is now, run "
                f"`dgm-course grade {lab} --force` (it removes the lab's old grades, manual ones "
                "included, from the gradebook).")
        with gradebook(course) as gb:
            gb.remove_assignment(lab)
        removed = True
    with tempfile.TemporaryDirectory(prefix="dgm-register-") as scratch:
        api = nbgrader_api(course, CourseDirectory={"release_directory": scratch})
        result = api.generate_assignment(lab, force=True, create=True)
    if not result["success"]:
        raise CourseError(f"nbgrader could not record {lab} in the gradebook:\n"
                          + _tail(result.get("log", "") + result.get("error", "")))
    return removed


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# ----------------------------------------------------------------------------- planning


def _submissions(course: Course, lab: str, students: list[str] | None) -> dict[str, Path]:
    submissions = course.submissions(lab)
    if students:
        missing = sorted(set(students) - set(submissions))
        if missing:
            raise CourseError(f"no submission of {lab} from {', '.join(missing)} (expected "
                              f"{course.submitted}/<student>/{lab}/{lab}.ipynb)")
        submissions = {s: p for s, p in submissions.items() if s in students}
    if not submissions:
        raise CourseError(f"no submissions of {lab} in {course.submitted} (expected "
                          f"submitted/<student>/{lab}/{lab}.ipynb): collect them first with "
                          "`dgm-course collect FOLDER_OR_ZIP`")
    return submissions


def plan(course: Course, lab: str, *, force: bool = False,
         students: list[str] | None = None) -> list[Planned]:
    """What to do with each submission of ``lab`` (see :class:`Planned`).

    Raises:
        CourseError: no submission of the lab (or of the named students).
    """
    submissions = _submissions(course, lab, students)
    key = checks_key(course.solutions / lab)
    cache = VerdictCache(course.cache)
    with gradebook(course) as gb:
        graded = {s.student.id for s in gb.assignment_submissions(lab)} \
            if lab in {a.name for a in gb.assignments} else set()
    planned = []
    for student, path in submissions.items():
        sha = file_sha256(path)
        entry = cache.entry(lab, student) or {}
        autograded = course.autograded / student / lab / f"{lab}.ipynb"
        done = student in graded and autograded.is_file()
        when = str(entry.get("recorded") or "")
        if not done:
            state = "new"
        elif force:
            state = "forced"
        elif not entry:  # graded before, by nbgrader alone: the files' times tell
            newer = path.stat().st_mtime > autograded.stat().st_mtime
            state = "resubmitted" if newer else "unchanged"
        elif entry.get("sha256") != sha:
            state = "resubmitted"
        elif not entry.get("recorded"):
            state = "unrecorded"
        elif entry.get("key") != key:
            state = "checks-changed"
        else:
            state = "unchanged"
        planned.append(Planned(student, path, sha, state, when))
    return planned


# ----------------------------------------------------------------------------- verdicts


def _verdict(lab_folder: str, notebook: str, limits: Limits, sandbox: str | None,
             record: str, student: str) -> dict:
    """One submission's report, as a dict (runs in a worker process)."""
    return grade_submission(lab_folder, notebook, limits=limits, sandbox=sandbox,
                            record=record, student=student).to_dict()


def compute_verdicts(course: Course, lab: str, todo: list[Planned], *, jobs: int = 1,
                     limits: Limits | None = None, force: bool = False,
                     progress: bool = True) -> tuple[list[str], list[str]]:
    """The verdict of each submission in ``todo``, into the verdict cache.

    A verdict already in the cache for the same file and lab version is reused unless
    ``force``. With ``jobs > 1`` submissions are graded in that many worker processes.

    Returns:
        (students whose verdict was computed, students whose cached verdict was reused).
    """
    cache = VerdictCache(course.cache)
    source = course.solutions / lab
    key = checks_key(source)
    limits = limits or course.limits()
    sandbox = course.sandbox_mode()
    record = str(course.root / LOG_FOLDER / f"{lab}.jsonl")
    reused = [] if force else [p.student for p in todo
                               if cache.report(lab, p.student, p.sha256, key) is not None]
    pending = [p for p in todo if p.student not in reused]
    bar = tqdm(total=len(pending), desc=f"{lab}: verdicts", unit="submission",
               disable=not progress or not pending, leave=True)

    def store(planned: Planned, data: dict) -> None:
        cache.put(lab, planned.student, planned.sha256, key, Report.from_dict(data))
        bar.update(1)

    try:
        if jobs <= 1 or len(pending) <= 1:
            for p in pending:
                store(p, _verdict(str(source), str(p.path), limits, sandbox, record, p.student))
        else:
            context = multiprocessing.get_context("spawn")  # no torch state forked
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                futures = {pool.submit(_verdict, str(source), str(p.path), limits, sandbox,
                                       record, p.student): p for p in pending}
                try:
                    for future in as_completed(futures):
                        store(futures[future], future.result())
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        bar.close()
    return [p.student for p in pending], reused


# ----------------------------------------------------------------------------- recording


def record_grades(course: Course, lab: str, students: list[str], *,
                  limits: Limits | None = None,
                  progress: bool = True) -> tuple[list[str], dict[str, str]]:
    """nbgrader's autograde for each student, one after the other, taking the verdicts from
    the cache (a submission whose verdict is not there, e.g. changed since, is graded with
    ``limits``); each student's grades are committed before the next starts.

    Returns:
        (students recorded, {student: why nbgrader failed}).
    """
    cache = VerdictCache(course.cache)
    limits = limits or course.limits()
    api = nbgrader_api(course, SandboxedGrading={
        "verdict_cache": str(course.cache), "exercise_timeout": limits.exercise_seconds,
        "notebook_timeout": limits.notebook_seconds,
        "memory_limit_mb": limits.memory_bytes >> 20})
    log = course.root / LOG_FOLDER / f"{lab}.nbgrader.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    recorded, failed = [], {}
    for student in tqdm(students, desc=f"{lab}: gradebook", unit="submission",
                        disable=not progress or not students):
        with warnings.catch_warnings():  # nbgrader's harmless SQLAlchemy session warnings
            warnings.simplefilter("ignore", category=Warning)
            result = api.autograde(lab, student, force=True, create=True)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} autograde {student}\n"
                     + result.get("log", "") + result.get("error", ""))
        if result["success"]:
            cache.mark_recorded(lab, student)
            recorded.append(student)
        else:
            failed[student] = _tail(result.get("log", "") + result.get("error", ""), 6)
    return recorded, failed


def generate_feedback(course: Course, lab: str, students: list[str] | None = None, *,
                      force: bool = False, progress: bool = True) -> tuple[list[str],
                                                                           dict[str, str]]:
    """nbgrader's HTML feedback ``feedback/<student>/<lab>/<lab>.html`` for ``students``
    (default: every graded student whose feedback is missing or older than their graded
    notebook; every one with ``force``).

    Returns:
        (students whose feedback was written, {student: why it failed}).
    """
    if students is None:
        students = []
        folder = course.autograded
        for graded in sorted(folder.glob(f"*/{lab}/{lab}.ipynb")) if folder.is_dir() else []:
            student = graded.parent.parent.name
            page = course.feedback / student / lab / f"{lab}.html"
            if force or not page.is_file() or page.stat().st_mtime < graded.stat().st_mtime:
                students.append(student)
    if not students:
        return [], {}
    api = nbgrader_api(course)
    written, failed = [], {}
    for student in tqdm(students, desc=f"{lab}: feedback", unit="student",
                        disable=not progress):
        result = api.generate_feedback(lab, student, force=True)
        if result["success"]:
            written.append(student)
        else:
            failed[student] = _tail(result.get("log", "") + result.get("error", ""), 6)
    return written, failed


# ----------------------------------------------------------------------------- the batch


def grade_lab(course: Course, lab: str, *, jobs: int = 1, force: bool = False,
              students: list[str] | None = None, limits: Limits | None = None,
              progress: bool = True, say: Callable[[str], None] = print) -> Batch:
    """Autograde every submission of ``lab`` that needs it (see the module docstring).

    Arguments:
        course: the course.
        lab: the lab's name.
        jobs: worker processes computing verdicts in parallel (each runs its submission's
            answers in its own sandbox; the sandbox uses one thread).
        force: regrade every submission, and replace an older version of the lab recorded in
            the gradebook.
        students: only these students (default: every submission).
        limits: time and memory limits (default: ``nbgrader_config.py``'s).
        progress: show progress bars.
        say: where the batch's messages go.

    Returns:
        the :class:`Batch`.

    Raises:
        CourseError: an unknown lab, no submission, an older version of the lab in the
            gradebook, or a broken lab (its hidden checks fail to load).

    Example:
        >>> batch = grade_lab(Course.find(), "lab01_naive_bayes", jobs=4)    # doctest: +SKIP
    """
    from dgm_lab.grading import CheckFileError, SandboxError, sandbox

    if not (isinstance(jobs, int) and jobs >= 1):
        raise CourseError(f"--jobs must be an integer >= 1, got {jobs!r}")
    course.lab(lab)
    _submissions(course, lab, students)  # before touching the gradebook
    if register(course, lab, force=force):
        say(f"{lab}: removed the older version of the lab and its grades from the gradebook; "
            "regrading every submission")
    batch = Batch(lab, plan(course, lab, force=force, students=students))
    for p in batch.planned:
        if p.state == "resubmitted":
            since = f" (graded {p.graded_at})" if p.graded_at else ""
            say(f"{p.student}: resubmitted since it was graded{since}: regrading it")
    unchanged = batch.students("unchanged")
    if unchanged:
        say(f"{lab}: {len(unchanged)} unchanged submission(s) keep their grades "
            "(--force regrades them)")
    stale = batch.students("checks-changed")
    if stale:
        say(f"{lab}: the lab's checks changed since {len(stale)} submission(s) were graded "
            f"({', '.join(stale)}); they keep their grades: pass --force to regrade them")
    todo = [p for p in batch.planned if p.state in TO_GRADE]
    if not todo:
        return batch
    state = sandbox.status(mode=course.sandbox_mode())
    if state.warning:
        say(state.warning)
    started = time.perf_counter()
    try:
        batch.computed, batch.reused = compute_verdicts(
            course, lab, todo, jobs=jobs, limits=limits, force=force, progress=progress)
    except (CheckFileError, SandboxError) as err:
        raise CourseError(f"{lab} cannot be graded: {err}") from err
    batch.verdict_seconds = time.perf_counter() - started
    started = time.perf_counter()
    batch.recorded, batch.failed = record_grades(course, lab, [p.student for p in todo],
                                                 limits=limits, progress=progress)
    batch.record_seconds = time.perf_counter() - started
    return batch
