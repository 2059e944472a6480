"""Regenerate every committed checkpoint, from scratch and deterministically on the CPU.

    python benchmarks/make_checkpoints.py             # every checkpoint
    python benchmarks/make_checkpoints.py NAME ...    # some of them
    python benchmarks/make_checkpoints.py --list      # what there is

A checkpoint is made by a :class:`Recipe`: how to build the untrained model, how to train it
for a number of epochs, and the test figure the trained model must reproduce. The script
trains on one CPU thread with the recipe's seed, then writes ``benchmarks/checkpoints/NAME.pt``
and ``NAME.json`` with ``dgm_lab.results.save_checkpoint``. Pages and labs load them with
``dgm_lab.results.load_checkpoint(NAME, model, figure=...)``. ``tests/test_results.py`` trains
every recipe for one epoch (the code still runs and saves a loadable checkpoint) and checks that
every committed checkpoint reproduces its recorded figure.

Add a recipe for each model that trains longer than a page's 60 s budget; keep each file to a
few MB (``results.MAX_CHECKPOINT_BYTES``).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dgm_lab import results, seed_everything
from dgm_lab.data import load_digits
from dgm_lab.train import evaluate, fit


@dataclass(frozen=True)
class Recipe:
    name: str
    build: Callable[[], nn.Module]  # the untrained model (called after seeding)
    train: Callable[[nn.Module, int], object]  # train(model, epochs)
    epochs: int
    figure: Callable[[nn.Module], float]  # the test figure of the trained model
    metric: str
    seed: int = 0
    about: dict = field(default_factory=dict)  # data, split, ... (goes into the .json)


# -- chapter 1: logistic regression on the digits, the discriminative twin of naive Bayes ----
# It trains in two seconds; it is here as the worked example of a recipe, so that the
# mechanism is tested on a real checkpoint before the chapters that need one arrive.

def _digits(split):
    return load_digits(split, form="float")


def _cross_entropy(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


def _train_logistic(model, epochs):
    return fit(model, _cross_entropy, _digits("train"), epochs=epochs, batch_size=64, lr=1e-2,
               seed=0, device="cpu", progress=False)


# -- chapter 9: normalizing flows; the builders and trainers live in its results script ----

def _chapter_script(name: str):
    """A chapter's own benchmark code, ``benchmarks/<name>.py``, imported as a module."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_ch09 = _chapter_script("ch09_results")
_CH09 = [
    Recipe("ch09_maf_digits", build=_ch09.build_digits_flow, train=_ch09.train_digits_flow,
           epochs=_ch09.DIGIT_EPOCHS, figure=lambda m: _ch09.digits_bound(m, 1),
           metric="nll", about={"data": "digits-levels", "split": "test",
                                "unit": "nats per image, one-sample bound on -log P(k)"}),
    *[Recipe(_ch09.checkpoint_name(model, toy),
             build=lambda model=model: _ch09.build_toy_flow(model),
             train=lambda m, epochs, toy=toy, model=model: _ch09.train_toy_flow(
                 m, toy, epochs, model),
             epochs=_ch09.TOY_MODELS[model].epochs,
             figure=lambda m, toy=toy: _ch09.toy_test_nll(m, toy),
             metric="nll", about={"data": toy, "split": "test", "unit": "nats per point"})
      for model, toy in _ch09.TOY_CHECKPOINTS],
]
# -- chapter 4: an RBM, a two-layer DBN and a two-layer DBM on the binarised digits ----------
# The figures are cheap and deterministic (exact pseudo-likelihood; variational bounds with a
# seeded, short AIS run); benchmarks/ch04_results.py computes the reported figures (long AIS
# runs, their spread) from these checkpoints.

CH04_HIDDEN = 64


def _binary_digits(split):
    return load_digits(split, form="binary")[0].double()


def _ch04_rbm_figure(rbm):
    return -rbm.pseudo_log_likelihood(_binary_digits("test")).mean().item()


def _ch04_log_z(rbm):
    from dgm_lab.energy import ais_log_partition
    return ais_log_partition(rbm, n_chains=50, betas=200,
                             generator=torch.Generator().manual_seed(0)).log_z


def _ch04_dbn_figure(dbn):
    bound = dbn.variational_bound(_binary_digits("test"), _ch04_log_z(dbn.top), n_samples=1,
                                  generator=torch.Generator().manual_seed(0))
    return -bound.mean().item()


