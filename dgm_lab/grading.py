"""Helpers for the hidden tests of the labs.

A hidden test compares a student's function with the :mod:`dgm_lab` reference on fresh
random inputs. To make sure the student wrote the idea rather than called the reference,
the test runs the student's function inside :func:`forbid`, which makes the named
references (and their scikit-learn / scipy twins) raise for the duration of the block.
Replacing the function's code object, rather than the module attribute, catches every
way of calling it: ``dgm_lab.density.kde_log_prob``, a ``from ... import`` done earlier,
an alias, or a method reached through an instance.

Example:
    >>> import dgm_lab.density as ref
    >>> expected = ref.kde_log_prob(x, data, 0.5)          # reference, outside the block
    >>> with forbid(ref.kde_log_prob):
    ...     got = kde_log_prob(x, data, 0.5)              # the student's function
    >>> torch.testing.assert_close(got, expected)
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any


class ForbiddenCallError(RuntimeError):
    """Raised when an exercise answer calls the reference implementation it must replace."""


def _functions_of(target: Any) -> list[Any]:
    """The plain Python functions whose code :func:`forbid` swaps out for ``target``.

    For a class: the functions defined in the class body itself (not its bases, so that
    forbidding an ``nn.Module`` subclass leaves ``nn.Module`` working for the student).
    A decorated function is followed through ``__wrapped__`` to the function it wraps.
    """
    if inspect.isclass(target):
        values = list(vars(target).values())
    else:
        values = [getattr(target, "__func__", target)]  # bound methods
    found = []
    for value in values:
        func = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
        func = func.fget if isinstance(func, property) else func
        func = inspect.unwrap(func) if callable(func) else func
        if inspect.isfunction(func):
            found.append(func)
    if not found and not inspect.isclass(target):
        raise TypeError(f"forbid() takes Python functions, methods or classes, got {target!r}")
    return found


def _forbidden_code(func: Any, label: str) -> Any:
    """A code object for ``func`` that raises :class:`ForbiddenCallError` naming ``label``.

    It has the same free variables as ``func`` (methods that use ``super()`` close over
    ``__class__``), so it fits the function's closure, and it reaches the exception
    through the import system because it runs with the globals of ``func``'s module.
    """
    message = f"this exercise must be solved without calling {label}; write it yourself"
    free = func.__code__.co_freevars
    source = (
        f"def _outer({', '.join(free)}):\n"
        f"    def {func.__code__.co_name}(*args, **kwargs):\n"
        f"        ({', '.join(free)}{',' if free else ''})\n"
        f"        raise __import__('dgm_lab.grading', fromlist=['_'])"
        f".ForbiddenCallError({message!r})\n"
        f"    return {func.__code__.co_name}\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<forbidden>", "exec"), namespace)  # noqa: S102 - fixed template
    code = namespace["_outer"](*([None] * len(free))).__code__
    if code.co_freevars != free:
        raise TypeError(f"forbid() cannot replace {func.__qualname__}: closure {free}")
    return code


_UNSET = object()


@contextlib.contextmanager
def forbid(*targets: Any) -> Iterator[None]:
    """Make every call to ``targets`` raise :class:`ForbiddenCallError` inside the block.

    Arguments:
        targets: Python functions, methods or classes (every function defined in a
            class body is forbidden). The original code is restored when the block exits,
            also on error.
    """
    swapped: list[tuple[Any, Any, Any]] = []
    try:
        for target in targets:
            module = getattr(target, "__module__", "?")
            label = f"{module}.{getattr(target, '__qualname__', target)}"
            for func in _functions_of(target):
                code = _forbidden_code(func, label)
                swapped.append((func, func.__code__, func.__dict__.get("__signature__", _UNSET)))
                # Keep the original signature visible to introspection: scikit-learn's
                # get_params (run before fit) reads __init__'s signature, and must let the
                # call through to its ForbiddenCallError instead of failing on (*args, **kwargs).
                func.__signature__ = inspect.signature(func)
                func.__code__ = code
        yield
    finally:
        for func, code, signature in reversed(swapped):
            func.__code__ = code
            if signature is _UNSET:
                func.__dict__.pop("__signature__", None)
            else:
                func.__signature__ = signature
