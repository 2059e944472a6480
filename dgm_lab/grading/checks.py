"""The vocabulary of a lab's hidden checks: exercises, cases and comparisons.

A lab's hidden checks live in ``solutions/<lab>/hidden_checks.py``, a file only the instructor
has (it is never released, copied into feedback or visible to the student's code). It defines
one :class:`Lab`, named ``LAB``, whose exercises say which answer cell defines which function,
which graded test cell holds its points, how to draw fresh random cases (inputs and the
reference's expected output, computed in the grader's process with ``dgm_lab``), and how to
compare what the student's function returned with the expected value::

    import dgm_lab.density as ref
    from dgm_lab.grading import Case, Exercise, Lab, close

    def kde_cases(rng):
        for dim in (1, 2, int(rng.integers(3, 30))):
            x, data = torch.as_tensor(rng.normal(size=(50, dim))), ...
            yield Case((x, data, 0.3), expected=ref.kde_log_prob(x, data, 0.3), label=f"D={dim}")

    LAB = Lab(exercises=[
        Exercise(answer="ex1_code", test="ex1_tests", function="kde_log_prob",
                 cases=kde_cases, compare=close(rtol=1e-4, atol=1e-4)),
    ])

A comparison is any callable ``compare(got, case) -> str | None``: ``None`` when the returned
value ``got`` is right, else a message the student can act on. It runs in the grader, on plain
data read back from the sandbox (tensors, arrays, numbers, strings, tuples, lists, dicts; an
:class:`Unsupported` for anything else). :func:`close`, :func:`exact`, :func:`each`,
:func:`satisfies` and :func:`all_of` cover most exercises; :func:`keeps_dtype` wraps one to
refuse a result whose dtype is not the inputs'.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dgm_lab.grading.runner import Unsupported

Compare = Callable[[Any, "Case"], "str | None"]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_GRADE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
CHECKS_FILE = "hidden_checks.py"


class CheckFileError(ValueError):
    """A lab's hidden checks are malformed or disagree with its source notebook (an instructor
    error: the submission cannot be graded until it is fixed)."""


# ----------------------------------------------------------------------------- comparisons


def _kind(value: object) -> str:
    """How a value is described to the student."""
    if isinstance(value, Unsupported):
        return f"a {value.type_name}"
    if value is None:
        return "None"
    if isinstance(value, torch.Tensor):
        return f"a torch.Tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a numpy array of shape {value.shape}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} values"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, (int, float, np.number)):
        return "a number"
    return f"a {type(value).__name__}"


def _dtype_group(array: np.ndarray) -> str:
    return {"b": "boolean", "i": "integer", "u": "integer", "f": "floating-point",
            "c": "complex"}.get(array.dtype.kind, str(array.dtype))


def _numbers(value: object) -> np.ndarray:
    """A numpy view of a tensor / array / number (bfloat16 and float16 widened)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype in (torch.bfloat16, torch.float16):
            value = value.float()
        return value.resolve_conj().numpy()
    return np.asarray(value)


def _index(flat: int, shape: tuple[int, ...]) -> str:
    if not shape:
        return "()"
    return str(tuple(int(i) for i in np.unravel_index(flat, shape)))


def _percent(bad: int, total: int) -> str:
    share = 100.0 * bad / total
    return "less than 1 %" if share < 1 else f"{share:.0f} %"


#: what ``rtol`` scales: each entry's ``|expected|``, or the largest of its array
RELATIVE_TO = ("entry", "largest")


