"""Time to autograde a class: the course's sandboxed grading against plain nbgrader.

    python benchmarks/bench_grading.py                       # 30 submissions of lab 1
    python benchmarks/bench_grading.py --lab lab02_density_estimation --n 10

Both pipelines grade the same batch of submissions (a third complete solutions, a third
untouched student versions, a third with one exercise wrong) with ``nbgrader autograde`` in a
scratch copy of the course, measured in the same run:

- **sandboxed**: the course's ``nbgrader_config.py``: each submission's answer cells run in the
  bubblewrap sandbox on fresh random inputs and are judged in the grader's process;
- **plain nbgrader**: the same notebooks with nbgrader's default ``Execute`` preprocessor, which
  runs every cell of each submission (data loading, plots, demos and the visible tests) in a
  Jupyter kernel, as the course did before.

Target: sandboxed / plain <= 1.5.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.5
PLAIN_CONFIG = '''
# Plain nbgrader: its default autograde preprocessors (Execute runs the whole notebook).
from nbconvert.exporters import NotebookExporter
from nbgrader.preprocessors import Execute
c.Autograde.autograde_preprocessors = [Execute, IgnorePattern, ClearMetadataPreprocessor,
                                       LimitOutput, SaveAutoGrades, AssignLatePenalties,
                                       CheckCellMetadata]
c.Autograde.exporter_class = NotebookExporter
c.Execute.timeout = 120
c.Execute.startup_timeout = 120
'''


def nbg(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def strip_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines()
                     if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line)


def batch(lab: str, course: Path, n: int) -> dict[str, nbformat.NotebookNode]:
    """``n`` submissions: complete, untouched and one-exercise-wrong, in turn."""
    src = nbformat.read(course / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    rel = nbformat.read(course / "notebooks" / lab / f"{lab}.ipynb", as_version=4)
    solutions = {nbg(c)["grade_id"]: c.source for c in src.cells if nbg(c).get("solution")}
    first = next(iter(solutions))
    subs = {}
    for i in range(n):
        nb = copy.deepcopy(rel)
        if i % 3 != 1:
            for cell in nb.cells:
                gid = nbg(cell).get("grade_id")
                if gid in solutions:
                    cell.source = strip_markers(solutions[gid])
                    if i % 3 == 2 and gid == first:  # wrong: the result scaled
                        cell.source = cell.source.replace("return ", "return 1.5 * ", 1)
        subs[f"student{i:02d}"] = nb
    return subs


def nbgrader(course: Path, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_DB_URL"}
    env.update(MPLBACKEND="Agg", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}",
           f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"nbgrader {args[0]} failed in {course}")
    return seconds


def course(folder: Path, lab: str, plain: bool) -> Path:
    folder.mkdir()
    config = (ROOT / "nbgrader_config.py").read_text()
    (folder / "nbgrader_config.py").write_text(config + (PLAIN_CONFIG if plain else ""))
    shutil.copytree(ROOT / "solutions" / lab, folder / "solutions" / lab,
                    ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    nbgrader(folder, "generate_assignment", lab, "--force")
    return folder


def scores(folder: Path, lab: str) -> list[float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}") as gb:
        return [s.score for s in sorted(gb.find_assignment(lab).submissions,
                                        key=lambda s: s.student.id)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="lab01_naive_bayes")
    parser.add_argument("--n", type=int, default=30, help="submissions in the batch")
    args = parser.parse_args(argv)
    from dgm_lab.grading import sandbox

    state = sandbox.status()
    print(f"{args.n} submissions of {args.lab}; sandbox: {state.kind}; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)
    times = {}
    with tempfile.TemporaryDirectory(prefix="dgm-bench-grading-") as tmp:
        for name, plain in (("sandboxed", False), ("plain nbgrader", True)):
            folder = course(Path(tmp) / name.replace(" ", "_"), args.lab, plain)
            for student, nb in batch(args.lab, folder, args.n).items():
                target = folder / "submitted" / student / args.lab
                target.mkdir(parents=True)
                nbformat.write(nb, target / f"{args.lab}.ipynb")
            times[name] = nbgrader(folder, "autograde", args.lab)
            got = scores(folder, args.lab)
            print(f"{name:>15}: {times[name]:7.1f} s = {times[name] / args.n:5.2f} s per "
                  f"submission; mean score {sum(got) / len(got):.2f}", flush=True)
    ratio = times["sandboxed"] / times["plain nbgrader"]
    flag = "" if ratio <= TARGET else "  OVER TARGET"
    print(f"ratio sandboxed / plain nbgrader: {ratio:.2f} (target <= {TARGET}){flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
