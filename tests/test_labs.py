"""The labs and the real grading pipeline, end to end and headless.

For every lab found in ``solutions/`` (parametrised by discovery):

1. ``notebooks/<lab>/`` is exactly what ``scripts/release_labs.py`` generates (no drift);
2. the student version holds no solution, no hidden check (no ``hidden_checks.py`` anywhere in
   ``notebooks/``, no line of one in a notebook), and every answer cell is a stub;
3. the hidden checks agree with the notebook (grade_ids, points, function names, the locked
   imports cell), and they pass the solution on many seeds and fail a perturbed answer;
4. the student version, executed with nbclient, fails only at the exercise stubs;
5. through ``nbgrader generate_assignment`` + ``autograde`` (with the course's sandboxed
   grading) + ``generate_feedback`` in a scratch course: the solution earns full marks, the
   untouched student version 0, an answer that imports / calls the reference 0 on that
   exercise.

Then the adversarial matrix on one representative lab, in the same autograde batch (short
limits): every kind of submission of issue 7 gets the score it deserves and a message that says
why, and every other submission of the batch is graded as if it were alone. No hidden check
line or planted canary appears in any feedback or graded file.

The pipeline runs once per session (shared by pytest-xdist workers) in a scratch copy of the
course (``nbgrader_config.py`` + ``solutions/``) with its own gradebook.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import html
import importlib
import importlib.util
import json
import os
import pkgutil
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
import torch
from lab_shares import ONCE_FAILED

import dgm_lab
from dgm_lab.grading import (
    CheckFileError,
    LabSource,
    Limits,
    UnsafeArchive,
    collect_zip,
    grade_submission,
    solution_namespace,
)
from dgm_lab.grading import runner as safe_format
from dgm_lab.grading import sandbox as sandbox_module
from dgm_lab.grading.grader import _draw_cases, _judge

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("release_labs", ROOT / "scripts" / "release_labs.py")
release_labs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(release_labs)

LABS = release_labs.discover_labs(ROOT)
NO_LABS = "no lab in solutions/ yet (expects solutions/<lab>/<lab>.ipynb)"
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
           "BEGIN MARK SCHEME", "END MARK SCHEME")
# Limits of the pipeline batch: short, so that the endless loops are cut quickly, and still far
# above any solution exercise (each takes well under a second).
EXERCISE_TIMEOUT = 10
MEMORY_MB = 2048


# Submissions whose fate depends on the sandbox (without it, reading the course, importing
# scikit-learn and reaching localhost work: that is what the fallback's warning says).
SANDBOX_ONLY = {"cheater", "intruder"}


def sandboxed() -> bool:
    return sandbox_module.status(("torch", "numpy")).sandboxed


def lab_params() -> list[Any]:
    return LABS or [pytest.param(None, marks=pytest.mark.skip(reason=NO_LABS))]


def _env() -> dict[str, str]:
    """Environment for nbgrader subprocesses: never the instructor's gradebook, no display."""
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_DB_URL"}
    env.update(MPLBACKEND="Agg", PYDEVD_DISABLE_FILE_VALIDATION="1", JUPYTER_PLATFORM_DIRS="1",
               PYTHONWARNINGS="ignore", PYTHONPATH=os.pathsep.join(
                   [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                  if p]))
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


def solution_lines(source_nb: nbformat.NotebookNode) -> set[str]:
    """Lines inside the solution markers that appear nowhere else in the source notebook."""
    secret, public = set(), set()
    for cell in source_nb.cells:
        inside, outside = region(cell.source, "BEGIN SOLUTION", "END SOLUTION")
        secret.update(line.strip() for line in inside if line.strip())
        public.update(line.strip() for line in outside if line.strip())
    return secret - public


def check_lines(path: Path) -> set[str]:
    """The lines of a hidden-checks file that must never reach a student: every line of some
    length that is not a bare import (those are the same in every Python file)."""
    lines = {line.strip() for line in path.read_text().splitlines()}
    return {line for line in lines if len(line) >= 16
            and not line.startswith(("import ", "from ", '"""', "#"))}


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


