"""``dgm-course``: one command per step of the course, for students and instructors.

Installed with the package (``pip install -e .``) as the console script ``dgm-course``; also
``python -m dgm_lab.cli``. Every command finds the course from the current folder upwards (the
folder holding ``nbgrader_config.py``), or from ``--course PATH``; ``--help`` on any command
says what it does.

Students::

    dgm-course start lab01_naive_bayes            # copy the lab into work/ (yours; git ignores it)
    dgm-course validate work/lab01_naive_bayes/lab01_naive_bayes.ipynb   # before submitting

Instructors::

    dgm-course release [--check]                  # notebooks/ from solutions/
    dgm-course collect downloads/export.zip       # submissions into submitted/
    dgm-course grade lab01_naive_bayes --jobs 4   # autograde + feedback + grades.csv
    dgm-course book [--instructor] | pdf | publish

The logic lives in :mod:`dgm_lab.course`; this module only parses and prints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from dgm_lab.course.layout import Course, CourseError

JOBS_HELP = ("worker processes computing verdicts in parallel (each grades one submission in "
             "its own sandbox); default 1")


def _course(ctx: click.Context) -> Course:
    try:
        return Course.find(ctx.obj.get("course"))
    except CourseError as err:
        raise click.ClickException(str(err)) from None


def _fail(err: Exception) -> click.ClickException:
    return click.ClickException(str(err))


class _Group(click.Group):
    """Turns a :class:`CourseError` raised by any command into a one-line error (exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CourseError as err:
            raise _fail(err) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--course", type=click.Path(file_okay=False, path_type=Path),
              envvar="DGM_COURSE_ROOT",
              help="the course folder (default: the folder holding nbgrader_config.py at or "
                   "above the current one)")
@click.pass_context
def main(ctx: click.Context, course: Path | None) -> None:
    """Run the Deep Generative Models course: release, work on, validate, collect and grade
    the labs; build and publish the book."""
    ctx.ensure_object(dict)
    ctx.obj["course"] = course


# ----------------------------------------------------------------------------- students


@main.command()
@click.argument("lab")
@click.argument("dest", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True,
              help="start again from the released lab (your notebook is kept as a backup)")
@click.pass_context
def start(ctx: click.Context, lab: str, dest: Path | None, force: bool) -> None:
    """Copy LAB into your own work folder DEST (default work/LAB), to work on it there.

    The released labs in notebooks/ are tracked by git: edit the copy instead, and a
    `git pull` that brings a corrected lab never conflicts with your work.
    """
    from dgm_lab.course.student import start_lab

    notebook = start_lab(_course(ctx), lab, dest, force=force)
    click.echo(f"Your copy of {lab}: {notebook}\nOpen it with:  jupyter lab {notebook}\n"
               f"Before submitting:  dgm-course validate {notebook}")


@main.command()
@click.argument("notebook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--timeout", type=click.FloatRange(min=1), default=None,
              help="time limit per cell in seconds (default: the course's limit per exercise, "
                   "60 s)")
@click.pass_context
def validate(ctx: click.Context, notebook: Path, timeout: float | None) -> None:
    """Run NOTEBOOK as a student would before submitting it, and say what fails.

    Every cell runs in a fresh kernel, in order, with a time limit per cell. Reports the
    visible tests that fail, the cells that raise and the cells over the limit, and warns when
    an answer uses names from other cells (while grading, the answer cells run alone after the
    imports cell). Exits 1 when anything fails. The notebook is not changed.
    """
    from dgm_lab.course.validate import validate_notebook

    if timeout is None:
        try:
            timeout = _course(ctx).limits().exercise_seconds
        except click.ClickException:
            timeout = 60.0
    result = validate_notebook(notebook, timeout=timeout)
    click.echo(f"Ran {notebook} in {result.seconds:.0f} s (limit per cell {timeout:g} s).")
    why = {p.grade_id: p.message for p in result.problems if p.kind == "test"}
    if result.tests:
        passed = sum(result.tests.values())
        click.echo(f"Visible tests: {passed} of {len(result.tests)} pass.")
        for gid, ok in result.tests.items():
            click.echo(f"  {gid:<16} " + ("passed" if ok else f"FAILED: {why.get(gid, '')}"))
    for problem in result.problems:
        if problem.kind != "test":
            where = f"cell {problem.index + 1}" + (f" ({problem.grade_id})"
                                                   if problem.grade_id else "")
            click.echo(f"  {where}: {problem.message}")
    for index, gid, seconds in result.slow:
        click.echo(f"  cell {index + 1}{f' ({gid})' if gid else ''} ran {seconds:.0f} s, over "
                   f"the limit of {timeout:g} s")
    if result.outside:
        click.echo("Warning: while grading, each answer cell runs alone after the imports "
                   "cell, so these names will be missing:")
        for gid, names in result.outside.items():
            for name in names:
                click.echo(f"  {gid}: {name}")
    if result.passed:
        click.echo("Every cell ran and every visible test passes. (The grade comes from hidden "
                   "tests on fresh inputs.)")
    else:
        click.echo("Not ready: fix the cells above.")
        ctx.exit(1)


