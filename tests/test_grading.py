"""Unit tests of dgm_lab.grading: the safe data format, the comparisons, the check files, the
sandbox and its limits, grade_submission on small numpy-only labs, the nbgrader outputs, and
collect_zip. The real labs through the real nbgrader pipeline are in tests/test_labs.py.

The sandbox tests need bubblewrap (Debian package ``bubblewrap``); where it cannot run they skip
with the reason, and grading falls back to a plain subprocess (tested here too).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import stat
import subprocess
import textwrap
import threading
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dgm_lab.grading import (
    Case,
    CheckFileError,
    Exercise,
    Lab,
    LabSource,
    Limits,
    SandboxError,
    UnreadableNotebook,
    UnsafeArchive,
    Unsupported,
    all_of,
    close,
    collect_zip,
    each,
    exact,
    grade_submission,
    keeps_dtype,
    load_lab,
    read_notebook,
    runner,
    sandbox,
    satisfies,
)
from dgm_lab.grading.autograde import verdict_outputs, write_verdicts
from dgm_lab.grading.checks import compare_values
from dgm_lab.grading.grader import (
    CaseResult,
    Report,
    Verdict,
    answer_cells,
    gradient_problem,
    partial_score,
)

ROOT = Path(__file__).resolve().parents[1]
SANDBOX = sandbox.status(("numpy",), "auto")
# CI sets DGM_GRADING_SANDBOX=bwrap: there a sandbox that does not start fails the tests.
REQUIRED = os.environ.get("DGM_GRADING_SANDBOX") == "bwrap"
needs_sandbox = pytest.mark.skipif(
    not SANDBOX.sandboxed and not REQUIRED, reason=f"bubblewrap cannot run here: {SANDBOX.warning}")
# Short limits keep the adversarial cases quick; the solutions of these tiny labs take ms.
FAST = Limits(exercise_seconds=4, notebook_seconds=60, memory_bytes=1 << 30)


# ----------------------------------------------------------------------------- the safe format


def same_tree(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return (isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape
                and bool(torch.equal(a.float().nan_to_num(7.0) if a.is_floating_point() else a,
                                     b.float().nan_to_num(7.0) if b.is_floating_point() else b)))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, True)
    if isinstance(a, (tuple, list)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(same_tree(x, y) for x, y in zip(a, b, strict=True)))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_tree(a[k], b[k])
                                                                    for k in a)
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and np.isnan(b)
    return type(a) is type(b) and a == b


def test_tree_round_trip_keeps_types_dtypes_and_nesting(tmp_path):
    tensors = [torch.arange(6, dtype=getattr(torch, name)).reshape(2, 3)
               for name in ("int8", "uint8", "int16", "int32", "int64", "float16", "bfloat16",
                            "float32", "float64")]
    tree = {
        "tensors": tuple(tensors),
        "special": [torch.tensor([True, False]), torch.tensor([1 + 2j], dtype=torch.complex64),
                    torch.tensor([float("nan"), float("inf"), -0.0], dtype=torch.float64),
                    torch.zeros(0, 3), torch.tensor(3.5)],
        "numpy": [np.arange(4.0), np.int64(7)],
        "plain": [None, True, 3, -(10**40), 2.5, float("nan"), float("-inf"), "text"],
        "grad": torch.ones(2, requires_grad=True) * 2,
    }
    runner.write_tree(str(tmp_path / "t"), tree)
    back = runner.read_tree(str(tmp_path / "t"))
    expected = {**tree, "grad": tree["grad"].detach(),
                "numpy": [np.arange(4.0), np.int64(7)]}
    assert same_tree({k: v for k, v in expected.items() if k != "numpy"},
                     {k: v for k, v in back.items() if k != "numpy"})
    assert same_tree(back["numpy"][0], np.arange(4.0))
    assert back["numpy"][1] == 7 and isinstance(back["numpy"][1], np.int64)


def test_values_the_format_cannot_carry_come_back_as_unsupported_with_their_type(tmp_path):
    tree = [(i for i in range(3)), torch.nn.Linear(2, 2), {1: "int key"},
            np.array(["a", "b"]), np.array([object()], dtype=object), torch.zeros(2).to_sparse()]
    runner.write_tree(str(tmp_path / "t"), tree)
    back = runner.read_tree(str(tmp_path / "t"))
    assert all(isinstance(item, Unsupported) for item in back)
    assert back[0].type_name == "generator"
    assert back[1].type_name == "torch.nn.modules.linear.Linear"
    assert "not str" in back[2].type_name and "<U1" in back[3].type_name


def _manifest(tmp_path: Path, root: object, arrays: dict | None = None,
              fmt: str = runner.FORMAT) -> str:
    prefix = str(tmp_path / "m")
    with open(prefix + ".npz", "wb") as fh:
        np.savez(fh, **(arrays or {}))
    Path(prefix + ".json").write_text(json.dumps({"format": fmt, "root": root}))
    return prefix


class _Boom:
    """Unpickling this object would create a file: proves read_tree never unpickles."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_read_tree_never_unpickles_an_object_array(tmp_path):
    marker = tmp_path / "unpickled"
    prefix = _manifest(tmp_path, {"t": "ndarray", "k": "a0"},
                       {"a0": np.array([_Boom(str(marker))], dtype=object)})
    with pytest.raises(runner.UnsafeData, match="pickle|dtype"):
        runner.read_tree(prefix)
    assert not marker.exists()


@pytest.mark.parametrize("root, arrays, match", [
    ({"t": "weird"}, None, "malformed"),
    ({"t": "tensor", "k": "a0", "dtype": "float64"}, None, "do not match"),
    ({"t": "ndarray", "k": "a0"}, {"a0": np.ones(2), "a1": np.ones(2)}, "do not match"),
    ({"t": "ndarray", "k": "../x"}, None, "key"),
    ({"t": "tensor", "k": "a0", "dtype": "object"}, {"a0": np.ones(2)}, "dtype"),
    ({"t": "float", "v": "1" * 100}, None, "malformed"),
    ({"t": "str", "v": 3}, None, "malformed"),
    ({"t": "list", "items": "no"}, None, "no items"),
    ({"t": "dict", "items": [[1, {"t": "none"}]]}, None, "dict node"),
    ("not a node", None, "not an object"),
])
def test_read_tree_refuses_malformed_manifests(tmp_path, root, arrays, match):
    with pytest.raises(runner.UnsafeData, match=match):
        runner.read_tree(_manifest(tmp_path, root, arrays))


