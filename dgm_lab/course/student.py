"""The student's side: a copy of a lab to work in, away from the tracked ``notebooks/``.

The released labs in ``notebooks/`` belong to the repository: a student who edits them there
gets a conflict with the next ``git pull`` that brings a corrected lab. :func:`start_lab` copies
a lab into the student's own work folder (``work/<lab>/`` of the course by default, which git
ignores), and never overwrites work already there unless asked to (and then keeps a backup).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from dgm_lab.course.layout import Course, CourseError


def start_lab(course: Course, lab: str, dest: str | Path | None = None, *,
              force: bool = False) -> Path:
    """Copy ``notebooks/<lab>/`` (the notebook and any file next to it) into ``dest``.

    Arguments:
        course: the course.
        lab: the lab's name.
        dest: the folder to create (default ``<course>/work/<lab>``).
        force: start again from the released version when ``dest`` already holds the lab;
            the student's notebook is first renamed ``<lab>.ipynb.bak-<time>``.

    Returns:
        the path of the copied notebook.

    Raises:
        CourseError: an unknown or unreleased lab, or ``dest`` holds the lab already (and not
            ``force``).

    Example:
        >>> start_lab(Course.find(), "lab01_naive_bayes")                  # doctest: +SKIP
        PosixPath('.../work/lab01_naive_bayes/lab01_naive_bayes.ipynb')
    """
    course.lab(lab)
    released = course.released(lab)
    dest = Path(dest) if dest is not None else course.root / "work" / lab
    notebook = dest / f"{lab}.ipynb"
    if notebook.exists():
        if not force:
            raise CourseError(f"{notebook} exists (your work): open it, or pass --force to "
                              "start again from the released version (your notebook is kept "
                              "as a backup)")
        backup = notebook.with_name(f"{lab}.ipynb.bak-{time.strftime('%Y%m%d-%H%M%S')}")
        notebook.rename(backup)
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(released.parent.rglob("*")):
        rel = path.relative_to(released.parent)
        target = dest / rel
        if path.is_dir():
            target.mkdir(exist_ok=True)
        elif path.is_file() and (path == released or not target.exists()):
            shutil.copy2(path, target)
    return notebook
