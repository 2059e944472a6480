"""Hidden checks of lab 12 (a unified view of GANs and VAEs). Instructor only: never released.

Each exercise gets three float64 cases of fresh random sizes and parameters and one float32
case. Every case keeps the edge case the exercise is about: densities that are exactly 0 on
part of the grid (log-density -inf) and uneven grids, for the KL; log-densities shifted by so
many nats that exp() overflows or underflows, and uneven grids, for the moment matching; codes
so far from the ring that every component's density underflows, and K >= 2 components, for the
prior; samples of different sizes with repeated rows, for the MMD (whose diagonal must be left
out). Expected values come from dgm_lab's references, in float64, in the grader's process; the
KL, the fit and the MMD are numbers (a 0-dim tensor or a Python float passes).
"""

import math

import numpy as np
import torch

from dgm_lab.grading import Case, Exercise, Lab, close
from dgm_lab.vae import GaussianMixturePrior
from dgm_lab.vae import mmd_squared as reference_mmd_squared
from dgm_lab.variational import fit_gaussian_forward_kl as reference_forward_kl_fit
from dgm_lab.variational import kl_on_grid as reference_kl_on_grid

F32 = "float32"


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float64)


def _f32(args: tuple) -> tuple:
    return tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                 for a in args)


def reference_ring_prior_log_prob(z, components, radius, std):
    # the means of GaussianMixturePrior.ring, computed in float64 (ring() builds them in the
    # default dtype, float32, whose rounding would exceed the float64 cases' tolerance)
    angle = torch.arange(components, dtype=torch.float64) * (2 * math.pi / components)
    means = radius * torch.stack([angle.cos(), angle.sin()], 1)
    return GaussianMixturePrior(means, std).log_prob(z.double())


# ---- cases --------------------------------------------------------------------------------

def _grid(rng: np.random.Generator, uneven: bool) -> torch.Tensor:
    """An increasing grid over [-12, 12], evenly spaced or with random spacings."""
    g = int(rng.integers(2000, 5000))
    if not uneven:
        return torch.linspace(-12, 12, g, dtype=torch.float64)
    steps = rng.uniform(0.5, 1.5, size=g - 1)
    return _t(np.concatenate([[0.0], np.cumsum(steps)]) / steps.sum() * 24 - 12)


def _mixture(rng: np.random.Generator, x: torch.Tensor) -> torch.Tensor:
    """The log-density of a random 1-D mixture of 1 to 4 Gaussians, well inside the grid."""
    k = int(rng.integers(1, 5))
    w = rng.dirichlet(np.ones(k))
    m, s = rng.uniform(-5, 5, size=k), rng.uniform(0.4, 1.5, size=k)
    terms = [math.log(w[j]) + torch.distributions.Normal(float(m[j]), float(s[j])).log_prob(x)
             for j in range(k)]
    return torch.logsumexp(torch.stack(terms), 0)


def kl_cases(rng: np.random.Generator):
    # uneven grids (a Riemann sum or softmax weights are not the trapezoid rule there) and, in
    # every case, densities cut to 0 in the middle of their mass (-inf entries where the mass is
    # not small: 0 * (-inf) is nan unless the answer takes those points out). The result is a
    # number, as the lab says: a 0-dim tensor or a Python float.
    for i in range(4):
        x = _grid(rng, uneven=True)
        log_p, log_q = _mixture(rng, x), _mixture(rng, x)
        cut = float(rng.uniform(-2, 2))
        log_p = log_p.masked_fill(x > cut if rng.random() < 0.5 else x < cut, -math.inf)
        expected = float(reference_kl_on_grid(x, log_p, log_q))
        if i == 3:
            yield Case(_f32((x, log_p, log_q)), expected=expected, label=f"{F32}, p = 0 in part",
                       compare=close(rtol=2e-5, atol=2e-5))
        else:
            yield Case((x, log_p, log_q), expected=expected,
                       label="float64, uneven grid, p = 0 in part")


