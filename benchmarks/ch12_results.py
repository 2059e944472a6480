"""Chapter 12's adversarial autoencoders on the digits: recipes and test figures.

    python benchmarks/make_checkpoints.py ch12_aae_digits ch12_aae_digits_without_0 \
        ch12_vae_eight_gaussians              # trains them (minutes, 1 core)
    python benchmarks/ch12_results.py       # scores them into benchmarks/results/ch12.csv

Two adversarial autoencoders (``dgm_lab.vae.AdversarialAutoencoder``) of the 17-level 8x8
digits, with a 2-D code, a beta-binomial decoder (as chapter 7's VAE), MLPs of two hidden
layers of 128 units, and the prior the AAE paper draws in its figure 4: ten Gaussians of
standard deviation 0.5 evenly spaced on a circle of radius 4. Each is trained for 200 epochs
of batches of 64 (``dgm_lab.vae.aae_losses``: reconstruction, discriminator and encoder
updates on every batch; one CPU thread), with three choices that make the codes of
*held-out* images follow the prior (a first version without them, 300 epochs at an
adversarial learning rate of 2e-4, matched the training codes but put a third of the test
codes further than 3 standard deviations from every component, and its MMD test gave
p = 0.03 on the validation split):

* the adversarial updates at the reconstruction's learning rate, 1e-3 (not 2e-4), so that
  the encoder is not pulled five times harder towards rebuilding than towards the prior;
* a denoising encoder: in training it sees each image plus Gaussian noise of standard
  deviation 2 levels, and the decoder rebuilds the clean image. The discriminator then
  judges the codes of a neighbourhood of each training image, and unseen digits, which lie
  in such neighbourhoods, are coded like them (in trial runs it cut the share of
  validation codes off the components from about 10 % to about 3 %);
* every learning rate decays along a cosine to 5 % over the run, so the game settles.

* ``ch12_aae_digits`` on the whole training split;
* ``ch12_aae_digits_without_0`` on the training split without the zeros, for anomaly
  detection: do the test zeros stand out among the other test digits?
* ``ch12_aae_digits_labels`` on the whole training split, with the discriminator told the
  class (Makhzani et al., 2016, section 2.3, the setting of their figure 4): it judges a code
  together with the one-hot class of its image, and a prior draw together with its component,
  so the encoder must code the digits of class k like draws of component k. The plain AAE's
  codes share out among the components unevenly (6.9 % to 11.6 % of the training codes), and
  a narrow kernel sees that; the labels fix the shares. Its adversarial learning rate is
  3e-3, three times the reconstruction's: trial runs at 1e-3 (seeds 0 and 1) left 6.7 % and
  8.1 % of the validation codes off the components (3.6 % at 3e-3), and at 1e-3 without the
  input noise the training codes matched the prior at both widths but 11.7 % of the
  validation codes fell off the components (validation figures only; the test split played
  no part in these choices).

The adversarial game ends differently from one initialisation to the next, so each model's
seed (``SEEDS``, the recipe's seed: it sets the initial weights) was chosen among 0, 1 and 2
on the *validation* figures only (MMD p-values at both widths, share of codes off the
components, and for the full model the share of confident samples); the test figures were
computed once, after the choice. Validation figures of the candidates (p median width /
p width 0.5 / share off the components):

* full model: seed 0 0.095 / 0.810 / 3.3 % (chosen), seed 1 0.581 / 0.137 / 5.0 %, seed 2
  0.249 / 0.039 / 5.3 % (seeds 1 and 2 also decode fewer confident digits: 71 % and 76 %
  against 78 %);
* without the zeros: seed 0 0.037 / 0.113 / 3.4 %, seed 1 0.626 / 0.119 / 3.1 %, seed 2
  0.886 / 0.140 / 1.5 % (chosen);
* with labels, chosen by the median p-value at width 0.5 against the 20 prior draws of
  ``DRAW_SEEDS`` on the validation codes (median p median width / median p width 0.5 / share
  off the components): seed 0 0.769 / 0.461 / 3.6 % (chosen), seed 1 0.709 / 0.431 /
  4.5 %, seed 2 0.690 / 0.308 / 3.9 %.

Other recipes tried on the full model (seed 0 of the experiment, validation figures) did no
better: input noise 3 or 4 levels (p 0.003 and 0.031), the reconstruction step on every
second batch only (p 0.076, samples worse), 100 epochs (6.4 % off the components), 400 epochs
(3.3 % off, p 0.060 with the recipe's initialisation), one-pixel shifts of the images in the
adversarial steps (the components' shares go uneven, p_narrow 0.001). The codes that leave the
components are atypical held-out digits that the encoder puts *inside* the ring, between
classes; the training codes are off the components as rarely as prior draws (0.6 %).

The third checkpoint, ``ch12_vae_eight_gaussians``, is the VAE the chapter sets beside
chapter 8's GANs on the eight-Gaussians toy: a 2-D code, a Gaussian decoder with a learned
variance, MLPs of two hidden layers of 64 units, 200 epochs of batches of 128 of the 2,000
training points, Adam with learning rate 3e-3, the KL weight warmed up from 0 to 1 over the
first 30 % of training (without warm-up the decoder learns to ignore the code and the samples
are one broad blob). Its figure is the test NLL by the importance-weighted bound with k = 100,
in float64. The results file gets its modes and its share of samples in low-density regions,
scored as chapter 8 scores its GANs (``dgm_lab.gan.toy_mode_coverage``, 2,500 samples, seed
0), and the same for the GANs of chapter 8's committed checkpoints.

The AAE checkpoints' figure is the squared MMD between the codes of the test images (of the
classes the model was trained on) and as many prior draws (seed 1), with the median-distance
bandwidth, in float64. Lower is better; one epoch of training scores far worse.

The results file gets, per model:

* ``mmd2`` and ``mmd-p-value`` (validation and test split): the two-sample statistic and the
  p-value of its permutation test (1,000 relabellings, seed 0): do the codes follow the prior?
  The median bandwidth (about the ring's radius) sees the ring's size and how the codes share
  out among the components, but hardly the gaps between them: at these sample sizes it does
  not notice half of the draws moved into the gaps (``tests/test_unified.py`` checks that).
  So ``mmd-p-value-narrow`` repeats the test with the kernel as narrow as the components
  (bandwidth 0.5), which does;
* ``mmd-p-median-of-draws`` and ``mmd-reject-share-of-draws`` (training, validation and
  test split; ``-narrow`` at bandwidth 0.5): the same tests against 20 independent draws of
  the prior (``DRAW_SEEDS``), the median p-value and the share of draws with p < 0.05. One
  draw's p-value is random: if the codes follow the prior, the p-values are uniform, median
  0.5 and 5 % of them below 0.05. Split ``train-noisy``: the codes of the training images
  plus one draw of the input noise, the inputs of the adversarial game;
* ``outside-3std-share`` (validation and test split): the share of codes further than 3
  standard deviations from every component of the prior, beside the same share of 100,000
  prior draws (model ``ring-prior``): do the codes fill the gaps between the components?
* ``recon-nll``: the reconstruction term :math:`-\\log p(x \\mid f(x))`, nats per image;
* ``digit-confident-share``: the share of 1,000 decoded prior draws that chapter 8's digits
  classifier labels with probability >= 0.9, beside the same share for the real test digits
  (model ``test-digits``): are the samples digits?
* for the model with labels, ``code-class-accuracy`` (validation and test split: the share
  of codes nearest the component of their class) and ``component-class-share`` (the share of
  1,000 decoded prior draws that the classifier labels as the class of their component);
* for the model without the zeros, ``auc-reconstruction`` and ``auc-code-prior``: the area
  under the ROC curve of two anomaly scores, the reconstruction NLL and :math:`-\\log p(f(x))`,
  separating the 36 test zeros from the other 324 test digits.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch
from sklearn.metrics import roc_auc_score

from dgm_lab import results
from dgm_lab.data import load_digits, load_toy
from dgm_lab.gan import toy_generator, toy_mode_coverage
from dgm_lab.train import fit
from dgm_lab.vae import VAE, AdversarialAutoencoder, GaussianMixturePrior, aae_losses, mmd_test

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ch08_checkpoints as ch08  # noqa: E402  (chapter 8's digits classifier)

CHAPTER = 12
HIDDEN, EPOCHS, BATCH = 128, 200, 64
# the adversarial learning rate, as the reconstruction's, and the encoder's input noise in
# levels (of 0..16): see the module docstring
LR_ADVERSARIAL, INPUT_NOISE = 1e-3, 2.0
PRIOR = {"components": 10, "radius": 4.0, "std": 0.5}
HELD_OUT = 0  # the anomaly class of the second model
LABELS = "labels"  # the third model: its discriminator is told each image's class
#: the committed AAEs, by variant: None the plain one, HELD_OUT the one trained without that
#: class, LABELS the one whose discriminator sees labels (module docstring)
NAMES = {None: "ch12_aae_digits", HELD_OUT: f"ch12_aae_digits_without_{HELD_OUT}",
         LABELS: "ch12_aae_digits_labels"}
MODELS = {None: "aae", HELD_OUT: f"aae-without-{HELD_OUT}", LABELS: "aae-labels"}  # in results
SEEDS = {None: 0, HELD_OUT: 2, LABELS: 0}  # chosen on the validation figures (module docstring)
LR_ADVERSARIAL_LABELS = 3e-3  # the labelled AAE's adversarial learning rate
NOISE_SEED = 0  # the input noise of the "train-noisy" codes
PRIOR_SEED, PERMUTATION_SEED, PERMUTATIONS = 1, 0, 1000
PRIOR_DRAWS = 100_000  # for the prior's own share of draws off its components
#: the two-sample tests repeated against the draws of these seeds: one draw's p-value is itself
#: random, and under "the codes follow the prior" the p-values are uniform (median 0.5, 5 % of
#: them below 0.05), which the many draws show or refute
DRAW_SEEDS = range(1, 21)
SAMPLES, SAMPLE_SEED, CONFIDENT = 1000, 2, 0.9
CONFIG = (f"2-D code, ring of {PRIOR['components']} Gaussians (radius {PRIOR['radius']}, std "
          f"{PRIOR['std']}), MLPs 2x{HIDDEN}, beta-binomial decoder, {EPOCHS} epochs, adversarial "
          f"lr {LR_ADVERSARIAL:g}, input noise {INPUT_NOISE:g} levels, cosine decay")


def digits(split: str, without: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The 17-level digits of ``split`` and their labels, without class ``without``."""
    x, y = load_digits(split, form="levels")
    keep = torch.ones_like(y, dtype=torch.bool) if without is None else y != without
    return x[keep], y[keep]


