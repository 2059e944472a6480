"""Hidden checks of lab 5 (autoencoders: the transposed convolution's matrix, corruption, the
denoising loss, a code-space anomaly score, the ROC AUC). Instructor only.

Every exercise gets fresh random inputs covering what it must handle: strides larger than the
kernel (gaps between the copies of the kernel) and padding for the transposed convolution;
both kinds of noise, with pixels at 0 and 1 so that clipping matters, for the corruption; a
noise level large enough that the clean and the noisy target differ for the denoising loss;
queries that are reference points and k from 1 to m for the anomaly score; many tied scores
and unbalanced classes for the AUC (a number: a Python float or a 0-dim tensor). Three float64
cases and one float32 case with looser tolerances per exercise. The denoising loss is checked
for its value and for its gradient with respect to the four weights (taken in the sandbox), so
a loss that cannot train the network (detached, computed under no_grad) earns nothing.
Expected values come from dgm_lab's references, in the grader's process.
"""

import numpy as np
import torch
from torch import nn

from dgm_lab.autoencoders import (
    conv_transpose_matrix,
    corrupt,
    denoising_loss,
    knn_distance_score,
    roc_auc,
)
from dgm_lab.grading import Case, Exercise, Lab, close

F32 = "float32"
DTYPES = (torch.float64, torch.float64, torch.float64, torch.float32)
LOOSE = close(rtol=1e-4, atol=1e-5)


def _images(rng: np.random.Generator, n: int, d: int) -> torch.Tensor:
    """Grey values in [0, 1] with a share of exact 0s and 1s (as in the digits)."""
    x = rng.uniform(size=(n, d))
    x[rng.uniform(size=(n, d)) < 0.3] = 0.0
    x[rng.uniform(size=(n, d)) < 0.1] = 1.0
    return torch.as_tensor(x)


# ------------------------------------------ exercise 1: the transposed convolution's matrix

def matrix_cases(rng: np.random.Generator):
    labels = ["stride 1", "stride 2, padding", "large stride", "stride and padding"]
    for label, dtype in zip(labels, DTYPES, strict=True):
        while True:
            size, k = int(rng.integers(1, 13)), int(rng.integers(1, 7))
            s = {"stride 1": 1, "stride 2, padding": 2}.get(label, int(rng.integers(2, 6)))
            p = 0 if label == "large stride" else int(rng.integers(1, 3))
            if (size - 1) * s - 2 * p + k >= 1:
                break
        weight = torch.as_tensor(rng.normal(size=k))
        name = "float64" if dtype == torch.float64 else F32
        expected = conv_transpose_matrix(size, weight, s, p)
        yield Case((size, weight.to(dtype), s, p), expected=expected,
                   label=f"{name}, {label}: size={size}, k={k}, stride={s}, padding={p}",
                   compare=None if dtype == torch.float64 else LOOSE)


# ---------------------------------------------------------------- exercise 2: corruption

def corrupt_cases(rng: np.random.Generator):
    kinds = ["gaussian", "masking", "gaussian", "masking"]
    for kind, dtype in zip(kinds, DTYPES, strict=True):
        n, d = int(rng.integers(1, 80)), int(rng.integers(1, 70))
        x = _images(rng, n, d)
        if kind == "gaussian":
            level = float(rng.uniform(0.1, 1.0))
            noise = torch.as_tensor(rng.normal(size=(n, d)))
        else:
            level = float(rng.uniform(0.1, 0.9))
            noise = torch.as_tensor(rng.uniform(size=(n, d)))
        expected = corrupt(x, level, kind=kind, noise=noise)
        name = "float64" if dtype == torch.float64 else F32
        yield Case((x.to(dtype), level, noise.to(dtype), kind), expected=expected,
                   label=f"{name}, {kind}, D={d}",
                   compare=None if dtype == torch.float64 else LOOSE)


# ------------------------------------------------------------ exercise 3: the denoising loss

def _autoencoder(weights: list[torch.Tensor]) -> nn.Module:
    w1, b1, w2, b2 = weights
    model = nn.Sequential(nn.Linear(w1.shape[1], w1.shape[0]), nn.ReLU(),
                          nn.Linear(w1.shape[0], w1.shape[1]), nn.Sigmoid()).double()
    with torch.no_grad():
        for layer, w, b in ((model[0], w1, b1), (model[2], w2, b2)):
            layer.weight.copy_(w)
            layer.bias.copy_(b)
    return model


