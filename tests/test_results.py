"""Tests of dgm_lab.results: the results files, the checkpoints, and the committed ones."""

import csv
import importlib.util
import math
import multiprocessing
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import dgm_lab
from dgm_lab import results
from dgm_lab.data import TOY_DENSITIES
from dgm_lab.results import Result

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------
# results files
# --------------------------------------------------------------------------------------

def test_record_and_load_round_trip(tmp_path):
    rows = [Result("kde", "two_moons", "test", "nll", 1.0573476921234, config="h=0.05, grid",
                   seconds=0.39, seed=-1),
            Result("histogram", "two_moons", "test", "nll", math.inf),
            Result("gmm", "digits-dequantized", "test", "bpd", 2.779, seed=0, device="cuda")]
    path = results.record(7, rows, folder=tmp_path)
    assert path == tmp_path / "ch07.csv"
    loaded = {r.key: r for r in results.load(7, folder=tmp_path)}
    assert set(loaded) == {r.key for r in rows}
    for r in rows:
        got = loaded[r.key]
        assert got.value == pytest.approx(r.value, rel=1e-9)
        assert (got.config, got.device, got.seed) == (r.config, r.device, r.seed)
        assert got.version == dgm_lab.__version__ and len(got.date) == 10
    assert math.isnan(loaded[("histogram", "two_moons", "test", "nll")].seconds)
    assert results.lookup(7, "kde", "two_moons", "test", "nll", folder=tmp_path).config == \
        "h=0.05, grid"


def test_record_upserts_one_row_per_key_and_keeps_the_file_sorted(tmp_path):
    a = Result("kde", "rings", "test", "nll", 2.9)
    b = Result("gaussian", "rings", "test", "nll", 3.9)
    results.record(2, [a, b], folder=tmp_path)
    results.record(2, [Result("kde", "rings", "test", "nll", 2.8),
                       Result("kde", "rings", "val", "nll", 2.7)], folder=tmp_path)
    rows = results.load(2, folder=tmp_path)
    assert [(r.model, r.split, r.value) for r in rows] == [
        ("gaussian", "test", 3.9), ("kde", "test", 2.8), ("kde", "val", 2.7)]
    with (tmp_path / "ch02.csv").open(newline="") as fh:
        lines = list(csv.reader(fh))
    assert tuple(lines[0]) == results.FIELDS and len(lines) == 4


def _record_one_by_one(folder: str, model: str, n: int, start) -> None:
    start.wait()  # both writers begin together
    for i in range(n):
        results.record(2, [Result(model, f"toy{i:03d}", "test", "nll", float(i))], folder=folder)


