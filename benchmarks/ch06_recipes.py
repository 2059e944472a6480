"""Chapter 6's trained models: how each is built, trained and scored.

``benchmarks/make_checkpoints.py`` turns each recipe into a committed checkpoint, and
``benchmarks/ch06_results.py`` trains them, records their test figures and training times
in ``benchmarks/results/ch06.csv``. Every model trains through ``dgm_lab.train.fit`` on the
course's fixed split of the digits (the 1,078 training images), with AdamW, a cosine learning
rate schedule, gradient clipping and early stopping on the validation split (the weights of the
best validation epoch are kept). The hyperparameters were chosen on the validation split.
The figure of each checkpoint is its test NLL in nats per example, computed in float64 so that
it reproduces to 1e-6 whatever the number of threads. RNADE is the one continuous model: on the
2-D toys (``load_toy``'s fixed points) its figure is the test NLL in nats per point, and on the
dequantised digits it is the bound on the discrete image, the continuous NLL plus
64 log 17 nats (``results.discrete_nll``).
"""

from __future__ import annotations

import copy
import functools
import os
import time
from collections.abc import Callable

import torch

from dgm_lab.autoregressive import (
    NADE,
    RNADE,
    DeepNADE,
    GatedPixelCNN,
    MADEDensity,
    PixelCNN,
    WaveNet,
)
from dgm_lab.autoregressive import sine_waves as _sine_waves
from dgm_lab.data import TOY_DENSITIES, load_digits, load_toy
from dgm_lab.results import discrete_nll
from dgm_lab.train import evaluate, fit

#: what the training of each recipe measured: wall and CPU seconds, the machine's load,
#: the best epoch (filled in by the recipes' ``train``)
TRAINING: dict[str, dict] = {}

#: the course's 1-D signals for WaveNet: length, levels, and the seeds of the three splits
SIGNAL_LENGTH, SIGNAL_LEVELS = 96, 16
SIGNAL_SIZES = {"train": (1000, 1), "val": (300, 2), "test": (1000, 3)}


@functools.cache
def digits(form: str, split: str) -> torch.Tensor:
    """The digits of ``split`` as float32 ``[n, 64]``: binary pixels, levels 0..16 or the
    dequantised levels (noise seed 0)."""
    return load_digits(split, form)[0].float()


@functools.cache
def sine_waves(split: str) -> torch.Tensor:
    n, seed = SIGNAL_SIZES[split]
    return _sine_waves(n, SIGNAL_LENGTH, SIGNAL_LEVELS, seed=seed)


def data(kind: str, split: str) -> torch.Tensor:
    """The examples of ``kind``: ``"sines"``, a toy's name, or a form of the digits."""
    if kind == "sines":
        return sine_waves(split)
    if kind in TOY_DENSITIES:
        return load_toy(kind, split)
    return digits(kind, split)


