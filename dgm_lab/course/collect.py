"""Put students' submissions where nbgrader grades them, from whatever the instructor got.

:func:`collect` takes a folder, a ``.zip`` or one ``.ipynb`` and files every notebook it finds
as ``submitted/<student>/<lab>/<lab>.ipynb``. It understands:

- a folder per student: ``alice/lab01_naive_bayes.ipynb``, ``alice/lab01_naive_bayes/...``,
  ``alice/anything.zip``;
- a zip per student: ``alice.zip`` holding the notebook (at its top or in one folder);
- an LMS export, a folder or a zip of files named after the student and the lab:
  ``alice_lab01_naive_bayes.ipynb``, Canvas' ``smithalice_12345_67890_lab01_naive_bayes-1.ipynb``
  (the student's login first, a resubmission marked ``-1``), Moodle's
  ``Alice Smith_4711_assignsubmission_file_lab01_naive_bayes.ipynb`` (the participant number
  is the student id), and the marks browsers add to a file downloaded twice,
  ``lab01_naive_bayes (1).ipynb``;
- with ``pattern``, any other naming: a regular expression with the named groups ``student``
  (and ``lab``) matched against each file name.

Everything from outside is untrusted: a zip entry that would land outside its folder (``..``,
absolute names), a link or special file, or an archive that expands too far makes the whole
archive refused before anything is written; student ids must be plain names. When one student
has several files for a lab, the newest wins (and :func:`collect` says so). A submission that
is already there is replaced only with ``force``.
"""

from __future__ import annotations

import io
import json
import re
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dgm_lab.course.layout import STUDENT_ID, Course, CourseError
from dgm_lab.grading.collect import MAX_BYTES, MAX_ENTRIES, UnsafeArchive, _safe_name

# Marks added to a file name by browsers (" (1)", "(2)") and LMSs ("-1" for a resubmission).
DUPLICATE_MARK = re.compile(r"(?:\s*\(\d{1,3}\)|-\d{1,3}|\s+copy)$", re.IGNORECASE)
# Moodle: "<full name>_<participant number>_assignsubmission_file_<file name>"
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<student>\d+)_assignsubmission_(?:file|onlinetext)_?$")
LAB_LIKE = re.compile(r"lab\d{1,3}(?:_[A-Za-z0-9]+)*", re.IGNORECASE)
_SKIP = {"__MACOSX", ".ipynb_checkpoints", "__pycache__", ".DS_Store"}


@dataclass
class Collected:
    """What happened to one submission: ``status`` is ``"new"``, ``"replaced"``,
    ``"unchanged"``, ``"kept"`` (it differs from the one already there; not replaced without
    ``force``) or ``"refused"``; ``note`` says more."""

    student: str
    lab: str
    origin: str
    status: str
    note: str = ""


@dataclass
class _File:
    parts: tuple[str, ...]  # where it was found, relative to the source
    data: bytes
    mtime: float

    @property
    def origin(self) -> str:
        return "/".join(self.parts)


def _stem(name: str) -> str:
    stem = name[: -len(".ipynb")] if name.lower().endswith(".ipynb") else name
    stem = stem[: -len(".zip")] if stem.lower().endswith(".zip") else stem
    while (shorter := DUPLICATE_MARK.sub("", stem)) != stem:
        stem = shorter
    return stem.strip()


def split_name(name: str, labs: list[str]) -> tuple[str, str | None]:
    """Split a file or folder name into (the part naming the student, the lab).

    The lab is the longest lab name the stem ends with (after the duplicate marks); what
    comes before it names the student.

    Example:
        >>> split_name("smithalice_12_34_lab01_naive_bayes (1).ipynb", ["lab01_naive_bayes"])
        ('smithalice_12_34', 'lab01_naive_bayes')
    """
    stem = _stem(name)
    for lab in sorted(labs, key=len, reverse=True):
        if stem == lab:
            return "", lab
        if stem.endswith(lab) and stem[-len(lab) - 1] in "_- .":
            return stem[: -len(lab)].rstrip("_- ."), lab
    return stem, None


def student_id(prefix: str) -> str | None:
    """The student id in the part of a name before the lab: Moodle's participant number, else
    the first ``_``-separated field (Canvas' login); ``None`` when that is not a plain id."""
    if not prefix:
        return None
    moodle = MOODLE.match(prefix)
    candidate = moodle.group("student") if moodle else prefix.split("_")[0]
    return candidate if STUDENT_ID.match(candidate) else None


# ----------------------------------------------------------------------------- reading


