"""Input checks shared by the public functions of :mod:`dgm_lab`.

Each helper raises a ``TypeError`` or ``ValueError`` whose message names the argument
and what was wrong with it, so a student sees the problem rather than a shape error
deep inside PyTorch.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

#: Half-precision dtypes: upcast to float32 on input, refused as a model's dtype.
HALF_DTYPES = (torch.float16, torch.bfloat16)


def as_float_tensor(x: object, name: str, *, ndim: int | None = None,
                    dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None,
                    allow_bool: bool = False, allow_nan: bool = False) -> torch.Tensor:
    """Convert ``x`` (tensor, array or nested list) to a floating tensor and check it.

    Checks: numeric (not object/complex; bool only with ``allow_bool``), ``ndim`` dimensions
    if given, at least one row, and no NaN (unless ``allow_nan``: NaN then marks a missing
    entry) or infinity. Integer and bool input become ``float32`` (or ``dtype``); floating
    input keeps its dtype unless ``dtype`` is given, except half precision (float16,
    bfloat16), which is upcast to ``float32``: sums of exponentials, log-determinants and
    counts need float32's range and precision, so dgm_lab never computes in half precision.
    """
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, (np.ndarray, list, tuple, numbers.Number)):
        arr = np.asarray(x)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got an array of dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if t.is_complex() or (t.dtype == torch.bool and not allow_bool):
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point() or t.dtype in HALF_DTYPES:
        t = t.to(torch.float32)
    if device is not None:
        t = t.to(device)
    if ndim is not None and t.dim() != ndim:
        want = {1: "[n]", 2: "[n, d]"}.get(ndim, f"{ndim} dimensions")
        raise ValueError(f"{name} must have shape {want}, got shape {tuple(t.shape)}")
    if t.numel() == 0 or (t.dim() > 0 and t.shape[0] == 0):
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); it needs at least one row")
    check_finite(t, name, allow_nan=allow_nan)
    return t


def check_finite(t: torch.Tensor, name: str, *, allow_nan: bool = False) -> torch.Tensor:
    """Check that ``t`` holds no infinity, and no NaN unless ``allow_nan``."""
    if allow_nan:
        if torch.isinf(t).any():
            raise ValueError(f"{name} contains infinite values")
    elif not torch.isfinite(t).all():
        bad = "NaN" if torch.isnan(t).any() else "infinite"
        raise ValueError(f"{name} contains {bad} values")
    return t


def check_symmetric(matrix: torch.Tensor, name: str) -> torch.Tensor:
    """Check that the square matrices ``[..., D, D]`` of ``matrix`` are symmetric.

    A covariance or precision matrix must be symmetric; a Cholesky factorisation would
    silently read only its lower triangle, so a typo would go unnoticed.
    """
    if matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(f"{name} must hold square matrices, got shape {tuple(matrix.shape)}")
    if not torch.allclose(matrix, matrix.mT, rtol=1e-5, atol=1e-8):
        raise ValueError(f"{name} must be symmetric (it is compared with its transpose)")
    return matrix


def check_positive(value: object, name: str) -> float:
    """Return ``value`` as a float after checking it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return v


def check_non_negative(value: object, name: str) -> float:
    """Return ``value`` as a float after checking it is a finite number >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number >= 0, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return v


def check_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int after checking it is an integer ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_binary(x: torch.Tensor, name: str) -> torch.Tensor:
    """Check that every entry of ``x`` is 0 or 1 (as needed by Bernoulli models)."""
    if not ((x == 0) | (x == 1)).all():
        raise ValueError(f"{name} must be binary (every entry 0 or 1); binarise it first, "
                         "e.g. dgm_lab.data.load_digits(form='binary')")
    return x


def check_same_width(x: torch.Tensor, d: int, name: str, *,
                     expected_by: str = "the model was fitted on") -> None:
    """Check that the 2-D tensor ``x`` has ``d`` columns (the width the model was fitted on)."""
    if x.shape[1] != d:
        raise ValueError(f"{name} has {x.shape[1]} features but {expected_by} {d}")


def check_seed(seed: object) -> int:
    """Return ``seed`` as an int after checking it is a non-negative integer (not a bool)."""
    if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return int(seed)


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` after checking it is one of the strings in ``choices``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {choices}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid values are {', '.join(choices)}")
    return value


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` after checking it is ``True`` or ``False`` (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def generator_device(generator: object, fallback: torch.device) -> torch.device:
    """The device random draws should be made on: the ``generator``'s, else ``fallback``.

    Checks that ``generator`` is a ``torch.Generator`` or ``None``.
    """
    if generator is None:
        return fallback
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, "
                        f"got {type(generator).__name__}")
    return generator.device