@pytest.mark.skipif(sys.platform == "win32", reason="no advisory file locks on Windows")
def test_two_scripts_recording_at_once_keep_every_row(tmp_path):
    """Each record() reads the file, adds its rows and rewrites it; two processes doing that
    at once must not overwrite each other's rows (nor share a temporary file)."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    writers = [context.Process(target=_record_one_by_one, args=(str(tmp_path), m, 60, start))
               for m in ("a", "b")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
        assert w.exitcode == 0
    rows = results.load(2, folder=tmp_path)
    assert sorted((r.model, r.data) for r in rows) == [
        (m, f"toy{i:03d}") for m in ("a", "b") for i in range(60)]
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_record_rejects_bad_rows(tmp_path):
    ok = Result("kde", "rings", "test", "nll", 2.9)
    with pytest.raises(ValueError, match="repeat a key"):
        results.record(2, [ok, ok], folder=tmp_path)
    with pytest.raises(TypeError, match="Result objects"):
        results.record(2, [("kde", "rings", "test", "nll", 2.9)], folder=tmp_path)
    with pytest.raises(TypeError, match="value"):
        results.record(2, [Result("kde", "rings", "test", "nll", torch.tensor(2.9))],
                       folder=tmp_path)
    with pytest.raises(ValueError, match="NaN"):
        results.record(2, [Result("kde", "rings", "test", "nll", math.nan)], folder=tmp_path)
    with pytest.raises(ValueError, match="model"):
        results.record(2, [Result(" ", "rings", "test", "nll", 1.0)], folder=tmp_path)
    with pytest.raises(ValueError, match="chapter"):
        results.record(-1, [ok], folder=tmp_path)
    assert not (tmp_path / "ch02.csv").exists()  # nothing half-written


def test_missing_results_name_the_file_and_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results for chapter 9.*ch09.csv"):
        results.load(9, folder=tmp_path)
    results.record(9, [Result("kde", "rings", "test", "nll", 2.9)], folder=tmp_path)
    with pytest.raises(KeyError, match="has no result.*'gmm'.*it has.*'kde'"):
        results.lookup(9, "gmm", "rings", "test", "nll", folder=tmp_path)
    (tmp_path / "ch10.csv").write_text("model,value\nkde,1\n")
    with pytest.raises(ValueError, match="expected the columns"):
        results.load(10, folder=tmp_path)


def test_units():
    """Oracles: 64 ln 2 nats over 64 dimensions is one bit each; for the uniform density on
    [0, 1)^D (NLL 0) the discrete bound is exact: -log of the uniform probability L^-D."""
    assert results.bits_per_dim(64 * math.log(2), 64) == pytest.approx(1.0)
    assert results.discrete_nll(0.0, dims=64, levels=17) == pytest.approx(-math.log(17.0**-64))
    assert results.discrete_nll(-10.0, 2, 4) == pytest.approx(-10.0 + 2 * math.log(4))
    with pytest.raises(ValueError, match="dims"):
        results.bits_per_dim(1.0, 0)


# --------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------

META = {"metric": "nll", "value": 1.5, "seed": 0, "command": "python make.py tiny"}


def test_checkpoint_round_trip_and_deterministic_bytes(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model(torch.randn(8, 3))  # moves the batch-norm buffers away from their defaults
    pt = results.save_checkpoint(model, "tiny", META, folder=tmp_path)
    first = pt.read_bytes()
    results.save_checkpoint(model, "tiny", META, folder=tmp_path)
    assert pt.read_bytes() == first  # same weights, same bytes: diffs only when they change
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    meta = results.load_checkpoint("tiny", fresh, folder=tmp_path)
    for (k, v), w in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    assert meta["command"] == "python make.py tiny" and meta["bytes"] == len(first)
    assert results.checkpoint_meta("tiny", folder=tmp_path)["sha256"] == meta["sha256"]


def test_checkpoint_of_a_density_model_keeps_its_extra_state(tmp_path):
    """A DensityModel's state_dict holds a dict (its extra state) next to its tensors."""
    from dgm_lab.density import Gaussian

    model = Gaussian().fit(torch.randn(50, 2, dtype=torch.float64))
    assert any(not isinstance(v, torch.Tensor) for v in model.state_dict().values())
    meta = {"metric": "nll", "value": 1.0, "seed": 0, "command": "python make.py g"}
    results.save_checkpoint(model, "g", meta, folder=tmp_path)
    fresh = Gaussian()
    results.load_checkpoint("g", fresh, folder=tmp_path)
    x = torch.randn(5, 2, dtype=torch.float64)
    torch.testing.assert_close(fresh.log_prob(x), model.log_prob(x))


def test_missing_checkpoints_name_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="make_checkpoints.py nothing"):
        results.load_checkpoint("nothing", nn.Linear(2, 2), folder=tmp_path)
    results.save_checkpoint(nn.Linear(2, 2), "gone", META, folder=tmp_path)
    (tmp_path / "gone.pt").unlink()
    with pytest.raises(FileNotFoundError, match="python make.py tiny"):
        results.load_checkpoint("gone", nn.Linear(2, 2), folder=tmp_path)


def test_a_changed_checkpoint_or_a_wrong_figure_is_detected(tmp_path):
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(0.5)
        model.bias.fill_(1.0)

    def figure(m):
        return m(torch.ones(1, 2)).item()  # 0.5 + 0.5 + 1 = 2

    results.save_checkpoint(model, "lin", {**META, "value": 2.0}, folder=tmp_path)
    results.load_checkpoint("lin", nn.Linear(2, 1), figure=figure, folder=tmp_path)
    results.save_checkpoint(model, "off", {**META, "value": 2.01}, folder=tmp_path)
    with pytest.raises(ValueError, match="records nll = 2.01.*gives 2.0.*python make.py"):
        results.load_checkpoint("off", nn.Linear(2, 1), figure=figure, folder=tmp_path)
    torch.save(nn.Linear(2, 1).state_dict(), tmp_path / "lin.pt")  # replaced behind its back
    with pytest.raises(ValueError, match="SHA-256"):
        results.load_checkpoint("lin", nn.Linear(2, 1), folder=tmp_path)


