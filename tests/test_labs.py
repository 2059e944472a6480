"""The labs and the real nbgrader pipeline, end to end and headless.

For every lab found in ``solutions/`` (parametrised by discovery):

1. ``notebooks/<lab>/`` is exactly what ``scripts/release_labs.py`` generates (no drift);
2. the student version holds no solution and no hidden test, and every answer cell is a stub;
3. the lab has >= 3 graded test cells, each with hidden tests that guard the answer with forbid();
4. the student version, executed with nbclient, fails only at the exercise stubs;
5. under ``nbgrader autograde`` the solution earns full marks, the untouched student version 0,
   and (e) a submission whose answers just call the dgm_lab reference (or its scikit-learn twin)
   earns 0 on those exercises and full marks on the others.

Then the adversarial matrix on one representative lab (lab01 when it exists), in one autograde
batch with a short per-cell limit: (d) edited / deleted / re-pointed locked test cells are
restored from the gradebook and graded with the original tests; (f) an answer stuck in an endless
loop is cut by the per-cell time limit, scores 0 there, and the other submissions of the batch
are graded (nbgrader goes through them alphabetically: honest, loop, then tamper). Feedback is
generated for that batch.

The pipeline runs once per session (shared by pytest-xdist workers) in a scratch copy of the
course (``nbgrader_config.py`` + ``solutions/``) with its own gradebook, so the instructor's
grading state is never touched.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("release_labs", ROOT / "scripts" / "release_labs.py")
release_labs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(release_labs)

LABS = release_labs.discover_labs(ROOT)
REPRESENTATIVE = next((lab for lab in LABS if lab.startswith("lab01")), LABS[0] if LABS else None)
# Per-cell limit of the adversarial batch (the course config allows 120 s): short, so the endless
# loop is cut quickly, and still above any solution cell (the labs keep every cell < 20 s).
CELL_TIMEOUT = 20
NO_LABS = "no lab in solutions/ yet (expects solutions/<lab>/<lab>.ipynb)"
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
           "BEGIN MARK SCHEME", "END MARK SCHEME")


def lab_params() -> list[Any]:
    return LABS or [pytest.param(None, marks=pytest.mark.skip(reason=NO_LABS))]


def _env() -> dict[str, str]:
    """Environment for nbgrader subprocesses: never the instructor's gradebook, no display."""
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_DB_URL"}
    env.update(MPLBACKEND="Agg", PYDEVD_DISABLE_FILE_VALIDATION="1", JUPYTER_PLATFORM_DIRS="1",
               PYTHONWARNINGS="ignore")
    return env


# ----------------------------------------------------------------------------- notebook helpers


