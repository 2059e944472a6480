"""The book builds offline with Sphinx warnings as errors, in a student edition that shows no
instructor material and an instructor edition that renders every lab's solution; it serves
its own MathJax, offers every notebook for download, and publishes to a gh-pages branch.

What a reader sees in a real browser is checked in tests/test_browser.py.
"""

import importlib.util
import json
import re
import subprocess
from types import SimpleNamespace

import nbformat
import pytest
import yaml
from book_build import ROOT, built_book, load_script
from bs4 import BeautifulSoup

pytestmark = pytest.mark.slow
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def labs():
    return sorted(p.parent.name for p in (ROOT / "solutions").glob("*/*.ipynb"))


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    return built_book(tmp_path_factory)


@pytest.fixture(scope="module")
def html(book):
    return book.student


# -- what a solution is -------------------------------------------------------------------
def normalise(text):
    return " ".join(text.split())


def instructor_only_lines(lab):
    """Lines of the solution notebook's solutions and hidden tests that neither the released
    notebook nor a chapter page shows (long enough to be unmistakable)."""
    released = nbformat.read(ROOT / "notebooks" / lab / f"{lab}.ipynb", as_version=4)
    pages = "\n".join(p.read_text() for p in sorted((ROOT / "book").glob("ch*.md")))
    released_text = normalise("\n".join(c.source for c in released.cells) + "\n" + pages)
    solution = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    lines, inside = set(), False
    for cell in solution.cells:
        for line in cell.source.splitlines():
            if re.search(r"BEGIN (SOLUTION|HIDDEN TESTS)", line):
                inside = True
            elif re.search(r"END (SOLUTION|HIDDEN TESTS)", line):
                inside = False
            elif inside and len(line.strip()) >= 16 and normalise(line) not in released_text:
                lines.add(normalise(line))
    return lines


def visible_text(path):
    """What a file shows or hands out: the text of an HTML page (code highlighting splits
    code into spans, so raw HTML would hide a leak), the sources and outputs of a notebook,
    any other file as it is."""
    raw = path.read_text(errors="replace")
    if path.suffix == ".html":
        return normalise(BeautifulSoup(raw, "html.parser").get_text(" "))
    if path.suffix == ".ipynb":
        notebook = json.loads(raw)
        parts = ["".join(cell.get("source", "")) for cell in notebook.get("cells", [])]
        parts += [json.dumps(cell.get("outputs", [])) for cell in notebook.get("cells", [])]
        return normalise("\n".join(parts))
    return normalise(raw)


def text_files(tree):
    suffixes = {".html", ".ipynb", ".md", ".txt", ".js", ".json", ".py"}
    return [p for p in tree.rglob("*") if p.is_file() and p.suffix in suffixes]


def found_lines(tree, lines):
    texts = [visible_text(p) for p in text_files(tree)]
    return {line for line in lines if any(line in text for text in texts)}


# -- tests ----------------------------------------------------------------------------------
def test_every_toc_entry_exists():
    for name in toc_files():
        candidates = [ROOT / f"{name}{ext}" for ext in (".md", ".ipynb")]
        assert any(c.exists() for c in candidates), f"{name} is in _toc.yml but has no file"


def test_both_editions_build_every_page(book):
    for tree in (book.student, book.instructor):
        for name in toc_files():
            assert (tree / f"{name}.html").exists(), f"{name}.html missing from {tree}"
    assert (book.student / ".edition").read_text().strip() == "student"
    assert (book.instructor / ".edition").read_text().strip() == "instructor"


def test_student_edition_holds_no_solution_and_no_hidden_test(book):
    assert labs(), "no lab in solutions/"
    for lab in labs():
        lines = instructor_only_lines(lab)
        assert len(lines) >= 10, f"{lab}: too few solution lines to check"
        leaked = found_lines(book.student, lines)
        assert not leaked, f"{lab}: the student edition shows solution lines {sorted(leaked)[:5]}"
        # the same search finds them in the instructor edition: it would see a leak
        shown = found_lines(book.instructor, lines)
        assert len(shown) >= 0.9 * len(lines), f"{lab}: instructor edition lacks its solution"
    for path in text_files(book.student):
        text = path.read_text(errors="replace")
        for marker in MARKERS:
            assert marker not in text, f"{path.relative_to(book.student)} shows {marker!r}"
    # no file from solutions/ (notebook, data or hidden-check file) is copied anywhere
    solution_files = {p.name for p in (ROOT / "solutions").rglob("*") if p.is_file()}
    released = {p.name for p in (ROOT / "notebooks").rglob("*") if p.is_file()}
    for path in book.student.rglob("*"):
        assert "solutions" not in path.relative_to(book.student).parts
        assert path.name not in solution_files - released, f"{path} comes from solutions/"


