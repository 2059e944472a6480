"""Test figures of chapter 3's linear latent variable models: benchmarks/results/ch03.csv.

    python benchmarks/ch03_results.py          # about 15 s on one core

* **Probabilistic PCA** on the dequantised 8x8 digits (the fixed split of
  ``dgm_lab.data.load_digits``, noise seed 0, as chapter 2): the closed-form maximum-likelihood
  fit for every number of components Q = 1..63, Q chosen by the validation log-likelihood, and
  the test negative log-likelihood in nats per image (the bound on the discrete image,
  ``results.discrete_nll``) and in bits per dimension, beside chapter 2's Gaussian and mixture.
* **The linear autoencoder** (Q = 4, encoder and decoder matrices, the training mean
  subtracted) trained by SGD with momentum through ``dgm_lab.train.fit`` on the digits in
  [0, 1]: the largest
  principal angle, in degrees, between its decoder's column space and the PCA subspace of the
  same training data.

Every computation in float64 (PPCA) or float32 (the autoencoder) on one CPU thread.
``tests/test_pca.py`` re-runs the PPCA rows and checks them against the committed file.
"""

from __future__ import annotations

import time

import torch

from dgm_lab import results
from dgm_lab.autoencoders import reconstruction_loss
from dgm_lab.data import load_digits
from dgm_lab.pca import LinearAutoencoder, ProbabilisticPCA, pca_svd, principal_angles
from dgm_lab.train import fit

CHAPTER = 3
PPCA_COMPONENTS = range(1, 64)
LINEAR_AE = {"n_components": 4, "epochs": 30, "lr": 0.05, "momentum": 0.9, "batch_size": 64,
             "seed": 0}


def digits_split() -> dict[str, torch.Tensor]:
    return {split: load_digits(split, form="dequantized", seed=0)[0].double()
            for split in ("train", "val", "test")}


def ppca_validation_curve(data: dict[str, torch.Tensor]) -> dict[int, float]:
    """Mean validation log-likelihood (nats per image, continuous) for every Q."""
    return {q: ProbabilisticPCA(q).fit(data["train"]).log_prob(data["val"]).mean().item()
            for q in PPCA_COMPONENTS}


def ppca_rows() -> list[results.Result]:
    data = digits_split()
    start = time.perf_counter()
    curve = ppca_validation_curve(data)
    q = max(curve, key=curve.get)
    model = ProbabilisticPCA(q).fit(data["train"])
    seconds = time.perf_counter() - start
    nll = results.discrete_nll(-model.log_prob(data["test"]).mean().item(), dims=64, levels=17)
    common = {"config": f"Q={q} (best on val, Q=1..63)", "seconds": seconds, "seed": -1}
    return [results.Result("ppca", "digits-dequantized", "test", "nll", nll, **common),
            results.Result("ppca", "digits-dequantized", "test", "bpd",
                           results.bits_per_dim(nll, 64), **common)]


def train_linear_autoencoder(epochs: int = LINEAR_AE["epochs"]) -> LinearAutoencoder:
    x = load_digits("train")[0]
    torch.manual_seed(LINEAR_AE["seed"])
    model = LinearAutoencoder(64, LINEAR_AE["n_components"], mean=x.mean(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=LINEAR_AE["lr"],
                                momentum=LINEAR_AE["momentum"])
    fit(model, reconstruction_loss, x, epochs=epochs, batch_size=LINEAR_AE["batch_size"],
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs),
        seed=LINEAR_AE["seed"], device="cpu", progress=False)
    return model


def linear_autoencoder_rows() -> list[results.Result]:
    start = time.perf_counter()
    model = train_linear_autoencoder()
    seconds = time.perf_counter() - start
    x = load_digits("train")[0]
    _, components, _ = pca_svd(x.double(), LINEAR_AE["n_components"])
    angle = torch.rad2deg(principal_angles(model.decoder.weight.detach(), components.T)).max()
    config = (f"Q={LINEAR_AE['n_components']}, SGD lr={LINEAR_AE['lr']} momentum "
              f"{LINEAR_AE['momentum']} cosine, "
              f"{LINEAR_AE['epochs']} epochs, batch {LINEAR_AE['batch_size']}")
    return [results.Result("linear-autoencoder", "digits-float", "train", "max-angle-deg",
                           angle.item(), config=config, seconds=seconds,
                           seed=LINEAR_AE["seed"])]


def main() -> None:
    torch.set_num_threads(1)  # the same figures on every machine and thread count
    rows = ppca_rows() + linear_autoencoder_rows()
    path = results.record(CHAPTER, rows)
    for r in rows:
        print(f"{r.data:20s} {r.model:20s} {r.metric:14s} {r.value:10.4f}  {r.seconds:7.2f} s  "
              f"{r.config}")
    print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
