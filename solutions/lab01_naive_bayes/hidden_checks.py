"""Hidden checks of lab 1 (naive Bayes). Instructor only: never released.

Each exercise gets three float64 cases of fresh random sizes and one float32 case, with the
edge cases of the exercise in every case (a constant feature for exercise 1, log joints near
-1e4 for exercise 2, garbage values at the missing pixels for exercise 4). Expected values
come from dgm_lab's references, in float64, in the grader's process.
"""

import numpy as np
import torch

from dgm_lab import naive_bayes as nb
from dgm_lab.grading import Case, Exercise, Lab, close

F32 = "float32"

# --- The only lines that name dgm_lab's naive Bayes API (adapt them when it changes). ---


def reference_gaussian_fit(x, y, n_classes, var_smoothing):
    model = nb.GaussianNaiveBayes(var_smoothing).fit(x, y, n_classes)
    return model.class_log_prior_, model.means_, model.variances_


def reference_log_posterior(x, log_prior, means, variances):
    model = nb.GaussianNaiveBayes()
    model.class_log_prior_, model.means_, model.variances_ = log_prior, means, variances
    return model.predict_log_proba(x)


def reference_bernoulli_fit(x, y, n_classes, alpha):
    model = nb.BernoulliNaiveBayes(alpha).fit(x, y, n_classes)
    return model.class_log_prior_, model.probs_


def reference_impute(x, observed, log_prior, probs):
    model = nb.BernoulliNaiveBayes()
    model.class_log_prior_, model.probs_ = log_prior, probs
    return model.impute(x, observed)


# --- Cases. ---


def _f32(*tensors: torch.Tensor) -> tuple:
    return tuple(t.float() if t.is_floating_point() else t for t in tensors)


def _labels(rng: np.random.Generator, n: int, k: int) -> torch.Tensor:
    """n labels in 0..k-1 with every class present."""
    return torch.as_tensor(np.concatenate([np.arange(k), rng.integers(0, k, n - k)]))


def gaussian_fit_cases(rng: np.random.Generator):
    for i in range(4):
        n, d, k = int(rng.integers(20, 300)), int(rng.integers(1, 30)), int(rng.integers(2, 7))
        y = _labels(rng, n, k)
        x = torch.as_tensor(rng.normal(size=(n, d)) * rng.uniform(0.1, 3.0, size=d)
                            + rng.normal(scale=2.0, size=(k, d))[y.numpy()])
        if d > 2:
            x[:, 0] = 0.0  # a constant feature, as in the digits: its variance is epsilon alone
        var_smoothing = float(10 ** rng.uniform(-9, -1))
        expected = reference_gaussian_fit(x, y, k, var_smoothing)
        names = ("log_prior", "means", "variances")
        if i == 3:
            yield Case((*_f32(x), y, k, var_smoothing), expected=expected,
                       label=f"{F32}, n={n}, d={d}, K={k}",
                       compare=close(rtol=1e-4, atol=1e-6, names=names))
        else:
            yield Case((x, y, k, var_smoothing), expected=expected,
                       label=f"float64, n={n}, d={d}, K={k}")


def log_posterior_cases(rng: np.random.Generator):
    # scale 30 makes the log joints ~ -1e4: a naive exp() underflows
    for i, scale in enumerate((1.0, 30.0, float(rng.uniform(1.0, 30.0)), 1.0)):
        n, d, k = int(rng.integers(5, 100)), int(rng.integers(1, 40)), int(rng.integers(2, 8))
        x = torch.as_tensor(rng.normal(scale=scale, size=(n, d)))
        means = torch.as_tensor(rng.normal(scale=2.0, size=(k, d)))
        variances = torch.as_tensor(rng.uniform(0.2, 3.0, size=(k, d)))
        log_prior = torch.log_softmax(torch.as_tensor(rng.normal(size=k)), 0)
        expected = reference_log_posterior(x, log_prior, means, variances)
        if i == 3:
            yield Case(_f32(x, log_prior, means, variances), expected=expected,
                       label=f"{F32}, scale {scale:g}, d={d}, K={k}",
                       compare=close(rtol=1e-4, atol=1e-3))
        else:
            yield Case((x, log_prior, means, variances), expected=expected,
                       label=f"float64, scale {scale:.3g}, d={d}, K={k}")


def bernoulli_fit_cases(rng: np.random.Generator):
    for i in range(4):
        n, d, k = int(rng.integers(10, 300)), int(rng.integers(1, 50)), int(rng.integers(2, 7))
        y = _labels(rng, n, k)
        on = rng.uniform(size=(n, d)) < rng.uniform(0.0, 1.0, size=(k, d))[y.numpy()]
        x = torch.as_tensor(on.astype(np.float64))
        alpha = float(rng.uniform(0.1, 3.0))
        expected = reference_bernoulli_fit(x, y, k, alpha)
        if i == 3:
            yield Case((*_f32(x), y, k, alpha), expected=expected,
                       label=f"{F32}, n={n}, d={d}, K={k}",
                       compare=close(rtol=1e-4, atol=1e-6, names=("log_prior", "probs")))
        else:
            yield Case((x, y, k, alpha), expected=expected,
                       label=f"float64, n={n}, d={d}, K={k}")


def impute_cases(rng: np.random.Generator):
    for i in range(4):
        n, d, k = int(rng.integers(1, 60)), int(rng.integers(2, 70)), int(rng.integers(2, 8))
        probs = torch.as_tensor(rng.uniform(0.02, 0.98, size=(k, d)))
        log_prior = torch.log_softmax(torch.as_tensor(rng.normal(size=k)), 0)
        x = torch.as_tensor((rng.uniform(size=(n, d)) < 0.5).astype(np.float64))
        observed = torch.as_tensor(rng.uniform(size=(n, d)) < rng.uniform(0.1, 0.9))
        expected = reference_impute(x, observed, log_prior, probs)
        # the values at missing positions are arbitrary: they must not matter
        noisy = torch.where(observed, x, torch.as_tensor(rng.uniform(-5, 5, size=(n, d))))
        if i == 3:
            yield Case(_f32(noisy, observed, log_prior, probs), expected=expected,
                       label=f"{F32}, n={n}, d={d}, K={k}", compare=close(rtol=1e-4, atol=1e-5))
        else:
            yield Case((noisy, observed, log_prior, probs), expected=expected,
                       label=f"float64, n={n}, d={d}, K={k}")


LAB = Lab(exercises=[
    Exercise(answer="ex1_code", test="ex1_tests", function="fit_gaussian_nb",
             cases=gaussian_fit_cases,
             compare=close(rtol=1e-5, atol=1e-12, names=("log_prior", "means", "variances"))),
    Exercise(answer="ex2_code", test="ex2_tests", function="gaussian_nb_log_posterior",
             cases=log_posterior_cases, compare=close(rtol=1e-5, atol=1e-6)),
    Exercise(answer="ex3_code", test="ex3_tests", function="fit_bernoulli_nb",
             cases=bernoulli_fit_cases,
             compare=close(rtol=1e-5, atol=1e-8, names=("log_prior", "probs"))),
    Exercise(answer="ex4_code", test="ex4_tests", function="impute_bernoulli",
             cases=impute_cases, compare=close(rtol=1e-5, atol=1e-7)),
])