def compare_values(got: np.ndarray, expected: np.ndarray, rtol: float, atol: float,
                   relative_to: str = "entry") -> str | None:
    """Compare two arrays of the same shape entry by entry; a message when they differ.

    An entry agrees when ``|got - expected| <= atol + rtol * |expected|``; NaN and infinite
    entries must be NaN / the same infinity exactly where the reference has them.

    Arguments:
        got, expected: arrays of the same shape (numbers).
        rtol, atol: relative and absolute tolerance, >= 0.
        relative_to: ``"entry"``: ``rtol`` scales each entry's ``|expected|``; ``"largest"``:
            it scales the largest finite ``|expected|`` of the array, for entries that are sums
            whose terms may cancel (a gradient summed over a batch), where the rounding error
            follows the size of the terms, not of the sum.

    Returns:
        ``None`` when every entry agrees, else what differs and where.

    Example:
        >>> compare_values(np.array([1.0, 2.5]), np.array([1.0, 2.0]), 1e-5, 1e-8)[:56]
        'values differ from the reference on 50 % of entries (1 of'
    """
    if relative_to not in RELATIVE_TO:
        raise ValueError(f"relative_to must be one of {RELATIVE_TO}, got {relative_to!r}")
    exp = expected.astype(np.complex128 if expected.dtype.kind == "c" else np.float64)
    out = got.astype(exp.dtype if got.dtype.kind != "c" else np.complex128)
    shape = exp.shape
    exp, out = exp.reshape(-1), out.reshape(-1)
    finite = np.isfinite(exp)
    nan_where_finite = np.isnan(out) & finite
    if nan_where_finite.any():
        where = int(np.flatnonzero(nan_where_finite)[0])
        return (f"contains NaN at index {_index(where, shape)} where the reference is finite "
                f"({int(nan_where_finite.sum())} NaN entries in all)")
    inf_where_finite = np.isinf(out) & finite
    if inf_where_finite.any():
        where = int(np.flatnonzero(inf_where_finite)[0])
        return (f"contains an infinite value at index {_index(where, shape)} where the reference "
                f"is finite ({int(inf_where_finite.sum())} infinite entries in all)")
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.where(finite, np.abs(out - exp), 0.0).real
        size = np.abs(exp)
        if relative_to == "largest":
            size = np.full_like(size, size[finite].max(initial=0.0))
        bad = finite & ~(error <= atol + rtol * size)
    # Where the reference is NaN / infinite, the answer must be exactly that.
    same = (np.isnan(exp) & np.isnan(out)) | (exp == out)
    bad |= ~finite & ~same
    if not bad.any():
        return None
    if bad[finite].any():
        worst = int(np.argmax(np.where(bad & finite, error, -1.0)))
        where = f"largest error {float(error[worst]):.3g} at index {_index(worst, shape)}"
    else:
        first = int(np.flatnonzero(bad)[0])
        where = f"at index {_index(first, shape)} the reference is {exp[first]}, not {out[first]}"
    if exp.size == 1:
        return f"value differs from the reference: {where.replace(' at index ()', '')}"
    return (f"values differ from the reference on {_percent(int(bad.sum()), exp.size)} of "
            f"entries ({int(bad.sum())} of {exp.size}); {where}")


def _float_bits(value: object) -> int:
    """Bits of a floating-point tensor / array / number (64 for a Python float), else 0."""
    if isinstance(value, torch.Tensor):
        return value.dtype.itemsize * 8 if value.is_floating_point() else 0
    if isinstance(value, (np.ndarray, np.floating)):
        return value.dtype.itemsize * 8 if value.dtype.kind == "f" else 0
    return 64 if isinstance(value, float) else 0


def _inputs(case: Case) -> list:
    """A case's arguments, with the items of tuple / list arguments one level down."""
    values = [*case.args, *case.kwargs.values()]
    values += [v for item in values if isinstance(item, (tuple, list)) for v in item]
    return values


def _input_bits(case: Case) -> int:
    """The widest floating-point dtype among a case's tensor and array inputs (0 when none is
    floating). Python floats do not count: a float32 case keeps plain numbers (a label, a
    mean), and float32 is then the right dtype for its answer."""
    return max((_float_bits(v) for v in _inputs(case) if not isinstance(v, float)), default=0)


def _narrower(got: object, expected: object, input_bits: int) -> str | None:
    """``"expected float64, got float32"`` when ``got`` has a narrower floating dtype than the
    reference and the inputs were that wide (or not floating): lost precision, not a bug in
    the formula, is then the likely cause of a difference."""
    got_bits, expected_bits = _float_bits(got), _float_bits(expected)
    if not (0 < got_bits < expected_bits and (input_bits == 0 or input_bits >= expected_bits)):
        return None
    return f"expected float{expected_bits}, got float{got_bits}"


