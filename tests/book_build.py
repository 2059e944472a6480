"""One build of both book editions per test run, shared by tests/test_book.py and
tests/test_browser.py, and by the pytest-xdist workers that run them.

The build goes into the run's temporary folder with a cold execution cache, as in CI: every
page and every lab solution executes. The first worker that asks builds the student edition,
then the instructor edition (which reuses the execution cache); a second worker waits on a
file lock and reuses the result, so the book is built once even when the two test modules
land on different workers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


def load_script(name: str):
    """Import ``scripts/<name>.py`` (scripts/ is not a package)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))  # build_book imports headless_chromium
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Book:
    root: Path  # the path_output given to build_book.build
    student: Path  # the student edition's HTML folder
    instructor: Path  # the instructor edition's HTML folder


def shared_dir(tmp_path_factory) -> Path:
    """A folder shared by all xdist workers of this run (the run's own folder otherwise)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_book(tmp_path_factory) -> Book:
    build_book = load_script("build_book")
    root = shared_dir(tmp_path_factory) / "book"
    done = root / "build-result.json"
    with FileLock(str(root) + ".lock"):
        if not done.exists():
            root.mkdir(parents=True, exist_ok=True)
            status = {edition: build_book.build(strict=True, path_output=root, edition=edition)
                      for edition in ("student", "instructor")}
            done.write_text(json.dumps(status))
        status = json.loads(done.read_text())
    for edition, code in status.items():
        assert code == 0, (f"the {edition} edition failed to build (warnings are errors); "
                           "see the log above")
    return Book(root, build_book.output_dir("student", root),
                build_book.output_dir("instructor", root))
