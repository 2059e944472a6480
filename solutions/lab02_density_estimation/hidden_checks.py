"""Hidden checks of lab 2 (density estimation). Instructor only: never released.

Each exercise gets three float64 cases of fresh random sizes (one per kind of input the
exercise must handle: 1-D, 2-D, higher-dimensional) and one float32 case; every case keeps the
edge case the exercise is about: a query far from all the data for the log-sum-exp exercises,
validation data that punish too small and too large a bandwidth (and candidates in random
order) for the bandwidth choice, queries that are data points for kNN, unequal weights and
unequal, correlated covariances for EM. Expected values come from dgm_lab's references, in
float64, in the grader's process. Every returned float tensor must keep the inputs' dtype (the
lab says so).
"""

import math

import numpy as np
import torch

from dgm_lab import density as ref
from dgm_lab.grading import Case, Exercise, Lab, all_of, close, each, satisfies

F32 = "float32"
DTYPES = ("float64", "float64", "float64", F32)


def _cast(dtype: str, *tensors: torch.Tensor) -> tuple:
    return tuple(t.to(getattr(torch, dtype)) if t.is_floating_point() else t for t in tensors)


def _float_dtypes(value: object) -> set[str]:
    if isinstance(value, torch.Tensor):
        return {str(value.dtype).removeprefix("torch.")} if value.is_floating_point() else set()
    if isinstance(value, (tuple, list)):
        return set().union(*(_float_dtypes(v) for v in value))
    return set()


def in_dtype(compare, dtype: str):
    """``compare``, then: every float tensor returned has the inputs' dtype."""
    def keeps(got: object, case: Case) -> str | None:
        wrong = sorted(_float_dtypes(got) - {dtype})
        return None if not wrong else (
            f"returned {' and '.join(wrong)} values for {dtype} inputs: keep the dtype of the "
            "inputs (see \"Dtypes\" at the top of the lab)")
    return all_of(compare, keeps)


# --- Exercise 1: the KDE. ---

KDE = {"float64": close(rtol=1e-4, atol=1e-4), F32: close(rtol=1e-3, atol=1e-2)}


def kde_cases(rng: np.random.Generator):
    dims = (1, 2, int(rng.integers(3, 30)), 2)
    for dim, dtype in zip(dims, DTYPES, strict=True):
        m, n = int(rng.integers(5, 400)), int(rng.integers(1, 100))
        data = torch.as_tensor(rng.normal(size=(m, dim)) * rng.uniform(0.2, 3.0, size=dim))
        x = torch.as_tensor(rng.normal(scale=3.0, size=(n, dim)))
        x[0] = 50.0  # far from every point: only log-sum-exp keeps it finite
        h = float(10 ** rng.uniform(-1.5, 0.5))
        yield Case((*_cast(dtype, x, data), h), expected=ref.kde_log_prob(x, data, h),
                   label=f"{dtype}, D={dim}, m={m}", compare=in_dtype(KDE[dtype], dtype))


# --- Exercise 2: the bandwidth chosen on validation data. ---


def _bandwidth_choice(candidates: list[float], rtol: float, atol: float, dtype: str):
    """(best, scores): scores as the reference's, best one of the candidates with the top
    reference score (a tie within the tolerance may go either way)."""
    scores_close = in_dtype(close(rtol, atol), dtype)

    def compare(got: object, case: Case) -> str | None:
        _, expected = case.expected
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            return "return two values: best (a candidate) and scores [len(candidates)]"
        best, scores = got
        problem = scores_close(scores, Case(expected=expected))
        if problem is not None:
            return f"scores: {problem}"
        try:
            value = float(best)
        except (TypeError, ValueError):
            return "best: expected a number, the chosen bandwidth"
        chosen = [i for i, h in enumerate(candidates) if math.isclose(value, h, rel_tol=1e-6)]
        if not chosen:
            return (f"best: {value:.4g} is not one of the candidates (return the bandwidth "
                    "itself, not its position in the list)")
        top = float(expected.max())
        if float(expected[chosen[0]]) < top - (atol + rtol * abs(top)):
            return "best: not the candidate with the highest validation score"
        return None

    return compare


def _blobs(rng: np.random.Generator, centres: np.ndarray, spread: np.ndarray,
           size: int) -> torch.Tensor:
    which = rng.integers(len(centres), size=size)
    return torch.as_tensor(centres[which] + rng.normal(size=(size, centres.shape[1])) * spread)


def bandwidth_cases(rng: np.random.Generator):
    tolerances = {"float64": (1e-4, 1e-4), F32: (1e-3, 1e-2)}
    dims = (1, 2, int(rng.integers(3, 9)), 2)
    for dim, dtype in zip(dims, DTYPES, strict=True):
        # a few blobs of different widths: the best h lies well inside the candidates
        centres = rng.normal(scale=3.0, size=(int(rng.integers(1, 5)), dim))
        spread = rng.uniform(0.2, 1.0, size=dim)
        train = _blobs(rng, centres, spread, int(rng.integers(20, 400)))
        val = _blobs(rng, centres, spread, int(rng.integers(20, 300)))
        if dim == 2:
            val[0] = torch.as_tensor(centres[0] + 8.0)  # far out: log-sum-exp again
        candidates = np.logspace(-2, 1, int(rng.integers(5, 16)))
        candidates = rng.permutation(candidates).tolist()
        expected = ref.select_bandwidth(train, val, candidates)
        yield Case((*_cast(dtype, train, val), candidates), expected=expected,
                   label=f"{dtype}, D={dim}, {len(candidates)} candidates",
                   compare=_bandwidth_choice(candidates, *tolerances[dtype], dtype))


