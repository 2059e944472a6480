"""Build the course book: student and instructor editions, a PDF, and publishing.

    python scripts/build_book.py                 # student edition  -> _build/html
    python scripts/build_book.py --instructor    # instructor edition (every lab's solution)
                                                 #                  -> _build/instructor/html
    python scripts/build_book.py --pdf           # student edition as one PDF -> _build/pdf/
    python scripts/build_book.py --publish       # push _build/html to the gh-pages branch
    python scripts/build_book.py --strict        # Sphinx warnings are errors (what the tests use)
    python scripts/build_book.py --all           # rebuild every page (the execution cache is kept)

Narrative pages and lab solutions execute at build time through one jupyter-cache in
_build/.jupyter_cache, shared by both editions, so a page is re-run only when its code
changes. The build needs no network: MathJax is served from the book's own _static folder
(see _ext/dgm_book.py). The student edition never contains a solution or a hidden test;
``publish`` refuses a folder that is not a student edition.

The PDF is printed by headless Chromium (Debian's ``chromium``) from a single-page build of
the student edition, so formulas are typeset by the same MathJax as on the web.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EDITIONS = {"student": Path("html"), "instructor": Path("instructor") / "html"}
SINGLEHTML = Path("pdf") / "singlehtml"
PDF_NAME = "dgm-course.pdf"
EDITION_MARK = ".edition"  # a file in the output folder naming its edition

# Runs in a fresh interpreter per build: Sphinx, docutils and the notebook extensions keep
# global state, and the kernel must not inherit a non-interactive MPLBACKEND (see build()).
_SPHINX = """
import json, sys
from jupyter_book.sphinx import build_sphinx
args = json.loads(sys.argv[1])
sys.exit(build_sphinx(args["src"], args["out"], path_config=args["config"], noconfig=True,
                      doctreedir=args["doctrees"], confoverrides=args["overrides"],
                      builder=args["builder"], warningiserror=args["strict"],
                      keep_going=args["strict"], freshenv=args["all"]))
"""


def output_dir(edition: str = "student", path_output: Path = ROOT) -> Path:
    """Where ``build(edition, path_output=...)`` writes its HTML."""
    return Path(path_output) / "_build" / EDITIONS[edition]


def build(strict: bool = False, rebuild_all: bool = False, path_output: Path = ROOT,
          edition: str = "student", builder: str = "html") -> int:
    """Build one edition of the book with Jupyter Book's Sphinx; returns the exit code.

    Arguments:
        strict: Sphinx warnings (and nitpicky missing references) are errors.
        rebuild_all: re-read every page (executed notebooks still come from the cache).
        path_output: the folder that receives ``_build/`` (the repository by default).
        edition: ``"student"`` (no solutions anywhere) or ``"instructor"``.
        builder: ``"html"``, or ``"singlehtml"`` (the one page the PDF is printed from;
            student edition only, into ``_build/pdf/singlehtml``).
    """
    if edition not in EDITIONS:
        raise ValueError(f"edition must be one of {sorted(EDITIONS)}, not {edition!r}")
    if builder not in ("html", "singlehtml"):
        raise ValueError(f"builder must be 'html' or 'singlehtml', not {builder!r}")
    build_dir = Path(path_output).resolve() / "_build"
    if builder == "singlehtml":
        if edition != "student":
            raise ValueError("the PDF is made of the student edition only")
        out = build_dir / SINGLEHTML
    else:
        out = build_dir / EDITIONS[edition]
    overrides = {
        "external_toc_path": str(ROOT / "_toc.yml"),
        "latex_individualpages": False,  # what the jupyter-book command line passes
        "dgm_book_edition": edition,
        # one execution cache for both editions: the instructor build re-runs nothing
        "nb_execution_cache_path": str(build_dir / ".jupyter_cache"),
    }
    if strict:
        overrides["nitpicky"] = True
    args = {"src": str(ROOT), "out": str(out), "config": str(ROOT / "_config.yml"),
            "doctrees": str(out.parent / f".doctrees-{out.name}"), "overrides": overrides,
            "builder": builder, "strict": strict, "all": rebuild_all}
    # Pages draw their figures through the notebook's inline backend: a non-interactive
    # MPLBACKEND (as CI shells often set) would make every figure silently vanish.
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    status = subprocess.call([sys.executable, "-c", _SPHINX, json.dumps(args)], cwd=ROOT,
                             env=env)
    if status == 0:
        (out / EDITION_MARK).write_text(edition + "\n")
    return status


# -- PDF ------------------------------------------------------------------------------------
FIT_WIDE_FORMULAS = """
(() => {
  // the part of a formula that sticks out of the first box that clips or scrolls it
  const excess = m => {
    if (m.getAttribute("display") === "true") {  // scrolls inside itself on screen
      return m.scrollWidth > m.clientWidth + 1 ? m.clientWidth : 0;
    }
    for (let box = m.parentElement; box && box !== document.body; box = box.parentElement) {
      if (getComputedStyle(box).overflowX !== "visible") {
        const room = box.getBoundingClientRect().right - m.getBoundingClientRect().left;
        return m.getBoundingClientRect().width > room + 1 ? room : 0;
      }
    }
    return 0;
  };
  for (const m of document.querySelectorAll("mjx-container")) {
    const room = excess(m);
    const width = Math.max(m.scrollWidth, m.getBoundingClientRect().width);
    if (room > 0) m.style.zoom = Math.max(0.4, (room - 2) / width);
  }
  return [...document.querySelectorAll("mjx-container")].filter(m => excess(m) > 0).length;
})()
"""


def build_pdf(path_output: Path = ROOT, strict: bool = False) -> Path:
    """Build the student edition as one HTML page and print it to ``_build/pdf/``.

    Returns the PDF's path. Needs Debian's ``chromium`` (or ``$CHROMIUM``); no network.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from headless_chromium import Chromium, serve

    status = build(strict=strict, path_output=path_output, builder="singlehtml")
    if status != 0:
        raise RuntimeError(f"the single-page build failed (exit code {status})")
    single = Path(path_output).resolve() / "_build" / SINGLEHTML
    # The single page is named after the root document (book/intro.html) but its links are
    # written for the output's top folder, where index.html only redirects: put it there.
    root_doc = yaml.safe_load((ROOT / "_toc.yml").read_text())["root"]
    shutil.copyfile(single / f"{root_doc}.html", single / "index.html")
    # the theme's page template loads the search index, which a single page does not have
    (single / "searchindex.js").write_text("// no search in the single-page (PDF) build\n")
    pdf = single.parent / PDF_NAME
    footer = ('<div style="font-size:8px;width:100%;text-align:center;color:#555">'
              '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')
    with serve(single) as base, Chromium(timeout=300) as browser:
        # the window as wide as the printed column (A4 less two 0.6 in margins, at 96 px/in),
        # so that the layout measured below is the one printed
        page = browser.new_page(width=int((8.27 - 2 * 0.6) * 96), height=1400)
        page.goto(f"{base}index.html", timeout=300)
        problems = list(page.errors)
        if problems:
            raise RuntimeError("the single-page book has errors in the browser:\n"
                               + "\n".join(problems))
        # Paper cannot scroll: print media first, then shrink each formula wider than its
        # column to fit (on screen such a formula scrolls instead).
        page.send("Emulation.setEmulatedMedia", {"media": "print"})
        still_wide = page.evaluate(FIT_WIDE_FORMULAS)
        if still_wide:
            raise RuntimeError(f"{still_wide} formulas do not fit the printed page")
        page.print_pdf(pdf, displayHeaderFooter=True, headerTemplate="<span></span>",
                       footerTemplate=footer, generateDocumentOutline=True,
                       generateTaggedPDF=True)
    return pdf


