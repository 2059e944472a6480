"""Hidden checks of lab 3 (PCA, probabilistic PCA, the linear autoencoder). Instructor only.

Each exercise gets three float64 cases of fresh random sizes, covering the kinds of input it
must handle (more points than dimensions, fewer points than dimensions, every component, data
far from the origin), and one float32 case with looser tolerances. Expected values come from
dgm_lab's references, in float64, in the grader's process. Principal axes are compared up to
their sign, and the weight matrix of probabilistic PCA through W W^T (W is only defined up to a
rotation).
"""

import numpy as np
import torch

from dgm_lab.grading import Case, Exercise, Lab, close

# the references
from dgm_lab.pca import linear_autoencoder_step, pca_svd, ppca_fit, ppca_log_prob

F32 = "float32"


def _f32(*tensors: torch.Tensor) -> tuple:
    return tuple(t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t
                 for t in tensors)


def _data(rng: np.random.Generator, n: int, d: int, shift: float = 3.0) -> torch.Tensor:
    """Rows with well separated variances (a factor 0.7 in standard deviation between
    consecutive directions), in a random orientation, centred at a random point."""
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    scales = 2.0 * 0.7 ** np.arange(d)
    x = (rng.normal(size=(n, d)) * scales) @ rotation.T + shift * rng.normal(size=d)
    return torch.as_tensor(x)


def _is_triple(got: object) -> bool:
    return isinstance(got, (tuple, list)) and len(got) == 3


# ---------------------------------------------------------------- exercise 1: PCA by the SVD

def _axes_up_to_sign(rtol: float, atol: float):
    inner = close(rtol, atol, names=("mean", "components", "explained_variance"))

    def compare(got, case):
        components = got[1] if _is_triple(got) else None
        expected = case.expected[1]
        if isinstance(components, torch.Tensor) and components.shape == expected.shape and \
                components.is_floating_point():
            # each axis may come with either sign: align it with the reference's
            signs = torch.sign((components.double() * expected.double()).sum(1, keepdim=True))
            signs[signs == 0] = 1
            got = (got[0], components * signs.to(components.dtype), got[2])
        return inner(got, case)

    return compare


def pca_cases(rng: np.random.Generator):
    shapes = [(int(rng.integers(50, 300)), int(rng.integers(3, 12)), "N > D"),
              (int(rng.integers(6, 12)), int(rng.integers(20, 40)), "N < D"),
              (int(rng.integers(50, 200)), int(rng.integers(2, 8)), "Q = D")]
    for n, d, label in shapes:
        q = d if label == "Q = D" else int(rng.integers(1, min(n - 1, d) + 1))
        x = _data(rng, n, d, shift=float(rng.choice([3.0, 100.0])))
        yield Case((x, q), expected=pca_svd(x, q), label=f"float64, {label}, D={d}, Q={q}")
    n, d = int(rng.integers(50, 300)), int(rng.integers(3, 12))
    q = int(rng.integers(1, d + 1))
    x = _data(rng, n, d)
    yield Case((x.float(), q), expected=pca_svd(x, q), label=f"{F32}, D={d}, Q={q}",
               compare=_axes_up_to_sign(1e-3, 2e-3))


# ----------------------------------------------------------- exercise 2: the ML fit of PPCA

def _covariance_not_weight(rtol: float, atol: float):
    """Compare (mean, W W^T, sigma^2): the likelihood depends on W only through W W^T."""
    inner = close(rtol, atol, names=("mean", "weight @ weight.T", "noise_variance"))

    def compare(got, case):
        mean, weight, sigma2 = case.expected
        expected = Case(expected=(mean, weight @ weight.T, sigma2), label=case.label)
        if not _is_triple(got):
            return close(rtol, atol, names=("mean", "weight", "noise_variance"))(got, case)
        w = got[1]
        if not (isinstance(w, torch.Tensor) and w.is_floating_point()
                and w.shape == weight.shape):
            shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            return (f"weight: expected a floating-point torch.Tensor of shape "
                    f"{tuple(weight.shape)} (D, Q), got {shape}")
        return inner((got[0], w @ w.T, got[2]), expected)

    return compare


