"""Grade one submitted notebook: run its answers in the sandbox, judge them in this process.

:func:`grade_submission` is the whole verdict computation, independent of nbgrader (the
course's nbgrader preprocessor calls it; a parallel grading tool can too). For one submission:

1. read the instructor's side: the lab's source notebook (points, the imports cell, the answer
   cells' grade_ids) and its hidden checks (``hidden_checks.py``);
2. read the submitted notebook as untrusted JSON (size cap; an unreadable notebook scores 0 on
   every exercise with a message) and take its answer cells by grade_id; every other cell of
   the submission, locked or not, is ignored;
3. draw a fresh seed, generate each exercise's cases and expected outputs with the ``dgm_lab``
   references here, and write the job folder: the runner, the imports cell of the *source*
   notebook, the answer cells, and only the cases' inputs, in the safe format;
4. run the runner in the sandbox (:mod:`dgm_lab.grading.sandbox`); when a stage runs past its
   limit or the process dies, record that exercise (or answer cell) as failed and start the
   runner again for the rest;
5. read the returned values back as untrusted data and compare them with the expected outputs
   here: points per exercise from the case weights, and a message per exercise that says what
   was wrong, never what the check contains.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from dgm_lab.grading import runner as _runner
from dgm_lab.grading import sandbox as _sandbox
from dgm_lab.grading.checks import CHECKS_FILE, Case, CheckFileError, Exercise, Lab, load_lab

MAX_NOTEBOOK_BYTES = 20 << 20
MAX_CELL_CHARS = 1 << 20


class UnreadableNotebook(ValueError):
    """A submitted notebook that cannot be graded at all (not JSON, too large, no cells)."""


# ----------------------------------------------------------------------------- results


@dataclass
class CaseResult:
    """One case of one exercise: its label and weight, whether it passed, and why not."""

    label: str
    weight: float
    passed: bool
    message: str = ""


@dataclass
class Verdict:
    """The grade of one exercise.

    ``test`` is the graded test cell (where the points live and the verdict is written),
    ``score`` out of ``points``; ``message`` is what the student reads.
    """

    test: str
    answer: str
    function: str
    points: float
    score: float
    message: str
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.score >= self.points


@dataclass
class Report:
    """The verdicts of one submission, with what is needed to reproduce them.

    ``seed`` regenerates the same cases (``grade_submission(..., seed=report.seed)``);
    ``sandbox`` says whether the student's code was isolated; ``runs`` counts the runner's
    starts (1 + one per timeout or crash).
    """

    lab: str
    seed: int
    sandbox: str
    verdicts: list[Verdict]
    seconds: float = 0.0
    runs: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return round(sum(v.score for v in self.verdicts), 2)

    @property
    def max_score(self) -> float:
        return round(sum(v.points for v in self.verdicts), 2)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        verdicts = [Verdict(**{**v, "cases": [CaseResult(**c) for c in v["cases"]]})
                    for v in data["verdicts"]]
        return cls(**{**data, "verdicts": verdicts})


def partial_score(points: float, cases: list[CaseResult]) -> float:
    """``points`` times the passed share of the case weights, to 2 decimals (never above
    ``points``, and ``points`` exactly when every case passed).

    Example:
        >>> partial_score(3, [CaseResult("a", 1, True), CaseResult("b", 2, False)])
        1.0
    """
    total = sum(c.weight for c in cases)
    if total <= 0:
        return 0.0
    earned = sum(c.weight for c in cases if c.passed)
    if earned >= total:
        return float(points)
    return min(float(points), round(points * earned / total, 2))


# ----------------------------------------------------------------------------- notebooks


def _source_text(cell: dict) -> str:
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        return "".join(source)
    if isinstance(source, str):
        return source
    raise UnreadableNotebook("a cell's source is neither text nor a list of lines")


def _grade_id(cell: dict) -> str | None:
    metadata = cell.get("metadata")
    nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
    return grade_id if isinstance(grade_id, str) else None


def read_notebook(path: str | Path, max_bytes: int = MAX_NOTEBOOK_BYTES) -> list[dict]:
    """The cells of an untrusted notebook file, read as plain JSON.

    Arguments:
        path: the ``.ipynb`` file.
        max_bytes: larger files are refused unread.

    Returns:
        the list of cells (dicts).

    Raises:
        UnreadableNotebook: missing, too large, not UTF-8 JSON, or without a list of cells;
            the message says which, in words for the student.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise UnreadableNotebook("the notebook file is missing") from None
    if size > max_bytes:
        raise UnreadableNotebook(f"the notebook is {size / 2**20:.0f} MB, over the limit of "
                                 f"{max_bytes / 2**20:.0f} MB (clear large outputs and resubmit)")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise UnreadableNotebook("the notebook is not a text (UTF-8) file") from None
    except json.JSONDecodeError as err:
        raise UnreadableNotebook(f"the notebook is not valid JSON ({err.msg}; line "
                                 f"{err.lineno}, column {err.colno})") from None
    except RecursionError:
        raise UnreadableNotebook("the notebook is not valid notebook JSON (nested too deeply)") \
            from None
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise UnreadableNotebook("the file is JSON but not a notebook (it has no list of cells)")
    return cells


