"""Sphinx extension of the course book (loaded through ``_config.yml``'s local_extensions).

What it adds to a plain Jupyter Book build, and why:

- **Offline math.** MathJax 3 is served from the book's own ``_static/mathjax/``, copied from
  the pinned PyPI package ``django-static-mathjax`` (a build of MathJax 3.2.2) that
  ``make setup`` installs. Only the one combined component the book uses (TeX input, all TeX
  packages, CommonHTML output) and its web fonts are copied; no page asks a CDN for anything.
- **Lab pages per edition.** The student edition shows each lab as released
  (``notebooks/``), with the outputs of a run of the solution under the locked demo cells, so
  a reader sees the expected figures and numbers; exercise and test cells keep no output, and
  no solution or hidden test reaches the HTML, its sources or its downloads. The instructor
  edition (``dgm_book_edition = "instructor"``) renders ``solutions/`` instead, with every
  output. Both read the executed solution from the same jupyter-cache as the chapters, so a
  lab runs once per change of its code.
- **Author-year reference list.** In-text citations read "Dempster et al., 1977"; the
  reference list labels each entry the same way (pybtex's default labels would be "DLR77").
- **One copy of each inline script.** Sphinx 7 registers the configuration snippets of
  sphinx-thebe and sphinx-togglebutton twice; the second ``const THEBE_JS_URL`` is a
  SyntaxError in every page's console.
- **Launch and download buttons.** Every notebook page offers its ``.ipynb``; Binder, Colab
  and JupyterHub buttons appear when the repository URL is known (``_config.yml``'s
  ``repository.url`` or the git remote ``origin``) and are left out otherwise, rather than
  pointing at Jupyter Book's own repository.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

EDITIONS = ("student", "instructor")
MATHJAX_VERSION = "3.2.2"
MATHJAX_COMPONENT = "tex-chtml-full.js"  # every TeX package inside: nothing loaded on demand
MATHJAX_DIR = "mathjax"  # under the output's _static/
EXPECTED_NOTE = """\
```{note}
**Expected results.** This page shows the lab as students receive it. The figures and
printed values under the demo cells come from a run of the reference solution, so you can
compare yours with them; exercise and test cells are shown without output. Download the
notebook with the button at the top of the page, or open `notebooks/{lab}/{lab}.ipynb` from
the course repository, to work on it.
```"""
INSTRUCTOR_NOTE = """\
```{warning}
**Instructor edition.** This page is the solution notebook `solutions/{lab}/{lab}.ipynb`,
hidden tests included, with the output of a full run. It is not part of the student book.
```"""
INSTRUCTOR_BANNER = ("Instructor edition: every lab is shown with its solution and hidden "
                     "tests. Do not publish; the student edition is built by "
                     "<code>python scripts/build_book.py</code>.")


# -- MathJax ----------------------------------------------------------------------------
def mathjax_source() -> Path:
    """Folder of the MathJax distribution shipped by the pinned PyPI package."""
    try:
        import mathjax  # the import name of django-static-mathjax
    except ImportError as error:
        raise ExtensionError(
            "the offline MathJax is missing: install the book's dependencies with "
            "`make setup` (or pip install -e '.[book]')") from error
    root = Path(mathjax.__file__).parent / "static" / "mathjax"
    version = json.loads((root / "package.json").read_text())["version"]
    if version != MATHJAX_VERSION:
        raise ExtensionError(f"MathJax {MATHJAX_VERSION} expected, the installed package "
                             f"ships {version}: run `make setup`")
    return root


def mathjax_files(root: Path) -> Iterator[tuple[Path, str]]:
    """(source, destination relative to _static/mathjax) of every file the book serves."""
    yield root / "es5" / MATHJAX_COMPONENT, MATHJAX_COMPONENT
    fonts = root / "es5" / "output" / "chtml" / "fonts" / "woff-v2"
    for font in sorted(fonts.glob("*.woff")):
        yield font, f"output/chtml/fonts/woff-v2/{font.name}"
    yield root / "LICENSE", "LICENSE"


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / MATHJAX_DIR
    for source, relative in mathjax_files(mathjax_source()):
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)


# -- configuration ----------------------------------------------------------------------
def github_url(remote: str) -> str | None:
    """``https://github.com/org/repo`` for a GitHub or GitLab remote URL (https or ssh)."""
    match = re.match(r"^(?:https://|git@|ssh://git@)(github\.com|gitlab\.com)[:/]"
                     r"([\w.-]+)/([\w.-]+?)(?:\.git)?/?$", remote.strip())
    return f"https://{match[1]}/{match[2]}/{match[3]}" if match else None