# ----------------------------------------------------------------------------- instructors


@main.command()
@click.argument("labs", nargs=-1)
@click.option("--check", is_flag=True,
              help="write nothing; exit 1 when notebooks/ differs from a fresh release")
@click.pass_context
def release(ctx: click.Context, labs: tuple[str, ...], check: bool) -> None:
    """Regenerate the student notebooks notebooks/LAB from solutions/LAB (default: every lab).

    Runs nbgrader generate_assignment in a scratch copy of the course (the gradebook is not
    touched) and normalises the notebooks, so a release is reproducible; commit notebooks/.
    """
    course = _course(ctx)
    tool = course.script("release_labs")
    names = [course.lab(lab) for lab in labs] or course.labs()
    if not names:
        raise CourseError(f"no labs in {course.solutions}: nothing to release")
    if check:
        report = {lab: d for lab, d in tool.drifted(names, course.root).items()
                  if not labs or lab in names}
        for lab, diffs in report.items():
            click.echo(f"{lab}: notebooks/ drifted from solutions/: " + "; ".join(diffs))
        if report:
            click.echo("run `dgm-course release` and commit notebooks/")
            ctx.exit(1)
        click.echo(f"notebooks/ up to date for {len(names)} lab(s)")
        return
    tool.generate(names, course.notebooks, course.root)
    for lab in names:
        click.echo(f"released solutions/{lab} -> notebooks/{lab}/{lab}.ipynb")


@main.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--lab", help="collect only this lab (and take it for files whose names do not "
                            "say)")
@click.option("--student", help="the student of a single .ipynb or .zip")
@click.option("--pattern", help="regular expression with the named groups student (and lab), "
                                "matched against each file name, for unusual namings")