def test_read_tree_refuses_deep_large_and_foreign_data(tmp_path):
    deep: dict = {"t": "none"}
    for _ in range(runner.MAX_DEPTH + 2):
        deep = {"t": "list", "items": [deep]}
    with pytest.raises(runner.UnsafeData, match="too large or too deep"):
        runner.read_tree(_manifest(tmp_path, deep))
    wide = {"t": "list", "items": [{"t": "none"}] * (runner.MAX_NODES + 1)}
    with pytest.raises(runner.UnsafeData, match="too large or too deep"):
        runner.read_tree(_manifest(tmp_path, wide))
    with pytest.raises(runner.UnsafeData, match="not a grading tree"):
        runner.read_tree(_manifest(tmp_path, {"t": "none"}, fmt="pickle"))
    big = _manifest(tmp_path, {"t": "ndarray", "k": "a0"}, {"a0": np.zeros(1000)})
    with pytest.raises(runner.UnsafeData, match="more than 4000 bytes|larger than"):
        runner.read_tree(big, max_bytes=4000)
    # a compressed "zip bomb": tiny on disk, huge once expanded
    prefix = str(tmp_path / "bomb")
    with open(prefix + ".npz", "wb") as fh:
        np.savez_compressed(fh, a0=np.zeros(5_000_000))
    Path(prefix + ".json").write_text(json.dumps({"format": runner.FORMAT,
                                                  "root": {"t": "ndarray", "k": "a0"}}))
    assert os.path.getsize(prefix + ".npz") < 100_000
    with pytest.raises(runner.UnsafeData, match="more than"):
        runner.read_tree(prefix, max_bytes=1 << 20)
    Path(prefix + ".json").write_text("{not json")
    with pytest.raises(runner.UnsafeData, match="not valid JSON"):
        runner.read_tree(prefix)
    secret = tmp_path / "grader_file.json"
    secret.write_text(json.dumps({"format": runner.FORMAT, "root": {"t": "str", "v": "secret"}}))
    os.symlink(secret, tmp_path / "link.json")
    with pytest.raises(runner.UnsafeData, match="symbolic link"):
        runner.read_tree(str(tmp_path / "link"))


# ----------------------------------------------------------------------------- comparisons


def case(expected: object, **kw: object) -> Case:
    return Case(expected=expected, **kw)


def test_close_reports_type_shape_dtype_and_non_finite_values():
    check = close(rtol=1e-5, atol=1e-8)
    exp = torch.zeros(37, dtype=torch.float64)
    assert check(exp.clone(), case(exp)) is None
    assert check(exp.float(), case(exp)) is None  # same dtype kind: float32 for float64 is fine
    assert check(torch.zeros(37, 1), case(exp)) == "wrong shape: expected (37,), got (37, 1)"
    assert check(np.zeros(37), case(exp)) == (
        "returned a numpy array of shape (37,); expected a torch.Tensor")
    assert check(None, case(exp)) == (
        "returned None; expected a torch.Tensor (did you forget `return`?)")
    assert check(Unsupported("generator"), case(exp)) == (
        "returned a generator; expected a torch.Tensor")
    assert check(torch.zeros(37, dtype=torch.int64), case(exp)) == (
        "wrong dtype: expected floating-point values, got torch.int64")
    bad = exp.clone()
    bad[4] = float("nan")
    assert check(bad, case(exp)) == ("contains NaN at index (4,) where the reference is finite "
                                     "(1 NaN entries in all)")
    bad[4] = float("inf")
    assert check(bad, case(exp)).startswith("contains an infinite value at index (4,)")
    # where the reference itself is infinite, the same infinity is right and anything else wrong
    ref = torch.tensor([0.0, -float("inf")], dtype=torch.float64)
    assert check(torch.tensor([0.0, -float("inf")]), case(ref)) is None
    assert "the reference is -inf" in check(torch.tensor([0.0, -1e30]), case(ref))


def test_close_names_a_narrower_float_dtype_when_the_values_differ():
    """A float32 answer for float64 inputs that misses the tolerance is told why: its dtype."""
    x = torch.linspace(0, 1, 7, dtype=torch.float64)
    exp = x / 3
    tight = close(rtol=1e-12, atol=0.0)
    message = tight((x.float() / 3), case(exp, args=(x,)))
    assert message.startswith("wrong dtype: expected float64, got float32; values differ"), message
    assert tight(x / 3, case(exp, args=(x,))) is None
    assert close()((x.float() / 3), case(exp, args=(x,))) is None  # within tolerance: fine
    # float32 inputs: float32 is the right dtype, the difference is about the values only
    assert tight(x.float() / 3, case(exp, args=(x.float(),))).startswith("values differ")
    assert tight(x.float() / 3, case(exp, args=([x.float()],))).startswith("values differ")
    # float32 tensors beside Python numbers (a label, a mean): float32 is still right
    assert tight(x.float() / 3, case(exp, args=(x.float(), 0.9))).startswith("values differ")
    assert tight(x.float() / 3, case(exp, args=(x.float(),), kwargs={"mu": 1.5})).startswith(
        "values differ")
    # no floating input (a size, a count): the reference's dtype is what was wanted
    assert "expected float64, got float32" in tight(x.float() / 3, case(exp, args=(7,)))
    # a number: a float32 0-dim tensor or numpy scalar for a Python float, inside a tuple too
    third = 1 / 3
    assert tight(torch.tensor(third), case(third, args=(x,))).startswith(
        "wrong dtype: expected float64, got float32; value differs")
    assert "got float32" in tight((np.float32(third),), case((third,), args=([x],)))
    assert tight(torch.tensor(0.5), case(1.0, args=(x,))) == (  # both problems are named
        "wrong dtype: expected float64, got float32; value differs from the reference: "
        "largest error 0.5")


def test_keeps_dtype_refuses_a_result_of_another_dtype_on_every_case():
    """close() lets a float32 result of float64 inputs through when its rounding stays inside
    the tolerance (so a float32 answer passes some random cases and fails others);
    keeps_dtype refuses it whatever the values, in a returned tuple too, naming the value."""
    x = torch.linspace(0, 1, 7, dtype=torch.float64)
    check = keeps_dtype(close(rtol=1e-5))
    assert close(rtol=1e-5)(x.float(), case(x, args=(x,))) is None  # the lottery it closes
    assert check(x.float(), case(x, args=(x,))) == (
        "wrong dtype: the inputs are float64, the result is float32: keep the inputs' dtype")
    assert check(x.clone(), case(x, args=(x,))) is None
    assert check(x.clone(), case(x, args=(x,), kwargs={"y": x})) is None
    assert check(x.float(), case(x.float(), args=(x.float(), 3))) is None  # float32 inputs
    assert check(x, case(x.float(), args=(x.float(),))).endswith("the result is float64: "
                                                                 "keep the inputs' dtype")
    assert "inputs are float64" in check(x.float(), case(x, args=([x, x],)))  # inside a list
    assert "inputs are float64" in check(x.float(), case(x, kwargs={"y": x}))
    # a tuple: each tensor of it, named
    pair = keeps_dtype(close(names=("log_p", "a")), names=("log_p", "a"))
    assert pair((x, x.float()), case((x, x), args=(x,))) == (
        "wrong dtype: the inputs are float64, a is float32: keep the inputs' dtype")
    assert "value 2 of the result is float32" in keeps_dtype(close())(
        [x, x.float()], case((x, x), args=(x,)))
    assert pair((x, x), case((x, x), args=(x,))) is None
    # an integer result is refused by name too; wrong values still reach the comparison
    assert "the result is int64" in check(x.long(), case(x, args=(x,)))
    assert check(x + 1, case(x, args=(x,))).startswith("values differ")
    # no floating input, or mixed ones: nothing to keep, the comparison decides
    assert check(x.float(), case(x, args=(7,))) is None
    assert check(x.float(), case(x, args=(x, x.float()))) is None
    with pytest.raises(TypeError, match="compare must be callable"):
        keeps_dtype(3)


def test_close_reports_how_many_values_differ_and_the_largest_error():
    exp = torch.zeros(4, 5, dtype=torch.float64)
    got = exp.clone()
    got[1, 2], got[3, 0] = 0.53, -0.2
    assert close()(got, case(exp)) == (
        "values differ from the reference on 10 % of entries (2 of 20); "
        "largest error 0.53 at index (1, 2)")
    many = torch.zeros(1000, dtype=torch.float64)
    many[10] = 1.0
    assert "less than 1 % of entries (1 of 1000)" in close()(many, case(torch.zeros(1000)))
    assert close()(torch.tensor(2.0), case(torch.tensor(1.0))) == (
        "value differs from the reference: largest error 1")


