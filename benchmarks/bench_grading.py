"""Time to grade a class: ``dgm-course grade`` (serial and parallel) against plain nbgrader.

    python benchmarks/bench_grading.py                       # 30 submissions of lab 1
    python benchmarks/bench_grading.py --lab lab02_density_estimation --n 10 --jobs 4

Every pipeline grades the same batch of submissions (a third complete solutions, a third
untouched student versions, a third with one exercise wrong) in its own scratch copy of the
course, measured in the same run:

- **plain nbgrader**: ``nbgrader autograde`` with nbgrader's default ``Execute`` preprocessor,
  which runs every cell of each submission (data loading, plots, demos and the visible tests)
  in a Jupyter kernel, as the course did before; then ``nbgrader generate_feedback``;
- **sandboxed**: ``nbgrader autograde`` with the course's ``nbgrader_config.py``: each
  submission's answer cells run in the bubblewrap sandbox on fresh random inputs and are judged
  in the grader's process; then ``nbgrader generate_feedback``;
- **dgm-course grade --jobs 1** and **--jobs J**: the course's command (verdicts in J worker
  processes, recorded by nbgrader, feedback, grades.csv).

The scores of every pipeline are checked to agree. Targets: sandboxed / plain <= 1.5 and
``grade --jobs 2`` / plain <= 1 (the steps after the verdicts, recording and feedback, are
serial, so the speed-up of more jobs levels off).
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
GRADE_TARGET = 1.0
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


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_DB_URL"}
    env.update(MPLBACKEND="Agg", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def dgm_course(course: Path, *args: str) -> float:
    """Run ``dgm-course ARGS`` on the scratch course; returns its wall time."""
    cmd = [sys.executable, "-m", "dgm_lab.cli", "--course", str(course), *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=course, env=_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"dgm-course {args[0]} failed in {course}")
    return seconds


def nbgrader(course: Path, *args: str) -> float:
    env = _env()
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
    parser.add_argument("--jobs", type=int, default=2, help="workers of the parallel run")
    args = parser.parse_args(argv)
    from dgm_lab.grading import sandbox

    state = sandbox.status()
    print(f"{args.n} submissions of {args.lab}; sandbox: {state.kind}; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)
    # the course's command first: each line is printed as soon as its pipeline is done
    pipelines = [(f"grade --jobs {args.jobs}", args.jobs), ("grade --jobs 1", 1),
                 ("sandboxed", "nbgrader"), ("plain nbgrader", "plain")]
    times, results = {}, {}
    with tempfile.TemporaryDirectory(prefix="dgm-bench-grading-") as tmp:
        for name, how in pipelines:
            folder = course(Path(tmp) / name.replace(" ", "_").replace("-", ""), args.lab,
                            plain=how == "plain")
            for student, nb in batch(args.lab, folder, args.n).items():
                target = folder / "submitted" / student / args.lab
                target.mkdir(parents=True)
                nbformat.write(nb, target / f"{args.lab}.ipynb")
            if isinstance(how, int):
                times[name] = dgm_course(folder, "grade", args.lab, "--jobs", str(how),
                                         "--no-progress")
                detail = "verdicts, gradebook, feedback, grades.csv"
            else:
                auto = nbgrader(folder, "autograde", args.lab)
                feedback = nbgrader(folder, "generate_feedback", args.lab)
                times[name] = auto + feedback
                detail = f"autograde {auto:.1f} s + generate_feedback {feedback:.1f} s"
            results[name] = scores(folder, args.lab)
            got = results[name]
            print(f"{name:>16}: {times[name]:7.1f} s = {times[name] / args.n:5.2f} s per "
                  f"submission ({detail}); mean score {sum(got) / len(got):.2f}", flush=True)
    plain = times["plain nbgrader"]
    # each pipeline draws its own random cases: solutions and blanks score the same anyway
    disagree = [name for name in results if results[name] != results["plain nbgrader"]]
    if disagree:
        print(f"WARNING: the scores of {disagree} differ from plain nbgrader's")
    for name, target in (("sandboxed", TARGET), ("grade --jobs 1", None),
                         (f"grade --jobs {args.jobs}", GRADE_TARGET if args.jobs == 2 else None)):
        ratio = times[name] / plain
        flag = "" if target is None or ratio <= target else "  OVER TARGET"
        goal = f" (target <= {target})" if target is not None else ""
        print(f"ratio {name} / plain nbgrader: {ratio:.2f}{goal}{flag}")
    print(f"speed-up of --jobs {args.jobs} over --jobs 1: "
          f"{times['grade --jobs 1'] / times[f'grade --jobs {args.jobs}']:.2f}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
