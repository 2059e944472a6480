"""Test figures of chapter 9's normalizing flows, written to benchmarks/results/ch09.csv.

    python benchmarks/make_checkpoints.py ch09_maf_digits   # the digits flow, first
    python benchmarks/ch09_results.py                       # toys and digits
    python benchmarks/ch09_results.py --toys two_moons --no-digits   # some rows only
    python benchmarks/ch09_results.py --models spline-fresh spline-ar-fresh --seeds 1 2 \
        --no-digits                                         # two more initialisations

Data: the fixed splits of the course. On the five 2-D toys (``load_toy``: 2,000 / 1,000 / 4,000
points) RealNVP and MAF train by maximum likelihood, keep the epoch with the best validation
NLL, and are scored on the test points next to the exact density's test NLL, the floor no model
beats on average. The ``-fresh`` recipes train the same flows on *fresh samples of the known
density* instead (a new batch every step, ``dgm_lab.flows.fresh.FreshSamples``: no finite training
set to overfit; the stream of seed 0, which none of the fixed splits uses), still choosing
the epoch on the fixed validation points and scoring on the fixed test points: what gap is
left is capacity and optimisation. The ``-large`` recipes do the same with twice the layers
(16), twice the hidden units (128-128) and twice the steps (12,000) at half the learning rate:
how much of that is capacity. ``spline-fresh`` and ``spline-ar-fresh`` keep the fresh recipe
and change the layer: a RealNVP-style coupling and a MAF-style autoregressive layer whose
elementwise map is a rational-quadratic spline instead of an affine map (Durkan et al., 2019:
RQ-NSF (C) and RQ-NSF (AR)). On the 17-level digits
(``load_digits(form="levels")``) a MAF on the logit of uniformly dequantised pixels is scored
by a proper bound on the negative log-probability of the integer test images, with fresh noise:
the one-sample bound and the importance-weighted bound with 1000 noise samples per image
(``DequantizedFlow``). The chapter 2 Gaussian mixture (best K by validation) is fitted again in
the same run, on the same split, by ``benchmarks/ch02_results.py``'s own code. Everything runs
on one CPU thread.

The models that the book shows are checkpoints (``benchmarks/make_checkpoints.py``, whose
recipes call the builders and trainers below); this script loads those instead of training
them again, and trains the other toy models itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from dgm_lab import results, seed_everything
from dgm_lab.data import TOY_DENSITIES, load_digits, load_toy, toy_density
from dgm_lab.flows import (
    Chain,
    DequantizedFlow,
    Flow,
    Logit,
    autoregressive_spline_flow,
    maf,
    negative_log_likelihood,
    neural_spline_flow,
    real_nvp,
)
from dgm_lab.flows.fresh import FreshSamples, fresh_loader
from dgm_lab.train import evaluate, fit

CHAPTER = 9
HERE = Path(__file__).resolve().parent
LEVELS = 17
TOY_EPOCHS = 250
TOY_PATIENCE = 50
DIGIT_EPOCHS = 80
DIGIT_SAMPLES = 1000  # importance samples per test image for the reported bound
BOUND_SEED = 0  # the fresh test noise



class ToyRecipe(NamedTuple):
    """A toy flow and how it trains: Adam, ``batch`` points a step, the learning rate
    annealed to 0 over ``epochs`` on a cosine when ``cosine``, the epoch with the best
    validation NLL kept (``patience``: stop after that many epochs without one). With
    ``fresh`` an epoch is ``fresh`` batches of new draws from the toy's density (infinite
    data) instead of a pass over the 2,000 fixed training points."""

    build: Callable[[], Flow]
    config: str
    epochs: int = TOY_EPOCHS
    lr: float = 2e-3
    batch: int = 256
    cosine: bool = False
    patience: int = TOY_PATIENCE
    fresh: int = 0


FRESH = "trained on FRESH samples of the known density ({batches} new batches of {batch} " \
        "an epoch, never the 2,000 fixed points), lr {lr:g} cosine over {epochs} epochs, " \
        "best epoch on the fixed val points"


TOY_MODELS = {
    "real-nvp": ToyRecipe(lambda: real_nvp(2, n_layers=8, hidden=[64, 64]),
                          "8 affine couplings, MLP 64-64, best epoch on val"),
    "maf": ToyRecipe(lambda: maf(2, n_layers=8, hidden=[64, 64]),
                     "8 MADE affine layers, 64-64, reversed orders, best epoch on val"),
    # twice as deep, a cosine learning-rate schedule: does a bigger affine flow close the gap?
    "real-nvp-16": ToyRecipe(lambda: real_nvp(2, n_layers=16, hidden=[64, 64]),
                             "16 affine couplings, MLP 64-64, lr 1e-3 cosine over 200 epochs, "
                             "best epoch on val", epochs=200, lr=1e-3, cosine=True),
    "maf-16": ToyRecipe(lambda: maf(2, n_layers=16, hidden=[64, 64]),
                        "16 MADE affine layers, 64-64, lr 1e-3 cosine over 200 epochs, "
                        "best epoch on val", epochs=200, lr=1e-3, cosine=True),
    # the neural spline flow: rational-quadratic couplings on [-5, 5] (every toy lies inside)
    "spline": ToyRecipe(lambda: neural_spline_flow(2, n_layers=4, hidden=[64, 64], bins=12,
                                                   bound=5.0),
                        "4 rational-quadratic spline couplings, 12 bins on [-5, 5], MLP 64-64, "
                        "lr 2e-3 cosine over 150 epochs, best epoch on val",
                        epochs=150, cosine=True, patience=40),
}


def _on_fresh_samples(build: Callable[[], Flow], about: str, epochs: int, lr: float,
                      patience: int) -> ToyRecipe:
    """A recipe that trains on 100 fresh batches of 512 points an epoch, lr on a cosine."""
    return ToyRecipe(build, about + FRESH.format(batches=100, batch=512, lr=lr, epochs=epochs),
                     epochs=epochs, lr=lr, batch=512, cosine=True, patience=patience, fresh=100)


# the same 8-layer flows on infinite data (with their own schedule): what is left of the
# gap is not overfitting
TOY_MODELS["real-nvp-fresh"] = _on_fresh_samples(
    lambda: real_nvp(2, n_layers=8, hidden=[64, 64]), "8 affine couplings, MLP 64-64, ",
    epochs=60, lr=2e-3, patience=20)
TOY_MODELS["maf-fresh"] = _on_fresh_samples(
    lambda: maf(2, n_layers=8, hidden=[64, 64]), "8 MADE affine layers, 64-64, reversed orders, ",
    epochs=60, lr=2e-3, patience=20)
# larger flows on infinite data: twice the depth, twice the width, twice the steps, half the
# learning rate; patience as long as the run (the best epoch is still kept)
TOY_MODELS["real-nvp-large"] = _on_fresh_samples(
    lambda: real_nvp(2, n_layers=16, hidden=[128, 128]), "16 affine couplings, MLP 128-128, ",
    epochs=120, lr=1e-3, patience=120)
TOY_MODELS["maf-large"] = _on_fresh_samples(
    lambda: maf(2, n_layers=16, hidden=[128, 128]),
    "16 MADE affine layers, 128-128, reversed orders, ", epochs=120, lr=1e-3, patience=120)
# the same fresh samples for flows whose layers bend each coordinate with a spline instead of
# shifting and scaling it: RealNVP's couplings and MAF's autoregressive layers with
# rational-quadratic splines (the fixed-point "spline" flow above, and its autoregressive twin)
TOY_MODELS["spline-fresh"] = _on_fresh_samples(
    lambda: neural_spline_flow(2, n_layers=4, hidden=[64, 64], bins=12, bound=5.0),
    "4 rational-quadratic spline couplings, 12 bins on [-5, 5], MLP 64-64, ",
    epochs=60, lr=2e-3, patience=20)
TOY_MODELS["spline-ar-fresh"] = _on_fresh_samples(
    lambda: autoregressive_spline_flow(2, n_layers=4, hidden=[64, 64], bins=12, bound=5.0),
    "4 MADE rational-quadratic spline layers, 12 bins on [-5, 5], 64-64, reversed orders, ",
    epochs=60, lr=2e-3, patience=20)
# the toy models saved as checkpoints for the page: (model, toy)
TOY_CHECKPOINTS = [("real-nvp", "two_moons"), ("maf", "two_moons"),
                   ("real-nvp-fresh", "two_moons"), ("maf-fresh", "two_moons"),
                   ("real-nvp-fresh", "grid25"), ("spline-fresh", "grid25"),
                   ("spline-ar-fresh", "grid25")]


def checkpoint_name(model: str, toy: str) -> str:
    return f"ch09_{model.replace('-', '_')}_{toy}"


# ---- the toys ----------------------------------------------------------------------------

def build_toy_flow(model: str) -> Flow:
    return TOY_MODELS[model].build()


def train_toy_flow(flow: Flow, toy: str, epochs: int | None = None, model: str = "real-nvp"):
    """Maximum likelihood with Adam as ``TOY_MODELS[model]`` says; the epoch with the best
    validation NLL is kept. (The checkpointed flows ``real-nvp`` and ``maf`` share one
    recipe, the default here.) The fixed training points, or fresh draws from the toy's
    density when the recipe says ``fresh``; validation is on the fixed points either way."""
    recipe = TOY_MODELS[model]
    epochs = recipe.epochs if epochs is None else epochs
    optimizer = torch.optim.Adam(flow.parameters(), lr=recipe.lr)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs) if recipe.cosine
                else None)
    data = (fresh_loader(FreshSamples(toy_density(toy), recipe.batch, recipe.fresh, seed=0))
            if recipe.fresh else load_toy(toy, "train"))
    return fit(flow, negative_log_likelihood, data, epochs=epochs,
               batch_size=recipe.batch, optimizer=optimizer, scheduler=schedule,
               val_data=load_toy(toy, "val"), patience=recipe.patience, seed=0, device="cpu",
               progress=False)


def toy_test_nll(flow: Flow, toy: str) -> float:
    return evaluate(flow, negative_log_likelihood, load_toy(toy, "test"))


def seeded(model: str, seed: int) -> str:
    """The row name of ``model`` from initialisation ``seed``: the recipe's name for seed 0
    (the rows the chapter's table shows), ``<model>-seed<k>`` for the others."""
    return model if seed == 0 else f"{model}-seed{seed}"


def toy_rows(toy: str, models: Sequence[str] = tuple(TOY_MODELS),
             seed: int = 0) -> list[results.Result]:
    """Train (or load) each model on ``toy`` from initialisation ``seed`` and score it; the
    fresh-sample stream stays that of seed 0 whatever ``seed`` is."""
    rows = []
    for model in models:
        seed_everything(seed)
        flow = build_toy_flow(model)
        start, cpu = time.perf_counter(), time.process_time()
        if seed == 0 and (model, toy) in TOY_CHECKPOINTS:
            meta = results.load_checkpoint(checkpoint_name(model, toy), flow)
            seconds = meta["seconds"]
        else:
            train_toy_flow(flow, toy, model=model)
            seconds = time.perf_counter() - start
            print(f"  trained {seeded(model, seed)} on {toy}: {seconds:.1f} s wall, "
                  f"{time.process_time() - cpu:.1f} s CPU", flush=True)
        rows.append(results.Result(seeded(model, seed), toy, "test", "nll",
                                   toy_test_nll(flow, toy), config=TOY_MODELS[model].config,
                                   seconds=seconds, seed=seed))
    entropy = -toy_density(toy).log_prob(load_toy(toy, "test").double()).mean().item()
    rows.append(results.Result("true-density", toy, "test", "nll", entropy,
                               config="exact log p(x): estimates the entropy H(p)"))
    return rows


# ---- the digits --------------------------------------------------------------------------

def digits(split: str) -> torch.Tensor:
    return load_digits(split, form="levels")[0]


def build_digits_flow() -> DequantizedFlow:
    """MAF (5 layers, MADE 128-128) on the logit of (k + u) / 17, uniform noise u."""
    inner = maf(64, n_layers=5, hidden=[128, 128]).transform
    return DequantizedFlow(Flow(Chain([Logit(64), inner]), 64), LEVELS)


def _negative_elbo(model: DequantizedFlow, k: torch.Tensor) -> torch.Tensor:
    return -model.elbo(k).mean()  # fresh noise in every batch


def train_digits_flow(model: DequantizedFlow, epochs: int = DIGIT_EPOCHS):
    return fit(model, _negative_elbo, digits("train"), epochs=epochs, batch_size=128, lr=1e-3,
               val_data=digits("val"), patience=20, seed=0, device="cpu", progress=False)


def digits_bound(model: DequantizedFlow, n_samples: int, split: str = "test") -> float:
    """Mean bound on -log P(k) in nats per image, fresh noise from a fixed seed."""
    generator = torch.Generator().manual_seed(BOUND_SEED)
    return -model.log_prob_bound(digits(split), n_samples, generator=generator).mean().item()


def digits_rows() -> list[results.Result]:
    model = build_digits_flow()
    meta = results.load_checkpoint("ch09_maf_digits", model)
    config = f"MAF 5x(128-128) on logit((k+u)/17), uniform dequantisation, {meta['epochs']} epochs"
    rows = []
    for samples in (1, DIGIT_SAMPLES):
        nll = digits_bound(model, samples)
        suffix = "" if samples == 1 else f", importance-weighted, S={samples}"
        common = {"config": config + suffix, "seconds": meta["seconds"], "seed": 0}
        name = "maf" if samples == 1 else "maf-iw1000"
        rows += [results.Result(name, "digits-levels", "test", "nll", nll, **common),
                 results.Result(name, "digits-levels", "test", "bpd",
                                results.bits_per_dim(nll, 64), **common)]
    # the chapter 2 mixture on the same split, in the same run, by chapter 2's own code
    spec = importlib.util.spec_from_file_location("ch02_results", HERE / "ch02_results.py")
    ch02 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ch02)
    for r in ch02.rows_for("digits-dequantized", ("gmm",)):
        rows.append(results.Result(r.model, r.data, r.split, r.metric, r.value,
                                   config=r.config + " (chapter 2, same run)",
                                   seconds=r.seconds, seed=r.seed))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toys", nargs="*", default=list(TOY_DENSITIES), choices=TOY_DENSITIES,
                        help="the toys to score (default: all five)")
    parser.add_argument("--models", nargs="*", default=list(TOY_MODELS), choices=TOY_MODELS,
                        help="the toy flows to train (default: all)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0],
                        help="initialisation seeds (default 0; rows of seed k > 0 are named "
                             "<model>-seed<k>)")
    parser.add_argument("--no-digits", action="store_true", help="skip the digits")
    args = parser.parse_args(argv)
    if any(s < 0 for s in args.seeds):
        parser.error(f"--seeds must be >= 0, got {args.seeds}")
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        for toy in args.toys:
            for model in args.models:  # recorded one by one: a long run keeps what it finished
                new = toy_rows(toy, [model], seed)
                results.record(CHAPTER, new)
                rows += [r for r in new if r.key not in {q.key for q in rows}]  # one entropy
                gap = new[0].value - new[1].value
                print(f"{toy:14s} {new[0].model:19s} {new[0].value:8.4f}  gap {gap:+.4f}  "
                      f"{new[0].seconds:7.1f} s", flush=True)
    if not args.no_digits:
        rows += digits_rows()
    path = results.record(CHAPTER, rows)
    for r in rows:
        print(f"{r.data:20s} {r.model:13s} {r.metric:4s} {r.value:10.4f}  {r.seconds:7.1f} s  "
              f"{r.config}")
    print(f"wrote {len(rows)} rows to {path}")
    assert all(math.isfinite(r.value) for r in rows)


if __name__ == "__main__":
    main()