def origin_url(srcdir: Path) -> str | None:
    try:
        remote = subprocess.run(["git", "-C", str(srcdir), "remote", "get-url", "origin"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return github_url(remote.stdout) if remote.returncode == 0 else None


def configure(app: Sphinx, config: Config) -> None:
    if config.dgm_book_edition not in EDITIONS:
        raise ExtensionError(f"dgm_book_edition must be one of {EDITIONS}, "
                             f"not {config.dgm_book_edition!r}")
    config.mathjax_path = f"{MATHJAX_DIR}/{MATHJAX_COMPONENT}"
    options = config.html_theme_options
    if config.dgm_book_edition == "instructor":
        options["announcement"] = INSTRUCTOR_BANNER
    # Jupyter Book fills in its own repository when ours is empty; launch buttons would then
    # open Jupyter Book's notebooks. Use ours, or the git remote, or no launch buttons.
    url = options.get("repository_url", "")
    if not url or "executablebooks/jupyter-book" in url:
        url = origin_url(Path(app.srcdir)) or ""
        options["repository_url"] = url
    launch = options.get("launch_buttons", {})
    if not url:
        for key in ("binderhub_url", "colab_url", "jupyterhub_url", "deepnote_url"):
            launch.pop(key, None)
        logger.info("[dgm_book] no GitHub repository URL (repository.url in _config.yml or "
                    "git remote origin): the book has no Binder/Colab/JupyterHub buttons")
    elif "github.com" not in url:
        launch.pop("colab_url", None)  # Colab opens GitHub notebooks only


# -- lab pages --------------------------------------------------------------------------
def lab_of(app: Sphinx, docname: str) -> str | None:
    """The lab name when ``docname`` is a released lab with a solution next to it."""
    match = re.fullmatch(r"notebooks/(\w+)/(\w+)", docname)
    if match and match[1] == match[2] and solution_path(app, match[1]).exists():
        return match[1]
    return None


def solution_path(app: Sphinx, lab: str) -> Path:
    return Path(app.srcdir) / "solutions" / lab / f"{lab}.ipynb"


def cache_path(app: Sphinx) -> Path:
    """The chapters' jupyter-cache (myst-nb's rule), shared by both editions when set."""
    configured = app.config.nb_execution_cache_path
    return Path(configured) if configured else Path(app.outdir).parent / ".jupyter_cache"


def executed_solution(app: Sphinx, lab: str) -> nbformat.NotebookNode:
    """The solution notebook with the outputs of a run: from the cache, or run now."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from jupyter_cache.executors.utils import single_nb_execution

    path = solution_path(app, lab)
    notebook = nbformat.read(path, as_version=4)
    cache = get_cache(str(cache_path(app)))
    try:
        _, merged = cache.merge_match_into_notebook(notebook)
        logger.info(f"[dgm_book] {lab}: solution outputs from the cache")
        return merged
    except KeyError:
        pass
    logger.info(f"[dgm_book] {lab}: running the solution notebook")
    result = single_nb_execution(notebook, cwd=str(path.parent), allow_errors=False,
                                 timeout=app.config.nb_execution_timeout, meta_override=True)
    if result.err is not None:
        raise ExtensionError(f"the solution of {lab} failed to run:\n{result.exc_string}")
    cache.cache_notebook_bundle(CacheBundleIn(notebook, str(path),
                                              data={"execution_seconds": result.time}),
                                check_validity=False, overwrite=True)
    return notebook


def note_cell(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text)


def insert_after_title(notebook: nbformat.NotebookNode, cell: nbformat.NotebookNode) -> None:
    notebook.cells.insert(1 if notebook.cells else 0, cell)


def student_page(student: nbformat.NotebookNode,
                 solution: nbformat.NotebookNode, lab: str) -> nbformat.NotebookNode:
    """The released notebook with the solution run's outputs under its locked demo cells.

    A demo cell is a code cell that nbgrader neither grades nor asks to be written; its output
    is shown only when its source is exactly the solution's, so nothing the student version
    does not contain can appear.
    """
    page = copy.deepcopy(student)
    reference = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in solution.cells}
    for cell in page.cells:
        if cell.cell_type != "code":
            continue
        grader = cell.metadata.get("nbgrader", {})
        ran = reference.get(grader.get("grade_id"))
        if (grader.get("solution") or grader.get("grade") or ran is None
                or ran.source != cell.source):
            cell.outputs, cell.execution_count = [], None
        else:
            cell.outputs, cell.execution_count = ran.outputs, ran.execution_count
    insert_after_title(page, note_cell(EXPECTED_NOTE.replace("{lab}", lab)))
    return page


def render_lab(app: Sphinx, docname: str, source: list[str]) -> None:
    lab = lab_of(app, docname)
    if lab is None:
        return
    app.env.note_dependency(str(solution_path(app, lab)))
    solution = executed_solution(app, lab)
    if app.config.dgm_book_edition == "instructor":
        page = solution
        insert_after_title(page, note_cell(INSTRUCTOR_NOTE.replace("{lab}", lab)))
    else:
        page = student_page(nbformat.reads(source[0], as_version=4), solution, lab)
    source[0] = nbformat.writes(page)


def copy_instructor_sources(app: Sphinx, exception: Exception | None) -> None:
    """The instructor edition's download of a lab is its solution notebook."""
    if exception is not None or app.config.dgm_book_edition != "instructor":
        return
    for docname in app.env.found_docs:
        lab = lab_of(app, docname)
        target = Path(app.outdir) / "_sources" / f"{docname}.ipynb"
        if lab is not None and target.parent.exists():
            shutil.copyfile(solution_path(app, lab), target)


# -- page context -----------------------------------------------------------------------
def offer_notebook_download(app: Sphinx, pagename: str, templatename: str,
                            context: dict[str, Any], doctree: Any) -> None:
    """Every executed MyST page gets an .ipynb download (the theme does it only when launch
    buttons are configured)."""
    if not str(context.get("sourcename", "")).endswith(".md"):
        return
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if executed.exists():
        target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(executed, target)
        context["ipynb_source"] = f"{pagename}.ipynb"


def deduplicate_scripts(app: Sphinx, pagename: str, templatename: str,
                        context: dict[str, Any], doctree: Any) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {})
        key = (getattr(script, "filename", str(script)) or "",
               tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


# -- author-year reference list ---------------------------------------------------------
def author_year_label(entry: Any) -> str:
    """"Bishop, 2006", "Ng and Jordan, 2002", "Dempster et al., 1977": the text that
    sphinxcontrib-bibtex's author_year style writes for a parenthetical citation."""
    from pybtex.richtext import Text

    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [Text.from_latex(" ".join(p.prelast_names + p.last_names)).render_as("text")
             for p in persons]
    if len(names) >= 3 or (len(names) == 2 and names[1] == "others"):
        authors = f"{names[0]} et al."
    else:
        authors = " and ".join(names)
    return f"{authors}, {entry.fields.get('year', 'n.d.')}"


def register_bibliography_style() -> None:
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.unsrt import Style as UnsrtStyle
    from pybtex.style.labels import BaseLabelStyle
    from pybtex.style.sorting.author_year_title import SortingStyle

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries: list) -> Iterator[str]:
            labels = [author_year_label(entry) for entry in sorted_entries]
            repeated = {label for label, count in Counter(labels).items() if count > 1}
            seen: Counter = Counter()
            for label in labels:
                if label in repeated:  # "Smith, 2020a", "Smith, 2020b"
                    seen[label] += 1
                    label = f"{label}{'abcdefghijklmnopqrstuvwxyz'[seen[label] - 1]}"
                yield label

    class AuthorYearStyle(UnsrtStyle):
        default_label_style = AuthorYearLabels
        default_sorting_style = SortingStyle

    register_plugin("pybtex.style.formatting", "dgm_author_year", AuthorYearStyle, force=True)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("dgm_book_edition", "student", "env", types=[str])
    register_bibliography_style()
    app.connect("config-inited", configure)
    app.connect("source-read", render_lab)
    app.connect("html-page-context", offer_notebook_download, priority=400)
    app.connect("html-page-context", deduplicate_scripts, priority=900)
    app.connect("build-finished", copy_mathjax)
    app.connect("build-finished", copy_instructor_sources)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
