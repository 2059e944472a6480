import numpy as np
import pytest
import torch
from torch import nn

from dgm_lab.train import History, evaluate, fit


def _regression_data(n=400, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.tensor([[1.5], [-2.0], [0.5]])
    y = x @ w + 0.3 + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def test_fit_reaches_the_least_squares_solution():
    """Oracle: numpy's closed-form least squares."""
    x, y = _regression_data()
    model = nn.Linear(3, 1)
    history = fit(model, mse, (x, y), epochs=150, batch_size=64, lr=0.05, seed=0,
                  device="cpu", progress=False)
    design = np.hstack([x.numpy(), np.ones((len(x), 1))])
    coef, *_ = np.linalg.lstsq(design, y.numpy(), rcond=None)
    np.testing.assert_allclose(model.weight.detach().numpy().ravel(), coef[:3, 0], atol=2e-2)
    np.testing.assert_allclose(model.bias.item(), coef[3, 0], atol=2e-2)
    assert history.epochs == 150 and len(history.step_loss) == 150 * 7
    assert history.train_loss[-1] < 0.1 * history.train_loss[0]


def test_fit_records_validation_loss_equal_to_evaluate():
    x, y = _regression_data()
    model = nn.Linear(3, 1)
    history = fit(model, mse, (x[:300], y[:300]), val_data=(x[300:], y[300:]), epochs=3,
                  device="cpu", progress=False)
    assert len(history.val_loss) == 3
    direct = ((model(x[300:]) - y[300:]) ** 2).mean().item()
    assert history.val_loss[-1] == pytest.approx(direct, rel=1e-5)
    assert evaluate(model, mse, (x[300:], y[300:]), batch_size=7) == pytest.approx(direct, rel=1e-5)


def test_fit_with_a_seed_repeats_exactly():
    x, y = _regression_data()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = nn.Linear(3, 1)
        runs.append(fit(model, mse, (x, y), epochs=2, seed=7, device="cpu", progress=False))
    assert runs[0].step_loss == runs[1].step_loss


def test_fit_accepts_a_single_tensor_batch():
    x = torch.randn(100, 2) + 3.0
    model = nn.Linear(2, 2, bias=False)  # any module: the loss reads only a parameter
    shift = nn.Parameter(torch.zeros(2))
    model.register_parameter("shift", shift)
    fit(model, lambda m, b: ((b - m.shift) ** 2).mean(), x, epochs=100, lr=0.1,
        device="cpu", progress=False)
    torch.testing.assert_close(shift.detach(), x.mean(0), atol=0.05, rtol=0)


def test_fit_stops_with_a_clear_error_on_nan_loss():
    x, y = _regression_data()
    y[0] = float("nan")
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 0"):
        fit(nn.Linear(3, 1), mse, (x, y), epochs=1, batch_size=400, device="cpu", progress=False)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"epochs": 0}, ValueError, "epochs"),
    ({"batch_size": 2.5}, TypeError, "batch_size"),
    ({"lr": -1.0}, ValueError, "lr"),
])
def test_fit_rejects_bad_arguments(kwargs, error, match):
    x, y = _regression_data()
    with pytest.raises(error, match=match):
        fit(nn.Linear(3, 1), mse, (x, y), progress=False, **kwargs)


def test_fit_rejects_bad_models_data_and_losses():
    x, y = _regression_data()
    with pytest.raises(TypeError, match="nn.Module"):
        fit(lambda t: t, mse, (x, y), progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        fit(nn.Linear(3, 1), mse, (x[:0], y[:0]), progress=False)
    with pytest.raises(TypeError, match="tensor"):
        fit(nn.Linear(3, 1), mse, [[1, 2, 3]], progress=False)
    with pytest.raises(ValueError, match="scalar"):
        fit(nn.Linear(3, 1), lambda m, b: (m(b[0]) - b[1]) ** 2, (x, y), progress=False)
    with pytest.raises(ValueError, match="no trainable"):
        fit(nn.ReLU(), mse, (x, y), progress=False)


def test_history_counts_epochs():
    assert History(train_loss=[1.0, 0.5]).epochs == 2


@pytest.mark.cuda
def test_fit_runs_on_cuda():
    x, y = _regression_data()
    model = nn.Linear(3, 1)
    history = fit(model, mse, (x, y), epochs=20, lr=0.05, device="cuda", progress=False)
    assert next(model.parameters()).is_cuda
    assert history.train_loss[-1] < history.train_loss[0]
