"""Regenerate every student notebook ``notebooks/<lab>/`` from ``solutions/<lab>/`` with nbgrader.

``dgm-course release [--check]`` runs the functions of this file; the script does the same
(from anywhere):

    python scripts/release_labs.py            # rewrite notebooks/ for every lab in solutions/
    python scripts/release_labs.py lab01_naive_bayes   # only these labs
    python scripts/release_labs.py --check    # exit 1 and name the labs whose notebooks/ drifted

It runs the real ``nbgrader generate_assignment --no-db --force`` with the course's
``nbgrader_config.py`` in a scratch copy of the course, so it neither reads nor writes the
instructor's gradebook, and then normalises the released notebooks (no outputs, no execution
counts or timings, deterministic cell ids, nbformat's canonical JSON) so that running it twice
gives byte-identical files. Other files of a lab folder (images, data) are released as nbgrader
copies them; stale files in ``notebooks/<lab>/`` are removed.

To autograde, the instructor's gradebook needs the lab too: ``dgm-course grade`` records it.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "solutions"
RELEASE = "notebooks"
_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Files nbgrader never releases (CourseDirectory.ignore) and that we never compare.
_IGNORED = {".ipynb_checkpoints", "__pycache__", "feedback", ".DS_Store", "hidden_checks.py"}


def discover_labs(root: Path = ROOT) -> list[str]:
    """Names of the labs: folders ``solutions/<lab>/`` holding ``<lab>.ipynb``, sorted."""
    source = root / SOURCE
    if not source.is_dir():
        return []
    return sorted(p.name for p in source.iterdir() if (p / f"{p.name}.ipynb").is_file())


def normalise(released: Path, source: Path) -> str:
    """The canonical text of a released notebook.

    Outputs, execution counts and execution timings are dropped. Cell ids are taken from the
    source notebook (nbgrader keeps the cell order); a source without ids would otherwise get
    fresh random ones on every run, so those cells get ids derived from their grade_id/position.
    """
    nb = nbformat.read(released, as_version=4)
    src = nbformat.reads(source.read_text(encoding="utf-8"), as_version=4,
                         capture_validation_error={})
    if len(src.cells) != len(nb.cells):
        raise RuntimeError(f"{released}: nbgrader changed the number of cells; cannot map cell ids")
    nb.nbformat_minor = max(nb.nbformat_minor, 5)
    used: set[str] = set()
    for i, (cell, src_cell) in enumerate(zip(nb.cells, src.cells, strict=True)):
        cell_id = src_cell.get("id")
        if not (isinstance(cell_id, str) and _ID.match(cell_id)) or cell_id in used:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
            usable = _ID.match(grade_id or "") and grade_id not in used
            cell_id = grade_id if usable else f"cell-{i}"
        used.add(cell_id)
        cell["id"] = cell_id
        for key in ("execution", "ExecuteTime", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    nbformat.validate(nb)
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def _files(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    found = set()
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if path.is_file() and not _IGNORED.intersection(rel.parts):
            found.add(rel.as_posix())
    return found


def generate(labs: list[str], out: Path, root: Path = ROOT) -> None:
    """Run ``nbgrader generate_assignment`` on ``labs`` into ``out/<lab>/``, normalised."""
    with tempfile.TemporaryDirectory(prefix="dgm-release-") as tmp:
        course = Path(tmp)
        shutil.copy2(root / "nbgrader_config.py", course / "nbgrader_config.py")
        for lab in labs:
            shutil.copytree(root / SOURCE / lab, course / SOURCE / lab,
                            ignore=shutil.ignore_patterns(*_IGNORED, "*.pyc"))
        env = {k: v for k, v in os.environ.items() if k != "NBGRADER_DB_URL"}
        pattern = labs[0] if len(labs) == 1 else "*"
        cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", pattern,
               "--no-db", "--force", f"--CourseDirectory.root={course}",
               "--CourseDirectory.db_url=sqlite:///" + str(course / "unused.db")]
        proc = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"nbgrader generate_assignment failed (exit {proc.returncode})")
        for lab in labs:
            built = course / RELEASE / lab
            target = out / lab
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            for rel in sorted(_files(built)):
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                if rel == f"{lab}.ipynb":
                    text = normalise(built / rel, root / SOURCE / lab / rel)
                    dest.write_text(text, encoding="utf-8", newline="\n")
                else:
                    shutil.copyfile(built / rel, dest)
            if not (target / f"{lab}.ipynb").is_file():
                raise SystemExit(f"nbgrader released no {lab}.ipynb for {lab}")


def drifted(labs: list[str], root: Path = ROOT) -> dict[str, list[str]]:
    """For each lab whose ``notebooks/<lab>/`` differs from a fresh release: the differing files."""
    with tempfile.TemporaryDirectory(prefix="dgm-check-") as tmp:
        fresh = Path(tmp)
        generate(labs, fresh, root)
        report: dict[str, list[str]] = {}
        for lab in labs:
            have, want = _files(root / RELEASE / lab), _files(fresh / lab)
            diff = sorted(f"missing {f}" for f in want - have)
            diff += sorted(f"stale {f}" for f in have - want)
            diff += sorted(f"differs {f}" for f in want & have if not filecmp.cmp(
                root / RELEASE / lab / f, fresh / lab / f, shallow=False))
            if diff:
                report[lab] = diff
        # Released labs whose source is gone.
        for folder in sorted((root / RELEASE).glob("*/")) if (root / RELEASE).is_dir() else []:
            if folder.is_dir() and folder.name not in discover_labs(root) and _files(folder):
                report[folder.name] = [f"no source in solutions/ (delete notebooks/{folder.name})"]
        return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("labs", nargs="*", help="labs to release (default: all in solutions/)")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if notebooks/ differs from a fresh release")
    args = parser.parse_args(argv)
    labs = discover_labs()
    unknown = sorted(set(args.labs) - set(labs))
    if unknown:
        parser.error(f"no solutions/<lab>/<lab>.ipynb for: {', '.join(unknown)}")
    labs = args.labs or labs
    if not labs:
        print("no labs in solutions/: nothing to release")
        return 0
    if args.check:
        report = drifted(labs)
        if args.labs:
            report = {lab: d for lab, d in report.items() if lab in labs}
        for lab, diffs in report.items():
            print(f"{lab}: notebooks/ drifted from solutions/: " + "; ".join(diffs))
        if report:
            print("run `dgm-course release` (or this script) and commit notebooks/")
            return 1
        print(f"notebooks/ up to date for {len(labs)} lab(s)")
        return 0
    generate(labs, ROOT / RELEASE)
    for lab in labs:
        print(f"released {SOURCE}/{lab} -> {RELEASE}/{lab}/{lab}.ipynb")
    release = ROOT / RELEASE
    for folder in sorted(p for p in release.iterdir() if p.is_dir()) if release.is_dir() else []:
        if folder.name not in discover_labs() and _files(folder):
            print(f"warning: {RELEASE}/{folder.name} has no source in {SOURCE}/; delete it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
