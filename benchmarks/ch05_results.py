"""Chapter 5's trained autoencoders: their checkpoints and test figures (results/ch05.csv).

    python benchmarks/ch05_results.py --train   # train every model (about 5 min on one core),
                                                # save the checkpoints, record the figures
    python benchmarks/ch05_results.py           # recompute the figures from the checkpoints

The models are recipes of ``benchmarks/make_checkpoints.py`` (which imports ``recipes()``
from this file), so ``python benchmarks/make_checkpoints.py NAME`` also regenerates any one of
them, deterministically on one CPU thread. Data: the digits in [0, 1] (the fixed split of
``dgm_lab.data.load_digits``) and the blob-and-dot images of
``dgm_lab.autoencoders.blob_and_dot_images`` (3,000 training and 500 test images, seeds 0
and 1). Every model is an ``MLPAutoencoder`` with one hidden layer of 128 units unless named
otherwise, trained by Adam through ``dgm_lab.train.fit`` on the squared reconstruction error.

Figures (every one on the test split):

* reconstruction: mean squared error per pixel of the 2- and 8-dimensional codes, of a
  convolutional autoencoder with an 8-dimensional code, and of PCA with 8 components;
* not a generative model: the median distance to the nearest training digit of the
  8-dimensional autoencoder's reconstructions of the test digits, and of decoded codes drawn
  from N(0, I) and from a Gaussian fitted to the training codes;
* the code space: accuracy of 5-nearest-neighbour classification of the test codes among the
  training codes (labels only to measure; the autoencoder never saw them), 2-D autoencoder
  and 2-D PCA;
* denoising: Gaussian noise of standard deviation 0.4, clipped to [0, 1]; the per-pixel MSE
  to the clean test images of the noisy input and of the denoising autoencoder's output, and
  the reduction (the bar: at least 50 %);
* anomaly detection: for each digit class c, an autoencoder trained on the training digits of
  the nine other classes scores every test digit by its reconstruction error, by the mean
  distance of its code to the 5 nearest training codes, and by the Mahalanobis distance of its
  code to the training codes; the ROC AUC of each score with class c as the anomaly
  (``dgm_lab.autoencoders.roc_auc``, checked against scikit-learn's ``roc_auc_score``), and
  their means over the ten classes (the bar: at least 0.90 for the reconstruction error);
* the blob and the dot: the share of the dot's contrast and of the blob that the
  reconstruction keeps.

``tests/test_autoencoders.py`` checks the committed figures against the bars and recomputes a
subset from the committed checkpoints; ``tests/test_results.py`` checks that every checkpoint
reproduces its recorded figure.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import sys
from pathlib import Path

import torch
from sklearn.metrics import roc_auc_score

from dgm_lab import results
from dgm_lab.autoencoders import (
    ConvAutoencoder,
    MLPAutoencoder,
    blob_and_dot_images,
    corrupt,
    denoising_loss,
    knn_distance_score,
    mahalanobis_score,
    reconstruction_error,
    reconstruction_loss,
    roc_auc,
)
from dgm_lab.data import load_digits
from dgm_lab.density import Gaussian
from dgm_lab.pca import PCA
from dgm_lab.train import fit

CHAPTER = 5
SEED = 0
HIDDEN = (128,)
DAE_LEVEL = 0.4          # standard deviation of the Gaussian corruption (pixels in [0, 1])
TEST_NOISE_SEED = 123    # the fixed noise of the test figures
ANOMALY_CODE = 8
KNN = 5


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------

@functools.cache
def digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    return load_digits(split, form="float")


@functools.cache
def blob_and_dot(split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n, seed = {"train": (3000, 0), "test": (500, 1)}[split]
    return blob_and_dot_images(n, size=16, generator=torch.Generator().manual_seed(seed))


def without(held_out: int, split: str = "train") -> torch.Tensor:
    x, y = digits(split)
    return x[y != held_out]


def noisy_test_digits() -> torch.Tensor:
    return corrupt(digits("test")[0], DAE_LEVEL,
                   generator=torch.Generator().manual_seed(TEST_NOISE_SEED))


# --------------------------------------------------------------------------------------
# training recipes (benchmarks/make_checkpoints.py builds Recipe objects from them)
# --------------------------------------------------------------------------------------

def mse(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Mean squared error per pixel of the reconstructions of ``x``."""
    return reconstruction_error(model, x).mean().item() / x[0].numel()


def denoising_figures(model: torch.nn.Module) -> tuple[float, float]:
    """Per-pixel MSE to the clean test digits of the noisy input and of the model's output."""
    clean, noisy = digits("test")[0], noisy_test_digits()
    with torch.no_grad():
        denoised = model.eval()(noisy)
    return (noisy - clean).square().mean().item(), (denoised - clean).square().mean().item()


def _trainer(data, *, loss=reconstruction_loss, lr: float = 1e-3, batch_size: int = 64):
    def train(model: torch.nn.Module, epochs: int):
        return fit(model, loss, data(), epochs=epochs, batch_size=batch_size, lr=lr, seed=SEED,
                   device="cpu", progress=False)
    return train