def answer_cells(cells: list[dict]) -> dict[str, str]:
    """Code cells by grade_id, as the submission has them (the last of a repeated id wins,
    as in nbgrader)."""
    found = {}
    for cell in cells:
        grade_id = _grade_id(cell)
        if grade_id is not None and cell.get("cell_type") == "code":
            found[grade_id] = _source_text(cell)
    return found


@dataclass(frozen=True)
class LabSource:
    """The instructor's side of a lab: its checks, the points and cells of its source notebook.

    Arguments:
        folder: ``solutions/<lab>/`` (holds ``<lab>.ipynb`` and ``hidden_checks.py``).
    """

    name: str
    lab: Lab
    points: dict[str, float]
    preamble: str
    answers: tuple[str, ...]

    @classmethod
    def load(cls, folder: str | Path) -> LabSource:
        """Read and cross-check a lab's source notebook and hidden checks.

        Raises:
            CheckFileError: the checks and the notebook disagree (a missing cell, a test cell
                without points, a function the answer cell does not define, ...).
        """
        folder = Path(folder)
        name = folder.name
        notebook = folder / f"{name}.ipynb"
        try:
            cells = read_notebook(notebook, max_bytes=1 << 30)
        except UnreadableNotebook as err:
            raise CheckFileError(f"{notebook}: {err}") from None
        lab = load_lab(folder / CHECKS_FILE)
        by_id = {_grade_id(c): c for c in cells if _grade_id(c) is not None}
        problems = []
        preamble = by_id.get(lab.preamble)
        if preamble is None or preamble.get("cell_type") != "code":
            problems.append(f"no code cell with grade_id {lab.preamble!r} (the imports cell)")
        elif not preamble["metadata"]["nbgrader"].get("locked"):
            problems.append(f"the imports cell {lab.preamble!r} is not locked")
        points = {}
        for ex in lab.exercises:
            test, answer = by_id.get(ex.test), by_id.get(ex.answer)
            meta = test["metadata"]["nbgrader"] if test is not None else {}
            if test is None or not meta.get("grade") or meta.get("solution"):
                problems.append(f"{ex.test!r} is not a graded test cell of the notebook")
            elif not (isinstance(meta.get("points"), (int, float)) and meta["points"] > 0):
                problems.append(f"the test cell {ex.test!r} has no points > 0")
            else:
                points[ex.test] = float(meta["points"])
            if answer is None or not answer["metadata"]["nbgrader"].get("solution"):
                problems.append(f"{ex.answer!r} is not an answer cell of the notebook")
            elif f"def {ex.function}(" not in _source_text(answer):
                problems.append(f"the answer cell {ex.answer!r} defines no {ex.function}()")
        graded = {g for g, c in by_id.items() if c["metadata"]["nbgrader"].get("grade")
                  and not c["metadata"]["nbgrader"].get("solution")}
        unchecked = graded - {ex.test for ex in lab.exercises}
        if unchecked:
            problems.append(f"graded test cells without hidden checks: {sorted(unchecked)}")
        if problems:
            raise CheckFileError(f"{folder}: the hidden checks and the notebook disagree: "
                                 + "; ".join(problems))
        answers = tuple(g for g, c in by_id.items() if c.get("cell_type") == "code"
                        and c["metadata"]["nbgrader"].get("solution"))
        return cls(name, lab, points, _source_text(preamble), answers)