def test_save_checkpoint_rejects_bad_input(tmp_path):
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="checkpoint name"):
        results.save_checkpoint(model, "../escape", META, folder=tmp_path)
    with pytest.raises(ValueError, match="command"):
        results.save_checkpoint(model, "x", {"metric": "nll", "value": 1.0, "seed": 0},
                                folder=tmp_path)
    with pytest.raises(ValueError, match="seed"):
        results.save_checkpoint(model, "x", {**META, "seed": True}, folder=tmp_path)
    with pytest.raises(ValueError, match="max_bytes"):
        results.save_checkpoint(nn.Linear(100, 100), "big", META, folder=tmp_path,
                                max_bytes=10_000)
    with pytest.raises(TypeError, match="nn.Module"):
        results.save_checkpoint("model", "x", META, folder=tmp_path)
    with pytest.raises(TypeError, match="nn.Module"):
        results.load_checkpoint("x", "model", folder=tmp_path)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# the committed files agree with the code that made them
# --------------------------------------------------------------------------------------

def test_committed_chapter_2_results_agree_with_a_re_run(one_thread):
    """Re-runs a cheap subset of benchmarks/ch02_results.py (two toys, and the digits without
    the mixture's grid search) and compares with benchmarks/results/ch02.csv."""
    ch02 = _script("ch02_results")
    committed = {r.key: r for r in results.load(2)}
    fresh = [r for name in ("eight_gaussians", "two_moons") for r in ch02.rows_for(name)]
    fresh += ch02.rows_for("digits-dequantized", models=("gaussian", "kde"))
    for r in fresh:
        assert r.key in committed, f"{r.key} is not in ch02.csv: run benchmarks/ch02_results.py"
        assert r.value == pytest.approx(committed[r.key].value, rel=1e-6), r.key
        assert r.config == committed[r.key].config, r.key
    models = {(r.model, r.data) for r in committed.values()}
    # four rows per toy (three models and the true density), six for the digits
    assert ("gmm", "digits-dequantized") in models
    assert len(committed) == 4 * len(TOY_DENSITIES) + 6
    # what the chapter teaches holds in the file: no model beats the entropy on average
    for (model, data, split, metric), r in committed.items():
        if data != "digits-dequantized":
            floor = committed[("true-density", data, split, metric)].value
            assert r.value >= floor - 0.01, (model, data)


def test_every_committed_checkpoint_reproduces_its_figure():
    make = _script("make_checkpoints")
    jsons = {p.stem for p in (ROOT / "benchmarks" / "checkpoints").glob("*.json")}
    assert jsons == set(make.RECIPES), "every checkpoint needs a recipe, and the reverse"
    for name, recipe in make.RECIPES.items():
        meta = results.load_checkpoint(name, recipe.build(), figure=recipe.figure, atol=1e-6)
        assert meta["command"] == f"python benchmarks/make_checkpoints.py {name}"
        assert meta["bytes"] <= results.MAX_CHECKPOINT_BYTES


def test_every_recipe_trains_saves_and_reloads(tmp_path, one_thread):
    """The regeneration code runs (one epoch instead of the full recipe), and what it saves
    reloads into a fresh model and reproduces the figure it recorded."""
    make = _script("make_checkpoints")
    for name, recipe in make.RECIPES.items():
        meta = make.make(recipe, epochs=1, folder=tmp_path)
        assert meta["epochs"] == 1 and math.isfinite(meta["value"])
        results.load_checkpoint(name, recipe.build(), figure=recipe.figure, folder=tmp_path)
        full = results.checkpoint_meta(name)["value"]
        assert meta["value"] > full  # one epoch is worse than the committed training
