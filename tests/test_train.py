"""Tests of dgm_lab.train against hand-written PyTorch loops, closed forms and toy densities."""

import copy
import math
import warnings

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from dgm_lab.data import toy_density
from dgm_lab.train import History, TrainState, Update, evaluate, fit

matplotlib.use("Agg")
CPU = {"device": "cpu", "progress": False}


def _regression_data(n=400, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.tensor([[1.5], [-2.0], [0.5]])
    y = x @ w + 0.3 + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def noisy_mse(model, batch):
    """A loss that draws random numbers, as a VAE or a GAN does."""
    x, y = batch
    return ((model(x + 0.1 * torch.randn_like(x)) - y) ** 2).mean()


class Scalar(nn.Module):
    """One learnable number ``w``, for losses whose course we compute by hand."""

    def __init__(self, value=0.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(float(value)))


# --------------------------------------------------------------------------------------
# the loop against a hand-written PyTorch loop
# --------------------------------------------------------------------------------------

def test_fit_equals_a_hand_written_loop_exactly():
    """Oracle: the plain PyTorch loop fit documents (same seeds, shuffling, Adam steps)."""
    x, y = _regression_data()
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    twin = copy.deepcopy(model)
    history = fit(model, noisy_mse, (x, y), epochs=3, batch_size=64, lr=0.01, seed=3, **CPU)

    torch.manual_seed(3)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(3))
    opt = torch.optim.Adam(twin.parameters(), lr=0.01)
    losses, epoch_means = [], []
    for _ in range(3):
        total = 0.0
        for xb, yb in loader:
            opt.zero_grad()
            loss = noisy_mse(twin, [xb, yb])
            loss.backward()
            opt.step()
            losses.append(loss.item())
            total += loss.item() * len(xb)
        epoch_means.append(total / len(x))
    assert history.step["loss"] == losses
    assert history.epoch["loss"] == pytest.approx(epoch_means, rel=1e-12)
    assert torch.equal(model.weight, twin.weight) and torch.equal(model.bias, twin.bias)
    assert history.epochs == 3 and len(history.step["loss"]) == 3 * 7  # 400 = 6 * 64 + 16


def test_two_updates_equal_a_hand_written_alternating_loop():
    """Oracle: Goodfellow et al. (2014), Algorithm 1, written out: k = 2 critic steps per
    generator step, each optimiser zeroing and stepping only its own parameters."""
    x = torch.randn(60, 2, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = nn.ModuleDict({"g": nn.Linear(2, 2), "d": nn.Linear(2, 1)})
    twin = copy.deepcopy(model)

    def d_loss(m, b):
        fake = m["g"](torch.randn_like(b)).detach()
        return F.softplus(-m["d"](b)).mean() + F.softplus(m["d"](fake)).mean()

    def g_loss(m, b):
        return F.softplus(-m["d"](m["g"](torch.randn_like(b)))).mean()

    def updates(m):
        return [Update(d_loss, torch.optim.SGD(m["d"].parameters(), lr=0.1), name="d"),
                Update(g_loss, torch.optim.Adam(m["g"].parameters(), lr=0.01), every=2,
                       name="g")]

    history = fit(model, updates(model), x, epochs=2, batch_size=16, seed=5, **CPU)
    torch.manual_seed(5)
    loader = DataLoader(TensorDataset(x), batch_size=16, shuffle=True,
                        generator=torch.Generator().manual_seed(5))
    (d, opt_d), (g, opt_g) = [(u.loss, u.optimizer) for u in updates(twin)]
    step, d_losses, g_losses = 0, [], []
    for _ in range(2):
        for (b,) in loader:
            opt_d.zero_grad()
            loss = d(twin, b)
            loss.backward()
            opt_d.step()
            d_losses.append(loss.item())
            if (step + 1) % 2 == 0:
                opt_g.zero_grad()
                loss = g(twin, b)
                loss.backward()
                opt_g.step()
                g_losses.append(loss.item())
            step += 1
    assert history.step["d.loss"] == d_losses and history.step["g.loss"] == g_losses
    assert len(d_losses) == 8 and len(g_losses) == 4
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)


