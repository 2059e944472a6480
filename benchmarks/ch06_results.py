"""Test figures of chapter 6's models, written to benchmarks/results/ch06.csv.

    python benchmarks/ch06_results.py             # everything
    python benchmarks/ch06_results.py --baselines # only the models fitted in seconds

Data: the fixed split of the 8x8 digits (``dgm_lab.data.load_digits``), binarised
(``"binary"``, Bernoulli models) and as the 17 integer levels (``"levels"``, categorical
models); the course's noisy sine waves for WaveNet (``benchmarks/ch06_recipes.py``); the 2-D toy
densities (``load_toy``) and the dequantised digits for RNADE. Every figure is a test NLL in
nats per example: exact for the discrete models, a bound on the discrete image for RNADE on the
dequantised digits (``results.discrete_nll``), like chapter 2's Gaussian mixture.

Models, every hyperparameter chosen on the validation split:

* baselines fitted by EM (``dgm_lab.density``): an independent Bernoulli / categorical per
  pixel (one component) and mixtures (number of components from a grid);
* FVSBN by penalised maximum likelihood (``FVSBN.fit``, L-BFGS; the penalty from a grid), and
  the same fit by scikit-learn's ``LogisticRegression``, one per pixel: the two must agree;
* the checkpointed neural models of ``ch06_recipes.py`` (``CHECKPOINTED``: NADE, MADE,
  DeepNADE and PixelCNN on the binary digits, MADE and the gated PixelCNN on the 17 levels,
  WaveNet on the sine waves, RNADE on four toys and on the dequantised digits), trained
  through ``dgm_lab.train.fit`` on one CPU thread and saved as the checkpoints the chapter
  loads. Their ``seconds`` are the wall time of training (validation included); the
  ``config`` column adds the CPU time of the process and the machine's load average while it
  trained, because other jobs sharing the CPU inflate the wall time;
* a structured MADE against a plain one on a small training set.

``tests/test_autoregressive_results.py`` re-runs the baselines and checks them against the file,
and every checkpoint is checked to reproduce its recorded figure.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ch06_recipes  # noqa: E402
import make_checkpoints  # noqa: E402

from dgm_lab import results  # noqa: E402
from dgm_lab.autoregressive import FVSBN, MADEDensity  # noqa: E402
from dgm_lab.data import load_digits  # noqa: E402
from dgm_lab.density import BernoulliMixture, CategoricalMixture  # noqa: E402
from dgm_lab.train import evaluate, fit  # noqa: E402

CHAPTER = 6
#: the yardstick of the 17-level digits, as the chapter's issue gives it: J. Tomczak's
#: ``intro_dgm`` causal-convolution ARM (its own code and settings, early stopping on the
#: validation split) reaches this test NLL (nats per image) on the course's split after this
#: many seconds of training on the course's machine (the time it took; the load then is not known)
PEER_ARM_NLL, PEER_ARM_SECONDS = 86.57, 338.0
#: the issue's figure for a mixture of 10 categoricals fitted by EM (ours is in the results file)
PEER_MIXTURE_10_NLL = 99.0
FVSBN_PENALTIES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
MIXTURE_COMPONENTS = [2, 5, 10, 20, 40]


def digits(form: str) -> dict[str, torch.Tensor]:
    return {s: load_digits(s, form)[0].double() for s in ("train", "val", "test")}


def timed(fit_model):
    start = time.perf_counter()
    out = fit_model()
    return out, time.perf_counter() - start


def test_nll(model, x: torch.Tensor) -> float:
    with torch.no_grad():
        return -model.log_prob(x).mean().item()


# --------------------------------------------------------------------------------------
# baselines: mixtures by EM, FVSBN by L-BFGS and by scikit-learn
# --------------------------------------------------------------------------------------

def mixture_rows(form: str) -> list[results.Result]:
    """One component (independent pixels) and the mixture with the best validation NLL."""
    data = digits(form)
    name, make = (("bernoulli", lambda k: BernoulliMixture(k, seed=0)) if form == "binary" else
                  ("categorical", lambda k: CategoricalMixture(k, 17, seed=0)))
    rows = []
    single, seconds = timed(lambda: make(1).fit(data["train"]))
    rows.append(results.Result(f"independent-{name}", f"digits-{form}", "test", "nll",
                               test_nll(single, data["test"]), config="one per pixel, alpha=1",
                               seconds=seconds, seed=0))

    def best_mixture():
        scores = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a mixture that did not converge is noted below
            for k in MIXTURE_COMPONENTS:
                model = make(k).fit(data["train"])
                scores[k] = (test_nll(model, data["val"]), model)
        k = min(scores, key=lambda key: scores[key][0])
        return k, scores[k][1]
    (k, mixture), seconds = timed(best_mixture)
    note = "" if mixture.converged_ else ", EM not converged"
    rows.append(results.Result(f"{name}-mixture", f"digits-{form}", "test", "nll",
                               test_nll(mixture, data["test"]),
                               config=f"K={k} (best on val), alpha=1{note}", seconds=seconds,
                               seed=0))
    if form == "levels":  # the figure the chapter's issue quotes: ten components
        ten, seconds = timed(lambda: make(10).fit(data["train"]))
        rows.append(results.Result(f"{name}-mixture-10", f"digits-{form}", "test", "nll",
                                   test_nll(ten, data["test"]), config="K=10, alpha=1",
                                   seconds=seconds, seed=0))
    return rows


def sklearn_fvsbn_nll(train: np.ndarray, test: np.ndarray, l2: float) -> float:
    """Test NLL of one scikit-learn logistic regression per pixel on the pixels before it,
    with FVSBN.fit's penalty: C = 1 / (l2 N), the intercept a penalised weight on a constant
    feature (a pixel constant in training gets an almost weightless example of the other
    class, so that scikit-learn sees two classes)."""
    from sklearn.linear_model import LogisticRegression

    n, d = train.shape
    total = 0.0
    for i in range(d):
        features = np.hstack([np.ones((n, 1)), train[:, :i]])
        target, weights = train[:, i], np.ones(n)
        if target.min() == target.max():
            features = np.vstack([features, features[:1]])
            target, weights = np.append(target, 1 - target[0]), np.append(weights, 1e-12)
        model = LogisticRegression(C=1.0 / (l2 * n), fit_intercept=False, tol=1e-10,
                                   solver="newton-cholesky", max_iter=100)
        model.fit(features, target, sample_weight=weights)
        log_p = model.predict_log_proba(np.hstack([np.ones((len(test), 1)), test[:, :i]]))
        total -= log_p[np.arange(len(test)), (test[:, i] == model.classes_[1]).astype(int)].sum()
    return total / len(test)


def fvsbn_rows() -> list[results.Result]:
    data = digits("binary")

    def select():
        fits = {l2: FVSBN(64).double().fit(data["train"], l2=l2) for l2 in FVSBN_PENALTIES}
        l2 = min(fits, key=lambda key: test_nll(fits[key], data["val"]))
        return l2, fits[l2]
    (l2, model), seconds = timed(select)
    config = f"l2={l2:g} (best on val), L-BFGS"
    ours = results.Result("fvsbn", "digits-binary", "test", "nll", test_nll(model, data["test"]),
                          config=config, seconds=seconds)
    theirs, seconds = timed(lambda: sklearn_fvsbn_nll(data["train"].numpy(), data["test"].numpy(),
                                                      l2))
    return [ours, results.Result("fvsbn-sklearn", "digits-binary", "test", "nll", theirs,
                                 config=f"64 LogisticRegression, C=1/(l2 N), l2={l2:g}",
                                 seconds=seconds)]


def baseline_rows() -> list[results.Result]:
    return [*mixture_rows("binary"), *mixture_rows("levels"), *fvsbn_rows()]


# --------------------------------------------------------------------------------------
# the neural models: the checkpoint recipes
# --------------------------------------------------------------------------------------

ROW_OF = ch06_recipes.ROW_OF  # checkpoint -> (model, data) of its row


def recipe_rows(names: list[str] | None = None) -> list[results.Result]:
    """Train each recipe (saving its checkpoint) and return its test row."""
    rows = []
    for name in names or ch06_recipes.CHECKPOINTED:
        recipe = make_checkpoints.RECIPES[name]
        meta = make_checkpoints.make(recipe)
        log = ch06_recipes.TRAINING[name]
        model, data = ROW_OF[name]
        config = (f"{meta['epochs']} epochs max, best epoch {log['best_epoch'] + 1} of "
                  f"{log['epochs_run']}; CPU {log['cpu']:.0f} s, load {log['load']:.1f} "
                  f"on {os.cpu_count()} cores")
        rows.append(results.Result(model, data, "test", "nll", meta["value"], config=config,
                                   seconds=log["wall"], seed=recipe.seed))
        print(f"{name}: {meta['value']:.3f} nats, {config}", flush=True)
    return rows


def training_log(row: results.Result) -> dict[str, float]:
    """What a recipe row says of its training: ``wall`` seconds (the row's ``seconds``),
    ``cpu`` seconds of the process (one thread), the machine's mean ``load`` average and its
    ``cores``, as ``recipe_rows`` wrote them into the config."""
    found = re.search(r"CPU (\d+(?:\.\d+)?) s, load (\d+(?:\.\d+)?) on (\d+) cores",
                      row.config)
    if found is None:
        raise ValueError(f"training_log: no CPU time and load in the config of {row.model}: "
                         f"{row.config!r}")
    cpu, load, cores = found.groups()
    return {"wall": float(row.seconds), "cpu": float(cpu), "load": float(load),
            "cores": int(cores)}


# --------------------------------------------------------------------------------------
# structured MADE on a small training set
# --------------------------------------------------------------------------------------

def _train_and_score(model, train, val, test, *, epochs, lr, loss=None):
    def nll(m, x):
        return -m.log_prob(x).mean()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    (history, seconds) = timed(lambda: fit(
        model, loss or nll, train, epochs=epochs, batch_size=64, optimizer=optimizer,
        scheduler=schedule, clip_grad_norm=1.0, val_data=val, val_loss=nll, patience=10,
        seed=0, device="cpu", progress=False))
    model.eval()
    return float(evaluate(model, nll, test)), history, seconds


def grid_graph(height: int = 8, width: int = 8) -> torch.Tensor:
    """Adjacency of the pixels of an image, each joined to its 8 neighbours."""
    r, c = torch.arange(height * width) // width, torch.arange(height * width) % width
    near = ((r[:, None] - r[None, :]).abs() <= 1) & ((c[:, None] - c[None, :]).abs() <= 1)
    return (near & ~torch.eye(height * width, dtype=torch.bool)).int()


STRUCTURED_EPOCHS = 100  # the epoch cap of the trial below (the page prints it)


def structured_rows(n_train: int = 100) -> list[results.Result]:
    """MADE and structured MADE (masks from the 8-neighbour grid) on ``n_train`` images."""
    x = {s: load_digits(s, "binary")[0] for s in ("train", "val", "test")}
    rows = []
    for model_name, structure in (("made-small", None), ("structured-made-small", grid_graph())):
        torch.manual_seed(0)
        model = MADEDensity(64, [500], structure=structure, seed=0)
        value, history, seconds = _train_and_score(model, x["train"][:n_train], x["val"],
                                                   x["test"], epochs=STRUCTURED_EPOCHS, lr=3e-3)
        rows.append(results.Result(model_name, "digits-binary", "test", "nll", value,
                                   config=f"{n_train} training images, hidden 500, "
                                          f"best epoch {history.best_epoch + 1}",
                                   seconds=seconds, seed=0))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baselines", action="store_true", help="only the fast baselines")
    parser.add_argument("--recipes", nargs="*", help="only these checkpoint recipes")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the same figures on every machine and thread count
    if args.baselines:
        rows = baseline_rows()
    elif args.recipes is not None:
        rows = recipe_rows(args.recipes or None)
    else:
        rows = [*baseline_rows(), *structured_rows(), *recipe_rows()]
    path = results.record(CHAPTER, rows)
    for r in rows:
        print(f"{r.data:20s} {r.model:22s} {r.value:10.4f}  {r.seconds:7.1f} s  {r.config}")
    print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
