"""Hidden checks of lab 4 (Boltzmann machines). Instructor only: never released.

Each exercise gets float64 cases of fresh random sizes covering the kinds of input it must
handle and the edge case it is about, and one float32 case with looser tolerances: 0/1 and
-1/+1 units (the spins weigh more: the lecture's example uses them) and weights large enough
to overflow a plain ``exp`` (exercise 1), hidden pre-activations far in the tail (exercise 2:
``softplus``, not ``log(1 + exp)``), a single chain and a single unit (exercises 3 and 4),
and CD-k with k from 1 to 5 (exercise 4). The one-unit cases weigh a quarter: a wrong answer
often gets them right by chance. The cases an exercise is about (spins and large weights in
exercise 1, the tail in exercise 2) weigh three, so an answer that misses one of them keeps
about half the points.

Exercise 1 returns one number: its expected value is a Python float, so a float, a numpy
scalar or a 0-dimensional tensor all pass (docs/grading.md, "Scalars"), and its float32 case
checks that the answer runs on float32 inputs. The sampling exercises return tensors of
zeros and ones, which ``exact()`` would accept in any floating dtype: a check on the dtype
holds them to the docstring (the dtype of ``v``).

The sampling exercises receive their uniforms as inputs, so their expected outputs are
determined. The grader draws each uniform at least ``MARGIN`` away from the probability it is
compared with (in float64), so an answer that computes the same probability a few roundings
differently (``1 / (1 + exp(-a))`` instead of ``torch.sigmoid``) still draws the same unit.

Expected values come from dgm_lab's references, in float64, in the grader's process; the CD-k
update's expected value is autograd's gradient of the free-energy difference, an independent
route to the closed form the student writes.
"""

import numpy as np
import torch

from dgm_lab import energy as ref
from dgm_lab.grading import Case, Exercise, Lab, all_of, close, exact, satisfies

F32 = "float32"
MARGIN = 1e-3

# --- The only lines that name dgm_lab's energy API (adapt them when it changes). ---


def reference_log_partition(weights, bias, units):
    """log Z as a Python float: a number may come back in any form (float, 0-dim tensor)."""
    return ref.log_partition(weights, bias, units=units).item()


def reference_free_energy(v, weight, visible_bias, hidden_bias):
    return ref.RBM.from_parameters(weight, visible_bias, hidden_bias).free_energy(v).detach()


def reference_conditionals(weight, visible_bias, hidden_bias):
    rbm = ref.RBM.from_parameters(weight, visible_bias, hidden_bias)
    return rbm.hidden_probs, rbm.visible_probs


def reference_cd_update(v, v_neg, weight, visible_bias, hidden_bias, lr):
    """One gradient-descent step on mean F(v) - mean F(v_neg), the gradient by autograd."""
    rbm = ref.RBM.from_parameters(weight, visible_bias, hidden_bias)
    params = [rbm.weight, rbm.visible_bias, rbm.hidden_bias]
    loss = rbm.free_energy(v).mean() - rbm.free_energy(v_neg).mean()
    grads = torch.autograd.grad(loss, params)
    return tuple((p - lr * g).detach() for p, g in zip(params, grads, strict=True))


# --- Inputs. ---


def _normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.as_tensor(rng.normal(scale=scale, size=shape))


def _binary(rng: np.random.Generator, n: int, d: int) -> torch.Tensor:
    return torch.as_tensor((rng.random((n, d)) < rng.uniform(0.2, 0.8)).astype(np.float64))


def _symmetric(rng: np.random.Generator, d: int, scale: float) -> torch.Tensor:
    a = _normal(rng, d, d, scale=scale)
    return (a + a.T).fill_diagonal_(0.0) / 2


def _rbm(rng: np.random.Generator, v: int, h: int, scale: float = 1.0):
    return (_normal(rng, v, h, scale=scale), _normal(rng, v, scale=scale),
            _normal(rng, h, scale=scale))


def _uniforms(rng: np.random.Generator, probs: torch.Tensor) -> torch.Tensor:
    """Uniforms for Bernoulli draws from ``probs``, each at least MARGIN away from its
    probability (a draw that a rounding could flip is moved to the other side of the gap)."""
    u = torch.as_tensor(rng.random(tuple(probs.shape)))
    near = (u - probs).abs() < MARGIN
    return torch.where(near, (probs + torch.where(u < probs, -2, 2) * MARGIN).clamp(0, 1 - 1e-9),
                       u)


