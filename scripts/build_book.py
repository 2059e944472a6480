"""Build the book into _build/html and print where to open it.

    python scripts/build_book.py            # incremental; executed pages are cached
    python scripts/build_book.py --strict   # Sphinx warnings are errors (what the tests use)
    python scripts/build_book.py --all      # rebuild every page (the execution cache is kept)

Narrative pages execute at build time through the jupyter-cache in _build/.jupyter_cache,
so a page is re-run only when its code changes. The build needs no network.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(strict: bool = False, rebuild_all: bool = False, path_output: Path = ROOT) -> int:
    """Run ``jupyter-book build`` on the repository root; returns its exit code."""
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
           "build", str(ROOT), "--path-output", str(path_output)]
    if strict:
        cmd += ["--warningiserror", "--nitpick", "--keep-going"]
    if rebuild_all:
        cmd.append("--all")
    # Pages draw their figures through the notebook's inline backend: a non-interactive
    # MPLBACKEND (as CI shells often set) would make every figure silently vanish.
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    return subprocess.call(cmd, cwd=ROOT, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", help="treat Sphinx warnings as errors")
    parser.add_argument("--all", action="store_true", help="rebuild every page")
    args = parser.parse_args()
    status = build(strict=args.strict, rebuild_all=args.all)
    if status == 0:
        index = ROOT / "_build" / "html" / "index.html"
        print(f"\nThe book is built. Open it in a browser:\n    {index.as_uri()}\n"
              f"or serve it:  python -m http.server -d {index.parent} 8000")
    sys.exit(status)


if __name__ == "__main__":
    main()
