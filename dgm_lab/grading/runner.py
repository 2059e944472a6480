"""The program that runs a student's answers inside the grading sandbox, and the safe data format.

This file is copied into every grading job folder and run there, as a script, by a Python that
sees only the standard library and the packages a lab allows (torch and numpy by default): it
must not import ``dgm_lab``, and it holds nothing secret. Everything it writes is untrusted: the
student's code runs in the same process and may have replaced any part of it. The grader reads
what comes back with :func:`read_tree`, which checks every type and size.

The protocol, for ``python runner.py JOB OUT PROGRESS_FD [--skip-cells 0,2] [--skip-exercises 1]``:

1. read ``JOB/job.json``: the preamble (the lab's imports cell), the answer cells, the
   exercises (function name, number of cases);
2. run the preamble, then each answer cell, in one namespace; report ``ready``, then
   ``cell I start`` / ``cell I end`` on the progress file descriptor, and the error a cell
   raised (if any) in ``OUT/cells.json``;
3. for each exercise I: read its inputs ``JOB/in/exI`` (one ``[args, kwargs]`` per case), call
   the function on each case (:func:`call`; with the gradients the exercise asks for), write
   the returned values (or the error) to ``OUT/exI``, framed by ``exercise I start`` /
   ``exercise I end``; then ``done``.

The grader enforces the time limits from outside, kills the process when an exercise runs too
long or the process dies, and starts this program again with the finished and failed stages
skipped.

**The safe format.** A *tree* is ``None``, a bool, an int, a float, a str, a numpy array, a
torch tensor, or a tuple / list / str-keyed dict of trees. :func:`write_tree` stores it as
``PREFIX.npz`` (every array, ``numpy.savez``: no pickle) and ``PREFIX.json`` (the nesting, with
each tensor's torch dtype). :func:`read_tree` loads it back with ``allow_pickle=False`` after
checking the manifest, the archive's member names and sizes, and every array's dtype. A value
that is none of these (a module, a generator, ...) is written as an ``unsupported`` node naming
its type, so the grader can say what the function returned.
"""

from __future__ import annotations

import builtins
import inspect
import json
import os
import signal
import sys
import time
import traceback
import zipfile
from typing import Any

if __name__ == "__main__":
    # Run in the sandbox with `python -I -S`: the allowed packages' folders (listed in the job)
    # go on the path before numpy is imported.
    with open(os.path.join(sys.argv[1], "job.json"), encoding="utf-8") as _fh:
        sys.path.extend(json.load(_fh)["site_dirs"])

import numpy as np  # noqa: E402

# Bound before any student code runs, so an answer that replaces numpy.savez or json.dump
# (both are module attributes it can reach) cannot silently change what this file writes.
_savez, _json_dump = np.savez, json.dump

FORMAT = "dgm-grading-tree/1"
# Bounds on what read_tree accepts (the student's process writes the outputs).
MAX_MANIFEST_BYTES = 4 << 20
MAX_NODES = 100_000
MAX_DEPTH = 32
MAX_STRING = 20_000
MAX_ARRAYS = 10_000
# Array kinds that carry plain numbers: bool, signed / unsigned int, float, complex.
NUMBER_KINDS = "biufc"
# torch dtypes numpy has no twin for travel as float32 and are cast back.
_VIA_FLOAT32 = {"bfloat16"}
TORCH_DTYPES = (
    "bool", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
)


class UnsafeData(ValueError):
    """What came back from the sandbox is not a well-formed tree within the limits."""


# ----------------------------------------------------------------------------- the safe format