def _ch04_dbm_figure(dbm):
    return -dbm.variational_bound(_binary_digits("test"), _ch04_log_z(dbm.as_rbm())).mean().item()


def _ch04_recipes():
    from dgm_lab.energy import DBM, DBN, RBM
    about = {"data": "digits-binary", "split": "test"}
    return [
        Recipe("ch04_rbm_digits", build=lambda: RBM(CH04_HIDDEN),
               train=lambda m, epochs: m.fit(_binary_digits("train"), epochs=epochs, lr=0.05),
               epochs=100, figure=_ch04_rbm_figure, metric="neg_pseudo_ll",
               about={**about, "unit": "nats per image, -sum_i log p(v_i | v_-i)"}),
        Recipe("ch04_dbn_digits", build=lambda: DBN([CH04_HIDDEN, CH04_HIDDEN]),
               # the top RBM starts tied and wants a gentler step: lr 0.01, CD-1
               train=lambda m, epochs: m.fit(_binary_digits("train"), epochs=epochs, lr=0.05,
                                             upper={"lr": 0.01, "persistent": False}),
               epochs=100, figure=_ch04_dbn_figure, metric="neg_bound",
               about={**about, "unit": "nats per image, minus the variational bound (short AIS)"}),
        Recipe("ch04_dbm_digits", build=lambda: DBM([CH04_HIDDEN, CH04_HIDDEN // 2]),
               train=lambda m, epochs: m.fit(_binary_digits("train"), pretrain_epochs=epochs,
                                             epochs=epochs, lr=0.005),
               epochs=50, figure=_ch04_dbm_figure, metric="neg_bound",
               about={**about, "unit": "nats per image, minus the variational bound (short AIS)"}),
    ]
RECIPES = {r.name: r for r in [
    Recipe("ch01_logistic_regression_digits", build=lambda: nn.Linear(64, 10),
           train=_train_logistic, epochs=100,
           figure=lambda m: evaluate(m, _cross_entropy, _digits("test")),
           metric="nll", about={"data": "digits-float", "split": "test",
                                "unit": "nats per image, -log p(y | x)"}),
    *_CH09,
    *_ch04_recipes(),
]}

# -- chapter 6: autoregressive models; the recipes live in benchmarks/ch06_recipes.py --------
sys.path.insert(0, str(Path(__file__).resolve().parent))
import ch06_recipes  # noqa: E402

RECIPES.update({r.name: r for r in ch06_recipes.recipes(Recipe)})


# -- chapters whose benchmark code defines the recipes -------------------------------------
# chapter 5: recipes() -> Recipe keyword dicts; chapters 7, 8, 12: recipes(Recipe) -> Recipes
RECIPES.update({r.name: r for r in (Recipe(**kw)
                                    for kw in _chapter_script("ch05_results").recipes())})
for _script in ("ch07_results", "ch08_checkpoints", "ch12_results"):
    RECIPES.update({r.name: r for r in _chapter_script(_script).recipes(Recipe)})


def make(recipe: Recipe, *, epochs: int | None = None, folder: Path | None = None) -> dict:
    """Train ``recipe`` from scratch (``epochs`` overrides its own) and save the checkpoint."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same floating-point sums on every run
    try:
        seed_everything(recipe.seed)
        model = recipe.build()
        start = time.perf_counter()
        recipe.train(model, epochs or recipe.epochs)
        seconds = time.perf_counter() - start
        value = float(recipe.figure(model))
    finally:
        torch.set_num_threads(threads)
    meta = {"metric": recipe.metric, "value": value, "seed": recipe.seed,
            "command": f"python benchmarks/make_checkpoints.py {recipe.name}",
            "epochs": epochs or recipe.epochs, "seconds": round(seconds, 2), **recipe.about}
    results.save_checkpoint(model, recipe.name, meta, folder=folder)
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="checkpoints to make (default: all)")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(RECIPES))
    if unknown:
        parser.error(f"unknown checkpoints {unknown}; known: {sorted(RECIPES)}")
    for name in args.names or RECIPES:
        if args.list:
            print(name)
            continue
        meta = make(RECIPES[name])
        print(f"{name}: {meta['metric']} = {meta['value']:.6g} after {meta['epochs']} epochs "
              f"({meta['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
