"""The same work on the CPU and on each accelerator present: KDE scoring, GMM fit, one epoch.

    python benchmarks/bench_device.py

Three tasks on the 64-D digits in float32, each timed on the CPU and, when present, on CUDA
and Apple MPS (median of a few runs after a warm-up; the GPU is synchronised before the clock
stops):

* KDE scoring: log-density of 2,000 queries under 5,000 kernel centres;
* GMM fit: EM with K = 10 full-covariance components from a fixed start, 10 iterations;
* one epoch of ``dgm_lab.train.fit``: an MLP autoencoder 64-256-256-64 with mean squared
  error on 10,780 images (the training split tiled ten times with a little noise), batch 256.

The ratio column is CPU time / device time: above 1 the device is faster. Without a GPU the
script says so and prints the CPU times only.
"""

from __future__ import annotations

import statistics
import time
import warnings

import torch
from torch import nn

from dgm_lab.data import load_digits
from dgm_lab.density import GaussianMixture, kde_log_prob
from dgm_lab.train import fit

REPEATS = 3


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def median_seconds(fn, device: torch.device) -> float:
    fn()  # warm-up: kernels, allocations, lazy imports
    times = []
    for _ in range(REPEATS):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def digits(n: int, seed: int) -> torch.Tensor:
    x, _ = load_digits("train")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(x), (n,), generator=g)
    return x[idx] + 0.02 * torch.randn(n, x.shape[1], generator=g)


def kde_task(device: torch.device):
    centres, queries = digits(5000, 0).to(device), digits(2000, 1).to(device)
    return lambda: kde_log_prob(queries, centres, 0.25)


def gmm_task(device: torch.device):
    x = digits(5000, 2).to(device)
    means = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:10]]

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a fixed number of iterations, converged or not
            GaussianMixture(10, max_iter=10, tol=1e-12, reg_covar=1e-3).fit(x, means_init=means)
    return run


def epoch_task(device: torch.device):
    x = digits(10 * 1078, 3)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 64))

    def loss(m, batch):
        return ((m(batch) - batch) ** 2).mean()

    return lambda: fit(model, loss, x, epochs=1, batch_size=256, device=device, progress=False)


TASKS = {"KDE scoring (2,000 x 5,000, 64-D)": kde_task,
         "GMM fit (n=5,000, K=10, 10 EM iterations)": gmm_task,
         "fit: one epoch, MLP autoencoder (10,780 x 64)": epoch_task}


def main() -> None:
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    if torch.backends.mps.is_available():
        devices.append(torch.device("mps"))
    names = ", ".join(torch.cuda.get_device_name(0) if d.type == "cuda" else d.type
                      for d in devices)
    print(f"torch {torch.__version__}; devices: {names}; CPU threads: {torch.get_num_threads()}")
    if len(devices) == 1:
        print("no GPU present: CPU times only (run on a CUDA or Apple machine for the ratios)")
    header = f"{'task':<48}" + "".join(f"{d.type + ' s':>10}" for d in devices)
    header += "".join(f"{'cpu/' + d.type:>11}" for d in devices[1:])
    print(header)
    print("-" * len(header))
    for name, task in TASKS.items():
        seconds = [median_seconds(task(d), d) for d in devices]
        line = f"{name:<48}" + "".join(f"{s:>10.3f}" for s in seconds)
        line += "".join(f"{seconds[0] / s:>11.1f}" for s in seconds[1:])
        print(line, flush=True)


if __name__ == "__main__":
    main()
