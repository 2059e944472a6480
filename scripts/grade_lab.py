"""Autograde one lab's submissions and write each student's feedback: the instructor's command.

Put the submissions at ``submitted/<student>/<lab>/<lab>.ipynb`` (``nbgrader collect <lab>`` does
it from a JupyterHub exchange, ``nbgrader zip_collect <lab>`` from an LMS download), then run,
from anywhere:

    python scripts/grade_lab.py lab01_naive_bayes
    python scripts/grade_lab.py lab01_naive_bayes --student alice --force   # re-grade one student

It runs nbgrader's own CLI with the course's ``nbgrader_config.py``, from the repository root:

1. ``nbgrader generate_assignment <lab> --force`` into a scratch release folder: records the lab,
   its cells and points in the gradebook (``notebooks/`` is left alone);
2. ``nbgrader autograde <lab>``: for each submission, the course's grader
   (``dgm_lab.grading``, configured in ``nbgrader_config.py``) runs the answer cells in a
   sandbox on fresh random inputs, judges them against the hidden checks
   (``solutions/<lab>/hidden_checks.py``) and writes each verdict into its test cell, from which
   nbgrader takes the score -> ``autograded/<student>/<lab>/``; each grading's seed goes to
   ``grading_log/<lab>.jsonl`` (instructor only);
3. ``nbgrader generate_feedback <lab>``: an HTML report per student in ``feedback/<student>/``;

and prints the scores from the gradebook (``nbgrader export`` writes them all to grades.csv).
It says first whether the sandbox (bubblewrap) is available; without it grading still works,
unprotected (see docs/grading.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def nbgrader(*args: str) -> int:
    """Run one nbgrader command from the course root; returns its exit code."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    print("$ nbgrader " + " ".join(args), flush=True)
    code = subprocess.run(cmd, cwd=ROOT).returncode
    if code != 0:
        # autograde goes on past a failing submission and exits 1 at the end: say so, go on.
        print(f"nbgrader {args[0]} exited with {code}; see the log above", file=sys.stderr)
    return code


def print_scores(lab: str, student: str | None) -> None:
    from nbgrader.api import Gradebook
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    with Gradebook(config.CourseDirectory.db_url, config.CourseDirectory.course_id) as gb:
        subs = [s for s in gb.find_assignment(lab).submissions
                if student is None or s.student.id == student]
        for sub in sorted(subs, key=lambda s: s.student.id):
            parts = ", ".join(f"{g.name} {g.score:g}/{g.max_score:g}"
                              for nb in sub.notebooks for g in nb.grades)
            print(f"{sub.student.id:>20}: {sub.score:g} / {sub.max_score:g}   ({parts})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lab")
    parser.add_argument("--student", help="only this student (default: every submission)")
    parser.add_argument("--force", action="store_true", help="re-grade already graded submissions")
    parser.add_argument("--timeout", type=int,
                        help="time limit per exercise in s (nbgrader_config.py: 60)")
    args = parser.parse_args(argv)
    if not (ROOT / "solutions" / args.lab / f"{args.lab}.ipynb").is_file():
        parser.error(f"no solutions/{args.lab}/{args.lab}.ipynb")

    from dgm_lab.grading import sandbox

    state = sandbox.status()
    print(state.warning or "grading in the bubblewrap sandbox", file=sys.stderr if state.warning
          else sys.stdout, flush=True)
    extra = [f"--student={args.student}"] if args.student else []
    extra += ["--force"] if args.force else []
    with tempfile.TemporaryDirectory(prefix="dgm-register-") as scratch:
        codes = [nbgrader("generate_assignment", args.lab, "--force",
                          f"--CourseDirectory.release_directory={scratch}")]
    timeout = [f"--SandboxedGrading.exercise_timeout={args.timeout}"] if args.timeout else []
    codes.append(nbgrader("autograde", args.lab, *extra, *timeout))
    codes.append(nbgrader("generate_feedback", args.lab, *extra))
    print_scores(args.lab, args.student)
    # every step runs whatever happened before, but a failure anywhere is reported
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