def test_close_tolerances_are_atol_plus_rtol_times_the_reference():
    exp = np.array([100.0, 0.0])
    assert compare_values(np.array([100.0 + 0.99e-2, 0.0]), exp, 1e-4, 0.0) is None
    assert compare_values(np.array([100.0 + 1.01e-2, 0.0]), exp, 1e-4, 0.0) is not None
    assert compare_values(np.array([100.0, 0.9e-3]), exp, 1e-4, 1e-3) is None
    assert compare_values(np.array([100.0, 1.1e-3]), exp, 1e-4, 1e-3) is not None


def test_close_relative_to_the_largest_entry_scales_rtol_by_each_arrays_largest_value():
    """For sums whose terms cancel (a float32 gradient over a batch): the error allowed on a
    small entry follows the largest entry of its own array, per array of a tuple or dict; NaN
    and infinities in the reference are not the largest entry."""
    exp = np.array([1000.0, 0.01, np.nan, np.inf])
    got = np.array([1000.0, 0.01 + 0.099, np.nan, np.inf])   # within 1e-4 * 1000
    assert compare_values(got, exp, 1e-4, 0.0, "largest") is None
    assert compare_values(got, exp, 1e-4, 0.0) is not None   # entry by entry it fails
    assert compare_values(np.array([1000.0, 0.01 + 0.101, np.nan, np.inf]), exp, 1e-4, 0.0,
                          "largest") is not None
    check = close(rtol=1e-4, atol=0.0, names=("big", "small"), relative_to="largest")
    big, small = torch.tensor([1000.0, 0.0]), torch.tensor([1.0, 0.0])
    assert check((big + torch.tensor([0.0, 0.09]), small), case((big, small))) is None
    assert check((big, small + torch.tensor([0.0, 0.09])), case((big, small))) == (
        "small: values differ from the reference on 50 % of entries (1 of 2); "
        "largest error 0.09 at index (1,)")
    assert close(rtol=1e-4, atol=0.0, relative_to="largest")(
        {"g": small + torch.tensor([0.0, 0.5e-4])}, case({"g": small})) is None
    with pytest.raises(ValueError, match="relative_to"):
        close(relative_to="max")


def test_close_compares_tuples_dicts_and_numbers_with_names():
    check = close(names=("log_prior", "means"))
    exp = (torch.zeros(3), torch.ones(2, 4))
    assert check((torch.zeros(3), torch.ones(2, 4)), case(exp)) is None
    assert check([torch.zeros(3), torch.ones(2, 4)], case(exp)) is None  # a list is fine
    assert check(torch.zeros(3), case(exp)) == (
        "returned a torch.Tensor of shape (3,); expected 2 values (log_prior, means)")
    assert check((torch.zeros(3),), case(exp)) == "returned 1 values; expected 2 (log_prior, means)"
    assert check((torch.zeros(3), torch.ones(4, 2)), case(exp)) == (
        "means: wrong shape: expected (2, 4), got (4, 2)")
    assert close()({"a": 1.0}, case({"a": 1.0})) is None
    assert "expected keys ['a']" in close()({"b": 1.0}, case({"a": 1.0}))
    assert close()(torch.tensor(0.5, dtype=torch.float64), case(0.5)) is None
    assert close()(1, case(1.0)) is None
    assert close()("0.5", case(0.5)) == "returned a str; expected a number"
    assert exact()(torch.tensor([0, 2]), case(torch.tensor([0, 1]))).startswith(
        "values differ from the reference on 50 %")
    assert exact()(True, case(True)) is None and exact()(False, case(True)) == (
        "returned False; expected True")
    with pytest.raises(ValueError, match="rtol"):
        close(rtol=-1)


def test_each_satisfies_and_all_of():
    exp = (torch.ones(3), torch.zeros(2))
    check = each(close(0, 0.5), close(0, 1e-9), names=("resp", "log_px"))
    assert check((torch.ones(3) + 0.4, torch.zeros(2)), case(exp)) is None
    assert check((torch.ones(3), torch.ones(2)), case(exp)).startswith("log_px: values differ")
    assert check(torch.ones(3), case(exp)).startswith("returned a torch.Tensor")
    # each() passes the case's inputs on: a float32 case is not told that float64 was wanted
    x32 = torch.ones(3, dtype=torch.float32)
    exp64 = (torch.ones(3, dtype=torch.float64) / 3, torch.zeros(2, dtype=torch.float64))
    tight = each(close(1e-12, 0), close(1e-12, 0), names=("resp", "log_px"))
    assert tight((x32 / 3, torch.zeros(2)), case(exp64, args=(x32,))).startswith(
        "resp: values differ"), tight((x32 / 3, torch.zeros(2)), case(exp64, args=(x32,)))
    assert tight((x32 / 3, torch.zeros(2)), case(exp64, args=(x32.double(),))).startswith(
        "resp: wrong dtype: expected float64, got float32")
    positive = satisfies(lambda got, c: bool((got > 0).all()), "must be > 0")
    assert positive(torch.ones(2), case(None)) is None
    assert positive(torch.zeros(2), case(None)) == "must be > 0"
    assert positive("not a tensor", case(None)) == "must be > 0"  # a raising predicate fails
    both = all_of(close(), positive)
    assert both(torch.zeros(2, 1), case(torch.ones(2))).startswith("wrong shape")
    assert both(-torch.ones(2), case(-torch.ones(2))) == "must be > 0"
    with pytest.raises(TypeError, match="callable"):
        all_of(close(), 3)


# ----------------------------------------------------------------------------- declarations


def test_declarations_reject_bad_arguments_naming_them():
    def cases(rng):
        yield Case((1,), expected=1)

    with pytest.raises(TypeError, match="args must be a tuple"):
        Case([1])
    with pytest.raises(ValueError, match="weight"):
        Case((), weight=0)
    with pytest.raises(TypeError, match="kwargs"):
        Case((), {1: 2})
    with pytest.raises(ValueError, match="answer must be a grade_id"):
        Exercise(answer="a b", test="t", function="f", cases=cases)
    with pytest.raises(ValueError, match="function must be a Python name"):
        Exercise(answer="a", test="t", function="f()", cases=cases)
    with pytest.raises(TypeError, match="cases"):
        Exercise(answer="a", test="t", function="f", cases=[1])
    ex = Exercise(answer="a", test="t", function="f", cases=cases)
    with pytest.raises(ValueError, match="same answer"):
        Lab(exercises=[ex, Exercise(answer="a", test="u", function="g", cases=cases)])
    with pytest.raises(ValueError, match="dgm_lab"):
        Lab(exercises=[ex], packages=("numpy", "dgm_lab"))
    with pytest.raises(CheckFileError, match="at least one Case"):
        Exercise(answer="a", test="t", function="f", cases=lambda rng: []).draw(None)


def test_load_lab_reports_a_broken_check_file(tmp_path):
    with pytest.raises(CheckFileError, match="no hidden checks"):
        load_lab(tmp_path / "missing.py")
    (tmp_path / "a.py").write_text("raise RuntimeError('typo')\n")
    with pytest.raises(CheckFileError, match="fails to import: RuntimeError: typo"):
        load_lab(tmp_path / "a.py")
    (tmp_path / "b.py").write_text("LAB = 3\n")
    with pytest.raises(CheckFileError, match="defines no LAB"):
        load_lab(tmp_path / "b.py")


