"""Mutation testing: does the test suite notice when the library is subtly wrong?

A *mutant* is a small deliberate bug (a flipped sign, a transposed matrix, a dropped term)
written down as a find/replace on one file of ``dgm_lab``. For every mutant this script
copies the repository into a scratch folder, applies the change there (the working tree is
never touched), runs the tests that should notice, and reports whether the mutant was
*killed* (some test failed) or *survived* (every test passed: a test is missing).

    python scripts/mutation_test.py                   # every mutant, table + mutation score
    python scripts/mutation_test.py --only density    # ids containing "density"
    python scripts/mutation_test.py --list            # list the mutants, run nothing

The mutants live in ``tests/mutants/*.toml``, one file per area of the library::

    [[mutant]]
    id = "gmm-sample-transposed-cholesky"        # unique, says what the bug is
    file = "dgm_lab/density.py"
    find = "chol[z] @ eps.unsqueeze(2)"           # must occur exactly once in the file
    replace = "chol[z].mT @ eps.unsqueeze(2)"
    tests = ["tests/test_density.py"]             # pytest arguments that should kill it

Run it before resolving a chapter; add mutants for every module you add. The score is
killed / total; the project's target is >= 90 %. ``tests/test_mutants.py`` keeps the list
well-formed (every ``find`` still matches exactly once) in the ordinary test run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANT_DIR = ROOT / "tests" / "mutants"


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]
    source: str  # the .toml file that defines it


def load_mutants(folder: Path = MUTANT_DIR) -> list[Mutant]:
    """Every mutant of every ``*.toml`` file in ``folder``, in file order."""
    mutants = []
    for path in sorted(folder.glob("*.toml")):
        with path.open("rb") as fh:
            table = tomllib.load(fh)
        for entry in table.get("mutant", []):
            missing = {"id", "file", "find", "replace", "tests"} - set(entry)
            if missing:
                raise ValueError(f"{path.name}: mutant {entry.get('id', '?')} lacks {missing}")
            mutants.append(Mutant(entry["id"], entry["file"], entry["find"], entry["replace"],
                                  tuple(entry["tests"]), path.name))
    return mutants


def problems(mutants: list[Mutant], root: Path = ROOT) -> list[str]:
    """What is wrong with the list: duplicate ids, missing files, finds that do not match once."""
    found, seen = [], set()
    for m in mutants:
        if m.id in seen:
            found.append(f"{m.id}: duplicate id")
        seen.add(m.id)
        path = root / m.file
        if not path.is_file():
            found.append(f"{m.id}: no file {m.file}")
            continue
        count = path.read_text(encoding="utf-8").count(m.find)
        if count != 1:
            found.append(f"{m.id}: `find` occurs {count} times in {m.file} (must be exactly once)")
        if m.find == m.replace:
            found.append(f"{m.id}: replace equals find")
        for test in m.tests:
            if not (root / test.split("::")[0]).exists():
                found.append(f"{m.id}: no test path {test}")
    return found


def _copy_repo(dest: Path) -> None:
    """Copy the tracked and untracked-but-not-ignored files of the repository to ``dest``."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for rel in filter(None, listed):
        src = ROOT / rel.decode()
        if src.is_file():
            target = dest / rel.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def run_mutant(m: Mutant, scratch: Path, timeout: float) -> tuple[str, float]:
    """Apply ``m`` in ``scratch``, run its tests, restore; returns (outcome, seconds)."""
    path = scratch / m.file
    original = path.read_text(encoding="utf-8")
    path.write_text(original.replace(m.find, m.replace, 1), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(scratch), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           "-p", "no:randomly", *m.tests]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True,
                              timeout=timeout)
        outcome = "survived" if proc.returncode == 0 else "killed"
        if proc.returncode in (2, 3, 4):  # interrupted, internal or usage error: import broke
            outcome = "killed (error)"
    except subprocess.TimeoutExpired:
        outcome = "killed (timeout)"
    finally:
        path.write_text(original, encoding="utf-8")
    return outcome, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only mutants whose id or file contains this text")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mutant")
    parser.add_argument("--min-score", type=float, default=0.9,
                        help="exit 1 when the mutation score is below this (default 0.9)")
    args = parser.parse_args(argv)
    mutants = load_mutants()
    bad = problems(mutants)
    if bad:
        print("the mutant list is not well-formed:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 2
    if args.only:
        mutants = [m for m in mutants if args.only in m.id or args.only in m.file]
    if args.list or not mutants:
        for m in mutants:
            print(f"{m.id:50s} {m.file}")
        print(f"{len(mutants)} mutant(s)")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="dgm-mutants-") as tmp:
        scratch = Path(tmp)
        _copy_repo(scratch)
        for i, m in enumerate(mutants, 1):
            outcome, seconds = run_mutant(m, scratch, args.timeout)
            rows.append((m, outcome))
            print(f"[{i}/{len(mutants)}] {outcome:17s} {seconds:6.1f} s  {m.id}", flush=True)
    survivors = [m for m, outcome in rows if outcome == "survived"]
    score = 1 - len(survivors) / len(rows)
    print(f"\nmutation score: {len(rows) - len(survivors)}/{len(rows)} killed = {score:.0%}")
    for m in survivors:
        print(f"  SURVIVED {m.id} ({m.file}): add a test that {m.tests} would fail")
    return 0 if score >= args.min_score else 1


if __name__ == "__main__":
    sys.exit(main())