def held_out(variant: int | str | None) -> int | None:
    """The class a variant was trained without (None: it saw every class)."""
    return variant if isinstance(variant, int) else None


def build_aae(variant: int | str | None = None) -> AdversarialAutoencoder:
    """An untrained AAE, its input standardised on the training data it will see."""
    prior = GaussianMixturePrior.ring(**PRIOR)
    classes = PRIOR["components"] if variant == LABELS else 0
    aae = AdversarialAutoencoder(64, prior, HIDDEN, likelihood="beta_binomial", classes=classes)
    return aae.standardize(digits("train", held_out(variant))[0])


def train_aae(aae: AdversarialAutoencoder, epochs: int, variant: int | str | None = None):
    rate = LR_ADVERSARIAL_LABELS if aae.classes else LR_ADVERSARIAL
    losses = aae_losses(aae, lr_adversarial=rate, input_noise=INPUT_NOISE, decay_epochs=epochs)
    x, y = digits("train", held_out(variant))
    return fit(aae, losses, (x, y) if aae.classes else x, epochs=epochs,
               batch_size=BATCH, seed=0, device="cpu", progress=False)


def encode(aae: AdversarialAutoencoder, split: str, variant: int | str | None = None
           ) -> torch.Tensor:
    """Float64 codes of the ``split`` digits of the classes the variant saw in training.
    ``split="train-noisy"``: of the training digits plus one draw of the training's input
    noise (seed :data:`NOISE_SEED`), the inputs whose codes the adversarial game matched."""
    model = copy.deepcopy(aae).double()
    x = digits(split.removesuffix("-noisy"), held_out(variant))[0].double()
    with torch.no_grad():
        if not split.endswith("-noisy"):
            return model.encode(x)
        g = torch.Generator().manual_seed(NOISE_SEED)
        # a noisy image is no valid 0..16 level: the encoder network itself, as in training
        return model.autoencoder._encode(x + INPUT_NOISE * torch.randn(
            x.shape, generator=g, dtype=torch.float64))[0]


