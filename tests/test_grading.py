"""Unit tests of dgm_lab.grading.forbid, the guard hidden tests put around a student's answer.

Whatever way an answer reaches a forbidden reference (module attribute, an alias imported
before the block, a bound method, an instance built earlier, a subclass's super() call, a
decorator's wrapper), the call must raise ForbiddenCallError inside the block, and everything
must behave exactly as before once the block exits, also when it exits by an exception.
"""

from __future__ import annotations

import functools
import importlib
import sys
import textwrap

import numpy as np
import pytest
import torch
from sklearn.naive_bayes import BernoulliNB, GaussianNB
from torch import nn

from dgm_lab.grading import ForbiddenCallError, forbid

REFMOD = textwrap.dedent(
    '''
    """A stand-in for a dgm_lab reference module."""
    import functools

    import torch
    from torch import nn

    SCALE = 3.0


    def scaled(x, *, factor=SCALE):
        return x * factor


    def helper(x):
        return x + 1


    @torch.no_grad()
    def no_grad_double(x):
        return x * 2


    def _logged(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            return func(*args, **kwargs)
        return wrapper


    @_logged
    def logged_square(x):
        return x * x


    def count_up(n):
        yield from range(n)


    class Estimator:
        def __init__(self, shift=1.0):
            self.shift = shift

        def fit(self, x):
            self.mean_ = sum(x) / len(x) + self.shift
            return self

        @staticmethod
        def kind():
            return "estimator"

        @classmethod
        def make(cls):
            return cls(0.0)

        @property
        def doubled_shift(self):
            return 2 * self.shift


    class Child(Estimator):
        def fit(self, x):
            return super().fit(x)


    class Density(nn.Module):
        """A tiny nn.Module whose methods use super() (a __class__ closure)."""

        def __init__(self, d=2):
            super().__init__()
            self.loc = nn.Parameter(torch.zeros(d))

        def forward(self, x):
            return self.log_prob(x)

        def log_prob(self, x):
            return -0.5 * ((x - self.loc) ** 2).sum(-1)
    '''
)


@pytest.fixture
def ref(tmp_path, monkeypatch):
    """A fresh reference module imported from a file, as a lab's dgm_lab import would be."""
    (tmp_path / "dgm_refmod.py").write_text(REFMOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("dgm_refmod", None)
    module = importlib.import_module("dgm_refmod")
    yield module
    sys.modules.pop("dgm_refmod", None)


def test_forbidden_function_raises_inside_and_works_after(ref):
    with forbid(ref.scaled):
        with pytest.raises(ForbiddenCallError, match=r"dgm_refmod\.scaled"):
            ref.scaled(2.0)
        with pytest.raises(ForbiddenCallError):  # keywords do not turn it into a TypeError
            ref.scaled(x=2.0, factor=1.0)
        assert ref.helper(1) == 2  # only what is named is forbidden
    assert ref.scaled(2.0) == 6.0
    assert ref.scaled(2.0, factor=0.5) == 1.0  # defaults and keyword-only args intact


def test_aliases_and_from_imports_done_before_the_block_are_caught(ref):
    from dgm_refmod import scaled as my_scaled  # what a student cell might do earlier

    alias = ref.scaled
    partial = functools.partial(ref.scaled, factor=2.0)
    with forbid(ref.scaled):
        for call in (my_scaled, alias, partial, lambda v: list(map(ref.scaled, [v]))):
            with pytest.raises(ForbiddenCallError):
                call(1.0)
    assert my_scaled(1.0) == alias(1.0) == 3.0
    assert partial(1.0) == 2.0


def test_a_student_function_of_the_same_name_is_not_affected(ref):
    def scaled(x, *, factor=3.0):  # the student's own answer
        return x * factor

    with forbid(ref.scaled):
        assert scaled(2.0) == 6.0


def test_bound_method_forbids_the_method_for_every_instance(ref):
    built_before = ref.Estimator()
    fit = built_before.fit
    with forbid(built_before.fit):
        with pytest.raises(ForbiddenCallError, match=r"Estimator\.fit"):
            fit([1.0, 2.0])
        with pytest.raises(ForbiddenCallError):
            ref.Estimator(0.0).fit([1.0])
        assert ref.Estimator(2.0).shift == 2.0  # the constructor is still allowed
    assert built_before.fit([1.0, 3.0]).mean_ == 3.0


def test_class_forbids_construction_methods_static_class_and_properties(ref):
    built_before = ref.Estimator(1.0)
    child = ref.Child(1.0)
    with forbid(ref.Estimator):
        with pytest.raises(ForbiddenCallError):
            ref.Estimator()
        with pytest.raises(ForbiddenCallError):
            built_before.fit([1.0])
        with pytest.raises(ForbiddenCallError):
            ref.Estimator.kind()
        with pytest.raises(ForbiddenCallError):
            ref.Estimator.make()
        with pytest.raises(ForbiddenCallError):
            _ = built_before.doubled_shift
        with pytest.raises(ForbiddenCallError):  # a subclass reaching it through super()
            child.fit([1.0])
    assert ref.Estimator.make().shift == 0.0
    assert ref.Estimator.kind() == "estimator"
    assert built_before.doubled_shift == 2.0
    assert ref.Child(1.0).fit([2.0]).mean_ == 3.0


def test_sklearn_estimator_class_is_forbidden_and_restored():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (30, 3)), rng.normal(2, 1, (30, 3))])
    y = np.repeat([0, 1], 30)
    expected = GaussianNB().fit(x, y).predict_proba(x)
    built_before = GaussianNB()
    with forbid(GaussianNB):
        with pytest.raises(ForbiddenCallError, match="GaussianNB"):
            GaussianNB()
        with pytest.raises(ForbiddenCallError):  # fit is wrapped by sklearn's _fit_context
            built_before.fit(x, y)
        # Sibling estimators sharing GaussianNB's base classes keep working.
        BernoulliNB().fit(x > 0, y).predict(x > 0)
    np.testing.assert_allclose(GaussianNB().fit(x, y).predict_proba(x), expected)
    np.testing.assert_allclose(built_before.fit(x, y).predict_proba(x), expected)


