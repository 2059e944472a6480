"""The ``dgm-course`` command line, every subcommand, on a scratch course in ``tmp_path``.

The scratch course is the repository's ``nbgrader_config.py`` and ``scripts/`` with one small
numpy-only lab (``lab90_tiny``: ``add`` 3 points, ``scale`` 2 points, from
``tests/test_grading.py``), released by ``dgm-course release``; never the repository's own
gradebook. A class of four is graded once with ``--jobs 2`` and once serially; the tests that
change the course work on copies of that graded course.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_grading import make_lab, submit

from dgm_lab.cli import main
from dgm_lab.course import Course, CourseError
from dgm_lab.course.collect import split_name, student_id
from dgm_lab.course.validate import outside_names
from dgm_lab.grading import Limits, grade_submission

ROOT = Path(__file__).resolve().parents[1]
LAB = "lab90_tiny"
WRONG_ADD = "def add(a, b):\n    return a - b\n"
LOOPING_ADD = "def add(a, b):\n    while True:\n        pass\n"
LOOPING_SCALE = "def scale(a, factor=1.0):\n    while True:\n        pass\n"
# the scores each member of the class deserves: (add out of 3, scale out of 2)
CLASS = {"alice": (3, 2), "bob": (0, 2), "carol": (0, 0), "dave": (0, 2)}
TIMEOUT = "2"  # seconds per exercise: the endless loop is cut quickly


def cli(*args: str, course: Path | None = None, ok: bool | None = True):
    """Run ``dgm-course ARGS`` in-process; ``ok``: expect exit 0 (True), non-zero (False)."""
    prefix = ["--course", str(course)] if course is not None else []
    result = CliRunner().invoke(main, [*prefix, *args], catch_exceptions=False)
    if ok is not None:
        assert (result.exit_code == 0) == ok, result.output
    return result


def released(course: Path) -> Path:
    return course / "notebooks" / LAB / f"{LAB}.ipynb"


def add_demo_cell(path: Path, source: str) -> None:
    """A cell of the student's own after the last one (not an answer cell)."""
    nb = json.loads(path.read_text())
    nb["cells"].append({"cell_type": "code", "id": "demo", "metadata": {}, "source": source,
                        "outputs": [], "execution_count": None})
    path.write_text(json.dumps(nb))