def _dae_loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return denoising_loss(model, x, DAE_LEVEL)  # fresh noise for every batch


def recipes() -> list[dict]:
    """The keyword arguments of one ``make_checkpoints.Recipe`` per model of the chapter."""
    digits_about = {"data": "digits-float", "split": "test", "unit": "MSE per pixel"}
    out = [
        dict(name="ch05_ae_code2", build=lambda: MLPAutoencoder(64, 2, HIDDEN),
             train=_trainer(lambda: digits("train")[0]), epochs=200,
             figure=lambda m: mse(m, digits("test")[0]), about=digits_about),
        dict(name="ch05_ae_code8", build=lambda: MLPAutoencoder(64, 8, HIDDEN),
             train=_trainer(lambda: digits("train")[0]), epochs=100,
             figure=lambda m: mse(m, digits("test")[0]), about=digits_about),
        dict(name="ch05_conv_ae_code8", build=lambda: ConvAutoencoder(8, 8, (16, 32)),
             train=_trainer(lambda: digits("train")[0], lr=2e-3), epochs=60,
             figure=lambda m: mse(m, digits("test")[0]), about=digits_about),
        dict(name="ch05_dae", build=lambda: MLPAutoencoder(64, 16, HIDDEN),
             train=_trainer(lambda: digits("train")[0], loss=_dae_loss), epochs=100,
             figure=lambda m: denoising_figures(m)[1],
             about={**digits_about, "unit": f"MSE per pixel to the clean digits, noise "
                                            f"sigma={DAE_LEVEL}, seed {TEST_NOISE_SEED}"}),
        dict(name="ch05_blob_dot_ae", build=lambda: MLPAutoencoder(256, 8, HIDDEN),
             train=_trainer(lambda: blob_and_dot("train")[0]), epochs=40,
             figure=lambda m: mse(m, blob_and_dot("test")[0]),
             about={"data": "blob-and-dot 16x16", "split": "test", "unit": "MSE per pixel"}),
    ]
    for c in range(10):
        out.append(dict(
            name=f"ch05_ae_without_{c}", build=lambda: MLPAutoencoder(64, ANOMALY_CODE, HIDDEN),
            train=_trainer(functools.partial(without, c)), epochs=100,
            figure=functools.partial(lambda m, c: mse(m, without(c, "test")), c=c),
            about={**digits_about, "unit": f"MSE per pixel on the test digits other than {c}",
                   "held_out_class": c}))
    for kw in out:
        kw.setdefault("metric", "mse")
        kw.setdefault("seed", SEED)
    return out


RECIPES = {kw["name"]: kw for kw in recipes()}


def load_model(name: str) -> torch.nn.Module:
    """The committed checkpoint ``name``, loaded into a fresh model and checked against its
    recorded figure."""
    kw = RECIPES[name]
    model = kw["build"]()
    results.load_checkpoint(name, model, figure=kw["figure"])
    return model.eval()


# --------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------

