"""Grade each lab's own solution on many seeds of its hidden cases, to find tolerances that fail
a right answer now and then.

The grader draws fresh cases for every grading, so a float32 case whose tolerance a right answer
misses once in a few hundred draws costs real students points (and failed CI once). The test
suite grades every solution on 25 seeds; run this with a few thousand when you write or change
a lab's hidden checks (docs/grading.md, "Float32 gradients need float32-aware tolerances"):

    python scripts/check_tolerances.py lab09_flows --seeds 3000
    python scripts/check_tolerances.py --every --seeds 1000 --only coupling_forward

Each case is judged as the grader judges what comes back from the sandbox (value, gradient,
inputs unchanged), in this process: the solution is the course's own code. Prints one line per
exercise and every failing seed with its case and message; exits with 1 if any seed failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import torch

from dgm_lab.grading import LabSource, judge_in_process, solution_namespace

ROOT = Path(__file__).resolve().parents[1]


def failures(folder: Path, seeds: Iterable[int],
             only: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    """``{function: [(seed, case label, message), ...]}`` of the solution on ``seeds``, for every
    exercise (or those named in ``only``)."""
    lab, namespace = LabSource.load(folder).lab, solution_namespace(folder)
    out: dict[str, list[tuple]] = {}
    for exercise in lab.exercises:
        if only and exercise.function not in only:
            continue
        out[exercise.function] = [
            (seed, case.label, case.message) for seed in seeds
            for case in judge_in_process(lab, exercise.function, namespace[exercise.function],
                                         seed)
            if not case.passed]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("labs", nargs="*", help="lab names (folders of solutions/)")
    parser.add_argument("--every", action="store_true", help="every lab in solutions/")
    parser.add_argument("--seeds", type=int, default=1000, help="seeds 0 .. N-1 (default 1000)")
    parser.add_argument("--only", action="append", default=[], metavar="FUNCTION",
                        help="only this exercise's function (repeat for several)")
    args = parser.parse_args(argv)
    labs = (sorted(p.name for p in (ROOT / "solutions").iterdir()
                   if (p / "hidden_checks.py").is_file()) if args.every else args.labs)
    if not labs:
        parser.error("name a lab, or give --every")
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    known = set()
    for lab in labs:
        folder = ROOT / "solutions" / lab
        if not (folder / "hidden_checks.py").is_file():
            parser.error(f"no lab {lab!r}: {folder} has no hidden_checks.py")
        known |= {ex.function for ex in LabSource.load(folder).lab.exercises}
    for function in sorted(set(args.only) - known):
        parser.error(f"--only: no exercise {function!r} in {', '.join(labs)}")
    torch.set_num_threads(1)
    failed = False
    for lab in labs:
        folder = ROOT / "solutions" / lab
        start = time.perf_counter()
        for function, bad in failures(folder, range(args.seeds), tuple(args.only)).items():
            print(f"{lab} {function}: {len(bad)} failing case(s) in {args.seeds} seeds")
            for seed, label, message in bad:
                print(f"    seed {seed}, case {label}: {message}")
            failed |= bool(bad)
        print(f"{lab}: {time.perf_counter() - start:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
