"""The class's grades as one wide table, and who edited or deleted locked cells.

:func:`grade_table` reads nbgrader's gradebook: one row per student, one column per lab (its
score), one per exercise (``<lab>:<function>``), and the total. A lab a student did not submit
is left empty (and counts 0 in the total); :func:`write_grades` writes the table as CSV.

:func:`locked_cell_changes` compares every submission with the locked cells recorded in the
gradebook (nbgrader's checksums of the released cells): a student who edited or deleted a
locked cell is named with the cells. Grading is not affected (the grader restores them and
runs only the answer cells), but an instructor wants to know, and nbgrader alone prints one
"checksum changed" warning per cell, without saying whose.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from dgm_lab.course.batch import gradebook
from dgm_lab.course.layout import Course, CourseError


@dataclass
class GradeTable:
    """``header`` then one row per student in ``rows``; ``maxima`` maps each score column to
    its maximum; ``missing`` lists (student, lab) pairs without a submission."""

    header: list[str]
    rows: list[list[object]]
    maxima: dict[str, float]
    missing: list[tuple[str, str]] = field(default_factory=list)


def _exercise_names(course: Course, lab: str) -> dict[str, str]:
    """Graded test cell -> the exercise's function name (when the lab's checks load), in the
    notebook's order."""
    from dgm_lab.grading import CheckFileError, LabSource

    order = []
    path = course.solutions / lab / f"{lab}.ipynb"
    try:
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution"):
                order.append(meta["grade_id"])
    except (OSError, ValueError, KeyError):
        return {}
    try:
        functions = {ex.test: ex.function for ex in LabSource.load(path.parent).lab.exercises}
    except CheckFileError:
        functions = {}
    return {gid: functions.get(gid, gid) for gid in order}


def grade_table(course: Course) -> GradeTable:
    """The wide grade table of every lab and student in the gradebook.

    Raises:
        CourseError: the gradebook holds no graded lab yet.
    """
    with gradebook(course) as gb:
        labs = sorted(a.name for a in gb.assignments)
        students = sorted(s.id for s in gb.students)
        scores: dict[tuple[str, str], dict[str, float]] = {}
        maxima: dict[str, float] = {}
        cells: dict[str, list[str]] = {}
        for lab in labs:
            assignment = gb.find_assignment(lab)
            cells[lab] = [c.name for nb in assignment.notebooks for c in nb.grade_cells]
            maxima[lab] = float(assignment.max_score)
            for nb in assignment.notebooks:
                for c in nb.grade_cells:
                    maxima[f"{lab}:{c.name}"] = float(c.max_score)
            for sub in gb.assignment_submissions(lab):
                grades = {g.name: float(g.score) for nb in sub.notebooks for g in nb.grades}
                grades[lab] = float(sub.score)
                scores[(sub.student.id, lab)] = grades
    if not labs:
        raise CourseError("the gradebook holds no graded lab yet: run `dgm-course grade LAB` "
                          "first")
    header = ["student_id"]
    columns: list[tuple[str, str, str]] = []  # (column, lab, grade cell or "")
    table_maxima = {}
    for lab in labs:
        names = _exercise_names(course, lab)
        ordered = [g for g in names if g in cells[lab]] + sorted(set(cells[lab]) - set(names))
        columns.append((lab, lab, ""))
        table_maxima[lab] = maxima[lab]
        for gid in ordered:
            column = f"{lab}:{names.get(gid, gid)}"
            columns.append((column, lab, gid))
            table_maxima[column] = maxima[f"{lab}:{gid}"]
    header += [c[0] for c in columns] + ["total"]
    table_maxima["total"] = sum(maxima[lab] for lab in labs)
    rows, missing = [], []
    for student in students:
        row: list[object] = [student]
        for _, lab, gid in columns:
            grades = scores.get((student, lab))
            if grades is None:
                row.append("")
                if not gid:
                    missing.append((student, lab))
            else:
                row.append(round(grades.get(gid or lab, 0.0), 2))
        total = sum(scores.get((student, lab), {}).get(lab, 0.0) for lab in labs)
        row.append(round(total, 2))
        rows.append(row)
    return GradeTable(header, rows, table_maxima, missing)


def write_grades(table: GradeTable, path: str | Path) -> Path:
    """Write the table as CSV (UTF-8, one header row)."""
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(table.header)
        writer.writerows(table.rows)
    return path


def locked_cell_changes(course: Course) -> dict[str, dict[str, list[str]]]:
    """Student -> lab -> the locked cells they edited or deleted (``"ex1_tests edited"``,
    ``"setup_02 deleted"``), for every lab in the gradebook; students who changed none are
    left out."""
    import nbformat
    from nbgrader.utils import compute_checksum

    from dgm_lab.grading import UnreadableNotebook, read_notebook

    with gradebook(course) as gb:
        expected = {}
        for assignment in gb.assignments:
            for nb in assignment.notebooks:
                if nb.name == assignment.name:
                    expected[assignment.name] = [(c.name, c.checksum) for c in nb.source_cells
                                                 if c.locked]
    report: dict[str, dict[str, list[str]]] = {}
    for lab, locked in sorted(expected.items()):
        for student, path in course.submissions(lab).items():
            try:
                cells = read_notebook(path)
            except UnreadableNotebook:
                report.setdefault(student, {})[lab] = ["(notebook) unreadable"]
                continue
            by_id = {}
            for cell in cells:
                gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") \
                    if isinstance(cell.get("metadata"), dict) else None
                if isinstance(gid, str):
                    by_id[gid] = cell
            changes = []
            for gid, checksum in locked:
                if gid not in by_id:
                    changes.append(f"{gid} deleted")
                    continue
                cell = dict(by_id[gid])
                if isinstance(cell.get("source"), list):  # as nbformat.read would join it
                    cell["source"] = "".join(map(str, cell["source"]))
                try:
                    same = compute_checksum(nbformat.from_dict(cell)) == checksum
                except Exception:  # noqa: BLE001 - metadata too broken to checksum
                    same = False
                if not same:
                    changes.append(f"{gid} edited")
            if changes:
                report.setdefault(student, {})[lab] = changes
    return report


def write_locked_cell_report(report: dict[str, dict[str, list[str]]], path: str | Path) -> Path:
    """Write :func:`locked_cell_changes` as CSV: student, lab, cell, change."""
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student_id", "lab", "cell", "change"])
        for student, labs in sorted(report.items()):
            for lab, changes in sorted(labs.items()):
                for change in changes:
                    cell, _, what = change.rpartition(" ")
                    writer.writerow([student, lab, cell, what])
    return path