def test_every_k_counts_and_orders_the_calls():
    calls = []

    def logged(name):
        def loss(m, b, state):
            calls.append((name, state.step))
            return m.w * b.mean()
        return loss

    model = Scalar()
    opt_a, opt_b = (torch.optim.SGD(model.parameters(), lr=1e-3) for _ in range(2))
    history = fit(model, [Update(logged("a"), opt_a, name="a"),
                          Update(logged("b"), opt_b, every=4, name="b")],
                  torch.arange(50.0), epochs=3, batch_size=10, **CPU)  # 15 batches
    expected = []
    for step in range(15):
        expected.append(("a", step))
        if (step + 1) % 4 == 0:
            expected.append(("b", step))
    assert calls == expected
    assert len(history.step["a.loss"]) == 15 and len(history.step["b.loss"]) == 3
    # epoch 0 (steps 0-4) ran "b" once, epoch 1 (5-9) once, epoch 2 (10-14) once
    assert all(math.isfinite(v) for v in history.epoch["b.loss"])


# --------------------------------------------------------------------------------------
# bookkeeping: weighting by batch size, data forms, state, schedules
# --------------------------------------------------------------------------------------

def _frozen_mean_loss(model, batch):
    """Mean of the batch times a weight that does not move (SGD with lr 0)."""
    return (model.w * batch).mean()


def test_epoch_loss_and_evaluate_weight_batches_by_their_size():
    """Oracle: the mean over the whole data, computed at once. 10 rows in batches of 4 give
    sizes 4, 4, 2: an unweighted mean of the three batch means differs from it."""
    x = torch.arange(50.0, dtype=torch.float64).reshape(10, 5) ** 2
    model = Scalar(1.0)
    history = fit(model, _frozen_mean_loss, x, epochs=2, batch_size=4,
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.0), **CPU)
    whole = x.mean().item()
    assert history.epoch["loss"] == pytest.approx([whole, whole], rel=1e-12)
    unweighted = np.mean([x[:4].mean(), x[4:8].mean(), x[8:].mean()])
    assert abs(unweighted - whole) > 10  # the check above can tell them apart
    assert evaluate(model, _frozen_mean_loss, x, batch_size=4) == pytest.approx(whole, rel=1e-12)
    plain = DataLoader(x, batch_size=3)  # batches are tensors, not lists: sizes 3, 3, 3, 1
    assert evaluate(model, _frozen_mean_loss, plain) == pytest.approx(whole, rel=1e-12)


def test_evaluate_runs_the_model_in_eval_mode_and_restores_its_mode():
    """Oracle: the loss of the model in eval mode (dropout off) on all the data at once."""
    x, y = _regression_data()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(3, 1))
    with torch.no_grad():
        direct = mse(model.eval(), (x, y)).item()
    model.train()
    assert evaluate(model, mse, (x, y), batch_size=64) == pytest.approx(direct, rel=1e-6)
    assert model.training


def test_fit_accepts_a_plain_dataloader_a_dataset_and_dict_batches():
    x = torch.randn(40, 2) + 3.0
    shapes = []

    def loss(m, b):
        b = b["x"] if isinstance(b, dict) else b
        shapes.append(tuple(b.shape))
        return ((b - m.w) ** 2).mean()

    fit(Scalar(), loss, DataLoader(x, batch_size=16), epochs=1, **CPU)
    assert shapes == [(16, 2), (16, 2), (8, 2)]

    class Rows(Dataset):
        def __len__(self):
            return 40

        def __getitem__(self, i):
            return {"x": x[i]}

    shapes.clear()
    fit(Scalar(), loss, Rows(), epochs=1, batch_size=32, **CPU)
    assert shapes == [(32, 2), (8, 2)]


def test_a_single_tensor_reaches_the_loss_as_a_tensor():
    x = torch.randn(200, 2) + 3.0

    class Shift(nn.Module):
        def __init__(self):
            super().__init__()
            self.shift = nn.Parameter(torch.zeros(2))

    model = Shift()
    fit(model, lambda m, b: ((b - m.shift) ** 2).mean(), x, epochs=100, lr=0.1, **CPU)
    torch.testing.assert_close(model.shift.detach(), x.mean(0), atol=0.05, rtol=0)


