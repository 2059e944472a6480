"""Test figures of chapter 4's energy-based models, written to benchmarks/results/ch04.csv.

    python benchmarks/make_checkpoints.py ch04_rbm_digits ch04_dbn_digits ch04_dbm_digits
    python benchmarks/ch04_results.py         # about ten minutes on one core
    python benchmarks/ch04_results.py timing  # some parts: mixture, rbm, dbn, dbm, timing

Data: the binarised 8x8 digits of ``dgm_lab.data.load_digits(split, "binary")`` (the course's
fixed train / val / test split). Every figure is in nats per image on the test split.

* ``bernoulli-mixture``: the chapter 2 baseline, a mixture of Bernoullis fitted by EM, the
  number of components chosen on the validation split (k-means-free, seed 0): an exact NLL.
* ``rbm``: the committed checkpoint ``ch04_rbm_digits`` (64 hidden units, PCD-1). Its test
  NLL is ``F(v) + log Z`` with ``log Z`` from annealed importance sampling (base-rate model,
  ``AIS_BETAS`` temperatures, ``AIS_CHAINS`` chains), repeated ``AIS_RUNS`` times with
  different seeds: ``nll`` is the mean over runs, ``nll_ais_std`` their standard deviation.
  ``nll_raise``: the conservative reverse estimate (RAISE) of the same test NLL; it
  over-estimates the NLL on average, AIS under-estimates it on average, so the two bracket
  the truth in expectation (a single figure may still fall on the wrong side by its noise).
* ``dbn-1-layer`` / ``dbn-2-layers-tied`` / ``dbn-2-layers``: the committed DBN
  ``ch04_dbn_digits``; with one layer its bound is the first RBM's log-likelihood (AIS),
  with two the variational bound of Hinton et al. (2006) with the top RBM's ``log Z`` by
  AIS (``nll_bound`` = minus the bound), at the tied start and after training the top RBM,
  over ``PAIRED_RUNS`` runs that share their random numbers between the two; the gain of the
  second layer (``nll_bound_gain``, tied minus trained) with its standard error
  (``nll_bound_gain_se``) is the mean of the paired differences.
* ``dbm``: the committed DBM ``ch04_dbm_digits``: minus its mean-field variational bound,
  ``log Z`` by AIS on the equivalent RBM (even layers visible, odd layers hidden).
* ``rbm-dgm_lab`` / ``rbm-sklearn``: CPU seconds per training epoch of an RBM with 64
  hidden units, batch size 20 and one persistent Gibbs step, measured in the same run,
  float64, one thread, best of three; ``config`` gives the ratio (target: at most 1).

``tests/test_energy_results.py`` re-runs the cheap rows (the mixture) and checks the committed
ones against the quality bars of the chapter.
"""

from __future__ import annotations

import math
import sys
import time
import warnings

import numpy as np
import torch

from dgm_lab import results
from dgm_lab.data import load_digits
from dgm_lab.density import BernoulliMixture
from dgm_lab.energy import DBM, DBN, RBM, ais_log_partition, base_rate_bias, raise_log_prob

CHAPTER = 4
DATA = "digits-binary"
HIDDEN = 64
MIXTURE_COMPONENTS = (5, 10, 20, 40)
AIS_RUNS, AIS_CHAINS, AIS_BETAS = 5, 100, 3000
PAIRED_RUNS = 20
RAISE_CHAINS, RAISE_BETAS = 10, 1000
TIMING_EPOCHS, TIMING_REPEATS = 5, 3


def digits() -> dict[str, torch.Tensor]:
    return {s: load_digits(s, "binary")[0].double() for s in ("train", "val", "test")}


def mixture_rows(data: dict[str, torch.Tensor]) -> list[results.Result]:
    """The Bernoulli mixture with the number of components best on the validation split."""
    best, best_score, start = None, -math.inf, time.perf_counter()
    for k in MIXTURE_COMPONENTS:
        model = BernoulliMixture(k, seed=0).fit(data["train"])
        score = model.log_prob(data["val"]).mean().item()
        if score > best_score:
            best, best_score, best_k = model, score, k
    seconds = time.perf_counter() - start
    nll = -best.log_prob(data["test"]).mean().item()
    return [results.Result("bernoulli-mixture", DATA, "test", "nll", nll, seed=0,
                           config=f"K={best_k} (best on val of {MIXTURE_COMPONENTS})",
                           seconds=seconds)]


def ais_log_zs(rbm: RBM, base: torch.Tensor | None, runs: int = AIS_RUNS) -> np.ndarray:
    """``runs`` AIS estimates of ``log Z`` (seeds 0..runs-1)."""
    return np.array([ais_log_partition(rbm, n_chains=AIS_CHAINS, betas=AIS_BETAS,
                                       base_bias=base,
                                       generator=torch.Generator().manual_seed(seed)).log_z
                     for seed in range(runs)])


def load(name: str, model: torch.nn.Module) -> tuple[torch.nn.Module, dict]:
    meta = results.load_checkpoint(name, model)
    return model, meta