def read_nb(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def nbg(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def answer_cells(nb: nbformat.NotebookNode) -> list[dict]:
    return [c for c in nb.cells if c.cell_type == "code" and nbg(c).get("solution")]


def grade_cells(nb: nbformat.NotebookNode) -> list[dict]:
    return [c for c in nb.cells
            if c.cell_type == "code" and nbg(c).get("grade") and not nbg(c).get("solution")]


def region(source: str, begin: str, end: str) -> tuple[list[str], list[str]]:
    """Lines strictly inside ``begin``/``end`` marker lines, and the lines outside them."""
    inside, outside, depth = [], [], False
    for line in source.splitlines():
        if begin in line:
            depth = True
        elif end in line:
            depth = False
        elif depth:
            inside.append(line)
        else:
            outside.append(line)
    return inside, outside


def secret_and_public_lines(source_nb: nbformat.NotebookNode) -> tuple[set[str], set[str]]:
    secret, public = set(), set()
    for cell in source_nb.cells:
        sol_in, rest = region(cell.source, "BEGIN SOLUTION", "END SOLUTION")
        hid_in, rest = region("\n".join(rest), "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
        secret.update(line.strip() for line in sol_in + hid_in if line.strip())
        public.update(line.strip() for line in rest if line.strip())
    return secret - public, public


def exercises(source_nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    """The lab's exercises in order: each graded test cell with the answer cell before it."""
    found, answer = [], None
    for cell in source_nb.cells:
        if cell in answer_cells(source_nb):
            answer = cell
        elif cell in grade_cells(source_nb):
            found.append({"test_id": nbg(cell)["grade_id"], "points": float(nbg(cell)["points"]),
                          "answer_id": nbg(answer)["grade_id"] if answer is not None else None,
                          "answer": answer, "test": cell})
            answer = None
    return found


def replace_solution(source: str, body: str) -> str:
    """``source`` with the region between the solution markers replaced by ``body``
    (indented like the marker), and the marker lines removed."""
    lines = source.splitlines()
    begin = next(i for i, line in enumerate(lines) if "BEGIN SOLUTION" in line)
    end = next(i for i, line in enumerate(lines) if "END SOLUTION" in line)
    indent = re.match(r"\s*", lines[begin]).group(0)
    new = [indent + line if line.strip() else line for line in body.splitlines()]
    return "\n".join(lines[:begin] + new + lines[end + 1:])


def strip_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines()
                     if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line)


def answer_is_function_body(answer: dict) -> bool:
    lines = answer.source.splitlines()
    begin = next((i for i, line in enumerate(lines) if "BEGIN SOLUTION" in line), None)
    return (begin is not None and lines[begin][:1].isspace()
            and any(line.lstrip().startswith("def ") for line in lines[:begin]))


def hidden_tree(test_source: str) -> ast.Module:
    """The parsed hidden tests of a test cell (an empty module if they do not parse)."""
    hidden, _ = region(test_source, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
    try:
        return ast.parse("\n".join(hidden))
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])


def forbidden_targets(test_source: str) -> list[str]:
    """Source text of the first argument of every ``forbid(...)`` call in the hidden tests."""
    found = []
    for node in ast.walk(hidden_tree(test_source)):
        if isinstance(node, ast.Call) and node.args:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
                node.func, "id", "")
            if name == "forbid":
                found.append(ast.unparse(node.args[0]))
    return found


def hidden_imports(test_source: str) -> list[str]:
    """The import statements of the hidden tests (they name the references)."""
    return [ast.unparse(n) for n in hidden_tree(test_source).body
            if isinstance(n, ast.Import | ast.ImportFrom)]


def cheat_body(reference_expr: str, imports: list[str]) -> str:
    """An answer body that forwards the student's arguments to the reference.

    It does the hidden tests' imports itself and evaluates the reference expression when the
    function is called; arguments go by name when the names match, else by position.
    """
    return (
        "_given = dict(locals())\n"
        "import inspect as _inspect\n"
        + "".join(f"{line}\n" for line in imports)
        + f"_reference = eval({reference_expr!r}, {{**globals(), **locals()}})\n"
        "_names = [p.name for p in _inspect.signature(_reference).parameters.values()\n"
        "          if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]\n"
        "if _names and all(name in _names for name in _given):\n"
        "    return _reference(**_given)\n"
        "return _reference(*_given.values())\n"
    )


LOOP_BODY = "while True:\n    pass\n"
STUB_BODY = "raise NotImplementedError()\n"

# Answers that just call the dgm_lab reference, per lab: {answer grade_id: answer body}. Each must
# pass the exercise's visible tests (it is a working answer) and be caught by the hidden tests.
# A lab without an entry gets one built automatically when its hidden tests forbid() a plain
# function (the arguments are forwarded to it); a lab whose references are classes needs a line
# here (see lab01).
CHEATS: dict[str, dict[str, str]] = {
    "lab01_naive_bayes": {
        # scikit-learn's twin (dgm_lab's GaussianNaiveBayes rejects var_smoothing=0 with a
        # constant feature, which the visible tests use)
        "ex1_code": (
            "import sklearn.naive_bayes\n"
            "m = sklearn.naive_bayes.GaussianNB(var_smoothing=var_smoothing)\n"
            "m = m.fit(x.numpy(), y.numpy())\n"
            "t = lambda a: torch.as_tensor(a, dtype=x.dtype)\n"
            "return t(np.log(m.class_prior_)), t(m.theta_), t(m.var_)\n"),
        "ex3_code": (
            "import dgm_lab.naive_bayes as nb\n"
            "model = nb.BernoulliNaiveBayes(alpha).fit(x, y, n_classes)\n"
            "return model.class_log_prior, model.probs\n"),
        "ex4_code": (
            "import dgm_lab.naive_bayes as nb\n"
            "model = nb.BernoulliNaiveBayes()\n"
            "model.class_log_prior, model.probs = log_prior, probs\n"
            "return model.impute(x, observed)\n"),
    },
}


def submission(source_nb: nbformat.NotebookNode, released_nb: nbformat.NotebookNode,
               bodies: dict[str, str] | None = None,
               edit: Callable[[list[dict]], None] | None = None) -> nbformat.NotebookNode:
    """A submitted notebook: the released copy, every answer filled with the solution, except
    the answers named in ``bodies`` (grade_id -> answer body); ``edit`` may then tamper."""
    bodies = bodies or {}
    sources = {nbg(c)["grade_id"]: c.source for c in answer_cells(source_nb)}
    nb = copy.deepcopy(released_nb)
    for cell in answer_cells(nb):
        gid = nbg(cell)["grade_id"]
        src = sources[gid]
        cell.source = replace_solution(src, bodies[gid]) if gid in bodies else strip_markers(src)
    if edit is not None:
        edit(nb.cells)
    return nb


# ----------------------------------------------------------------------------- shared fixtures


def _once(tmp_path_factory: pytest.TempPathFactory, name: str,
          compute: Callable[[Path], dict]) -> dict:
    """Run ``compute`` once per test session, also under pytest-xdist (workers share the result)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return compute(tmp_path_factory.mktemp(name))
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp().parent
    result = base / f"{name}.json"
    with FileLock(str(result) + ".lock"):
        if not result.is_file():
            folder = base / name
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            result.write_text(json.dumps(compute(folder)))
        return json.loads(result.read_text())


@pytest.fixture(scope="module")
def drift(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not LABS:
        pytest.skip(NO_LABS)
    return _once(tmp_path_factory, "drift", lambda _: release_labs.drifted(LABS, ROOT))


def run_nbgrader(course: Path, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "nbgrader", *args,
           f"--CourseDirectory.root={course}",
           f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"]
    return subprocess.run(cmd, cwd=course, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def matrix_plan(lab: str) -> dict[str, Any]:
    """Which exercises of the representative lab the tamper and loop submissions attack."""
    source = read_nb(ROOT / "solutions" / lab / f"{lab}.ipynb")
    exs = exercises(source)
    functional = [e for e in exs
                  if e["answer"] is not None and answer_is_function_body(e["answer"])]

    def called_later(ex: dict) -> bool:
        """Whether a cell after the exercise's tests calls its function (and would hang too)."""
        name = re.search(r"def\s+(\w+)", ex["answer"].source)
        after = source.cells[source.cells.index(ex["test"]) + 1:]
        return bool(name) and any(re.search(rf"\b{name.group(1)}\s*\(", c.source)
                                  for c in after if c.cell_type == "code")

    # Loop in the last exercise that no later cell calls: one cell is cut, not several.
    functional = sorted(functional, key=called_later, reverse=True)
    return {
        "tamper": [e["test_id"] for e in exs[:3]],
        "tamper_answers": [e["answer_id"] for e in exs[:3]],
        "loop": functional[-1]["test_id"] if functional else None,
        "loop_answer": functional[-1]["answer_id"] if functional else None,
    }


def cheat_plan(lab: str) -> dict[str, dict[str, str]]:
    """{answer grade_id: {"test": test grade_id, "body": cheating answer body}} for ``lab``."""
    exs = exercises(read_nb(ROOT / "solutions" / lab / f"{lab}.ipynb"))
    tests_of = {e["answer_id"]: e["test_id"] for e in exs}
    if lab in CHEATS:
        return {a: {"test": tests_of[a], "body": body} for a, body in CHEATS[lab].items()}
    for e in exs:
        if e["answer"] is None or not answer_is_function_body(e["answer"]):
            continue
        for target in forbidden_targets(e["test"].source):
            if not target.split(".")[-1][:1].isupper():  # a function, not a class
                body = cheat_body(target, hidden_imports(e["test"].source))
                return {e["answer_id"]: {"test": e["test_id"], "body": body}}
    return {}


def matrix_submissions(src: nbformat.NotebookNode, rel: nbformat.NotebookNode,
                       plan: dict[str, Any]) -> dict[str, nbformat.NotebookNode]:
    """The tamper and loop submissions of the representative lab, and an honest one."""
    tamper_ids = plan["tamper"]

    def tamper(cells: list[dict]) -> None:
        by_id = {nbg(c).get("grade_id"): c for c in cells}
        if len(tamper_ids) > 0:   # (d1) test cell emptied; its answer left as the stub
            by_id[tamper_ids[0]].source = "pass"
        if len(tamper_ids) > 1:   # (d2) test cell deleted; its answer left as the stub
            cells.remove(by_id[tamper_ids[1]])
        if len(tamper_ids) > 2:   # (d3) answer right; test cell unlocked and worth 100 points
            meta = nbg(by_id[tamper_ids[2]])
            meta["points"], meta["locked"] = 100, False
            by_id[tamper_ids[2]].metadata["editable"] = True

    subs = {"honest": submission(src, rel),
            "tamper": submission(src, rel, {a: STUB_BODY for a in plan["tamper_answers"][:2] if a},
                                 edit=tamper)}
    if plan["loop_answer"]:
        subs["loop"] = submission(src, rel, {plan["loop_answer"]: LOOP_BODY})
    return subs


def cell_seconds(cell: dict) -> float:
    """Execution time of a cell, from the timings nbclient records in its metadata."""
    from datetime import datetime

    times = cell.get("metadata", {}).get("execution", {})
    start, end = times.get("iopub.execute_input"), times.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def _grade_course(course: Path) -> dict:
    """Release, submit, autograde and generate feedback in a scratch course (own gradebook).

    Batch 1 (course time limit): every lab's solution, untouched student version, and an answer
    calling the reference. Batch 2 (CELL_TIMEOUT): the representative lab's honest / tamper /
    loop submissions.
    """
    from nbgrader.api import Gradebook

    timings: dict[str, float] = {}
    shutil.copy2(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copytree(ROOT / "solutions", course / "solutions",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc"))

    def timed(step: str, *args: str) -> subprocess.CompletedProcess:
        t0 = time.perf_counter()
        proc = run_nbgrader(course, *args)
        timings[step] = round(time.perf_counter() - t0, 1)
        return proc

    proc = timed("generate_assignment", "generate_assignment", "*", "--force")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def submit(lab: str, subs: dict[str, nbformat.NotebookNode]) -> None:
        for student, nb in subs.items():
            folder = course / "submitted" / student / lab
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{lab}.ipynb")
            students.setdefault(lab, []).append(student)

    students: dict[str, list[str]] = {}
    released = {}
    cheat_plans: dict[str, dict] = {}
    for lab in LABS:
        src = read_nb(course / "solutions" / lab / f"{lab}.ipynb")
        rel = read_nb(course / "notebooks" / lab / f"{lab}.ipynb")
        released[lab] = (src, rel)
        subs = {"solution": submission(src, rel), "blank": copy.deepcopy(rel)}
        cheats = cheat_plan(lab)
        if cheats:
            subs["cheat"] = submission(src, rel, {a: c["body"] for a, c in cheats.items()})
        cheat_plans[lab] = cheats
        submit(lab, subs)
    cheap = timed("autograde_all_labs", "autograde", "*")

    plan = matrix_plan(REPRESENTATIVE)
    submit(REPRESENTATIVE, matrix_submissions(*released[REPRESENTATIVE], plan))
    # Already graded submissions (solution, blank) are skipped: this batch is the matrix only.
    matrix = timed("autograde_matrix", "autograde", REPRESENTATIVE,
                   f"--Execute.timeout={CELL_TIMEOUT}")
    fb = timed("generate_feedback", "generate_feedback", REPRESENTATIVE)

    scores: dict[str, dict] = {}
    slowest: dict[str, list] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for lab, names in students.items():
            for student in names:
                key = f"{student}/{lab}"
                try:
                    sub = gb.find_submission(lab, student)
                    grades = {g.name: [g.score, g.max_score] for nb in sub.notebooks
                              for g in nb.grades}
                    scores[key] = {"score": sub.score, "max_score": sub.max_score, "grades": grades}
                except Exception as err:  # noqa: BLE001 - reported by the tests
                    scores[key] = {"error": repr(err)}
                path = course / "autograded" / student / lab / f"{lab}.ipynb"
                if path.is_file():
                    cells = read_nb(path).cells
                    worst = max(cells, key=cell_seconds)
                    slowest[key] = [nbg(worst).get("grade_id"), round(cell_seconds(worst), 1),
                                    round(sum(map(cell_seconds, cells)), 1)]
    return {"course": str(course), "students": students, "plan": plan, "scores": scores,
            "cheats": cheat_plans,
            "slowest_cell": slowest, "timings": timings,
            "autograde_rc": [cheap.returncode, matrix.returncode],
            "autograde_log": cheap.stdout + cheap.stderr + matrix.stdout + matrix.stderr,
            "feedback_rc": fb.returncode, "feedback_log": fb.stdout + fb.stderr}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not LABS:
        pytest.skip(NO_LABS)
    return _once(tmp_path_factory, "nbgrader_course", _grade_course)


def autograded_nb(graded: dict, student: str, lab: str) -> nbformat.NotebookNode:
    path = Path(graded["course"]) / "autograded" / student / lab / f"{lab}.ipynb"
    assert path.is_file(), (f"nbgrader produced no autograded notebook for {student}/{lab}:\n"
                            + log_of(graded, student, lab))
    return read_nb(path)


def log_of(graded: dict, student: str, lab: str) -> str:
    """The part of the autograde log about one submission."""
    log = graded["autograde_log"]
    start = log.find(f"submitted/{student}/{lab}/")
    if start < 0:
        return log[-3000:]
    nxt = re.search(rf"submitted/(?!{re.escape(student)}/)[^/\s]+/[^/\s]+/", log[start:])
    return log[start:start + nxt.start()] if nxt else log[start:]


def error_names(cell: dict) -> list[str]:
    return [o.get("ename", "") for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def score_of(graded: dict, student: str, lab: str) -> dict:
    entry = graded["scores"][f"{student}/{lab}"]
    assert "error" not in entry, f"{student}/{lab} is not in the gradebook: {entry['error']}"
    return entry


# ----------------------------------------------------------------------------- static checks


@pytest.mark.parametrize("lab", lab_params())
def test_released_notebooks_match_solutions(lab, drift):
    assert lab not in drift, (
        f"notebooks/{lab} drifted from solutions/{lab}: {drift.get(lab)}; "
        "run `python scripts/release_labs.py` and commit notebooks/")


@pytest.mark.parametrize("lab", lab_params())
def test_student_version_holds_no_solution_and_no_hidden_test(lab):
    student_path = ROOT / "notebooks" / lab / f"{lab}.ipynb"
    assert student_path.is_file(), f"{student_path} missing: run `python scripts/release_labs.py`"
    source, student = read_nb(ROOT / "solutions" / lab / f"{lab}.ipynb"), read_nb(student_path)
    text = "\n".join(cell.source for cell in student.cells)
    for marker in MARKERS:
        assert marker not in text, f"{lab}: the student version contains {marker!r}"
    secret, _ = secret_and_public_lines(source)
    student_lines = {line.strip() for line in text.splitlines()}
    leaked = sorted(secret & student_lines)
    assert not leaked, f"{lab}: solution / hidden-test lines in the student version: {leaked}"
    answers = answer_cells(student)
    assert len(answers) == len(answer_cells(source)) and answers
    for cell in answers:
        assert "raise NotImplementedError" in cell.source, (
            f"{lab}: answer cell {nbg(cell)['grade_id']} is not a stub:\n{cell.source}")
    for cell in grade_cells(student):
        assert nbg(cell).get("locked") and cell.metadata.get("editable") is False, (
            f"{lab}: test cell {nbg(cell)['grade_id']} is not read-only")


@pytest.mark.parametrize("lab", lab_params())
def test_lab_has_three_graded_exercises_with_guarded_hidden_tests(lab):
    source = read_nb(ROOT / "solutions" / lab / f"{lab}.ipynb")
    ids = [nbg(c)["grade_id"] for c in source.cells if "grade_id" in nbg(c)]
    assert len(ids) == len(set(ids)), f"{lab}: duplicate grade_ids"
    exs = exercises(source)
    assert len(exs) >= 3, f"{lab}: {len(exs)} graded test cells, need >= 3"
    for ex in exs:
        assert ex["points"] > 0, f"{lab}: {ex['test_id']} is worth no points"
        assert ex["answer_id"] is not None, f"{lab}: {ex['test_id']} follows no answer cell"
        hidden, visible = region(ex["test"].source, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
        assert any(line.strip() and not line.strip().startswith("#") for line in hidden), (
            f"{lab}: test cell {ex['test_id']} has no hidden tests")
        assert any(line.strip() for line in visible), (
            f"{lab}: test cell {ex['test_id']} has no visible sanity test")
        assert forbidden_targets(ex["test"].source), (
            f"{lab}: the hidden tests of {ex['test_id']} never call the answer inside "
            "`with forbid(<dgm_lab reference>):`")


@pytest.mark.parametrize("lab", lab_params())
def test_student_version_fails_only_at_the_exercise_stubs(lab, tmp_path):
    """Executed top to bottom (allow_errors), every error is the stub's NotImplementedError,
    raised by the answer's own tests or by a later cell that calls it, or a NameError for a
    variable that an earlier failing cell would have defined (same root cause)."""
    from nbclient import NotebookClient

    released = ROOT / "notebooks" / lab
    assert (released / f"{lab}.ipynb").is_file(), f"{released} missing: run scripts/release_labs.py"
    shutil.copytree(released, tmp_path / lab)
    nb = read_nb(tmp_path / lab / f"{lab}.ipynb")
    NotebookClient(nb, timeout=300, startup_timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path / lab)}}).execute()
    unset: set[str] = set()  # names assigned by cells that failed
    bad = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            if output.output_type != "error":
                continue
            name = re.match(r"name '(\w+)' is not defined", output.evalue or "")
            if output.ename == "NotImplementedError" or (
                    output.ename == "NameError" and name and name.group(1) in unset):
                continue
            bad.append(f"cell {index} ({nbg(cell).get('grade_id')}): {output.ename}: "
                       f"{output.evalue}")
        if error_names(cell):
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue
            unset.update(node.id for node in ast.walk(tree)
                         if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store))
    assert not bad, f"{lab}: errors other than the exercise stubs:\n" + "\n".join(bad)
    for cell in grade_cells(nb):
        assert "NotImplementedError" in error_names(cell), (
            f"{lab}: test cell {nbg(cell)['grade_id']} passes on the blank student version")


# ----------------------------------------------------------------------------- nbgrader pipeline


@pytest.mark.slow
@pytest.mark.parametrize("lab", lab_params())
def test_solution_scores_full_marks(lab, graded, record_property):
    entry = score_of(graded, "solution", lab)
    slowest = graded["slowest_cell"].get(f"solution/{lab}")
    record_property("slowest_cell", slowest)
    print(f"{lab}: slowest cell {slowest} [grade_id, s, whole notebook s]; "
          f"pipeline steps {graded['timings']}")
    lost = {gid: sm for gid, sm in entry["grades"].items() if sm[0] != sm[1]}
    assert entry["max_score"] > 0 and not lost, (
        f"{lab}: the solution lost points on {lost}:\n" + failed_cells(graded, "solution", lab))
    assert entry["score"] == entry["max_score"]


@pytest.mark.slow
@pytest.mark.parametrize("lab", lab_params())
def test_untouched_student_version_scores_zero(lab, graded):
    entry = score_of(graded, "blank", lab)
    earned = {gid: sm for gid, sm in entry["grades"].items() if sm[0] != 0}
    assert entry["score"] == 0 and not earned, f"{lab}: the blank student version earned {earned}"


def failed_cells(graded: dict, student: str, lab: str) -> str:
    path = Path(graded["course"]) / "autograded" / student / lab / f"{lab}.ipynb"
    if not path.is_file():
        return log_of(graded, student, lab)[-3000:]
    out = []
    for cell in read_nb(path).cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                out.append(f"{nbg(cell).get('grade_id')}: {o['ename']}: {o['evalue']}")
    return "\n".join(out)


def _rep() -> str:
    if REPRESENTATIVE is None:
        pytest.skip(NO_LABS)
    return REPRESENTATIVE


@pytest.mark.slow
def test_edited_locked_test_cells_are_restored_and_graded_with_the_original_tests(graded):
    lab = _rep()
    plan = graded["plan"]
    assert len(plan["tamper"]) >= 3
    entry = score_of(graded, "tamper", lab)
    emptied, deleted, repointed = plan["tamper"][:3]
    source_nb = read_nb(ROOT / "solutions" / lab / f"{lab}.ipynb")
    source = {nbg(c).get("grade_id"): c for c in source_nb.cells}
    # Detected: nbgrader compares every locked cell with the gradebook and reports the change.
    # (It reports a checksum change for every cell with hidden tests, as the released copy lacks
    # them, and restores them all: edited or not, a test cell is always run as the source has it.)
    log = log_of(graded, "tamper", lab)
    assert f"Attribute 'checksum' for cell {emptied} has changed" in log, log[-3000:]
    assert f"Attribute 'points' for cell {repointed} has changed" in log, log[-3000:]
    assert f"Missing grade cell {deleted}" in log, log[-3000:]
    # Graded with the original tests: the restored cells hold the source's hidden tests.
    cells = {nbg(c).get("grade_id"): c for c in autograded_nb(graded, "tamper", lab).cells}
    for gid in (emptied, deleted):
        assert source[gid].source.strip() in cells[gid].source, f"{gid} not restored"
        assert "NotImplementedError" in error_names(cells[gid])
    assert entry["grades"][emptied][0] == 0 and entry["grades"][deleted][0] == 0
    # Points cannot be inflated: the original maximum stands, and the right answer earns it.
    points = float(nbg(source[repointed])["points"])
    assert entry["grades"][repointed] == [points, points]
    assert entry["max_score"] == score_of(graded, "solution", lab)["max_score"]
    others = {g: sm for g, sm in entry["grades"].items()
              if g not in (emptied, deleted) and sm[0] != sm[1]}
    assert not others, f"untampered exercises lost points: {others}"


@pytest.mark.slow
@pytest.mark.parametrize("lab", lab_params())
def test_answer_that_calls_the_reference_scores_zero_on_that_exercise(lab, graded):
    cheats = graded["cheats"][lab]
    assert cheats, (
        f"{lab}: cannot build an answer that calls the reference (its hidden tests forbid() no "
        "plain function): add one to CHEATS in tests/test_labs.py")
    entry = score_of(graded, "cheat", lab)
    cells = {nbg(c).get("grade_id"): c for c in autograded_nb(graded, "cheat", lab).cells}
    for answer, cheat in cheats.items():
        # The visible tests passed (a working answer); the hidden tests' forbid() caught it.
        assert error_names(cells[cheat["test"]]) == ["ForbiddenCallError"], (
            f"{lab}: the answer of {answer} that calls the reference was not caught by forbid(): "
            f"errors {error_names(cells[cheat['test']])}\n" + failed_cells(graded, "cheat", lab))
        assert entry["grades"][cheat["test"]][0] == 0
    cheated = {c["test"] for c in cheats.values()}
    others = {g: sm for g, sm in entry["grades"].items() if g not in cheated and sm[0] != sm[1]}
    assert not others, f"{lab}: honest exercises lost points: {others}"


@pytest.mark.slow
def test_endless_loop_is_cut_by_the_cell_time_limit_and_the_batch_goes_on(graded):
    lab = _rep()
    plan = graded["plan"]
    assert plan["loop"], f"{lab}: no exercise answer is a function body"
    entry = score_of(graded, "loop", lab)
    cell = next(c for c in autograded_nb(graded, "loop", lab).cells
                if nbg(c).get("grade_id") == plan["loop"])
    assert "CellTimeoutError" in error_names(cell), error_names(cell)
    assert f"Timeout waiting for execute reply ({CELL_TIMEOUT}s)" in log_of(graded, "loop", lab)
    assert entry["grades"][plan["loop"]][0] == 0
    others = {g: sm for g, sm in entry["grades"].items() if g != plan["loop"] and sm[0] != sm[1]}
    assert not others, f"exercises after the interrupted one lost points: {others}"
    # Every other submission of the same batch was graded, the honest one with full marks, and
    # the one graded after the loop (tamper) too.
    honest = score_of(graded, "honest", lab)
    assert honest["score"] == honest["max_score"] > 0
    assert autograded_nb(graded, "tamper", lab).cells
    for key, value in graded["scores"].items():
        assert "error" not in value, f"{key} was not graded: {value['error']}"
    assert graded["autograde_rc"] == [0, 0], graded["autograde_log"][-3000:]


@pytest.mark.slow
def test_feedback_is_generated_for_every_submission(graded):
    lab = _rep()
    assert graded["feedback_rc"] == 0, graded["feedback_log"][-3000:]
    for student in graded["students"][lab]:
        html = Path(graded["course"]) / "feedback" / student / lab / f"{lab}.html"
        assert html.is_file(), f"no feedback for {student}"
        entry = score_of(graded, student, lab)
        score, best = round(float(entry["score"]), 2), round(float(entry["max_score"]), 2)
        total = f"(Score: {score} / {best})"
        assert total in html.read_text(), f"{student}: {total} not in {html}"