def _torch() -> Any:
    """The torch module when it is importable here (the grader; the sandbox of a torch lab)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def _type_name(obj: object) -> str:
    kind = type(obj)
    module = getattr(kind, "__module__", "") or ""
    name = getattr(kind, "__qualname__", "?")
    return name if module == "builtins" else f"{module}.{name}"


def encode(obj: object, arrays: dict[str, np.ndarray], depth: int = 0) -> dict:
    """The manifest node of ``obj``; its arrays go into ``arrays`` under fresh keys."""
    if depth > MAX_DEPTH:
        return {"t": "unsupported", "type": "structure nested too deeply"}
    if obj is None:
        return {"t": "none"}
    if isinstance(obj, bool):
        return {"t": "bool", "v": bool(obj)}
    if isinstance(obj, int):
        text = int.__repr__(obj)
        return {"t": "int", "v": text} if len(text) <= 200 else {"t": "unsupported",
                                                                 "type": "int with > 200 digits"}
    if isinstance(obj, float):
        return {"t": "float", "v": float.__repr__(obj)}
    if isinstance(obj, str):
        return {"t": "str", "v": str.__str__(obj)[:MAX_STRING]}
    torch = _torch() if "torch" in sys.modules else None
    if torch is not None and isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu()
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype not in TORCH_DTYPES or tensor.is_sparse or tensor.is_quantized:
            return {"t": "unsupported", "type": f"torch.Tensor of {tensor.dtype} / {tensor.layout}"}
        if dtype in _VIA_FLOAT32:
            tensor = tensor.float()
        key = f"a{len(arrays)}"
        arrays[key] = tensor.resolve_conj().resolve_neg().contiguous().numpy()
        return {"t": "tensor", "k": key, "dtype": dtype}
    if isinstance(obj, (np.ndarray, np.generic)):
        array = np.asarray(obj)
        if array.dtype.kind not in NUMBER_KINDS:
            return {"t": "unsupported", "type": f"numpy array of dtype {array.dtype}"}
        key = f"a{len(arrays)}"
        arrays[key] = np.array(array, order="C")  # (ascontiguousarray would make 0-d 1-d)
        return {"t": "ndarray" if isinstance(obj, np.ndarray) else "npscalar", "k": key}
    if isinstance(obj, (tuple, list)):
        return {"t": "tuple" if isinstance(obj, tuple) else "list",
                "items": [encode(item, arrays, depth + 1) for item in obj]}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            return {"t": "unsupported", "type": "dict with keys that are not str"}
        return {"t": "dict", "items": [[k, encode(v, arrays, depth + 1)] for k, v in obj.items()]}
    return {"t": "unsupported", "type": _type_name(obj)[:200]}


def write_tree(prefix: str, tree: object) -> None:
    """Store ``tree`` as ``prefix.npz`` + ``prefix.json``; the manifest is renamed in last, so a
    reader that finds ``prefix.json`` finds a complete pair."""
    arrays: dict[str, np.ndarray] = {}
    manifest = {"format": FORMAT, "root": encode(tree, arrays)}
    with open(prefix + ".tmp.npz", "wb") as fh:
        _savez(fh, **arrays)
    with open(prefix + ".tmp.json", "w", encoding="utf-8") as fh:
        _json_dump(manifest, fh)
    os.replace(prefix + ".tmp.npz", prefix + ".npz")
    os.replace(prefix + ".tmp.json", prefix + ".json")


def _check_archive(path: str, keys: set[str], max_bytes: int) -> None:
    """The archive holds exactly ``KEY.npy`` for the manifest's keys, within ``max_bytes``."""
    if os.path.getsize(path) > max_bytes + 65536 * (1 + len(keys)):
        raise UnsafeData(f"{os.path.basename(path)} is larger than {max_bytes} bytes")
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if len(members) > MAX_ARRAYS:
            raise UnsafeData("too many arrays")
        names = {m.filename for m in members}
        if names != {f"{k}.npy" for k in keys}:
            raise UnsafeData("the arrays do not match the manifest")
        if sum(m.file_size for m in members) > max_bytes:
            raise UnsafeData(f"the arrays hold more than {max_bytes} bytes")