def write_class(course: Path, inbox: Path) -> None:
    """The class's submissions as an LMS export would hold them."""
    lab = course / "solutions" / LAB
    inbox.mkdir(parents=True)
    submit(lab, inbox / f"alice_{LAB}.ipynb")
    submit(lab, inbox / f"bob_17_42_{LAB}-1.ipynb", ex1_code=WRONG_ADD)
    shutil.copy(released(course), inbox / f"carol_{LAB}.ipynb")
    dave = submit(lab, inbox / f"dave_{LAB}.ipynb", ex1_code=LOOPING_ADD)
    add_demo_cell(dave, "print(add(3.0, 2.0))  # a demo that calls the looping function")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A released scratch course with no submission."""
    course = tmp_path_factory.mktemp("course") / "course"
    (course / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    for script in ("release_labs.py", "build_book.py"):
        shutil.copy(ROOT / "scripts" / script, course / "scripts")
    make_lab(course / "solutions" / LAB)
    result = cli("release", course=course)
    assert f"notebooks/{LAB}/{LAB}.ipynb" in result.output
    return course


def copy_course(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "course"
    shutil.copytree(source, target, symlinks=True)
    return target


def scores(course: Path) -> dict[str, tuple[float, float]]:
    with open(course / "grades.csv", newline="") as fh:
        return {row["student_id"]: (float(row[f"{LAB}:add"]), float(row[f"{LAB}:scale"]))
                for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def graded(base, tmp_path_factory) -> dict:
    """The class collected from an export and graded with --jobs 2, and a copy graded serially."""
    runs = {}
    for jobs in ("2", "1"):
        course = copy_course(base, tmp_path_factory.mktemp(f"jobs{jobs}"))
        write_class(course, course.parent / "inbox")
        cli("collect", str(course.parent / "inbox"), course=course)
        result = cli("grade", LAB, "--jobs", jobs, "--timeout", TIMEOUT, "--no-progress",
                     course=course)
        runs[jobs] = {"course": course, "output": result.output, "scores": scores(course)}
    return runs


@pytest.fixture(autouse=True)
def _no_instructor_gradebook(monkeypatch):
    monkeypatch.delenv("NBGRADER_DB_URL", raising=False)
    monkeypatch.delenv("DGM_COURSE_ROOT", raising=False)


# ----------------------------------------------------------------------------- the command


COMMANDS = ["start", "validate", "release", "collect", "autograde", "feedback", "grades",
            "grade", "book", "pdf", "publish"]


def test_every_subcommand_has_help():
    assert set(COMMANDS) == set(main.commands)
    top = cli("--help")
    assert all(name in top.output for name in COMMANDS)
    for name in COMMANDS:
        result = cli(name, "--help")
        assert result.output.startswith(f"Usage: main {name}") or f"{name} [OPTIONS]" in \
            result.output, result.output


def test_the_console_script_is_declared_and_runs_as_a_module():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"dgm-course": "dgm_lab.cli:main"}
    proc = subprocess.run([sys.executable, "-m", "dgm_lab.cli", "grade", "--help"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and "Usage: dgm-course grade" in proc.stdout, proc.stderr
    installed = [e for e in importlib.metadata.entry_points(group="console_scripts")
                 if e.name == "dgm-course"]
    if not installed:
        pytest.skip("the installed dgm_lab predates the console script (pip install -e .)")
    assert installed[0].value == "dgm_lab.cli:main"


def test_the_course_is_found_from_below_and_outside_is_an_error(base, tmp_path, monkeypatch):
    assert Course.find(base / "solutions" / LAB).root == base
    with pytest.raises(CourseError, match="not inside a course"):
        Course.find(tmp_path)
    monkeypatch.chdir(base / "notebooks")
    assert "up to date" in cli("release", "--check").output
    monkeypatch.chdir(tmp_path)
    assert "not inside a course" in cli("grades", ok=False).output


# ----------------------------------------------------------------------------- release, start


def test_release_check_finds_drift_and_unknown_labs_are_named(base, tmp_path):
    course = copy_course(base, tmp_path)
    assert "up to date for 1 lab" in cli("release", "--check", course=course).output
    nb = released(course)
    nb.write_text(nb.read_text().replace("assert add(1, 2) == 3", "assert add(1, 2) == 4"))
    drift = cli("release", "--check", course=course, ok=False)
    assert f"{LAB}: notebooks/ drifted" in drift.output and "differs" in drift.output
    wrong = cli("release", "lab90_tiy", course=course, ok=False)
    assert "no lab 'lab90_tiy'" in wrong.output and f"Did you mean {LAB}?" in wrong.output


def test_start_copies_the_lab_and_never_overwrites_without_force(base, tmp_path):
    course = copy_course(base, tmp_path)
    work = tmp_path / "mine"
    cli("start", LAB, str(work), course=course)
    copy = work / f"{LAB}.ipynb"
    assert copy.read_bytes() == released(course).read_bytes()
    copy.write_text(copy.read_text().replace("raise NotImplementedError()", "return a + b"))
    mine = copy.read_text()
    again = cli("start", LAB, str(work), course=course, ok=False)
    assert "exists (your work)" in again.output and copy.read_text() == mine
    cli("start", LAB, str(work), "--force", course=course)
    backups = list(work.glob(f"{LAB}.ipynb.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == mine
    assert copy.read_bytes() == released(course).read_bytes()
    default = cli("start", LAB, course=course)
    assert (course / "work" / LAB / f"{LAB}.ipynb").is_file(), default.output


# ----------------------------------------------------------------------------- validate


def test_outside_names_finds_what_answers_take_from_other_cells():
    def code(source, **nbgrader):
        return {"cell_type": "code", "source": source, "metadata": {"nbgrader": nbgrader}}

    cells = [code("import numpy as np", grade_id="imports", locked=True),
             code("data = np.ones(3)\ndef helper(x):\n    return x", grade_id="setup"),
             code("def f(x):\n    y = np.sum(x) + len(data)\n    def g(z):\n        return z + y"
                  "\n    return helper(g(x)) + other(x)", grade_id="ex1", solution=True),
             code("def h(x):\n    return f(x) * math.pi\n%time h(1)", grade_id="ex2",
                  solution=True),
             code("print(f(data))")]
    found = outside_names(cells)
    assert found == {
        "ex1": ["data (defined in cell setup, which does not run while grading)",
                "helper (defined in cell setup, which does not run while grading)",
                "other (defined nowhere in the notebook)"],
        "ex2": ["math (defined nowhere in the notebook)"]}


def test_validate_passes_a_finished_notebook_and_fails_an_unfinished_one(base, tmp_path):
    done = submit(base / "solutions" / LAB, tmp_path / "done.ipynb")
    result = cli("validate", str(done), course=base)
    assert "Visible tests: 2 of 2 pass" in result.output and "Warning" not in result.output
    todo = tmp_path / "todo.ipynb"
    shutil.copy(released(base), todo)
    nb = json.loads(todo.read_text())
    nb["cells"].insert(2, {"cell_type": "code", "id": "mine", "metadata": {}, "outputs": [],
                           "execution_count": None, "source": "offset = 1.0"})
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "ex2_code":
            cell["source"] = "def scale(a, factor=1.0):\n    return a * factor + offset - 1.0\n"
    todo.write_text(json.dumps(nb))
    result = cli("validate", str(todo), course=base, ok=False)
    out = result.output
    assert "Visible tests: 1 of 2 pass" in out
    assert "ex1_tests        FAILED: not done yet (NotImplementedError)" in out
    assert "ex2_tests        passed" in out and "Not ready" in out
    assert "ex2_code: offset (defined in cell 3, which does not run while grading)" in out
    assert todo.read_text() == json.dumps(nb), "validate must not change the notebook"


def test_validate_reports_a_cell_over_the_time_limit(base, tmp_path):
    slow = submit(base / "solutions" / LAB, tmp_path / "slow.ipynb", ex2_code=LOOPING_SCALE)
    add_demo_cell(slow, "scale(1.0)")
    out = cli("validate", str(slow), "--timeout", "2", course=base, ok=False).output
    assert re.search(r"cell \d+ \(ex2_tests\) ran \d+ s, over the limit of 2 s", out), out
    assert "ex1_tests        passed" in out and "ex2_tests        FAILED" in out


# ----------------------------------------------------------------------------- collect


def test_split_names_of_lms_exports_and_browsers():
    labs = [LAB, "lab01_naive_bayes"]
    assert split_name(f"{LAB} (1).ipynb", labs) == ("", LAB)
    assert split_name("smithalice_123_456_lab01_naive_bayes-2.ipynb", labs) == \
        ("smithalice_123_456", "lab01_naive_bayes")
    prefix, lab = split_name("Alice Smith_4711_assignsubmission_file_lab01_naive_bayes(2).ipynb",
                             labs)
    assert lab == "lab01_naive_bayes" and student_id(prefix) == "4711"
    assert student_id("smithalice_123_456") == "smithalice"
    assert student_id("Alice Smith") is None and student_id("") is None
    assert split_name("notes.ipynb", labs) == ("notes", None)


def test_collect_from_folders_zips_and_lms_names(base, tmp_path):
    course = copy_course(base, tmp_path)
    lab = course / "solutions" / LAB
    inbox = tmp_path / "inbox"
    (inbox / "alice").mkdir(parents=True)
    submit(lab, inbox / "alice" / f"{LAB}.ipynb")                   # a folder per student
    with zipfile.ZipFile(inbox / "bob.zip", "w") as zf:                # a zip per student
        zf.writestr(f"{LAB}/{LAB}.ipynb", released(course).read_text())
        zf.writestr(f"__MACOSX/{LAB}/._{LAB}.ipynb", "resource fork")
    submit(lab, inbox / f"Carol Jones_4711_assignsubmission_file_{LAB} (1).ipynb")  # Moodle
    old = submit(lab, inbox / f"smithdave_1_2_{LAB}.ipynb", ex1_code=WRONG_ADD)     # Canvas
    new = submit(lab, inbox / f"smithdave_1_2_{LAB}-1.ipynb")
    os.utime(old, (1_700_000_000, 1_700_000_000))  # the older download
    submit(lab, inbox / "erin_lab07_gans.ipynb")                      # not a lab of the course
    out = cli("collect", str(inbox), course=course, ok=False).output
    assert "4 new, 1 refused" in out
    assert "'lab07_gans', which is not a lab of this course (the labs are lab90_tiny)" in out
    assert "2 files; took the newest" in out
    got = {p.parent.parent.name for p in (course / "submitted").glob(f"*/{LAB}/{LAB}.ipynb")}
    assert got == {"alice", "bob", "4711", "smithdave"}
    dave = course / "submitted" / "smithdave" / LAB / f"{LAB}.ipynb"
    assert dave.read_bytes() == new.read_bytes()
    assert (dave.parent / "timestamp.txt").is_file()
    # the same export as one zip: nothing changes
    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w") as zf:
        for path in inbox.rglob("*"):
            if path.is_file() and "gans" not in path.name:
                zf.write(path, path.relative_to(inbox))
    assert "4 unchanged" in cli("collect", str(export), course=course).output
    # a resubmission is not overwritten without --force
    single = submit(lab, tmp_path / f"{LAB} (3).ipynb", ex2_code=LOOPING_SCALE)
    kept = cli("collect", str(single), "--student", "alice", course=course, ok=False).output
    assert "kept" in kept and "pass --force to replace it" in kept
    alice = course / "submitted" / "alice" / LAB / f"{LAB}.ipynb"
    assert alice.read_bytes() != single.read_bytes()
    cli("collect", str(single), "--student", "alice", "--force", course=course)
    assert alice.read_bytes() == single.read_bytes()
    # a naming the default does not understand, with --pattern
    odd = tmp_path / "odd"
    odd.mkdir()
    submit(lab, odd / "Frank's homework.ipynb")
    no = cli("collect", str(odd), "--lab", LAB, course=course, ok=False).output
    assert "cannot tell the student id" in no
    cli("collect", str(odd), "--lab", LAB, "--pattern", r"(?P<student>\w+)'s ", course=course)
    assert (course / "submitted" / "Frank" / LAB / f"{LAB}.ipynb").is_file()


@pytest.mark.parametrize("entry, link, match", [
    (f"../../solutions/{LAB}/hidden_checks.py", False, "path traversal"),
    ("/etc/cron.d/evil", False, "absolute path"),
    (f"{LAB}_link.ipynb", True, "link or special file"),
])
def test_collect_refuses_unsafe_archives_and_writes_nothing(base, tmp_path, entry, link, match):
    course = copy_course(base, tmp_path)
    evil = tmp_path / f"mallory_{LAB}.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr(f"{LAB}.ipynb", released(course).read_text())
        info = zipfile.ZipInfo(entry)
        if link:
            info.external_attr = (0o120777 << 16)
        zf.writestr(info, "LAB = None  # overwritten by a student")
    checks = (course / "solutions" / LAB / "hidden_checks.py").read_bytes()
    out = cli("collect", str(evil), course=course, ok=False).output
    assert "refused" in out and match in out
    assert not (course / "submitted").exists()
    assert (course / "solutions" / LAB / "hidden_checks.py").read_bytes() == checks


def test_collect_errors_are_clear(base, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no notebooks found in" in cli("collect", str(empty), course=base, ok=False).output
    assert "no lab 'lab99'" in cli("collect", str(empty), "--lab", "lab99", course=base,
                                   ok=False).output


# ----------------------------------------------------------------------------- grading


def test_a_class_graded_in_parallel_scores_what_it_deserves_as_the_serial_run(graded):
    parallel, serial = graded["2"], graded["1"]
    assert parallel["scores"] == serial["scores"] == {
        s: (float(a), float(b)) for s, (a, b) in CLASS.items()}
    assert "4 graded with 2 job(s)" in parallel["output"]
    assert "4 graded with 1 job(s)" in serial["output"]
    course = parallel["course"]
    for student in CLASS:
        page = course / "feedback" / student / LAB / f"{LAB}.html"
        assert page.is_file(), student
    assert "timed out after 2 s" in (course / "feedback" / "dave" / LAB / f"{LAB}.html").read_text()
    assert "No student edited or deleted a locked cell." in parallel["output"]


def test_an_endless_loop_costs_its_time_limit_once(graded):
    """Only answer cells run while grading: the demo cell that calls the looping function again
    does not run, so the loop is killed once and the runner restarted once for the next
    exercise."""
    course = graded["2"]["course"]
    entry = json.loads((course / "grading_cache" / LAB / "dave.json").read_text())
    report = entry["report"]
    assert report["runs"] == 2
    messages = [v["message"] for v in report["verdicts"]]
    assert sum("timed out" in m for m in messages) == 1, messages
    # a call inside the answer cell itself: the cell is cut once and skipped on the restart,
    # so the function is never called again
    looping = submit(course / "solutions" / LAB, course.parent / "loop.ipynb",
                     ex1_code=LOOPING_ADD + "\nadd(1, 2)\n")
    limits = Limits(exercise_seconds=2, notebook_seconds=60, memory_bytes=1 << 30)
    again = grade_submission(course / "solutions" / LAB, looping, limits=limits)
    assert again.runs == 2 and [v.score for v in again.verdicts] == [0.0, 2.0]
    assert "answer cell ex1_code timed out after 2 s" in again.verdicts[0].message


def test_a_resubmission_is_regraded_and_said_unchanged_ones_are_kept(graded, tmp_path):
    course = copy_course(graded["2"]["course"], tmp_path)
    carol = course / "submitted" / "carol" / LAB / f"{LAB}.ipynb"
    submit(course / "solutions" / LAB, carol)
    out = cli("grade", LAB, "--jobs", "2", "--no-progress", course=course).output
    assert "carol: resubmitted since it was graded" in out
    assert "3 unchanged submission(s) keep their grades (--force regrades them)" in out
    assert "1 graded with 2 job(s)" in out
    assert scores(course)["carol"] == (3.0, 2.0)
    feedback = course / "feedback" / "carol" / LAB / f"{LAB}.html"
    assert "passed all" in feedback.read_text()
    # nothing new: nothing is graded or rewritten
    alice = course / "autograded" / "alice" / LAB / f"{LAB}.ipynb"
    before = alice.stat().st_mtime_ns
    out = cli("grade", LAB, "--no-progress", course=course).output
    assert "4 unchanged" in out and "graded with" not in out
    assert alice.stat().st_mtime_ns == before
    out = cli("grade", LAB, "--force", "--jobs", "2", "--timeout", TIMEOUT, "--no-progress",
              course=course).output
    assert "4 graded with 2 job(s)" in out and alice.stat().st_mtime_ns != before


def test_changed_checks_are_said_and_an_older_gradebook_is_a_clear_error(graded, tmp_path):
    course = copy_course(graded["2"]["course"], tmp_path)
    checks = course / "solutions" / LAB / "hidden_checks.py"
    checks.write_text(checks.read_text() + "\n# a fixed typo\n")
    out = cli("autograde", LAB, "--no-progress", course=course).output
    assert "the lab's checks changed since 4 submission(s) were graded" in out
    make_lab(course / "solutions" / LAB, points=(4, 2))  # a new version of the lab
    out = cli("autograde", LAB, "--no-progress", course=course, ok=False).output
    assert "the gradebook holds an older version of lab90_tiny (points of ex1_tests: 3 -> 4)" \
        in out and "--force" in out
    out = cli("grade", LAB, "--force", "--jobs", "2", "--timeout", TIMEOUT, "--no-progress",
              course=course).output
    assert "removed the older version" in out
    assert scores(course)["alice"] == (4.0, 2.0)


def test_a_crash_in_the_middle_of_a_batch_loses_no_grade(base, tmp_path, monkeypatch):
    from nbgrader.apps import NbGraderAPI

    course = copy_course(base, tmp_path)
    write_class(course, tmp_path / "inbox")
    cli("collect", str(tmp_path / "inbox"), course=course)
    real = NbGraderAPI.autograde
    calls = []

    def crash_on_the_third(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the instructor's laptop lid, a power cut, ...
        return real(self, *args, **kwargs)

    monkeypatch.setattr(NbGraderAPI, "autograde", crash_on_the_third)
    crashed = cli("autograde", LAB, "--jobs", "2", "--timeout", TIMEOUT, "--no-progress",
                  course=course, ok=False)
    assert crashed.exit_code != 0
    monkeypatch.setattr(NbGraderAPI, "autograde", real)
    cached = sorted(p.stem for p in (course / "grading_cache" / LAB).glob("*.json"))
    assert cached == sorted(CLASS)
    out = cli("grade", LAB, "--no-progress", course=course).output
    assert "2 unchanged submission(s)" in out
    assert "0 graded with 1 job(s)" in out and "2 from the cache" in out
    assert scores(course) == {s: (float(a), float(b)) for s, (a, b) in CLASS.items()}


def test_grades_are_a_wide_table_and_tampering_is_named(graded, tmp_path):
    course = copy_course(graded["2"]["course"], tmp_path)
    mallory = course / "submitted" / "mallory" / LAB / f"{LAB}.ipynb"
    mallory.parent.mkdir(parents=True)
    submit(course / "solutions" / LAB, mallory)
    nb = json.loads(mallory.read_text())
    for cell in nb["cells"]:
        if cell["metadata"]["nbgrader"]["grade_id"] == "ex1_tests":
            cell["source"] = "# graded: full marks"
    nb["cells"] = [c for c in nb["cells"] if c["metadata"]["nbgrader"]["grade_id"] != "ex2_tests"]
    mallory.write_text(json.dumps(nb))
    (course / "submitted" / "zed" / "lab07_gans").mkdir(parents=True)
    out = cli("grade", LAB, "--no-progress", course=course).output
    assert "lab07_gans', which is not a lab of this course" in out
    assert "mallory: lab90_tiny: ex1_tests edited, ex2_tests deleted" in out
    with open(course / "grades.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["student_id", LAB, f"{LAB}:add", f"{LAB}:scale", "total"]
    table = {row[0]: row[1:] for row in rows[1:]}
    assert sorted(table) == sorted([*CLASS, "mallory"])
    assert table["mallory"] == ["5.0", "3.0", "2.0", "5.0"]  # the originals were restored
    assert table["bob"] == ["2.0", "0.0", "2.0", "2.0"]
    with open(course / "locked_cells.csv", newline="") as fh:
        locked = list(csv.reader(fh))
    assert locked == [["student_id", "lab", "cell", "change"],
                      ["mallory", LAB, "ex1_tests", "edited"],
                      ["mallory", LAB, "ex2_tests", "deleted"]]


def test_instructor_errors_are_clear(base, tmp_path):
    course = copy_course(base, tmp_path)
    out = cli("autograde", "lab99_nothing", course=course, ok=False).output
    assert "no lab 'lab99_nothing'" in out and "the labs are lab90_tiny" in out
    assert "no submissions of lab90_tiny" in cli("grade", LAB, course=course, ok=False).output
    (course / "submitted").mkdir()
    assert "no submissions in" in cli("grade", "--all", course=course, ok=False).output
    assert "name one LAB or pass --all" in cli("feedback", course=course, ok=False).output
    assert "no graded lab yet" in cli("grades", course=course, ok=False).output
    wrong = course / "submitted" / "alice" / LAB / f"{LAB} (1).ipynb"
    wrong.parent.mkdir(parents=True)
    shutil.copy(released(course), wrong)
    out = cli("autograde", LAB, course=course, ok=False).output
    assert f"no {LAB}.ipynb (found ['{LAB} (1).ipynb'])" in out


def test_feedback_is_written_when_missing_and_rewritten_only_with_force(graded, tmp_path):
    course = copy_course(graded["2"]["course"], tmp_path)
    page = course / "feedback" / "bob" / LAB / f"{LAB}.html"
    page.unlink()
    out = cli("feedback", LAB, "--no-progress", course=course).output
    assert "feedback written for 1 student(s)" in out and page.is_file()
    assert "add: 0 / 3 points" in page.read_text()
    assert "feedback written for 0 student(s)" in cli("feedback", LAB, "--no-progress",
                                                      course=course).output
    assert "feedback written for 4 student(s)" in cli("feedback", "--all", "--force",
                                                      "--no-progress", course=course).output


# ----------------------------------------------------------------------------- the book


def test_book_and_pdf_wrap_build_book(base, tmp_path, monkeypatch):
    course = copy_course(base, tmp_path)
    calls = []
    tool = Course(course).script("build_book")
    monkeypatch.setattr(tool, "build", lambda **kw: calls.append(kw) or 0)
    monkeypatch.setattr(tool, "build_pdf", lambda **kw: calls.append(kw) or Path("x.pdf"))
    monkeypatch.setattr(Course, "script", lambda self, name: tool)
    assert "instructor edition is built" in cli("book", "--instructor", course=course).output
    assert "student edition is built" in cli("book", "--strict", course=course).output
    assert "The PDF: x.pdf" in cli("pdf", course=course).output
    assert calls == [{"strict": False, "rebuild_all": False, "edition": "instructor"},
                     {"strict": True, "rebuild_all": False, "edition": "student"},
                     {"strict": False}]


def test_publish_pushes_the_student_edition_to_a_local_bare_repository(base, tmp_path):
    course = copy_course(base, tmp_path)
    remote = tmp_path / "remote.git"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    subprocess.run(["git", "init", "-q"], cwd=course, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "course"], cwd=course,
                   check=True)
    subprocess.run(["git", "remote", "add", "origin", str(remote)], cwd=course, check=True)
    html = course / "_build" / "html"
    html.mkdir(parents=True)
    (html / "index.html").write_text("<html>the book</html>")
    (html / ".edition").write_text("instructor\n")
    assert "only the student edition" in cli("publish", course=course, ok=False).output
    (html / ".edition").write_text("student\n")
    env_git = ["git", "--git-dir", str(remote)]
    cli("publish", course=course)
    shown = subprocess.run([*env_git, "show", "gh-pages:index.html"], capture_output=True,
                           text=True, check=True)
    assert shown.stdout == "<html>the book</html>"
    files = subprocess.run([*env_git, "ls-tree", "--name-only", "gh-pages"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert ".nojekyll" in files and ".edition" in files



# ----------------------------------------------------------------------------- JupyterHub


def test_jupyterhub_exchange_round_trip_with_three_students(base, tmp_path):
    """nbgrader's exchange, as on a JupyterHub, through a local exchange folder: the instructor
    releases, three students (each with their own home and CourseDirectory) fetch and submit,
    the instructor collects, grades with dgm-course, releases feedback, each student fetches
    their own."""
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange.default import (
        ExchangeCollect,
        ExchangeFetchAssignment,
        ExchangeFetchFeedback,
        ExchangeReleaseAssignment,
        ExchangeReleaseFeedback,
        ExchangeSubmit,
    )
    from traitlets.config import Config

    course = copy_course(base, tmp_path)
    exchange = tmp_path / "exchange"
    instructor = Course(course).config()
    instructor.Exchange.root = str(exchange)

    def run(cls, config, **coursedir):
        folder = CourseDirectory(config=config)
        for name, value in coursedir.items():
            setattr(folder, name, value)
        app = cls(coursedir=folder, authenticator=Authenticator(config=config), config=config)
        app.start()

    def student_config(home: Path) -> Config:
        config = Config()
        config.Exchange.root = str(exchange)
        config.Exchange.cache = str(home / ".nbgrader_cache")
        config.Exchange.assignment_dir = str(home)  # the student's home on the hub
        config.CourseDirectory.root = str(home)
        config.CourseDirectory.course_id = "dgm-course"
        return config

    run(ExchangeReleaseAssignment, instructor, assignment_id=LAB)
    assert (exchange / "dgm-course" / "outbound" / LAB / f"{LAB}.ipynb").is_file()
    answers = {"alice": {}, "bob": {"ex1_code": WRONG_ADD}, "carol": None}
    solution = course / "solutions" / LAB
    for student, bodies in answers.items():
        home = tmp_path / "home" / student
        home.mkdir(parents=True)
        config = student_config(home)
        run(ExchangeFetchAssignment, config, assignment_id=LAB)
        fetched = home / LAB / f"{LAB}.ipynb"
        assert fetched.read_bytes() == released(course).read_bytes()
        if bodies is not None:  # carol submits the lab untouched
            submit(solution, fetched, **bodies)
        run(ExchangeSubmit, config, assignment_id=LAB, student_id=student)
    run(ExchangeCollect, instructor, assignment_id=LAB)
    assert sorted(Course(course).submissions(LAB)) == sorted(answers)
    out = cli("grade", LAB, "--jobs", "2", "--no-progress", course=course).output
    assert "3 submission(s) recorded" in out
    assert scores(course) == {"alice": (3.0, 2.0), "bob": (0.0, 2.0), "carol": (0.0, 0.0)}
    run(ExchangeReleaseFeedback, instructor, assignment_id=LAB)
    for student, total in (("alice", "5.0 / 5.0"), ("bob", "2.0 / 5.0"), ("carol", "0.0 / 5.0")):
        home = tmp_path / "home" / student
        run(ExchangeFetchFeedback, student_config(home), assignment_id=LAB, student_id=student)
        pages = list((home / LAB / "feedback").glob(f"*/{LAB}.html"))
        assert len(pages) == 1, (student, pages)
        assert f"(Score: {total})" in pages[0].read_text(), student
