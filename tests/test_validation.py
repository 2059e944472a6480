"""The shared input checks name the argument and the problem."""

import numpy as np
import pytest
import torch

from dgm_lab._validation import (
    as_float_tensor,
    check_binary,
    check_bool,
    check_choice,
    check_finite,
    check_int,
    check_non_negative,
    check_positive,
    check_same_width,
    check_seed,
    check_symmetric,
    generator_device,
)


def test_as_float_tensor_converts_arrays_lists_and_integers():
    assert as_float_tensor(np.ones((2, 3), dtype=np.int64), "x").dtype == torch.float32
    assert as_float_tensor([[1.0, 2.0]], "x", ndim=2).shape == (1, 2)
    assert as_float_tensor(torch.ones(2, dtype=torch.float64), "x").dtype == torch.float64
    assert as_float_tensor(torch.ones(2), "x", dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_is_upcast_to_float32(half):
    x = torch.tensor([0.1, 2.5, -3.0]).to(half)
    out = as_float_tensor(x, "x")
    assert out.dtype == torch.float32
    assert torch.equal(out, x.float())  # the same values, exactly
    assert as_float_tensor(x, "x", dtype=torch.float64).dtype == torch.float64
    assert as_float_tensor(np.ones(2, dtype=np.float16), "x").dtype == torch.float32


def test_bool_and_nan_only_when_allowed():
    b = torch.tensor([[True, False]])
    out = as_float_tensor(b, "x", allow_bool=True)
    assert out.dtype == torch.float32 and out.tolist() == [[1.0, 0.0]]
    assert as_float_tensor(b, "x", allow_bool=True, dtype=torch.float64).dtype == torch.float64
    nan = torch.tensor([1.0, float("nan")])
    assert torch.isnan(as_float_tensor(nan, "x", allow_nan=True)).sum() == 1
    with pytest.raises(ValueError, match="x contains infinite values"):
        as_float_tensor(torch.tensor([float("nan"), float("inf")]), "x", allow_nan=True)
    with pytest.raises(ValueError, match="y contains NaN"):
        check_finite(nan, "y")
    assert check_finite(nan, "y", allow_nan=True) is nan


@pytest.mark.parametrize("value, kwargs, error, match", [
    (torch.ones(3), {"ndim": 2}, ValueError, r"x must have shape \[n, d\], got shape \(3,\)"),
    (torch.ones(0, 2), {}, ValueError, "x is empty"),
    (torch.tensor([1.0, float("nan")]), {}, ValueError, "x contains NaN"),
    (torch.tensor([1.0, float("inf")]), {}, ValueError, "x contains infinite"),
    (torch.ones(2, dtype=torch.bool), {}, TypeError, "real numbers"),
    (np.array(["a", "b"]), {}, TypeError, "real numbers"),
    ("abc", {}, TypeError, "torch.Tensor or numpy array"),
])
def test_as_float_tensor_rejects_bad_input(value, kwargs, error, match):
    with pytest.raises(error, match=match):
        as_float_tensor(value, "x", **kwargs)


def test_scalar_checks():
    assert check_positive(0.5, "h") == 0.5
    assert check_int(np.int64(3), "k") == 3
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="h must be a finite number > 0"):
            check_positive(bad, "h")
    with pytest.raises(TypeError, match="h must be a positive number"):
        check_positive("1", "h")
    assert check_non_negative(0, "reg") == 0.0
    assert check_non_negative(np.float32(0.5), "reg") == 0.5
    with pytest.raises(ValueError, match="reg must be a finite number >= 0"):
        check_non_negative(-1e-9, "reg")
    with pytest.raises(TypeError, match="reg must be a number >= 0"):
        check_non_negative(False, "reg")
    with pytest.raises(TypeError, match="k must be an integer"):
        check_int(2.0, "k")
    with pytest.raises(ValueError, match="k must be >= 1"):
        check_int(0, "k")


def test_binary_width_symmetry_and_bool_checks():
    check_binary(torch.tensor([0.0, 1.0]), "x")
    with pytest.raises(ValueError, match="x must be binary"):
        check_binary(torch.tensor([0.0, 0.5]), "x")
    with pytest.raises(ValueError, match="x has 3 features but the model was fitted on 2"):
        check_same_width(torch.ones(4, 3), 2, "x")
    with pytest.raises(ValueError, match="x has 3 features but means has 2"):
        check_same_width(torch.ones(4, 3), 2, "x", expected_by="means has")
    spd = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    assert check_symmetric(spd.expand(3, 2, 2), "cov").shape == (3, 2, 2)
    with pytest.raises(ValueError, match="cov must be symmetric"):
        check_symmetric(torch.tensor([[2.0, 0.5], [0.0, 1.0]]), "cov")
    with pytest.raises(ValueError, match="cov must hold square matrices"):
        check_symmetric(torch.ones(2, 3), "cov")
    assert check_bool(False, "flag") is False
    for bad in (0, 1, "yes", None):
        with pytest.raises(TypeError, match="flag must be True or False"):
            check_bool(bad, "flag")


def test_seed_choice_and_generator_checks():
    assert check_seed(np.int64(7)) == 7
    with pytest.raises(TypeError, match="seed must be an int"):
        check_seed(True)
    with pytest.raises(ValueError, match="seed must be non-negative"):
        check_seed(-3)
    assert check_choice("val", "split", ("train", "val")) == "val"
    with pytest.raises(ValueError, match="unknown split 'dev'; valid values are train, val"):
        check_choice("dev", "split", ("train", "val"))
    with pytest.raises(TypeError, match="split must be a string"):
        check_choice(1, "split", ("train", "val"))
    cpu = torch.device("cpu")
    assert generator_device(None, cpu) == cpu
    assert generator_device(torch.Generator(), torch.device("meta")) == cpu
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got int"):
        generator_device(0, cpu)
