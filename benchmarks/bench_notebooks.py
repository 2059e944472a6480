"""Execution time of every narrative page and every lab (solution version).

    python benchmarks/bench_notebooks.py

Budget (docs/design.md): each page and each lab executes in <= 60 s on a 2-core CPU with no GPU.
Pages are MyST Markdown notebooks (read with jupytext); labs are the nbgrader sources in
solutions/. Each runs in a fresh kernel, as the book build and the grader do; the time
includes the kernel start.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 60.0


def notebooks() -> list[Path]:
    pages = sorted(p for p in (ROOT / "book").glob("*.md") if "kernelspec" in p.read_text())
    labs = sorted((ROOT / "solutions").glob("*/*.ipynb"))
    return pages + labs


def execute(path: Path) -> float:
    nb = jupytext.read(path) if path.suffix == ".md" else nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def main() -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    print(f"{'notebook':<68} {'seconds':>8}  budget {BUDGET_S:.0f} s")
    worst = 0.0
    for path in notebooks():
        seconds = execute(path)
        worst = max(worst, seconds)
        flag = "" if seconds <= BUDGET_S else "  OVER BUDGET"
        print(f"{str(path.relative_to(ROOT)):<68} {seconds:8.1f}{flag}", flush=True)
    print(f"slowest: {worst:.1f} s")


if __name__ == "__main__":
    main()
