"""Speed of dgm_lab.density against scikit-learn, on the same data in one run.

    python benchmarks/bench_density.py

Targets (issue #2): KDE scoring time ratio dgm_lab / scikit-learn <= 1.0; Gaussian-mixture
EM fitting ratio <= 1.5 (same initialisation, same tol / reg_covar / max_iter, so both run
the same number of iterations). Each timing is the median of a few repeats measured with
time.perf_counter, one contender after the other; both libraries work in float64 on the CPU.
The table is printed twice: with the threads torch and numpy find by default, then with
one thread each. On a machine shared with other busy processes the multi-threaded times
swing widely (a parallel region waits for its slowest thread); the single-thread table is
the stable one.

scikit-learn's KernelDensity is timed twice: with its defaults (a k-d tree whose pruning is
fast but, in low-density regions, inexact: see scikit-learn issues #7492, #25799, #27186)
and with ``leaf_size >= n``, which makes its tree a single leaf and the sum exact, the
setting the test oracle uses. The "max rel. err." column compares each against a brute-force
float64 log-sum-exp.
"""

from __future__ import annotations

import statistics
import time
import warnings

import numpy as np
import torch
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.neighbors import KernelDensity as SkKernelDensity
from threadpoolctl import threadpool_limits

from dgm_lab.data import load_digits, toy_density
from dgm_lab.density import GaussianMixture, kde_log_prob

REPEATS = 5
REPEATS_SLOW = 3  # scikit-learn's 64-D KDE takes seconds per call


def race(fns: dict[str, object], repeats: int = REPEATS) -> dict[str, tuple[float, object]]:
    """Median wall time (and last output) of each function, one contender after the other.

    Each contender gets a warm-up call and then all its timed runs in a row. Interleaving the
    contenders would be unfair to PyTorch: after a NumPy/scikit-learn call, OpenBLAS worker
    threads keep spinning for a while, and on a 2-core machine they steal the cores from the
    next PyTorch call (measured here: a 2-D GMM fit 0.05 s alone, 0.13 s right after
    scikit-learn's).
    """
    results = {}
    for name, fn in fns.items():
        output = fn()  # warm-up (allocations, lazy imports)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            output = fn()
            times.append(time.perf_counter() - start)
        results[name] = (statistics.median(times), output)
    return results


