"""Hidden checks of lab 7 (variational autoencoders). Instructor only: never released.

Each exercise gets three float64 cases of fresh random sizes and one float32 case. The
expected values come from dgm_lab.variational and dgm_lab.vae, in float64, in the grader's
process. Every case keeps the property the exercise is about: log-variances of both signs
(sigma above and below 1, so a sign error in the KL shows), several draws per row for the
reparameterisation, decoder logits far in the tails for the ELBO (where forming the
probabilities loses everything), and log-likelihoods of large images (-800 to -2000 nats;
-110 to -300 in float32) for the importance-weighted bound, where averaging the weights
themselves underflows, with k >= 2 spread weights so that the mean of the log-weights (the
ELBO), their maximum or a sum without -log k are far from the bound. No case has L = 1 (where
a mean over the latent axis equals the sum).

The draw (exercise 2) and the ELBO (exercise 3) are what trains the VAE, so their gradients
with respect to mu, log_var (and the logits) must be autograd's through the reference: a
detached, numpy-computed or torch.no_grad() answer, or one with sigma or the KL detached, has
the right values and cannot train.
"""

import numpy as np
import torch

from dgm_lab.grading import Case, Exercise, Lab, close, keeps_dtype
from dgm_lab.vae import bernoulli_elbo as reference_bernoulli_elbo
from dgm_lab.vae import importance_weighted_bound as reference_iwae_bound
from dgm_lab.variational import gaussian_kl as reference_gaussian_kl
from dgm_lab.variational import reparameterize as reference_reparameterize

F32 = "float32"


F32_CLOSE = keeps_dtype(close(rtol=1e-4, atol=1e-3))


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float64)


def _f32(args: tuple) -> tuple:
    return tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                 for a in args)


def _encoder(rng: np.random.Generator, n: int, latent: int) -> tuple:
    mu = _t(rng.normal(scale=1.5, size=(n, latent)))
    log_var = _t(rng.uniform(-3.0, 2.0, size=(n, latent)))  # sigma from 0.2 to 2.7
    return mu, log_var


def _with_gradient(reference, args: tuple, positions: tuple) -> tuple:
    """The reference's output on ``args`` and, by autograd through it, the gradient of its sum
    with respect to the arguments at ``positions`` (the answer's is taken in the sandbox)."""
    args = tuple(a.detach().requires_grad_(i in positions) for i, a in enumerate(args))
    out = reference(*args)
    return out.detach(), torch.autograd.grad(out.sum(), [args[i] for i in positions])


def _sizes(rng: np.random.Generator) -> list:
    return [(1, 2), (int(rng.integers(2, 40)), int(rng.integers(2, 8))),
            (int(rng.integers(2, 20)), int(rng.integers(8, 40))), (7, 5)]


# ---- cases --------------------------------------------------------------------------------

def gaussian_kl_cases(rng: np.random.Generator):
    for i, (n, latent) in enumerate(_sizes(rng)):
        mu, log_var = _encoder(rng, n, latent)
        expected = reference_gaussian_kl(mu, log_var)
        if i == 3:
            yield Case(_f32((mu, log_var)), expected=expected, label=f"{F32}, L={latent}",
                       compare=F32_CLOSE)
        else:
            yield Case((mu, log_var), expected=expected, label=f"float64, n={n}, L={latent}")


def reparameterize_cases(rng: np.random.Generator):
    for i, (n, latent) in enumerate(_sizes(rng)):
        mu, log_var = _encoder(rng, n, latent)
        shape = (n, latent) if i == 0 else (int(rng.integers(2, 30)), n, latent)
        eps = _t(rng.normal(size=shape))
        expected, gradient = _with_gradient(reference_reparameterize, (mu, log_var, eps), (0, 1))
        if i == 3:
            yield Case(_f32((mu, log_var, eps)), expected=expected, expected_gradient=gradient,
                       label=f"{F32}, eps {list(shape)}", compare=F32_CLOSE)
        else:
            yield Case((mu, log_var, eps), expected=expected, expected_gradient=gradient,
                       label=f"float64, eps {list(shape)}")


def bernoulli_elbo_cases(rng: np.random.Generator):
    for i, (n, latent) in enumerate(_sizes(rng)):
        d = int(rng.integers(1, 70))
        x = _t((rng.random((n, d)) < 0.4).astype(float))
        logits = _t(rng.normal(scale=4.0, size=(n, d)))
        tails = rng.random((n, d)) < 0.2  # logits of +-40 to +-120, both right and wrong
        logits[torch.as_tensor(tails)] = _t(rng.choice([-1.0, 1.0], size=int(tails.sum()))
                                            * rng.uniform(40, 120, size=int(tails.sum())))
        mu, log_var = _encoder(rng, n, latent)
        expected, gradient = _with_gradient(reference_bernoulli_elbo, (x, logits, mu, log_var),
                                            (1, 2, 3))
        if i == 3:
            yield Case(_f32((x, logits, mu, log_var)), expected=expected,
                       expected_gradient=gradient, label=f"{F32}, D={d}", compare=F32_CLOSE)
        else:
            yield Case((x, logits, mu, log_var), expected=expected, expected_gradient=gradient,
                       label=f"float64, n={n}, D={d}, L={latent}")


def iwae_cases(rng: np.random.Generator):
    for i, (n, latent) in enumerate(_sizes(rng)):
        k = (2, int(rng.integers(3, 10)), int(rng.integers(50, 400)), 20)[i]
        mu, log_var = _encoder(rng, n, latent)
        z = mu + (0.5 * log_var).exp() * _t(rng.normal(size=(k, n, latent)))
        # log-likelihoods of large images (float64's exp underflows below -745; float32's
        # below -104), spread over several nats between draws
        low, high = (-300.0, -110.0) if i == 3 else (-2000.0, -800.0)
        log_px = _t(rng.uniform(low, high, size=(1, n)) + rng.normal(scale=5.0, size=(k, n)))
        expected = reference_iwae_bound(log_px, z, mu, log_var)
        if i == 3:
            yield Case(_f32((log_px, z, mu, log_var)), expected=expected,
                       label=f"{F32}, k={k}", compare=keeps_dtype(close(rtol=1e-4, atol=2e-2)))
        else:
            yield Case((log_px, z, mu, log_var), expected=expected,
                       label=f"float64, k={k}, n={n}, L={latent}")


LAB = Lab(exercises=[
    Exercise(answer="ex1_code", test="ex1_tests", function="gaussian_kl",
             cases=gaussian_kl_cases, compare=keeps_dtype(close(rtol=1e-6, atol=1e-8))),
    Exercise(answer="ex2_code", test="ex2_tests", function="reparameterize",
             cases=reparameterize_cases, compare=keeps_dtype(close(rtol=1e-6, atol=1e-8)),
             gradient_of={0: "mu", 1: "log_var"}),
    Exercise(answer="ex3_code", test="ex3_tests", function="bernoulli_elbo",
             cases=bernoulli_elbo_cases, compare=keeps_dtype(close(rtol=1e-6, atol=1e-6)),
             gradient_of={1: "logits", 2: "mu", 3: "log_var"}),
    Exercise(answer="ex4_code", test="ex4_tests", function="iwae_bound",
             cases=iwae_cases, compare=keeps_dtype(close(rtol=1e-6, atol=1e-6))),
])