# ----------------------------------------------------------------------------- messages


def _allowed_imports(lab: Lab) -> str:
    names = [p for p in lab.packages if p != "numpy"] + ["numpy", "math"]
    return "/".join(dict.fromkeys(names))


def _clean(text: str, limit: int = 300) -> str:
    """Student-controlled text, made safe to show: printable, one line, bounded."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text)).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_message(error: object, lab: Lab, limits: _sandbox.Limits, *,
                  in_cell: bool = False) -> str:
    """What an error reported by the runner says, as a predicate ("raised ValueError at line 3
    of your answer cell: ..."); the report is validated (it comes from the student's process)."""
    if not isinstance(error, dict):
        return "sent back a malformed error report"
    kind = _clean(error.get("type", "error"), 80)
    message = _clean(error.get("message", ""))
    line = error.get("line")
    at = "" if not (isinstance(line, int) and line > 0) else (
        f" at line {line}" if in_cell else f" at line {line} of your answer cell")
    module = error.get("module")
    if isinstance(module, str) and module and kind in ("ModuleNotFoundError", "ImportError"):
        top = _clean(module.split(".")[0], 80)
        return (f"imports {top}, which is not available while grading: write it with "
                f"{_allowed_imports(lab)}")
    if kind == "SystemExit":
        code = error.get("exit_code")
        return f"ended the process (exit code {code if isinstance(code, int) else 1})"
    if error.get("memory") is True:
        return f"ran out of memory (the limit is {limits.memory_bytes / 2**30:.3g} GiB)"
    if kind == "NotImplementedError":
        return "raised NotImplementedError: the exercise is not done yet"
    if kind == "output":
        return f"returned values that could not be sent back ({message})"
    return f"raised {kind}{at}: {message}" if message else f"raised {kind}{at}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def ending_message(outcome: _sandbox.Outcome, limits: _sandbox.Limits, sandboxed: bool) -> str:
    """What ended a run in the middle of a stage, as a predicate ("timed out after 60 s")."""
    if outcome.how == "timeout":
        return f"timed out after {limits.exercise_seconds:g} s"
    if outcome.how == "too-much-output":
        return (f"wrote more than {limits.max_written_bytes / 2**20:.0f} MB (or "
                f"{_sandbox.MAX_WRITTEN_FILES} files) of output")
    if outcome.how == "notebook-timeout":
        return (f"was not run to the end: the notebook as a whole used up its time limit of "
                f"{limits.notebook_seconds:g} s")
    code = outcome.returncode
    if code is None:
        return "ended the process unexpectedly"
    # bwrap reports a child killed by signal N as exit status 128 + N
    signal_number = -code if code < 0 else (code - 128 if sandboxed and code > 128 else 0)
    if signal_number == signal.SIGKILL:
        return "was killed (SIGKILL): it ran out of memory, or your code killed the process"
    if signal_number == getattr(signal, "SIGXCPU", -1):
        return "used up the CPU time limit"
    if signal_number == getattr(signal, "SIGXFSZ", -1):
        return "wrote a file larger than the limit"
    if signal_number:
        return f"crashed the process ({_signal_name(signal_number)})"
    return f"ended the process (exit code {code})"


def _summarise(function: str, points: float, score: float, cases: list[CaseResult],
               failure: str | None) -> str:
    n = len(cases)
    passed = sum(c.passed for c in cases)
    head = f"{function}: {score:g} / {points:g} points"
    if failure is not None:
        return f"{head}. {failure}"
    if passed == n:
        cases_words = "the hidden case" if n == 1 else f"all {n} hidden cases"
        return f"{head}: passed {cases_words} (fresh random inputs)."
    lines = [f"{head}: passed {passed} of {n} hidden cases (fresh random inputs)."]
    failed = [c for c in cases if not c.passed]
    for c in failed[:3]:
        label = f" ({c.label})" if c.label else ""
        lines.append(f"  case {cases.index(c) + 1}{label}: {c.message}")
    if len(failed) > 3:
        lines.append(f"  ... and {len(failed) - 3} more failing cases")
    return "\n".join(lines)


def _zero_all(lab: LabSource, message: str) -> list[Verdict]:
    return [Verdict(ex.test, ex.answer, ex.function, lab.points[ex.test], 0.0,
                    f"{ex.function}: 0 / {lab.points[ex.test]:g} points. {message}")
            for ex in lab.lab.exercises]


# ----------------------------------------------------------------------------- the job


def _transform(source: str) -> str:
    """IPython syntax (``%time``, ``%%capture``, ``!ls``) as plain Python calls, so that an
    answer cell with a magic still runs (the magics themselves do nothing while grading)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return source
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - leave it to the runner's compile() to report
        return source


def solution_namespace(folder: str | Path) -> dict:
    """The names the lab's own solution defines: its imports cell, then every answer cell of
    ``<folder>/<lab>.ipynb`` with the solution markers removed. The instructor's code, run in
    this process (never a student's)."""
    folder = Path(folder)
    source = LabSource.load(folder)
    cells = read_notebook(folder / f"{folder.name}.ipynb", max_bytes=1 << 30)
    namespace: dict = {}
    exec(source.preamble, namespace)  # noqa: S102 - the course's own solution
    for cell in cells:
        if cell.get("cell_type") == "code" and _grade_id(cell) in source.answers:
            text = "".join(line for line in _source_text(cell).splitlines(keepends=True)
                           if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line)
            exec(text, namespace)  # noqa: S102
    return namespace


def judge_in_process(lab: Lab, function: str, answer: Callable, seed: int) -> list[CaseResult]:
    """``answer`` judged on ``seed``'s cases of the exercise of ``function`` exactly as the
    grader judges what comes back from the sandbox (value, gradient, inputs unchanged), but
    called in this process: for the course's own answers (its solution, a test's wrong
    answers), never a student's."""
    found = [(i, ex) for i, ex in enumerate(lab.exercises) if ex.function == function]
    if not found:
        raise ValueError(f"function: the lab has no exercise {function!r}")
    index, exercise = found[0]
    cases = _draw_cases(exercise, seed, index)
    results = [_runner.call(answer, c.args, c.kwargs, list(exercise.gradient_of))
               for c in cases]
    return _judge(exercise, cases, results, lab, _sandbox.Limits())[0]


def _draw_cases(exercise: Exercise, seed: int, index: int) -> list[Case]:
    """The exercise's cases for this seed; torch's global generator is seeded too (and
    restored) for references that draw from it."""
    rng = np.random.default_rng([seed, index])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed((seed + 7919 * index) % (2**63))
        return exercise.draw(rng)


def _write_job(folder: Path, source: LabSource, cells: list[tuple[str, str]],
               cases: list[list[Case]], limits: _sandbox.Limits) -> None:
    (folder / "in").mkdir(parents=True)
    shutil.copyfile(Path(_runner.__file__), folder / "runner.py")
    site_dirs, _ = _sandbox.allowed_paths(source.lab.packages)
    uses_torch = "torch" in source.lab.packages
    job = {"preamble": source.preamble,
           "cells": [{"id": grade_id, "source": text} for grade_id, text in cells],
           "exercises": [{"function": ex.function, "gradient_of": list(ex.gradient_of)}
                         for ex in source.lab.exercises],
           "site_dirs": list(site_dirs), "torch": uses_torch, "threads": limits.threads}
    (folder / "job.json").write_text(json.dumps(job), encoding="utf-8")
    for index, exercise_cases in enumerate(cases):
        inputs = [[case.args, dict(case.kwargs)] for case in exercise_cases]
        _runner.write_tree(str(folder / "in" / f"ex{index}"), inputs)


def gradient_problem(exercise: Exercise, case: Case, got: object,
                     compare: Callable[[object, Case], str | None]) -> str | None:
    """Why the gradient that came back (see :func:`dgm_lab.grading.runner.call`) is not the
    reference's, or ``None``: an exercise with ``gradient_of`` wants an output that can train.
    ``compare`` is the case's comparison of values; the case's ``gradient_compare`` replaces
    it when given.

    Example:
        >>> gradient_problem(ex, case, "not-differentiable", close())   # doctest: +SKIP
        'the returned value carries no gradient (detached, ...'
    """
    if got == _runner.NOT_DIFFERENTIABLE:
        return ("the returned value carries no gradient (was it detached, turned into a number, "
                "or computed under torch.no_grad()?), so training cannot backpropagate through "
                "it: return the tensor itself")
    names = list(exercise.gradient_of.values())
    compare = case.gradient_compare or compare
    if not (isinstance(got, (tuple, list)) and len(got) == len(names)):
        return "the gradient of the returned value came back malformed"
    for name, value, want in zip(names, got, case.expected_gradient, strict=True):
        if value is None:
            return (f"the returned value does not depend on {name} through autograd (was that "
                    f"part detached?), so training cannot update {name}")
        # the case's inputs go along, so that a float32 case is not told float64 was wanted
        problem = compare(value, Case(case.args, case.kwargs, expected=want, label=case.label))
        if problem is not None:
            return f"its gradient with respect to {name} differs from the reference: {problem}"
    return None


def _judge(exercise: Exercise, cases: list[Case], results: object, lab: Lab,
           limits: _sandbox.Limits) -> tuple[list[CaseResult], str | None]:
    """Compare the returned values with the expected ones, case by case.

    Returns:
        the case results, and a failure that applies to the whole exercise (or ``None``).
    """
    if not (isinstance(results, list) and len(results) == len(cases)
            and all(isinstance(r, dict) for r in results)):
        return [CaseResult(c.label, c.weight, False) for c in cases], (
            "the values your code returned came back malformed")
    out = []
    for case, result in zip(cases, results, strict=True):
        if "error" in result:
            error = result["error"]
            if isinstance(error, dict) and error.get("type") == "undefined":
                message = f"the function {exercise.function} is not defined"
            else:
                message = "your function " + error_message(error, lab, limits)
            out.append(CaseResult(case.label, case.weight, False, message))
            continue
        changed = result.get("changed")
        if isinstance(changed, list) and changed and all(isinstance(n, str) for n in changed):
            names = ", ".join(n[:100] for n in changed[:10])
            out.append(CaseResult(case.label, case.weight, False,
                                  f"your function changed its input {names} in place: leave the "
                                  "inputs as they were and return new values"))
            continue
        compare = case.compare or exercise.compare
        try:
            problem = compare(result.get("value"), case)
            if problem is None and exercise.gradient_of:
                problem = gradient_problem(exercise, case, result.get("gradient"), compare)
        except Exception as err:  # noqa: BLE001 - the check met a value of an unexpected form
            problem = f"the returned value could not be compared with the reference ({_clean(err)})"
        out.append(CaseResult(case.label, case.weight, problem is None, problem or ""))
    # The same error in every case (e.g. not defined, an import) is said once, for the exercise.
    messages = {c.message for c in out}
    if not any(c.passed for c in out) and len(messages) == 1 and all(
            r.get("error") for r in results):
        message = messages.pop()
        return out, message[:1].upper() + message[1:] + "."
    return out, None


def _cell_problem(grade_id: str, cell_errors: object, cell_failures: dict[str, str],
                  lab: LabSource, limits: _sandbox.Limits) -> str | None:
    """What went wrong when the answer cell itself ran (at top level), or ``None``."""
    if grade_id in cell_failures:
        return (f"your answer cell {grade_id} {cell_failures[grade_id]} while it ran, so it was "
                "skipped")
    if isinstance(cell_errors, dict) and isinstance(cell_errors.get(grade_id), dict):
        words = error_message(cell_errors[grade_id], lab.lab, limits, in_cell=True)
        return f"your answer cell {grade_id} {words}"
    return None


def grade_submission(lab: str | Path, notebook: str | Path, *, seed: int | None = None,
                     limits: _sandbox.Limits | None = None, sandbox: str | None = None,
                     record: str | Path | None = None, student: str = "") -> Report:
    """Grade one submitted notebook of a lab.

    Arguments:
        lab: the lab's source folder ``solutions/<lab>/`` (its ``<lab>.ipynb`` and
            ``hidden_checks.py``).
        notebook: the submitted ``.ipynb`` (untrusted).
        seed: the cases' seed; by default a fresh random one (recorded in the report and in
            ``record``): pass a report's seed to reproduce its verdicts.
        limits: time and memory limits (:class:`dgm_lab.grading.Limits`).
        sandbox: ``"auto"`` / ``"bwrap"`` / ``"none"``, see :func:`dgm_lab.grading.sandbox.status`.
        record: an instructor-only JSON-lines log to append the seed and scores to.
        student: who submitted, for the log.

    Returns:
        the :class:`Report`: a :class:`Verdict` per exercise, in the lab's order.

    Raises:
        CheckFileError: the lab's hidden checks are broken (not the student's fault).
        SandboxError: the sandbox could not run the lab's imports.

    Example:
        >>> report = grade_submission("solutions/lab02_density_estimation", "alice.ipynb")
        >>> [(v.test, v.score, v.points) for v in report.verdicts]   # doctest: +SKIP
        [('ex1_tests', 3.0, 3.0), ('ex2_tests', 0.0, 2.0), ...]
    """
    started = time.perf_counter()
    limits = limits or _sandbox.Limits()
    source = LabSource.load(lab)
    seed = secrets.randbits(63) if seed is None else int(seed)
    status = _sandbox.status(source.lab.packages, sandbox)
    report = Report(source.name, seed, status.kind, [])
    if status.warning:
        report.notes.append(status.warning)
    try:
        cells = read_notebook(notebook)
        submitted = answer_cells(cells)
    except UnreadableNotebook as err:
        report.verdicts = _zero_all(source, f"Your notebook could not be read: {err}; nothing "
                                            "in it could be graded.")
        return _finish(report, started, record, student, notebook)

    cases = [_draw_cases(ex, seed, i) for i, ex in enumerate(source.lab.exercises)]
    present = []
    for grade_id in source.answers:
        if grade_id in submitted:
            text = submitted[grade_id]
            if len(text) > MAX_CELL_CHARS:
                text = "raise MemoryError('answer cell over 1 MB: not run')"
            present.append((grade_id, _transform(text)))
    missing = set(source.answers) - set(submitted)

    with tempfile.TemporaryDirectory(prefix="dgm-grade-") as tmp:
        job, out, logs = Path(tmp, "job"), Path(tmp, "out"), Path(tmp, "logs")
        out.mkdir()
        logs.mkdir()
        _write_job(job, source, present, cases, limits)
        cell_failures, exercise_failures = _run_all(
            job, out, logs, source, len(present), limits, status, report, present)
        cell_errors = _read(out / "cells", limits)
        for index, (exercise, exercise_cases) in enumerate(zip(source.lab.exercises, cases,
                                                               strict=True)):
            report.verdicts.append(_verdict(
                index, exercise, exercise_cases, source, out, limits, missing, cell_errors,
                cell_failures, exercise_failures))
    return _finish(report, started, record, student, notebook)


def _run_all(job: Path, out: Path, logs: Path, source: LabSource, n_cells: int,
             limits: _sandbox.Limits, status: _sandbox.Status, report: Report,
             present: list[tuple[str, str]]) -> tuple[dict[str, str], dict[int, str]]:
    """Run the runner until every exercise has a result or failed; restart after a timeout
    or a crash without the stage that caused it."""
    skip_cells: set[int] = set()
    cell_failures: dict[str, str] = {}
    exercise_failures: dict[int, str] = {}
    budget = limits.notebook_seconds
    n_exercises = len(source.lab.exercises)
    for _ in range(n_cells + n_exercises + 1):
        finished = {i for i in range(n_exercises) if (out / f"ex{i}.json").exists()}
        skip_exercises = finished | set(exercise_failures)
        if len(skip_exercises) == n_exercises:
            break
        _keep_only(out, {f"ex{i}.{ext}" for i in finished for ext in ("json", "npz")})
        outcome = _sandbox.run(str(job), str(out), source.lab.packages, limits, status,
                               skip_cells, skip_exercises, budget, str(logs))
        report.runs += 1
        budget -= outcome.student_seconds
        if outcome.how == "done":
            break
        words = ending_message(outcome, limits, status.sandboxed)
        pending = [i for i in range(n_exercises) if i not in skip_exercises
                   and not (out / f"ex{i}.json").exists()]
        if outcome.how == "notebook-timeout" or budget <= 0:
            if outcome.stage is not None and outcome.stage[0] == "cell":
                cell_failures[present[outcome.stage[1]][0]] = words
            for i in pending:
                exercise_failures.setdefault(i, words)
            break
        if outcome.stage is not None and outcome.stage[0] == "cell":
            skip_cells.add(outcome.stage[1])
            cell_failures[present[outcome.stage[1]][0]] = words
        elif outcome.stage is not None:
            exercise_failures[outcome.stage[1]] = words
        elif pending:  # ended between stages (e.g. a thread the student started)
            exercise_failures[pending[0]] = words
    return cell_failures, exercise_failures


def _keep_only(out: Path, names: set[str]) -> None:
    """Empty the output folder but for the finished exercises' results (whatever else an
    earlier run left there, e.g. a flood of files, goes before the next run)."""
    for entry in out.iterdir():
        if entry.name in names and entry.is_file() and not entry.is_symlink():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _read(prefix: Path, limits: _sandbox.Limits) -> object:
    try:
        return _runner.read_tree(str(prefix), limits.max_output_bytes)
    except FileNotFoundError:
        return None
    except Exception as err:  # noqa: BLE001 - untrusted bytes: any parsing failure (a broken
        # zip, a crafted .npy header raising SyntaxError, ...) is the student's malformed output
        return _runner.Unsupported(f"malformed output ({_clean(err, 100)})")


def _verdict(index: int, exercise: Exercise, cases: list[Case], source: LabSource, out: Path,
             limits: _sandbox.Limits, missing: set[str], cell_errors: object,
             cell_failures: dict[str, str], exercise_failures: dict[int, str]) -> Verdict:
    points = source.points[exercise.test]
    results = [CaseResult(c.label, c.weight, False) for c in cases]
    failure: str | None = None
    if exercise.answer in missing:
        failure = (f"The answer cell {exercise.answer} is missing from your notebook (was it "
                   "deleted?).")
    elif index in exercise_failures:
        failure = f"Your function {exercise_failures[index]}."
    else:
        returned = _read(out / f"ex{index}", limits)
        if returned is None:
            failure = "No result came back from your function."
        else:
            results, failure = _judge(exercise, cases, returned, source.lab, limits)
    problem = _cell_problem(exercise.answer, cell_errors, cell_failures, source, limits)
    if problem is not None and not any(r.passed for r in results):
        if failure and failure.endswith(" is not defined."):
            failure = f"{failure[:-1]}, because {problem}."
        else:
            failure = f"{failure + ' ' if failure else ''}{problem[:1].upper()}{problem[1:]}."
    score = partial_score(points, results)
    message = _summarise(exercise.function, points, score, results, failure)
    return Verdict(exercise.test, exercise.answer, exercise.function, points, score, message,
                   results)


def _finish(report: Report, started: float, record: str | Path | None, student: str,
            notebook: str | Path) -> Report:
    report.seconds = round(time.perf_counter() - started, 2)
    if record is not None:
        try:
            digest = hashlib.sha256(Path(notebook).read_bytes()).hexdigest()
        except OSError:
            digest = None
        entry = {"time": datetime.now(UTC).isoformat(timespec="seconds"),
                 "lab": report.lab, "student": student, "notebook": str(notebook),
                 "sha256": digest, "seed": report.seed, "sandbox": report.sandbox,
                 "runs": report.runs, "seconds": report.seconds,
                 "scores": {v.test: [v.score, v.points] for v in report.verdicts}}
        path = Path(record)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        os.chmod(path, 0o600)
    return report