# ----------------------------------------------------------------------------- gradients

LOSS = ("def loss(x, w, b):\n    ### BEGIN SOLUTION\n    return ((x @ w + b) ** 2).mean()\n"
        "    ### END SOLUTION\n")
GRADIENT_CHECKS = '''
import numpy as np
import torch
from dgm_lab.grading import Case, Exercise, Lab, close

def loss_cases(rng):
    for i in range(3):
        x, w, b = (torch.as_tensor(rng.normal(size=s)) for s in ((6, 4), (4,), ()))
        w.requires_grad_(True)
        b.requires_grad_(True)
        value = ((x @ w + b) ** 2).mean()
        grads = torch.autograd.grad(value, (w, b))
        yield Case((x, w.detach(), b.detach()), expected=value.detach(), label=f"case {i}",
                   expected_gradient=grads)

def scale_cases(rng):
    a = rng.normal(size=(4, 3))
    yield Case((a,), {"factor": 2.0}, expected=2.0 * a, label="4x3")

LAB = Lab(exercises=[
    Exercise(answer="ex1_code", test="ex1_tests", function="loss", cases=loss_cases,
             compare=close(1e-9, 1e-12), gradient_of={1: "w", 2: "b"}),
    Exercise(answer="ex2_code", test="ex2_tests", function="scale", cases=scale_cases),
], packages=("torch", "numpy"))
'''
LOSS_BODY = "def loss(x, w, b):\n    value = ((x @ w + b) ** 2).mean()\n"


@pytest.mark.parametrize("kind, body, message", [
    ("solution", LOSS_BODY + "    return value\n", None),
    ("detached", LOSS_BODY + "    return value.detach()\n", "carries no gradient"),
    ("no_grad", "def loss(x, w, b):\n    with torch.no_grad():\n"
                "        return ((x @ w + b) ** 2).mean()\n", "carries no gradient"),
    ("a number", LOSS_BODY + "    return value.item()\n", "expected a torch.Tensor"),
    ("a zero gradient", LOSS_BODY + "    return value.detach() + 0 * w.sum()\n",
     "its gradient with respect to w differs from the reference: values differ"),
    ("part detached", "def loss(x, w, b):\n    return ((x @ w + b.detach()) ** 2).mean()\n",
     "does not depend on b through autograd"),
], ids=["solution", "detached", "no_grad", "a number", "a zero gradient", "part detached"])
def test_runner_call_returns_the_gradient_the_check_asks_for(kind, body, message):
    """runner.call differentiates the returned value with respect to the arguments the
    exercise names; gradient_problem compares that with the reference (the lab-5 defect: a
    detached loss had full marks)."""
    exercise = load_lab_from_text(GRADIENT_CHECKS).exercises[0]
    namespace = {"torch": torch}
    exec(body, namespace)  # noqa: S102 - a test's own answer
    for case in exercise.draw(np.random.default_rng(0)):
        result = runner.call(namespace["loss"], case.args, case.kwargs, list(exercise.gradient_of))
        assert not any(a.requires_grad for a in case.args)  # the case's own tensors untouched
        problem = exercise.compare(result["value"], case)
        if problem is None:
            problem = gradient_problem(exercise, case, result["gradient"], exercise.compare)
        assert problem is None if message is None else message in problem, (kind, problem)
    assert runner.call(lambda: 1 / 0, (), {})["error"]["type"] == "ZeroDivisionError"


def test_a_cases_gradient_compare_judges_the_gradient_and_not_the_value():
    """Case(gradient_compare=...) compares the gradients (e.g. relative to their largest
    entry, for float32) while the value keeps the case's own tolerance; without it the
    case's comparison judges both."""
    exercise = load_lab_from_text(GRADIENT_CHECKS).exercises[0]
    x, w, b = torch.ones(3, 2, dtype=torch.float64), torch.ones(2, dtype=torch.float64), 0.5
    want = (torch.tensor([100.0, 0.01], dtype=torch.float64), torch.tensor(1.0))
    got = (torch.tensor([100.0, 0.015], dtype=torch.float64), torch.tensor(1.0))  # 0.005 off
    tight = close(rtol=1e-4, atol=0.0)
    plain = Case((x, w, b), expected=torch.tensor(1.0), expected_gradient=want, compare=tight)
    assert "with respect to w differs" in gradient_problem(exercise, plain, got, tight)
    largest = Case((x, w, b), expected=torch.tensor(1.0), expected_gradient=want, compare=tight,
                   gradient_compare=close(rtol=1e-4, atol=0.0, relative_to="largest"))
    assert gradient_problem(exercise, largest, got, tight) is None
    off = (torch.tensor([100.0, 0.03], dtype=torch.float64), torch.tensor(1.0))  # 0.02 off
    assert "with respect to w differs" in gradient_problem(exercise, largest, off, tight)
    assert largest.compare(torch.tensor(1.001), largest) is not None  # the value: still tight
    with pytest.raises(TypeError, match="gradient_compare"):
        Case((x,), gradient_compare="close")
    with pytest.raises(ValueError, match="relative_to"):
        compare_values(np.ones(2), np.ones(2), 1e-4, 0.0, "Largest")


def test_runner_call_names_the_inputs_an_answer_changed_in_place():
    """An in-place update returns the right values but changes the caller's data (the lab-4
    defect: ``weight += ...`` had full marks); the grader fails the case on "changed"."""
    def update(x, a, *, w):
        x.mul_(1.0)  # the same values, NaN included: not a change
        a += 1
        w[0] = 5.0
        return a
    x = torch.tensor([1.0, float("nan")])
    result = runner.call(update, (x, np.zeros(3)), {"w": torch.zeros(2)})
    assert result["changed"] == ["a", "w"] and result["value"].tolist() == [1.0] * 3
    assert "changed" not in runner.call(lambda t: t * 2, (torch.ones(2),), {})
    assert "changed" not in runner.call(lambda t: t, (torch.ones(2, dtype=torch.int64),), {})
def test_runner_call_differentiates_every_part_of_a_returned_tuple():
    """A flow layer returns (z, logdet): the gradient is that of z.sum() + logdet.sum(), so
    an answer that detaches either part (or both) no longer matches the reference's (the
    lab-9 defect: a detached coupling layer had full marks)."""
    w = torch.tensor([0.5, -2.0], dtype=torch.float64)

    def layer(x, w, detach=()):
        z, logdet = x * w.exp(), w.sum().expand(len(x))
        return tuple(p.detach() if i in detach else p for i, p in enumerate((z, logdet)))

    x = torch.tensor([[1.0, 3.0], [2.0, -1.0]], dtype=torch.float64)
    want = x.sum(0) * w.exp() + len(x)  # d/dw of sum(z) + sum(logdet), by hand
    got = runner.call(layer, (x, w), {}, [1])["gradient"]
    torch.testing.assert_close(got[0], want)
    for detach in ((0,), (1,)):
        got = runner.call(lambda x, w, d=detach: layer(x, w, d), (x, w), {}, [1])["gradient"]
        assert not torch.allclose(got[0], want), detach
    both = runner.call(lambda x, w: layer(x, w, (0, 1)), (x, w), {}, [1])["gradient"]
    assert both == runner.NOT_DIFFERENTIABLE
    as_list = runner.call(lambda x, w: [p.numpy() for p in layer(x, w, (0, 1))], (x, w), {}, [1])
    assert as_list["gradient"] == runner.NOT_DIFFERENTIABLE