def _zip_files(data: bytes | Path, where: tuple[str, ...], label: str) -> Iterator[_File]:
    """The files of a zip, after checking every entry (nothing is yielded from an unsafe
    archive: :class:`UnsafeArchive` is raised before the first)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (zipfile.BadZipFile, OSError) as err:
        raise UnsafeArchive(f"{label} is not a readable zip file ({err})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ENTRIES:
            raise UnsafeArchive(f"{label} has more than {MAX_ENTRIES} entries")
        if sum(i.file_size for i in infos) > MAX_BYTES:
            raise UnsafeArchive(f"{label} expands to more than {MAX_BYTES >> 20} MB")
        checked = []
        for info in infos:
            try:
                path = _safe_name(info.filename)
            except UnsafeArchive as err:
                raise UnsafeArchive(f"{label}: {err}; nothing of it was collected") from None
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                raise UnsafeArchive(f"{label}: entry {info.filename!r} is a link or special "
                                    "file; nothing of it was collected")
            if not info.is_dir():
                checked.append((info, path))
        for info, path in checked:
            if _SKIP.intersection(path.parts) or path.name.startswith("._"):
                continue
            mtime = datetime(*info.date_time, tzinfo=UTC).timestamp()
            yield _File(where + path.parts, zf.read(info), mtime)


def _folder_files(folder: Path) -> Iterator[_File]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if _SKIP.intersection(rel.parts) or any(p.startswith(".") for p in rel.parts):
            continue
        if path.is_symlink():
            raise UnsafeArchive(f"{path} is a symbolic link: collect the file it points to "
                                "instead")
        if path.is_file():
            yield _File(rel.parts, path.read_bytes(), path.stat().st_mtime)


def _expand(files: Iterator[_File]) -> Iterator[_File]:
    """Open the zips found among ``files`` (one level): ``alice.zip`` stands for a folder
    ``alice/``; a zip inside a student's folder adds nothing to the path."""
    for file in files:
        if file.parts[-1].lower().endswith(".zip"):
            where = file.parts[:-1] if len(file.parts) > 1 else (_stem(file.parts[0]),)
            yield from _zip_files(file.data, where, file.origin)
        else:
            yield file


# ----------------------------------------------------------------------------- collecting


def _identify(file: _File, labs: list[str], lab: str | None, student: str | None,
              pattern: re.Pattern | None) -> tuple[str, str]:
    """(student, lab) of one notebook, or :class:`CourseError` saying why not."""
    name = file.parts[-1]
    found_student = student
    found_lab = None
    if pattern is not None:
        match = pattern.match(name)
        if match is None:
            raise CourseError(f"{file.origin}: the name does not match --pattern")
        groups = match.groupdict()
        found_student = found_student or groups.get("student")
        found_lab = groups.get("lab")
        if found_lab is not None:
            found_lab = split_name(found_lab, labs)[1] or found_lab
    else:
        prefix, found_lab = split_name(name, labs)
        if len(file.parts) > 1:  # in a folder: the top folder names the student
            top_prefix, top_lab = split_name(file.parts[0], labs)
            found_student = found_student or student_id(top_prefix) or (
                None if top_lab else file.parts[0])
            found_lab = found_lab or top_lab
        else:
            found_student = found_student or student_id(prefix)
    found_lab = found_lab or lab
    if found_lab is None:
        guess = LAB_LIKE.search(_stem(name))
        if guess:
            raise CourseError(f"{file.origin} is for lab '{guess.group(0)}', which is not a lab "
                              f"of this course (the labs are {', '.join(labs) or 'none'})")
        raise CourseError(f"{file.origin}: cannot tell which lab this is: put the lab's name "
                          "in the file name or pass --lab")
    if found_lab not in labs:
        raise CourseError(f"{file.origin} is for lab '{found_lab}', which is not a lab of this "
                          f"course (the labs are {', '.join(labs) or 'none'})")
    if lab is not None and found_lab != lab:
        raise CourseError(f"{file.origin} is for {found_lab}, not {lab}: skipped")
    if not found_student or not STUDENT_ID.match(found_student):
        raise CourseError(f"{file.origin}: cannot tell the student id from the name (found "
                          f"{found_student!r}; ids are letters, digits and _.@+-): pass --student "
                          "or --pattern")
    return found_student, found_lab


def _looks_like(data: bytes, answers: set[str]) -> str:
    """Empty when ``data`` is a notebook with the lab's answer cells, else what is wrong."""
    try:
        cells = json.loads(data.decode("utf-8")).get("cells")
        ids = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in cells}
    except (ValueError, AttributeError, TypeError):
        return "it is not a readable notebook (it will score 0)"
    if answers and not answers & ids:
        return "it has none of the lab's answer cells (a notebook of another lab?)"
    return ""