def ppca_fit_cases(rng: np.random.Generator):
    shapes = [(int(rng.integers(100, 400)), int(rng.integers(4, 12)), "N > D"),
              (int(rng.integers(6, 12)), int(rng.integers(15, 30)), "N < D"),
              (int(rng.integers(100, 300)), int(rng.integers(3, 10)), "Q = D - 1")]
    for n, d, label in shapes:
        q = d - 1 if label == "Q = D - 1" else int(rng.integers(1, min(n - 2, d - 1) + 1))
        x = _data(rng, n, d)
        yield Case((x, q), expected=ppca_fit(x, q), label=f"float64, {label}, D={d}, Q={q}")
    n, d = int(rng.integers(100, 400)), int(rng.integers(4, 12))
    q = int(rng.integers(1, d))
    x = _data(rng, n, d)
    yield Case((x.float(), q), expected=ppca_fit(x, q), label=f"{F32}, D={d}, Q={q}",
               compare=_covariance_not_weight(1e-3, 1e-4))


# ------------------------------------------------------ exercise 3: the log-likelihood of PPCA

def ppca_log_prob_cases(rng: np.random.Generator):
    dims = [(1, 1), (int(rng.integers(2, 8)), 1), (int(rng.integers(8, 40)), 0), (6, 2)]
    for i, (d, q) in enumerate(dims):
        q = q or int(rng.integers(2, d))
        n = int(rng.integers(1, 60))
        mean = torch.as_tensor(rng.normal(size=d))
        weight = torch.as_tensor(rng.normal(size=(d, q)) * rng.uniform(0.3, 3.0))
        sigma2 = float(10 ** rng.uniform(-1.5, 0.5))
        x = mean + torch.as_tensor(rng.normal(size=(n, d)) * 3.0)
        expected = ppca_log_prob(x, mean, weight, sigma2)
        if i == len(dims) - 1:
            yield Case((*_f32(x, mean, weight), sigma2), expected=expected,
                       label=f"{F32}, D={d}, Q={q}", compare=close(rtol=1e-4, atol=1e-3))
        else:
            yield Case((x, mean, weight, sigma2), expected=expected, label=f"float64, D={d}, Q={q}")


# ------------------------------------------------- exercise 4: a linear autoencoder's step

def step_cases(rng: np.random.Generator):
    dims = [(1, 1), (int(rng.integers(3, 20)), 2), (int(rng.integers(5, 40)), 0), (10, 3)]
    for i, (d, q) in enumerate(dims):
        q = q or int(rng.integers(1, d))
        n = int(rng.integers(5, 100))
        x = torch.as_tensor(rng.normal(size=(n, d)) * rng.uniform(0.2, 2.0, size=d))
        x = x - x.mean(0)
        a = torch.as_tensor(rng.normal(size=(q, d)))
        b = torch.as_tensor(rng.normal(size=(d, q)))
        lr = float(10 ** rng.uniform(-3, -1))
        expected = linear_autoencoder_step(x, a, b, lr)
        if i == len(dims) - 1:
            yield Case((*_f32(x, a, b), lr), expected=expected, label=f"{F32}, D={d}, Q={q}",
                       compare=close(rtol=1e-4, atol=1e-4, names=NAMES4))
        else:
            yield Case((x, a, b, lr), expected=expected, label=f"float64, D={d}, Q={q}")


NAMES4 = ("loss", "new_encoder_weight", "new_decoder_weight")

LAB = Lab(exercises=[
    Exercise(answer="ex1_code", test="ex1_tests", function="pca_svd", cases=pca_cases,
             compare=_axes_up_to_sign(1e-6, 1e-8)),
    Exercise(answer="ex2_code", test="ex2_tests", function="ppca_fit", cases=ppca_fit_cases,
             compare=_covariance_not_weight(1e-6, 1e-9)),
    Exercise(answer="ex3_code", test="ex3_tests", function="ppca_log_prob",
             cases=ppca_log_prob_cases, compare=close(rtol=1e-7, atol=1e-7)),
    Exercise(answer="ex4_code", test="ex4_tests", function="linear_autoencoder_step",
             cases=step_cases, compare=close(rtol=1e-7, atol=1e-9, names=NAMES4)),
])
