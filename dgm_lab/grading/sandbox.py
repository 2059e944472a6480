"""Start the runner in a sandbox, watch its progress, and kill it from outside.

The sandbox is `bubblewrap <https://github.com/containers/bubblewrap>`_ (``bwrap``; Debian /
Ubuntu package ``bubblewrap``), started by the grader with:

- a fresh root with read-only binds of the system (``/usr`` and the loader's files) and of the
  Python interpreter's standard library; the site-packages folders are replaced by empty ones
  into which only the lab's allowed distributions (torch and numpy with their dependencies by
  default) are bound. ``dgm_lab`` (installed, editable or not), scikit-learn, SciPy and every
  other package are absent: nothing to call, import or copy;
- the job folder read-only at ``/grading/job`` and one writable output folder at
  ``/grading/out``; a private ``/tmp``; nothing of the course (solutions, hidden checks,
  gradebook, submissions, other students' files) is mounted;
- every namespace unshared (no network, a private process tree whose processes all die when
  the sandbox is killed), an unprivileged uid, a new session, ``--die-with-parent``;
- hard resource limits set before exec: address space (memory), file size, no core dumps, CPU
  time; one compute thread.

Where ``bwrap`` is missing or cannot create namespaces, the runner runs as a plain subprocess
(same limits, no isolation) and :func:`status` carries a loud warning naming what is
unprotected. ``DGM_GRADING_SANDBOX=bwrap`` makes a missing sandbox an error instead;
``DGM_GRADING_SANDBOX=none`` skips it on purpose (tests of the fallback).
"""

from __future__ import annotations

import functools
import glob
import importlib.metadata
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

JOB = "/grading/job"
OUT = "/grading/out"
SANDBOX_UID = 65534  # "nobody"
UNPROTECTED = (
    "the students' code runs as a plain subprocess of the grader: it can read every file this "
    "user can read (solutions/ and the hidden checks, the gradebook, other students' "
    "submissions), write to them, import dgm_lab, scikit-learn and SciPy, and use the network"
)


class SandboxError(RuntimeError):
    """The sandbox cannot be started (an instructor-side problem, not the student's)."""


@dataclass(frozen=True)
class Status:
    """Whether grading is sandboxed. ``kind`` is ``"bubblewrap"`` or ``"none"``; ``warning``
    is empty when sandboxed, else the loud message naming what is unprotected."""

    kind: str
    warning: str = ""

    @property
    def sandboxed(self) -> bool:
        return self.kind == "bubblewrap"


