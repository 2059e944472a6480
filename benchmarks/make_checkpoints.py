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


# -- chapter 7: a VAE of the 17-level digits, scored by the importance-weighted bound --------
# The beta-binomial decoder matches how the levels arose (ink counts of 4x4 blocks); early
# stopping on the validation ELBO picks the epoch. The figure is IWAE-1000 on the test split
# in float64 (so that it does not depend on the thread count's float32 rounding).

def _levels(split):
    return load_digits(split, form="levels")[0]


def _build_vae_levels():
    from dgm_lab.vae import VAE
    return VAE(64, latent=16, hidden=256, likelihood="beta_binomial", eval_samples=1000)


def _train_vae_levels(model, epochs):
    return model.fit(_levels("train"), epochs=epochs, val_data=_levels("val"), patience=30,
                     lr=1e-3, batch_size=64, seed=0)


def _vae_test_nll(model):
    import copy
    return -copy.deepcopy(model).double().log_prob(_levels("test").double()).mean().item()


RECIPES = {r.name: r for r in [
    Recipe("ch01_logistic_regression_digits", build=lambda: nn.Linear(64, 10),
           train=_train_logistic, epochs=100,
           figure=lambda m: evaluate(m, _cross_entropy, _digits("test")),
           metric="nll", about={"data": "digits-float", "split": "test",
                                "unit": "nats per image, -log p(y | x)"}),
    Recipe("ch07_vae_digits_levels", build=_build_vae_levels, train=_train_vae_levels,
           epochs=300, figure=_vae_test_nll, metric="nll",
           about={"data": "digits-levels", "split": "test",
                  "unit": "nats per image, IWAE bound with k = 1000 (an upper bound on "
                          "-log p(x) in expectation)"}),
]}


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
