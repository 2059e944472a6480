"""Test figures of chapter 8's GANs, written to benchmarks/results/ch08.csv.

    python benchmarks/ch08_results.py            # everything missing (about an hour on one core)
    python benchmarks/ch08_results.py --redo     # recompute every row

The script is resumable: it works through a list of tasks in order of importance and records
each row as soon as it is measured, skipping rows (and checkpoints) that already exist, so an
interrupted run loses at most the task in flight. Seed 0 of each model is trained by
``benchmarks/make_checkpoints.py``'s :func:`make` (the committed checkpoint *is* the seed-0
model of the figures); seeds 1 and 2 of the toys are trained the same way without saving.

Rows (``dgm_lab.results.Result``):

* ``gan_<variant>`` on ``eight_gaussians`` / ``grid25``, split ``seed<s>``: metrics ``modes``
  (modes covered by 2,500 samples, :func:`dgm_lab.gan.toy_mode_coverage`) and
  ``high_quality`` (share of samples within 3 sigma of a mode), ``seed`` the run's seed;
  ``seconds`` the training time on one CPU thread.
* ``classifier`` on ``digits-float`` / ``mnist_5k-float``, split ``test``: ``accuracy``.
* ``cgan`` on ``digits-float``, split ``samples``: ``accuracy`` (the share of 1,000
  conditioned samples the digits classifier assigns to the class asked for) and
  ``accuracy_<k>`` for each class ``k``.
* ``dcgan`` on ``mnist_5k-float``, split ``samples``: ``unconfident_share`` (the share of
  1,000 samples the MNIST classifier labels with probability < 0.9; the same share of the
  real test images is the row ``classifier`` / ``test`` / ``unconfident_share``),
  ``classes_covered`` (classes among the confident labels), ``label_share_<k>`` (the share
  of samples labelled ``k``: mode dropping shows as a share near 0), ``seconds_per_epoch``
  (wall) and ``cpu_seconds_per_epoch`` (CPU time of this process) of the committed run.
* ``dcgan``, split ``timing``: ``seconds_per_epoch_cpu`` (wall time, one thread;
  ``cpu_seconds_per_epoch_cpu`` its CPU time) and, where CUDA is present,
  ``seconds_per_epoch_cuda`` (wall time), measured in the same run.
"""

from __future__ import annotations

import argparse
import fcntl
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import ch08_checkpoints as ch08  # noqa: E402
import make_checkpoints  # noqa: E402

from dgm_lab import results, seed_everything  # noqa: E402
from dgm_lab.gan import toy_generator, toy_mode_coverage  # noqa: E402

CHAPTER = 8
SEEDS = (0, 1, 2)
#: the best variant (its three seeds come first), the collapse, the plain GAN, WGAN-GP
FIRST = ("minibatch_discrimination", "fast_generator", "non_saturating", "wgan_gp")
#: the toys in order of importance
TOYS = ("eight_gaussians", "grid25")