def test_a_loss_with_three_arguments_receives_the_training_state():
    seen = []

    def loss(m, b, state):
        seen.append(state)
        return {"loss": ((b - m.w) ** 2).mean(), "progress": state.progress}

    history = fit(Scalar(), loss, torch.randn(30), epochs=2, batch_size=10,
                  val_data=torch.randn(5), **CPU)
    train = [s for s in seen if s.progress < 1]
    assert [(s.epoch, s.step) for s in train] == [(0, 0), (0, 1), (0, 2), (1, 3), (1, 4), (1, 5)]
    assert [s.progress for s in train] == pytest.approx([i / 6 for i in range(6)])
    assert [s.progress for s in seen if s not in train] == [1.0, 1.0]  # validation
    assert history.step["progress"] == pytest.approx([i / 6 for i in range(6)])
    assert history.epoch["val_progress"] == [1.0, 1.0]
    assert TrainState().progress == 1.0


def test_dict_losses_log_every_figure_per_step_and_epoch():
    x = torch.randn(30)

    def loss(m, b):
        sq = ((b - m.w) ** 2).mean()
        return {"loss": sq, "half": 0.5 * sq.detach()}

    history = fit(Scalar(), loss, x, epochs=2, batch_size=10, val_data=x, **CPU)
    assert history.step["half"] == pytest.approx([0.5 * v for v in history.step["loss"]])
    assert set(history.epoch) == {"loss", "half", "lr", "val_loss", "val_half", "seconds"}
    assert history.epoch["val_half"] == pytest.approx([0.5 * v for v in history.val_loss])
    assert history.epoch["seconds"][0] <= history.epoch["seconds"][1]
    assert evaluate(Scalar(), loss, x) == pytest.approx({"loss": (x**2).mean().item(),
                                                         "half": 0.5 * (x**2).mean().item()})


