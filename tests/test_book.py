"""The book builds offline with Sphinx warnings as errors, and shows no instructor material."""

import re
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    """Build into a temporary folder (cold cache: every page executes, as in CI)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_book", ROOT / "scripts" / "build_book.py")
    build_book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_book)
    out = tmp_path_factory.mktemp("book")
    status = build_book.build(strict=True, path_output=out)
    assert status == 0, "jupyter-book build failed (warnings are errors); see the log above"
    yield out / "_build" / "html"
    shutil.rmtree(out, ignore_errors=True)


def test_every_toc_entry_exists():
    for name in toc_files():
        candidates = [ROOT / f"{name}{ext}" for ext in (".md", ".ipynb")]
        assert any(c.exists() for c in candidates), f"{name} is in _toc.yml but has no file"


def test_book_builds_every_page(html):
    for name in toc_files():
        assert (html / f"{name}.html").exists(), f"{name}.html missing from the build"


def test_book_never_shows_solutions_or_hidden_tests(html):
    assert not (html / "solutions").exists()
    for page in html.rglob("*.html"):
        text = page.read_text(errors="replace")
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "HIDDEN TESTS"):
            assert marker not in text, f"{page.relative_to(html)} shows {marker!r}"
    for source in html.rglob("_sources/**/*"):
        assert "solutions" not in source.parts


def test_each_chapter_links_its_lab_and_has_figures(html):
    chapters = [n for n in toc_files() if re.match(r"book/ch(0[1-9]|1\d)_", n)]
    assert chapters, "no numbered chapters in _toc.yml"
    for name in chapters:
        number = re.search(r"ch(\d\d)_", name).group(1)
        text = (html / f"{name}.html").read_text()
        assert re.search(rf'href="[^"]*notebooks/lab{number}_[^"]+\.html', text), (
            f"{name} does not link its lab")
        assert text.count("<img") >= 2, f"{name} shows fewer than two figures"
        assert "Traceback" not in text, f"{name} shows a traceback"
        assert "output stderr" not in text, f"{name} shows warnings or errors (stderr output)"


def test_citations_resolve_to_the_references_page(html):
    text = (html / "book" / "references.html").read_text()
    assert "Ng" in text and "Jordan" in text
    assert "Dempster" in text