def _mismatch(got: object, expected: object, rtol: float, atol: float,
              names: Sequence[str] = (), input_bits: int = 0,
              relative_to: str = "entry") -> str | None:
    """Why ``got`` does not match ``expected`` (type, length, shape, dtype kind, values);
    ``input_bits`` is the widest floating-point dtype of the inputs (see :func:`_narrower`),
    ``relative_to`` as in :func:`compare_values`."""
    if isinstance(expected, (tuple, list)):
        label = f" ({', '.join(names)})" if names else ""
        if not isinstance(got, (tuple, list)):
            return f"returned {_kind(got)}; expected {len(expected)} values{label}"
        if len(got) != len(expected):
            return f"returned {len(got)} values; expected {len(expected)}{label}"
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            problem = _mismatch(g, e, rtol, atol, input_bits=input_bits, relative_to=relative_to)
            if problem is not None:
                name = names[i] if i < len(names) else f"value {i + 1}"
                return f"{name}: {problem}"
        return None
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            return f"returned {_kind(got)}; expected a dict with keys {sorted(expected)}"
        if set(got) != set(expected):
            return f"returned a dict with keys {sorted(got)}; expected keys {sorted(expected)}"
        for key in expected:
            problem = _mismatch(got[key], expected[key], rtol, atol, input_bits=input_bits,
                                relative_to=relative_to)
            if problem is not None:
                return f"{key!r}: {problem}"
        return None
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            hint = " (did you forget `return`?)" if got is None else ""
            return f"returned {_kind(got)}; expected a torch.Tensor{hint}"
    elif isinstance(expected, np.ndarray):
        if not isinstance(got, np.ndarray):
            return f"returned {_kind(got)}; expected a numpy array"
    elif isinstance(expected, (bool, np.bool_)):
        if not isinstance(got, (bool, np.bool_)) and not (
                isinstance(got, (torch.Tensor, np.ndarray)) and got.dtype in (torch.bool, np.bool_)
                and tuple(got.shape) == ()):
            return f"returned {_kind(got)}; expected True or False"
        return None if bool(got) == bool(expected) else f"returned {bool(got)}; expected {expected}"
    elif isinstance(expected, (int, float, np.number)):
        scalar = isinstance(got, (int, float, np.number)) and not isinstance(got, bool)
        zero_d = isinstance(got, (torch.Tensor, np.ndarray)) and tuple(got.shape) == ()
        if not (scalar or zero_d):
            return f"returned {_kind(got)}; expected a number"
    else:
        return None if got == expected else f"returned {_kind(got)}; expected {expected!r}"
    got_a, exp_a = _numbers(got), _numbers(expected)
    if got_a.shape != exp_a.shape:
        return f"wrong shape: expected {tuple(exp_a.shape)}, got {tuple(got_a.shape)}"
    groups = (_dtype_group(got_a), _dtype_group(exp_a))
    if groups[0] != groups[1] and not (isinstance(expected, (int, float, np.number))
                                       and groups[0] in ("integer", "floating-point")):
        dtype = got.dtype if isinstance(got, (torch.Tensor, np.ndarray)) else type(got).__name__
        return f"wrong dtype: expected {groups[1]} values, got {dtype}"
    if got_a.dtype.kind not in "biufc":
        return f"returned values of dtype {got_a.dtype}; expected numbers"
    problem = compare_values(got_a, exp_a, rtol, atol, relative_to)
    narrower = None if problem is None else _narrower(got, expected, input_bits)
    return problem if narrower is None else f"wrong dtype: {narrower}; {problem}"


def close(rtol: float = 1e-5, atol: float = 1e-8, *, names: Sequence[str] = (),
          relative_to: str = "entry") -> Compare:
    """A comparison: same structure, type, shape and dtype kind as the expected value, and
    every number within ``atol + rtol * |expected|`` of it. A narrower floating dtype passes
    when the values are close enough; when they are not and the inputs were as wide as the
    reference (a float32 result for float64 inputs), the message names the dtypes first.

    Arguments:
        rtol, atol: relative and absolute tolerance (>= 0).
        names: names of the returned values when the function returns a tuple, used in
            messages ("means: wrong shape: expected (3, 4), got (4, 3)").
        relative_to: ``"entry"`` (the default) or ``"largest"``: ``rtol`` then scales the
            largest ``|expected|`` of each returned array instead of each entry's. For
            float32 gradients of a loss summed over a batch, whose small entries are sums of
            large terms that cancel (see :func:`compare_values`).

    Returns:
        ``compare(got, case) -> str | None``.

    Example:
        >>> close(rtol=1e-4)(torch.zeros(37, 1), Case(expected=torch.zeros(37)))
        'wrong shape: expected (37,), got (37, 1)'
    """
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"close(): {name} must be a finite number >= 0, got {value!r}")
    if relative_to not in RELATIVE_TO:
        raise ValueError(f"close(): relative_to must be one of {RELATIVE_TO}, got {relative_to!r}")
    names = tuple(names)

    def compare(got: object, case: Case) -> str | None:
        return _mismatch(got, case.expected, float(rtol), float(atol), names, _input_bits(case),
                         relative_to)

    largest = ", relative_to='largest'" if relative_to == "largest" else ""
    compare.__qualname__ = f"close(rtol={rtol}, atol={atol}{largest})"
    return compare