def test_learning_rate_schedules_follow_their_closed_forms():
    """Oracle: StepLR per epoch, lr_e = lr0 * gamma^(e // step_size); ExponentialLR per
    step, lr_t = lr0 * gamma^t."""
    x = torch.randn(30)
    model = Scalar()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    history = fit(model, lambda m, b: ((b - m.w) ** 2).mean(), x, epochs=5, batch_size=10,
                  optimizer=opt, scheduler=sched, **CPU)
    assert history.epoch["lr"] == pytest.approx([0.1 * 0.5 ** (e // 2) for e in range(5)])
    assert history.step["lr"] == pytest.approx([0.1 * 0.5 ** (t // 6) for t in range(15)])

    model = Scalar()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
    history = fit(model, lambda m, b: ((b - m.w) ** 2).mean(), x, epochs=2, batch_size=10,
                  optimizer=opt, scheduler=sched, scheduler_interval="step", **CPU)
    assert history.step["lr"] == pytest.approx([0.1 * 0.9**t for t in range(6)])


def test_reduce_on_plateau_reads_the_validation_loss():
    model = Scalar()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    # the training loss pulls w to 1, away from the validation optimum 0: val worsens
    history = fit(model, lambda m, b: ((m.w - b) ** 2).mean(), torch.ones(10), epochs=4,
                  batch_size=10, optimizer=opt, scheduler=sched, val_data=torch.zeros(10),
                  **CPU)
    assert history.epoch["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.025])


# --------------------------------------------------------------------------------------
# clipping, EMA, early stopping, amp
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("clip", [2.0, 10.0, 1e3])
def test_clipping_rescales_the_joint_gradient_norm_to_at_most_c(clip):
    """Oracle: one SGD step of lr 1 moves the weights by minus the clipped gradient, whose
    norm must be min(norm, c), the norm taken over every gradient as one vector."""
    x, y = _regression_data(n=64)
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    before = [p.detach().clone() for p in model.parameters()]
    mse(model, (x, y)).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    norm = torch.linalg.vector_norm(torch.cat([g.ravel() for g in grads])).item()
    assert 2.0 < norm < 10.0  # so the parametrisation covers both sides of the norm
    model.zero_grad()
    fit(model, mse, (x, y), epochs=1, batch_size=64, clip_grad_norm=clip,
        optimizer=torch.optim.SGD(model.parameters(), lr=1.0), **CPU)
    moves = [b - p.detach() for b, p in zip(before, model.parameters(), strict=True)]
    moved = torch.linalg.vector_norm(torch.cat([m.ravel() for m in moves])).item()
    assert moved == pytest.approx(min(norm, clip), rel=1e-5)
    for m, g in zip(moves, grads, strict=True):  # the direction is the gradient's
        torch.testing.assert_close(m, g * min(1.0, clip / norm), rtol=1e-5, atol=1e-7)


def test_ema_weights_equal_a_hand_computed_exponential_average():
    """Oracle: SGD steps recorded by a hand loop, then ema <- d ema + (1 - d) w from w_0."""
    x, y = _regression_data(n=50)
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    twin = copy.deepcopy(model)
    decay = 0.8
    history = fit(model, mse, (x, y), epochs=6, batch_size=50, ema_decay=decay,
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1), **CPU)
    opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    ema = [p.detach().clone() for p in twin.parameters()]
    for _ in range(6):
        opt.zero_grad()
        mse(twin, (x, y)).backward()
        opt.step()
        ema = [decay * e + (1 - decay) * p.detach() for e, p in zip(ema, twin.parameters(),
                                                                     strict=True)]
    for e, p in zip(ema, history.ema_model.parameters(), strict=True):
        torch.testing.assert_close(p, e, rtol=1e-6, atol=1e-7)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q)  # the model itself keeps its raw weights
    assert not torch.allclose(ema[0], twin.weight)
    assert fit(nn.Linear(3, 1), mse, (x, y), epochs=1, **CPU).ema_model is None


def test_early_stopping_restores_the_weights_of_the_best_epoch():
    """Training pulls w from 0 towards 2 (w_e = 2 (1 - 0.8^(e+1))), validation wants w = 1:
    the validation loss (w - 1)^2 is lowest after epoch 2 and then rises."""
    train, val = torch.full((8,), 2.0), torch.ones(8)
    model = Scalar()
    history = fit(model, lambda m, b: ((m.w - b) ** 2).mean(), train, epochs=20, batch_size=8,
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1), val_data=val,
                  patience=2, **CPU)
    w = [2 * (1 - 0.8 ** (e + 1)) for e in range(5)]
    best = int(np.argmin([(v - 1) ** 2 for v in w]))
    assert best == 2 and history.best_epoch == best
    assert history.epochs == best + 1 + 2  # two epochs without improvement, then stop
    assert history.val_loss == pytest.approx([(v - 1) ** 2 for v in w], rel=1e-5)
    assert model.w.item() == pytest.approx(w[best], rel=1e-6)

    no_patience = Scalar()  # without patience: the best epoch is recorded, nothing restored
    history = fit(no_patience, lambda m, b: ((m.w - b) ** 2).mean(), train, epochs=5,
                  batch_size=8, optimizer=torch.optim.SGD(no_patience.parameters(), lr=0.1),
                  val_data=val, **CPU)
    assert history.best_epoch == 2 and no_patience.w.item() == pytest.approx(w[4], rel=1e-6)


def test_early_stopping_copies_a_state_dict_with_extra_state():
    """Every DensityModel's state_dict holds an ``_extra_state`` dict next to its tensors:
    keeping the best epoch must copy it too, and restore it."""
    class Counted(Scalar):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def get_extra_state(self):
            return {"calls": self.calls}

        def set_extra_state(self, state):
            self.calls = state["calls"]

    train, val = torch.full((8,), 2.0), torch.ones(8)
    model = Counted()

    def loss(m, b):
        m.calls += 1
        return ((m.w - b) ** 2).mean()

    history = fit(model, loss, train, epochs=20, batch_size=8,
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1), val_data=val,
                  val_loss=lambda m, b: ((m.w - b) ** 2).mean(), patience=2, **CPU)
    assert history.best_epoch == 2 and model.calls == 3  # restored with the best weights


def test_amp_off_cuda_warns_and_trains_in_full_precision():
    x, y = _regression_data()
    torch.manual_seed(0)
    a = nn.Linear(3, 1)
    b = copy.deepcopy(a)
    with pytest.warns(UserWarning, match="needs a CUDA device"):
        fit(a, mse, (x, y), epochs=2, amp=True, seed=0, **CPU)
    fit(b, mse, (x, y), epochs=2, seed=0, **CPU)
    assert torch.equal(a.weight, b.weight)


def test_after_step_runs_after_each_step_like_wgan_weight_clipping():
    model = Scalar()
    clamp = Update(lambda m, b: -m.w * b.mean(), torch.optim.SGD(model.parameters(), lr=1.0),
                   after_step=lambda m: m.w.data.clamp_(-0.01, 0.01))
    fit(model, clamp, torch.ones(10), epochs=3, batch_size=5, **CPU)
    assert model.w.item() == pytest.approx(0.01)


def test_a_seed_repeats_a_cpu_run_exactly():
    x, y = _regression_data()
    runs = []
    for seed in (7, 7, 8):
        torch.manual_seed(0)
        model = nn.Linear(3, 1)
        history = fit(model, noisy_mse, (x, y), epochs=2, seed=seed, **CPU)
        runs.append((history.step, model.weight.detach().clone()))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    assert runs[0][0] != runs[2][0]  # another seed: other batches and noise


def test_history_plots_its_losses():
    history = History(epoch={"loss": [2.0, 1.0], "val_loss": [2.5, 1.5], "lr": [0.1, 0.1],
                             "seconds": [0.1, 0.2]})
    assert history.epochs == 2 and history.train_loss == [2.0, 1.0]
    ax = history.plot()
    assert [line.get_label() for line in ax.get_lines()] == ["loss", "val_loss"]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [2.5, 1.5])
    with pytest.raises(ValueError, match="unknown keys"):
        history.plot(["kl"])


def test_progress_bar_shows_the_running_loss(capsys):
    fit(Scalar(), lambda m, b: ((m.w - b) ** 2).mean(), torch.randn(20), epochs=2,
        batch_size=5, device="cpu", progress=True)
    assert "loss=" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    ({"epochs": 0}, ValueError, "epochs"),
    ({"batch_size": 2.5}, TypeError, "batch_size"),
    ({"lr": -1.0}, ValueError, "lr"),
    ({"clip_grad_norm": -1.0}, ValueError, "clip_grad_norm"),
    ({"clip_grad_norm": 0.0}, ValueError, "clip_grad_norm"),
    ({"device": "gpu"}, ValueError, "device"),
    ({"device": 3}, TypeError, "device"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"optimizer": "adam"}, TypeError, "optimizer"),
    ({"optimizer": torch.optim.SGD(nn.Linear(3, 1).parameters(), lr=0.1)}, ValueError,
     "not the model's"),
    ({"patience": 2}, ValueError, "patience"),
    ({"ema_decay": 1.0}, ValueError, "ema_decay"),
    ({"ema_decay": 0}, ValueError, "ema_decay"),
    ({"amp": "yes"}, TypeError, "amp"),
    ({"scheduler_interval": "batch"}, ValueError, "scheduler_interval"),
    ({"scheduler": "cosine"}, TypeError, "scheduler"),
    ({"val_data": "x"}, TypeError, "val_data"),
])
def test_fit_rejects_bad_arguments(kwargs, error, match):
    x, y = _regression_data()
    with pytest.raises(error, match=match):
        fit(nn.Linear(3, 1), mse, (x, y), progress=False, **{"epochs": 1, **kwargs})