def test_student_labs_show_expected_outputs_but_exercises_stay_blank(html):
    for lab in labs():
        soup = BeautifulSoup((html / "notebooks" / lab / f"{lab}.html").read_text(),
                             "html.parser")
        assert "Expected results" in soup.get_text()
        cells = soup.select("div.cell")
        stubs = [c for c in cells if "NotImplementedError" in c.get_text()]
        assert stubs, f"{lab}: no exercise stub on the page"
        for cell in stubs:
            assert not cell.select("div.cell_output"), f"{lab}: an exercise cell has output"
        outputs = [c for c in cells if c.select("div.cell_output")]
        assert outputs, f"{lab}: the page shows no output at all"
        assert any(c.select("div.cell_output img") for c in outputs), f"{lab}: no figure"
        assert "Traceback" not in soup.get_text()


def test_instructor_edition_renders_every_solution_with_outputs(book):
    for lab in labs():
        page = book.instructor / "notebooks" / lab / f"{lab}.html"
        soup = BeautifulSoup(page.read_text(), "html.parser")
        text = soup.get_text()
        assert "BEGIN SOLUTION" in text  # the hidden checks live outside the notebook
        code = [c.get_text() for c in soup.select("div.cell_input")]
        assert code and not any("raise NotImplementedError" in c for c in code)
        assert soup.select("div.cell_output img"), f"{lab}: the solution run drew nothing"
        assert "Traceback" not in text
        download = book.instructor / "_sources" / "notebooks" / lab / f"{lab}.ipynb"
        assert download.read_bytes() == (ROOT / "solutions" / lab / f"{lab}.ipynb").read_bytes()
    for page in book.instructor.rglob("*.html"):
        text = page.read_text()
        if page.parent.name != "_static" and "<body" in text:  # not the redirect index.html
            assert "Instructor edition" in text, f"{page} lacks the banner"


def test_each_chapter_links_its_lab_and_has_figures(html):
    chapters = [n for n in toc_files() if re.match(r"book/ch(0[1-9]|1\d)_", n)]
    assert chapters, "no numbered chapters in _toc.yml"
    for name in chapters:
        number = re.search(r"ch(\d\d)_", name).group(1)
        text = (html / f"{name}.html").read_text()
        if list((ROOT / "solutions").glob(f"lab{number}_*")):  # (a chapter may precede its lab)
            assert re.search(rf'href="[^"]*notebooks/lab{number}_[^"]+\.html', text), (
                f"{name} does not link its lab")
        assert text.count("<img") >= 2, f"{name} shows fewer than two figures"
        assert "Traceback" not in text, f"{name} shows a traceback"
        assert "output stderr" not in text, f"{name} shows warnings or errors (stderr output)"


def test_pages_load_nothing_from_another_host(book):
    """Static half of the offline check (the browser test watches the requests)."""
    for tree in (book.student, book.instructor):
        for page in tree.rglob("*.html"):
            soup = BeautifulSoup(page.read_text(), "html.parser")
            for tag, attribute in (("script", "src"), ("link", "href"), ("img", "src"),
                                   ("iframe", "src")):
                for element in soup.find_all(tag):
                    url = element.get(attribute) or ""
                    if tag == "link" and "stylesheet" not in element.get("rel", []) \
                            and "preload" not in element.get("rel", []):
                        continue
                    assert not re.match(r"^(https?:)?//", url), f"{page.name} loads {url}"
        for sheet in (tree / "_static").rglob("*.css"):
            for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", sheet.read_text(errors="ignore")):
                assert not re.match(r"^(https?:)?//", url), f"{sheet.name} loads {url}"


def test_mathjax_is_served_with_the_book(html):
    mathjax = html / "_static" / "mathjax"
    assert (mathjax / "tex-chtml-full.js").stat().st_size > 500_000
    fonts = list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert len(fonts) >= 20
    size = sum(p.stat().st_size for p in mathjax.rglob("*") if p.is_file())
    print(f"\noffline MathJax bundle: {size / 1e6:.2f} MB in {len(list(mathjax.rglob('*.*')))} "
          "files")
    chapter = (html / "book" / "ch02_density_estimation.html").read_text()
    assert 'src="../_static/mathjax/tex-chtml-full.js' in chapter