def brute_kde(q: np.ndarray, x: np.ndarray, h: float) -> np.ndarray:
    out = []
    for block in np.array_split(q, max(1, len(q) // 200)):
        d2 = ((block[:, None, :] - x[None]) ** 2).sum(-1)
        out.append(logsumexp(-d2 / (2 * h * h), axis=1))
    d = x.shape[1]
    return np.concatenate(out) - np.log(len(x)) - 0.5 * d * np.log(2 * np.pi * h * h)


def kde_cases() -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    gen = torch.Generator().manual_seed(0)
    toy = toy_density("eight_gaussians")
    x2 = toy.sample(5000, generator=gen).double().numpy()
    q2 = toy.sample(2000, generator=gen).double().numpy()
    # digits: 1,078 train + 359 val + 360 test images; tile the train split to 5,000
    # kernel centres with a little jitter so the problem has the advertised size
    train, _ = load_digits("train")
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(train), 5000)
    x64 = train.double().numpy()[idx] + rng.normal(0, 0.02, (5000, 64))
    pool = torch.cat([load_digits("val")[0], load_digits("test")[0]]).double().numpy()
    q64 = pool[rng.integers(0, len(pool), 2000)]
    return [("2-D eight Gaussians", x2, q2, 0.1), ("64-D digits", x64, q64, 0.25)]


def bench_kde() -> list[tuple[str, ...]]:
    rows = []
    for name, x, q, h in kde_cases():
        exact = brute_kde(q, x, h)
        xt, qt = torch.from_numpy(x), torch.from_numpy(q)
        sk_tree = SkKernelDensity(kernel="gaussian", bandwidth=h).fit(x)
        sk_exact = SkKernelDensity(kernel="gaussian", bandwidth=h, leaf_size=len(x)).fit(x)
        res = race({"ours": lambda xt=xt, qt=qt, h=h: kde_log_prob(qt, xt, h),
                    "tree": lambda s=sk_tree, q=q: s.score_samples(q),
                    "exact": lambda s=sk_exact, q=q: s.score_samples(q)}, REPEATS_SLOW)
        (t_ours, ours), (t_tree, tree), (t_exact, ex) = res["ours"], res["tree"], res["exact"]

        def err(v: np.ndarray, exact: np.ndarray = exact) -> str:
            return f"{np.max(np.abs(v - exact) / np.abs(exact)):.1e}"

        size = f"{len(q)} x {len(x)}"
        rows.append((f"KDE {name}", size, "dgm_lab", f"{t_ours:.3f}", "", err(ours.numpy())))
        rows.append(("", "", "sklearn (default tree)", f"{t_tree:.3f}",
                     f"{t_ours / t_tree:.3f}", err(tree)))
        rows.append(("", "", "sklearn (exact, leaf_size=n)", f"{t_exact:.3f}",
                     f"{t_ours / t_exact:.3f}", err(ex)))
    return rows


def gmm_cases() -> list[tuple[str, np.ndarray, int]]:
    gen = torch.Generator().manual_seed(1)
    x2 = toy_density("eight_gaussians").sample(5000, generator=gen).double().numpy()
    digits = load_digits("train", form="dequantized")[0].double().numpy()
    return [("2-D eight Gaussians", x2, 8), ("64-D digits (dequantized)", digits, 10)]


def bench_gmm() -> list[tuple[str, ...]]:
    rows = []
    for name, x, k in gmm_cases():
        rng = np.random.default_rng(0)
        means = x[rng.choice(len(x), k, replace=False)]
        weights = np.full(k, 1 / k)
        cov = np.cov(x.T, bias=True) + 1e-3 * np.eye(x.shape[1])
        covs = np.repeat(cov[None], k, 0)
        settings = dict(tol=1e-4, reg_covar=1e-3, max_iter=200)
        xt = torch.from_numpy(x)

        def ours(xt=xt, k=k, means=means, weights=weights, covs=covs, settings=settings):
            return GaussianMixture(k, **settings).fit(
                xt, weights_init=torch.from_numpy(weights), means_init=torch.from_numpy(means),
                covariances_init=torch.from_numpy(covs))

        def sk(x=x, k=k, means=means, weights=weights, covs=covs, settings=settings):
            # init_params="random_from_data" is the cheapest way to let scikit-learn skip
            # its k-means run; the given weights/means/precisions then replace its result
            return SkGaussianMixture(k, covariance_type="full", init_params="random_from_data",
                                     weights_init=weights, means_init=means,
                                     precisions_init=np.linalg.inv(covs), random_state=0,
                                     **settings).fit(x)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = race({"ours": ours, "sk": sk})
        (t_ours, model), (t_sk, sk_model) = res["ours"], res["sk"]
        nll_gap = abs(model.log_prob(xt).mean().item() - sk_model.score(x))
        size = f"n={len(x)}, K={k}"
        iters = f"{model.n_iter_} vs {sk_model.n_iter_} iters"
        rows.append((f"GMM {name}", size, "dgm_lab", f"{t_ours:.3f}", "", iters))
        rows.append(("", "", "sklearn", f"{t_sk:.3f}", f"{t_ours / t_sk:.3f}",
                     f"|mean loglik gap| {nll_gap:.1e}"))
    return rows


def table(title: str) -> None:
    print(f"\n{title}")
    header = ("task", "size", "implementation", "seconds", "ratio", "check")
    rows = [header] + bench_kde() + bench_gmm()
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main() -> None:
    print(f"torch {torch.__version__}, float64 on the CPU; each time is the median of "
          f"{REPEATS} runs (scikit-learn KDE: {REPEATS_SLOW})")
    print("ratio = dgm_lab time / scikit-learn time (targets: KDE <= 1.0, GMM <= 1.5)")
    table(f"default threads (torch: {torch.get_num_threads()})")
    # Many tiny multi-threaded operations suffer when other processes compete for the
    # cores (each parallel region waits for its slowest thread); single-threaded
    # numbers show the algorithms without that effect.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            table("one thread (torch.set_num_threads(1); numpy BLAS limited by threadpoolctl)")
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
