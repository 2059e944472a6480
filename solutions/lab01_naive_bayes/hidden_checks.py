"""Hidden checks of lab 1 (naive Bayes). Instructor only: never released.

Each exercise gets three float64 cases of fresh random sizes and one float32 case, with the
mistakes the exercise is about in every case: classes of unequal sizes and a constant feature
(exercise 1, both kinds of variance), unequal priors and variances and log joints near -1e4
(exercise 2), inputs far from the means (exercise 3), garbage values at the missing pixels
(exercise 4). Expected values come from dgm_lab's references, in float64, in the grader's
process.

Exercise 3 (the logistic twin of shared-variance naive Bayes) has many right answers (a shift
common to every class changes nothing), so its check compares what matters: the log posterior
``log_softmax(x @ weights.T + bias)`` on fresh inputs ``x`` with naive Bayes' own.
"""

import numpy as np
import torch

from dgm_lab import naive_bayes as nb
from dgm_lab.grading import Case, Exercise, Lab, all_of, close

F32 = "float32"

# --- The only lines that name dgm_lab's naive Bayes API (adapt them when it changes). ---


def reference_gaussian_fit(x, y, n_classes, var_smoothing, shared_variance):
    model = nb.GaussianNaiveBayes(var_smoothing, shared_variance=shared_variance)
    model.fit(x, y, n_classes)
    return model.class_log_prior_, model.means_, model.variances_


def reference_log_posterior(x, log_prior, means, variances):
    model = nb.GaussianNaiveBayes()
    model.class_log_prior_, model.means_, model.variances_ = log_prior, means, variances
    return model.predict_log_proba(x)


def reference_impute(x, observed, log_prior, probs):
    model = nb.BernoulliNaiveBayes()
    model.class_log_prior_, model.probs_ = log_prior, probs
    return model.impute(x, observed)


# --- Comparisons. ---


def _float_dtypes(value: object) -> set[str]:
    if isinstance(value, torch.Tensor):
        return {str(value.dtype).removeprefix("torch.")} if value.is_floating_point() else set()
    if isinstance(value, (tuple, list)):
        return set().union(*(_float_dtypes(v) for v in value))
    return set()


def in_dtype(compare, dtype: str):
    """``compare``, then: every float tensor returned has the inputs' dtype (the lab says so)."""
    def keeps(got: object, case: Case) -> str | None:
        wrong = sorted(_float_dtypes(got) - {dtype})
        return None if not wrong else (
            f"returned {' and '.join(wrong)} values for {dtype} inputs: keep the dtype of the "
            "inputs (see \"Dtypes\" at the top of the lab)")
    return all_of(compare, keeps)


# --- Cases. ---


def _labels(rng: np.random.Generator, n: int, k: int) -> torch.Tensor:
    """n labels in 0..k-1, every class present, the classes of clearly unequal sizes."""
    share = rng.dirichlet(np.ones(k))
    return torch.as_tensor(np.concatenate([np.arange(k), rng.choice(k, n - k, p=share)]))


def _prior(rng: np.random.Generator, k: int) -> torch.Tensor:
    return torch.log_softmax(torch.as_tensor(rng.normal(size=k)), 0)


FIT_NAMES = ("log_prior", "means", "variances")
FIT = {"float64": close(rtol=1e-5, atol=1e-12, names=FIT_NAMES),
       F32: close(rtol=1e-4, atol=1e-6, names=FIT_NAMES)}
POSTERIOR = {"float64": close(rtol=1e-5, atol=1e-6), F32: close(rtol=1e-4, atol=1e-3)}
IMPUTE = {"float64": close(rtol=1e-5, atol=1e-7), F32: close(rtol=1e-4, atol=1e-5)}


def gaussian_fit_cases(rng: np.random.Generator):
    third = bool(rng.integers(2))
    shared = [False, True, third, not third]  # two cases of each kind
    for i, dtype in enumerate(("float64", "float64", "float64", F32)):
        n, d, k = int(rng.integers(20, 300)), int(rng.integers(1, 30)), int(rng.integers(2, 7))
        y = _labels(rng, n, k)
        x = torch.as_tensor(rng.normal(size=(n, d)) * rng.uniform(0.1, 3.0, size=d)
                            + rng.normal(scale=2.0, size=(k, d))[y.numpy()])
        if d > 2:
            x[:, 0] = 0.0  # a constant feature, as in the digits: its variance is epsilon alone
        var_smoothing = float(10 ** rng.uniform(-9, -1))
        expected = reference_gaussian_fit(x, y, k, var_smoothing, shared[i])
        yield Case((x.to(getattr(torch, dtype)), y, k, var_smoothing),
                   {"shared_variance": shared[i]}, expected=expected,
                   label=f"{dtype}, n={n}, d={d}, K={k}, shared_variance={shared[i]}",
                   compare=in_dtype(FIT[dtype], dtype))


