"""Chapter 6's speed figures: exact likelihood in one pass, sampling one coordinate at a time.

    python benchmarks/ch06_bench.py

Prints, for every model of chapter 6's tables and figures (the architectures of the
checkpoints in ``ch06_recipes.py``, untrained: timing does not depend on the weights; FVSBN
untrained; the EM baselines fitted in a fraction of a second with the number of components the
results file chose):

* NADE's likelihood by the O(DH) recursion against the O(D^2 H) computation that rebuilds
  each conditional's hidden layer from scratch, and the ratio;
* the time per example of ``log_prob`` and of ``sample`` for every model; for NADE, the
  PixelCNNs and WaveNet, the naive generation (one full pass of the network per coordinate)
  against the fast one (NADE's recursion; one row / one step of every layer per
  coordinate), and the ratio. FVSBN's ``sample`` is the naive loop itself; MADE, DeepNADE and
  RNADE have no faster path (RNADE's sampling is NADE's recursion already); the mixtures draw
  every pixel at once;
* the same on every CUDA GPU present (random draws from a generator on the GPU), and each
  model's CPU/GPU ratio of sampling time; without CUDA, one line saying so.

Every ratio compares two measurements of the same run: other jobs sharing the CPU inflate
both.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ch06_recipes  # noqa: E402

from dgm_lab import results  # noqa: E402
from dgm_lab.autoregressive import FVSBN, NADE, AutoregressiveModel  # noqa: E402
from dgm_lab.density import BernoulliMixture, CategoricalMixture  # noqa: E402


def _chosen_components(model: str, data: str) -> int:
    """The number of mixture components the results file chose on validation."""
    config = results.lookup(6, model, data, "test", "nll").config  # "K=20 (best on val), ..."
    return int(config.split("=")[1].split(" ")[0])


def _mixture(kind: str, components: int) -> Callable[[], torch.nn.Module]:
    def build():
        model = (BernoulliMixture(components, seed=0) if kind == "binary" else
                 CategoricalMixture(components, 17, seed=0))
        return model.fit(ch06_recipes.data(kind, "train"))
    return build


def models() -> dict[tuple[str, str], tuple[Callable[[], torch.nn.Module], str]]:
    """(model, data) of its row in the results file -> (build, data kind), for every model of
    the chapter's tables (``fvsbn-sklearn`` is FVSBN fitted by scikit-learn, and the
    ``-small`` rows are MADEs trained on 100 images: the same models, timed once)."""
    kind_of = {spec[0]: spec[1] for spec in ch06_recipes.SPECS}
    k_binary = _chosen_components("bernoulli-mixture", "digits-binary")
    k_levels = _chosen_components("categorical-mixture", "digits-levels")
    return {
        ("independent-bernoulli", "digits-binary"): (_mixture("binary", 1), "binary"),
        ("bernoulli-mixture", "digits-binary"): (_mixture("binary", k_binary), "binary"),
        ("fvsbn", "digits-binary"): (lambda: FVSBN(64), "binary"),
        ("independent-categorical", "digits-levels"): (_mixture("levels", 1), "levels"),
        ("categorical-mixture", "digits-levels"): (_mixture("levels", k_levels), "levels"),
        ("categorical-mixture-10", "digits-levels"): (_mixture("levels", 10), "levels"),
        **{ch06_recipes.ROW_OF[name]: (lambda name=name: ch06_recipes.build(name), kind_of[name])
           for name in ch06_recipes.CHECKPOINTED},
    }


def seconds(call: Callable[[], object], repeat: int = 3) -> float:
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


def has_fast_sampling(model: torch.nn.Module) -> bool:
    """Whether ``model.sample`` is faster than one full pass per coordinate: an
    autoregressive model whose class overrides the naive loop (NADE, PixelCNNs, WaveNet)."""
    return (isinstance(model, AutoregressiveModel)
            and type(model)._sample is not AutoregressiveModel._sample)


@torch.no_grad()
def nade_recursion(device: str) -> None:
    """The checkpoint's size on the test digits, then larger D on random binary vectors: the
    recursion's advantage grows with D (D / 2 in multiply-adds), but at D = 64 a CPU spends
    its time on memory traffic and calls, not arithmetic."""
    model = NADE(64, hidden=100).to(device)
    x = ch06_recipes.data("binary", "test").to(device)
    cases = [("digits", model, x)]
    for d in (256, 1024):
        torch.manual_seed(d)
        cases.append((f"random, D={d}", NADE(d, hidden=100).to(device),
                      (torch.rand(100, d) < 0.3).float().to(device)))
    for label, model, x in cases:
        fast = seconds(lambda model=model, x=x: model.logits(x))
        naive = seconds(lambda model=model, x=x: model.logits_naive(x))
        print(f"[{device}] NADE likelihood, H=100, {len(x)} examples ({label}): recursion "
              f"{fast * 1e3:.2f} ms, naive {naive * 1e3:.2f} ms, ratio {naive / fast:.1f}",
              flush=True)


@torch.no_grad()
def sampling(device: str, n: int = 20, examples: int = 100,
             repeat: int = 2) -> dict[tuple[str, str], float]:
    """Prints one line per model (``log_prob`` of ``examples`` test examples, best of
    ``repeat + 1``; ``sample`` of ``n``, best of ``repeat``); returns the sampling seconds per
    example."""
    per_sample = {}
    for key, (build, kind) in models().items():
        name = "/".join(key)
        torch.manual_seed(0)
        model = build().to(device).eval()
        x = ch06_recipes.data(kind, "test")[:examples].to(device)
        t_lp = seconds(lambda model=model, x=x: model.log_prob(x), repeat + 1) / len(x)
        g = torch.Generator(device=device).manual_seed(0)
        model.sample(1, generator=g)  # warm-up: the first call pays for allocations
        t_s = seconds(lambda model=model, g=g: model.sample(n, generator=g), repeat) / n
        line = (f"[{device}] {name:40s} log_prob {t_lp * 1e3:8.3f} ms/example, "
                f"sample {t_s * 1e3:8.2f} ms/example")
        if has_fast_sampling(model):
            t_naive = seconds(lambda model=model, g=g: model.sample_naive(n, generator=g),
                              repeat) / n
            line += f", naive sample {t_naive * 1e3:8.2f} ms, ratio {t_naive / t_s:.1f}"
        print(line, flush=True)
        per_sample[key] = t_s
    return per_sample


def main() -> None:
    torch.set_num_threads(1)
    nade_recursion("cpu")
    cpu = sampling("cpu")
    if torch.cuda.is_available():
        print(f"CUDA: {torch.cuda.get_device_name()}")
        nade_recursion("cuda")
        gpu = sampling("cuda")
        for key in cpu:
            print(f"{'/'.join(key):40s} sampling CPU/GPU time ratio {cpu[key] / gpu[key]:.1f}")
    else:
        print("no CUDA GPU present: CPU only")


if __name__ == "__main__":
    main()