def rbm_rows(data: dict[str, torch.Tensor]) -> list[results.Result]:
    rbm, meta = load("ch04_rbm_digits", RBM(HIDDEN))
    base = base_rate_bias(data["train"])
    log_zs = ais_log_zs(rbm, base)
    free = rbm.free_energy(data["test"]).detach()
    nlls = free.mean().item() + log_zs
    with torch.no_grad():
        raised = raise_log_prob(rbm, data["test"], n_chains=RAISE_CHAINS, betas=RAISE_BETAS,
                                base_bias=base, generator=torch.Generator().manual_seed(0))
    common = {"seconds": meta["seconds"], "seed": 0}
    config = (f"{HIDDEN} hidden, PCD-1, {meta['epochs']} epochs; log Z by AIS: {AIS_RUNS} runs "
              f"x {AIS_CHAINS} chains x {AIS_BETAS} betas, base-rate model")
    return [results.Result("rbm", DATA, "test", "nll", float(nlls.mean()), config=config,
                           **common),
            results.Result("rbm", DATA, "test", "nll_ais_std", float(nlls.std(ddof=1)),
                           config=f"std over the {AIS_RUNS} AIS runs", **common),
            results.Result("rbm", DATA, "test", "nll_raise", -raised.mean().item(),
                           config=f"RAISE: {RAISE_CHAINS} chains x {RAISE_BETAS} betas per "
                           "test image (conservative: over-estimates the NLL)", **common)]


def dbn_rows(data: dict[str, torch.Tensor]) -> list[results.Result]:
    """The first RBM's NLL, and minus the 2-layer bound at the tied start (the same model as
    the first RBM, so the same NLL up to the AIS and Monte Carlo errors) and after training
    the top RBM.

    The gain of the second layer is a small difference of two noisy figures, so it is
    measured as a paired comparison with common random numbers: run ``i`` of
    ``PAIRED_RUNS`` scores the tied start and the trained stack on the *same* samples of
    q(h1|v) (seed ``1000 + i``) and runs AIS on both top RBMs with the
    same seed ``i`` (same base-rate model and uniform draws). The Monte Carlo error of the
    bound then almost cancels in the difference; ``nll_bound_gain`` is the mean over runs of
    (tied - trained) and ``nll_bound_gain_se`` its standard error.
    """
    dbn, meta = load("ch04_dbn_digits", DBN([HIDDEN, HIDDEN]))
    first = dbn.rbms[0]
    one = first.free_energy(data["test"]).detach().mean().item() + ais_log_zs(
        first, base_rate_bias(data["train"]))
    with torch.no_grad():  # the top RBM's base-rate model: the mean of its training data
        h1 = torch.bernoulli(first.hidden_probs(data["train"]),
                             generator=torch.Generator().manual_seed(0))
    base = base_rate_bias(h1)
    tied = DBN.from_rbms([first, RBM.from_parameters(first.weight.T, first.hidden_bias,
                                                     first.visible_bias)])

    def neg_bound(model: DBN, run: int) -> float:
        bound = model.variational_bound(data["test"], 0.0, n_samples=10,
                                        generator=torch.Generator().manual_seed(1000 + run))
        log_z = ais_log_partition(model.top, n_chains=AIS_CHAINS, betas=AIS_BETAS,
                                  base_bias=base,
                                  generator=torch.Generator().manual_seed(run)).log_z
        return -bound.mean().item() + log_z

    paired = np.array([[neg_bound(tied, run), neg_bound(dbn, run)]
                       for run in range(PAIRED_RUNS)])
    gain = paired[:, 0] - paired[:, 1]
    gain_se = gain.std(ddof=1) / math.sqrt(PAIRED_RUNS)
    ais = f"{AIS_CHAINS} chains x {AIS_BETAS} betas"
    top = (f"minus the variational bound, 10 samples of q(h1|v); top log Z by AIS ({ais}); "
           f"mean of {PAIRED_RUNS} runs paired with the other 2-layer row (same q samples, "
           "same AIS seeds)")
    rows = [("dbn-1-layer", "nll_bound", one, f"the first RBM ({HIDDEN} hidden, PCD-1, lr "
             f"0.05, {meta['epochs']} epochs): its NLL by AIS ({AIS_RUNS} runs x {ais}, std "
             f"over runs {one.std(ddof=1):.3f})"),
            ("dbn-2-layers-tied", "nll_bound", paired[:, 0], "+ the first RBM transposed on "
             "top, untrained (the same model as the first RBM): " + top),
            ("dbn-2-layers", "nll_bound", paired[:, 1], f"+ a top RBM ({HIDDEN} hidden) from "
             f"that tied start, CD-1, lr 0.01, {meta['epochs']} epochs on samples of "
             "q(h1|v): " + top),
            ("dbn-2-layers", "nll_bound_gain", gain, f"tied start minus trained, paired over "
             f"{PAIRED_RUNS} runs (common random numbers); positive = the second layer helps"),
            ("dbn-2-layers", "nll_bound_gain_se", np.array([gain_se]),
             f"standard error of nll_bound_gain over the {PAIRED_RUNS} paired runs "
             f"(std {gain.std(ddof=1):.4f})")]
    for name, metric, values, _ in rows:
        spread = f" +- {values.std(ddof=1) / math.sqrt(len(values)):.4f} (se)" \
            if len(values) > 1 else ""
        print(f"{name:18s} {metric:18s} {values.mean():.4f}{spread}")
    return [results.Result(name, DATA, "test", metric, float(values.mean()), seed=0,
                           config=about, seconds=meta["seconds"])
            for name, metric, values, about in rows]