def load_lab_from_text(text: str) -> Lab:
    namespace: dict = {}
    exec(text, namespace)  # noqa: S102 - a test's own check file
    return namespace["LAB"]


def test_gradient_of_is_checked_against_the_cases():
    def cases(rng):
        yield Case((torch.zeros(2), torch.zeros(2, dtype=torch.int64), torch.zeros(3)),
                   expected=0.0, expected_gradient=(torch.zeros(2),))

    with pytest.raises(TypeError, match="gradient_of"):
        Exercise(answer="a", test="t", function="f", cases=cases, gradient_of=[0])
    with pytest.raises(CheckFileError, match="not floating-point tensors"):
        Exercise(answer="a", test="t", function="f", cases=cases, gradient_of={1: "n"}).draw(None)
    with pytest.raises(CheckFileError, match="expected_gradient of 2 values"):
        Exercise(answer="a", test="t", function="f", cases=cases,
                 gradient_of={0: "x", 2: "z"}).draw(None)
    assert len(Exercise(answer="a", test="t", function="f", cases=cases,
                        gradient_of={0: "x"}).draw(None)) == 1


def test_grading_a_loss_fails_a_detached_answer(tmp_path):
    """End to end, in the sandbox: a detached loss has no marks (the real labs' solutions,
    with full marks, are graded by tests/test_labs.py)."""
    lab = make_lab(tmp_path / "course" / "solutions" / "labg", checks=GRADIENT_CHECKS,
                   answers=(LOSS, SCALE), imports="import math\n\nimport numpy as np\nimport torch")
    detached = grade_submission(lab, submit(lab, tmp_path / "d.ipynb", ex1_code=(
        LOSS_BODY + "    return value.detach()\n")), limits=FAST)
    assert scores(detached) == [0.0, 2.0]
    assert "carries no gradient" in detached.verdicts[0].message, detached.verdicts[0].message


# ----------------------------------------------------------------------------- small labs


def nbmeta(grade_id: str, **flags: object) -> dict:
    meta = {"grade": False, "grade_id": grade_id, "locked": False, "schema_version": 3,
            "solution": False, "task": False}
    meta.update(flags)
    return {"nbgrader": meta}


ADD = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION\n"
SCALE = ("def scale(a, factor=1.0):\n    ### BEGIN SOLUTION\n    return a * factor\n"
         "    ### END SOLUTION\n")
CHECKS = '''
import numpy as np
from dgm_lab.grading import Case, Exercise, Lab, close

def add_cases(rng):
    for i in range(3):
        a, b = rng.normal(size=5), rng.normal(size=5)
        yield Case((a, b), expected=a + b, label=f"case {i}", weight=1 + i)

def scale_cases(rng):
    a = rng.normal(size=(4, 3))
    yield Case((a,), {"factor": 2.0}, expected=2.0 * a, label="4x3")

LAB = Lab(exercises=[
    Exercise(answer="ex1_code", test="ex1_tests", function="add", cases=add_cases),
    Exercise(answer="ex2_code", test="ex2_tests", function="scale", cases=scale_cases),
], packages=("numpy",))
'''


def make_lab(folder: Path, checks: str = CHECKS, answers: tuple[str, str] = (ADD, SCALE),
             points: tuple[float, float] = (3, 2),
             imports: str = "import math\n\nimport numpy as np") -> Path:
    """A two-exercise numpy lab: solutions/<name>/<name>.ipynb + hidden_checks.py."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = new_notebook(cells=[
        new_markdown_cell("# A lab", metadata=nbmeta("md", locked=True)),
        new_code_cell(imports, metadata=nbmeta("imports", locked=True)),
        new_code_cell(answers[0], metadata=nbmeta("ex1_code", solution=True)),
        new_code_cell("assert add(1, 2) == 3", metadata=nbmeta(
            "ex1_tests", grade=True, locked=True, points=points[0])),
        new_code_cell(answers[1], metadata=nbmeta("ex2_code", solution=True)),
        new_code_cell("assert scale(1, 2) == 2", metadata=nbmeta(
            "ex2_tests", grade=True, locked=True, points=points[1])),
    ])
    nbformat.write(nb, folder / f"{folder.name}.ipynb")
    (folder / "hidden_checks.py").write_text(checks)
    return folder


def submit(lab: Path, path: Path, **bodies: str) -> Path:
    """The lab's source notebook with the answer cells named in ``bodies`` replaced."""
    nb = json.loads((lab / f"{lab.name}.ipynb").read_text())
    for cell in nb["cells"]:
        gid = cell["metadata"]["nbgrader"]["grade_id"]
        if gid in bodies:
            cell["source"] = bodies[gid]
    path.write_text(json.dumps(nb))
    return path


@pytest.fixture
def lab(tmp_path):
    return make_lab(tmp_path / "course" / "solutions" / "labx")


def scores(report: Report) -> list[float]:
    return [v.score for v in report.verdicts]


def test_lab_source_cross_checks_the_check_file_against_the_notebook(tmp_path):
    lab = make_lab(tmp_path / "labx", points=(0, 2))
    with pytest.raises(CheckFileError, match="no points > 0"):
        LabSource.load(lab)
    lab = make_lab(tmp_path / "laby", answers=(ADD.replace("def add", "def plus"), SCALE))
    with pytest.raises(CheckFileError, match="defines no add"):
        LabSource.load(lab)
    lab = make_lab(tmp_path / "labz", checks=CHECKS.replace('test="ex2_tests"', 'test="ex9"'))
    with pytest.raises(CheckFileError, match=r"'ex9' is not a graded test cell.*"
                                             r"without hidden checks: \['ex2_tests'\]"):
        LabSource.load(lab)
    lab = make_lab(tmp_path / "labw", checks=CHECKS.replace('packages=', 'preamble="nope", '
                                                                         'packages='))
    with pytest.raises(CheckFileError, match="no code cell with grade_id 'nope'"):
        LabSource.load(lab)
    good = LabSource.load(make_lab(tmp_path / "labv"))
    assert good.points == {"ex1_tests": 3.0, "ex2_tests": 2.0}
    assert good.answers == ("ex1_code", "ex2_code") and "import numpy" in good.preamble


def test_read_notebook_refuses_what_is_not_a_notebook(tmp_path):
    path = tmp_path / "s.ipynb"
    path.write_text('{"cells": [')
    with pytest.raises(UnreadableNotebook, match=r"not valid JSON \(Expecting value; line 1"):
        read_notebook(path)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(UnreadableNotebook, match="not a text"):
        read_notebook(path)
    path.write_text('{"cells": 3}')
    with pytest.raises(UnreadableNotebook, match="no list of cells"):
        read_notebook(path)
    path.write_text(" " * 2000)
    with pytest.raises(UnreadableNotebook, match="over the limit"):
        read_notebook(path, max_bytes=1000)
    with pytest.raises(UnreadableNotebook, match="missing"):
        read_notebook(tmp_path / "none.ipynb")
    cells = [{"cell_type": "code", "source": ["a = 1\n", "b = 2"], **{"metadata": nbmeta("x")}},
             {"cell_type": "code", "source": "last", "metadata": nbmeta("x")},
             {"cell_type": "markdown", "source": "md", "metadata": nbmeta("y")}]
    assert answer_cells(cells) == {"x": "last"}  # a repeated id: the last wins, as in nbgrader
    assert answer_cells(cells[:1]) == {"x": "a = 1\nb = 2"}


