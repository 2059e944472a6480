"""The one training loop of the course: :func:`fit`.

Every model of :mod:`dgm_lab` trained by gradient descent goes through :func:`fit`. A model says
what it learns through a *loss*, a plain function ``loss(model, batch)`` returning a scalar
tensor (for a density model, the mean negative log-likelihood ``-model.log_prob(x).mean()``)
or a dict ``{"loss": ..., "kl": ...}`` whose other entries are logged. The loop is made of
PyTorch's own pieces, so it reads like one written by hand: a ``DataLoader``; one
:class:`Update` (loss + optimiser) per batch, or several with ``every=k`` for a GAN's k critic
steps per generator step; ``torch.optim.lr_scheduler``; gradient clipping;
``AveragedModel`` for an exponential moving average of the weights; early stopping that
restores the best weights; ``torch.autocast`` and ``GradScaler`` for mixed precision on CUDA;
a tqdm bar and a :class:`History` that plots itself.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from dgm_lab._validation import check_choice, check_int, check_positive
from dgm_lab.runtime import device as default_device
from dgm_lab.runtime import seed_everything

Loss = Callable[..., Any]  # (model, batch[, state]) -> scalar tensor | {"loss": tensor, ...}
Data = torch.Tensor | Sequence[torch.Tensor] | Dataset | DataLoader


def _must_be(value: object, types: type | tuple[type, ...], name: str, what: str) -> None:
    if not isinstance(value, types):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")


@dataclass(frozen=True)
class TrainState:
    """Where training stands; a loss with a third argument receives it (e.g. KL warm-up).

    Attributes:
        epoch: the current epoch, counted from 0.
        step: the number of batches seen before this one, over all epochs.
        progress: the fraction of training done, ``step / (epochs * batches per epoch)``, in
            [0, 1). Validation and :func:`evaluate` see 1.0, the end of every schedule, so
            that the validation figures of different epochs are comparable.
    """

    epoch: int = 0
    step: int = 0
    progress: float = 1.0


def _takes_state(loss: Loss) -> bool:
    """Whether ``loss`` accepts ``(model, batch, state)``; it must accept ``(model, batch)``."""
    if not callable(loss):
        raise TypeError(f"loss must be a function, got {type(loss).__name__}")
    try:
        sig = inspect.signature(loss)
    except (TypeError, ValueError):  # a builtin without a signature: assume two arguments
        return False
    for args in ((None, None, None), (None, None)):
        try:
            sig.bind(*args)
            return len(args) == 3
        except TypeError:
            pass
    raise TypeError(f"loss must take (model, batch) or (model, batch, state); got {sig}")


@dataclass
class Update:
    """One optimiser step on one loss, taken on every batch or on every ``every``-th batch.

    Arguments:
        loss: ``loss(model, batch)`` or ``loss(model, batch, state)`` (``state`` a
            :class:`TrainState`) returning a scalar tensor or a dict with key ``"loss"``.
        optimizer: the optimiser this update zeroes and steps; it holds parameters of the model
            (a GAN's discriminator update holds the discriminator's only).
        every: take the step on every ``every``-th batch only, counted over the whole run:
            ``every=k`` on the generator gives k critic steps per generator step.
        clip_grad_norm: before the step, rescale this optimiser's gradients so that their
            joint Euclidean norm is at most this (> 0).
        scheduler: a ``torch.optim.lr_scheduler`` of ``optimizer``, stepped after each step of
            this update (``scheduler_interval="step"``) or once per epoch (``"epoch"``, the
            default; a ``ReduceLROnPlateau`` then reads the validation loss, else the epoch
            loss of this update).
        after_step: ``after_step(model)`` is called after each step, e.g. WGAN's weight
            clipping of the critic.
        name: the prefix of this update's figures in the :class:`History` (``"d"`` logs
            ``"d.loss"``); each update needs its own name when there are several.

    Example:
        >>> fit(gan, [Update(d_loss, opt_d, name="d"), Update(g_loss, opt_g, every=5, name="g")],
        ...     x, epochs=100)
    """

    loss: Loss
    optimizer: torch.optim.Optimizer
    every: int = 1
    clip_grad_norm: float | None = None
    scheduler: LRScheduler | None = None
    scheduler_interval: str = "epoch"
    after_step: Callable[[nn.Module], None] | None = None
    name: str = ""
    takes_state: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.takes_state = _takes_state(self.loss)
        _must_be(self.optimizer, torch.optim.Optimizer, "optimizer", "a torch.optim.Optimizer")
        self.every = check_int(self.every, "every")
        if self.clip_grad_norm is not None:
            self.clip_grad_norm = check_positive(self.clip_grad_norm, "clip_grad_norm")
        if self.scheduler is not None:
            _must_be(self.scheduler, LRScheduler, "scheduler", "a torch.optim.lr_scheduler")
            if self.scheduler.optimizer is not self.optimizer:
                raise ValueError("scheduler was built for another optimizer than this update's")
        check_choice(self.scheduler_interval, "scheduler_interval", ("epoch", "step"))
        if self.after_step is not None and not callable(self.after_step):
            raise TypeError("after_step must be a function of the model, or None")
        _must_be(self.name, str, "name", "a string")


@dataclass
class History:
    """What :func:`fit` measured.

    Attributes:
        step: per optimiser step, every figure of the loss (``"loss"``, ``"kl"``, ...) and the
            learning rate ``"lr"``; prefixed ``"<name>."`` for named updates.
        epoch: per epoch, the same figures averaged over the epoch weighted by batch size,
            the validation figures (``"val_loss"``, ``"val_kl"``, ...) and ``"seconds"``
            (wall time since the start of training).
        best_epoch: the epoch (from 0) with the lowest validation loss, if validated.
        ema_model: the exponential moving average of the model, if ``ema_decay`` was given.
    """

    step: dict[str, list[float]] = field(default_factory=dict)
    epoch: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None
    ema_model: nn.Module | None = None

    @property
    def epochs(self) -> int:
        return len(self.epoch.get("seconds", []))

    @property
    def train_loss(self) -> list[float]:
        return self.epoch.get("loss", [])

    @property
    def val_loss(self) -> list[float]:
        return self.epoch.get("val_loss", [])

    def plot(self, keys: Sequence[str] | None = None, **kwargs: Any) -> Any:
        """Plot per-epoch figures (default: every one whose name ends in ``loss``).

        Keyword arguments go to :func:`dgm_lab.plotting.training_curves`; returns its Axes.
        """
        from dgm_lab.plotting import training_curves  # matplotlib only when plotting

        keys = [k for k in self.epoch if k.endswith("loss")] if keys is None else list(keys)
        unknown = [k for k in keys if k not in self.epoch]
        if unknown:
            raise ValueError(f"unknown keys {unknown}; this history has {list(self.epoch)}")
        return training_curves({k: self.epoch[k] for k in keys}, **kwargs)


def _length(data: Dataset | DataLoader) -> int | None:
    """Examples of a dataset or batches of a loader; None for an iterable without a length."""
    try:
        return len(data)
    except TypeError:
        return None


def _loader(data: Data, name: str, batch_size: int, shuffle: bool,
            generator: torch.Generator | None) -> DataLoader:
    """A DataLoader over ``data`` (a given DataLoader is used as it is)."""
    if not isinstance(data, DataLoader):
        if isinstance(data, torch.Tensor):
            data = (data,)
        if isinstance(data, (tuple, list)) and data and all(
                isinstance(t, torch.Tensor) for t in data):
            if any(t.dim() == 0 for t in data) or len({len(t) for t in data}) > 1:
                raise ValueError(f"{name}: the tensors must have the same first dimension "
                                 f"(one row per example), got shapes "
                                 f"{[tuple(t.shape) for t in data]}")
            data = TensorDataset(*data)
        elif not isinstance(data, Dataset):
            raise TypeError(f"{name} must be a tensor, a tuple of tensors, a Dataset or a "
                            f"DataLoader, got {type(data).__name__}")
    if _length(data) == 0:  # a DataLoader or a Dataset; an iterable one is checked later
        raise ValueError(f"{name} is empty: there is nothing to train or evaluate on")
    if isinstance(data, DataLoader):
        return data
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator)


def _to(batch: Any, dev: torch.device) -> Any:
    """Move every tensor of a batch (tensor, list, tuple or dict of them) to ``dev``."""
    if isinstance(batch, torch.Tensor):
        if dev.type == "mps" and batch.dtype == torch.float64:
            raise TypeError("the data is float64, which Apple MPS does not support: convert "
                            "it with .float() before training on 'mps'")
        return batch.to(dev)
    if isinstance(batch, Mapping):
        return {k: _to(v, dev) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(b, dev) for b in batch)
    return batch


def _prepare(batch: Any, dev: torch.device) -> tuple[Any, int]:
    """The batch on ``dev`` (a one-tensor list becomes the tensor) and its number of examples."""
    batch = _to(batch, dev)
    if isinstance(batch, (list, tuple)) and len(batch) == 1:
        batch = batch[0]
    first = (next(iter(batch.values()), None) if isinstance(batch, Mapping) else
             batch[0] if isinstance(batch, (list, tuple)) and batch else batch)
    if not isinstance(first, torch.Tensor) or first.dim() == 0:
        raise TypeError(f"a batch must hold tensors with one row per example, got {batch!r:.80}")
    return batch, len(first)


def _figures(out: Any, who: str) -> tuple[torch.Tensor, dict[str, float]]:
    """Check what a loss returned; the loss tensor and every figure as a float."""
    extras: dict[str, Any] = {}
    if isinstance(out, Mapping):
        if "loss" not in out:
            raise ValueError(f"{who} returned a dict without the key 'loss' (keys: {list(out)})")
        extras = {k: v for k, v in out.items() if k != "loss"}
        out = out["loss"]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{who} must return a scalar tensor or a dict with one under 'loss', "
                        f"got {type(out).__name__} (return the tensor, not .item())")
    if out.dim() != 0:
        raise ValueError(f"{who} must return a scalar, got shape {tuple(out.shape)}: "
                         "average over the batch, e.g. with .mean()")
    figures = {"loss": out.detach().item()}
    for key, value in extras.items():
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            raise ValueError(f"{who}: figure {key!r} must be a scalar, got shape "
                             f"{tuple(value.shape)}")
        figures[key] = float(value.detach() if isinstance(value, torch.Tensor) else value)
    return out, figures


class _Means(dict):
    """Running means of named figures, each batch weighted by its number of examples (an
    unweighted mean of batch means would over-weigh a short last batch)."""

    def add(self, figures: Mapping[str, float], n: int) -> None:
        for key, value in figures.items():
            total, count = self.get(key, (0.0, 0))
            self[key] = (total + value * n, count + n)

    def means(self) -> dict[str, float]:
        return {key: total / count for key, (total, count) in self.items()}


def _model_device(model: nn.Module) -> torch.device:
    first = next(iter([*model.parameters(), *model.buffers()]), None)
    return first.device if first is not None else torch.device("cpu")


@torch.no_grad()
def _evaluate(model: nn.Module, loss: Loss, loader: DataLoader,
              state: TrainState) -> dict[str, float]:
    dev, was_training = _model_device(model), model.training
    takes_state = _takes_state(loss)
    model.eval()
    means = _Means()
    for raw in loader:
        batch, n = _prepare(raw, dev)
        out = loss(model, batch, state) if takes_state else loss(model, batch)
        means.add(_figures(out, "loss")[1], n)
    model.train(was_training)
    if not means:
        raise ValueError("data is empty: there is nothing to evaluate on")
    return means.means()


def evaluate(model: nn.Module, loss: Loss, data: Data, *, batch_size: int = 512,
             state: TrainState | None = None) -> float | dict[str, float]:
    """Mean of ``loss`` over ``data``, batches weighted by their size, model in eval mode.

    Arguments:
        model: an ``nn.Module``; each batch is moved to the device of its parameters.
        loss: as in :func:`fit`.
        data: a tensor, a tuple of tensors, a Dataset or a DataLoader (not shuffled).
        batch_size: examples per batch when ``data`` is not a DataLoader.
        state: the :class:`TrainState` a three-argument loss receives (default: progress 1.0).

    Returns:
        A float, or a dict of floats when the loss returns a dict.

    Example:
        >>> evaluate(model, lambda m, x: -m.log_prob(x).mean(), x_test)  # test NLL, nats
    """
    _must_be(model, nn.Module, "model", "a torch.nn.Module")
    batch_size = check_int(batch_size, "batch_size")
    loader = _loader(data, "data", batch_size, shuffle=False, generator=None)
    figures = _evaluate(model, loss, loader, state or TrainState())
    return figures if len(figures) > 1 else figures["loss"]


def _check_device(device: object) -> torch.device:
    if device is None:
        return default_device()
    _must_be(device, (str, torch.device), "device", "a string or torch.device")
    try:
        torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {device!r} is not a device such as 'cpu', 'cuda' or 'mps'"
                         ) from None
    return default_device(str(device))  # checks that the device is available


def _updates(model: nn.Module, loss: Loss | Update | Sequence[Update], lr: float | None,
             optimizer: torch.optim.Optimizer | None, scheduler: LRScheduler | None,
             scheduler_interval: str, clip_grad_norm: float | None) -> list[Update]:
    """The updates of one batch: ``loss`` wrapped with an Adam optimiser, or the given ones."""
    if isinstance(loss, Update) or (isinstance(loss, Sequence) and not callable(loss)):
        updates = [loss] if isinstance(loss, Update) else list(loss)
        if not updates or not all(isinstance(u, Update) for u in updates):
            raise TypeError("loss must be a function, an Update or a non-empty list of Updates")
        if any(a is not None for a in (lr, optimizer, scheduler, clip_grad_norm)):
            raise ValueError("with Update objects, give lr, optimizer, scheduler and "
                             "clip_grad_norm to each Update, not to fit")
        names = [u.name for u in updates]
        if len(updates) > 1 and ("" in names or len(set(names)) < len(names)):
            raise ValueError(f"several updates need distinct names, e.g. name='d' and "
                             f"name='g'; got {names}")
    else:
        if optimizer is None:
            params = [p for p in model.parameters() if p.requires_grad]
            if not params:
                raise ValueError("model has no trainable parameters")
            optimizer = torch.optim.Adam(params, lr=1e-3 if lr is None else
                                         check_positive(lr, "lr"))
        elif lr is not None:
            raise ValueError("give lr or optimizer, not both: the optimizer has its own lr")
        updates = [Update(loss, optimizer, clip_grad_norm=clip_grad_norm, scheduler=scheduler,
                          scheduler_interval=scheduler_interval)]
    own = {id(p) for p in model.parameters()}
    for u in updates:
        if any(id(p) not in own for g in u.optimizer.param_groups for p in g["params"]):
            raise ValueError(f"the optimizer {'of update ' + repr(u.name) + ' ' if u.name else ''}"
                             "holds parameters that are not the model's: build it from "
                             "model.parameters() (or a submodule's) of this model")
    return updates


def _step_scheduler(scheduler: LRScheduler, metric: float) -> None:
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(metric)
    else:
        scheduler.step()


def _step(u: Update, scaler: torch.amp.GradScaler, model: nn.Module, batch: Any,
          state: TrainState, autocast: contextlib.AbstractContextManager) -> dict[str, float]:
    """One optimiser step of ``u`` on ``batch``; returns the figures of its loss and the lr."""
    who = f"the loss of update {u.name!r}" if u.name else "loss"
    u.optimizer.zero_grad(set_to_none=True)
    with autocast:
        out = u.loss(model, batch, state) if u.takes_state else u.loss(model, batch)
    loss, figures = _figures(out, who)
    if not math.isfinite(figures["loss"]):
        raise FloatingPointError(f"{who} is {figures['loss']} at epoch {state.epoch}, step "
                                 f"{state.step}: lower the learning rate, clip the gradients "
                                 "or check the data for NaNs")
    if not loss.requires_grad:
        raise ValueError(f"{who} does not depend on any trainable parameter "
                         "(computed under torch.no_grad() or from detached values?)")
    scaler.scale(loss).backward()  # with amp off, the scaler passes everything through
    if u.clip_grad_norm is not None:
        scaler.unscale_(u.optimizer)  # clip the true gradients, not the scaled ones
        params = [p for group in u.optimizer.param_groups for p in group["params"]]
        nn.utils.clip_grad_norm_(params, u.clip_grad_norm)
    scaler.step(u.optimizer)
    scaler.update()
    figures["lr"] = u.optimizer.param_groups[0]["lr"]  # the lr this step used
    if u.scheduler is not None and u.scheduler_interval == "step":
        _step_scheduler(u.scheduler, figures["loss"])
    if u.after_step is not None:
        u.after_step(model)
    return figures


def fit(model: nn.Module, loss: Loss | Update | Sequence[Update], train_data: Data, *,
        epochs: int, batch_size: int = 128, lr: float | None = None,
        optimizer: torch.optim.Optimizer | None = None, scheduler: LRScheduler | None = None,
        scheduler_interval: str = "epoch", clip_grad_norm: float | None = None,
        val_data: Data | None = None, val_loss: Loss | None = None, patience: int | None = None,
        ema_decay: float | None = None, amp: bool = False, seed: int | None = None,
        device: torch.device | str | None = None, progress: bool = True) -> History:
    """Train ``model`` by stochastic gradient descent on ``loss``.

    For each batch, each :class:`Update` that is due zeroes its optimiser's gradients,
    computes its loss, back-propagates, clips and steps its optimiser.

    Arguments:
        model: any ``nn.Module``; it is moved to ``device``.
        loss: ``loss(model, batch)`` or ``loss(model, batch, state)`` returning a scalar tensor
            or a dict with key ``"loss"`` and other scalars to log; ``batch`` is a tensor when
            the data is one tensor, else a list (``[x, y]``). Or an :class:`Update`, or a list
            of them (several optimisers, e.g. a GAN).
        train_data: a tensor ``[n, ...]``, a tuple of tensors with the same first dimension,
            a ``Dataset`` (all shuffled every epoch) or a ``DataLoader`` (used as it is).
        epochs: passes over ``train_data``.
        batch_size: examples per batch, unless ``train_data`` is a DataLoader.
        lr: learning rate of the default optimiser, Adam (default 1e-3).
        optimizer, scheduler, scheduler_interval, clip_grad_norm: as in :class:`Update`.
        val_data: evaluated after every epoch with ``val_loss`` (default: ``loss``; required
            with several updates), as :func:`evaluate` does.
        patience: stop when the validation loss has not improved for this many epochs, and
            restore the weights of the best epoch (needs ``val_data``).
        ema_decay: keep ``ema = decay * ema + (1 - decay) * weights`` after every batch,
            starting from the initial weights; returned as ``history.ema_model``.
        amp: mixed precision (float16 autocast and a gradient scaler per update) on CUDA;
            elsewhere a warning says that training runs in full precision.
        seed: seeds :func:`dgm_lab.seed_everything` and the shuffling: CPU runs repeat exactly.
        device: defaults to :func:`dgm_lab.device`; batches are moved there one by one.
        progress: show a tqdm bar with the running losses and the learning rate.

    Returns:
        A :class:`History`.

    Raises:
        FloatingPointError: when a loss becomes NaN or infinite (naming the epoch and step).

    References:
        Goodfellow et al. (2014), Generative Adversarial Nets, Algorithm 1 (k critic steps).
        Micikevicius et al. (2018), Mixed Precision Training (loss scaling).

    Example:
        >>> history = fit(model, lambda m, x: -m.log_prob(x).mean(), x_train, epochs=20,
        ...               val_data=x_val, patience=3)
        >>> history.plot()
    """
    _must_be(model, nn.Module, "model", "a torch.nn.Module")
    epochs = check_int(epochs, "epochs")
    batch_size = check_int(batch_size, "batch_size")
    dev = _check_device(device)
    generator = seed_everything(seed) if seed is not None else None
    model.to(dev)
    updates = _updates(model, loss, lr, optimizer, scheduler, scheduler_interval, clip_grad_norm)
    train_loader = _loader(train_data, "train_data", batch_size, True, generator)
    val_loader = None
    if val_data is not None:
        val_loader = _loader(val_data, "val_data", batch_size, False, None)
        if val_loss is None and len(updates) > 1:
            raise ValueError("with several updates, give val_loss to say what to validate")
        val_loss = val_loss or updates[0].loss
        _takes_state(val_loss)  # checks that it is a function of (model, batch[, state])
    if patience is not None:
        patience = check_int(patience, "patience")
        if val_loader is None:
            raise ValueError("patience (early stopping) needs val_data")
    ema = None
    if ema_decay is not None:
        if check_positive(ema_decay, "ema_decay") >= 1:
            raise ValueError(f"ema_decay must be in (0, 1), e.g. 0.999; got {ema_decay}")
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
        ema.update_parameters(model)  # the average starts from the initial weights
    _must_be(amp, bool, "amp", "True or False")
    if amp and dev.type != "cuda":
        warnings.warn(f"amp=True needs a CUDA device; training on {dev.type} in full precision",
                      stacklevel=2)
    amp = amp and dev.type == "cuda"
    scalers = [torch.amp.GradScaler("cuda", enabled=amp) for _ in updates]

    history, best, best_state, waited, step = History(), math.inf, None, 0, 0
    per_epoch = _length(train_loader)
    bar = tqdm(total=per_epoch and epochs * per_epoch, disable=not progress, leave=False,
               desc=type(model).__name__)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        means = _Means()
        for raw in train_loader:
            batch, n = _prepare(raw, dev)
            done = step / (epochs * per_epoch) if per_epoch else epoch / epochs
            for u, scaler in zip(updates, scalers, strict=True):
                if (step + 1) % u.every:  # every=k: the k-th, 2k-th, ... batch
                    continue
                autocast = torch.autocast(dev.type) if amp else contextlib.nullcontext()
                figures = _step(u, scaler, model, batch, TrainState(epoch, step, done), autocast)
                figures = {f"{u.name}.{k}" if u.name else k: v for k, v in figures.items()}
                for key, value in figures.items():
                    history.step.setdefault(key, []).append(value)
                means.add(figures, n)
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            bar.update()
            if progress:
                bar.set_postfix({k: f"{v:.4g}" for k, v in means.means().items()
                                 if k.endswith(("loss", "lr"))}, refresh=False)
        if not means:
            raise ValueError("train_data is empty: there is nothing to train on")
        figures = means.means()
        if val_loader is not None:
            val = _evaluate(model, val_loss, val_loader, TrainState(epoch, step, 1.0))
            figures.update({f"val_{k}": v for k, v in val.items()})
            if val["loss"] < best:
                best, history.best_epoch, waited = val["loss"], epoch, 0
                if patience is not None:
                    # a DensityModel's state_dict also holds its extra state (a dict)
                    best_state = {k: v.detach().clone() if isinstance(v, torch.Tensor)
                                  else copy.deepcopy(v) for k, v in model.state_dict().items()}
            else:
                waited += 1
        for u in updates:
            if u.scheduler is not None and u.scheduler_interval == "epoch":
                own = figures.get(f"{u.name}.loss" if u.name else "loss", math.nan)
                _step_scheduler(u.scheduler, figures.get("val_loss", own))
        figures["seconds"] = time.perf_counter() - start
        for key, value in figures.items():  # an update that did not run this epoch logs NaN
            history.epoch.setdefault(key, [math.nan] * epoch).append(value)
        for values in history.epoch.values():
            values.extend([math.nan] * (epoch + 1 - len(values)))
        bar.set_postfix({k: f"{v:.4g}" for k, v in figures.items() if k.endswith("loss")})
        if patience is not None and waited >= patience:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    history.ema_model = ema.module if ema is not None else None
    return history
