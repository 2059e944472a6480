"""Hidden checks of lab 8 (generative adversarial networks). Instructor only: never released.

Each exercise gets three float64 cases of fresh random sizes and one float32 case. Every case
keeps the edge case the exercise is about: logits of +-1000 (float64) or +-150 (float32),
where log(sigmoid(l)) is -inf, for the losses; points so far in the tails that both densities
underflow, for the optimal discriminator; critics whose gradient norm is far from 1 on both
sides (and rows where the critic saturates, so its gradient vanishes) and batches with repeated
rows, for the last two. Expected values come from dgm_lab's references, in float64, in the
grader's process.

The losses (exercises 1 and 2) and the gradient penalty (exercise 4) are what trains the
networks of the lab, so their gradients must be autograd's through the reference: with respect
to the logits for the losses, and to the critic's weights W1 and w2 for the penalty (which only
carries that gradient when the answer builds the input gradient with ``create_graph=True``). A
loss returned as a number, detached, or a penalty without ``create_graph`` scores nothing.
"""

import numpy as np
import torch

from dgm_lab import gan as ref
from dgm_lab.grading import Case, Exercise, Lab, close

F32 = "float32"

# --- The only lines that name dgm_lab's GAN API (adapt them when it changes). ---


def reference_discriminator_loss(real_logits, fake_logits, real_label):
    return ref.discriminator_loss(real_logits, fake_logits, real_label)


def reference_generator_losses(fake_logits):
    return (ref.generator_loss(fake_logits, "minimax"),
            ref.generator_loss(fake_logits, "non_saturating"))


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
    return ref.gradient_penalty(critic, real, fake, alpha)


def reference_minibatch_features(features, tensor):
    return ref.minibatch_features(features, tensor)


# --- Cases. ---


def _with_gradient(reference, args: tuple, positions: tuple) -> tuple:
    """The reference's output on ``args`` (floats for scalars) and, by autograd through it, the
    gradient of the sum of its outputs with respect to the arguments at ``positions``."""
    args = tuple(a.detach().requires_grad_(True) if i in positions else a
                 for i, a in enumerate(args))
    out = reference(*args)
    parts = out if isinstance(out, tuple) else (out,)
    gradient = torch.autograd.grad(sum(p.sum() for p in parts), [args[i] for i in positions])
    values = tuple(float(p.detach()) for p in parts)
    return (values if isinstance(out, tuple) else values[0]), tuple(gradient)


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
        label = 1.0 if i == 0 else float(rng.uniform(0.6, 0.95))
        expected, gradient = _with_gradient(reference_discriminator_loss, (real, fake, label),
                                            (0, 1))
        args = _f32(real, fake, label) if f32 else (real, fake, label)
        yield Case(args, expected=expected, expected_gradient=gradient, label=f"{F32 if f32 else 'float64'}, "
                   f"real_label={label:.3f}",
                   compare=close(rtol=1e-4, atol=1e-3) if f32 else None)


