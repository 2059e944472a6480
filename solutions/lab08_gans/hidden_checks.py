"""Hidden checks of lab 8 (generative adversarial networks). Instructor only: never released.

Each exercise gets three float64 cases of fresh random sizes and one float32 case. Every case
keeps the edge case the exercise is about: logits of +-1000 (float64) or +-150 (float32),
where log(sigmoid(l)) is -inf, for the losses; points so far in the tails that both densities
underflow, for the optimal discriminator; critics whose gradient norm is far from 1 and
batches with repeated rows, for the last two. Expected values come from dgm_lab's references,
in float64, in the grader's process.
"""

import numpy as np
import torch

from dgm_lab import gan as ref
from dgm_lab.grading import Case, Exercise, Lab, close, each

F32 = "float32"

# --- The only lines that name dgm_lab's GAN API (adapt them when it changes). ---


def reference_discriminator_loss(real_logits, fake_logits, real_label):
    return float(ref.discriminator_loss(real_logits, fake_logits, real_label))


def reference_generator_losses(fake_logits):
    return (float(ref.generator_loss(fake_logits, "minimax")),
            float(ref.generator_loss(fake_logits, "non_saturating")))


def reference_optimal_discriminator(x, mu_r, sigma_r, mu_g, sigma_g):
    # parameters in x's dtype: Normal(float, float) would round them to float32
    def log_normal(mu, sigma):
        return torch.distributions.Normal(torch.tensor(mu, dtype=x.dtype),
                                          torch.tensor(sigma, dtype=x.dtype)).log_prob(x)
    log_p_r, log_p_g = log_normal(mu_r, sigma_r), log_normal(mu_g, sigma_g)
    return ref.optimal_discriminator(log_p_r, log_p_g)


def reference_gradient_penalty(W1, b1, w2, b2, real, fake, alpha):
    def critic(x):
        return torch.tanh(x @ W1.T + b1) @ w2 + b2
    return float(ref.gradient_penalty(critic, real, fake, alpha).detach())


def reference_minibatch_features(features, tensor):
    return ref.minibatch_features(features, tensor)


# --- Cases. ---


def _f32(*values):
    return tuple(v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                 for v in values)