# -- publishing ----------------------------------------------------------------------------
def publish(html: Path | None = None, remote: str = "origin", branch: str = "gh-pages",
            push: bool = True, message: str | None = None, repo: Path = ROOT) -> None:
    """Commit the student edition to ``branch`` with ghp-import and push it to ``remote``.

    Arguments:
        html: the built student edition (default ``_build/html``); an instructor edition,
            or a folder that is not a complete build, is refused.
        remote: git remote name (or URL) to push to.
        branch: the branch GitHub Pages serves; its previous content is replaced.
        push: commit only, without pushing, when False.
        message: commit message (default: "Publish the book" and the source commit).
        repo: the git repository that receives ``branch`` (the course repository).

    Example:
        >>> publish(remote="origin")  # doctest: +SKIP  (then enable Pages on gh-pages)
    """
    html = Path(html) if html is not None else output_dir("student")
    mark = html / EDITION_MARK
    if not (html / "index.html").exists() or not mark.exists():
        raise FileNotFoundError(f"{html} holds no finished book build: run "
                                "`python scripts/build_book.py` first")
    if mark.read_text().strip() != "student":
        raise ValueError(f"{html} is the {mark.read_text().strip()} edition; only the student "
                         "edition may be published")
    if message is None:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo,
                              capture_output=True, text=True)
        message = "Publish the book" + (f" from {head.stdout.strip()}" if head.stdout else "")
    # -n: .nojekyll, so GitHub Pages serves _static/ and _sources/ (Jekyll drops _folders)
    cmd = [sys.executable, "-m", "ghp_import", "-n", "-f", "-b", branch, "-r", remote,
           "-m", message]
    if push:
        cmd.append("-p")
    subprocess.run([*cmd, str(Path(html).resolve())], cwd=repo, check=True)


# -- command line --------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--instructor", action="store_true",
                      help="build the instructor edition (labs with solutions and outputs)")
    what.add_argument("--pdf", action="store_true", help="build the student edition as a PDF")
    what.add_argument("--publish", action="store_true",
                      help="push the built student edition to the gh-pages branch")
    parser.add_argument("--strict", action="store_true", help="treat Sphinx warnings as errors")
    parser.add_argument("--all", action="store_true", help="rebuild every page")
    parser.add_argument("--remote", default="origin", help="git remote for --publish")
    parser.add_argument("--branch", default="gh-pages", help="branch for --publish")
    args = parser.parse_args()
    if args.publish:
        publish(remote=args.remote, branch=args.branch)
        print(f"Published {output_dir('student')} to {args.remote}/{args.branch}.")
        return
    if args.pdf:
        start = time.perf_counter()
        pdf = build_pdf(strict=args.strict)
        print(f"\nThe PDF is built in {time.perf_counter() - start:.0f} s:\n    {pdf}")
        return
    edition = "instructor" if args.instructor else "student"
    status = build(strict=args.strict, rebuild_all=args.all, edition=edition)
    if status == 0:
        index = output_dir(edition) / "index.html"
        print(f"\nThe {edition} edition is built. Open it in a browser:\n    {index.as_uri()}\n"
              f"or serve it:  python -m http.server -d {index.parent} 8000")
    sys.exit(status)


if __name__ == "__main__":
    main()