def nll(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood, nats per example."""
    return -model.log_prob(x).mean()


def made_loss(model: MADEDensity, x: torch.Tensor) -> torch.Tensor:
    """One step of connectivity-agnostic training: the next mask set, its NLL."""
    model.next_mask()
    return -model.log_prob_current_mask(x).mean()


def deep_nade_loss(model: DeepNADE, x: torch.Tensor) -> torch.Tensor:
    return model.order_agnostic_loss(x).mean()


def test_nll(kind: str) -> Callable[[torch.nn.Module], float]:
    """The figure of a checkpoint: test NLL (nats per example), computed in float64."""
    def figure(model: torch.nn.Module) -> float:
        twin = copy.deepcopy(model).double().eval()
        return float(evaluate(twin, nll, data(kind, "test").double()))
    return figure


def dequantized_bound(model: torch.nn.Module) -> float:
    """The figure of RNADE on the dequantised digits: a bound on the test NLL of the discrete
    images, nats per image (the continuous NLL plus 64 log 17)."""
    return discrete_nll(test_nll("dequantized")(model), dims=64, levels=17)


def train(name: str, kind: str, *, lr: float, loss: Callable = nll, batch_size: int = 64,
          weight_decay: float = 0.0, patience: int = 10) -> Callable:
    """``train(model, epochs)`` for a recipe: AdamW, cosine schedule over ``epochs``, gradient
    norm clipped at 1, early stopping on the validation NLL; it records its times."""
    def run(model: torch.nn.Module, epochs: int):
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
        load, wall, cpu = os.getloadavg()[0], time.perf_counter(), time.process_time()
        history = fit(model, loss, data(kind, "train"), epochs=epochs, batch_size=batch_size,
                      optimizer=optimizer, scheduler=schedule, clip_grad_norm=1.0,
                      val_data=data(kind, "val"), val_loss=nll, patience=patience, seed=0,
                      device="cpu", progress=False)
        TRAINING[name] = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                          "load": (load + os.getloadavg()[0]) / 2,
                          "best_epoch": history.best_epoch, "epochs_run": history.epochs}
        return history
    return run


_BINARY = {"data": "digits-binary", "split": "test", "unit": "nats per image"}
_LEVELS = {"data": "digits-levels", "split": "test", "unit": "nats per image"}
#: RNADE's toys: every toy of chapter 2 but the 5x5 grid
RNADE_TOYS = ("two_moons", "eight_gaussians", "rings", "checkerboard")

#: RNADE's size on the digits (its output weights are D x 3K x H: kept small for the checkpoint)
RNADE_HIDDEN, RNADE_COMPONENTS = 64, 10

#: every model of the chapter: name, data, build, epochs, training arguments, what the
#: checkpoint's record says about it
SPECS = [
    ("ch06_nade_digits", "binary", lambda: NADE(64, hidden=100), 200,
     {"lr": 5e-3}, _BINARY),
    ("ch06_made_digits", "binary",
     lambda: MADEDensity(64, [500], n_masks=8, dropout=0.1, seed=0), 200,
     {"lr": 3e-3, "loss": made_loss}, _BINARY),
    ("ch06_deepnade_digits", "binary",
     lambda: DeepNADE(64, [256, 256], n_orderings=4, dropout=0.1, seed=0), 150,
     {"lr": 3e-3, "loss": deep_nade_loss}, _BINARY),
    ("ch06_pixelcnn_digits", "binary",
     lambda: PixelCNN((8, 8), channels=32, n_blocks=4, kernel_size=5, dropout=0.3), 100,
     {"lr": 3e-3, "weight_decay": 0.1}, _BINARY),
    ("ch06_made_levels", "levels",
     lambda: MADEDensity(64, [500], levels=17, n_masks=8, dropout=0.1, seed=0), 200,
     {"lr": 3e-3, "loss": made_loss}, _LEVELS),
    ("ch06_gated_pixelcnn_levels", "levels",
     lambda: GatedPixelCNN((8, 8), levels=17, channels=32, n_layers=4, kernel_size=5,
                           dropout=0.1), 40,
     {"lr": 3e-3}, _LEVELS),
    ("ch06_wavenet_sines", "sines",
     lambda: WaveNet(SIGNAL_LENGTH, SIGNAL_LEVELS, channels=32,
                     dilations=(1, 2, 4, 8, 16, 32)), 30,
     {"lr": 3e-3}, {"data": "sine-waves", "split": "test", "unit": "nats per signal"}),
    *[(f"ch06_rnade_{toy}", toy, lambda: RNADE(2, hidden=64, components=10), 60,
       {"lr": 3e-3}, {"data": toy, "split": "test", "unit": "nats per point"})
      for toy in RNADE_TOYS],
    ("ch06_rnade_digits", "dequantized", lambda: RNADE(64, hidden=RNADE_HIDDEN,
                                                       components=RNADE_COMPONENTS), 120,
     {"lr": 3e-3}, {"data": "digits-dequantized", "split": "test",
                    "unit": "nats per image, bound on -log P(k): continuous NLL + 64 log 17"}),
]

#: figures other than the test NLL of the model's own data
FIGURES = {"ch06_rnade_digits": dequantized_bound}

#: the models with a committed checkpoint: only these are registered in make_checkpoints
CHECKPOINTED = ("ch06_nade_digits", "ch06_made_digits", "ch06_deepnade_digits",
                "ch06_pixelcnn_digits", "ch06_made_levels", "ch06_gated_pixelcnn_levels",
                "ch06_wavenet_sines", *(f"ch06_rnade_{toy}" for toy in RNADE_TOYS),
                "ch06_rnade_digits")

#: checkpoint -> (model, data) of its row in the results file
ROW_OF = {
    "ch06_nade_digits": ("nade", "digits-binary"),
    "ch06_made_digits": ("made", "digits-binary"),
    "ch06_deepnade_digits": ("deepnade", "digits-binary"),
    "ch06_pixelcnn_digits": ("pixelcnn", "digits-binary"),
    "ch06_made_levels": ("made", "digits-levels"),
    "ch06_gated_pixelcnn_levels": ("gated-pixelcnn", "digits-levels"),
    "ch06_wavenet_sines": ("wavenet", "sine-waves"),
    **{f"ch06_rnade_{toy}": ("rnade", toy) for toy in RNADE_TOYS},
    "ch06_rnade_digits": ("rnade", "digits-dequantized"),
}


def build(name: str) -> torch.nn.Module:
    """The untrained model of ``name`` (any of ``SPECS``)."""
    return next(spec[2] for spec in SPECS if spec[0] == name)()


def recipes(recipe: type) -> list:
    """Chapter 6's checkpointed recipes, built with ``make_checkpoints.Recipe`` (passed in as
    ``recipe``)."""
    return [recipe(name, build=make, train=train(name, kind, **arguments), epochs=epochs,
                   figure=FIGURES.get(name, test_nll(kind)), metric="nll", about=about)
            for name, kind, make, epochs, arguments, about in SPECS if name in CHECKPOINTED]