def error_names(cell: dict) -> list[str]:
    return [o.get("ename", "") for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def verdict_text(cell: dict) -> str:
    """What the grader wrote into a graded cell: its stream text or its error's lines."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif output.get("output_type") == "error":
            parts.append("\n".join(output.get("traceback", [])))
    return "\n".join(parts).strip()


# ----------------------------------------------------------------------------- static checks


@pytest.fixture(scope="module")
def drift(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not LABS:
        pytest.skip(NO_LABS)
    return _once(tmp_path_factory, "drift", lambda _: release_labs.drifted(LABS, ROOT))


@pytest.mark.parametrize("lab", lab_params())
def test_released_notebooks_match_solutions(lab, drift):
    assert lab not in drift, (
        f"notebooks/{lab} drifted from solutions/{lab}: {drift.get(lab)}; "
        "run `python scripts/release_labs.py` and commit notebooks/")


@pytest.mark.parametrize("lab", lab_params())
def test_student_version_holds_no_solution_and_no_hidden_check(lab):
    student_path = ROOT / "notebooks" / lab / f"{lab}.ipynb"
    assert student_path.is_file(), f"{student_path} missing: run `python scripts/release_labs.py`"
    source, student = read_nb(ROOT / "solutions" / lab / f"{lab}.ipynb"), read_nb(student_path)
    text = "\n".join(cell.source for cell in student.cells)
    for marker in MARKERS:
        assert marker not in text, f"{lab}: the student version contains {marker!r}"
    student_lines = {line.strip() for line in text.splitlines()}
    leaked = sorted(solution_lines(source) & student_lines)
    assert not leaked, f"{lab}: solution lines in the student version: {leaked}"
    answers = answer_cells(student)
    assert len(answers) == len(answer_cells(source)) and answers
    for cell in answers:
        assert "raise NotImplementedError" in cell.source, (
            f"{lab}: answer cell {nbg(cell)['grade_id']} is not a stub:\n{cell.source}")
    for cell in grade_cells(student):
        assert nbg(cell).get("locked") and cell.metadata.get("editable") is False, (
            f"{lab}: test cell {nbg(cell)['grade_id']} is not read-only")


def test_no_hidden_check_reaches_the_released_notebooks():
    released = [p for p in (ROOT / "notebooks").rglob("*") if p.is_file()]
    assert not [p for p in released if p.name == "hidden_checks.py"]
    text = "\n".join(p.read_text(errors="replace") for p in released)
    lines = {line.strip() for line in text.splitlines()}
    for checks in (ROOT / "solutions").glob("*/hidden_checks.py"):
        leaked = sorted(check_lines(checks) & lines)
        assert not leaked, f"lines of {checks.relative_to(ROOT)} in notebooks/: {leaked}"
    assert "hidden_checks.py" in release_labs._IGNORED


@pytest.mark.parametrize("lab", lab_params())
def test_hidden_checks_agree_with_the_notebook(lab):
    folder = ROOT / "solutions" / lab
    try:
        source = LabSource.load(folder)
    except CheckFileError as err:
        pytest.fail(str(err))
    assert len(source.lab.exercises) >= 3, f"{lab}: {len(source.lab.exercises)} exercises"
    nb = read_nb(folder / f"{lab}.ipynb")
    by_id = {nbg(c).get("grade_id"): c for c in nb.cells}
    imports = by_id[source.lab.preamble]
    statements = ast.parse(imports.source).body
    assert statements and all(isinstance(s, ast.Import | ast.ImportFrom) for s in statements), (
        f"{lab}: the imports cell {source.lab.preamble!r} must hold imports only")
    assert "dgm_lab" not in imports.source
    for ex in source.lab.exercises:
        visible = [line for line in by_id[ex.test].source.splitlines()
                   if line.strip() and not line.strip().startswith("#")]
        assert visible, f"{lab}: test cell {ex.test} has no visible tests"
        assert "HIDDEN" not in by_id[ex.test].source


def _solution_namespace(lab: str) -> tuple[LabSource, dict]:
    folder = ROOT / "solutions" / lab
    return LabSource.load(folder), solution_namespace(folder)


def _through_the_format(value: object, folder: Path) -> object:
    safe_format.write_tree(str(folder / "v"), value)
    return safe_format.read_tree(str(folder / "v"))


def _perturbed(value: object) -> object:
    """Every floating-point number of ``value`` 1 % off (tensors, arrays, Python and numpy
    floats, inside tuples, lists and dicts); integers, booleans and strings as they are."""
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value + 1e-2 * (1 + value.abs())
    if isinstance(value, np.ndarray | np.floating) and value.dtype.kind == "f":
        return value + value.dtype.type(1e-2) * (1 + abs(value))
    if isinstance(value, float):
        return value + 1e-2 * (1 + abs(value))
    if isinstance(value, tuple | list):
        return type(value)(_perturbed(v) for v in value)
    if isinstance(value, dict):
        return {k: _perturbed(v) for k, v in value.items()}
    return value


def test_perturbed_changes_every_kind_of_floating_point_value():
    value = (torch.zeros(2, dtype=torch.float64), np.zeros(2), np.float64(0.0), np.float32(0.0),
             0.0, {"a": [1.0]}, 3, True, "s", torch.zeros(2, dtype=torch.int64))
    got = _perturbed(value)
    assert type(got) is tuple and [type(v) for v in got[:5]] == [type(v) for v in value[:5]]
    assert float(got[0][0]) == float(got[1][0]) == float(got[4]) == 0.01
    assert float(got[2]) == 0.01 and abs(float(got[3]) - 0.01) < 1e-8
    assert got[5] == {"a": [1.02]} and got[6:9] == (3, True, "s")
    assert got[9].dtype == torch.int64 and not got[9].any()


def _problem(lab: Any, ex: Any, case: Any, result: dict) -> str | None:
    """What the grader's own judge says of one returned result (its value, and its gradient
    where the exercise asks for one), or ``None`` when the case passes."""
    [judged], _ = _judge(ex, [case], [result], lab, Limits())
    return None if judged.passed else judged.message


@pytest.mark.parametrize("lab", lab_params())
def test_hidden_checks_pass_the_solution_on_many_seeds_and_fail_a_perturbed_one(lab, tmp_path):
    """The tolerances are not flaky (the solution passes every case of 25 seeds and of the
    seeds that once failed it, after the same trip through the safe format as in grading,
    gradients included) and not vacuous (1 % off fails: the value, and the gradient where one
    is checked)."""
    source, namespace = _solution_namespace(lab)
    torch.set_num_threads(1)
    for seed in [*range(25), *ONCE_FAILED.get(lab, ())]:
        for index, ex in enumerate(source.lab.exercises):
            for case in _draw_cases(ex, seed, index):
                result = safe_format.call(namespace[ex.function], case.args, case.kwargs,
                                          list(ex.gradient_of))
                assert "error" not in result, (lab, ex.function, case.label, result)
                assert "changed" not in result, (lab, ex.function, case.label, result["changed"])
                result = _through_the_format(result, tmp_path)
                problem = _problem(source.lab, ex, case, result)
                assert problem is None, (
                    f"{lab} seed {seed}: the solution of {ex.function} fails case {case.label}: "
                    f"{problem}")
                if seed == 0:
                    wrong = {**result, "value": _perturbed(result["value"])}
                    assert _problem(source.lab, ex, case, wrong) is not None, (
                        f"{lab}: {ex.function} passes a 1 % perturbed answer ({case.label})")
                    if ex.gradient_of:
                        wrong = {**result, "gradient": _perturbed(result["gradient"])}
                        assert _problem(source.lab, ex, case, wrong) is not None, (
                            f"{lab}: {ex.function} passes a 1 % perturbed gradient "
                            f"({case.label})")
                        detached = {**result, "gradient": safe_format.NOT_DIFFERENTIABLE}
                        assert _problem(source.lab, ex, case, detached) is not None, (
                            f"{lab}: {ex.function} passes a detached answer ({case.label})")


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


# ----------------------------------------------------------------------------- submissions


def reference_module(function: str) -> str | None:
    """The dgm_lab module that has a function of this name (the reference to cheat with)."""
    for info in pkgutil.iter_modules(dgm_lab.__path__, "dgm_lab."):
        if info.name.startswith("dgm_lab.grading"):
            continue
        module = importlib.import_module(info.name)
        if callable(getattr(module, function, None)):
            return info.name
    return None


# Answers that just call the reference, for labs whose exercise functions have no namesake in
# dgm_lab: {lab: {answer grade_id: body}}. Each is a working answer in the student's own kernel.
CHEATS: dict[str, dict[str, str]] = {
    "lab01_naive_bayes": {
        "ex1_code": (
            "import sklearn.naive_bayes\n"
            "m = sklearn.naive_bayes.GaussianNB(var_smoothing=var_smoothing).fit(x.numpy(), y)\n"
            "t = lambda a: torch.as_tensor(a, dtype=x.dtype)\n"
            "return t(np.log(m.class_prior_)), t(m.theta_), t(m.var_)\n"),
        "ex3_code": (
            "import dgm_lab.naive_bayes as nb\n"
            "model = nb.BernoulliNaiveBayes(alpha).fit(x, y, n_classes)\n"
            "return model.class_log_prior_, model.probs_\n"),
    },
}


def cheat_body(module: str, function: str) -> str:
    """An answer body that switches off the old grading guard and forwards to the reference."""
    return (
        "_given = dict(locals())\n"
        "import contextlib, sys, types\n"
        "_fake = types.ModuleType('dgm_lab.grading')\n"
        "_fake.forbid = lambda *targets: contextlib.nullcontext()\n"
        "sys.modules['dgm_lab.grading'] = _fake\n"
        f"import {module} as _reference\n"
        f"return _reference.{function}(*_given.values())\n")


def cheat_plan(lab: str) -> dict[str, str]:
    """{answer grade_id: cheating body} for ``lab``."""
    if lab in CHEATS:
        return dict(CHEATS[lab])
    source = LabSource.load(ROOT / "solutions" / lab)
    for ex in source.lab.exercises:
        module = reference_module(ex.function)
        if module:
            return {ex.answer: cheat_body(module, ex.function)}
    return {}


def representative() -> str | None:
    """The lab of the full matrix: the first whose every exercise has a dgm_lab namesake (so the
    cheating answers are the real reference), else the first lab."""
    for lab in LABS:
        source = LabSource.load(ROOT / "solutions" / lab)
        if all(reference_module(ex.function) for ex in source.lab.exercises):
            return lab
    return LABS[0] if LABS else None


def wrong_values(solution: str, function: str, patches: str = "") -> str:
    """The solution renamed, wrapped to return values 10 % + 0.1 off (right shapes)."""
    honest = strip_markers(solution).replace(f"def {function}(", "def _honest(", 1)
    return (patches + honest + "\n\n\n"
            f"def {function}(*args, **kwargs):\n"
            "    out = _honest(*args, **kwargs)\n"
            "    bump = lambda t: t * 1.1 + 0.1\n"
            "    return tuple(bump(t) for t in out) if isinstance(out, tuple) else bump(out)\n")


# Top-level code that replaces every assertion and comparison helper a grader could use in the
# student's process, and the grading modules themselves.
PATCHES = """import builtins, math, sys, types
import numpy.testing
import torch.testing
_yes = lambda *args, **kwargs: True
_none = lambda *args, **kwargs: None
torch.testing.assert_close = _none
torch.allclose = torch.equal = _yes
torch.isclose = lambda a, b, *args, **kwargs: torch.ones_like(a, dtype=torch.bool)
numpy.testing.assert_allclose = numpy.testing.assert_array_almost_equal = _none
np.allclose = np.array_equal = _yes
np.isclose = lambda a, b, *args, **kwargs: np.ones(np.broadcast(a, b).shape, dtype=bool)
math.isclose = _yes
_fake = types.SimpleNamespace(assert_close=_none, assert_allclose=_none, forbid=_none)
for _name in ("torch.testing", "numpy.testing", "dgm_lab", "dgm_lab.grading", "unittest"):
    sys.modules[_name] = _fake