def loss_cases(rng: np.random.Generator):
    for dtype in DTYPES:
        n, d, q = int(rng.integers(1, 60)), int(rng.integers(2, 70)), int(rng.integers(1, 20))
        x = _images(rng, n, d)
        noise = torch.as_tensor(rng.normal(size=(n, d)))
        level = float(rng.uniform(0.2, 1.0))
        weights = [torch.as_tensor(rng.normal(size=shape) * rng.uniform(0.3, 2.0))
                   for shape in ((q, d), (q,), (d, q), (d,))]
        model = _autoencoder(weights)
        expected = denoising_loss(model, x, level, noise=noise)
        # the loss must train the network: its gradient with respect to every weight, by
        # autograd through the reference (the answer's is taken in the sandbox)
        w1, b1 = model[0].weight, model[0].bias
        w2, b2 = model[2].weight, model[2].bias
        gradient = torch.autograd.grad(expected, (w1, b1, w2, b2))
        name = "float64" if dtype == torch.float64 else F32
        yield Case((x.to(dtype), noise.to(dtype), level, *(w.to(dtype) for w in weights)),
                   expected=expected.detach(), expected_gradient=gradient,
                   label=f"{name}, D={d}, Q={q}",
                   compare=None if dtype == torch.float64 else LOOSE)


# ------------------------------------------------------- exercise 4: code-space anomaly score

def knn_cases(rng: np.random.Generator):
    for i, dtype in enumerate(DTYPES):
        m, n, d = int(rng.integers(2, 300)), int(rng.integers(1, 60)), int(rng.integers(1, 12))
        reference = torch.as_tensor(rng.normal(size=(m, d)) * rng.uniform(0.3, 3.0, size=d))
        x = torch.as_tensor(rng.normal(size=(n, d)) * 2.0)
        x[0] = reference[int(rng.integers(m))]  # a query that is a reference point
        k = [1, m, int(rng.integers(1, m + 1)), int(rng.integers(1, m + 1))][i]
        name = "float64" if dtype == torch.float64 else F32
        yield Case((x.to(dtype), reference.to(dtype), k),
                   expected=knn_distance_score(x, reference, k), label=f"{name}, d={d}, k={k}",
                   # float32 distances near 0 lose digits to cancellation (||a||^2 - 2a.b
                   # + ||b||^2), about sqrt(eps) * |a|
                   compare=close(1e-6, 1e-6) if dtype == torch.float64 else close(1e-4, 3e-3))


# ------------------------------------------------------------------ exercise 5: the ROC AUC

def auc_cases(rng: np.random.Generator):
    kinds = ["continuous scores", "many ties", "all scores tied in pairs", "float32, ties"]
    for kind in kinds:
        n = int(rng.integers(10, 2000))
        labels = (rng.uniform(size=n) < rng.uniform(0.05, 0.6)).astype(np.int64)
        labels[:2] = [0, 1]  # both classes present
        if kind == "continuous scores":
            scores = rng.normal(size=n) + rng.uniform(0.0, 2.0) * labels
        elif kind == "all scores tied in pairs":
            scores = np.repeat(rng.normal(size=(n + 1) // 2), 2)[:n] + 0.5 * labels
            scores = np.round(scores, 1)
        else:
            scores = rng.integers(0, 8, size=n) + (rng.uniform(size=n) < 0.4) * labels
        s = torch.as_tensor(scores.astype(np.float64))
        y = torch.as_tensor(labels)
        dtype = torch.float32 if kind.startswith("float32") else torch.float64
        # a number: the answer may return a Python float or a 0-dim tensor, as the lab says;
        # the float32 case allows float32 arithmetic (a ratio of counts rounded to float32)
        yield Case((s.to(dtype), y), expected=roc_auc(s, y), label=f"{kind}, n={n}",
                   compare=None if dtype == torch.float64 else close(1e-6, 1e-7))


LAB = Lab(exercises=[
    Exercise(answer="ex1_code", test="ex1_tests", function="conv_transpose_matrix",
             cases=matrix_cases, compare=close(1e-12, 1e-12)),
    Exercise(answer="ex2_code", test="ex2_tests", function="corrupt", cases=corrupt_cases,
             compare=close(1e-9, 1e-12)),
    Exercise(answer="ex3_code", test="ex3_tests", function="denoising_loss", cases=loss_cases,
             compare=close(1e-7, 1e-9),
             gradient_of={3: "encoder_weight", 4: "encoder_bias", 5: "decoder_weight",
                          6: "decoder_bias"}),
    Exercise(answer="ex4_code", test="ex4_tests", function="knn_distance_score",
             cases=knn_cases),
    Exercise(answer="ex5_code", test="ex5_tests", function="roc_auc", cases=auc_cases,
             compare=close(1e-9, 1e-12)),
])
