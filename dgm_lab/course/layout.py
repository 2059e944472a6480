"""Where a course's files are: the root, its labs, the instructor's grading folders.

A course root is the folder holding ``nbgrader_config.py`` (the course repository). Its labs
are the folders ``solutions/<lab>/`` that hold ``<lab>.ipynb``; students' work goes to
``submitted/<student>/<lab>/<lab>.ipynb``, nbgrader writes ``autograded/`` and ``feedback/``
and keeps the gradebook (``gradebook.db`` unless ``NBGRADER_DB_URL`` says otherwise).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from dgm_lab.grading.sandbox import Limits

CONFIG_FILE = "nbgrader_config.py"
CACHE_FOLDER = "grading_cache"
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")


class CourseError(Exception):
    """A problem the instructor or student can fix; the message says how. The command line
    prints it without a traceback."""


@dataclass(frozen=True)
class Course:
    """A course repository on disk.

    Arguments:
        root: the folder holding ``nbgrader_config.py``.

    Example:
        >>> course = Course.find()            # from the current folder upwards
        >>> course.labs()                                              # doctest: +SKIP
        ['lab01_naive_bayes', 'lab02_density_estimation']
    """

    root: Path

    @classmethod
    def find(cls, start: str | Path | None = None) -> Course:
        """The course that holds ``start`` (default: the current folder): the nearest folder
        at or above it with an ``nbgrader_config.py``.

        Raises:
            CourseError: no such folder.
        """
        here = Path(start if start is not None else os.getcwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / CONFIG_FILE).is_file():
                return cls(folder)
        raise CourseError(f"{here} is not inside a course: run dgm-course in the course "
                          f"repository (the folder holding {CONFIG_FILE}) or below it, or "
                          "pass --course PATH")

    # -- folders ---------------------------------------------------------------------------
    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def submitted(self) -> Path:
        return self.root / "submitted"

    @property
    def autograded(self) -> Path:
        return self.root / "autograded"

    @property
    def feedback(self) -> Path:
        return self.root / "feedback"

    @property
    def cache(self) -> Path:
        return self.root / CACHE_FOLDER

    # -- labs ------------------------------------------------------------------------------
    def labs(self) -> list[str]:
        """The labs: folders ``solutions/<lab>/`` holding ``<lab>.ipynb``, sorted."""
        if not self.solutions.is_dir():
            return []
        return sorted(p.name for p in self.solutions.iterdir()
                      if (p / f"{p.name}.ipynb").is_file())

    def lab(self, name: str) -> str:
        """``name`` if it is one of the course's labs.

        Raises:
            CourseError: it is not, naming the labs there are (and the closest one).
        """
        labs = self.labs()
        if name in labs:
            return name
        if not labs:
            raise CourseError(f"no lab '{name}': {self.solutions} holds no lab yet "
                              "(a lab is solutions/<lab>/<lab>.ipynb)")
        close = difflib.get_close_matches(name, labs, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise CourseError(f"no lab '{name}' in {self.solutions}: the labs are "
                          f"{', '.join(labs)}.{hint}")

    def released(self, lab: str) -> Path:
        """The student version ``notebooks/<lab>/<lab>.ipynb`` (it must exist)."""
        path = self.notebooks / lab / f"{lab}.ipynb"
        if not path.is_file():
            raise CourseError(f"{path} does not exist: run `dgm-course release {lab}` first")
        return path

    def submissions(self, lab: str) -> dict[str, Path]:
        """Student id -> ``submitted/<student>/<lab>/<lab>.ipynb``, for every student who has
        that file."""
        if not self.submitted.is_dir():
            return {}
        found = {}
        for folder in sorted(self.submitted.iterdir()):
            path = folder / lab / f"{lab}.ipynb"
            if STUDENT_ID.match(folder.name) and path.is_file():
                found[folder.name] = path
        return found

    def strays(self, labs: list[str] | None = None) -> list[str]:
        """What in ``submitted/`` will not be graded, said for the instructor: folders of
        labs the course does not have, and lab folders without ``<lab>.ipynb``."""
        known = self.labs()
        problems = []
        if not self.submitted.is_dir():
            return problems
        for student in sorted(p for p in self.submitted.iterdir() if p.is_dir()):
            if not STUDENT_ID.match(student.name):
                problems.append(f"{student}: not a plain student id; not graded")
                continue
            for folder in sorted(p for p in student.iterdir() if p.is_dir()):
                if folder.name not in known:
                    problems.append(f"{folder}: a submission for '{folder.name}', which is not "
                                    f"a lab of this course (the labs are {', '.join(known)})")
                elif (labs is None or folder.name in labs) and \
                        not (folder / f"{folder.name}.ipynb").is_file():
                    found = sorted(p.name for p in folder.glob("*.ipynb"))
                    problems.append(f"{folder}: no {folder.name}.ipynb (found {found or 'none'}); "
                                    "collect it with `dgm-course collect` or rename it")
        return problems

    # -- nbgrader's configuration ----------------------------------------------------------
    def config(self) -> Any:
        """The course's ``nbgrader_config.py``, loaded (a traitlets ``Config``)."""
        from traitlets.config.loader import PyFileConfigLoader

        try:
            return PyFileConfigLoader(CONFIG_FILE, path=str(self.root)).load_config()
        except Exception as err:
            raise CourseError(f"{self.root / CONFIG_FILE} cannot be loaded: "
                              f"{type(err).__name__}: {err}") from err

    def db_url(self) -> str:
        return str(self.config().CourseDirectory.db_url)

    def limits(self, exercise_seconds: float | None = None,
               notebook_seconds: float | None = None) -> Limits:
        """The grading limits of ``nbgrader_config.py``, with the given ones in their place."""
        settings = self.config().SandboxedGrading
        exercise = exercise_seconds or settings.get("exercise_timeout", 60.0)
        notebook = notebook_seconds or settings.get("notebook_timeout", 300.0)
        memory = int(settings.get("memory_limit_mb", 4096))
        return Limits(exercise_seconds=float(exercise), notebook_seconds=float(notebook),
                      memory_bytes=memory << 20)

    def sandbox_mode(self) -> str | None:
        mode = self.config().SandboxedGrading.get("sandbox", "")
        return str(mode) or None

    def script(self, name: str) -> ModuleType:
        """The course's ``scripts/<name>.py``, imported (the book and release tooling)."""
        path = self.root / "scripts" / f"{name}.py"
        if not path.is_file():
            raise CourseError(f"{path} is missing: this command needs the course repository's "
                              "scripts/ folder")
        spec = importlib.util.spec_from_file_location(f"_dgm_course_{name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
