"""Test figures of chapter 2's density estimators, written to benchmarks/results/ch02.csv.

    python benchmarks/ch02_results.py          # about 15 s on one core

Data (fixed, so that later chapters score their models on the same points):

* the four 2-D toy densities of ``dgm_lab.data.toy_density``: train / val / test sets of
  ``dgm_lab.data.load_toy`` (2,000 / 1,000 / 4,000 points, seeds 1 / 2 / 3);
* the dequantised 8x8 digits: the fixed split of ``dgm_lab.data.load_digits``, noise seed 0.

Models, every hyperparameter chosen on the validation split only: one Gaussian (maximum
likelihood), a Gaussian KDE (bandwidth from a grid), a Gaussian mixture fitted by EM (number
of components, and on the digits ``reg_covar``, from a grid; k-means++ seed 0). On the toys,
the true density as well: its test NLL estimates the entropy H(p), the floor of every
model's expected NLL. Figures: the test NLL in nats per example (on the digits, the bound on
the discrete image, ``results.discrete_nll``) and, for the digits, bits per dimension. All
computations in float64 on the CPU. ``tests/test_results.py`` re-runs the cheap rows and
checks that they agree with the committed file.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from dgm_lab import results
from dgm_lab.data import TOY_DENSITIES, TOY_SPLITS, load_digits, load_toy, toy_density
from dgm_lab.density import Gaussian, GaussianMixture, KernelDensity, select_bandwidth

CHAPTER = 2
TOY_BANDWIDTHS = np.logspace(-2.3, 0.3, 27).tolist()
DIGIT_BANDWIDTHS = np.logspace(-2, 0, 21).tolist()
TOY_COMPONENTS = [(k, 1e-6) for k in (2, 4, 8, 16, 32)]
DIGIT_COMPONENTS = [(k, reg) for k in (1, 2, 5, 10, 20) for reg in (1e-4, 1e-3, 1e-2)]
GMM_SEED = 0


def toy_split(name: str) -> dict[str, torch.Tensor]:
    """The train / val / test points of toy density ``name`` (float64)."""
    return {split: load_toy(name, split).double() for split in TOY_SPLITS}


def digits_split() -> dict[str, torch.Tensor]:
    return {split: load_digits(split, form="dequantized", seed=0)[0].double()
            for split in ("train", "val", "test")}


def timed(fit):
    start = time.perf_counter()
    out = fit()
    return out, time.perf_counter() - start


def gaussian(data):
    model, seconds = timed(lambda: Gaussian().fit(data["train"]))
    return model, "full covariance", seconds, -1


def kde(data, candidates):
    def fit():
        h, _ = select_bandwidth(data["train"], data["val"], candidates)
        return KernelDensity(h).fit(data["train"]), h
    (model, h), seconds = timed(fit)
    return model, f"h={h:.4g} (best on val)", seconds, -1


def gmm(data, candidates):
    def fit():
        best, best_score, best_config = None, -np.inf, None
        for k, reg in candidates:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # recorded below when the best did not converge
                model = GaussianMixture(k, reg_covar=reg, max_iter=200, seed=GMM_SEED).fit(
                    data["train"])
            score = model.log_prob(data["val"]).mean().item()
            if score > best_score:
                best, best_score, best_config = model, score, (k, reg)
        return best, best_config
    (model, (k, reg)), seconds = timed(fit)
    note = "" if model.converged_ else ", EM not converged"
    return model, f"K={k}, reg_covar={reg:g} (best on val){note}", seconds, GMM_SEED


def rows_for(data_name: str, models: tuple[str, ...] = ("gaussian", "kde", "gmm")
             ) -> list[results.Result]:
    """The test figures of ``models`` on ``data_name`` (a toy name or ``"digits-dequantized"``)."""
    digits = data_name == "digits-dequantized"
    data = digits_split() if digits else toy_split(data_name)
    fitters = {"gaussian": lambda: gaussian(data),
               "kde": lambda: kde(data, DIGIT_BANDWIDTHS if digits else TOY_BANDWIDTHS),
               "gmm": lambda: gmm(data, DIGIT_COMPONENTS if digits else TOY_COMPONENTS)}
    rows = []
    for name in models:
        model, config, seconds, seed = fitters[name]()
        with torch.no_grad():
            nll = -model.log_prob(data["test"]).mean().item()
        common = {"config": config, "seconds": seconds, "seed": seed}
        if digits:
            nll = results.discrete_nll(nll, dims=64, levels=17)
            rows.append(results.Result(name, data_name, "test", "bpd",
                                       results.bits_per_dim(nll, 64), **common))
        rows.append(results.Result(name, data_name, "test", "nll", nll, **common))
    if not digits:
        entropy = -toy_density(data_name).log_prob(data["test"]).mean().item()
        rows.append(results.Result("true-density", data_name, "test", "nll", entropy,
                                   config="exact log p(x): estimates the entropy H(p)"))
    return rows


def all_rows() -> list[results.Result]:
    return [row for name in [*TOY_DENSITIES, "digits-dequantized"] for row in rows_for(name)]


def main() -> None:
    torch.set_num_threads(1)  # the same figures on every machine and thread count
    rows = all_rows()
    path = results.record(CHAPTER, rows)
    for r in rows:
        print(f"{r.data:20s} {r.model:13s} {r.metric:4s} {r.value:10.4f}  {r.seconds:7.2f} s  "
              f"{r.config}")
    print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