def _answer_ids(course: Course, lab: str) -> set[str]:
    try:
        nb = json.loads((course.solutions / lab / f"{lab}.ipynb").read_text(encoding="utf-8"))
        return {c["metadata"]["nbgrader"]["grade_id"] for c in nb["cells"]
                if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    except (OSError, ValueError, KeyError):
        return set()


def collect(course: Course, source: str | Path, *, lab: str | None = None,
            student: str | None = None, pattern: str | None = None,
            force: bool = False) -> list[Collected]:
    """File the submissions found in ``source`` under ``course.submitted``.

    Arguments:
        course: the course (its labs decide which names are labs).
        source: a folder, a ``.zip`` or a ``.ipynb``.
        lab: collect only this lab (and the lab of files whose names do not say).
        student: the student of a single ``.ipynb`` or ``.zip``.
        pattern: a regular expression with the named groups ``student`` (and ``lab``),
            matched against each notebook's file name, for namings not understood by default.
        force: replace submissions that are already there and differ.

    Returns:
        one :class:`Collected` per (student, lab) and per file that could not be collected
        (status ``"refused"``, with the reason).

    Raises:
        CourseError: the source is missing or holds no notebook, an unknown ``lab``, a bad
            ``pattern``, or an unsafe archive (nothing of which was written).

    Example:
        >>> collect(Course.find(), "downloads/lab01_export.zip")         # doctest: +SKIP
        [Collected(student='alice', lab='lab01_naive_bayes', origin='...', status='new'), ...]
    """
    source = Path(source)
    labs = course.labs()
    if lab is not None:
        course.lab(lab)
    if student is not None and not STUDENT_ID.match(student):
        raise CourseError(f"--student must be a plain id (letters, digits, _.@+-), not "
                          f"{student!r}")
    try:
        regex = re.compile(pattern) if pattern else None
    except re.error as err:
        raise CourseError(f"--pattern is not a valid regular expression: {err}") from None
    if regex is not None and "student" not in regex.groupindex and student is None:
        raise CourseError("--pattern needs a named group (?P<student>...)")
    if not source.exists():
        raise CourseError(f"{source} does not exist")
    try:
        if source.is_dir():
            files = list(_expand(_folder_files(source)))
        elif source.suffix.lower() == ".zip":
            files = list(_expand(_zip_files(source, (), source.name)))
        elif source.suffix.lower() == ".ipynb":
            files = [_File((source.name,), source.read_bytes(), source.stat().st_mtime)]
        else:
            raise CourseError(f"{source} is neither a folder, a .zip nor a .ipynb")
    except UnsafeArchive as err:
        raise CourseError(f"refused: {err}") from None
    notebooks = [f for f in files if f.parts[-1].lower().endswith(".ipynb")]
    if not notebooks:
        raise CourseError(
            f"no notebooks found in {source}: expected <student>/<lab>.ipynb, "
            "<student>_<lab>.ipynb (an LMS export), <student>.zip, or a .ipynb with --student")

    results: list[Collected] = []
    chosen: dict[tuple[str, str], list[_File]] = {}
    for file in notebooks:
        try:
            key = _identify(file, labs, lab, student, regex)
        except CourseError as err:
            results.append(Collected("", lab or "", file.origin, "refused", str(err)))
            continue
        chosen.setdefault(key, []).append(file)

    answers = {name: _answer_ids(course, name) for name in {k[1] for k in chosen}}
    for (who, which), candidates in sorted(chosen.items()):
        # the newest file wins; among equally new ones the larger duplicate number
        candidates.sort(key=lambda f: (f.mtime, f.parts[-1]))
        file = candidates[-1]
        notes = []
        if len(candidates) > 1:
            others = ", ".join(f.origin for f in candidates[:-1])
            notes.append(f"{len(candidates)} files; took the newest (ignored {others})")
        problem = _looks_like(file.data, answers[which])
        if problem:
            notes.append(f"warning: {problem}")
        status = _store(course, who, which, file, force)
        if status == "kept":
            notes.append("differs from the submission collected before: pass --force to "
                         "replace it")
        results.append(Collected(who, which, file.origin, status, "; ".join(notes)))
    return results


def _store(course: Course, student: str, lab: str, file: _File, force: bool) -> str:
    folder = course.submitted / student / lab
    target = folder / f"{lab}.ipynb"
    if target.is_file():
        if target.read_bytes() == file.data:
            return "unchanged"
        if not force:
            return "kept"
        status = "replaced"
    else:
        status = "new"
    folder.mkdir(parents=True, exist_ok=True)
    target.write_bytes(file.data)
    # nbgrader's own record of when it was submitted (late penalties, `nbgrader collect`)
    when = datetime.fromtimestamp(file.mtime, UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    (folder / "timestamp.txt").write_text(when + "\n")
    return status

