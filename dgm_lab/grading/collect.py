"""Put a student's submission, downloaded from an LMS as a zip, where nbgrader looks for it.

A zip from outside is untrusted like the notebook inside it: an entry named
``../../solutions/lab01/hidden_checks.py`` or ``/etc/cron.d/x`` would write outside the
student's folder if extracted naively ("zip slip"), a symlink entry could point anywhere, and a
small archive can expand to gigabytes. :func:`collect_zip` checks every entry first and
extracts nothing unless all are safe.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")
MAX_ENTRIES = 1000
MAX_BYTES = 200 << 20


class UnsafeArchive(ValueError):
    """A submitted zip that is refused; the message names the entry and the reason."""


def _safe_name(name: str) -> PurePosixPath:
    """The entry's relative path, or :class:`UnsafeArchive` when it could escape the folder."""
    if "\\" in name or "\x00" in name:
        raise UnsafeArchive(f"entry {name!r} has a backslash or NUL in its name")
    path = PurePosixPath(name)
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchive(f"entry {name!r} is an absolute path")
    if ".." in path.parts:
        raise UnsafeArchive(f"entry {name!r} climbs out of the folder with '..' (path traversal)")
    return path


def collect_zip(archive: str | Path, course: str | Path, student: str, lab: str, *,
                overwrite: bool = False) -> Path:
    """Extract a student's zip into ``course/submitted/<student>/<lab>/`` safely.

    Every entry is checked before anything is written: no absolute names, no ``..``, no
    symlinks or special files, at most 1000 entries and 200 MB uncompressed. The notebook
    must be ``<lab>.ipynb`` (at the top of the zip or in its one top folder) or the zip's only
    ``.ipynb``; it is stored as ``<lab>.ipynb``.

    Arguments:
        archive: the student's ``.zip``.
        course: the course root (holding ``submitted/``).
        student, lab: ids (letters, digits, ``_.@+-``; no path separators).
        overwrite: replace an existing submission of this student for this lab.

    Returns:
        the path of the collected notebook.

    Raises:
        UnsafeArchive: an unsafe entry, no notebook, or not a zip (nothing is written).
        FileExistsError: a submission is already there and ``overwrite`` is false.
        ValueError: a student or lab id that is not a plain name.

    Example:
        >>> collect_zip("downloads/alice.zip", ".", "alice", "lab01_naive_bayes")
        PosixPath('submitted/alice/lab01_naive_bayes/lab01_naive_bayes.ipynb')
    """
    for name, value in (("student", student), ("lab", lab)):
        if not (isinstance(value, str) and _ID.match(value)):
            raise ValueError(f"collect_zip(): {name} must be a plain id, got {value!r}")
    archive = Path(archive)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise UnsafeArchive(f"{archive.name} is not a readable zip file ({err})") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(zf.infolist()) > MAX_ENTRIES:
            raise UnsafeArchive(f"{archive.name} has more than {MAX_ENTRIES} entries")
        if sum(m.file_size for m in members) > MAX_BYTES:
            raise UnsafeArchive(f"{archive.name} expands to more than {MAX_BYTES >> 20} MB")
        paths = {}
        for member in zf.infolist():
            path = _safe_name(member.filename)
            kind = stat.S_IFMT(member.external_attr >> 16)  # 0 when the zip records no type
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                raise UnsafeArchive(f"entry {member.filename!r} is a link or special file")
            if not member.is_dir():
                paths[member.filename] = path
        # Macs add __MACOSX/ resource forks: never submissions.
        paths = {k: p for k, p in paths.items() if p.parts[0] != "__MACOSX"}
        notebooks = [p for p in paths.values() if p.suffix == ".ipynb"]
        wanted = [p for p in notebooks if p.name == f"{lab}.ipynb" and len(p.parts) <= 2]
        chosen = wanted[0] if len(wanted) == 1 else (notebooks[0] if len(notebooks) == 1 else None)
        if chosen is None:
            raise UnsafeArchive(f"{archive.name} holds no single notebook {lab}.ipynb "
                                f"(found {[str(p) for p in notebooks][:5]})")
        base = chosen.parent
        dest = Path(course) / "submitted" / student / lab
        if dest.exists():
            if not overwrite:
                raise FileExistsError(f"{dest} exists: pass overwrite=True to replace it")
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for name, path in paths.items():
            try:
                rel = path.relative_to(base)
            except ValueError:
                continue  # outside the notebook's folder: not part of the submission
            target = dest / (f"{lab}.ipynb" if path == chosen else rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(name) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    return dest / f"{lab}.ipynb"