def anomaly_scores(model: torch.nn.Module, held_out: int, kind: str = "reconstruction"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Anomaly scores of every test digit and the labels (1 = the held-out class)."""
    x, y = digits("test")
    labels = (y == held_out).long()
    if kind == "reconstruction":
        return reconstruction_error(model, x), labels
    with torch.no_grad():
        codes, reference = model.encode(x), model.encode(without(held_out))
    if kind == "code-knn":
        return knn_distance_score(codes, reference, KNN), labels
    return mahalanobis_score(codes, reference), labels


def knn_accuracy(train_codes: torch.Tensor, test_codes: torch.Tensor, k: int = KNN) -> float:
    """Accuracy of k-nearest-neighbour voting among the training codes (labels only here)."""
    y_train, y_test = digits("train")[1], digits("test")[1]
    nearest = torch.cdist(test_codes, train_codes).topk(k, largest=False).indices
    votes = torch.nn.functional.one_hot(y_train[nearest], 10).sum(1)
    return (votes.argmax(1) == y_test).float().mean().item()


def dot_and_blob_kept(model: torch.nn.Module) -> tuple[float, float]:
    """Share of the dot's contrast over the blob that the reconstruction keeps (1 = all), and
    the share of the blob's squared norm it gets right (1 - relative squared error)."""
    images, blobs, dots = blob_and_dot("test")
    with torch.no_grad():
        out = model.eval()(images)
    contrast = ((out[dots] - blobs[dots]) / (1 - blobs[dots])).mean().item()
    blob_error = ((out - blobs).square() * ~dots).sum(1) / blobs.square().sum(1)
    return contrast, 1 - blob_error.mean().item()


def prior_decoding_figures(model: torch.nn.Module, n: int = 500, seed: int = 0
                           ) -> dict[str, float]:
    """Median distance to the nearest training digit of: reconstructions of the test digits,
    decoded codes drawn from N(0, I), and decoded codes drawn from a Gaussian fitted to the
    training codes. An autoencoder is not a generative model: its codes follow no known
    distribution, so decoding codes from a simple prior lands away from the digits."""
    x_train, x_test = digits("train")[0], digits("test")[0]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        codes = model.encode(x_train)
        q = codes.shape[1]
        fitted = Gaussian().fit(codes, reg_covar=1e-6)
        images = {"reconstructions": model(x_test),
                  "prior-standard": model.decode(torch.randn(n, q, generator=gen)),
                  "prior-fitted": model.decode(fitted.sample(n, generator=gen))}
    return {k: torch.cdist(v, x_train).min(1).values.median().item() for k, v in images.items()}


def _row(model: str, metric: str, value: float, config: str, meta: dict | None = None,
         data: str = "digits-float") -> results.Result:
    return results.Result(model, data, "test", metric, float(value), config=config,
                          seconds=float(meta["seconds"]) if meta else 0.0,
                          seed=SEED if meta else -1)


def rows() -> list[results.Result]:
    meta = {name: results.checkpoint_meta(name) for name in RECIPES}
    x_train, x_test = digits("train")[0], digits("test")[0]
    out = []
    for name, label, config in (("ch05_ae_code2", "ae-code2", "MLP 64-128-2, 200 epochs"),
                                ("ch05_ae_code8", "ae-code8", "MLP 64-128-8, 100 epochs"),
                                ("ch05_conv_ae_code8", "conv-ae-code8",
                                 "conv 16-32 channels, code 8, transposed convs, 60 epochs")):
        out.append(_row(label, "mse", mse(load_model(name), x_test), config, meta[name]))
    pca8 = PCA(8).fit(x_train)
    out.append(_row("pca-code8", "mse", mse(pca8, x_test), "8 components"))
    ae2 = load_model("ch05_ae_code2")
    with torch.no_grad():
        out.append(_row("ae-code2", "knn5-accuracy",
                        knn_accuracy(ae2.encode(x_train), ae2.encode(x_test)),
                        "5 nearest training codes", meta["ch05_ae_code2"]))
    for kind, value in prior_decoding_figures(load_model("ch05_ae_code8")).items():
        out.append(_row("ae-code8", f"nn-distance-{kind}", value,
                        "median distance to the nearest training digit", meta["ch05_ae_code8"]))
    pca2 = PCA(2).fit(x_train)
    out.append(_row("pca-code2", "knn5-accuracy",
                    knn_accuracy(pca2.encode(x_train), pca2.encode(x_test)),
                    "5 nearest training codes"))
    noisy, denoised = denoising_figures(load_model("ch05_dae"))
    config = f"MLP 64-128-16, sigma={DAE_LEVEL} clipped, 100 epochs"
    out += [_row("dae", "mse-noisy", noisy, config, meta["ch05_dae"]),
            _row("dae", "mse-denoised", denoised, config, meta["ch05_dae"]),
            _row("dae", "mse-reduction", 1 - denoised / noisy, config, meta["ch05_dae"])]
    aucs: dict[str, list[float]] = {}
    for c in range(10):
        name = f"ch05_ae_without_{c}"
        model = load_model(name)
        for kind in ("reconstruction", "code-knn", "code-mahalanobis"):
            scores, labels = anomaly_scores(model, c, kind)
            auc = roc_auc(scores, labels)
            oracle = roc_auc_score(labels.numpy(), scores.numpy())
            if abs(auc - oracle) > 1e-9:
                raise AssertionError(f"roc_auc {auc} != scikit-learn {oracle} ({name}, {kind})")
            aucs.setdefault(kind, []).append(auc)
            out.append(_row(f"ae-without-{c}", f"auc-{kind}", auc,
                            f"MLP 64-128-{ANOMALY_CODE}, trained without class {c}", meta[name]))
    for kind, values in aucs.items():
        out.append(_row("ae-anomaly-mean", f"auc-{kind}", sum(values) / len(values),
                        "mean over the ten held-out classes"))
    contrast, blob = dot_and_blob_kept(load_model("ch05_blob_dot_ae"))
    config = "MLP 256-128-8, 40 epochs, 3000 images"
    out += [_row("blob-dot-ae", "dot-contrast-kept", contrast, config,
                 meta["ch05_blob_dot_ae"], data="blob-and-dot"),
            _row("blob-dot-ae", "blob-kept", blob, config, meta["ch05_blob_dot_ae"],
                 data="blob-and-dot")]
    return out


def _make_checkpoints():
    path = Path(__file__).with_name("make_checkpoints.py")
    spec = importlib.util.spec_from_file_location("make_checkpoints", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_checkpoints"] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true",
                        help="train every model and save its checkpoint first")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the same figures on every machine and thread count
    if args.train:
        make = _make_checkpoints()
        for name in RECIPES:
            meta = make.make(make.RECIPES[name])
            print(f"{name}: {meta['metric']} = {meta['value']:.6g} ({meta['seconds']} s)",
                  flush=True)
    out = rows()
    path = results.record(CHAPTER, out)
    for r in out:
        print(f"{r.model:18s} {r.data:13s} {r.metric:22s} {r.value:9.4f}  {r.config}")
    print(f"wrote {len(out)} rows to {path}")


if __name__ == "__main__":
    main()