def test_partial_score_is_the_passed_share_of_the_weights_rounded_down_to_the_cent():
    def results(*passed: bool, weights: tuple = ()) -> list[CaseResult]:
        return [CaseResult("", weights[i] if weights else 1.0, p) for i, p in enumerate(passed)]

    assert partial_score(3, results(True, True, True)) == 3.0
    assert partial_score(3, results(True, True, False)) == 2.0
    assert partial_score(2, results(True, False, False)) == 0.67
    assert partial_score(3, results(False, False)) == 0.0
    assert partial_score(3, results(True, False, weights=(1, 3))) == 0.75
    assert partial_score(1, results(True, True, True, False, weights=(1, 1, 1, 100))) == 0.03


# ----------------------------------------------------------------------------- grading runs


def test_correct_wrong_and_blank_answers_and_partial_credit(lab, tmp_path):
    report = grade_submission(lab, lab / "labx.ipynb", limits=FAST)
    assert scores(report) == [3.0, 2.0] and report.runs == 1
    assert report.verdicts[0].message == (
        "add: 3 / 3 points: passed all 3 hidden cases (fresh random inputs).")
    wrong = grade_submission(lab, submit(lab, tmp_path / "w.ipynb", ex1_code=(
        "def add(a, b):\n    return a - b\n")), limits=FAST)
    assert scores(wrong) == [0.0, 2.0]
    assert "passed 0 of 3 hidden cases" in wrong.verdicts[0].message
    assert "values differ from the reference on" in wrong.verdicts[0].message
    # weights 1, 2, 3: only the first case (a 1-element check on call count) passes
    partial = grade_submission(lab, submit(lab, tmp_path / "p.ipynb", ex1_code=(
        "calls = []\n"
        "def add(a, b):\n"
        "    calls.append(1)\n"
        "    return a + b if len(calls) == 1 else a * b\n")), limits=FAST)
    assert scores(partial) == [0.5, 2.0]
    assert "passed 1 of 3 hidden cases" in partial.verdicts[0].message
    blank = grade_submission(lab, submit(lab, tmp_path / "b.ipynb", ex1_code=(
        "def add(a, b):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n")), limits=FAST)
    assert blank.verdicts[0].message == (
        "add: 0 / 3 points. Your function raised NotImplementedError: the exercise is not done "
        "yet.")
    assert report.seed != wrong.seed  # a fresh seed per submission


def test_the_seed_reproduces_the_cases_and_is_logged(lab, tmp_path):
    record = tmp_path / "log" / "labx.jsonl"
    sub = submit(lab, tmp_path / "s.ipynb", ex1_code=(
        "def add(a, b):\n    return a + b + (a[0] > 1.0)\n"))
    first = grade_submission(lab, sub, limits=FAST, record=record, student="alice")
    again = grade_submission(lab, sub, limits=FAST, seed=first.seed)
    passed = [[c.passed for c in r.verdicts[0].cases] for r in (first, again)]
    assert passed[0] == passed[1]
    assert first.verdicts[0].message == again.verdicts[0].message
    entry = json.loads(record.read_text().splitlines()[-1])
    assert entry["seed"] == first.seed and entry["student"] == "alice"
    assert entry["scores"]["ex1_tests"] == [first.verdicts[0].score, 3.0]
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert Report.from_dict(json.loads(json.dumps(first.to_dict()))) == first


@pytest.mark.parametrize("kind, body, message", [
    ("endless loop", "def add(a, b):\n    while True:\n        pass\n", "timed out after 4 s"),
    ("swallows KeyboardInterrupt", (
        "def add(a, b):\n    while True:\n        try:\n            while True:\n"
        "                pass\n        except BaseException:\n            pass\n"),
     "timed out after 4 s"),
    ("os._exit", "import os\ndef add(a, b):\n    os._exit(3)\n",
     "Your function ended the process (exit code 3)."),
    ("sys.exit", "import sys\ndef add(a, b):\n    sys.exit(3)\n",
     "Your function ended the process (exit code 3)."),
    ("segfault", "import ctypes\ndef add(a, b):\n    return ctypes.string_at(0)\n",
     "Your function crashed the process (SIGSEGV)."),
    # 4 x 1.6 GB of address space, never touched: instant, and fails only under the limit
    ("memory",
     "def add(a, b):\n    hog = [np.empty(2 * 10**8) for _ in range(4)]\n    return a + b\n",
     "Your function ran out of memory (the limit is 1 GiB)."),
    ("top-level loop", "while True:\n    pass\ndef add(a, b):\n    return a + b\n",
     "The function add is not defined, because your answer cell ex1_code timed out after 4 s "
     "while it ran, so it was skipped."),
    ("top-level exit", "import os\nos._exit(4)\ndef add(a, b):\n    return a + b\n",
     "your answer cell ex1_code ended the process (exit code 4) while it ran"),
    ("imports dgm_lab", "import dgm_lab.density\ndef add(a, b):\n    return a + b\n",
     "because your answer cell ex1_code imports dgm_lab, which is not available while grading: "
     "write it with numpy/math."),
    pytest.param("imports sklearn", "def add(a, b):\n    import sklearn\n    return a + b\n",
                 "Your function imports sklearn, which is not available while grading",
                 marks=needs_sandbox),
    ("syntax error", "def add(a, b)\n    return a\n",
     "your answer cell ex1_code raised SyntaxError at line 1: expected ':'"),
    ("returns a generator", "def add(a, b):\n    yield a\n",
     "returned a generator; expected a numpy array"),
    ("changes an input", "def add(a, b):\n    a += b\n    return a\n",
     "your function changed its input a in place: leave the inputs as they were"),
])
def test_each_way_of_failing_costs_that_exercise_only(lab, tmp_path, kind, body, message):
    report = grade_submission(lab, submit(lab, tmp_path / "s.ipynb", ex1_code=body), limits=FAST)
    assert scores(report) == [0.0, 2.0], (kind, report.verdicts[0].message)
    assert message in report.verdicts[0].message, (kind, report.verdicts[0].message)
    assert report.verdicts[1].message.startswith("scale: 2 / 2 points: passed")


def test_replacing_the_writer_of_the_results_cannot_crash_the_grader(lab, tmp_path):
    """numpy.savez replaced by the answer: the runner bound its own copy first, so grading is
    unchanged. The runner's copy replaced too: the output is malformed, scores 0, and the grader
    reports it instead of raising (an empty or broken .npz once crashed the whole batch)."""
    body = "def add(a, b):\n    return a + b\n"
    patched = submit(lab, tmp_path / "a.ipynb", ex1_code="np.savez = lambda *a, **k: None\n" + body)
    assert scores(grade_submission(lab, patched, limits=FAST)) == [3.0, 2.0]
    broken = submit(lab, tmp_path / "b.ipynb", ex1_code=(
        "import __main__\n__main__._savez = lambda fh, **k: fh.write(b'not a zip')\n" + body))
    report = grade_submission(lab, broken, limits=FAST)
    assert scores(report) == [0.0, 0.0]
    assert "came back malformed" in report.verdicts[0].message, report.verdicts[0].message


def test_forged_progress_lines_do_not_extend_the_time_limit(lab, tmp_path):
    # The runner's progress file descriptor is in sys.argv: write "start" lines to reset the
    # clock, then work for longer than the limit. Stages only move forward, so it is cut.
    body = ("import os, sys, time\n"
            "def add(a, b):\n"
            "    fd = int(sys.argv[3])\n"
            "    for _ in range(40):\n"
            "        os.write(fd, b'exercise 0 start\\ncell 0 start\\nexercise 0 end\\n')\n"
            "        time.sleep(0.25)\n"
            "    return a + b\n")
    report = grade_submission(lab, submit(lab, tmp_path / "s.ipynb", ex1_code=body),
                              limits=Limits(exercise_seconds=3, notebook_seconds=60))
    assert scores(report) == [0.0, 2.0], report.verdicts[0].message
    assert "timed out after 3 s" in report.verdicts[0].message


