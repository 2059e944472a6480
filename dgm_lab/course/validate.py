"""Check a lab notebook before submitting it, the way a student runs it and the way it is graded.

:func:`validate_notebook` runs the notebook from top to bottom in a fresh Jupyter kernel, cell
by cell, with a time limit per cell, and reports every visible test cell that fails, every
other cell that raises, and every cell that runs past the limit (the notebook is not changed).
Unlike ``nbgrader validate`` it does not stop at the stubs of the first unfinished exercise,
and its verdict is an exit status a script can use.

:func:`outside_names` reads the answer cells without running them. While grading, the answer
cells run alone, after the lab's imports cell: a name an answer takes from another cell (data
loaded in a setup cell, a helper written in a demo cell) works in the notebook and fails when
graded. It is reported with the cell that defines it.
"""

from __future__ import annotations

import builtins
import symtable
import time
from dataclasses import dataclass, field
from pathlib import Path

IMPORTS_CELL = "imports"


@dataclass
class CellProblem:
    """One cell that failed: ``index`` (0-based), its grade_id (or ``""``), ``kind`` (``"test"``
    for a visible test cell, ``"answer"``, or ``"cell"``), and what went wrong."""

    index: int
    grade_id: str
    kind: str
    message: str


@dataclass
class Validation:
    """The outcome of :func:`validate_notebook`."""

    notebook: Path
    tests: dict[str, bool] = field(default_factory=dict)  # visible test cell -> passed
    problems: list[CellProblem] = field(default_factory=list)
    slow: list[tuple[int, str, float]] = field(default_factory=list)  # (index, grade_id, s)
    outside: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.problems and not self.slow


def _nbgrader(cell: dict) -> dict:
    meta = cell.get("metadata", {})
    return meta.get("nbgrader", {}) if isinstance(meta, dict) else {}


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _python(source: str) -> str:
    """IPython syntax (magics, ``!``) as plain Python, as the grader sees it."""
    from dgm_lab.grading.grader import _transform

    return _transform(source)


def _bound(table: symtable.SymbolTable) -> set[str]:
    """Names a cell binds at its top level (assignments, imports, defs, classes)."""
    return {s.get_name() for s in table.get_symbols()
            if s.is_assigned() or s.is_imported() or s.is_namespace()}


def _globals_used(table: symtable.SymbolTable) -> set[str]:
    """Global names read by the functions and classes a cell defines (at any depth), and by
    its top-level code."""
    used = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    todo = list(table.get_children())
    while todo:
        child = todo.pop()
        used |= {s.get_name() for s in child.get_symbols() if s.is_global() and s.is_referenced()}
        todo.extend(child.get_children())
    return used


def outside_names(cells: list[dict], imports: str = IMPORTS_CELL) -> dict[str, list[str]]:
    """Names each answer cell uses but no answer cell or the imports cell defines.

    Arguments:
        cells: the notebook's cells (dicts, as in the ``.ipynb`` file).
        imports: grade_id of the lab's imports cell.

    Returns:
        answer cell grade_id -> sorted messages (``"x_train (defined in cell setup_01)"``,
        ``"helper (defined nowhere in the notebook)"``); answer cells with none are left out.

    Example:
        >>> outside_names(nbformat.read("lab.ipynb", 4).cells)              # doctest: +SKIP
        {'ex2_code': ['x_train (defined in cell setup_01, which does not run while grading)']}
    """
    tables: list[tuple[int, str, bool, symtable.SymbolTable]] = []
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        meta = _nbgrader(cell)
        try:
            table = symtable.symtable(_python(_source(cell)), f"<cell {index}>", "exec")
        except (SyntaxError, ValueError):
            continue  # running it reports the syntax error
        label = meta.get("grade_id") or f"{index + 1}"
        tables.append((index, label, bool(meta.get("solution")) or label == imports, table))
    available = set(dir(builtins)) | {"get_ipython", "__name__", "__file__"}
    for _, _, graded, table in tables:
        if graded:
            available |= _bound(table)
    elsewhere: dict[str, str] = {}
    for _, label, graded, table in tables:
        if not graded:
            for name in _bound(table):
                elsewhere.setdefault(name, label)
    found: dict[str, list[str]] = {}
    for _, label, graded, table in tables:
        if not graded or label == imports:
            continue
        names = _globals_used(table) - available
        if names:
            found[label] = sorted(
                f"{name} (defined in cell {elsewhere[name]}, which does not run while grading)"
                if name in elsewhere else f"{name} (defined nowhere in the notebook)"
                for name in names)
    return found


def _first_error(cell: dict) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            value = str(output.get("evalue", "")).strip().splitlines()
            return f"{output.get('ename', 'Error')}: {value[0] if value else ''}".rstrip(": ")
    return ""


def validate_notebook(path: str | Path, *, timeout: float = 60.0,
                      kernel_name: str = "python3") -> Validation:
    """Run a lab notebook as a student would and report what fails.

    Arguments:
        path: the ``.ipynb`` (it is read, never written).
        timeout: the time limit of each cell, in seconds (a cell over it is interrupted and
            reported; the run goes on with the next cell).
        kernel_name: the Jupyter kernel to run it in.

    Returns:
        the :class:`Validation`: each visible test cell passed or not, the failing cells, the
        cells over the limit, and the names the answers take from other cells.

    Example:
        >>> result = validate_notebook("work/lab01_naive_bayes/lab01_naive_bayes.ipynb")
        >>> result.passed                                                   # doctest: +SKIP
        False
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"validate_notebook(): timeout must be > 0 seconds, got {timeout!r}")
    nb = nbformat.read(path, as_version=4)
    result = Validation(path)
    result.outside = outside_names([dict(c) for c in nb.cells])
    client = NotebookClient(
        nb, timeout=timeout, interrupt_on_timeout=True, allow_errors=True,
        kernel_name=kernel_name, resources={"metadata": {"path": str(path.parent.resolve())}},
        error_on_timeout={"ename": "Timeout", "evalue": f"over the limit of {timeout:g} s",
                          "traceback": []})
    started = time.perf_counter()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            meta = _nbgrader(cell)
            gid = meta.get("grade_id", "")
            t0 = time.perf_counter()
            client.execute_cell(cell, index)
            seconds = time.perf_counter() - t0
            error = _first_error(cell)
            if seconds >= timeout:
                result.slow.append((index, gid, seconds))
                error = error or f"over the limit of {timeout:g} s"
            if meta.get("grade") and not meta.get("solution"):
                result.tests[gid or str(index)] = not error
                kind = "test"
            else:
                kind = "answer" if meta.get("solution") else "cell"
            if error:
                if error.startswith("NotImplementedError"):
                    error = "not done yet (NotImplementedError)"
                result.problems.append(CellProblem(index, gid, kind, error))
    result.seconds = time.perf_counter() - started
    return result