def forward_fit_cases(rng: np.random.Generator):
    # the fit does not change when a constant is added to log p: the expected value comes
    # from the normalised density, the answer gets one shifted so far (750 to 900 nats;
    # float32: 100 to 120) that exp(log p) overflows or underflows unless the maximum is taken
    # out first
    for i in range(4):
        x = _grid(rng, uneven=True)
        log_p = _mixture(rng, x)
        if i == 2:
            log_p = log_p.masked_fill(x > float(rng.uniform(-2, 2)), -math.inf)
        expected = tuple(float(v) for v in reference_forward_kl_fit(x, log_p))  # two numbers
        sign = float(rng.choice([-1.0, 1.0]))
        if i == 3:
            shifted = log_p + sign * float(rng.uniform(100, 120))
            yield Case(_f32((x, shifted)), expected=expected, label=f"{F32}, unnormalised",
                       compare=close(rtol=2e-5, atol=2e-5, names=("mean", "std")))
        else:
            shifted = log_p + sign * float(rng.uniform(750, 900))
            label = ["uneven grid", "uneven grid", "p = 0 on the right"][i]
            yield Case((x, shifted), expected=expected, label=f"float64, unnormalised, {label}")


def ring_cases(rng: np.random.Generator):
    for i in range(4):
        # K >= 2 in every case (with K = 1, log K = 0 and a sum without the -log K is right)
        k = [int(rng.integers(2, 4)), int(rng.integers(4, 8)), int(rng.integers(8, 20)), 10][i]
        radius, std = float(rng.uniform(0.5, 6)), float(rng.uniform(0.05, 1.5))
        z = _t(rng.normal(scale=radius + 1, size=(int(rng.integers(1, 80)), 2)))
        z[0] = _t(rng.uniform(50, 200, size=2) * rng.choice([-1, 1], size=2))  # far away
        expected = reference_ring_prior_log_prob(z, k, radius, std)
        if i == 3:
            yield Case(_f32((z, k, radius, std)), expected=expected, label=f"{F32}, K={k}",
                       compare=close(rtol=1e-4, atol=1e-3))
        else:
            yield Case((z, k, radius, std), expected=expected, label=f"float64, K={k}")


def mmd_cases(rng: np.random.Generator):
    for i in range(4):
        d = [1, 2, int(rng.integers(3, 10)), 2][i]
        m, n = int(rng.integers(2, 60)), int(rng.integers(2, 60))
        x = _t(rng.normal(size=(m, d)))
        y = _t(rng.normal(loc=rng.uniform(-1, 1), scale=rng.uniform(0.5, 2), size=(n, d)))
        # repeated rows in both samples: off the diagonal they still count (an answer that
        # drops every pair with k = 1 instead of the diagonal is wrong in x's and y's terms)
        x[-1] = x[0]
        y[-1] = y[0]
        h = float(10 ** rng.uniform(-0.5, 0.7))
        expected = float(reference_mmd_squared(x, y, h))  # a number
        if i == 3:
            yield Case(_f32((x, y, h)), expected=expected, label=f"{F32}, m={m}, n={n}",
                       compare=close(rtol=1e-4, atol=1e-5))
        else:
            yield Case((x, y, h), expected=expected, label=f"float64, d={d}, m={m}, n={n}")


LAB = Lab(exercises=[
    Exercise(answer="ex1_code", test="ex1_tests", function="kl_on_grid", cases=kl_cases,
             compare=close(rtol=1e-8, atol=1e-10)),
    Exercise(answer="ex2_code", test="ex2_tests", function="forward_kl_fit",
             cases=forward_fit_cases, compare=close(rtol=1e-8, atol=1e-10, names=("mean", "std"))),
    Exercise(answer="ex3_code", test="ex3_tests", function="ring_prior_log_prob",
             cases=ring_cases, compare=close(rtol=1e-8, atol=1e-8)),
    Exercise(answer="ex4_code", test="ex4_tests", function="mmd_squared", cases=mmd_cases,
             compare=close(rtol=1e-8, atol=1e-10)),
])