def log_posterior_cases(rng: np.random.Generator):
    # scale 30 makes every log joint ~ -1e4
    scales = (1.0, 30.0, float(rng.uniform(1.0, 30.0)), 1.0)
    for scale, dtype in zip(scales, ("float64", "float64", "float64", F32), strict=True):
        n, d, k = int(rng.integers(5, 100)), int(rng.integers(1, 40)), int(rng.integers(2, 8))
        x = torch.as_tensor(rng.normal(scale=scale, size=(n, d)))
        if dtype == "float64":  # (float32 cannot resolve a log posterior near 0 out there)
            x[0] = 100.0  # far from every mean: a plain exp() underflows, even in float64
        means = torch.as_tensor(rng.normal(scale=2.0, size=(k, d)))
        variances = torch.as_tensor(rng.uniform(0.2, 3.0, size=(k, d)))  # unequal per class
        log_prior = _prior(rng, k)
        expected = reference_log_posterior(x, log_prior, means, variances)
        args = tuple(t.to(getattr(torch, dtype)) for t in (x, log_prior, means, variances))
        yield Case(args, expected=expected, label=f"{dtype}, scale {scale:.3g}, d={d}, K={k}",
                   compare=in_dtype(POSTERIOR[dtype], dtype))


def _same_posterior(x: torch.Tensor, k: int, d: int, rtol: float, atol: float):
    """The comparison of exercise 3: (weights [K, d], bias [K]) whose softmax over the fresh
    inputs ``x`` is the naive Bayes posterior (``case.expected``, in log space)."""
    values = close(rtol, atol)

    def compare(got: object, case: Case) -> str | None:
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            return "return two values: weights [K, d] and bias [K]"
        weights, bias = got
        for name, value, shape in (("weights", weights, (k, d)), ("bias", bias, (k,))):
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                return f"{name}: expected a float torch.Tensor of shape {shape}"
            if tuple(value.shape) != shape:
                return f"{name}: wrong shape: expected {shape}, got {tuple(value.shape)}"
        scores = x @ weights.double().T + bias.double()
        problem = values(torch.log_softmax(scores, dim=1), case)
        return None if problem is None else (
            "log_softmax(x @ weights.T + bias) on fresh inputs x is not the naive Bayes log "
            f"posterior: {problem}")

    return compare


def logistic_cases(rng: np.random.Generator):
    tolerances = {"float64": (1e-6, 1e-6), F32: (1e-4, 1e-3)}
    for dtype in ("float64", "float64", "float64", F32):
        k, d = int(rng.integers(2, 8)), int(rng.integers(1, 40))
        means = torch.as_tensor(rng.normal(scale=2.0, size=(k, d)))
        variances = torch.as_tensor(rng.uniform(0.2, 3.0, size=d))
        log_prior = _prior(rng, k)
        # fresh inputs near the means and far from them (log posteriors down to ~ -1e4)
        x = torch.as_tensor(rng.normal(size=(60, d)) * np.logspace(-1, 1.5, 60)[:, None])
        expected = reference_log_posterior(x, log_prior, means, variances.expand(k, d))
        args = tuple(t.to(getattr(torch, dtype)) for t in (log_prior, means, variances))
        yield Case(args, expected=expected, label=f"{dtype}, d={d}, K={k}",
                   compare=in_dtype(_same_posterior(x, k, d, *tolerances[dtype]), dtype))


def impute_cases(rng: np.random.Generator):
    for dtype in ("float64", "float64", "float64", F32):
        n, d, k = int(rng.integers(1, 60)), int(rng.integers(2, 70)), int(rng.integers(2, 8))
        probs = torch.as_tensor(rng.uniform(0.02, 0.98, size=(k, d)))
        log_prior = _prior(rng, k)
        x = torch.as_tensor((rng.uniform(size=(n, d)) < 0.5).astype(np.float64))
        observed = torch.as_tensor(rng.uniform(size=(n, d)) < rng.uniform(0.1, 0.9))
        expected = reference_impute(x, observed, log_prior, probs)
        # the values at missing positions are arbitrary: they must not matter
        noisy = torch.where(observed, x, torch.as_tensor(rng.uniform(-5, 5, size=(n, d))))
        cast = getattr(torch, dtype)
        yield Case((noisy.to(cast), observed, log_prior.to(cast), probs.to(cast)),
                   expected=expected, label=f"{dtype}, n={n}, d={d}, K={k}",
                   compare=in_dtype(IMPUTE[dtype], dtype))


LAB = Lab(exercises=[
    Exercise(answer="ex1_code", test="ex1_tests", function="fit_gaussian_nb",
             cases=gaussian_fit_cases),
    Exercise(answer="ex2_code", test="ex2_tests", function="gaussian_nb_log_posterior",
             cases=log_posterior_cases),
    Exercise(answer="ex3_code", test="ex3_tests", function="gaussian_nb_to_logistic",
             cases=logistic_cases),
    Exercise(answer="ex4_code", test="ex4_tests", function="impute_bernoulli",
             cases=impute_cases),
])