@dataclass(frozen=True)
class Limits:
    """Resource limits of one submission.

    Arguments:
        exercise_seconds: wall time for one exercise (all its cases), and for one answer cell
            at top level.
        notebook_seconds: wall time of the student's code for the whole notebook (every
            restart together).
        memory_bytes: address-space limit of the sandboxed process (torch alone maps ~0.7 GB).
        startup_seconds: time to start the sandbox and import torch (not the student's time).
        threads: compute threads of torch / OpenMP in the sandbox.
        max_output_bytes: the most bytes one exercise's returned values may hold.
        max_file_bytes: the largest file the student's code may write.
        max_written_bytes: the most bytes in the output folder (the only writable folder
            that is not a small in-memory one); the process is killed above it.
    """

    exercise_seconds: float = 60.0
    notebook_seconds: float = 300.0
    memory_bytes: int = 4 << 30
    startup_seconds: float = 120.0
    threads: int = 1
    max_output_bytes: int = 256 << 20
    max_file_bytes: int = 256 << 20
    max_written_bytes: int = 1 << 30

    def __post_init__(self) -> None:
        for name in ("exercise_seconds", "notebook_seconds", "startup_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"Limits: {name} must be a number > 0, got {value!r}")
        for name in ("memory_bytes", "threads", "max_output_bytes", "max_file_bytes",
                     "max_written_bytes"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"Limits: {name} must be an int > 0, got {value!r}")


# ----------------------------------------------------------------------------- what is visible


_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distribution_closure(names: Iterable[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``names`` and everything they require (no extras)."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        if _canonical(name) in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            if name in names:
                raise SandboxError(f"the lab allows package {name!r}, which is not "
                                   "installed") from None
            continue  # an optional dependency that is not installed
        seen[_canonical(name)] = dist
        for line in dist.requires or []:
            # Requirements of an extra are optional; any other one is bound when installed
            # (a platform marker that does not apply names a package that is not installed).
            requirement, _, marker = line.partition(";")
            match = _REQUIREMENT.match(requirement.strip())
            if match and "extra" not in marker:
                todo.append(match.group(0))
    return list(seen.values())


@functools.lru_cache(maxsize=16)
def allowed_paths(packages: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The site-packages folders and their top-level entries the sandbox shows.

    Arguments:
        packages: distribution names (``numpy`` is always added: the runner needs it).

    Returns:
        ``(site_dirs, entries)``: absolute paths. ``dgm_lab`` is never among the entries, even
        when a listed package depends on it.
    """
    site_dirs: set[str] = set()
    entries: set[str] = set()
    for dist in _distribution_closure(tuple(dict.fromkeys(("numpy", *packages)))):
        if _canonical(dist.metadata["Name"] or "") == "dgm-lab":
            continue
        base = Path(dist.locate_file("")).resolve()
        for file in dist.files or []:
            top = file.parts[0] if file.parts else ""
            if top in ("", "..", "__pycache__") or top.endswith(".pth"):
                continue
            path = base / top
            if path.exists() and not top.startswith("dgm_lab"):
                entries.add(str(path))
                site_dirs.add(str(base))
    return tuple(sorted(site_dirs)), tuple(sorted(entries))


def _package_folders() -> list[str]:
    """Every folder where this or a system Python finds packages; each is emptied in the
    sandbox (and refilled with the allowed entries only)."""
    import site

    found = set(site.getsitepackages())
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        found.add(site.getusersitepackages())
    found.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    for pattern in ("/usr/lib/python3*/dist-packages", "/usr/lib/python3*/site-packages",
                    "/usr/local/lib/python3*/dist-packages",
                    "/usr/local/lib/python3*/site-packages"):
        found.update(glob.glob(pattern))
    return sorted({str(Path(p).resolve()) for p in found if os.path.isdir(p)})


def _interpreter() -> str:
    return str(Path(sys.executable).resolve())


def _python_folders() -> list[str]:
    """Folders of the interpreter itself: its standard library and shared library."""
    folders = {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and os.path.isdir(libdir):
        folders.add(libdir)
    folders = {str(Path(f).resolve()) for f in folders if f and os.path.isdir(f)}
    # keep the outermost of nested folders; /usr is bound whole anyway
    keep = [f for f in folders if not any(f != g and f.startswith(g + os.sep) for g in folders)]
    return sorted(f for f in keep if not (f == "/usr" or f.startswith("/usr/")))


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for path in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"):
        args += ["--ro-bind-try", path, path]
    return args


def bwrap_command(packages: tuple[str, ...], job: str, out: str, limits: Limits) -> list[str]:
    """The ``bwrap`` arguments up to (not including) the command run inside.

    Arguments:
        packages: the lab's allowed distributions.
        job, out: host folders mounted read-only at ``/grading/job`` and writable at
            ``/grading/out``.
        limits: for the size of the private ``/tmp``.
    """
    site_dirs, entries = allowed_paths(packages)
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--clearenv"]
    args += _system_binds()
    args += ["--proc", "/proc", "--dev", "/dev"]
    # Writable places in memory (tmpfs) are small: /dev/shm and /tmp.
    for folder, size in (("/dev/shm", 64 << 20), ("/tmp", min(limits.max_file_bytes, 1 << 30))):
        args += (["--size", str(size)] if _bwrap_has_size() else []) + ["--tmpfs", folder]
    for folder in _python_folders():
        args += ["--ro-bind", folder, folder]
    interpreter = _interpreter()
    args += ["--ro-bind", interpreter, interpreter]
    for folder in sorted(set(_package_folders()) | set(site_dirs)):
        args += ["--tmpfs", folder]
    for entry in entries:
        args += ["--ro-bind", entry, entry]
    for folder in site_dirs:
        args += ["--remount-ro", folder]
    args += ["--ro-bind", job, JOB, "--bind", out, OUT, "--chdir", "/tmp"]
    args += ["--remount-ro", "/dev", "--remount-ro", "/"]  # the rest of the tree: read-only
    for key, value in _environment(limits).items():
        args += ["--setenv", key, value]
    return args


def _environment(limits: Limits) -> dict[str, str]:
    threads = str(limits.threads)
    return {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "TMPDIR": "/tmp",
            "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads, "PYTHONHASHSEED": "0"}


@functools.lru_cache(maxsize=1)
def _bwrap_has_size() -> bool:
    try:
        help_text = subprocess.run(["bwrap", "--help"], capture_output=True, text=True,
                                   timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "--size" in help_text


@functools.lru_cache(maxsize=4)
def _probe_bwrap(packages: tuple[str, ...]) -> str:
    """Empty when ``bwrap`` runs this interpreter here, else why not."""
    if shutil.which("bwrap") is None:
        return "bwrap (Debian/Ubuntu package `bubblewrap`) is not installed"
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dgm-probe-") as tmp:
        os.makedirs(os.path.join(tmp, "out"))
        cmd = bwrap_command(packages, tmp, os.path.join(tmp, "out"), Limits())
        cmd += [_interpreter(), "-I", "-S", "-B", "-c", "pass"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as err:
            return f"bwrap failed to start: {err}"
    if proc.returncode != 0:
        return ("bwrap cannot create its namespaces here (unprivileged user namespaces may be "
                f"disabled): {proc.stderr.strip()[:300]}")
    return ""


def status(packages: Iterable[str] = ("torch", "numpy"), mode: str | None = None) -> Status:
    """Whether the student's code will run sandboxed, and if not, the warning to print.

    Arguments:
        packages: the lab's allowed distributions (they are bound into the probe).
        mode: ``"auto"`` (sandbox when possible), ``"bwrap"`` (required: raise when missing)
            or ``"none"``; default: the environment variable ``DGM_GRADING_SANDBOX``, else auto.

    Raises:
        SandboxError: ``mode="bwrap"`` and bubblewrap cannot run here.
    """
    mode = mode or os.environ.get("DGM_GRADING_SANDBOX", "auto")
    if mode not in ("auto", "bwrap", "none"):
        raise ValueError(f"sandbox mode must be 'auto', 'bwrap' or 'none', got {mode!r}")
    if mode == "none":
        reason = "the sandbox was turned off (DGM_GRADING_SANDBOX=none)"
    else:
        reason = _probe_bwrap(tuple(packages))
        if not reason:
            return Status("bubblewrap")
        if mode == "bwrap":
            raise SandboxError(reason)
    return Status("none", f"WARNING: grading WITHOUT a sandbox: {reason}. UNPROTECTED: "
                          f"{UNPROTECTED}. Install bubblewrap (`sudo apt-get install bubblewrap`)"
                          " and grade again.")


# ----------------------------------------------------------------------------- one run


def _set_limits(limits: Limits) -> None:
    """In the child, before exec: hard limits the student's code cannot raise again."""
    def hard(which: int, value: int) -> None:
        resource.setrlimit(which, (value, value))

    hard(resource.RLIMIT_AS, limits.memory_bytes)
    hard(resource.RLIMIT_CORE, 0)
    hard(resource.RLIMIT_FSIZE, limits.max_file_bytes)
    cpu = int(limits.notebook_seconds + limits.startup_seconds) + 60
    hard(resource.RLIMIT_CPU, cpu)


@dataclass
class Outcome:
    """How one run of the runner ended.

    ``how``: ``"done"`` (it reported the end), ``"timeout"`` (a stage ran past its limit),
    ``"notebook-timeout"`` (the notebook's budget ran out), ``"died"`` (the process ended
    in the middle), ``"too-much-output"`` (it filled the output folder past the limit).
    ``stage``: ``("cell", i)`` / ``("exercise", i)`` running when it ended,
    or ``None``. ``returncode``: the exit status (negative: killed by that signal).
    ``student_seconds``: time after the preamble (what counts against the notebook budget).
    """

    how: str
    stage: tuple[str, int] | None
    returncode: int | None
    student_seconds: float
    stderr: str = ""


_LINE = re.compile(r"^(cell|exercise) (\d{1,6}) (start|end)$")


def _kill(proc: subprocess.Popen) -> None:
    """Kill the whole process tree: the group of bwrap (or of the plain runner); in the
    sandbox, bwrap's death takes its PID namespace, and every process in it, down too."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run(job: str, out: str, packages: tuple[str, ...], limits: Limits, sandbox: Status,
        skip_cells: set[int], skip_exercises: set[int], budget: float,
        logs: str) -> Outcome:
    """Start the runner once and watch it until it finishes, runs out of time or dies.

    Arguments:
        job, out: the job folder (with ``runner.py`` and ``job.json``) and the output folder.
        packages: the lab's allowed distributions.
        limits: the resource limits.
        sandbox: from :func:`status`.
        skip_cells, skip_exercises: stages finished or failed in earlier runs.
        budget: the notebook's remaining seconds of student time.
        logs: a folder (outside the sandbox) for the process's stdout and stderr.

    Returns:
        the :class:`Outcome`.

    Raises:
        SandboxError: the runner did not get through the preamble (imports) in time, or died
            before: the grading environment is broken, not the submission.
    """
    read_fd, write_fd = os.pipe()
    inner = [_interpreter(), "-I", "-S", "-B"]
    args = [str(write_fd)]
    if skip_cells:
        args += ["--skip-cells", ",".join(map(str, sorted(skip_cells)))]
    if skip_exercises:
        args += ["--skip-exercises", ",".join(map(str, sorted(skip_exercises)))]
    if sandbox.sandboxed:
        cmd = bwrap_command(packages, job, out, limits)
        cmd += inner + [f"{JOB}/runner.py", JOB, OUT, *args]
        env, cwd = {}, None
    else:
        cmd = inner + [os.path.join(job, "runner.py"), job, out, *args]
        env, cwd = _environment(limits), out
    stdout = open(os.path.join(logs, "stdout.txt"), "ab")  # noqa: SIM115 - closed below
    stderr = open(os.path.join(logs, "stderr.txt"), "ab")  # noqa: SIM115
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                pass_fds=(write_fd,), env=env, cwd=cwd, start_new_session=True,
                                preexec_fn=lambda: _set_limits(limits))
    finally:
        os.close(write_fd)
        stdout.close()
        stderr.close()
    try:
        return _watch(proc, read_fd, limits, budget, logs, out)
    finally:
        os.close(read_fd)
        if proc.poll() is None:
            _kill(proc)


MAX_WRITTEN_FILES = 10_000


def _too_full(folder: str, max_bytes: int) -> bool:
    """Whether ``folder`` holds more than ``max_bytes`` or ``MAX_WRITTEN_FILES`` entries (the
    walk stops as soon as either is exceeded, so a flood of files cannot slow the watch)."""
    total, count, todo = 0, 0, [folder]
    while todo:
        with os.scandir(todo.pop()) as entries:
            for entry in entries:
                count += 1
                try:
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
                if total > max_bytes or count > MAX_WRITTEN_FILES:
                    return True
    return False


def _watch(proc: subprocess.Popen, fd: int, limits: Limits, budget: float,
           logs: str, out: str) -> Outcome:
    started = time.monotonic()
    ready_at: float | None = None
    stage: tuple[str, int] | None = None
    position = (-1, -1)  # stages only move forward: a repeated start cannot reset its clock
    stage_deadline = started + limits.startup_seconds
    buffer = b""
    done = False

    def student_time() -> float:
        return 0.0 if ready_at is None else time.monotonic() - ready_at

    def outcome(how: str, code: int | None) -> Outcome:
        tail = ""
        if how != "done" and ready_at is None:
            with open(os.path.join(logs, "stderr.txt"), "rb") as fh:
                fh.seek(max(0, os.path.getsize(fh.name) - 4000))
                tail = fh.read().decode("utf-8", "replace")
        return Outcome(how, stage, code, student_time(), tail)

    while True:
        now = time.monotonic()
        notebook_deadline = now + budget - student_time() if ready_at is not None else float("inf")
        deadline = min(stage_deadline, notebook_deadline)
        # wake at least twice a second to watch the size of the output folder
        readable, _, _ = select.select([fd], [], [], min(0.5, max(0.0, deadline - now)))
        if _too_full(out, limits.max_written_bytes):
            _kill(proc)
            return outcome("too-much-output", proc.returncode)
        if not readable and time.monotonic() < deadline:
            continue
        if not readable:
            if ready_at is None:
                _kill(proc)
                raise SandboxError(
                    f"the grading process did not finish its imports within "
                    f"{limits.startup_seconds:g} s:\n{outcome('timeout', None).stderr}")
            how = "notebook-timeout" if notebook_deadline <= stage_deadline else "timeout"
            _kill(proc)
            return outcome(how, proc.returncode)
        data = os.read(fd, 65536)
        if not data:  # the progress pipe closed: the process ended (or closed it itself)
            try:
                code = proc.wait(timeout=max(0.0, min(stage_deadline, notebook_deadline)
                                             - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill(proc)
                return outcome("timeout", proc.returncode)
            if ready_at is None:
                raise SandboxError(f"the grading process ended (status {code}) before it "
                                   f"finished its imports:\n{outcome('died', code).stderr}")
            return outcome("done" if done else "died", code)
        buffer = (buffer + data)[-100_000:]
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.decode("ascii", "replace").strip()
            now = time.monotonic()
            if line == "ready" and ready_at is None:
                ready_at = now
                stage_deadline = now + limits.exercise_seconds
            elif line == "done" and ready_at is not None:
                done = True
                stage = None
                stage_deadline = now + 10.0  # time to exit
            elif (match := _LINE.match(line)) and ready_at is not None:
                kind, index, edge = match.group(1), int(match.group(2)), match.group(3)
                key = (0 if kind == "cell" else 1, index)
                if edge == "start" and key > position:
                    position, stage = key, (kind, index)
                    stage_deadline = now + limits.exercise_seconds
                elif edge == "end" and stage == (kind, index):
                    stage = None
                    stage_deadline = now + limits.exercise_seconds  # until the next stage