def exact(*, names: Sequence[str] = ()) -> Compare:
    """A comparison that wants exactly the expected values (labels, counts, booleans).

    Example:
        >>> exact()(torch.tensor([0, 2]), Case(expected=torch.tensor([0, 1])))  # doctest: +ELLIPSIS
        'values differ from the reference on 50 % of entries (1 of 2); ...'
    """
    return close(0.0, 0.0, names=names)


def each(*compares: Compare, names: Sequence[str] = ()) -> Compare:
    """A comparison for a function that returns a tuple: element ``i`` is compared with
    ``compares[i]`` (e.g. different tolerances for probabilities and log-densities).

    Arguments:
        compares: one comparison per returned value.
        names: their names, for messages.

    Example:
        >>> check = each(close(1e-4, 1e-6), close(1e-5, 1e-4), names=("resp", "log_px"))
    """
    if not compares or not all(callable(c) for c in compares):
        raise TypeError("each(): give one callable comparison per returned value")
    names = tuple(names)

    def compare(got: object, case: Case) -> str | None:
        expected = case.expected
        if not (isinstance(expected, (tuple, list)) and len(expected) == len(compares)):
            raise CheckFileError(f"each(): the expected value is not a tuple of {len(compares)}")
        label = f" ({', '.join(names)})" if names else ""
        if not isinstance(got, (tuple, list)):
            return f"returned {_kind(got)}; expected {len(compares)} values{label}"
        if len(got) != len(compares):
            return f"returned {len(got)} values; expected {len(compares)}{label}"
        for i, (check, value, want) in enumerate(zip(compares, got, expected, strict=True)):
            problem = check(value, Case(case.args, case.kwargs, expected=want, label=case.label))
            if problem is not None:
                return f"{names[i] if i < len(names) else f'value {i + 1}'}: {problem}"
        return None

    return compare


def satisfies(predicate: Callable[[Any, Case], bool], message: str) -> Compare:
    """A comparison that checks a property of the returned value (computed in the grader).

    Arguments:
        predicate: ``predicate(got, case) -> bool``, true when the property holds.
        message: what the student is told when it does not (or when ``predicate`` raises on
            a value of an unexpected form).

    Example:
        >>> rows = satisfies(lambda got, case: torch.allclose(got.sum(1), torch.ones(len(got)),
        ...                                                 atol=1e-5), "rows must sum to 1")
    """
    if not callable(predicate):
        raise TypeError(f"satisfies(): predicate must be callable, got {predicate!r}")

    def compare(got: object, case: Case) -> str | None:
        try:
            ok = bool(predicate(got, case))
        except Exception:  # noqa: BLE001 - a value of an unexpected form fails the property
            ok = False
        return None if ok else message

    return compare