def test_fit_rejects_cuda_when_there_is_none():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="cuda"):
        fit(nn.Linear(3, 1), mse, _regression_data(), epochs=1, device="cuda")


def test_fit_rejects_an_optimizer_together_with_lr_and_a_foreign_scheduler():
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="lr or optimizer"):
        fit(model, mse, _regression_data(), epochs=1, optimizer=opt, lr=0.1, **CPU)
    other = torch.optim.lr_scheduler.StepLR(torch.optim.SGD(model.parameters(), lr=0.1), 1)
    with pytest.raises(ValueError, match="another optimizer"):
        fit(model, mse, _regression_data(), epochs=1, optimizer=opt, scheduler=other, **CPU)


@pytest.mark.parametrize("loss, error, match", [
    (lambda m, b: 1.0, TypeError, "scalar tensor"),
    (lambda m, b: mse(m, b).item(), TypeError, "not .item()"),
    (lambda m, b: (m(b[0]) - b[1]) ** 2, ValueError, "scalar"),
    (lambda m, b: {"kl": mse(m, b)}, ValueError, "without the key 'loss'"),
    (lambda m, b: {"loss": mse(m, b), "per_row": m(b[0])}, ValueError, "per_row"),
    (lambda m, b: mse(m, b).detach(), ValueError, "does not depend"),
    (lambda m: m, TypeError, "model, batch"),
    ("mse", TypeError, "loss"),
])
def test_fit_rejects_bad_losses(loss, error, match):
    with pytest.raises(error, match=match):
        fit(nn.Linear(3, 1), loss, _regression_data(), epochs=1, **CPU)


