"""Chapter 7's checkpoints and test figures, written to benchmarks/results/ch07.csv.

    python benchmarks/make_checkpoints.py ch07_vae_digits_levels   # trains one (minutes, 1 core)
    python benchmarks/ch07_results.py [NAME ...]                   # scores them (minutes)

Three VAEs, each trained on the fixed training split by maximising the ELBO (Adam, learning
rate 1e-3, batches of 64, seed 0) with early stopping on the validation ELBO (patience 30
epochs, at most 300 epochs), built and trained by the recipes of :func:`recipes` (registered
in ``benchmarks/make_checkpoints.py``):

* ``ch07_vae_digits_levels``: a 16-D code, two hidden layers of 256 units in the encoder and
  in the decoder, and a beta-binomial decoder of the 17 levels of the 8x8 digits;
* ``ch07_vae_digits_binary``: the same networks with a Bernoulli decoder of the binarised
  digits, to compare with chapter 6's autoregressive models on the same data;
* ``ch07_vae_digits_2d``: a 2-D code and 128 hidden units on the binarised digits, for the
  pictures of the latent space and for the exact likelihood by integration over the code.

Each checkpoint records a cheap, deterministic figure that the test suite recomputes from the
weights: the importance-weighted bound with k = 100 draws (seed 0) on the test split, in
float64. This script computes the reported figures, in nats per image, on the validation and
test splits:

* ``nll``: the importance-weighted bound with k = 1000 draws (seed 0), the course's estimate
  of -log p(x) for a VAE (in expectation an upper bound on it, tighter than k = 100);
* ``neg-elbo``: the negative ELBO averaged over 100 one-draw estimates per image (seed 1),
  the looser bound the models were trained on;
* for the 2-D model also ``nll-exact`` (test split): -log p(x) by integrating over the code
  on a 151 x 151 grid, the figure the IWAE bounds converge to.

The issue's bar is the IWAE-1000 figure of the levels model on the test split: at most 88.7
nats per image (a peer's VAE with a categorical decoder, trained with early stopping on the
same split, reaches 91.67 and 92.79 in two seeds).
"""

from __future__ import annotations

import copy
import functools
import sys

import torch

from dgm_lab import results
from dgm_lab.data import load_digits
from dgm_lab.vae import VAE

CHAPTER = 7
GRID_POINTS = 151  # per axis of the code's grid, on [-6, 6]: spacing 0.08
CHECK_K = 100  # draws of the figure a checkpoint records (the test suite recomputes it)
# name: (data form, likelihood, latent, hidden)
MODELS = {
    "ch07_vae_digits_levels": ("levels", "beta_binomial", 16, 256),
    "ch07_vae_digits_binary": ("binary", "bernoulli", 16, 256),
    "ch07_vae_digits_2d": ("binary", "bernoulli", 2, 128),
}
ROW_NAMES = {"ch07_vae_digits_levels": "vae", "ch07_vae_digits_binary": "vae",
             "ch07_vae_digits_2d": "vae-2d"}
DECODERS = {"beta_binomial": "beta-binomial", "bernoulli": "Bernoulli"}


def data(split: str, form: str) -> torch.Tensor:
    return load_digits(split, form=form)[0]


def build(name: str) -> VAE:
    """The untrained VAE of checkpoint ``name``."""
    form, likelihood, latent, hidden = MODELS[name]
    return VAE(64, latent=latent, hidden=hidden, likelihood=likelihood, eval_samples=1000)


def train(name: str, vae: VAE, epochs: int) -> VAE:
    form = MODELS[name][0]
    return vae.fit(data("train", form), epochs=epochs, val_data=data("val", form), patience=30,
                   lr=1e-3, batch_size=64, seed=0)


def iwae_nll(vae: VAE, form: str, split: str, k: int) -> float:
    """Minus the IWAE-k bound (seed 0) averaged over a split, in float64: nats per image."""
    model = copy.deepcopy(vae).double()
    model.eval_samples = k
    return -model.log_prob(data(split, form).double()).mean().item()


def check_figure(name: str, vae: VAE) -> float:
    """The figure a checkpoint records: minus IWAE-100 on the test split."""
    return iwae_nll(vae, MODELS[name][0], "test", CHECK_K)


def recipes(Recipe: type) -> list:  # noqa: N803  (the class, given by make_checkpoints)
    """Chapter 7's recipes, built with ``make_checkpoints.Recipe``."""
    return [Recipe(name, build=functools.partial(build, name),
                   train=functools.partial(train, name), epochs=300,
                   figure=functools.partial(check_figure, name), metric="nll-iwae100",
                   about={"data": f"digits-{form}", "split": "test",
                          "unit": f"nats per image, minus the IWAE bound with k = {CHECK_K} "
                                  "(seed 0, float64), an upper bound on -log p(x) in "
                                  "expectation"})
            for name, (form, *_) in MODELS.items()]


def load(name: str) -> tuple[VAE, dict]:
    """The committed checkpoint ``name`` in a fresh VAE, and its record."""
    vae = build(name)
    meta = results.load_checkpoint(name, vae)
    return vae.eval(), meta


def load_vae() -> tuple[VAE, dict]:
    """The levels checkpoint in float64, and its record (kept for scripts that used it)."""
    vae, meta = load("ch07_vae_digits_levels")
    return copy.deepcopy(vae).double(), meta


def config(name: str) -> str:
    _, likelihood, latent, hidden = MODELS[name]
    return (f"latent={latent}, hidden={hidden}x2, {DECODERS[likelihood]} decoder, ELBO, "
            "early stopping on val")


def rows(name: str, vae: VAE, meta: dict) -> list[results.Result]:
    form = MODELS[name][0]
    model = copy.deepcopy(vae).double()
    out = []
    for split in ("val", "test"):
        x = data(split, form).double()
        with torch.no_grad():
            figures = {"nll": (iwae_nll(vae, form, split, 1000), ", IWAE k=1000")}
            g = torch.Generator().manual_seed(1)
            elbo = -torch.stack([model.elbo(x, generator=g) for _ in range(100)]).mean().item()
            figures["neg-elbo"] = (elbo, ", 100 draws")
            if model.latent <= 2 and split == "test":
                exact = -model.log_prob_on_grid(x, points=GRID_POINTS).mean().item()
                figures["nll-exact"] = (exact, f", integral over a {GRID_POINTS}x{GRID_POINTS} "
                                               "grid of the code")
        for metric, (value, how) in figures.items():
            out.append(results.Result(ROW_NAMES[name], f"digits-{form}", split, metric, value,
                                      config=config(name) + how, seconds=meta["seconds"],
                                      device="cpu", seed=0))
    return out


def main(names: list[str]) -> None:
    """Score the checkpoints ``names`` (default: all) and record their rows."""
    torch.set_num_threads(1)
    for name in names or MODELS:
        vae, meta = load(name)
        new = rows(name, vae, meta)
        results.record(CHAPTER, new)
        for r in new:
            print(f"{r.model:6s} {r.data:14s} {r.split:5s} {r.metric:9s} {r.value:9.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