def generator_cases(rng: np.random.Generator):
    for i in range(4):
        f32 = i == 3
        fake = _logits(rng, int(rng.integers(1, 200)), 150.0 if f32 else 1000.0)
        if i == 1:
            fake = -fake.abs()  # a discriminator that rejects every sample
        expected, gradient = _with_gradient(reference_generator_losses, (fake,), (0,))
        yield Case(_f32(fake) if f32 else (fake,), expected=expected, expected_gradient=gradient,
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
        n = int(rng.integers(15, 300))
        x = torch.as_tensor(rng.normal(scale=5.0, size=n) + mu_r)
        tail = 20.0 if f32 else 300.0  # both densities underflow there
        x[0], x[1] = mu_r - tail * max(sigma_r, sigma_g), mu_r + tail * max(sigma_r, sigma_g)
        # a few points where D* is between 0.02 and 0.98, where a wrong width or mean shows
        # even when the two Gaussians are narrow and far apart
        grid = torch.linspace(min(mu_r, mu_g) - 6 * max(sigma_r, sigma_g),
                              max(mu_r, mu_g) + 6 * max(sigma_r, sigma_g), 20_001,
                              dtype=torch.float64)
        middle = grid[(reference_optimal_discriminator(grid, mu_r, sigma_r, mu_g, sigma_g)
                       - 0.5).abs() < 0.48]
        if len(middle):
            x[2:12] = middle[torch.as_tensor(rng.integers(0, len(middle), size=10))]
        expected = reference_optimal_discriminator(x, mu_r, sigma_r, mu_g, sigma_g)
        args = (x, mu_r, sigma_r, mu_g, sigma_g)
        # in float32 the log-ratio of two narrow Gaussians loses digits: a right answer is off
        # by up to 4.7e-4 relative (3,000 seeds)
        yield Case(_f32(*args) if f32 else args, expected=expected,
                   label=F32 if f32 else "float64",
                   compare=close(rtol=2e-3, atol=1e-5) if f32 else None)


def _input_gradient_norms(W1, b1, w2, x):
    """||grad f(x_i)|| of the critic f(x) = w2 . tanh(W1 x + b1) + b2, by hand (rows of x)."""
    return (((1 - torch.tanh(x @ W1.T + b1) ** 2) * w2) @ W1).norm(dim=1)


def gradient_penalty_cases(rng: np.random.Generator):
    for i, d in enumerate((1, 2, int(rng.integers(3, 12)), 2)):
        f32 = i == 3
        h, m = int(rng.integers(1, 32)), int(rng.integers(4, 100))
        W1 = torch.as_tensor(rng.normal(scale=rng.uniform(0.2, 3.0) / d ** 0.5, size=(h, d)))
        b1 = torch.as_tensor(rng.normal(size=h))
        w2 = torch.as_tensor(rng.normal(size=h))
        b2 = float(rng.normal())
        real = torch.as_tensor(rng.normal(size=(m, d)))
        fake = torch.as_tensor(rng.normal(loc=2.0, size=(m, d)))
        alpha = torch.as_tensor(rng.uniform(size=m))
        alpha[0] = 1.0  # at a real example
        # w2 is scaled so that a random quantile (25 % to 75 %) of the critic's gradient norms
        # is 1, or the largest is 10 if that is less: rows fall on both sides of 1 (a one-sided
        # penalty is wrong on those below) and no row outweighs the others; in the last quarter
        # of the rows real and fake are one far point where tanh saturates and the gradient
        # vanishes.
        x_hat = alpha[:, None] * real + (1 - alpha[:, None]) * fake
        norms = _input_gradient_norms(W1, b1, w2, x_hat)
        w2 = w2 / torch.maximum(norms.quantile(rng.uniform(0.25, 0.75)), norms.max() / 10)
        far = m - m // 4
        real[far:] = fake[far:] = torch.as_tensor(rng.choice([-1.0, 1.0], size=(m - far, d))
                                                  * rng.uniform(200.0, 400.0, size=(m - far, d)))
        args = (W1, b1, w2, b2, real, fake, alpha)
        if f32:  # the reference sees the float32 inputs (the penalty's gradient is sensitive
            # to rounding its inputs: up to 1e-3 relative on one entry in 3,000 seeds)
            args = tuple(a.float().double() if isinstance(a, torch.Tensor) else a for a in args)
        expected, gradient = _with_gradient(reference_gradient_penalty, args, (0, 2))
        # in float32, 1 - tanh^2 of a nearly saturated unit loses most of its digits, and each
        # entry of W1's gradient sums such terms over the batch, which may cancel: the error
        # follows the largest entry, up to 1.5e-3 of it (6,000 seeds; entry by entry at 1e-3,
        # a right answer failed about one seed in 1,000). The value keeps its own tolerance.
        yield Case(_f32(*args) if f32 else args, expected=expected, expected_gradient=gradient,
                   label=f"{F32 if f32 else 'float64'}, d={d}, hidden={h}",
                   compare=close(rtol=1e-3, atol=1e-4) if f32 else None,
                   gradient_compare=(close(rtol=5e-3, atol=1e-4, relative_to="largest")
                                     if f32 else None))


def minibatch_cases(rng: np.random.Generator):
    for i in range(4):
        f32 = i == 3
        # n >= 3: a batch of one has o = 1 whatever the norm
        n, a = int(rng.integers(3, 60)), int(rng.integers(1, 10))
        # C >= 2: with C = 1 the L1 norm over C is also the L2 norm, and a wrong norm passes
        b, c = int(rng.integers(1, 8)), int(rng.integers(2, 6))
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
             cases=discriminator_cases, compare=close(rtol=1e-8, atol=1e-8),
             gradient_of={0: "real_logits", 1: "fake_logits"}),
    Exercise(answer="ex2_code", test="ex2_tests", function="generator_losses",
             cases=generator_cases,
             compare=close(1e-8, 1e-8, names=("minimax", "non_saturating")),
             gradient_of={0: "fake_logits"}),
    Exercise(answer="ex3_code", test="ex3_tests", function="gaussian_optimal_discriminator",
             # torch.distributions.Normal(float, float) keeps its parameters in float32, which
             # moves a right answer's logit by up to about 1e-4 (large terms cancel): the
             # tolerance lets that through, a 1 % error in a width not
             cases=optimal_discriminator_cases, compare=close(rtol=1e-4, atol=1e-6)),
    Exercise(answer="ex4_code", test="ex4_tests", function="critic_gradient_penalty",
             cases=gradient_penalty_cases, compare=close(rtol=1e-7, atol=1e-9),
             gradient_of={0: "W1", 2: "w2"}),
    Exercise(answer="ex5_code", test="ex5_tests", function="minibatch_features",
             cases=minibatch_cases, compare=close(rtol=1e-8, atol=1e-10)),
])
