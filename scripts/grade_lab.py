"""Autograde one lab, write each student's feedback and the grades: ``dgm-course grade``.

Kept so that older instructions keep working; the command line does the work:

    python scripts/grade_lab.py lab01_naive_bayes      # = dgm-course grade lab01_naive_bayes
    python scripts/grade_lab.py lab01_naive_bayes --jobs 4 --student alice --force

Every option of ``dgm-course grade --help`` is accepted. See docs/grading.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    """Run ``dgm-course --course ROOT grade ARGV`` (exits with its status)."""
    from dgm_lab.cli import main as dgm_course

    dgm_course(["--course", str(ROOT), "grade", *(sys.argv[1:] if argv is None else argv)],
               prog_name="grade_lab.py")


if __name__ == "__main__":
    main()