def _draw(rng: np.random.Generator, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    u = _uniforms(rng, probs)
    return u, (u < probs).to(probs.dtype)


def _f32(args: tuple) -> tuple:
    return tuple(a.float() if isinstance(a, torch.Tensor) else a for a in args)


# --- Cases. ---


def log_partition_cases(rng: np.random.Generator):
    # The two points of the exercise weigh most: spins (3) and large weights (3 each), so an
    # answer that ignores either keeps about half the points, not two thirds.
    kinds = [(1, "binary", 1.0, 0.25), (int(rng.integers(2, 7)), "binary", 1.0, 1.0),
             (int(rng.integers(8, 15)), "binary", 0.5, 1.0),
             (int(rng.integers(2, 9)), "spin", 1.0, 3.0),
             (int(rng.integers(3, 8)), "binary", 400.0, 3.0),  # energies of -1e3: exp overflows
             (int(rng.integers(3, 8)), "spin", 400.0, 3.0)]
    for d, units, scale, weight in kinds:
        w, b = _symmetric(rng, d, scale), _normal(rng, d, scale=scale)
        yield Case((w, b, units), expected=reference_log_partition(w, b, units),
                   label=f"float64, d={d}, {units} units" + (", large weights" * (scale > 10)),
                   weight=weight)
    d = int(rng.integers(3, 10))
    w, b = _symmetric(rng, d, 1.0), _normal(rng, d)
    yield Case((w.float(), b.float(), "binary"), expected=reference_log_partition(w, b, "binary"),
               label=f"{F32}, d={d}, binary units", compare=close(rtol=1e-5, atol=1e-4))


def free_energy_cases(rng: np.random.Generator):
    shapes = [(1, 1, 1), (int(rng.integers(1, 50)), int(rng.integers(2, 20)),
                          int(rng.integers(2, 20))),
              (int(rng.integers(1, 30)), int(rng.integers(30, 80)), int(rng.integers(1, 60))),
              (int(rng.integers(2, 30)), int(rng.integers(2, 10)), int(rng.integers(2, 10)))]
    for i, (n, nv, nh) in enumerate(shapes):
        v = _binary(rng, n, nv)
        w, b, c = _rbm(rng, nv, nh, scale=rng.uniform(0.3, 2.0))
        label = f"n={n}, V={nv}, H={nh}"
        if i == 2:
            c[0] = 900.0  # a hidden pre-activation deep in the tail: exp(900) is inf
            label += ", a hidden bias of 900"
        if i == 3:
            v = torch.as_tensor(rng.random((n, nv)))  # probabilities: the formula still holds
            label += ", v in [0, 1]"
        # the tail case is what the exercise is about: log(1 + exp) keeps about half the points
        yield Case((v, w, b, c), expected=reference_free_energy(v, w, b, c),
                   label=f"float64, {label}", weight=(0.25, 1.0, 3.0, 1.0)[i])
    n, nv, nh = int(rng.integers(2, 40)), int(rng.integers(5, 70)), int(rng.integers(5, 40))
    v, (w, b, c) = _binary(rng, n, nv), _rbm(rng, nv, nh)
    yield Case(_f32((v, w, b, c)), expected=reference_free_energy(v, w, b, c),
               label=f"{F32}, n={n}, V={nv}, H={nh}", compare=close(rtol=1e-4, atol=1e-3))


def _gibbs_case(rng: np.random.Generator, n: int, nv: int, nh: int, scale: float):
    v = _binary(rng, n, nv)
    w, b, c = _rbm(rng, nv, nh, scale=scale)
    hidden_probs, visible_probs = reference_conditionals(w, b, c)
    u_h, h = _draw(rng, hidden_probs(v).detach())
    u_v, v_new = _draw(rng, visible_probs(h).detach())
    return (v, w, b, c, u_h, u_v), (h, v_new)


def gibbs_cases(rng: np.random.Generator):
    shapes = [(1, 1, 1), (int(rng.integers(2, 60)), int(rng.integers(2, 30)),
                          int(rng.integers(2, 30))),
              (int(rng.integers(100, 300)), 64, int(rng.integers(10, 70)))]
    for n, nv, nh in shapes:
        args, expected = _gibbs_case(rng, n, nv, nh, rng.uniform(0.3, 2.0))
        yield Case(args, expected=expected, label=f"float64, n={n}, V={nv}, H={nh}",
                   weight=0.25 if nv == 1 else 1.0)  # one unit: a draw or two, easily guessed
    n, nv, nh = int(rng.integers(5, 50)), int(rng.integers(3, 20)), int(rng.integers(3, 20))
    args, expected = _gibbs_case(rng, n, nv, nh, 1.0)
    yield Case(_f32(args), expected=tuple(e.float() for e in expected),
               label=f"{F32}, n={n}, V={nv}, H={nh}")


def _cd_case(rng: np.random.Generator, n: int, nv: int, nh: int, k: int, scale: float):
    v = _binary(rng, n, nv)
    w, b, c = _rbm(rng, nv, nh, scale=scale)
    hidden_probs, visible_probs = reference_conditionals(w, b, c)
    lr = float(rng.uniform(0.01, 0.5))
    u_hs, u_vs, v_neg = [], [], v
    for _ in range(k):
        u_h, h = _draw(rng, hidden_probs(v_neg).detach())
        u_v, v_neg = _draw(rng, visible_probs(h).detach())
        u_hs.append(u_h)
        u_vs.append(u_v)
    args = (v, w, b, c, torch.stack(u_hs), torch.stack(u_vs), lr)
    return args, reference_cd_update(v, v_neg, w, b, c, lr)


def cd_cases(rng: np.random.Generator):
    setups = [(1, 1, 1, 1), (int(rng.integers(2, 40)), int(rng.integers(2, 20)),
                             int(rng.integers(2, 20)), 1),
              (int(rng.integers(10, 60)), int(rng.integers(20, 64)), int(rng.integers(5, 40)),
               int(rng.integers(2, 6))),
              (int(rng.integers(2, 20)), int(rng.integers(2, 10)), int(rng.integers(2, 10)), 3)]
    for n, nv, nh, k in setups:
        args, expected = _cd_case(rng, n, nv, nh, k, rng.uniform(0.3, 2.0))
        yield Case(args, expected=expected, label=f"float64, n={n}, V={nv}, H={nh}, k={k}",
                   weight=0.25 if nv == 1 else 1.0)  # one unit: often no change at all
    n, nv, nh = int(rng.integers(5, 40)), int(rng.integers(3, 30)), int(rng.integers(3, 30))
    args, expected = _cd_case(rng, n, nv, nh, 2, 1.0)
    yield Case(_f32(args), expected=tuple(e.float() for e in expected),
               label=f"{F32}, n={n}, V={nv}, H={nh}, k=2", compare=close(rtol=1e-4, atol=1e-5,
                                                                       names=CD_NAMES))


CD_NAMES = ("weight", "visible_bias", "hidden_bias")


def _in_dtype_of_v(got, case) -> bool:
    return all(isinstance(g, torch.Tensor) and g.dtype == case.args[0].dtype for g in got)


LAB = Lab(exercises=[
    Exercise(answer="ex1_code", test="ex1_tests", function="log_partition",
             cases=log_partition_cases, compare=close(rtol=1e-9, atol=1e-9)),
    # torch's softplus returns a itself above a = 20 (an error of 2e-9): either form passes
    Exercise(answer="ex2_code", test="ex2_tests", function="free_energy",
             cases=free_energy_cases, compare=close(rtol=1e-7, atol=1e-7)),
    # exact() lets a float32 result of 0/1 pass for float64 inputs; the docstring wants v's dtype
    Exercise(answer="ex3_code", test="ex3_tests", function="gibbs_step", cases=gibbs_cases,
             compare=all_of(exact(names=("h", "v_new")), satisfies(
                 _in_dtype_of_v, "h and v_new must be float tensors in the dtype of v"))),
    Exercise(answer="ex4_code", test="ex4_tests", function="cd_update", cases=cd_cases,
             compare=close(rtol=1e-8, atol=1e-9, names=CD_NAMES)),
])