def test_nn_module_subclass_is_forbidden_and_nn_module_still_works(ref):
    x = torch.randn(5, 2)
    built_before = ref.Density()
    with forbid(ref.Density):
        with pytest.raises(ForbiddenCallError, match="Density"):
            ref.Density()
        with pytest.raises(ForbiddenCallError):
            built_before(x)  # nn.Module.__call__ -> forward
        with pytest.raises(ForbiddenCallError):
            built_before.log_prob(x)
        layer = nn.Linear(2, 1)  # the student may still build modules
        assert layer(x).shape == (5, 1)
    fresh = ref.Density()  # super().__init__() works again: the closure was kept
    torch.testing.assert_close(fresh.log_prob(x), -0.5 * (x**2).sum(-1))
    torch.testing.assert_close(built_before(x), fresh(x))


def test_decorated_functions_are_followed_to_the_wrapped_code(ref):
    x = torch.ones(3, requires_grad=True)
    with forbid(ref.no_grad_double, ref.logged_square):
        with pytest.raises(ForbiddenCallError, match="no_grad_double"):
            ref.no_grad_double(x)
        with pytest.raises(ForbiddenCallError, match="logged_square"):
            ref.logged_square(3)
        assert torch.is_grad_enabled()  # the no_grad decorator unwound on the way out
    out = ref.no_grad_double(x)
    assert not out.requires_grad and torch.equal(out, torch.full((3,), 2.0))
    assert ref.logged_square(3) == 9


def test_generator_function_is_forbidden(ref):
    with forbid(ref.count_up):
        with pytest.raises(ForbiddenCallError):
            list(ref.count_up(3))
    assert list(ref.count_up(3)) == [0, 1, 2]


def test_restored_after_an_exception_in_the_block(ref):
    with pytest.raises(ValueError, match="student bug"):
        with forbid(ref.scaled, ref.Density):
            raise ValueError("student bug")
    assert ref.scaled(1.0) == 3.0
    assert ref.Density()(torch.zeros(1, 2)).item() == 0.0

    with pytest.raises(ForbiddenCallError):  # the forbidden call itself escaping the block
        with forbid(ref.scaled):
            ref.scaled(1.0)
    assert ref.scaled(1.0) == 3.0


def test_nested_and_repeated_targets_restore_the_original(ref):
    with forbid(ref.scaled, ref.scaled):
        with forbid(ref.scaled):
            with pytest.raises(ForbiddenCallError):
                ref.scaled(1.0)
        with pytest.raises(ForbiddenCallError):  # still forbidden in the outer block
            ref.scaled(1.0)
    assert ref.scaled(1.0) == 3.0


def test_bad_targets_raise_type_error_and_leave_nothing_swapped(ref):
    with pytest.raises(TypeError, match="Python functions, methods or classes"):
        with forbid(ref.scaled, 42):
            pass  # pragma: no cover
    assert ref.scaled(1.0) == 3.0  # swapped before the bad target, restored on the way out
    with pytest.raises(TypeError, match="got <built-in function len>"):
        with forbid(len):
            pass  # pragma: no cover
    with pytest.raises(TypeError, match="Python functions"):
        with forbid(torch.logsumexp):  # a C function has no code to swap: name its Python twin
            pass  # pragma: no cover