def _record(rows: list[results.Result]) -> None:
    """``results.record`` under a file lock: several runs of this script may share the file."""
    with open(Path(tempfile.gettempdir()) / "dgm_lab_ch08_results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results.record(CHAPTER, rows)


def _have(model: str, data: str, split: str, metric: str) -> bool:
    try:
        results.lookup(CHAPTER, model, data, split, metric)
    except (FileNotFoundError, KeyError):
        return False
    return True


def _checkpoint(name: str, model: torch.nn.Module, redo: bool) -> tuple[torch.nn.Module, float]:
    """The seed-0 model of recipe ``name``: made now unless it is committed already."""
    have = (results.CHECKPOINT_DIR / f"{name}.json").is_file()
    if redo or not have:
        make_checkpoints.make(make_checkpoints.RECIPES[name])
    results.load_checkpoint(name, model)
    return model.eval(), float(results.checkpoint_meta(name)["seconds"])


def toy_task(toy: str, variant: str, seed: int, redo: bool) -> None:
    model = f"gan_{variant}"
    if not redo and _have(model, toy, f"seed{seed}", "high_quality"):
        return
    config = ch08.toy_config(toy, variant)
    cpu = None
    if seed == 0 and ch08.toy_recipe_name(toy, variant) in make_checkpoints.RECIPES:
        generator, seconds = _checkpoint(ch08.toy_recipe_name(toy, variant),
                                         toy_generator(config), redo)
    else:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            seed_everything(seed)
            generator = toy_generator(config)
            start, cpu = time.perf_counter(), time.process_time()
            ch08.train_toy(toy, variant, generator, ch08.toy_epochs(toy, variant), seed)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        finally:
            torch.set_num_threads(threads)
    cov = toy_mode_coverage(ch08.toy_samples(toy, variant, generator), toy)
    nets = f"hidden {config.hidden}"
    if config.g_hidden or config.g_layers:
        nets = (f"generator {config.g_layers or config.layers} x {config.g_hidden or config.hidden}"
                f", discriminator {config.layers} x {config.hidden}")
    if config.latent_dim != 2:
        nets += f", noise of {config.latent_dim} dimensions"
    if config.pack > 1:
        nets += f", packs of {config.pack}"
    if variant in ch08.FRESH_DATA:
        nets += f", fresh draws of the mixture in batches of {ch08.FRESH_DATA[variant]}"
    if config.r1:
        nets += f", R1 gamma {config.r1:g}"
    # CPU seconds (user + sys of this process, one thread) beside the wall-clock seconds,
    # which the shared machine inflates
    cpu_note = f"; {cpu:.0f} CPU s" if cpu is not None else ""
    about = dict(config=f"{ch08.toy_epochs(toy, variant)} epochs, {nets}{cpu_note}",
                 seconds=seconds, seed=seed)
    _record([
        results.Result(model, toy, f"seed{seed}", "modes", cov.modes, **about),
        results.Result(model, toy, f"seed{seed}", "high_quality", cov.high_quality, **about)])
    print(f"{toy:16s} {variant:26s} seed {seed}: {cov.modes:2d} modes, "
          f"{100 * cov.high_quality:5.1f} % high quality ({seconds:.0f} s)", flush=True)


def classifier_task(data: str, redo: bool) -> None:
    name = "digits-float" if data == "digits" else "mnist_5k-float"
    if not redo and _have("classifier", name, "test", "accuracy"):
        return
    model, seconds = _checkpoint(f"ch08_classifier_{data}",
                                 ch08.digit_classifier(8 if data == "digits" else 28), redo)
    x, y = ch08.digits("test") if data == "digits" else ch08.mnist_split()["test"]
    acc = ch08.accuracy(model, x, y)
    _record([results.Result("classifier", name, "test", "accuracy", acc,
                                            config=f"{ch08.CLASSIFIER_EPOCHS[data]} epochs",
                                            seconds=seconds, seed=0)])
    print(f"classifier {data}: test accuracy {100 * acc:.1f} %", flush=True)


def cgan_task(redo: bool) -> None:
    if not redo and _have("cgan", "digits-float", "samples", "accuracy"):
        return
    generator, seconds = _checkpoint("ch08_cgan_digits", ch08.cgan_generator(), redo)
    x, labels = ch08.cgan_samples(generator)
    classifier = ch08.load_classifier("digits")
    with torch.no_grad():
        hit = classifier(x).argmax(1) == labels
    about = dict(config=f"{ch08.CGAN_EPOCHS} epochs", seconds=seconds, seed=0)
    rows = [results.Result("cgan", "digits-float", "samples", "accuracy",
                           float(hit.double().mean()), **about)]
    rows += [results.Result("cgan", "digits-float", "samples", f"accuracy_{k}",
                            float(hit[labels == k].double().mean()), **about) for k in range(10)]
    _record(rows)
    print("cgan: " + ", ".join(f"{r.metric} {100 * r.value:.0f} %" for r in rows), flush=True)


def dcgan_task(redo: bool) -> None:
    if not redo and _have("dcgan", "mnist_5k-float", "samples", "unconfident_share"):
        return
    cpu = time.process_time()
    trained = redo or not (results.CHECKPOINT_DIR / "ch08_dcgan_mnist.json").is_file()
    generator, seconds = _checkpoint("ch08_dcgan_mnist", ch08.dcgan_generator(), redo)
    # CPU time (user + sys of this process, one thread) of the training and the scoring of
    # 1,000 samples; known only when the checkpoint was made by this run
    cpu = time.process_time() - cpu if trained else None
    probs = ch08.dcgan_predictions(generator)
    unconfident = probs.max(1).values < ch08.CONFIDENT
    labels = probs.argmax(1)
    classes = int(torch.unique(labels[~unconfident]).numel())
    # the same figure on the 1,000 real test images: the floor a perfect generator would reach
    x_test = ch08.mnist_split()["test"][0].reshape(-1, 1, 28, 28)
    with torch.no_grad():
        real = ch08.load_classifier("mnist")(x_test).softmax(1).max(1).values < ch08.CONFIDENT
    about = dict(config=f"{ch08.DCGAN_EPOCHS} epochs, batch {ch08.DCGAN_BATCH}",
                 seconds=seconds, seed=0)
    rows = [results.Result("dcgan", "mnist_5k-float", "samples", "unconfident_share",
                           float(unconfident.double().mean()), **about),
            results.Result("dcgan", "mnist_5k-float", "samples", "classes_covered", classes,
                           **about),
            results.Result("dcgan", "mnist_5k-float", "samples", "seconds_per_epoch",
                           seconds / ch08.DCGAN_EPOCHS, **about)]
    # the classifier's labels of the 1,000 samples: a class the generator dropped gets ~0
    rows += [results.Result("dcgan", "mnist_5k-float", "samples", f"label_share_{k}",
                            float((labels == k).double().mean()), **about) for k in range(10)]
    if cpu is not None:
        rows.append(results.Result("dcgan", "mnist_5k-float", "samples",
                                   "cpu_seconds_per_epoch", cpu / ch08.DCGAN_EPOCHS, **about))
    rows.append(results.Result("classifier", "mnist_5k-float", "test", "unconfident_share",
                               float(real.double().mean()), seed=0,
                               config=f"{ch08.CLASSIFIER_EPOCHS['mnist']} epochs"))
    _record(rows)
    share = {k: 100 * float((labels == k).double().mean()) for k in range(10)}
    print(f"dcgan: {100 * float(unconfident.double().mean()):.1f} % of samples labelled with "
          f"confidence < {ch08.CONFIDENT} (real test images: "
          f"{100 * float(real.double().mean()):.1f} %), {classes} classes among the confident "
          "labels; label shares " + " ".join(f"{k}:{v:.0f}%" for k, v in share.items()),
          flush=True)
    print(f"dcgan: trained {ch08.DCGAN_EPOCHS} epochs in {seconds:.0f} s wall, "
          f"{seconds / ch08.DCGAN_EPOCHS:.1f} s per epoch"
          + (f", {cpu / ch08.DCGAN_EPOCHS:.1f} CPU s per epoch" if cpu is not None else ""),
          flush=True)


#: epochs timed per device by :func:`dcgan_timing_task` (after one warm-up epoch on CUDA)
TIMING_EPOCHS = 2


def _seconds_per_epoch(device: str) -> tuple[float, float]:
    """Wall and CPU (this process) seconds per epoch of the DCGAN recipe on ``device``."""
    seed_everything(0)
    generator = ch08.dcgan_generator()
    if device == "cuda":
        ch08.train_dcgan(generator, 1, device="cuda")  # warm-up: kernels, allocator
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    ch08.train_dcgan(generator, TIMING_EPOCHS, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    return ((time.perf_counter() - wall) / TIMING_EPOCHS,
            (time.process_time() - cpu) / TIMING_EPOCHS)


def dcgan_timing_task(redo: bool) -> None:
    """The DCGAN's training time per epoch on one CPU thread, and on CUDA when present (a peer
    measured in the same run: their ratio is the speed-up)."""
    cuda = torch.cuda.is_available()
    if not redo and _have("dcgan", "mnist_5k-float", "timing", "seconds_per_epoch_cpu") and (
            not cuda or _have("dcgan", "mnist_5k-float", "timing", "seconds_per_epoch_cuda")):
        return
    config = f"{TIMING_EPOCHS} epochs of the recipe, batch {ch08.DCGAN_BATCH}"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu_wall, cpu_cpu = _seconds_per_epoch("cpu")
    finally:
        torch.set_num_threads(threads)
    about = dict(config=f"{config}, one thread", seconds=cpu_wall, seed=0)
    rows = [results.Result("dcgan", "mnist_5k-float", "timing", "seconds_per_epoch_cpu",
                           cpu_wall, **about),
            results.Result("dcgan", "mnist_5k-float", "timing", "cpu_seconds_per_epoch_cpu",
                           cpu_cpu, **about)]
    print(f"dcgan training on the CPU (one thread): {cpu_wall:.1f} s per epoch "
          f"({cpu_cpu:.1f} CPU s)", flush=True)
    if cuda:
        cuda_wall, _ = _seconds_per_epoch("cuda")
        rows.append(results.Result("dcgan", "mnist_5k-float", "timing", "seconds_per_epoch_cuda",
                                   cuda_wall, config=f"{config}, "
                                   f"{torch.cuda.get_device_name()}", seconds=cuda_wall,
                                   device="cuda", seed=0))
        print(f"dcgan training on CUDA ({torch.cuda.get_device_name()}): {cuda_wall:.2f} s per "
              f"epoch, {cpu_wall / cuda_wall:.1f} times faster than one CPU thread", flush=True)
    else:
        print("dcgan training on CUDA: no CUDA device on this machine", flush=True)
    _record(rows)


def tasks(redo: bool) -> list[tuple[str, Callable[[], None]]]:
    """Every task ``(name, run)``, most important first."""
    toys = ch08.TOY_VARIANTS

    def toy(t: str, v: str, s: int) -> tuple[str, Callable[[], None]]:
        return f"{t} {v} seed {s}", lambda: toy_task(t, v, s, redo)

    best, others = FIRST[0], [v for v in FIRST[1:] if v in toys["eight_gaussians"]]
    rest = [(t, v) for t in TOYS for v in toys[t] if v not in FIRST]
    out = [(f"classifier {d}", lambda d=d: classifier_task(d, redo)) for d in ("digits", "mnist")]
    out += [toy("eight_gaussians", best, s) for s in SEEDS]
    out += [toy("eight_gaussians", v, 0) for v in others]
    out += [("cgan", lambda: cgan_task(redo))]
    out += [toy("grid25", best, 0)]
    out += [("dcgan", lambda: dcgan_task(redo)),
            ("dcgan timing", lambda: dcgan_timing_task(redo))]
    out += [toy(t, v, 0) for t, v in rest]
    out += [toy("grid25", best, s) for s in SEEDS[1:]]
    out += [toy("grid25", v, 0) for v in others if v in toys["grid25"]]
    out += [toy(t, v, s) for t in TOYS for v in toys[t] if v != best for s in SEEDS[1:]]
    out += [toy(t, v, s) for (t, v), seeds in ch08.CHECK_SEEDS.items() for s in seeds]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redo", action="store_true", help="recompute rows that exist")
    parser.add_argument("--only", default="", help="run the tasks whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the tasks and exit")
    args = parser.parse_args(argv)
    for name, run in tasks(args.redo):
        if args.only in name:
            print(name) if args.list else run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