def codes_and_prior(aae: AdversarialAutoencoder, split: str, variant: int | str | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 codes of ``split`` (classes seen in training) and as many prior draws."""
    codes = encode(aae, split, variant)
    prior = copy.deepcopy(aae.prior).double()
    return codes, prior.sample(len(codes), torch.Generator().manual_seed(PRIOR_SEED))


def p_values_over_draws(aae: AdversarialAutoencoder, split: str,
                        variant: int | str | None = None, bandwidth: float | None = None
                        ) -> torch.Tensor:
    """The permutation test's p-value of the ``split`` codes against as many prior draws, for
    each draw of :data:`DRAW_SEEDS` (median width unless ``bandwidth``), float64."""
    codes = encode(aae, split, variant)
    prior = copy.deepcopy(aae.prior).double()
    out = []
    for seed in DRAW_SEEDS:
        draws = prior.sample(len(codes), torch.Generator().manual_seed(seed))
        out.append(mmd_test(codes, draws, permutations=PERMUTATIONS, bandwidth=bandwidth,
                            generator=torch.Generator().manual_seed(PERMUTATION_SEED))[1])
    return torch.tensor(out, dtype=torch.float64)


def mmd_figure(aae: AdversarialAutoencoder, variant: int | str | None = None) -> float:
    """The checkpoints' figure: squared MMD of test codes against prior draws (lower is better)."""
    from dgm_lab.vae import mmd_squared

    return float(mmd_squared(*codes_and_prior(aae, "test", variant)))


def outside_share(z: torch.Tensor, prior: GaussianMixturePrior, stds: float = 3.0) -> float:
    """The share of the rows of ``z`` further than ``stds`` standard deviations from every
    component mean of ``prior``: codes in the gaps between the components or off the ring."""
    distance = torch.cdist(z.double(), prior.means_.double()).min(1).values
    return float((distance > stds * prior.std_.double()).double().mean())


def load_aae(variant: int | str | None = None) -> AdversarialAutoencoder:
    """The committed checkpoint of a variant (:data:`NAMES`) in a fresh AAE, evaluation mode."""
    aae = build_aae(variant)
    results.load_checkpoint(NAMES[variant], aae)
    return aae.eval()


def samples_by_component(aae: AdversarialAutoencoder, n: int = SAMPLES
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded prior draws on the [0, 1] scale of the float digits (expected level / 16), and
    the component each was drawn from."""
    z, j = aae.prior.sample_components(n, torch.Generator().manual_seed(SAMPLE_SEED))
    with torch.no_grad():
        return aae.decode(z) / 16, j


def samples(aae: AdversarialAutoencoder, n: int = SAMPLES) -> torch.Tensor:
    """Decoded prior draws on the [0, 1] scale of the float digits (expected level / 16)."""
    return samples_by_component(aae, n)[0]


def classify(x: torch.Tensor) -> torch.Tensor:
    """Chapter 8's digits classifier's probabilities ``[n, 10]`` of images in [0, 1]."""
    with torch.no_grad():
        return torch.softmax(ch08.load_classifier("digits")(x.float()), 1)


def _confident(probabilities: torch.Tensor) -> float:
    return float((probabilities.max(1).values >= CONFIDENT).double().mean())


def confident_share(x: torch.Tensor) -> float:
    """The share of images in [0, 1] that chapter 8's classifier labels with prob >= 0.9."""
    return _confident(classify(x))


def anomaly_scores(aae: AdversarialAutoencoder, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Two scores, higher = more anomalous: reconstruction NLL and -log p(f(x))."""
    with torch.no_grad():
        return {"reconstruction": aae.reconstruction_nll(x), "code-prior": -aae.code_log_prior(x)}


def anomaly_aucs(aae: AdversarialAutoencoder) -> dict[str, float]:
    """AUC of each score for "test image of the held-out class" against the other classes."""
    x, y = load_digits("test", form="levels")
    is_anomaly = (y == HELD_OUT).numpy()
    return {name: float(roc_auc_score(is_anomaly, score.numpy()))
            for name, score in anomaly_scores(aae, x).items()}


def rows(variant: int | str | None = None) -> list[results.Result]:
    aae = load_aae(variant)
    meta = results.checkpoint_meta(NAMES[variant])
    config = CONFIG + ("" if held_out(variant) is None else
                       f", trained without class {variant}") + (
        f", seed {SEEDS[variant]} of 0-2 chosen on validation")
    if variant == LABELS:
        config = config.replace(f"adversarial lr {LR_ADVERSARIAL:g}",
                                f"adversarial lr {LR_ADVERSARIAL_LABELS:g}")
        config += ", discriminator told the class (of an image; the component of a prior draw)"

    def row(split: str, metric: str, value: float, extra: str = "") -> results.Result:
        return results.Result(MODELS[variant], "digits-levels", split, metric, value,
                              config=config + extra, seconds=meta["seconds"], device="cpu",
                              seed=SEEDS[variant])

    out = []
    for split in ("val", "test"):
        codes, prior = codes_and_prior(aae, split, variant)
        mmd2, p = mmd_test(codes, prior, permutations=PERMUTATIONS,
                           generator=torch.Generator().manual_seed(PERMUTATION_SEED))
        test = f"; codes vs {len(codes)} prior draws, median bandwidth, {PERMUTATIONS} perms"
        std = float(aae.prior.std_)
        _, p_narrow = mmd_test(codes, prior, permutations=PERMUTATIONS, bandwidth=std,
                               generator=torch.Generator().manual_seed(PERMUTATION_SEED))
        narrow = test.replace("median bandwidth", f"bandwidth {std:g} (the components' std)")
        out += [row(split, "mmd2", mmd2, test), row(split, "mmd-p-value", p, test),
                row(split, "mmd-p-value-narrow", p_narrow, narrow),
                row(split, "outside-3std-share", outside_share(codes, aae.prior),
                    "; codes further than 3 std from every component")]

        with torch.no_grad():
            nll = aae.reconstruction_nll(digits(split, held_out(variant))[0]).mean().item()
        out.append(row(split, "recon-nll", nll))
        if variant == LABELS:
            nearest = torch.cdist(codes, prior.new_tensor(aae.prior.means_)).argmin(1)
            out.append(row(split, "code-class-accuracy",
                           float((nearest == digits(split)[1]).double().mean()),
                           "; share of codes nearest the component of their class"))
    # the tests again against many prior draws, on the training codes too (what the
    # adversarial game matched: the training images plus the input noise) beside the held-out
    for split in ("train", "train-noisy", "val", "test"):
        for suffix, width in (("", None), ("-narrow", float(aae.prior.std_))):
            ps = p_values_over_draws(aae, split, variant, width)
            about = (f"; p-values against {len(ps)} prior draws (seeds {DRAW_SEEDS.start}-"
                     f"{DRAW_SEEDS.stop - 1}), {PERMUTATIONS} perms each, "
                     + ("median bandwidth" if width is None else f"bandwidth {width:g}"))
            out += [row(split, f"mmd-p-median-of-draws{suffix}", float(ps.median()), about),
                    row(split, f"mmd-reject-share-of-draws{suffix}",
                        float((ps < 0.05).double().mean()), about + "; share with p < 0.05")]
    if held_out(variant) is None:  # are the decoded prior draws digits (of their component)?
        images, component = samples_by_component(aae)
        probabilities = classify(images)
        about = f"; {SAMPLES} decoded prior draws, ch08 classifier"
        out.append(row("test", "digit-confident-share", _confident(probabilities),
                       about + f", p >= {CONFIDENT}"))
    if variant == LABELS:
        out.append(row("test", "component-class-share",
                       float((probabilities.argmax(1) == component).double().mean()),
                       about + "'s label = component"))
    elif variant is None:
        real = load_digits("test", form="float")[0]
        out.append(results.Result("test-digits", "digits-float", "test",
                                  "digit-confident-share", confident_share(real),
                                  config=f"the real test digits, ch08 classifier, p >= "
                                         f"{CONFIDENT}", seconds=0, device="cpu", seed=0))
        draws = aae.prior.sample(PRIOR_DRAWS, torch.Generator().manual_seed(PRIOR_SEED))
        out.append(results.Result("ring-prior", "prior", "samples", "outside-3std-share",
                                  outside_share(draws, aae.prior),
                                  config=f"{PRIOR_DRAWS} draws of the AAE's prior, further than 3 "
                                         "std from every component", seconds=0, device="cpu",
                                  seed=PRIOR_SEED))
    else:
        for name, auc in anomaly_aucs(aae).items():
            out.append(row("test", f"auc-{name}", auc,
                           "; test zeros against the other test digits"))
    return out


TOY = "eight_gaussians"
TOY_VAE = {"hidden": 64, "epochs": 200, "lr": 3e-3, "warmup": 0.3, "batch": 128}
TOY_GANS = ("non_saturating", "fast_generator")  # chapter 8's plain GAN and its collapse


def build_toy_vae() -> VAE:
    return VAE(2, latent=2, hidden=TOY_VAE["hidden"], likelihood="gaussian", eval_samples=100)


def train_toy_vae(vae: VAE, epochs: int) -> VAE:
    return vae.fit(load_toy(TOY, "train"), epochs=epochs, batch_size=TOY_VAE["batch"],
                   lr=TOY_VAE["lr"], warmup=TOY_VAE["warmup"], seed=0)


def toy_vae_nll(vae: VAE) -> float:
    """Test NLL (IWAE, k = 100) in float64, nats per point."""
    return -copy.deepcopy(vae).double().log_prob(load_toy(TOY, "test").double()).mean().item()


def load_toy_vae() -> VAE:
    vae = build_toy_vae()
    results.load_checkpoint("ch12_vae_eight_gaussians", vae)
    return vae.eval()


def toy_samples(model: str) -> torch.Tensor:
    """The 2,500 evaluation samples of "vae" or of a chapter 8 GAN variant (fixed seed 0)."""
    if model == "vae":
        return load_toy_vae().sample(ch08.EVAL_SAMPLES,
                                     torch.Generator().manual_seed(ch08.EVAL_SEED))
    generator = toy_generator(ch08.toy_config(TOY, model))
    results.load_checkpoint(ch08.toy_recipe_name(TOY, model), generator)
    return ch08.toy_samples(TOY, model, generator.eval())


def toy_rows() -> list[results.Result]:
    out = []
    for model in ("vae", *TOY_GANS):
        cov = toy_mode_coverage(toy_samples(model), TOY)
        name = "vae" if model == "vae" else f"gan_{model}"
        config = ("ch12_vae_eight_gaussians" if model == "vae"
                  else ch08.toy_recipe_name(TOY, model)) + f"; {ch08.EVAL_SAMPLES} samples"
        for metric, value in (("modes", cov.modes), ("low-density-share", 1 - cov.high_quality)):
            out.append(results.Result(name, TOY, "samples", metric, float(value), config=config,
                                      seconds=0, device="cpu", seed=0))
    return out


def recipes(Recipe: type) -> list:  # noqa: N803  (the class, given by make_checkpoints)
    """Chapter 12's recipes, built with ``make_checkpoints.Recipe``."""
    about = {"data": "digits-levels", "split": "test",
             "unit": "squared MMD of the test codes against as many prior draws"}
    return [Recipe(NAMES[v], build=lambda v=v: build_aae(v),
                   train=lambda m, e, v=v: train_aae(m, e, v), epochs=EPOCHS,
                   figure=lambda m, v=v: mmd_figure(m, v), metric="mmd2", seed=SEEDS[v],
                   about=about)
            for v in NAMES] + [
        Recipe("ch12_vae_eight_gaussians", build=build_toy_vae, train=train_toy_vae,
               epochs=TOY_VAE["epochs"], figure=toy_vae_nll, metric="nll",
               about={"data": TOY, "split": "test",
                      "unit": "nats per point, IWAE bound with k = 100"})]


def main() -> None:
    torch.set_num_threads(1)
    new = rows(None) + rows(HELD_OUT) + rows(LABELS) + toy_rows()
    results.record(CHAPTER, new)
    for r in new:
        print(f"{r.model:18s} {r.split:7s} {r.metric:22s} {r.value:9.4f}")


if __name__ == "__main__":
    main()