def dbm_rows(data: dict[str, torch.Tensor]) -> list[results.Result]:
    dbm, meta = load("ch04_dbm_digits", DBM([HIDDEN, HIDDEN // 2]))
    log_z = ais_log_zs(dbm.as_rbm(), None, runs=2)
    bound = dbm.variational_bound(data["test"], float(log_z.mean()))
    return [results.Result("dbm", DATA, "test", "nll_bound", -bound.mean().item(),
                           config=f"{HIDDEN}-{HIDDEN // 2} hidden, pre-trained then mean field "
                           f"+ PCD, {meta['epochs']} epochs each; minus the mean-field bound, "
                           "log Z by AIS (2 runs)", seconds=meta["seconds"], seed=0)]


def timing_rows(data: dict[str, torch.Tensor]) -> list[results.Result]:
    """Seconds per epoch of dgm_lab's RBM and scikit-learn's BernoulliRBM, same settings.

    Both train single-threaded, so their CPU time (``time.process_time``) is the fair
    measure on a shared machine, where the wall time also counts other processes. Each side
    is timed ``TIMING_REPEATS`` times, interleaved, and the fastest run counts (the usual
    rule for timings: the others were slowed down by something else). Wall times of the same
    runs are in ``config``.
    """
    from sklearn.neural_network import BernoulliRBM

    x = data["train"]
    RBM(HIDDEN).fit(x, epochs=1, lr=0.05, momentum=0.0)  # warm-up: first calls cost extra

    def ours() -> None:
        RBM(HIDDEN).fit(x, epochs=TIMING_EPOCHS, lr=0.05, momentum=0.0, k=1, persistent=True)

    def theirs() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            BernoulliRBM(n_components=HIDDEN, learning_rate=0.05, batch_size=20,
                         n_iter=TIMING_EPOCHS, random_state=0).fit(x.numpy())

    cpu: dict[str, list[float]] = {"rbm-dgm_lab": [], "rbm-sklearn": []}
    wall: dict[str, list[float]] = {"rbm-dgm_lab": [], "rbm-sklearn": []}
    for _ in range(TIMING_REPEATS):
        for name, run in (("rbm-dgm_lab", ours), ("rbm-sklearn", theirs)):
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            cpu[name].append((time.process_time() - start_cpu) / TIMING_EPOCHS)
            wall[name].append((time.perf_counter() - start) / TIMING_EPOCHS)
    best = {name: min(times) for name, times in cpu.items()}
    ratio = best["rbm-dgm_lab"] / best["rbm-sklearn"]
    wall_ratio = min(wall["rbm-dgm_lab"]) / min(wall["rbm-sklearn"])
    print(f"RBM epoch, CPU seconds: dgm_lab {best['rbm-dgm_lab']:.4f}, scikit-learn "
          f"{best['rbm-sklearn']:.4f}: ratio {ratio:.2f} (wall-time ratio {wall_ratio:.2f})")
    config = (f"{HIDDEN} hidden, batch 20, PCD-1, float64, 1 thread, {len(x)} images; CPU "
              f"seconds, best of {TIMING_REPEATS}; ratio dgm_lab / sklearn = {ratio:.2f} "
              f"(wall {wall_ratio:.2f})")
    return [results.Result(name, DATA, "train", "seconds_per_epoch", value, config=config,
                           seconds=min(wall[name]) * TIMING_EPOCHS, seed=0)
            for name, value in best.items()]


PARTS = {"mixture": mixture_rows, "rbm": rbm_rows, "dbn": dbn_rows, "dbm": dbm_rows,
         "timing": timing_rows}


def main(argv: list[str] | None = None) -> None:
    """Run the parts named on the command line (default: all of them) and record their rows."""
    names = (sys.argv[1:] if argv is None else argv) or list(PARTS)
    unknown = sorted(set(names) - set(PARTS))
    if unknown:
        raise SystemExit(f"unknown parts {unknown}; known: {list(PARTS)}")
    torch.set_num_threads(1)
    data = digits()
    rows = []
    for part in (PARTS[name] for name in names):
        start = time.perf_counter()
        rows += part(data)
        print(f"{part.__name__}: {time.perf_counter() - start:.1f} s", flush=True)
    path = results.record(CHAPTER, rows)
    for r in rows:
        print(f"{r.model:18s} {r.metric:18s} {r.value:10.4f}  {r.config}")
    print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