@click.option("--force", is_flag=True, help="replace submissions already collected that differ")
@click.pass_context
def collect(ctx: click.Context, source: Path, lab: str | None, student: str | None,
            pattern: str | None, force: bool) -> None:
    """File the submissions in SOURCE as submitted/<student>/<lab>/<lab>.ipynb.

    SOURCE is a folder (a subfolder or a .zip per student, or an LMS export of files named
    after the student and the lab, e.g. smithalice_1234_5678_lab01_naive_bayes-1.ipynb or
    'Alice Smith_4711_assignsubmission_file_lab01_naive_bayes (1).ipynb'), a .zip of such
    an export, or one .ipynb (with --student). Archives with unsafe entries (.., absolute
    names, links) are refused whole. Exits 1 when something could not be collected.
    """
    from dgm_lab.course.collect import collect as collect_all

    results = collect_all(_course(ctx), source, lab=lab, student=student, pattern=pattern,
                          force=force)
    trouble = False
    for r in results:
        who = f"{r.student}/{r.lab}" if r.student else r.origin
        note = f" ({r.note})" if r.note else ""
        if r.status == "refused":
            click.echo(f"  refused   {r.note}", err=True)
        else:
            click.echo(f"  {r.status:<9} {who} <- {r.origin}{note}")
        trouble |= r.status in ("refused", "kept")
    counts = {s: sum(r.status == s for r in results)
              for s in ("new", "replaced", "unchanged", "kept", "refused")}
    click.echo(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    if trouble:
        ctx.exit(1)


def _labs(course: Course, lab: str | None, every: bool) -> list[str]:
    if every == (lab is not None):
        raise click.UsageError("name one LAB or pass --all")
    if lab is not None:
        return [course.lab(lab)]
    labs = [name for name in course.labs() if course.submissions(name)]
    if not labs:
        raise CourseError(f"no submissions in {course.submitted} for any lab: collect them "
                          "first with `dgm-course collect FOLDER_OR_ZIP`")
    return labs


def _autograde(ctx: click.Context, course: Course, labs: list[str], jobs: int, force: bool,
               students: tuple[str, ...], timeout: float | None,
               notebook_timeout: float | None, progress: bool) -> bool:
    """Grade ``labs``; True when every submission was recorded."""
    from dgm_lab.course.batch import grade_lab
    from dgm_lab.grading.cache import VerdictCache

    for line in course.strays(labs):
        click.echo(f"warning: {line}", err=True)
    limits = course.limits(timeout, notebook_timeout)
    ok = True
    for lab in labs:
        batch = grade_lab(course, lab, jobs=jobs, force=force, students=list(students) or None,
                          limits=limits, progress=progress, say=click.echo)
        cache = VerdictCache(course.cache)
        for student in batch.recorded:
            report = (cache.entry(lab, student) or {}).get("report", {})
            score = sum(v["score"] for v in report.get("verdicts", []))
            best = sum(v["points"] for v in report.get("verdicts", []))
            click.echo(f"  {student:>20}: {score:g} / {best:g}")
        for student, why in batch.failed.items():
            click.echo(f"  {student:>20}: nbgrader could not record the grade:\n{why}", err=True)
        graded = len(batch.computed) + len(batch.reused)
        if graded:
            click.echo(f"{lab}: {len(batch.recorded)} submission(s) recorded ("
                       f"{len(batch.computed)} graded with {jobs} job(s) in "
                       f"{batch.verdict_seconds:.0f} s, {len(batch.reused)} from the cache; "
                       f"gradebook {batch.record_seconds:.0f} s)")
        ok &= not batch.failed
    return ok


def _grading_options(function: Any) -> Any:
    options = [
        click.argument("lab", required=False),
        click.option("--all", "every", is_flag=True, help="every lab with submissions"),
        click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
                     help=JOBS_HELP),
        click.option("--force", is_flag=True,
                     help="regrade every submission, unchanged ones too, and replace an older "
                          "version of the lab recorded in the gradebook"),
        click.option("--student", "students", multiple=True,
                     help="only this student (repeatable)"),
        click.option("--timeout", type=click.FloatRange(min=1), default=None,
                     help="seconds per exercise (default: nbgrader_config.py, 60)"),
        click.option("--notebook-timeout", type=click.FloatRange(min=1), default=None,
                     help="seconds of the student's code per notebook (default: "
                          "nbgrader_config.py, 300)"),
        click.option("--progress/--no-progress", default=True, help="show progress bars"),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@main.command()
@_grading_options
@click.pass_context
def autograde(ctx: click.Context, lab: str | None, every: bool, jobs: int, force: bool,
              students: tuple[str, ...], timeout: float | None, notebook_timeout: float | None,
              progress: bool) -> None:
    """Autograde every submission of LAB (or of --all labs) into the gradebook.

    New and resubmitted submissions are graded (a resubmission is announced); unchanged ones
    keep their grades unless --force. Verdicts are computed in --jobs parallel workers, each
    submission's answers in a sandbox with a time limit per exercise and per notebook, cached
    in grading_cache/, then recorded by nbgrader one student after the other: an interrupted
    batch loses no grade, and running it again finishes it.
    """
    course = _course(ctx)
    if not _autograde(ctx, course, _labs(course, lab, every), jobs, force, students, timeout,
                      notebook_timeout, progress):
        ctx.exit(1)


def _feedback(course: Course, labs: list[str], force: bool, students: tuple[str, ...],
              progress: bool) -> bool:
    from dgm_lab.course.batch import generate_feedback

    ok = True
    for lab in labs:
        written, failed = generate_feedback(course, lab, list(students) or None, force=force,
                                            progress=progress)
        for student in written:
            click.echo(f"  {course.feedback / student / lab / (lab + '.html')}")
        for student, why in failed.items():
            click.echo(f"  {student}: no feedback:\n{why}", err=True)
        click.echo(f"{lab}: feedback written for {len(written)} student(s)"
                   + ("" if written or force else " (all up to date; --force rewrites them)"))
        ok &= not failed
    return ok


@main.command()
@click.argument("lab", required=False)
@click.option("--all", "every", is_flag=True, help="every lab with submissions")
@click.option("--force", is_flag=True, help="rewrite every student's feedback")
@click.option("--student", "students", multiple=True, help="only this student (repeatable)")
@click.option("--progress/--no-progress", default=True, help="show progress bars")
@click.pass_context
def feedback(ctx: click.Context, lab: str | None, every: bool, force: bool,
             students: tuple[str, ...], progress: bool) -> None:
    """Write each graded student's HTML feedback, feedback/<student>/LAB/LAB.html.

    Only missing or outdated feedback is written unless --force. Each exercise shows its
    points and what was wrong, never the hidden checks.
    """
    course = _course(ctx)
    if not _feedback(course, _labs(course, lab, every), force, students, progress):
        ctx.exit(1)


def _grades(course: Course, output: Path | None, locked: Path | None) -> None:
    from dgm_lab.course.grades import (
        grade_table,
        locked_cell_changes,
        write_grades,
        write_locked_cell_report,
    )

    table = grade_table(course)
    path = write_grades(table, output or course.root / "grades.csv")
    labs = [c for c in table.header[1:-1] if ":" not in c]
    click.echo(f"{path}: {len(table.rows)} student(s) x {len(labs)} lab(s); maxima: "
               + ", ".join(f"{lab} {table.maxima[lab]:g}" for lab in labs)
               + f", total {table.maxima['total']:g}")
    for student, lab in table.missing:
        click.echo(f"  no submission: {student} / {lab}")
    changes = locked_cell_changes(course)
    report = write_locked_cell_report(changes, locked or course.root / "locked_cells.csv")
    if changes:
        click.echo(f"Locked cells edited or deleted ({report}); grading used the originals:")
        for student, labs_changed in sorted(changes.items()):
            parts = "; ".join(f"{lab}: {', '.join(items)}" for lab, items in labs_changed.items())
            click.echo(f"  {student}: {parts}")
    else:
        click.echo("No student edited or deleted a locked cell.")


@main.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="the CSV to write (default grades.csv in the course folder; rewritten "
                   "from the gradebook each time)")