def read_tree(prefix: str, max_bytes: int = 256 << 20) -> object:
    """Load a tree written by :func:`write_tree`, checking it as untrusted data.

    Arguments:
        prefix: path without the ``.json`` / ``.npz`` suffix.
        max_bytes: the most bytes the arrays may hold together (uncompressed).

    Returns:
        the tree, with torch tensors (of their recorded dtype) where tensors were written
        (numpy arrays when torch is not importable here).

    Raises:
        UnsafeData: a symbolic link, a malformed manifest, an unknown node, an array that is
            missing, not listed, too large, or not of a plain number dtype (no pickled objects
            are loaded).
        FileNotFoundError: no ``prefix.json``.

    Example:
        >>> write_tree("/tmp/t", (np.ones(3), {"n": 2}))
        >>> read_tree("/tmp/t")
        (array([1., 1., 1.]), {'n': 2})
    """
    if os.path.islink(prefix + ".json") or os.path.islink(prefix + ".npz"):
        raise UnsafeData("the output is a symbolic link")  # it could point at a grader's file
    if os.path.getsize(prefix + ".json") > MAX_MANIFEST_BYTES:
        raise UnsafeData("the manifest is too large")
    try:
        with open(prefix + ".json", encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (ValueError, RecursionError, UnicodeDecodeError) as err:
        raise UnsafeData(f"the manifest is not valid JSON ({type(err).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UnsafeData("the manifest is not a grading tree")
    keys: set[str] = set()
    count = [0]

    def collect(node: object, depth: int) -> None:
        count[0] += 1
        if count[0] > MAX_NODES or depth > MAX_DEPTH:
            raise UnsafeData("the tree is too large or too deep")
        if not isinstance(node, dict) or not isinstance(node.get("t"), str):
            raise UnsafeData("a node of the manifest is not an object with a type")
        kind = node["t"]
        if kind in ("tensor", "ndarray", "npscalar"):
            key = node.get("k")
            if not isinstance(key, str) or not key.isidentifier() or key in keys:
                raise UnsafeData("an array key is invalid or repeated")
            keys.add(key)
        elif kind in ("tuple", "list"):
            items = node.get("items")
            if not isinstance(items, list):
                raise UnsafeData(f"a {kind} node has no items")
            for item in items:
                collect(item, depth + 1)
        elif kind == "dict":
            items = node.get("items")
            if not isinstance(items, list) or not all(
                    isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                    and len(p[0]) <= MAX_STRING for p in items):
                raise UnsafeData("a dict node is malformed")
            for _, item in items:
                collect(item, depth + 1)

    collect(manifest.get("root"), 0)
    arrays: dict[str, np.ndarray] = {}
    if keys:
        _check_archive(prefix + ".npz", keys, max_bytes)
        with np.load(prefix + ".npz", allow_pickle=False) as data:
            for key in keys:
                try:
                    array = data[key]
                except ValueError as err:  # an object array: refused without unpickling it
                    raise UnsafeData(f"array {key} cannot be loaded without pickle") from err
                if array.dtype.kind not in NUMBER_KINDS or array.dtype.hasobject:
                    raise UnsafeData(f"array {key} has dtype {array.dtype}")
                arrays[key] = array
    return _decode(manifest["root"], arrays)


def _decode(node: dict, arrays: dict[str, np.ndarray]) -> object:
    kind = node["t"]
    value = node.get("v")
    if kind == "none":
        return None
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and isinstance(value, str) and len(value) <= 200:
        try:
            return int(value)
        except ValueError:
            pass
    if kind == "float" and isinstance(value, str) and len(value) <= 40:
        try:
            return float(value)
        except ValueError:
            pass
    if kind == "str" and isinstance(value, str) and len(value) <= MAX_STRING:
        return value
    if kind in ("tuple", "list"):
        items = [_decode(item, arrays) for item in node["items"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {k: _decode(item, arrays) for k, item in node["items"]}
    if kind == "ndarray":
        return arrays[node["k"]]
    if kind == "npscalar":
        return arrays[node["k"]][()] if arrays[node["k"]].ndim == 0 else arrays[node["k"]]
    if kind == "tensor":
        dtype = node.get("dtype")
        if dtype not in TORCH_DTYPES:
            raise UnsafeData(f"unknown tensor dtype {str(dtype)[:40]!r}")
        array = arrays[node["k"]]
        torch = _torch()  # imported only when a tensor is read (slow; absent in numpy labs)
        if torch is None:
            return array
        tensor = torch.from_numpy(np.array(array, copy=True))
        return tensor.to(getattr(torch, dtype))
    if kind == "unsupported" and isinstance(node.get("type"), str):
        return Unsupported(node["type"][:200])
    raise UnsafeData(f"malformed {kind[:40]!r} node")


class Unsupported:
    """Stands for a returned value the safe format cannot carry; says its type."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unsupported) and other.type_name == self.type_name

    __hash__ = None  # type: ignore[assignment]


# ----------------------------------------------------------------------------- in the sandbox


def describe_error(err: BaseException) -> dict:
    """What the grader needs to know about an exception raised by the student's code."""
    try:
        message = str(err)
    except BaseException:  # noqa: BLE001 - a student's exception may break even str()
        message = "<the exception could not be printed>"
    info: dict[str, object] = {"type": _type_name(err)[:200], "message": message[:1000]}
    if isinstance(err, ImportError) and isinstance(getattr(err, "name", None), str):
        info["module"] = err.name[:200]
    if isinstance(err, SystemExit):
        code = err.code
        info["exit_code"] = code if isinstance(code, int) and not isinstance(code, bool) else (
            0 if code is None else 1)
    memory = isinstance(err, MemoryError) or (
        isinstance(err, RuntimeError) and "can't allocate memory" in message)
    if memory:
        info["memory"] = True
    # The line of the student's own code where it happened: the deepest frame in an answer cell
    # (for a syntax error, the place the compiler reports).
    where = [(f.filename, f.lineno) for f in traceback.extract_tb(err.__traceback__)]
    if isinstance(err, SyntaxError):
        where.append((err.filename, err.lineno))
        info["message"] = str(err.msg)[:1000]
    where = [(f, n) for f, n in where if isinstance(f, str) and f.startswith("<answer ")]
    if where:
        info["cell"] = where[-1][0][len("<answer "):-1][:200]
        info["line"] = where[-1][1] or 0
    return info


class _Shell:
    """The little of IPython an answer cell may reach after its magics were translated:
    line magics and shell escapes do nothing, a cell magic (``%%time``) runs its body."""

    def __init__(self, namespace: dict) -> None:
        self._namespace = namespace

    def run_line_magic(self, *args: object, **kwargs: object) -> None:
        return None

    def run_cell_magic(self, name: str, line: str, cell: str) -> None:
        exec(compile(cell, "<answer magic>", "exec"), self._namespace)  # noqa: S102

    def system(self, *args: object, **kwargs: object) -> None:
        return None

    getoutput = system


NOT_DIFFERENTIABLE = "not-differentiable"


def call(function: Any, args: Any, kwargs: Any, gradient_of: Any = ()) -> dict:
    """Call the student's function on one case: ``{"value": ..., "seconds": ...}``, or
    ``{"error": ...}`` when it raises.

    With ``gradient_of`` (positions of floating-point tensor arguments), those arguments are
    given ``requires_grad=True`` and the result also holds ``"gradient"``: the gradient of the
    sum of the returned tensor (of every returned tensor, for a tuple or list of them, such as
    a flow layer's ``(z, logdet)``) with respect to each of them (``None`` for one the value
    does not depend on through autograd), or :data:`NOT_DIFFERENTIABLE` when the returned
    value carries no gradient at all (detached, computed under ``torch.no_grad()``, a number).
    This is how a check tells a loss that can train a network from one that only has its value.

    A tensor or array argument that the function changed in place is named in
    ``"changed"`` (the exercises ask for new values; a caller's data must not change).
    """
    start = time.perf_counter()
    try:
        inputs = []
        if gradient_of:
            args = list(args)
            for index in gradient_of:
                args[index] = args[index].detach().requires_grad_(True)
                inputs.append(args[index])
        before = _snapshot(function, args, kwargs)
        value = function(*args, **kwargs)
        result = {"value": value, "seconds": time.perf_counter() - start}
        changed = [name for name, arg, copy in before if not _same(arg, copy)]
        if changed:
            result["changed"] = changed
        if gradient_of:
            result["gradient"] = _gradient(value, inputs)
        return result
    except BaseException as err:  # noqa: BLE001 - whatever the student's code raises
        return {"error": describe_error(err)}


def _snapshot(function: Any, args: Any, kwargs: Any) -> list[tuple[str, Any, Any]]:
    """``(name, argument, copy)`` for every tensor / array argument, named as the function's
    parameters are (``argument 2`` when its signature cannot be read)."""
    try:
        names = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        names = []
    named = [(names[i] if i < len(names) else f"argument {i + 1}", a) for i, a in enumerate(args)]
    named += list(kwargs.items())
    out = []
    for name, arg in named:
        if isinstance(arg, np.ndarray):
            out.append((name, arg, arg.copy()))
        elif _is_tensor(arg):
            out.append((name, arg, arg.detach().clone()))
    return out


def _is_tensor(value: object) -> bool:
    torch = sys.modules.get("torch")  # only a lab that imports torch can pass a tensor
    return torch is not None and isinstance(value, torch.Tensor)


def _same(arg: Any, copy: Any) -> bool:
    """Whether ``arg`` still holds what ``copy`` does (NaN equal to NaN)."""
    if isinstance(arg, np.ndarray):
        return arg.shape == copy.shape and arg.dtype == copy.dtype and bool(
            np.array_equal(arg, copy, equal_nan=arg.dtype.kind in "fc"))
    if arg.shape != copy.shape or arg.dtype != copy.dtype:
        return False
    arg = arg.detach()
    if arg.is_floating_point() or arg.is_complex():
        return bool(_torch().equal(arg.isnan(), copy.isnan())
                    and _torch().equal(arg.nan_to_num(0.0), copy.nan_to_num(0.0)))
    return bool(_torch().equal(arg, copy))


def _gradient(value: object, inputs: list) -> object:
    """The gradient of ``value.sum()``, or of the sum of every part of a returned tuple or
    list of tensors, with respect to ``inputs`` (see :func:`call`). A part that carries no
    gradient adds nothing, so a half-detached answer gets a gradient unlike the reference's."""
    torch = _torch()
    parts = value if isinstance(value, (tuple, list)) else (value,)
    if not (parts and all(isinstance(p, torch.Tensor) and p.is_floating_point() for p in parts)):
        return NOT_DIFFERENTIABLE
    live = [p.sum() for p in parts if p.requires_grad]
    if not live:
        return NOT_DIFFERENTIABLE
    return list(torch.autograd.grad(sum(live), inputs, allow_unused=True))


def _parse_indices(text: str) -> set[int]:
    return {int(part) for part in text.split(",") if part.strip()}


def main(argv: list[str]) -> int:
    """Run the job (see the module docstring); returns the exit code."""
    job_dir, out_dir, fd = argv[0], argv[1], int(argv[2])
    skip_cells: set[int] = set()
    skip_exercises: set[int] = set()
    rest = argv[3:]
    while rest:
        flag, value, rest = rest[0], rest[1], rest[2:]
        if flag == "--skip-cells":
            skip_cells = _parse_indices(value)
        elif flag == "--skip-exercises":
            skip_exercises = _parse_indices(value)
    progress = os.fdopen(fd, "w", buffering=1)

    def say(line: str) -> None:
        progress.write(line + "\n")
        progress.flush()

    # A file over the size limit must raise OSError in the writer, not kill the process.
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    with open(os.path.join(job_dir, "job.json"), encoding="utf-8") as fh:
        job = json.load(fh)
    if job.get("torch"):
        import torch

        torch.set_num_threads(int(job["threads"]))
    namespace: dict[str, object] = {"__name__": "__main__", "__builtins__": builtins}
    namespace["get_ipython"] = lambda: _Shell(namespace)
    # The preamble is the lab's own imports cell (from the instructor's source notebook): if it
    # fails, the grading environment is broken, which the grader reports to the instructor.
    exec(compile(job["preamble"], "<imports>", "exec"), namespace)  # noqa: S102
    say("ready")

    cell_errors: dict[str, dict] = {}
    for index, cell in enumerate(job["cells"]):
        if index in skip_cells:
            continue
        say(f"cell {index} start")
        try:
            exec(compile(cell["source"], f"<answer {cell['id']}>", "exec"), namespace)  # noqa: S102
        except BaseException as err:  # noqa: BLE001 - whatever the student's cell raises
            cell_errors[cell["id"]] = describe_error(err)
        say(f"cell {index} end")
    write_tree(os.path.join(out_dir, "cells"), cell_errors)

    for index, exercise in enumerate(job["exercises"]):
        if index in skip_exercises:
            continue
        say(f"exercise {index} start")
        cases = read_tree(os.path.join(job_dir, "in", f"ex{index}"))
        function = namespace.get(exercise["function"])
        results = []
        for args, kwargs in cases:
            if not callable(function):
                results.append({"error": {"type": "undefined", "message": exercise["function"]}})
                continue
            results.append(call(function, args, kwargs, exercise.get("gradient_of", [])))
        try:
            write_tree(os.path.join(out_dir, f"ex{index}"), results)
        except Exception as err:  # noqa: BLE001 - e.g. the output is larger than the file limit
            write_tree(os.path.join(out_dir, f"ex{index}"),
                       [{"error": {"type": "output", "message": describe_error(err)["message"]}}]
                       * len(results))
        say(f"exercise {index} end")
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