def _logits(rng, n, extreme):
    """n logits of a discriminator, with some extreme ones (confident either way)."""
    out = rng.normal(scale=rng.uniform(0.5, 6.0), size=n) + rng.normal(scale=2.0)
    k = max(1, n // 10)
    out[:k] = rng.choice([-extreme, extreme], size=k) * rng.uniform(0.5, 1.0, size=k)
    return torch.as_tensor(out)


def discriminator_cases(rng: np.random.Generator):
    for i in range(4):
        f32 = i == 3
        extreme = 150.0 if f32 else 1000.0
        real = _logits(rng, int(rng.integers(1, 200)), extreme)
        fake = _logits(rng, int(rng.integers(1, 200)), extreme)
        label = 1.0 if i == 0 else float(rng.uniform(0.6, 1.0))
        expected = reference_discriminator_loss(real, fake, label)
        args = _f32(real, fake, label) if f32 else (real, fake, label)
        yield Case(args, expected=expected, label=f"{F32 if f32 else 'float64'}, "
                   f"real_label={label:.3f}",
                   compare=close(rtol=1e-4, atol=1e-3) if f32 else None)


def generator_cases(rng: np.random.Generator):
    for i in range(4):
        f32 = i == 3
        fake = _logits(rng, int(rng.integers(1, 200)), 150.0 if f32 else 1000.0)
        if i == 1:
            fake = -fake.abs()  # a discriminator that rejects every sample
        expected = reference_generator_losses(fake)
        yield Case(_f32(fake) if f32 else (fake,), expected=expected,
                   label=F32 if f32 else "float64",
                   compare=close(rtol=1e-4, atol=1e-3, names=("minimax", "non_saturating"))
                   if f32 else None)


def optimal_discriminator_cases(rng: np.random.Generator):
    for i in range(4):
        f32 = i == 3
        mu_r, mu_g = (float(v) for v in rng.normal(scale=3.0, size=2))
        sigma_r, sigma_g = (float(v) for v in 10 ** rng.uniform(-0.7, 0.5, size=2))
        if i == 0:
            sigma_g = sigma_r  # equal widths: D* is a sigmoid of a linear function
        n = int(rng.integers(5, 300))
        x = torch.as_tensor(rng.normal(scale=5.0, size=n) + mu_r)
        tail = 20.0 if f32 else 300.0  # both densities underflow there
        x[0], x[1] = mu_r - tail * max(sigma_r, sigma_g), mu_r + tail * max(sigma_r, sigma_g)
        expected = reference_optimal_discriminator(x, mu_r, sigma_r, mu_g, sigma_g)
        args = (x, mu_r, sigma_r, mu_g, sigma_g)
        yield Case(_f32(*args) if f32 else args, expected=expected,
                   label=F32 if f32 else "float64",
                   compare=close(rtol=1e-4, atol=1e-5) if f32 else None)


def gradient_penalty_cases(rng: np.random.Generator):
    for i, d in enumerate((1, 2, int(rng.integers(3, 12)), 2)):
        f32 = i == 3
        h, m = int(rng.integers(1, 32)), int(rng.integers(1, 100))
        W1 = torch.as_tensor(rng.normal(scale=rng.uniform(0.2, 3.0), size=(h, d)))
        b1 = torch.as_tensor(rng.normal(size=h))
        w2 = torch.as_tensor(rng.normal(scale=rng.uniform(0.2, 3.0), size=h))
        b2 = float(rng.normal())
        real = torch.as_tensor(rng.normal(size=(m, d)))
        fake = torch.as_tensor(rng.normal(loc=2.0, size=(m, d)))
        alpha = torch.as_tensor(rng.uniform(size=m))
        alpha[0] = 1.0  # at a real example
        expected = reference_gradient_penalty(W1, b1, w2, b2, real, fake, alpha)
        args = (W1, b1, w2, b2, real, fake, alpha)
        yield Case(_f32(*args) if f32 else args, expected=expected,
                   label=f"{F32 if f32 else 'float64'}, d={d}, hidden={h}",
                   compare=close(rtol=1e-3, atol=1e-4) if f32 else None)


def minibatch_cases(rng: np.random.Generator):
    for i in range(4):
        f32 = i == 3
        n, a = int(rng.integers(1, 60)), int(rng.integers(1, 10))
        b, c = int(rng.integers(1, 8)), int(rng.integers(1, 6))
        features = torch.as_tensor(rng.normal(size=(n, a)))
        if n > 3:
            features[1] = features[0]  # two identical examples
        tensor = torch.as_tensor(rng.normal(scale=rng.uniform(0.05, 1.0), size=(a, b, c)))
        expected = reference_minibatch_features(features, tensor)
        args = (features, tensor)
        yield Case(_f32(*args) if f32 else args, expected=expected,
                   label=f"{F32 if f32 else 'float64'}, n={n}, A={a}, B={b}, C={c}",
                   compare=close(rtol=1e-4, atol=1e-5) if f32 else None)


LAB = Lab(exercises=[
    Exercise(answer="ex1_code", test="ex1_tests", function="discriminator_loss",
             cases=discriminator_cases, compare=close(rtol=1e-8, atol=1e-8)),
    Exercise(answer="ex2_code", test="ex2_tests", function="generator_losses",
             cases=generator_cases,
             compare=each(close(1e-8, 1e-8), close(1e-8, 1e-8),
                          names=("minimax", "non_saturating"))),
    Exercise(answer="ex3_code", test="ex3_tests", function="gaussian_optimal_discriminator",
             cases=optimal_discriminator_cases, compare=close(rtol=1e-7, atol=1e-10)),
    Exercise(answer="ex4_code", test="ex4_tests", function="critic_gradient_penalty",
             cases=gradient_penalty_cases, compare=close(rtol=1e-7, atol=1e-9)),
    Exercise(answer="ex5_code", test="ex5_tests", function="minibatch_features",
             cases=minibatch_cases, compare=close(rtol=1e-8, atol=1e-10)),
])
