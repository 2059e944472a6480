"""Chapter 4's committed results file: the cheap row re-run, the quality bars checked.

benchmarks/ch04_results.py writes benchmarks/results/ch04.csv from the committed
checkpoints (tests/test_results.py checks that each checkpoint reproduces its own figure).
Here the Bernoulli mixture baseline (seconds to fit) is recomputed and must agree with the
file, and the RBM's AIS figure must beat it by more than the spread of the AIS runs.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from dgm_lab import results

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("ch04_results",
                                                  ROOT / "benchmarks" / "ch04_results.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ch04_results"] = module
    spec.loader.exec_module(module)
    return module


def committed(model: str, metric: str) -> float:
    return results.lookup(4, model, "digits-binary", "test", metric).value


def test_the_mixture_baseline_reproduces_the_committed_figure():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        script = _script()
        (row,) = script.mixture_rows(script.digits())
    finally:
        torch.set_num_threads(threads)
    assert row.value == pytest.approx(committed("bernoulli-mixture", "nll"), abs=1e-6)


def test_the_rbm_beats_the_mixture_by_more_than_the_ais_spread():
    rbm, spread = committed("rbm", "nll"), committed("rbm", "nll_ais_std")
    mixture = committed("bernoulli-mixture", "nll")
    assert 0 < spread < 0.5
    assert rbm < mixture - 10 * spread, (rbm, mixture, spread)
    # the conservative estimate errs upwards, and still beats the mixture
    assert committed("rbm", "nll_raise") < mixture
    # a DBM and a DBN are scored by bounds, which must also land below the mixture
    assert committed("dbm", "nll_bound") < mixture
    assert committed("dbn-2-layers", "nll_bound") < mixture


def test_the_second_dbn_layer_raises_the_bound():
    """The gain of the trained second layer over its tied start (the same model as the first
    RBM) is a paired comparison: the same samples of q(h1|v) and the same AIS seeds for both,
    20 runs. It must exceed 3 standard errors of the paired mean, and the rows must agree
    with it (the gain is the difference of the two paired means)."""
    gain = committed("dbn-2-layers", "nll_bound_gain")
    se = committed("dbn-2-layers", "nll_bound_gain_se")
    two, tied = committed("dbn-2-layers", "nll_bound"), committed("dbn-2-layers-tied", "nll_bound")
    assert 0 < se < 0.05
    assert gain > 3 * se, (gain, se)
    assert tied - two == pytest.approx(gain, abs=1e-8)
    # the tied start is the first RBM: its figure is the one-layer NLL up to the estimators'
    # noise (a few hundredths); the trained stack beats that too (an unpaired comparison)
    one = committed("dbn-1-layer", "nll_bound")
    assert abs(tied - one) < 0.05
    assert two < one
