r"""Test figures of every trained model, and small checkpoints, committed with the code.

**Results.** Every chapter keeps its models' test figures in one CSV file,
``benchmarks/results/chNN.csv``, one row per (model, data, split, metric), sorted, so that a
change shows in ``git diff`` as the lines that changed. ``benchmarks/`` scripts compute the
rows and :func:`record` them; pages, the comparison table of the last chapter and the tests
:func:`load` them. Units, so that every family lands in one table:

* ``nll``: the mean negative log-likelihood per example, in nats. On the dequantised digits
  it is the bound on the discrete image, :func:`discrete_nll` (Theis et al., 2016).
* ``bpd``: bits per dimension, :func:`bits_per_dim`.

**Checkpoints.** A model that trains longer than a page's budget is trained once by
``python benchmarks/make_checkpoints.py`` and committed as ``benchmarks/checkpoints/NAME.pt``
(its ``state_dict``, a few MB at most) with ``NAME.json`` beside it: the figure it reproduces,
the seed, the command that made it and the file's SHA-256. :func:`load_checkpoint` checks the
file against its record and, given the function that computes the figure, the figure too.

References:
    Theis, van den Oord & Bethge (2016), A note on the evaluation of generative models, ICLR.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; run one writer at a time there
    fcntl = None

import torch
from torch import nn

import dgm_lab
from dgm_lab._validation import check_int

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
CHECKPOINT_DIR = ROOT / "benchmarks" / "checkpoints"
MAKE_CHECKPOINTS = "python benchmarks/make_checkpoints.py"
MAX_CHECKPOINT_BYTES = 5_000_000


@dataclass(frozen=True)
class Result:
    """One test figure of one trained model: a row of ``benchmarks/results/chNN.csv``.

    Attributes:
        model: e.g. ``"kde"``, ``"gmm"``, ``"made"``; with ``data``, ``split`` and ``metric``
            the key of the row.
        data: the data and its form, e.g. ``"digits-dequantized"``, ``"eight_gaussians"``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        metric: ``"nll"`` (nats per example), ``"bpd"``, ``"accuracy"``, ...
        value: the figure (``inf`` is allowed: a model can give a test point density 0).
        config: the hyperparameters that produced it, e.g. ``"h=0.05"`` (free text).
        seconds: training time in seconds (``nan`` when not measured).
        device: where it was trained, e.g. ``"cpu"``.
        seed: the seed of the run (-1 when nothing is random).
        date, version: set by :func:`record` (ISO date, ``dgm_lab.__version__``).
    """

    model: str
    data: str
    split: str
    metric: str
    value: float
    config: str = ""
    seconds: float = math.nan
    device: str = "cpu"
    seed: int = -1
    date: str = ""
    version: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.model, self.data, self.split, self.metric)


FIELDS = tuple(f.name for f in dataclasses.fields(Result))


def _check_result(row: object) -> Result:
    if not isinstance(row, Result):
        raise TypeError(f"rows must be dgm_lab.results.Result objects, got {type(row).__name__}")
    for name in ("model", "data", "split", "metric"):
        value = getattr(row, name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"Result.{name} must be a non-empty string, got {value!r}")
    for name, kinds in (("value", (int, float)), ("seconds", (int, float)), ("seed", int),
                        ("config", str), ("device", str)):
        value = getattr(row, name)
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise TypeError(f"Result.{name} of {row.key} has the wrong type "
                            f"{type(value).__name__} (a Python number or string, not a tensor)")
    if math.isnan(row.value):
        raise ValueError(f"Result.value of {row.key} is NaN")
    return row


def results_path(chapter: int, folder: str | os.PathLike | None = None) -> Path:
    """``<folder>/chNN.csv`` (default folder: ``benchmarks/results`` of the repository)."""
    chapter = check_int(chapter, "chapter", minimum=0)
    return Path(folder if folder is not None else RESULTS_DIR) / f"ch{chapter:02d}.csv"


def load(chapter: int, *, folder: str | os.PathLike | None = None) -> list[Result]:
    """Every row of the results file of ``chapter``, in file order (sorted by key).

    Raises:
        FileNotFoundError: when the chapter has no results file yet (naming the path).

    Example:
        >>> [r for r in load(2) if r.model == "kde" and r.split == "test"]
    """
    path = results_path(chapter, folder)
    if not path.is_file():
        raise FileNotFoundError(f"no results for chapter {chapter}: {path} does not exist; the "
                                "chapter's benchmarks/ script writes it with results.record")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise ValueError(f"{path}: expected the columns {FIELDS}, got {reader.fieldnames}")
        return [Result(**{**r, "value": float(r["value"]), "seconds": float(r["seconds"]),
                          "seed": int(r["seed"])}) for r in reader]


def lookup(chapter: int, model: str, data: str, split: str, metric: str, *,
           folder: str | os.PathLike | None = None) -> Result:
    """The one row of ``chapter`` with this key; a ``KeyError`` lists what exists."""
    rows = {r.key: r for r in load(chapter, folder=folder)}
    key = (model, data, split, metric)
    if key not in rows:
        raise KeyError(f"chapter {chapter} has no result {key}; it has {sorted(rows)}")
    return rows[key]


def record(chapter: int, rows: Iterable[Result], *,
           folder: str | os.PathLike | None = None) -> Path:
    """Insert or replace ``rows`` in the results file of ``chapter``; returns its path.

    A row replaces the one with the same (model, data, split, metric); the others stay. The
    file is rewritten sorted by key, with ``date`` (today) and ``version`` filled in, so that
    re-running a script changes only the lines whose figures changed (and their date).

    Example:
        >>> record(2, [Result("kde", "two_moons", "test", "nll", 1.093, config="h=0.06")])
    """
    new = [_check_result(r) for r in rows]
    keys = [r.key for r in new]
    if len(set(keys)) < len(keys):
        raise ValueError(f"rows repeat a key (model, data, split, metric): {keys}")
    path = results_path(chapter, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = {"date": datetime.date.today().isoformat(), "version": dgm_lab.__version__}
    with _exclusive(path):  # two scripts recording at once each keep their rows
        table = {r.key: r for r in load(chapter, folder=folder)} if path.is_file() else {}
        table.update({r.key: dataclasses.replace(r, **stamp) for r in new})
        tmp = path.with_suffix(f".csv.{os.getpid()}.tmp")
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(FIELDS)
            for key in sorted(table):
                r = table[key]
                writer.writerow([r.model, r.data, r.split, r.metric, f"{r.value:.10g}",
                                 r.config, f"{r.seconds:.3g}", r.device, r.seed, r.date,
                                 r.version])
        tmp.replace(path)  # a crash while writing never leaves half a file
    return path


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an advisory lock on ``<path>.lock`` (POSIX) while reading and rewriting ``path``."""
    if fcntl is None:
        yield
        return
    with open(path.with_suffix(path.suffix + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def bits_per_dim(nats: float, dims: int) -> float:
    r"""Convert a negative log-likelihood in nats per example to bits per dimension,
    :math:`\text{nats} / (D \ln 2)`.

    Example:
        >>> bits_per_dim(64 * math.log(2), 64)
        1.0
    """
    return float(nats) / (check_int(dims, "dims") * math.log(2))


def discrete_nll(continuous_nll: float, dims: int, levels: int) -> float:
    r"""NLL bound of the discrete data from the NLL of a density on its dequantised form.

    Pixels :math:`k \in \{0..L-1\}` dequantised as :math:`x = (k + u) / L`, :math:`u \sim
    U[0, 1)^D`: then :math:`-\log P(k) \le -\mathbb E_u \log p(x) + D \log L` (Theis et al.,
    2016, eq. 4, with the change of variables :math:`x = y / L`). For the digits, ``dims=64``
    and ``levels=17`` add :math:`64 \log 17 \approx 181.3` nats.
    """
    return float(continuous_nll) + check_int(dims, "dims") * math.log(check_int(levels, "levels"))


# ---------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_REQUIRED_META = {"metric": str, "value": (int, float), "seed": int, "command": str}


def _paths(name: str, folder: str | os.PathLike | None) -> tuple[Path, Path]:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"checkpoint name must be letters, digits, '_', '.', '-', got {name!r}")
    base = Path(folder if folder is not None else CHECKPOINT_DIR) / name
    return base.with_suffix(".pt"), base.with_suffix(".json")


def save_checkpoint(model: nn.Module, name: str, meta: dict, *,
                    folder: str | os.PathLike | None = None,
                    max_bytes: int = MAX_CHECKPOINT_BYTES) -> Path:
    """Write ``model.state_dict()`` to ``NAME.pt`` and ``meta`` (plus its hash) to ``NAME.json``.

    Arguments:
        model: the trained model; its tensors are saved on the CPU.
        name: letters, digits, ``_``, ``.``, ``-`` (e.g. ``"ch07_vae_digits"``).
        meta: at least ``metric`` and ``value`` (the figure the checkpoint reproduces),
            ``seed`` and ``command`` (how to make it again); anything else JSON can hold,
            e.g. ``data``, ``split``, ``epochs``.
        folder: default ``benchmarks/checkpoints`` of the repository.
        max_bytes: refuse a larger file (checkpoints are committed: keep them small).

    Returns:
        The path of the ``.pt`` file.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    pt, sidecar = _paths(name, folder)
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    for key, kind in _REQUIRED_META.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise ValueError(f"meta[{key!r}] must be given ({kind}); got {meta.get(key)!r}")
    buffer = io.BytesIO()  # saved in memory first: the archive then has the same bytes
    # a DensityModel's state_dict also holds its extra state (a dict of plain values)
    torch.save({k: v.detach().cpu() if isinstance(v, torch.Tensor) else v
                for k, v in model.state_dict().items()}, buffer)
    data = buffer.getvalue()
    if len(data) > max_bytes:
        raise ValueError(f"checkpoint {name!r} would be {len(data)} bytes, over max_bytes="
                         f"{max_bytes}: committed checkpoints must stay small")
    pt.parent.mkdir(parents=True, exist_ok=True)
    pt.write_bytes(data)
    record_ = {**meta, "name": name, "sha256": hashlib.sha256(data).hexdigest(),
               "bytes": len(data), "torch": torch.__version__, "dgm_lab": dgm_lab.__version__,
               "date": datetime.date.today().isoformat()}
    sidecar.write_text(json.dumps(record_, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return pt


def checkpoint_meta(name: str, *, folder: str | os.PathLike | None = None) -> dict:
    """The JSON record of checkpoint ``name`` (``FileNotFoundError`` names the command)."""
    _, sidecar = _paths(name, folder)
    if not sidecar.is_file():
        raise FileNotFoundError(f"no checkpoint {name!r} in {sidecar.parent}: make it with "
                                f"`{MAKE_CHECKPOINTS} {name}`")
    return json.loads(sidecar.read_text(encoding="utf-8"))


def load_checkpoint(name: str, model: nn.Module, *,
                    figure: Callable[[nn.Module], float] | None = None, atol: float = 1e-6,
                    folder: str | os.PathLike | None = None) -> dict:
    """Load checkpoint ``name`` into ``model`` (on its device) and return its record.

    Arguments:
        name: the checkpoint, e.g. ``"ch07_vae_digits"``.
        model: a freshly built model of the same architecture.
        figure: if given, ``figure(model)`` is computed after loading and must equal the
            recorded ``value`` to within ``atol``: the checkpoint still reproduces its figure.
        atol: absolute tolerance of that comparison.
        folder: default ``benchmarks/checkpoints`` of the repository.

    Raises:
        FileNotFoundError: the checkpoint is missing (the message names the command to make it).
        ValueError: the file does not match its recorded hash, or the figure does not match.

    Example:
        >>> meta = load_checkpoint("ch07_vae_digits", VAE(), figure=test_nll)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    pt, _ = _paths(name, folder)
    meta = checkpoint_meta(name, folder=folder)
    if not pt.is_file():
        raise FileNotFoundError(f"checkpoint file {pt} is missing: make it with "
                                f"`{meta.get('command', MAKE_CHECKPOINTS + ' ' + name)}`")
    data = pt.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise ValueError(f"{pt} does not match the SHA-256 in its record: it was changed or "
                         f"regenerated without its .json; run `{meta['command']}`")
    first = next(iter([*model.parameters(), *model.buffers()]), None)
    where = first.device if first is not None else torch.device("cpu")
    model.load_state_dict(torch.load(io.BytesIO(data), map_location=where, weights_only=True))
    if figure is not None:
        got = float(figure(model))
        if not math.isclose(got, meta["value"], rel_tol=0.0, abs_tol=atol):
            raise ValueError(f"checkpoint {name!r} records {meta['metric']} = {meta['value']}, "
                             f"but the loaded model gives {got}: regenerate it with "
                             f"`{meta['command']}`")
    return meta
