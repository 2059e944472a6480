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
    """Training the top RBM from its tied start raises the bound past the start and past
    the one-layer NLL (each with 5 AIS runs; the margins are in the results' config)."""
    two = committed("dbn-2-layers", "nll_bound")
    assert two < committed("dbn-2-layers-tied", "nll_bound") - 0.02
    assert two < committed("dbn-1-layer", "nll_bound")
