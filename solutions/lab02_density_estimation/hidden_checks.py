"""Hidden checks of lab 2 (density estimation). Instructor only: never released.

Each exercise gets three float64 cases of fresh random sizes (one per kind of input the
exercise must handle: 1-D, 2-D, higher-dimensional) and one float32 case; every case keeps the
edge case the exercise is about (a query far from all the data for the log-sum-exp exercises).
Expected values come from dgm_lab's references, in float64, in the grader's process.
"""

import numpy as np
import torch

from dgm_lab import density as ref
from dgm_lab.grading import Case, Exercise, Lab, all_of, close, each, satisfies

F32 = "float32"


def _f32(*tensors: torch.Tensor) -> tuple:
    return tuple(t.float() if t.is_floating_point() else t for t in tensors)


def kde_cases(rng: np.random.Generator):
    dims = (1, 2, int(rng.integers(3, 30)), 2)
    for i, dim in enumerate(dims):
        m, n = int(rng.integers(5, 400)), int(rng.integers(1, 100))
        data = torch.as_tensor(rng.normal(size=(m, dim)) * rng.uniform(0.2, 3.0, size=dim))
        x = torch.as_tensor(rng.normal(scale=3.0, size=(n, dim)))
        x[0] = 50.0  # far from every point: only log-sum-exp keeps it finite
        h = float(10 ** rng.uniform(-1.5, 0.5))
        expected = ref.kde_log_prob(x, data, h)
        if i == len(dims) - 1:
            yield Case((*_f32(x, data), h), expected=expected, label=f"{F32}, D={dim}",
                       compare=close(rtol=1e-3, atol=1e-2))
        else:
            yield Case((x, data, h), expected=expected, label=f"float64, D={dim}")


def knn_cases(rng: np.random.Generator):
    dims = (1, 2, int(rng.integers(3, 8)), 2)
    for i, dim in enumerate(dims):
        m, n = int(rng.integers(10, 400)), int(rng.integers(1, 80))
        k = int(rng.integers(1, min(m, 30) + 1))
        data = torch.as_tensor(rng.normal(size=(m, dim)))
        x = torch.as_tensor(rng.normal(scale=2.0, size=(n, dim)))
        expected = ref.knn_density(x, data, k)
        if i == len(dims) - 1:
            # float32 distances lose ~1e-4 (relative) when the data are far apart
            yield Case((*_f32(x, data), k), expected=expected, label=f"{F32}, D={dim}, k={k}",
                       compare=close(rtol=5e-3, atol=1e-10))
        else:
            yield Case((x, data, k), expected=expected, label=f"float64, D={dim}, k={k}")


def _mixture(rng: np.random.Generator, dim: int, k: int) -> tuple[torch.Tensor, ...]:
    weights = torch.as_tensor(rng.dirichlet(np.ones(k) * 2))
    means = torch.as_tensor(rng.normal(scale=2.0, size=(k, dim)))
    a = rng.normal(size=(k, dim, dim))
    covariances = torch.as_tensor(a @ a.transpose(0, 2, 1) / dim + 0.3 * np.eye(dim))
    return weights, means, covariances


def _rows_sum_to_one(got: object, case: Case) -> bool:
    """Responsibilities: each row sums to 1 (checked only when the shape is right, so that a
    wrong shape is reported as such by the comparison that follows)."""
    resp = got[0] if isinstance(got, (tuple, list)) and got else None
    if not (isinstance(resp, torch.Tensor) and resp.shape == case.expected[0].shape):
        return True
    return bool(torch.allclose(resp.double().sum(1), torch.ones(len(resp), dtype=torch.float64),
                               atol=1e-3))


ROWS = satisfies(_rows_sum_to_one, "resp: every row of responsibilities must sum to 1")
E_STEP = all_of(ROWS, each(close(1e-4, 1e-6), close(1e-5, 1e-4), names=("resp", "log_px")))
E_STEP_F32 = all_of(ROWS, each(close(1e-3, 1e-5), close(1e-5, 1e-2), names=("resp", "log_px")))


def e_step_cases(rng: np.random.Generator):
    shapes = ((1, 2), (2, int(rng.integers(2, 6))), (int(rng.integers(3, 10)), 3), (2, 3))
    for i, (dim, k) in enumerate(shapes):
        n = int(rng.integers(5, 300))
        x = torch.as_tensor(rng.normal(scale=3.0, size=(n, dim)))
        x[0] = 100.0  # far from every component: needs log-space normalisation
        weights, means, covariances = _mixture(rng, dim, k)
        log_resp, log_px = ref.e_step(x, weights, means, covariances)
        expected = (log_resp.exp(), log_px)
        if i == len(shapes) - 1:
            yield Case(_f32(x, weights, means, covariances), expected=expected,
                       label=f"{F32}, D={dim}, K={k}",
                       compare=E_STEP_F32)
        else:
            yield Case((x, weights, means, covariances), expected=expected,
                       label=f"float64, D={dim}, K={k}")


def m_step_cases(rng: np.random.Generator):
    shapes = ((1, 2), (2, int(rng.integers(2, 6))), (int(rng.integers(3, 10)), 4), (2, 3))
    for i, (dim, k) in enumerate(shapes):
        n = int(rng.integers(20, 300))
        x = torch.as_tensor(rng.normal(size=(n, dim)) * rng.uniform(0.5, 3.0, size=dim) + 1.0)
        resp = torch.as_tensor(rng.dirichlet(np.ones(k), size=n))
        reg = float(10 ** rng.uniform(-6, -1))
        expected = ref.m_step(x, resp, reg)
        if i == len(shapes) - 1:
            yield Case((*_f32(x, resp), reg), expected=expected, label=f"{F32}, D={dim}, K={k}",
                       compare=close(rtol=1e-4, atol=1e-5,
                                     names=("weights", "means", "covariances")))
        else:
            yield Case((x, resp, reg), expected=expected, label=f"float64, D={dim}, K={k}")


LAB = Lab(exercises=[
    Exercise(answer="ex1_code", test="ex1_tests", function="kde_log_prob", cases=kde_cases,
             compare=close(rtol=1e-4, atol=1e-4)),
    Exercise(answer="ex2_code", test="ex2_tests", function="knn_density", cases=knn_cases,
             compare=close(rtol=1e-4, atol=1e-10)),
    Exercise(answer="ex3_code", test="ex3_tests", function="e_step", cases=e_step_cases,
             compare=E_STEP),
    Exercise(answer="ex4_code", test="ex4_tests", function="m_step", cases=m_step_cases,
             compare=close(rtol=1e-5, atol=1e-8, names=("weights", "means", "covariances"))),
])
