"""Chapter 6's results file: the cheap rows re-run, and the issue's bars on the recorded rows.

The neural models' rows come from checkpoints, which ``tests/test_results.py`` reloads and
checks against their recorded figures; here the figures are compared with each other.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from dgm_lab import results

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ch06_results  # noqa: E402


@pytest.fixture(scope="module")
def rows():
    return {(r.model, r.data): r for r in results.load(6) if r.split == "test"}


def test_independent_pixel_rows_agree_with_a_re_run(rows):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for form in ("binary", "levels"):
            data = ch06_results.digits(form)
            name = "bernoulli" if form == "binary" else "categorical"
            make = (ch06_results.BernoulliMixture(1, seed=0) if form == "binary"
                    else ch06_results.CategoricalMixture(1, 17, seed=0))
            value = ch06_results.test_nll(make.fit(data["train"]), data["test"])
            assert value == pytest.approx(rows[f"independent-{name}", f"digits-{form}"].value,
                                          abs=1e-6)
    finally:
        torch.set_num_threads(threads)


def test_fvsbn_agrees_with_scikit_learn(rows):
    ours, theirs = rows["fvsbn", "digits-binary"].value, rows["fvsbn-sklearn",
                                                              "digits-binary"].value
    assert abs(ours - theirs) < 0.1


def test_nade_made_and_pixelcnn_beat_fvsbn_on_the_binary_digits(rows):
    """The chapter's bar: the networks beat FVSBN, the best by at least one nat per image."""
    fvsbn = rows["fvsbn", "digits-binary"].value
    neural = {m: rows[m, "digits-binary"].value for m in ("nade", "made", "pixelcnn")}
    assert all(v < fvsbn for v in neural.values()), (neural, fvsbn)
    assert min(neural.values()) <= fvsbn - 1.0, (neural, fvsbn)


def test_gated_pixelcnn_meets_the_17_level_bar(rows):
    """The chapter's bar on the 17-level digits: the course's best model reaches <= 83.5 nats
    per image (3 nats better than a peer's causal-convolution ARM, 86.57, after 338 s of
    training on the course's machine), with no more training time: the CPU seconds the
    results script measured (its wall time is inflated by other jobs sharing the CPU)."""
    row = rows["gated-pixelcnn", "digits-levels"]
    assert row.value <= 83.5, row.value
    cpu = float(re.search(r"CPU (\d+(?:\.\d+)?) s", row.config).group(1))
    assert cpu <= 338, row.config
    baselines = [rows[m, "digits-levels"].value for m in ("independent-categorical",
                                                         "categorical-mixture")]
    assert row.value < min(baselines) - 10, (row.value, baselines)