def test_flooding_the_output_folder_is_stopped(lab, tmp_path):
    body = ("import os\n"
            "def add(a, b):\n"
            "    for i in range(10_000_000):\n"
            "        with open(f'/grading/out/junk{i}', 'wb') as fh:\n"
            "            fh.write(b'x' * 100_000)\n")
    limits = Limits(exercise_seconds=20, max_written_bytes=20 << 20)
    report = grade_submission(lab, submit(lab, tmp_path / "s.ipynb", ex1_code=body),
                              limits=limits, sandbox="bwrap" if SANDBOX.sandboxed else "none")
    assert scores(report) == [0.0, 2.0]
    assert "Your function wrote more than 20 MB (or 10000 files) of output." in \
        report.verdicts[0].message


def test_the_notebook_time_budget_covers_every_exercise_together(lab, tmp_path):
    slow = "import time\ndef scale(a, factor=1.0):\n    time.sleep(60)\n    return a * factor\n"
    report = grade_submission(lab, submit(lab, tmp_path / "s.ipynb", ex2_code=slow),
                              limits=Limits(exercise_seconds=30, notebook_seconds=3))
    assert scores(report) == [3.0, 0.0]
    assert "used up its time limit of 3 s" in report.verdicts[1].message


def test_missing_edited_and_extra_cells_are_ignored_or_reported(lab, tmp_path):
    nb = json.loads((lab / "labx.ipynb").read_text())
    cells = {c["metadata"]["nbgrader"]["grade_id"]: c for c in nb["cells"]}
    cells["imports"]["source"] = "raise SystemExit('edited imports cell')"  # the source's runs
    cells["ex1_tests"]["source"] = "add = lambda a, b: a - b"                 # never run
    nb["cells"].remove(cells["ex2_code"])                                    # deleted answer
    nb["cells"].insert(0, {"cell_type": "code", "source": "def scale(a, factor=1): return a",
                           "metadata": {}, "outputs": [], "execution_count": None})
    nb["cells"].reverse()                                                    # reordered
    (tmp_path / "s.ipynb").write_text(json.dumps(nb))
    report = grade_submission(lab, tmp_path / "s.ipynb", limits=FAST)
    assert scores(report) == [3.0, 0.0]
    assert report.verdicts[1].message == (
        "scale: 0 / 2 points. The answer cell ex2_code is missing from your notebook (was it "
        "deleted?).")


def test_an_unreadable_notebook_scores_zero_everywhere_with_the_reason(lab, tmp_path):
    path = tmp_path / "s.ipynb"
    path.write_text('{"cells": [')
    report = grade_submission(lab, path, limits=FAST)
    assert scores(report) == [0.0, 0.0] and report.runs == 0
    assert "Your notebook could not be read: the notebook is not valid JSON" in \
        report.verdicts[0].message


@needs_sandbox
def test_killing_the_sandbox_kills_every_process_the_answer_started(lab, tmp_path):
    token = f"dgm-orphan-{os.getpid()}-{id(tmp_path)}"
    body = ("import subprocess, sys\n"
            "def add(a, b):\n"
            "    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)',\n"
            f"                      '{token}'], start_new_session=True)\n"
            "    while True:\n"
            "        pass\n")
    report = grade_submission(lab, submit(lab, tmp_path / "s.ipynb", ex1_code=body),
                              limits=Limits(exercise_seconds=3))
    assert "timed out" in report.verdicts[0].message

    def alive() -> list[str]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if token.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(pid)
            except OSError:
                pass
        return found

    assert not alive(), "a process started by the answer survived the sandbox"