def test_every_notebook_page_offers_its_ipynb(html):
    for name in toc_files():
        source = ROOT / f"{name}.md"
        is_notebook = (ROOT / f"{name}.ipynb").exists() or (
            source.exists() and "kernelspec:" in source.read_text()[:500])
        if not is_notebook:
            continue
        page = (html / f"{name}.html").read_text()
        link = f"_sources/{name}.ipynb"
        assert link in page, f"{name}.html has no .ipynb download"
        notebook = nbformat.read(html / link, as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert code, f"{link} has no code"
        if source.exists():  # a chapter: the download is the executed notebook
            assert any(c.outputs for c in code), f"{link} has no outputs"


def test_reference_list_uses_the_labels_of_the_text(html):
    soup = BeautifulSoup((html / "book" / "references.html").read_text(), "html.parser")
    lists = [[normalise(c.select_one("span.label").get_text()).strip("[] ")
              for c in group.select("div.citation")]
             for group in soup.select("div.citation-list")
             if group.select("div.citation")]
    labels = [label for group in lists for label in group]
    assert "Dempster et al., 1977" in labels
    assert "Ng and Jordan, 2002" in labels
    assert "Bishop, 2006" in labels
    assert len(labels) == len(set(labels)), "two entries share a label"
    for group in lists:  # each list is sorted by first author
        surnames = [label.split()[0].strip(",").lower() for label in group]
        assert surnames == sorted(surnames), group
    keys = re.findall(r"^@\w+\{(\w+),", (ROOT / "book" / "references.bib").read_text(), re.M)
    assert len(labels) == len(keys), "every entry of references.bib is listed once"


# -- launch buttons ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def extension():
    spec = importlib.util.spec_from_file_location("dgm_book", ROOT / "_ext" / "dgm_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("remote, url", [
    ("https://github.com/org/dgm-course.git", "https://github.com/org/dgm-course"),
    ("git@github.com:org/dgm-course.git\n", "https://github.com/org/dgm-course"),
    ("ssh://git@gitlab.com/org/dgm-course", "https://gitlab.com/org/dgm-course"),
    ("/srv/git/dgm-course.git", None),
    ("https://example.org/org/dgm-course.git", None),
])
def test_repository_url_from_a_git_remote(extension, remote, url):
    assert extension.github_url(remote) == url


def launch_config(extension, tmp_path, repository_url, edition="student"):
    config = SimpleNamespace(
        dgm_book_edition=edition, mathjax_path="https://cdn.example/mathjax.js",
        html_theme_options={"repository_url": repository_url, "launch_buttons": {
            "binderhub_url": "https://mybinder.org", "notebook_interface": "jupyterlab",
            "colab_url": "https://colab.research.google.com",
            "jupyterhub_url": "https://hub.example.edu"}})
    extension.configure(SimpleNamespace(srcdir=str(tmp_path)), config)  # tmp: no git remote
    return config


def test_launch_buttons_need_the_course_repository(extension, tmp_path):
    config = launch_config(extension, tmp_path, "https://github.com/org/dgm-course")
    assert set(config.html_theme_options["launch_buttons"]) == {
        "binderhub_url", "colab_url", "jupyterhub_url", "notebook_interface"}
    assert config.mathjax_path == "mathjax/tex-chtml-full.js"
    # Jupyter Book's default repository would open its own notebooks: no launch buttons
    config = launch_config(extension, tmp_path, "https://github.com/executablebooks/jupyter-book")
    assert config.html_theme_options["launch_buttons"] == {"notebook_interface": "jupyterlab"}
    config = launch_config(extension, tmp_path, "https://gitlab.com/org/dgm-course")
    assert "colab_url" not in config.html_theme_options["launch_buttons"]
    assert "binderhub_url" in config.html_theme_options["launch_buttons"]
    with pytest.raises(Exception, match="dgm_book_edition"):
        launch_config(extension, tmp_path, "", edition="teacher")
    config = launch_config(extension, tmp_path, "", edition="instructor")
    assert "Instructor edition" in config.html_theme_options["announcement"]


def test_build_rejects_an_unknown_edition_or_builder():
    build_book = load_script("build_book")
    with pytest.raises(ValueError, match="edition"):
        build_book.build(edition="teacher")
    with pytest.raises(ValueError, match="builder"):
        build_book.build(builder="latex")
    with pytest.raises(ValueError, match="student"):
        build_book.build(edition="instructor", builder="singlehtml")


