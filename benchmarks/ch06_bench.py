"""Chapter 6's speed figures: exact likelihood in one pass, sampling one coordinate at a time.

    python benchmarks/ch06_bench.py

Prints, for the architectures of chapter 6's checkpoints (``ch06_recipes.py``; timing does
not depend on the weights, so the models are untrained):

* NADE's likelihood by the O(DH) recursion against the O(D^2 H) computation that rebuilds
  each conditional's hidden layer from scratch, and the ratio;
* the time per example of ``log_prob`` and of ``sample`` for every model, and for NADE, the
  PixelCNNs and WaveNet the naive generation (one full pass of the network per coordinate)
  against the fast one (NADE's recursion; one row / one step of every layer per
  coordinate), and the ratio;
* the same on every GPU present, with the CPU/GPU ratio.

Every ratio compares two measurements of the same run: other jobs sharing the CPU inflate
both.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ch06_recipes  # noqa: E402

from dgm_lab.autoregressive import NADE  # noqa: E402

MODELS = {  # checkpoint recipe -> data kind
    "ch06_nade_digits": "binary",
    "ch06_made_digits": "binary",
    "ch06_deepnade_digits": "binary",
    "ch06_pixelcnn_digits": "binary",
    "ch06_made_levels": "levels",
    "ch06_gated_pixelcnn_levels": "levels",
    "ch06_wavenet_sines": "sines",
}


def seconds(call, repeat: int = 3) -> float:
    """Best of ``repeat`` wall times of ``call()`` (the least disturbed by other jobs)."""
    best = float("inf")
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


@torch.no_grad()
def nade_recursion(device: str) -> None:
    model = NADE(64, hidden=100).to(device)
    x = ch06_recipes.data("binary", "test").to(device)
    fast = seconds(lambda: model.logits(x))
    naive = seconds(lambda: model.logits_naive(x))
    print(f"[{device}] NADE likelihood of {len(x)} images: recursion {fast * 1e3:.2f} ms, "
          f"naive {naive * 1e3:.2f} ms, ratio {naive / fast:.1f}")


@torch.no_grad()
def sampling(device: str, n: int = 20) -> dict[str, float]:
    per_sample = {}
    for name, kind in MODELS.items():
        torch.manual_seed(0)
        model = ch06_recipes.build(name).to(device).eval()
        x = ch06_recipes.data(kind, "test")[:100].to(device)
        t_lp = seconds(lambda model=model, x=x: model.log_prob(x)) / len(x)
        g = torch.Generator().manual_seed(0)
        t_s = seconds(lambda model=model, g=g: model.sample(n, generator=g), 1) / n
        line = (f"[{device}] {name:28s} log_prob {t_lp * 1e3:8.3f} ms/example, "
                f"sample {t_s * 1e3:8.2f} ms/example")
        if hasattr(model, "sample_naive"):  # NADE's recursion, the cached convolutions
            t_naive = seconds(lambda model=model, g=g: model.sample_naive(n, generator=g), 1) / n
            line += f", naive sample {t_naive * 1e3:8.2f} ms, ratio {t_naive / t_s:.1f}"
        print(line, flush=True)
        per_sample[name] = t_s
    return per_sample


def main() -> None:
    torch.set_num_threads(1)
    nade_recursion("cpu")
    cpu = sampling("cpu")
    if torch.cuda.is_available():
        nade_recursion("cuda")
        gpu = sampling("cuda")
        for name in MODELS:
            print(f"{name:28s} sampling CPU/GPU time ratio {cpu[name] / gpu[name]:.1f}")
    else:
        print("no CUDA GPU present: CPU only")


if __name__ == "__main__":
    main()
