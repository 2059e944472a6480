"""The verdict cache: each submission's :class:`~dgm_lab.grading.Report`, kept by the grader.

Grading a class computes the verdicts of many submissions in parallel worker processes and
then records them in nbgrader's gradebook one after the other (``dgm-course grade --jobs N``).
The verdicts travel between the two steps through this cache: one JSON file per student and
lab, ``<cache>/<lab>/<student>.json``, in an instructor-only folder (mode 700; files 600),
written atomically as soon as a verdict is computed, so that a crash in the middle of a batch
loses nothing already computed.

An entry is only used for the submission it was computed from and the lab version that judged
it: it is keyed by the SHA-256 of the submitted file and by :func:`checks_key`, a hash of the
lab's source notebook, its hidden checks and the grading code. A resubmission, or a change to
the lab's checks, never picks up an old verdict.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from dgm_lab.grading.checks import CHECKS_FILE
from dgm_lab.grading.grader import Report

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, in hex.

    Example:
        >>> file_sha256("submitted/alice/lab01/lab01.ipynb")  # doctest: +SKIP
        '9f86d08...'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checks_key(lab: str | Path) -> str:
    """A hash of everything that decides a lab's verdicts besides the submission: the source
    notebook ``<lab>.ipynb`` (points, imports cell), ``hidden_checks.py`` and the code of
    :mod:`dgm_lab.grading`.

    Arguments:
        lab: the lab's source folder ``solutions/<lab>/``.

    Returns:
        a hex digest; it changes when any of those files changes.
    """
    lab = Path(lab)
    digest = hashlib.sha256()
    grading = Path(__file__).resolve().parent
    files = [lab / f"{lab.name}.ipynb", lab / CHECKS_FILE, *sorted(grading.glob("*.py"))]
    for path in files:
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    return digest.hexdigest()


class VerdictCache:
    """The cache folder: ``<folder>/<lab>/<student>.json``.

    Each entry holds ``sha256`` (the submission's), ``key`` (:func:`checks_key`),
    ``computed`` (when), ``report`` (:meth:`Report.to_dict`) and ``recorded`` (when nbgrader
    recorded it in the gradebook, or ``None``).

    Arguments:
        folder: the cache folder (created on the first write, mode 700).

    Example:
        >>> cache = VerdictCache("grading_cache")
        >>> cache.put("lab01_naive_bayes", "alice", sha, key, report)       # doctest: +SKIP
        >>> cache.report("lab01_naive_bayes", "alice", sha, key)            # doctest: +SKIP
        Report(lab='lab01_naive_bayes', ...)
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, lab: str, student: str) -> Path:
        for name, value in (("lab", lab), ("student", student)):
            if not (isinstance(value, str) and _ID.match(value)):
                raise ValueError(f"VerdictCache: {name} must be a plain id, got {value!r}")
        return self.folder / lab / f"{student}.json"

    def entry(self, lab: str, student: str) -> dict | None:
        """The stored entry, or ``None`` when there is none or it cannot be read."""
        try:
            data = json.loads(self.path(lab, student).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def report(self, lab: str, student: str, sha256: str, key: str) -> Report | None:
        """The cached report of exactly this submission judged by exactly this lab version."""
        entry = self.entry(lab, student)
        if not entry or entry.get("sha256") != sha256 or entry.get("key") != key:
            return None
        try:
            return Report.from_dict(entry["report"])
        except (KeyError, TypeError):
            return None

    def put(self, lab: str, student: str, sha256: str, key: str, report: Report) -> None:
        """Store a freshly computed report (not yet recorded in the gradebook)."""
        self._write(lab, student, {
            "sha256": sha256, "key": key, "computed": _now(), "recorded": None,
            "report": report.to_dict()})

    def mark_recorded(self, lab: str, student: str) -> None:
        """Note that nbgrader recorded the entry's verdicts in the gradebook."""
        entry = self.entry(lab, student)
        if entry is not None:
            entry["recorded"] = _now()
            self._write(lab, student, entry)

    def _write(self, lab: str, student: str, entry: dict) -> None:
        path = self.path(lab, student)
        for folder in (self.folder, path.parent):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # write then rename: a crash never leaves a half-written entry behind
        fd, tmp = tempfile.mkstemp(prefix=f".{student}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(entry, fh)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
