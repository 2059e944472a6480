"""Test figures of chapter 7's variational autoencoder, written to benchmarks/results/ch07.csv.

    python benchmarks/make_checkpoints.py ch07_vae_digits_levels   # trains it (minutes, 1 core)
    python benchmarks/ch07_results.py                              # scores it (about 30 s)

The model is the committed checkpoint ``ch07_vae_digits_levels``: a VAE with a 16-D code, two
hidden layers of 256 units in the encoder and in the decoder, and a beta-binomial decoder of
the 17 levels of the 8x8 digits, trained on the fixed training split by maximising the ELBO
(Adam, learning rate 1e-3, batches of 64, seed 0) with early stopping on the validation ELBO
(patience 30 epochs). Figures, in float64 and in nats per image, on the validation and test
splits:

* ``nll``: the importance-weighted bound with k = 1000 draws (seed 0), the course's estimate
  of -log p(x) for a VAE (in expectation an upper bound on it);
* ``neg-elbo``: the negative ELBO averaged over 100 one-draw estimates per image (seed 1),
  the looser bound the model was trained on.

The IWAE-1000 figure of the test split is the one the checkpoint records, and the issue's
bar: at most 88.7 nats per image (a peer's VAE with a categorical decoder, trained with early
stopping on the same split, reaches 91.67 and 92.79 in two seeds).
"""

from __future__ import annotations

import copy

import torch

from dgm_lab import results
from dgm_lab.data import load_digits
from dgm_lab.vae import VAE

CHAPTER = 7
CHECKPOINT = "ch07_vae_digits_levels"
CONFIG = "latent=16, hidden=256x2, beta-binomial decoder, ELBO, early stopping on val"


def load_vae() -> tuple[VAE, dict]:
    """The committed checkpoint in a fresh VAE (float64), and its record."""
    vae = VAE(64, latent=16, hidden=256, likelihood="beta_binomial", eval_samples=1000)
    meta = results.load_checkpoint(CHECKPOINT, vae)
    return copy.deepcopy(vae).double(), meta


def rows(vae: VAE, meta: dict) -> list[results.Result]:
    out = []
    for split in ("val", "test"):
        x = load_digits(split, form="levels")[0].double()
        with torch.no_grad():
            iwae = -vae.log_prob(x).mean().item()
            g = torch.Generator().manual_seed(1)
            elbo = -torch.stack([vae.elbo(x, generator=g) for _ in range(100)]).mean().item()
        for metric, value in (("nll", iwae), ("neg-elbo", elbo)):
            out.append(results.Result("vae", "digits-levels", split, metric, value,
                                      config=CONFIG + (", IWAE k=1000" if metric == "nll"
                                                       else ", 100 draws"),
                                      seconds=meta["seconds"], device="cpu", seed=0))
    return out


def main() -> None:
    torch.set_num_threads(1)
    vae, meta = load_vae()
    new = rows(vae, meta)
    results.record(CHAPTER, new)
    for r in new:
        print(f"{r.model:6s} {r.data:14s} {r.split:5s} {r.metric:9s} {r.value:9.3f}")


if __name__ == "__main__":
    main()