# --- Exercise 3: kNN. ---

KNN = {"float64": close(rtol=1e-4, atol=1e-10),
       # float32 distances lose ~1e-4 (relative) when the data are far apart
       F32: close(rtol=5e-3, atol=1e-10)}


def knn_cases(rng: np.random.Generator):
    dims = (1, 2, int(rng.integers(4, 8)), 3)  # V_D and r^D differ in every dimension
    for dim, dtype in zip(dims, DTYPES, strict=True):
        m, n = int(rng.integers(10, 400)), int(rng.integers(3, 80))
        k = int(rng.integers(2, min(m, 30) + 1))
        data = torch.as_tensor(rng.normal(size=(m, dim)))
        x = torch.as_tensor(rng.normal(scale=2.0, size=(n, dim)))
        x[:2] = data[rng.choice(m, 2, replace=False)]  # queries at data points: they count
        yield Case((*_cast(dtype, x, data), k), expected=ref.knn_density(x, data, k),
                   label=f"{dtype}, D={dim}, k={k}", compare=in_dtype(KNN[dtype], dtype))


# --- Exercises 4 and 5: EM. ---


def _mixture(rng: np.random.Generator, dim: int, k: int) -> tuple[torch.Tensor, ...]:
    """Unequal weights, unequal and correlated covariances."""
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
E_STEP = {"float64": all_of(ROWS, each(close(1e-4, 1e-6), close(1e-5, 1e-4),
                                       names=("resp", "log_px"))),
          # float32 responsibilities of the far point come from log-densities in the
          # thousands: up to 1.8e-3 relative error for a right answer (3,000 seeds)
          F32: all_of(ROWS, each(close(5e-3, 1e-5), close(1e-5, 1e-2), names=("resp", "log_px")))}
M_NAMES = ("weights", "means", "covariances")
M_STEP = {"float64": close(rtol=1e-5, atol=1e-8, names=M_NAMES),
          F32: close(rtol=1e-4, atol=1e-5, names=M_NAMES)}


def e_step_cases(rng: np.random.Generator):
    # every case has D >= 2: in one dimension an answer that ignores the correlations is right
    shapes = ((2, 2), (2, int(rng.integers(2, 6))), (int(rng.integers(3, 10)), 3), (2, 3))
    for (dim, k), dtype in zip(shapes, DTYPES, strict=True):
        m = int(rng.integers(5, 300))
        x = torch.as_tensor(rng.normal(scale=3.0, size=(m, dim)))
        x[0] = 100.0  # far from every component: needs log-space normalisation
        weights, means, covariances = _mixture(rng, dim, k)
        log_resp, log_px = ref.e_step(x, weights, means, covariances)
        yield Case(_cast(dtype, x, weights, means, covariances),
                   expected=(log_resp.exp(), log_px), label=f"{dtype}, D={dim}, K={k}",
                   compare=in_dtype(E_STEP[dtype], dtype))


def m_step_cases(rng: np.random.Generator):
    shapes = ((2, 2), (2, int(rng.integers(2, 6))), (int(rng.integers(3, 10)), 4), (2, 3))
    for (dim, k), dtype in zip(shapes, DTYPES, strict=True):
        m = int(rng.integers(20, 300))
        x = torch.as_tensor(rng.normal(size=(m, dim)) * rng.uniform(0.5, 3.0, size=dim) + 1.0)
        resp = torch.as_tensor(rng.dirichlet(np.ones(k) * rng.uniform(0.2, 2.0, size=k),
                                             size=m))  # unequal soft counts
        # large enough that adding it to every entry, not only the diagonal, fails the check
        reg = float(10 ** rng.uniform(-2.5, -1))
        yield Case((*_cast(dtype, x, resp), reg), expected=ref.m_step(x, resp, reg),
                   label=f"{dtype}, D={dim}, K={k}", compare=in_dtype(M_STEP[dtype], dtype))


LAB = Lab(exercises=[
    Exercise(answer="ex1_code", test="ex1_tests", function="kde_log_prob", cases=kde_cases),
    Exercise(answer="ex2_code", test="ex2_tests", function="select_bandwidth",
             cases=bandwidth_cases),
    Exercise(answer="ex3_code", test="ex3_tests", function="knn_density", cases=knn_cases),
    Exercise(answer="ex4_code", test="ex4_tests", function="e_step", cases=e_step_cases),
    Exercise(answer="ex5_code", test="ex5_tests", function="m_step", cases=m_step_cases),
])