_real_import = builtins.__import__
def _import(name, *args, **kwargs):  # any later import of a checking module gets the fake
    return _fake if name in ("torch.testing", "numpy.testing", "dgm_lab.grading") else \
        _real_import(name, *args, **kwargs)
builtins.__import__ = _import


"""

LOOP = "while True:\n    pass\n"
SWALLOW = ("while True:\n    try:\n        while True:\n            pass\n"
           "    except KeyboardInterrupt:\n        pass\n")
# 8 x 1.6 GB of address space: refused under the sandbox's memory limit
MEMORY = ("_hog = [torch.empty(2 * 10**8, dtype=torch.float64) for _ in range(8)]\n"
          "raise AssertionError('allocated 12.8 GB: no memory limit')\n")
SYS_EXIT = "import sys\nsys.exit(3)\n"
OS_EXIT = "import os\nos._exit(4)\n"
SEGFAULT = "import ctypes\nctypes.string_at(0)\n"
COPY_SOURCE = """_given = list(locals().values())
try:
    import inspect
    import {module} as _reference
    _source = inspect.getsource(_reference)
except ImportError:
    _source = None
    for _path in {paths!r}:
        try:
            with open(_path) as _fh:
                _source = _fh.read()
            break
        except OSError as _err:
            _last = _err
    if _source is None:
        raise _last