def all_of(*compares: Compare) -> Compare:
    """A comparison that passes when every one of ``compares`` does; it reports the first
    failure (later checks may assume the earlier ones passed).

    Example:
        >>> check = all_of(close(rtol=1e-4), satisfies(lambda g, c: bool((g >= 0).all()), "p >= 0"))
    """
    for compare in compares:
        if not callable(compare):
            raise TypeError(f"all_of(): every comparison must be callable, got {compare!r}")

    def compare_all(got: object, case: Case) -> str | None:
        for compare in compares:
            problem = compare(got, case)
            if problem is not None:
                return problem
        return None

    return compare_all


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def keeps_dtype(compare: Compare, *, names: Sequence[str] = ()) -> Compare:
    """``compare``, after checking that every tensor the answer returned (the result, or each
    value of a returned tuple / list) has the dtype of the case's floating-point tensor inputs,
    as labs ask ("float64 or float32: return the same dtype"). :func:`close` alone lets a
    narrower result through whenever its rounding happens to stay inside the tolerance, so the
    same float32 answer would pass on some random cases and fail on others; this refuses it on
    every case. Cases whose floating-point inputs mix dtypes (or have none) are not checked.

    Arguments:
        compare: the comparison that runs when the dtypes are right.
        names: names of the returned values of a tuple, for messages.

    Returns:
        ``compare(got, case) -> str | None``.

    Example:
        >>> x = torch.zeros(3, dtype=torch.float64)
        >>> keeps_dtype(close())(x.float(), Case(args=(x,), expected=x))
        "wrong dtype: the inputs are float64, the result is float32: keep the inputs' dtype"
    """
    if not callable(compare):
        raise TypeError(f"keeps_dtype(): compare must be callable, got {compare!r}")
    names = tuple(names)

    def check(got: object, case: Case) -> str | None:
        dtypes = {v.dtype for v in _inputs(case)
                  if isinstance(v, torch.Tensor) and v.is_floating_point()}
        if len(dtypes) == 1:
            want = dtypes.pop()
            results = ([("the result", got)] if not isinstance(got, (tuple, list)) else
                       [(names[i] if i < len(names) else f"value {i + 1} of the result", v)
                        for i, v in enumerate(got)])
            for name, value in results:
                if isinstance(value, torch.Tensor) and value.dtype != want:
                    return (f"wrong dtype: the inputs are {_dtype_name(want)}, {name} is "
                            f"{_dtype_name(value.dtype)}: keep the inputs' dtype")
        return compare(got, case)

    check.__qualname__ = f"keeps_dtype({getattr(compare, '__qualname__', 'compare')})"
    return check


# ----------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Case:
    """One call of the student's function and what it must return.

    Arguments:
        args, kwargs: the inputs (tensors, arrays, numbers, strings, None, and tuples / lists /
            str-keyed dicts of them). Randomness the answer needs is passed in explicitly (e.g.
            a noise tensor), so that the expected output is determined by the inputs.
        expected: the reference's output on these inputs, computed in the grader.
        label: a short description shown to the student ("float32, D=2"), never the inputs.
        weight: the case's share of the exercise's points (> 0). Put the weight on fresh
            random cases, so that an answer hard-coding the visible tests earns nothing.
        compare: overrides the exercise's comparison for this case (e.g. looser tolerances
            for float32 inputs); it compares the gradients too, unless ``gradient_compare``
            is given.
        expected_gradient: for an exercise with ``gradient_of``, the reference's gradient of
            the sum of its output with respect to each of those arguments, in that order.
        gradient_compare: the comparison of the gradients alone (e.g. float32 gradients
            relative to their largest entry, ``close(..., relative_to="largest")``, while the
            value keeps its entry-by-entry tolerance).
    """

    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    expected: Any = None
    label: str = ""
    weight: float = 1.0
    compare: Compare | None = None
    expected_gradient: tuple | None = None
    gradient_compare: Compare | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.args, tuple):
            raise TypeError(f"Case: args must be a tuple, got {type(self.args).__name__}")
        if not (isinstance(self.kwargs, Mapping) and all(isinstance(k, str) for k in self.kwargs)):
            raise TypeError("Case: kwargs must be a dict with str keys")
        if not (isinstance(self.weight, (int, float)) and math.isfinite(self.weight)
                and self.weight > 0):
            raise ValueError(f"Case: weight must be a finite number > 0, got {self.weight!r}")
        if not isinstance(self.label, str):
            raise TypeError(f"Case: label must be a str, got {type(self.label).__name__}")
        for name in ("compare", "gradient_compare"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise TypeError(f"Case: {name} must be callable")


@dataclass(frozen=True)
class Exercise:
    """One graded exercise of a lab.

    Arguments:
        answer: grade_id of the answer cell (``solution: true``) that defines the function.
        test: grade_id of the graded test cell that follows it; its ``points`` (in the
            notebook's metadata, the one place points are written) are the exercise's points,
            and the verdict is written into its outputs.
        function: the name the answer cell defines and the grader calls.
        cases: ``cases(rng) -> iterable of Case``; ``rng`` is a ``numpy.random.Generator``
            seeded per submission, so every submission gets fresh inputs.
        compare: the default comparison of the cases (:func:`close` with its defaults).
        gradient_of: for a function whose output must be differentiable (a loss that trains
            a network): ``{position: name}`` of floating-point tensor arguments. The grader
            has them require grad in the sandbox and compares the gradient of the sum of the
            returned tensor (of all returned tensors, for a tuple of them) with respect to
            each with the case's ``expected_gradient``, so
            an answer that detaches its output (or computes it under ``torch.no_grad()``)
            fails, with a message naming ``name``.
    """

    answer: str
    test: str
    function: str
    cases: Callable[[np.random.Generator], Iterable[Case]]
    compare: Compare = field(default_factory=close)
    gradient_of: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("answer", "test"):
            value = getattr(self, name)
            if not (isinstance(value, str) and _GRADE_ID.match(value)):
                raise ValueError(f"Exercise: {name} must be a grade_id, got {value!r}")
        if not (isinstance(self.function, str) and _NAME.match(self.function)):
            raise ValueError(f"Exercise: function must be a Python name, got {self.function!r}")
        if not callable(self.cases):
            raise TypeError("Exercise: cases must be a function cases(rng) -> iterable of Case")
        if not callable(self.compare):
            raise TypeError("Exercise: compare must be callable")
        if not (isinstance(self.gradient_of, Mapping) and all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0 and isinstance(n, str)
                for i, n in self.gradient_of.items())):
            raise TypeError("Exercise: gradient_of must map argument positions (int >= 0) to "
                            "their names")

    def draw(self, rng: np.random.Generator) -> list[Case]:
        """The exercise's cases for one submission (at least one)."""
        cases = list(self.cases(rng))
        if not cases or not all(isinstance(case, Case) for case in cases):
            raise CheckFileError(f"cases() of {self.function} must yield at least one Case")
        for case in cases:
            if not self.gradient_of:
                continue
            if not all(i < len(case.args) and isinstance(case.args[i], torch.Tensor)
                       and case.args[i].is_floating_point() for i in self.gradient_of):
                raise CheckFileError(f"{self.function}: gradient_of names arguments that are "
                                     f"not floating-point tensors in case {case.label!r}")
            if not (isinstance(case.expected_gradient, (tuple, list))
                    and len(case.expected_gradient) == len(self.gradient_of)):
                raise CheckFileError(f"{self.function}: case {case.label!r} needs an "
                                     f"expected_gradient of {len(self.gradient_of)} values")
        return cases