@click.option("--locked-output", type=click.Path(dir_okay=False, path_type=Path),
              help="the report of edited or deleted locked cells (default locked_cells.csv)")
@click.pass_context
def grades(ctx: click.Context, output: Path | None, locked_output: Path | None) -> None:
    """Export the gradebook as one wide CSV and name who edited or deleted locked cells.

    One row per student; one column per lab, one per exercise (LAB:function) and the total.
    A lab a student did not submit is left empty (0 in the total).
    """
    _grades(_course(ctx), output, locked_output)


@main.command()
@_grading_options
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="the grades CSV (default grades.csv in the course folder)")
@click.pass_context
def grade(ctx: click.Context, lab: str | None, every: bool, jobs: int, force: bool,
          students: tuple[str, ...], timeout: float | None, notebook_timeout: float | None,
          progress: bool, output: Path | None) -> None:
    """autograde, feedback and grades in one command, for LAB or --all labs."""
    course = _course(ctx)
    labs = _labs(course, lab, every)
    ok = _autograde(ctx, course, labs, jobs, force, students, timeout, notebook_timeout,
                    progress)
    ok &= _feedback(course, labs, force, students, progress)
    _grades(course, output, None)
    if not ok:
        ctx.exit(1)


# ----------------------------------------------------------------------------- the book


@main.command()
@click.option("--instructor", is_flag=True,
              help="the instructor edition: every lab with its solution, into "
                   "_build/instructor/html")
@click.option("--strict", is_flag=True, help="Sphinx warnings are errors")
@click.option("--all", "rebuild_all", is_flag=True, help="rebuild every page")
@click.pass_context
def book(ctx: click.Context, instructor: bool, strict: bool, rebuild_all: bool) -> None:
    """Build the book: the student edition (no solution or hidden check anywhere) into
    _build/html, or with --instructor the same book with the solutions."""
    tool = _course(ctx).script("build_book")
    edition = "instructor" if instructor else "student"
    status = tool.build(strict=strict, rebuild_all=rebuild_all, edition=edition)
    if status != 0:
        raise click.ClickException(f"the {edition} edition failed to build (exit {status})")
    index = tool.output_dir(edition) / "index.html"
    click.echo(f"The {edition} edition is built: {index.as_uri()}")


@main.command()
@click.option("--strict", is_flag=True, help="Sphinx warnings are errors")
@click.pass_context
def pdf(ctx: click.Context, strict: bool) -> None:
    """Print the student edition as one PDF, _build/pdf/dgm-course.pdf (needs chromium)."""
    tool = _course(ctx).script("build_book")
    try:
        path = tool.build_pdf(strict=strict)
    except (RuntimeError, FileNotFoundError) as err:
        raise _fail(err) from None
    click.echo(f"The PDF: {path}")


@main.command()
@click.option("--remote", default="origin", show_default=True, help="git remote to push to")
@click.option("--branch", default="gh-pages", show_default=True, help="the branch Pages serves")
@click.option("--push/--no-push", default=True, help="push after committing")
@click.pass_context
def publish(ctx: click.Context, remote: str, branch: str, push: bool) -> None:
    """Commit the built student edition (_build/html) to the gh-pages branch and push it.

    Refuses the instructor edition and an unfinished build; build it first with
    `dgm-course book`.
    """
    course = _course(ctx)
    tool = course.script("build_book")
    try:
        tool.publish(remote=remote, branch=branch, push=push, repo=course.root)
    except (ValueError, FileNotFoundError) as err:
        raise _fail(err) from None
    except Exception as err:  # noqa: BLE001 - git's failure, said in one line
        raise click.ClickException(f"publishing failed: {err}") from None
    click.echo(f"Published {tool.output_dir('student')} to {remote}/{branch}"
               + ("" if push else " (committed, not pushed)"))


if __name__ == "__main__":
    sys.exit(main(prog_name="dgm-course"))