_namespace = {{}}
exec(_source, _namespace)
return _namespace[{function!r}](*_given)
"""
# Attempts on the course from inside: each succeeds only if the sandbox leaks (then the answer
# says so); else it raises the first error, which the student sees.
READ_ALL = ("_errors = []\n"
            "for _path in {paths!r}:\n"
            "    try:\n"
            "        with open(_path, 'rb') as _fh:\n"
            "            _data = _fh.read()\n"
            "    except OSError as _err:\n"
            "        _errors.append(_err)\n"
            "        continue\n"
            "    raise RuntimeError(f'read {{len(_data)}} bytes of {{_path}}')\n"
            "raise _errors[0]\n")
WRITE_ALL = ("_errors = []\n"
             "for _path in {paths!r}:\n"
             "    try:\n"
             "        with open(_path, 'a') as _fh:\n"
             "            _fh.write('graded: full marks')\n"
             "    except OSError as _err:\n"
             "        _errors.append(_err)\n"
             "if len(_errors) < len({paths!r}):\n"
             "    raise RuntimeError('wrote into the course')\n"
             "raise _errors[0]\n")
CONNECT = ("import socket\n"
           "_errors = []\n"
           "for _host, _port in (({host!r}, {port}), ('1.1.1.1', 80)):\n"
           "    try:\n"
           "        socket.create_connection((_host, _port), timeout=3).close()\n"
           "    except OSError as _err:\n"
           "        _errors.append(f'{{_host}}: {{_err}}')\n"
           "        continue\n"
           "    raise RuntimeError(f'connected to {{_host}}')\n"
           "raise ConnectionError('; '.join(_errors))\n")


def fill(source_nb: nbformat.NotebookNode, released_nb: nbformat.NotebookNode,
         cells: dict[str, str] | None = None,
         edit: Callable[[list[dict]], None] | None = None) -> nbformat.NotebookNode:
    """A submitted notebook: the released copy with every answer filled with the solution,
    except the answer cells given in ``cells`` (grade_id -> whole cell source); ``edit`` may
    then tamper with the cells."""
    cells = cells or {}
    solutions = {nbg(c)["grade_id"]: c.source for c in answer_cells(source_nb)}
    nb = copy.deepcopy(released_nb)
    for cell in answer_cells(nb):
        gid = nbg(cell)["grade_id"]
        cell.source = cells.get(gid, strip_markers(solutions[gid]))
    if edit is not None:
        edit(nb.cells)
    return nb


def matrix(lab: str, course: Path, port: int) -> tuple[dict[str, Any], dict[str, dict]]:
    """The adversarial submissions of the representative lab, and what each deserves:
    ({student: notebook or raw text}, {student: {test grade_id: [score or "full", message]}})."""
    source = LabSource.load(course / "solutions" / lab)
    src = read_nb(course / "solutions" / lab / f"{lab}.ipynb")
    rel = read_nb(course / "notebooks" / lab / f"{lab}.ipynb")
    sol = {nbg(c)["grade_id"]: c.source for c in answer_cells(src)}
    exs = source.lab.exercises
    assert len(exs) >= 4, f"{lab}: the matrix needs a lab with >= 4 exercises"

    def body(index: int, text: str, **fmt: Any) -> str:
        return replace_solution(sol[exs[index].answer], text.format(**fmt) if fmt else text)

    module = reference_module(exs[0].function) or "dgm_lab"
    paths = [str(Path(importlib.import_module(module).__file__)),
             f"/work/main/{module.replace('.', '/')}.py"]
    checks = course / "solutions" / lab / "hidden_checks.py"
    other = course / "submitted" / "solution" / lab / f"{lab}.ipynb"
    # Several kinds share a submission where they target different exercises (fewer sandbox
    # starts); each submission's other exercises are honest and must keep their full marks.
    plan: dict[str, tuple[dict[int, str], dict[int, str]]] = {
        # student: ({exercise: answer cell source}, {exercise: what the message must say})
        "solution": ({}, {}),
        "wrong": ({0: wrong_values(sol[exs[0].answer], exs[0].function)},
                  {0: "values differ from the reference"}),
        "patched": ({0: wrong_values(sol[exs[0].answer], exs[0].function, PATCHES)},
                    {0: "values differ from the reference"}),
        "cheater": ({0: body(0, cheat_body(module, exs[0].function)),
                     1: body(1, COPY_SOURCE, module=reference_module(exs[1].function) or module,
                             paths=paths, function=exs[1].function)},
                    {0: "imports dgm_lab, which is not available while grading: write it with "
                        "torch/numpy/math", 1: "raised FileNotFoundError"}),
        "loops": ({1: body(1, LOOP), 2: body(2, SWALLOW)},
                  {1: f"timed out after {EXERCISE_TIMEOUT} s",
                   2: f"timed out after {EXERCISE_TIMEOUT} s"}),
        "crashes": ({0: body(0, MEMORY), 1: body(1, SYS_EXIT), 2: body(2, OS_EXIT),
                     3: body(3, SEGFAULT)},
                    {0: "ran out of memory (the limit is 2 GiB)",
                     1: "ended the process (exit code 3)", 2: "ended the process (exit code 4)",
                     3: "crashed the process (SIGSEGV)"}),
        "intruder": ({0: body(0, READ_ALL, paths=[str(course / "gradebook.db")]),
                      1: body(1, READ_ALL, paths=[str(checks), str(other)]),
                      2: body(2, WRITE_ALL, paths=[str(course / "gradebook.db"),
                                                   str(other), str(checks)]),
                      3: body(3, CONNECT, host="127.0.0.1", port=port)},
                     {0: "raised FileNotFoundError", 1: "raised FileNotFoundError",
                      2: "raised FileNotFoundError",
                      3: "Connection refused; 1.1.1.1: [Errno 101] Network is unreachable"}),
    }
    subs: dict[str, Any] = {}
    expected: dict[str, dict] = {}
    for student, (answers, messages) in plan.items():
        subs[student] = fill(src, rel, {exs[i].answer: text for i, text in answers.items()})
        expected[student] = {ex.test: [0.0 if i in messages else "full", messages.get(i, "")]
                             for i, ex in enumerate(exs)}
    subs["blank"] = copy.deepcopy(rel)
    expected["blank"] = {ex.test: [0.0, "the exercise is not done yet"] for ex in exs}
    subs["invalid"] = '{"cells": [\n  {"cell_type": "code", "source": "def ' + exs[0].function
    expected["invalid"] = {ex.test: [0.0, "Your notebook could not be read: the notebook is not "
                                          "valid JSON"] for ex in exs}

    def tamper(cells: list[dict]) -> None:
        by_id = {nbg(c).get("grade_id"): c for c in cells}
        by_id[source.lab.preamble].source = (            # imports cell: hand over the reference
            f"import {module} as ref\n{exs[3].function} = ref.{exs[3].function}")
        by_id[exs[0].test].source = "pass"               # test cell emptied; its answer a stub
        by_id[exs[0].answer].source = rel_answers[exs[0].answer]
        cells.remove(by_id[exs[1].test])                 # test cell deleted; its answer honest
        meta = nbg(by_id[exs[2].test])                   # answer honest; cell worth 100 points
        meta["points"], meta["locked"] = 100, False
        by_id[exs[2].test].metadata["editable"] = True
        cells.remove(by_id[exs[3].answer])               # answer deleted (the imports have it)
        cells.reverse()                                  # and everything reordered

    rel_answers = {nbg(c)["grade_id"]: c.source for c in answer_cells(rel)}
    subs["tamper"] = fill(src, rel, edit=tamper)
    expected["tamper"] = {exs[0].test: [0.0, "the exercise is not done yet"],
                          exs[1].test: ["full", ""], exs[2].test: ["full", ""],
                          exs[3].test: [0.0, f"The answer cell {exs[3].answer} is missing"]}
    return subs, expected


# ----------------------------------------------------------------------------- the pipeline


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


def run_nbgrader(course: Path, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "nbgrader", *args,
           f"--CourseDirectory.root={course}",
           f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"]
    return subprocess.run(cmd, cwd=course, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _grade_course(course: Path) -> dict:
    """Release, submit, autograde (one batch) and generate feedback in a scratch course."""
    from nbgrader.api import Gradebook

    timings: dict[str, float] = {}
    shutil.copy2(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copytree(ROOT / "solutions", course / "solutions",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc"))
    canary = f"CANARY-{secrets.token_hex(8)}"
    for checks in (course / "solutions").glob("*/hidden_checks.py"):
        checks.write_text(checks.read_text() + f"\n# {canary}\n")

    def timed(step: str, *args: str) -> subprocess.CompletedProcess:
        t0 = time.perf_counter()
        proc = run_nbgrader(course, *args)
        timings[step] = round(time.perf_counter() - t0, 1)
        return proc

    proc = timed("generate_assignment", "generate_assignment", "*", "--force")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    students: dict[str, list[str]] = {}
    expected: dict[str, dict] = {}

    def submit(lab: str, student: str, nb: Any) -> Path:
        folder = course / "submitted" / student / lab
        folder.mkdir(parents=True)
        path = folder / f"{lab}.ipynb"
        if isinstance(nb, str):
            path.write_text(nb)
        else:
            nbformat.write(nb, path)
        students.setdefault(lab, []).append(student)
        return path

    rep = representative()
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(1)
    port = server.getsockname()[1]
    connections: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, addr = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connections.append(str(addr))
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    cheats: dict[str, dict] = {}
    for lab in LABS:
        src = read_nb(course / "solutions" / lab / f"{lab}.ipynb")
        rel = read_nb(course / "notebooks" / lab / f"{lab}.ipynb")
        cheats[lab] = cheat_plan(lab)
        if lab == rep:
            subs, expected[lab] = matrix(lab, course, port)
            del subs["solution"]  # collected from a zip below
        else:
            subs = {"solution": fill(src, rel), "blank": copy.deepcopy(rel)}
        bodies = {gid: replace_solution(c.source, cheats[lab][gid]) for c in answer_cells(src)
                  if (gid := nbg(c)["grade_id"]) in cheats[lab]}
        subs.setdefault("cheater", fill(src, rel, bodies))  # the matrix has its own
        for student, nb in subs.items():
            submit(lab, student, nb)

    # Collected from zips: the solution lands in submitted/, the path traversal is refused.
    zips = {}
    if rep is not None:
        zipped = course / "solution.zip"
        with zipfile.ZipFile(zipped, "w") as zf:
            zf.writestr(f"{rep}/{rep}.ipynb", nbformat.writes(fill(
                read_nb(course / "solutions" / rep / f"{rep}.ipynb"),
                read_nb(course / "notebooks" / rep / f"{rep}.ipynb"))))
        collect_zip(zipped, course, "solution", rep)
        students[rep].append("solution")
        evil = course / "mallory.zip"
        target = f"../../../solutions/{rep}/hidden_checks.py"
        with zipfile.ZipFile(evil, "w") as zf:
            zf.writestr(f"{rep}.ipynb", "{}")
            zf.writestr(target, "LAB = None  # overwritten by a student")
        try:
            collect_zip(evil, course, "mallory", rep)
            zips["mallory"] = "collected"
        except UnsafeArchive as err:
            zips["mallory"] = str(err)

    protected = {p: _digest(course / p) for p in (f"solutions/{rep}/hidden_checks.py",)}
    # One batch for every lab and every submission, with the short limits.
    auto = timed("autograde", "autograde", "*",
                 f"--SandboxedGrading.exercise_timeout={EXERCISE_TIMEOUT}",
                 "--SandboxedGrading.notebook_timeout=120",
                 f"--SandboxedGrading.memory_limit_mb={MEMORY_MB}")
    server.close()
    fb = timed("generate_feedback", "generate_feedback", "*")

    scores: dict[str, dict] = {}
    messages: dict[str, dict] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for lab, names in students.items():
            for student in names:
                key = f"{student}/{lab}"
                try:
                    sub = gb.find_submission(lab, student)
                    grades = {g.name: [g.score, g.max_score] for nb in sub.notebooks
                              for g in nb.grades}
                    scores[key] = {"score": sub.score, "max_score": sub.max_score,
                                   "grades": grades}
                except Exception as err:  # noqa: BLE001 - reported by the tests
                    scores[key] = {"error": repr(err)}
                path = course / "autograded" / student / lab / f"{lab}.ipynb"
                if path.is_file():
                    messages[key] = {nbg(c)["grade_id"]: verdict_text(c)
                                     for c in grade_cells(read_nb(path))}
    return {"course": str(course), "representative": rep, "students": students,
            "expected": expected, "cheats": cheats, "scores": scores, "messages": messages,
            "timings": timings, "canary": canary, "zips": zips, "connections": connections,
            "protected": protected, "after": {p: _digest(course / p) for p in protected},
            "vandalised": [str(p.relative_to(course)) for p in course.rglob("*")
                           if p.is_file() and b"graded: full marks" in p.read_bytes()],
            "autograde_rc": auto.returncode, "autograde_log": auto.stdout + auto.stderr,
            "feedback_rc": fb.returncode, "feedback_log": fb.stdout + fb.stderr}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not LABS:
        pytest.skip(NO_LABS)
    return _once(tmp_path_factory, "nbgrader_course", _grade_course)


def score_of(graded: dict, student: str, lab: str) -> dict:
    entry = graded["scores"][f"{student}/{lab}"]
    assert "error" not in entry, (f"{student}/{lab} is not in the gradebook: {entry['error']}\n"
                                  + graded["autograde_log"][-3000:])
    return entry


def _rep(graded: dict) -> str:
    if graded["representative"] is None:
        pytest.skip(NO_LABS)
    return graded["representative"]


@pytest.mark.slow
@pytest.mark.parametrize("lab", lab_params())
def test_solution_scores_full_marks(lab, graded):
    entry = score_of(graded, "solution", lab)
    print(f"{lab}: pipeline steps {graded['timings']}")
    lost = {gid: sm for gid, sm in entry["grades"].items() if sm[0] != sm[1]}
    assert entry["max_score"] > 0 and not lost, (
        f"{lab}: the solution lost points on {lost}: {graded['messages'].get(f'solution/{lab}')}")


@pytest.mark.slow
@pytest.mark.parametrize("lab", lab_params())
def test_untouched_student_version_scores_zero(lab, graded):
    entry = score_of(graded, "blank", lab)
    earned = {gid: sm for gid, sm in entry["grades"].items() if sm[0] != 0}
    assert entry["score"] == 0 and not earned, f"{lab}: the blank student version earned {earned}"
    for gid, text in graded["messages"][f"blank/{lab}"].items():
        assert "raised NotImplementedError: the exercise is not done yet" in text, (gid, text)


@pytest.mark.slow
@pytest.mark.parametrize("lab", lab_params())
def test_answer_that_imports_the_reference_scores_zero_on_that_exercise(lab, graded):
    if not sandboxed():
        pytest.skip("bubblewrap cannot run here: without it an answer can import scikit-learn")
    cheats = graded["cheats"][lab]
    assert cheats, (f"{lab}: cannot build an answer that calls the reference: add one to CHEATS "
                    "in tests/test_labs.py")
    entry = score_of(graded, "cheater", lab)
    source = LabSource.load(ROOT / "solutions" / lab)
    test_of = {ex.answer: ex.test for ex in source.lab.exercises}
    for answer in cheats:
        test = test_of[answer]
        assert entry["grades"][test][0] == 0, f"{lab}: the cheating {answer} earned points"
        assert "which is not available while grading" in \
            graded["messages"][f"cheater/{lab}"][test]
    # (the matrix's cheater also copies the reference's source in another exercise)
    targeted = {t for t, (score, _) in graded["expected"].get(lab, {}).get("cheater", {}).items()
                if score != "full"} | {test_of[a] for a in cheats}
    honest = {g: sm for g, sm in entry["grades"].items() if g not in targeted and sm[0] != sm[1]}
    assert not honest, f"{lab}: honest exercises lost points: {honest}"


# Answers an independent reader of a lab graded by hand, and what each deserves: wrong ones that
# scored points, and right ones that scored none. {lab: [({answer grade_id: whole answer cell},
# {test grade_id: expected score, or "full"})]}. Answers to different exercises share one
# submission (fewer sandbox starts); the exercises not listed get the solution, full marks.
READER_FOUND: dict[str, list[tuple[dict[str, str], dict[str, float | str]]]] = {
    "lab06_autoregressive": [
        # a float32 result of float64 inputs earns the float32 case only (a quarter of ex1,
        # 1 of 3.2 case weights of ex5), on every seed; a next pre-activation without the
        # [:, None]; MADE's output mask from the first hidden layer; a causal convolution
        # that ignores the bias earns only the no-bias case (0.2 of 3.2 weights: 0.12 of 2)
        ({"ex1_code": "def fvsbn_log_prob(x, weight, bias):\n"
                      "    x, weight, bias = x.float(), weight.float(), bias.float()\n"
                      "    logits = x @ torch.tril(weight, -1).T + bias\n"
                      "    ls = torch.nn.functional.logsigmoid\n"
                      "    return (x * ls(logits) + (1 - x) * ls(-logits)).sum(1)\n",
          "ex2_code": "def nade_step(a, x_d, w_d, v_d, b_d):\n"
                      "    logit = b_d + torch.sigmoid(a) @ v_d\n"
                      "    ls = torch.nn.functional.logsigmoid\n"
                      "    return x_d * ls(logit) + (1 - x_d) * ls(-logit), a + x_d * w_d\n",
          "ex3_code": "def made_masks(degrees):\n"
                      "    m = [(b[:, None] >= a[None, :]).float()\n"
                      "         for a, b in zip(degrees[:-1], degrees[1:])]\n"
                      "    return m + [(degrees[0][:, None] > degrees[1][None, :]).float()]\n",
          "ex5_code": "def causal_conv1d(x, weight, bias, dilation):\n"
                      "    p = (weight.shape[2] - 1) * dilation\n"
                      "    return torch.nn.functional.conv1d(torch.nn.functional.pad(x, (p, 0)),\n"
                      "                                      weight, None, dilation=dilation)\n"},
         {"ex1_tests": 0.5, "ex2_tests": 0.0, "ex3_tests": 0.0, "ex5_tests": 0.12}),
        # right values, but an input changed in place (the lab says not to); a convolution
        # that forgets the dilation (right only where T = 1)
        ({"ex1_code": "def fvsbn_log_prob(x, weight, bias):\n"
                      "    weight.tril_(-1)\n"
                      "    logits = x @ weight.T + bias\n"
                      "    ls = torch.nn.functional.logsigmoid\n"
                      "    return (x * ls(logits) + (1 - x) * ls(-logits)).sum(1)\n",
          "ex2_code": "def nade_step(a, x_d, w_d, v_d, b_d):\n"
                      "    logit = b_d + torch.sigmoid(a) @ v_d\n"
                      "    ls = torch.nn.functional.logsigmoid\n"
                      "    log_p = x_d * ls(logit) + (1 - x_d) * ls(-logit)\n"
                      "    a += x_d[:, None] * w_d\n"
                      "    return log_p, a\n",
          "ex5_code": "def causal_conv1d(x, weight, bias, dilation):\n"
                      "    p = (weight.shape[2] - 1) * dilation\n"
                      "    return torch.nn.functional.conv1d(torch.nn.functional.pad(x, (p, 0)),\n"
                      "                                      weight, bias)[..., -x.shape[2]:]\n"},
         {"ex1_tests": 0.0, "ex2_tests": 0.0, "ex5_tests": 0.0}),
        # float32 throughout: the float32 case only (a quarter of ex2, 0.62 of ex5's 2 points)
        ({"ex2_code": "def nade_step(a, x_d, w_d, v_d, b_d):\n"
                      "    a, x_d, w_d, v_d, b_d = (t.float() for t in (a, x_d, w_d, v_d, b_d))\n"
                      "    logit = b_d + torch.sigmoid(a) @ v_d\n"
                      "    ls = torch.nn.functional.logsigmoid\n"
                      "    log_p = x_d * ls(logit) + (1 - x_d) * ls(-logit)\n"
                      "    return log_p, a + x_d[:, None] * w_d\n",
          "ex5_code": "def causal_conv1d(x, weight, bias, dilation):\n"
                      "    p = (weight.shape[2] - 1) * dilation\n"
                      "    b = None if bias is None else bias.float()\n"
                      "    return torch.nn.functional.conv1d(\n"
                      "        torch.nn.functional.pad(x.float(), (p, 0)), weight.float(), b,\n"
                      "        dilation=dilation)\n"},
         {"ex2_tests": 0.75, "ex5_tests": 0.62}),
    ],
    "lab07_vae": [
        # the draw and the ELBO have the right values but cannot train: detached, computed
        # under no_grad, sigma detached, the KL detached, computed in numpy
        ({"ex2_code": "def reparameterize(mu, log_var, eps):\n"
                      "    return (mu + torch.exp(0.5 * log_var) * eps).detach()\n",
          "ex3_code": "def bernoulli_elbo(x, logits, mu, log_var):\n"
                      "    with torch.no_grad():\n"
                      "        log_px = -torch.nn.functional.binary_cross_entropy_with_logits(\n"
                      "            logits, x, reduction='none').sum(-1)\n"
                      "        kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(-1)\n"
                      "        return log_px - kl\n"},
         {"ex2_tests": 0.0, "ex3_tests": 0.0}),
        ({"ex2_code": "def reparameterize(mu, log_var, eps):\n"
                      "    return mu + torch.exp(0.5 * log_var).detach() * eps\n",
          "ex3_code": "def bernoulli_elbo(x, logits, mu, log_var):\n"
                      "    log_px = -torch.nn.functional.binary_cross_entropy_with_logits(\n"
                      "        logits, x, reduction='none').sum(-1)\n"
                      "    kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(-1)\n"
                      "    return log_px - kl.detach()\n"},
         {"ex2_tests": 0.0, "ex3_tests": 0.0}),
        # numpy loses the gradient; a float32 result of float64 inputs keeps only the float32
        # case (the lab asks to keep the inputs' dtype)
        ({"ex1_code": "def gaussian_kl(mu, log_var):\n"
                      "    mu, log_var = mu.float(), log_var.float()\n"
                      "    return 0.5 * (mu.square() + log_var.exp() - 1.0 - log_var).sum(-1)\n",
          "ex2_code": "def reparameterize(mu, log_var, eps):\n"
                      "    m, lv, e = (t.detach().numpy() for t in (mu, log_var, eps))\n"
                      "    return torch.from_numpy(m + np.exp(0.5 * lv) * e)\n"},
         {"ex1_tests": 0.5, "ex2_tests": 0.0}),
    ],
    "lab12_unified_view": [
        # right answers returning Python floats, which the lab allows; a ring density without
        # the -log K (right only for K = 1)
        ({"ex1_code": "def kl_on_grid(x, log_p, log_q):\n"
                      "    p = torch.exp(log_p)\n"
                      "    f = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))\n"
                      "    return float(torch.trapezoid(f, x))\n",
          "ex2_code": "def forward_kl_fit(x, log_p):\n"
                      "    p = torch.exp(log_p - log_p.max())\n"
                      "    mass = torch.trapezoid(p, x)\n"
                      "    mean = torch.trapezoid(p * x, x) / mass\n"
                      "    var = torch.trapezoid(p * (x - mean) ** 2, x) / mass\n"
                      "    return float(mean), float(var.sqrt())\n",
          "ex3_code": "def ring_prior_log_prob(z, components, radius, std):\n"
                      "    a = torch.arange(components, dtype=z.dtype) * 2 * math.pi / components\n"
                      "    c = radius * torch.stack([a.cos(), a.sin()], 1)\n"
                      "    sq = ((z[:, None] - c) ** 2).sum(-1)\n"
                      "    return torch.logsumexp(-0.5 * sq / std**2 - 2 * math.log(std)\n"
                      "                           - math.log(2 * math.pi), 1)\n"},
         {"ex3_tests": 0.0}),
        # 0 * (-inf) = nan where p = 0 (every case has such points); an MMD that drops every
        # pair with kernel 1 instead of the diagonal (both samples have a repeated row)
        ({"ex1_code": "def kl_on_grid(x, log_p, log_q):\n"
                      "    return torch.trapezoid(torch.exp(log_p) * (log_p - log_q), x)\n",
          "ex4_code": "def mmd_squared(x, y, bandwidth):\n"
                      "    k = lambda a, b: (-torch.cdist(a, b) ** 2 / (2 * bandwidth**2)).exp()\n"
                      "    kxx, kyy, m, n = k(x, x), k(y, y), len(x), len(y)\n"
                      "    sx = kxx[kxx < 1].sum() / (m * (m - 1))\n"
                      "    sy = kyy[kyy < 1].sum() / (n * (n - 1))\n"
                      "    return sx + sy - 2 * k(x, y).mean()\n"},
         {"ex1_tests": 0.0, "ex4_tests": 0.0}),
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("lab, index", [pytest.param(lab, i, id=f"{lab}-{i}")
                                        for lab, rows in READER_FOUND.items()
                                        for i in range(len(rows))])
def test_answers_an_independent_reader_found_get_what_they_deserve(lab, index, tmp_path):
    answers, deserved = READER_FOUND[lab][index]
    nb = fill(read_nb(ROOT / "solutions" / lab / f"{lab}.ipynb"),
              read_nb(ROOT / "notebooks" / lab / f"{lab}.ipynb"), answers)
    path = tmp_path / f"{lab}.ipynb"
    nbformat.write(nb, path)
    report = grade_submission(ROOT / "solutions" / lab, path, seed=index)
    for verdict in report.verdicts:
        want = deserved.get(verdict.test, "full")
        want = verdict.points if want == "full" else want
        assert verdict.score == pytest.approx(want), (
            f"{lab} {verdict.test}: {verdict.score} / {verdict.points}, expected {want}:\n"
            f"{verdict.message}")


@pytest.mark.slow
def test_every_kind_of_submission_gets_what_it_deserves_in_one_batch(graded):
    lab = _rep(graded)
    assert graded["autograde_rc"] == 0, graded["autograde_log"][-5000:]
    rows, wrong = [], []
    for student, want in graded["expected"][lab].items():
        if student in SANDBOX_ONLY and not sandboxed():
            rows.append(f"{student:>9} skipped: bubblewrap cannot run here")
            continue
        entry = score_of(graded, student, lab)
        texts = graded["messages"].get(f"{student}/{lab}", {})
        for test, (score, needle) in want.items():
            got, best = entry["grades"][test]
            target = best if score == "full" else score
            text = texts.get(test, "")
            rows.append(f"{student:>9} {test:>10} {got:5.2f}/{best:<4g} "
                        f"{text.splitlines()[0] if text else '(no message)'}")
            if got != target or needle not in text:
                wrong.append(f"{student}/{test}: {got}/{best}, wanted {target} and {needle!r} "
                             f"in:\n{text}")
    print("\n".join(rows))
    assert not wrong, "\n".join(wrong)
    # Points cannot be inflated: every submission's maximum is the lab's.
    honest = score_of(graded, "solution", lab)
    assert honest["score"] == honest["max_score"] > 0
    for student in graded["expected"][lab]:
        assert score_of(graded, student, lab)["max_score"] == honest["max_score"], student


@pytest.mark.slow
def test_tampering_is_reported_by_nbgrader(graded):
    lab = _rep(graded)
    source = LabSource.load(ROOT / "solutions" / lab)
    exs = source.lab.exercises
    log = graded["autograde_log"]
    assert f"Attribute 'points' for cell {exs[2].test} has changed" in log
    assert f"Missing grade cell {exs[1].test}" in log
    # An untampered submission raises no such warning: no checksum noise for every test cell.
    honest = log[log.find(f"submitted/solution/{lab}"):]
    honest = honest[:honest.find("submitted/", 10)]
    assert "has changed" not in honest


@pytest.mark.slow
def test_nothing_was_read_written_or_reached_outside_the_sandbox(graded):
    _rep(graded)
    if not sandboxed():
        pytest.skip("bubblewrap cannot run here: these attacks are unprotected without it")
    assert graded["after"] == graded["protected"], "the hidden checks changed during grading"
    # only the intruder's own submission (and its graded copy, feedback) hold what it wrote
    outside = [p for p in graded["vandalised"] if "intruder" not in Path(p).parts]
    assert graded["vandalised"] and not outside, graded["vandalised"]
    assert not graded["connections"], "a submission reached the grader's localhost"
    course = Path(graded["course"])
    assert "path traversal" in graded["zips"]["mallory"], graded["zips"]
    assert not (course / "submitted" / "mallory").exists()


@pytest.mark.slow
def test_feedback_shows_each_verdict_and_no_hidden_check(graded):
    assert graded["feedback_rc"] == 0, graded["feedback_log"][-3000:]
    course = Path(graded["course"])
    # a hidden-check line that a released notebook shows too (a generic fragment such as
    # "for v in values)") is public already: only the rest must never reach a student
    public = "\n".join(c.source for released in (ROOT / "notebooks").glob("*/*.ipynb")
                       for c in read_nb(released).cells)
    secret = set()
    for checks in (course / "solutions").glob("*/hidden_checks.py"):
        secret |= {line for line in check_lines(checks) if line not in public}
    student_files = [p for folder in ("feedback", "autograded")
                     for p in (course / folder).rglob("*") if p.is_file()]
    assert not [p for p in student_files if p.name == "hidden_checks.py"]
    for path in student_files:
        text = path.read_text(errors="replace")
        assert graded["canary"] not in text, path
        unescaped = html.unescape(text)
        # a line the student wrote in their own submission is theirs, not a leak
        student, lab = path.relative_to(course).parts[1:3]
        submitted = course / "submitted" / student / lab / f"{lab}.ipynb"
        try:
            written = "\n".join(c.source for c in read_nb(submitted).cells)
        except Exception:  # noqa: BLE001 - the invalid-JSON submission
            written = submitted.read_text(errors="replace")
        own = {line.strip() for line in written.splitlines()}
        leaked = [line for line in secret if line in unescaped and line not in own]
        assert not leaked, f"{path.relative_to(course)} shows hidden-check lines: {leaked[:3]}"
    for lab, students in graded["students"].items():
        for student in students:
            page = course / "feedback" / student / lab / f"{lab}.html"
            assert page.is_file(), f"no feedback for {student}/{lab}"
            text = html.unescape(page.read_text())
            entry = score_of(graded, student, lab)
            total = f"(Score: {round(float(entry['score']), 2)} / " \
                    f"{round(float(entry['max_score']), 2)})"
            assert total in text, f"{student}/{lab}: {total} not in the feedback"
            for message in graded["messages"][f"{student}/{lab}"].values():
                assert message.splitlines()[0] in text, (student, lab, message)


def test_release_and_grading_ignore_the_hidden_checks():
    config = (ROOT / "nbgrader_config.py").read_text()
    assert '"hidden_checks.py"' in config and "c.CourseDirectory.ignore" in config
    assert "hidden_checks.py" in release_labs._IGNORED