@dataclass(frozen=True)
class Lab:
    """The hidden checks of one lab.

    Arguments:
        exercises: the graded exercises, in the notebook's order.
        preamble: grade_id of the locked code cell of the *source* notebook that holds the
            imports an answer may rely on (``import math``, ``numpy as np``, ``torch``); it is
            run before the answer cells, whatever the submission's copy of it says.
        packages: the installed distributions (with their dependencies) the student's code
            can import while grading, besides the standard library. ``dgm_lab`` is never
            among them; scikit-learn and SciPy only when a lab lists them.
    """

    exercises: Sequence[Exercise]
    preamble: str = "imports"
    packages: Sequence[str] = ("torch", "numpy")

    def __post_init__(self) -> None:
        object.__setattr__(self, "exercises", tuple(self.exercises))
        object.__setattr__(self, "packages", tuple(self.packages))
        if not self.exercises or not all(isinstance(e, Exercise) for e in self.exercises):
            raise TypeError("Lab: exercises must be a non-empty sequence of Exercise")
        for attr in ("answer", "test"):
            ids = [getattr(e, attr) for e in self.exercises]
            if len(set(ids)) != len(ids):
                raise ValueError(f"Lab: two exercises share the same {attr} cell")
        if "dgm_lab" in self.packages:
            raise ValueError("Lab: packages must not include dgm_lab (it holds the answers)")
        if not all(isinstance(p, str) and p for p in self.packages):
            raise TypeError("Lab: packages must be distribution names")


def load_lab(path: str | Path) -> Lab:
    """Import a hidden-checks file and return its ``LAB``.

    Arguments:
        path: ``solutions/<lab>/hidden_checks.py``.

    Returns:
        the :class:`Lab` it defines.

    Raises:
        CheckFileError: the file is missing, fails to import, or defines no ``LAB``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckFileError(f"no hidden checks at {path}")
    name = f"_dgm_hidden_checks_{path.parent.name}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling of the checks need it registered
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(name, None)
        raise CheckFileError(f"{path} fails to import: {type(err).__name__}: {err}") from err
    lab = getattr(module, "LAB", None)
    if not isinstance(lab, Lab):
        raise CheckFileError(f"{path} defines no LAB = Lab(...)")
    return lab