def test_fit_rejects_bad_models_and_data():
    x, y = _regression_data()
    with pytest.raises(TypeError, match="nn.Module"):
        fit(lambda t: t, mse, (x, y), epochs=1, **CPU)
    with pytest.raises(ValueError, match="train_data is empty"):
        fit(nn.Linear(3, 1), mse, (x[:0], y[:0]), epochs=1, **CPU)
    with pytest.raises(ValueError, match="train_data is empty"):
        fit(nn.Linear(3, 1), mse, DataLoader(x[:0]), epochs=1, **CPU)
    with pytest.raises(ValueError, match="same first dimension"):
        fit(nn.Linear(3, 1), mse, (x, y[:10]), epochs=1, **CPU)
    with pytest.raises(TypeError, match="train_data must be a tensor"):
        fit(nn.Linear(3, 1), mse, [[1, 2, 3]], epochs=1, **CPU)
    with pytest.raises(ValueError, match="no trainable"):
        fit(nn.ReLU(), mse, (x, y), epochs=1, **CPU)
    with pytest.raises(TypeError, match="nn.Module"):
        evaluate("model", mse, (x, y))
    with pytest.raises(ValueError, match="data is empty"):
        evaluate(nn.Linear(3, 1), mse, (x[:0], y[:0]))


def test_fit_rejects_bad_updates():
    model = nn.ModuleDict({"a": nn.Linear(3, 1), "b": nn.Linear(3, 1)})
    opt_a = torch.optim.SGD(model["a"].parameters(), lr=0.1)
    opt_b = torch.optim.SGD(model["b"].parameters(), lr=0.1)
    data = _regression_data()
    with pytest.raises(ValueError, match="every"):
        Update(mse, opt_a, every=0)
    with pytest.raises(TypeError, match="optimizer"):
        Update(mse, "sgd")
    with pytest.raises(ValueError, match="distinct names"):
        fit(model, [Update(mse, opt_a), Update(mse, opt_b)], data, epochs=1, **CPU)
    with pytest.raises(ValueError, match="to each Update"):
        fit(model, [Update(mse, opt_a, name="a")], data, epochs=1, lr=0.1, **CPU)
    with pytest.raises(TypeError, match="list of Updates"):
        fit(model, [mse], data, epochs=1, **CPU)
    with pytest.raises(ValueError, match="val_loss"):
        fit(model, [Update(mse, opt_a, name="a"), Update(mse, opt_b, name="b")], data,
            epochs=1, val_data=data, **CPU)
    outsider = torch.optim.SGD(nn.Linear(3, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="update 'x' holds parameters that are not"):
        fit(model, [Update(mse, outsider, name="x")], data, epochs=1, **CPU)


def test_a_nan_loss_stops_with_the_epoch_and_step():
    x, y = _regression_data(n=40)
    y[35] = float("nan")  # in the second batch of 20 (no shuffling: a DataLoader as given)
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 0, step 1"):
        fit(nn.Linear(3, 1), mse, DataLoader(TensorDataset(x, y), batch_size=20), epochs=2,
            **CPU)
    exploding = Scalar(1.0)
    with pytest.raises(FloatingPointError, match="inf at epoch 1, step 2"):
        fit(exploding, lambda m, b, s: m.w * (math.inf if s.epoch == 1 else 1.0), torch.ones(4),
            epochs=3, batch_size=2, **CPU)


# --------------------------------------------------------------------------------------
# the three families learn through the loop: ML, GAN, VAE
# --------------------------------------------------------------------------------------

class DiagonalGaussian(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(d))
        self.log_std = nn.Parameter(torch.zeros(d))

    def log_prob(self, x):
        return torch.distributions.Normal(self.mean, self.log_std.exp()).log_prob(x).sum(1)


def test_maximum_likelihood_reaches_the_closed_form_estimate(one_thread):
    """Oracle: the ML Gaussian is the sample mean and the 1/n standard deviation."""
    x = toy_density("two_moons").sample(1000, generator=torch.Generator().manual_seed(0))
    model = DiagonalGaussian(2)
    history = fit(model, lambda m, b: -m.log_prob(b).mean(), x, epochs=150, batch_size=1000,
                  lr=0.05, **CPU)
    data = x.double().numpy()
    np.testing.assert_allclose(model.mean.detach().numpy(), data.mean(0), atol=2e-3)
    np.testing.assert_allclose(model.log_std.exp().detach().numpy(), data.std(0), atol=2e-3)
    assert history.train_loss[-1] < history.train_loss[0]


def _mlp(n_in, n_out, hidden=64, act=nn.LeakyReLU):
    return nn.Sequential(nn.Linear(n_in, hidden), act(), nn.Linear(hidden, hidden), act(),
                         nn.Linear(hidden, n_out))


class ToyGAN(nn.Module):
    """Generator and discriminator MLPs for 2-D data (Goodfellow et al., 2014)."""

    def __init__(self, latent=2):
        super().__init__()
        self.latent = latent
        self.generator = _mlp(latent, 2)
        self.discriminator = _mlp(2, 1)

    def sample(self, n):
        return self.generator(torch.randn(n, self.latent))


def discriminator_loss(gan, x):
    """-log D(x) - log(1 - D(G(z))), with D = sigmoid(logit): softplus(-l) = -log sigmoid(l)."""
    fake = gan.sample(len(x)).detach()
    return F.softplus(-gan.discriminator(x)).mean() + F.softplus(gan.discriminator(fake)).mean()


def generator_loss(gan, x):
    """The non-saturating loss -log D(G(z))."""
    return F.softplus(-gan.discriminator(gan.sample(len(x)))).mean()


def _gan_score(gan, toy, n=4000):
    """Mean true log-density of n samples and the number of modes that hold at least a fifth
    of their fair share (1/8) of them, counting points within 3 sigma of a centre."""
    torch.manual_seed(123)
    with torch.no_grad():
        s = gan.sample(n)
    angles = torch.arange(8) * (2 * math.pi / 8)
    centres = 2.0 * torch.stack([angles.cos(), angles.sin()], 1)  # radius 2, sigma 0.2
    dist = torch.cdist(s, centres)
    close = dist.min(1).values < 3 * 0.2
    counts = torch.bincount(dist.argmin(1)[close], minlength=8)
    return toy.log_prob(s).mean().item(), int((counts >= n / 8 / 5).sum())


def test_a_gan_learns_the_eight_gaussians(one_thread):
    """Bar: the true mean log-density of the samples rises from about -41 nats to within
    2.5 nats of the data's own (-1.7), and at least 7 of the 8 modes are covered."""
    toy = toy_density("eight_gaussians")
    x = toy.sample(2000, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    gan = ToyGAN()
    before, _ = _gan_score(gan, toy)
    adam = {"lr": 2e-3, "betas": (0.5, 0.999)}
    history = fit(gan, [
        Update(discriminator_loss, torch.optim.Adam(gan.discriminator.parameters(), **adam),
               name="d"),
        Update(generator_loss, torch.optim.Adam(gan.generator.parameters(), **adam), name="g"),
    ], x, epochs=50, batch_size=128, seed=0, **CPU)
    after, modes = _gan_score(gan, toy)
    data = toy.log_prob(x).mean().item()
    assert before < data - 30
    assert after > data - 2.5, (before, after, data)
    assert modes >= 7
    assert len(history.step["g.loss"]) == len(history.step["d.loss"]) == 50 * 16


_LOG_2PI = math.log(2 * math.pi)


class ToyVAE(nn.Module):
    """Gaussian encoder and decoder MLPs for 2-D data (Kingma & Welling, 2014)."""

    def __init__(self, latent=2):
        super().__init__()
        self.latent = latent
        self.encoder = _mlp(2, 2 * latent, act=nn.Tanh)
        self.decoder = _mlp(latent, 4, act=nn.Tanh)

    def sample(self, n):
        mean, log_std = self.decoder(torch.randn(n, self.latent)).chunk(2, 1)
        return mean + log_std.exp() * torch.randn_like(mean)


def vae_loss(vae, x, state):
    """Negative ELBO with the KL term warmed up over the first 30 % of training."""
    mu, log_var = vae.encoder(x).chunk(2, 1)
    z = mu + (0.5 * log_var).exp() * torch.randn_like(mu)
    mean, log_std = vae.decoder(z).chunk(2, 1)
    recon = (0.5 * ((x - mean) / log_std.exp()) ** 2 + log_std + 0.5 * _LOG_2PI).sum(1).mean()
    kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(1).mean()
    beta = min(1.0, state.progress / 0.3)
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl, "beta": beta}


def test_a_vae_with_kl_warm_up_learns_two_moons(one_thread):
    """Bars, on held-out points: the negative ELBO (an upper bound on the NLL) drops by at
    least 0.6 nats and ends within 0.9 nats of the entropy (about 1.04, the best NLL any
    model can reach); samples have a true mean log-density above -3.5 (untrained: about
    -26) and at least half of them fall where the data's top 95 % of density lies."""
    toy = toy_density("two_moons")
    g = torch.Generator().manual_seed(0)
    x, x_val = toy.sample(2000, generator=g), toy.sample(2000, generator=g)
    entropy = -toy.log_prob(x_val).mean().item()
    threshold = toy.log_prob(x_val).quantile(0.05)

    def score(vae):
        torch.manual_seed(123)
        bound = evaluate(vae, vae_loss, x_val)["loss"]
        with torch.no_grad():
            log_p = toy.log_prob(vae.sample(4000))
        return bound, log_p.mean().item(), (log_p >= threshold).float().mean().item()

    torch.manual_seed(0)
    vae = ToyVAE()
    bound0, _, _ = score(vae)
    history = fit(vae, vae_loss, x, epochs=60, batch_size=128, lr=5e-3, seed=0, **CPU)
    bound, mean_log_p, inside = score(vae)
    assert bound < bound0 - 0.6 and bound < entropy + 0.9, (bound0, bound, entropy)
    assert mean_log_p > -3.5 and inside > 0.5, (mean_log_p, inside)
    assert history.step["beta"][0] == 0.0 and history.step["beta"][-1] == 1.0


# --------------------------------------------------------------------------------------
# every device
# --------------------------------------------------------------------------------------

def test_float64_batches_bound_for_apple_mps_get_a_clear_error():
    """MPS has no float64; the check runs before the move, so it is testable without a Mac."""
    from dgm_lab.train import _to

    with pytest.raises(TypeError, match="float64.*MPS.*float()"):
        _to([torch.zeros(2, dtype=torch.float64)], torch.device("mps"))
    assert _to({"x": torch.zeros(2)}, torch.device("cpu"))["x"].dtype == torch.float32


@pytest.mark.cuda
def test_fit_moves_batches_to_cuda_and_trains_in_mixed_precision():
    x, y = _regression_data()  # on the CPU: fit moves each batch
    model = nn.Linear(3, 1)
    seen = []

    def loss(m, b):
        seen.append((b[0].device.type, m(b[0]).dtype))
        return mse(m, b)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "amp needs CUDA" warning here
        history = fit(model, loss, (x, y), epochs=20, lr=0.05, amp=True, device="cuda",
                      val_data=(x, y), ema_decay=0.9, progress=False)
    assert next(model.parameters()).is_cuda and history.ema_model.weight.is_cuda
    assert seen[0] == ("cuda", torch.float16)  # autocast ran the linear layer in float16
    assert history.train_loss[-1] < 0.1 * history.train_loss[0]
    assert evaluate(model, mse, (x, y)) == pytest.approx(history.val_loss[-1], rel=1e-5)