def test_where_bubblewrap_works_the_grading_sandbox_starts():
    """If the plainest bubblewrap sandbox (the same namespaces) runs on this machine, the
    grader's own must run too: a broken command must not pass for a machine without bwrap."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    plain = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent",
                            "--new-session", "--uid", "65534", "--gid", "65534", "true"],
                           capture_output=True, text=True)
    if plain.returncode != 0 and not REQUIRED:
        pytest.skip(f"bubblewrap cannot create namespaces here: {plain.stderr.strip()}")
    sandbox._probe_bwrap.cache_clear()
    state = sandbox.status(("torch", "numpy"), "auto")
    assert state.sandboxed, state.warning


def test_without_the_sandbox_grading_works_and_warns_what_is_unprotected(lab, tmp_path,
                                                                        monkeypatch):
    report = grade_submission(lab, lab / "labx.ipynb", limits=FAST, sandbox="none")
    assert scores(report) == [3.0, 2.0] and report.sandbox == "none"
    (warning,) = report.notes
    for words in ("WITHOUT a sandbox", "read every file", "the gradebook", "network",
                  "apt-get install bubblewrap"):
        assert words in warning
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    sandbox._probe_bwrap.cache_clear()
    try:
        assert "not installed" in sandbox.status(("numpy",), "auto").warning
        with pytest.raises(SandboxError, match="not installed"):
            sandbox.status(("numpy",), "bwrap")
    finally:
        sandbox._probe_bwrap.cache_clear()


# ----------------------------------------------------------------------------- seen from inside

PROBE = '''
def probe(skip):
    """Everything the sandboxed process can see and do, returned as plain data."""
    import os, socket
    seen, readable, secrets, errors = [], 0, [], []
    for top, dirs, files in os.walk("/"):
        dirs[:] = [d for d in dirs if os.path.join(top, d) not in skip]
        for name in dirs + files:
            path = os.path.join(top, name)
            seen.append(path)
            if name in files and os.path.isfile(path) and not os.path.islink(path):
                try:
                    with open(path, "rb") as fh:
                        data = fh.read(1 << 20)
                    readable += 1
                    if ("CANARY-" + "9f2d").encode() in data:  # not spelled out here
                        secrets.append(path)
                except OSError as err:
                    errors.append(f"{path}: {err}")
    with open("/proc/self/mountinfo") as fh:
        mountinfo = fh.read()
    writes = {}
    for target in WRITE_TARGETS:
        try:
            with open(target, "a") as fh:
                fh.write("x")
            writes[target] = "written"
        except OSError as err:
            writes[target] = type(err).__name__
    net = {}
    for host, port in NET_TARGETS:
        try:
            socket.create_connection((host, port), timeout=3).close()
            net[f"{host}:{port}"] = "connected"
        except OSError as err:
            net[f"{host}:{port}"] = type(err).__name__
    return {"seen": seen, "readable": readable, "secrets": secrets, "mountinfo": mountinfo,
            "writes": writes, "net": net, "uid": os.getuid(), "errors": errors[:20]}
'''


@needs_sandbox
def test_the_sandbox_shows_nothing_of_the_course_and_allows_no_network(tmp_path):
    """A probe answer walks every visible path (outside /usr, /proc, /sys, /dev and the Python
    installation), reads every file, reads /proc/self/mountinfo, tries to write into the
    course's folders and to connect to a server on the grader's localhost."""
    course = tmp_path / "course"
    (course / "submitted" / "bob" / "labp").mkdir(parents=True)
    (course / "submitted" / "bob" / "labp" / "labp.ipynb").write_text("CANARY-9f2d bob's work")
    (course / "gradebook.db").write_text("CANARY-9f2d gradebook")
    out = tmp_path / "probe.json"
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    threading.Thread(target=lambda: server.accept(), daemon=True).start()
    python = [str(Path(p)) for p in sandbox._python_folders()] + list(
        sandbox.allowed_paths(("numpy",))[0])
    skip = ["/usr", "/proc", "/sys", "/dev", *python]
    write_targets = [str(course / "gradebook.db"), str(course / "solutions" / "labp" / "x.py"),
                     "/grading/job/runner.py", "/usr/lib/x", str(ROOT / "dgm_lab" / "x.py")]
    checks = textwrap.dedent(f'''
        # CANARY-9f2d: planted in the hidden checks
        import json
        from dgm_lab.grading import Case, Exercise, Lab

        def cases(rng):
            yield Case(({skip!r},), expected=None)

        def record(got, case):
            with open({str(out)!r}, "w") as fh:
                json.dump(got, fh)
            return None

        LAB = Lab(exercises=[Exercise(answer="ex1_code", test="ex1_tests", function="probe",
                                      cases=cases, compare=record),
                             Exercise(answer="ex2_code", test="ex2_tests", function="scale",
                                      cases=lambda rng: [Case((1.0,), expected=1.0)])],
                  packages=("numpy",))
    ''')
    probe = (f"WRITE_TARGETS = {write_targets!r}\nNET_TARGETS = "
             f"{[('127.0.0.1', port), ('1.1.1.1', 80)]!r}\n" + PROBE)
    lab = make_lab(course / "solutions" / "labp", checks=checks, answers=(probe, SCALE))
    report = grade_submission(lab, lab / "labp.ipynb", limits=Limits(exercise_seconds=120))
    server.close()
    assert report.verdicts[0].score == 3.0, report.verdicts[0].message
    seen = json.loads(out.read_text())
    assert seen["uid"] == sandbox.SANDBOX_UID
    assert seen["readable"] > 0 and not seen["secrets"], seen["secrets"]
    for path in seen["seen"]:
        assert not path.startswith((str(tmp_path), str(ROOT), "/work", "/home")), (
            f"visible inside the sandbox: {path}")
    top = {p.split("/")[1] for p in seen["seen"]}
    assert top <= {"grading", "tmp", "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32",
                   "etc", "proc", "dev", "sys", "root"}, top
    for forbidden in (str(tmp_path), str(ROOT), "gradebook", "submitted", "solutions"):
        assert forbidden not in seen["mountinfo"], forbidden
    assert all(result != "written" for result in seen["writes"].values()), seen["writes"]
    assert (course / "gradebook.db").read_text() == "CANARY-9f2d gradebook"
    assert all(result != "connected" for result in seen["net"].values()), seen["net"]


# ----------------------------------------------------------------------------- nbgrader outputs


def test_verdict_outputs_give_nbgrader_the_verdict_score():
    from nbgrader.utils import determine_grade

    def graded(verdict: Verdict | None, points: float) -> tuple:
        cell = new_code_cell("visible tests", metadata=nbmeta("t", grade=True, points=points))
        cell.outputs = verdict_outputs(verdict, points)
        return determine_grade(cell)

    def verdict(score: float, points: float = 3.0) -> Verdict:
        return Verdict("t", "a", "f", points, score, f"f: {score:g} / {points:g} points")

    assert graded(verdict(3.0), 3) == (3.0, 3.0)
    assert graded(verdict(1.5), 3) == (1.5, 3.0)
    assert graded(verdict(0.0), 3) == (0.0, 3.0)
    assert graded(None, 3) == (0.0, 3.0)
    assert graded(verdict(1.5), 6) == (3.0, 6.0)  # the cell's points (gradebook) win
    zero = verdict_outputs(verdict(0.0), 3)
    assert [o.output_type for o in zero] == ["error"] and zero[0].traceback == [
        "f: 0 / 3 points"]


def test_write_verdicts_fills_every_graded_cell():
    nb = new_notebook(cells=[
        new_code_cell("answer", metadata=nbmeta("a", solution=True)),
        new_code_cell("tests", metadata=nbmeta("t1", grade=True, points=2)),
        new_code_cell("tests", metadata=nbmeta("t2", grade=True, points=1)),
        new_code_cell("setup", metadata=nbmeta("s", locked=True)),
    ])
    report = Report("lab", 1, "bubblewrap", [Verdict("t1", "a", "f", 2, 2, "f: 2 / 2 points")])
    assert write_verdicts(nb, report) == ["t2"]
    assert nb.cells[1].outputs[-1]["data"]["text/plain"] == "2"
    assert nb.cells[2].outputs[0].output_type == "error"
    assert nb.cells[0].get("outputs") == [] and nb.cells[3].get("outputs") == []


# ----------------------------------------------------------------------------- collect_zip


def make_zip(path: Path, entries: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def test_collect_zip_puts_the_notebook_where_nbgrader_looks(tmp_path):
    archive = make_zip(tmp_path / "alice.zip", {
        "lab01/lab01.ipynb": b'{"cells": []}', "lab01/data/points.csv": b"1,2",
        "__MACOSX/lab01/._lab01.ipynb": b"junk"})
    path = collect_zip(archive, tmp_path / "course", "alice", "lab01")
    assert path == tmp_path / "course" / "submitted" / "alice" / "lab01" / "lab01.ipynb"
    assert path.read_text() == '{"cells": []}'
    assert (path.parent / "data" / "points.csv").read_bytes() == b"1,2"
    with pytest.raises(FileExistsError):
        collect_zip(archive, tmp_path / "course", "alice", "lab01")
    renamed = make_zip(tmp_path / "bob.zip", {"my work (1).ipynb": b"{}"})
    assert collect_zip(renamed, tmp_path / "course", "bob", "lab01").name == "lab01.ipynb"


@pytest.mark.parametrize("entries, links, match", [
    ({"lab01.ipynb": b"{}", "../../solutions/lab01/hidden_checks.py": b"x"}, (),
     "climbs out of the folder with '..' \\(path traversal\\)"),
    ({"lab01.ipynb": b"{}", "/etc/cron.d/x": b"x"}, (), "is an absolute path"),
    ({"lab01.ipynb": b"{}", "..\\..\\x": b"x"}, (), "backslash"),
    ({"lab01.ipynb": b"{}"}, ("lab01/link",), "link or special file"),
    ({"notes.txt": b"x"}, (), "no single notebook"),
])
def test_collect_zip_refuses_unsafe_archives_and_writes_nothing(tmp_path, entries, links, match):
    archive = make_zip(tmp_path / "eve.zip", entries, links)
    with pytest.raises(UnsafeArchive, match=match):
        collect_zip(archive, tmp_path / "course", "eve", "lab01")
    assert not (tmp_path / "course").exists() and not (tmp_path / "solutions").exists()


def test_collect_zip_refuses_bombs_non_zips_and_odd_ids(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("lab01.ipynb", b"0" * (300 << 20))
    with pytest.raises(UnsafeArchive, match="expands to more than"):
        collect_zip(bomb, tmp_path / "course", "eve", "lab01")
    (tmp_path / "fake.zip").write_bytes(io.BytesIO(b"not a zip").getvalue())
    with pytest.raises(UnsafeArchive, match="not a readable zip"):
        collect_zip(tmp_path / "fake.zip", tmp_path / "course", "eve", "lab01")
    for student in ("../eve", "a/b", ""):
        with pytest.raises(ValueError, match="student must be a plain id"):
            collect_zip(bomb, tmp_path / "course", student, "lab01")