# -- publishing -------------------------------------------------------------------------------
def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def course_repo(tmp_path, monkeypatch):
    """A course repository whose `origin` is a local bare repository."""
    for key, value in (("GIT_AUTHOR_NAME", "Test"), ("GIT_AUTHOR_EMAIL", "test@localhost"),
                       ("GIT_COMMITTER_NAME", "Test"), ("GIT_COMMITTER_EMAIL", "test@localhost")):
        monkeypatch.setenv(key, value)
    bare = tmp_path / "origin.git"
    git("init", "--bare", "-q", str(bare), cwd=tmp_path)
    repo = tmp_path / "course"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "README.md").write_text("course\n")
    git("add", "README.md", cwd=repo)
    git("commit", "-q", "-m", "start", cwd=repo)
    git("remote", "add", "origin", str(bare), cwd=repo)
    return repo, bare


def fake_build(folder, edition):
    (folder / "_static").mkdir(parents=True)
    (folder / "index.html").write_text("<html>book</html>")
    (folder / "_static" / "book.css").write_text("body {}")
    (folder / ".edition").write_text(edition + "\n")
    return folder


def test_publish_pushes_the_student_edition_to_gh_pages(course_repo, tmp_path):
    repo, bare = course_repo
    build_book = load_script("build_book")
    html = fake_build(tmp_path / "html", "student")
    build_book.publish(html, remote="origin", repo=repo)
    files = git("ls-tree", "-r", "--name-only", "gh-pages", cwd=bare).split()
    assert set(files) == {".edition", ".nojekyll", "index.html", "_static/book.css"}
    assert "Publish the book from" in git("log", "-1", "--format=%s", "gh-pages", cwd=bare)
    assert git("show", "gh-pages:index.html", cwd=bare) == "<html>book</html>"
    # a second publish replaces the content
    (html / "index.html").write_text("<html>book, second edition</html>")
    build_book.publish(html, remote="origin", repo=repo, message="again")
    assert git("show", "gh-pages:index.html", cwd=bare) == "<html>book, second edition</html>"
    assert git("log", "-1", "--format=%s", "gh-pages", cwd=bare).strip() == "again"
    # main is untouched
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=repo).strip() == "main"


def test_publish_refuses_the_instructor_edition_or_no_build(course_repo, tmp_path):
    repo, bare = course_repo
    build_book = load_script("build_book")
    with pytest.raises(ValueError, match="instructor"):
        build_book.publish(fake_build(tmp_path / "instructor", "instructor"), repo=repo)
    with pytest.raises(FileNotFoundError, match="build"):
        build_book.publish(tmp_path / "nothing", repo=repo)
    assert "gh-pages" not in git("branch", "--list", cwd=bare)


def test_makefile_has_the_book_commands():
    makefile = (ROOT / "Makefile").read_text()
    for target, command in (("book", "build_book.py"),
                            ("book-instructor", "build_book.py --instructor"),
                            ("pdf", "build_book.py --pdf"), ("publish", "build_book.py --publish")):
        assert re.search(rf"^{target}:.*\n\t\$\(PYTHON\) scripts/{command}$", makefile, re.M), \
            f"make {target} should run {command}"


def test_glossary_is_in_the_book(html):
    text = (html / "book" / "glossary.html").read_text()
    for symbol in (r"r_{ij}", r"\Sigma", r"\pi_k", r"\pi_j", "V_D"):
        assert symbol in text, f"the glossary does not define {symbol}"


def test_pages_hold_no_control_characters():
    """A page written through a Python string can turn "\\bigl" into a backspace + "igl" (and
    "\\tfrac" into a tab): MathJax then shows "Math input error"."""
    for page in sorted((ROOT / "book").glob("*.md")):
        bad = sorted({hex(ord(ch)) for ch in page.read_text() if ord(ch) < 32 and ch not in "\n"})
        assert not bad, f"{page.name} holds control characters {bad}"


def test_no_prose_line_starts_a_list_inside_inline_math():
    """Markdown reads a line that starts with "+ ", "- " or "* " as a list item, even in the
    middle of a `$...$` formula wrapped over two lines: the formula then shows as raw TeX."""
    for page in sorted((ROOT / "book").glob("*.md")):
        display = fenced = False
        previous = ""
        for number, line in enumerate(page.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("```"):
                fenced = not fenced
            elif not fenced and stripped.count("$$") % 2:
                display = not display
            elif not (fenced or display) and re.match(r"[+*-] ", stripped):
                open_math = previous.replace("$$", "").count("$") % 2
                assert not open_math, f"{page.name}:{number} starts a list inside $...$"
            previous = line
