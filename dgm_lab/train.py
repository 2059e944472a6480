"""The one training loop of the course: :func:`fit`.

Every model in :mod:`dgm_lab` that is trained by gradient descent goes through
:func:`fit`. The model says what it learns through a *loss function*
``loss_fn(model, batch) -> scalar`` (for a density model, usually the mean negative
log-likelihood ``-model.log_prob(x).mean()``); the loop handles batching, the device,
the optimiser, a tqdm progress bar and the bookkeeping that the plots read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from dgm_lab._validation import check_int, check_positive
from dgm_lab.runtime import device as default_device

Batch = torch.Tensor | Sequence[torch.Tensor]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


@dataclass
class History:
    """What :func:`fit` measured: one entry per optimiser step or per epoch."""

    step_loss: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # mean over each epoch
    val_loss: list[float] = field(default_factory=list)  # after each epoch, if val data given

    @property
    def epochs(self) -> int:
        return len(self.train_loss)


def _loader(data: torch.Tensor | Sequence[torch.Tensor] | DataLoader, batch_size: int,
            shuffle: bool, generator: torch.Generator | None) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    tensors = (data,) if isinstance(data, torch.Tensor) else tuple(data)
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError("data must be a tensor, a tuple of tensors or a DataLoader")
    if len(tensors[0]) == 0:
        raise ValueError("data is empty: there is nothing to train on")
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=shuffle,
                      generator=generator)


def _to(batch: Sequence[torch.Tensor], dev: torch.device) -> Batch:
    moved = [t.to(dev, non_blocking=True) for t in batch]
    return moved[0] if len(moved) == 1 else moved


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn: LossFn,
             data: torch.Tensor | Sequence[torch.Tensor] | DataLoader,
             batch_size: int = 512) -> float:
    """Mean of ``loss_fn`` over ``data`` (weighted by batch size), with the model in eval mode."""
    dev = next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in _loader(data, batch_size, shuffle=False, generator=None):
        n = len(batch[0])
        total += loss_fn(model, _to(batch, dev)).item() * n
        count += n
    model.train(was_training)
    return total / count


def fit(model: nn.Module, loss_fn: LossFn,
        train_data: torch.Tensor | Sequence[torch.Tensor] | DataLoader, *,
        epochs: int = 10, batch_size: int = 128, lr: float = 1e-3,
        optimizer: torch.optim.Optimizer | None = None,
        val_data: torch.Tensor | Sequence[torch.Tensor] | DataLoader | None = None,
        clip_grad_norm: float | None = None, seed: int | None = None,
        device: torch.device | str | None = None, progress: bool = True) -> History:
    """Train ``model`` by minimising ``loss_fn`` with Adam (or the given optimiser).

    Arguments:
        model: any ``nn.Module``; it is moved to ``device``.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``; ``batch`` is a tensor when the
            data is a single tensor, else a list of tensors (e.g. ``[x, y]``).
        train_data: a tensor ``[n, ...]``, a tuple of tensors with the same first dimension,
            or a ``DataLoader``. Tensors are shuffled every epoch.
        epochs, batch_size, lr: the usual; ``lr`` is ignored when ``optimizer`` is given.
        val_data: evaluated with :func:`evaluate` after every epoch.
        clip_grad_norm: clip the global gradient norm to this value, if given.
        seed: seeds the shuffling, so two runs with the same seed see the same batches.
        device: defaults to :func:`dgm_lab.device` (CUDA, then MPS, then CPU).
        progress: show a tqdm bar with the running loss.

    Returns:
        A :class:`History` with the loss of every step and epoch.

    Raises:
        FloatingPointError: if the loss becomes NaN or infinite (with the step it happened at).

    Example:
        >>> model = SomeDensity()
        >>> history = fit(model, lambda m, x: -m.log_prob(x).mean(), x_train, epochs=5)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    epochs = check_int(epochs, "epochs")
    batch_size = check_int(batch_size, "batch_size")
    lr = check_positive(lr, "lr")
    dev = torch.device(device) if device is not None else default_device()
    model.to(dev)
    if optimizer is None:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model has no trainable parameters")
        optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    train_loader = _loader(train_data, batch_size, shuffle=True, generator=generator)

    history = History()
    bar = tqdm(range(epochs), disable=not progress, desc=type(model).__name__, leave=False)
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for batch in train_loader:
            loss = loss_fn(model, _to(batch, dev))
            if loss.dim() != 0:
                raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
            value = loss.detach().item()
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"loss is {value} at epoch {epoch}, step {len(history.step_loss)}: "
                    "lower the learning rate or check the data for NaNs")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
            history.step_loss.append(value)
            n = len(batch[0])
            total, count = total + value * n, count + n
        history.train_loss.append(total / count)
        postfix = {"loss": f"{history.train_loss[-1]:.4f}"}
        if val_data is not None:
            history.val_loss.append(evaluate(model, loss_fn, val_data, batch_size))
            postfix["val"] = f"{history.val_loss[-1]:.4f}"
        bar.set_postfix(postfix)
    return history
