"""Figures used across the book and the labs, built on matplotlib.

* :func:`image_grid` — a grid of images (samples, reconstructions, data).
* :func:`density_heatmap` — a 2-D log-density or density as a heat map, with samples on top.
* :func:`training_curves` — train / validation loss against epochs or steps.

Each function draws on the ``ax`` it is given (or a new one) and returns the axes, so
figures compose in subplots.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

from dgm_lab._validation import as_float_tensor, check_int
from dgm_lab.model import DensityModel


def _new_ax(ax: Axes | None, size: tuple[float, float] = (4, 4)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def image_grid(images: torch.Tensor | np.ndarray, *, nrow: int = 8,
               image_shape: tuple[int, int] | None = None, ax: Axes | None = None,
               title: str | None = None, cmap: str = "gray_r", pad: int = 1,
               pad_value: float = 0.0) -> Axes:
    """Show ``images`` as one tiled picture.

    Arguments:
        images: ``[n, h, w]``, ``[n, 1, h, w]`` or flat ``[n, h*w]`` with values in [0, 1]
            (flat square images are reshaped; pass ``image_shape`` otherwise).
        nrow: images per row.
        pad_value: the value of the lines between images (0, white in ``gray_r``; 0.5, the
            neutral middle of a diverging map such as ``RdBu_r``, for signed weights).
    """
    x = as_float_tensor(images, "images").detach().cpu()
    nrow = check_int(nrow, "nrow")
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() == 2:
        if image_shape is None:
            side = int(round(x.shape[1] ** 0.5))
            if side * side != x.shape[1]:
                raise ValueError(
                    f"cannot reshape {x.shape[1]} pixels into a square: pass image_shape")
            image_shape = (side, side)
        x = x.reshape(len(x), *image_shape)
    if x.dim() != 3:
        raise ValueError(
            f"images must be [n, h, w], [n, 1, h, w] or [n, h*w], got {tuple(x.shape)}")
    n, h, w = x.shape
    ncol = min(nrow, n)
    rows = -(-n // ncol)
    if not (isinstance(pad_value, (int, float)) and 0.0 <= pad_value <= 1.0):
        raise ValueError(f"pad_value must be a number in [0, 1], got {pad_value!r}")
    canvas = torch.full((rows * (h + pad) + pad, ncol * (w + pad) + pad), float(pad_value))
    for i in range(n):
        r, c = divmod(i, ncol)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h,
               pad + c * (w + pad): pad + c * (w + pad) + w] = x[i]
    ax = _new_ax(ax, (0.6 * ncol + 0.5, 0.6 * rows + 0.5))
    ax.imshow(canvas.numpy(), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def density_heatmap(log_prob: Callable[[torch.Tensor], torch.Tensor], *,
                    bounds: tuple[float, float, float, float] = (-4, 4, -4, 4),
                    resolution: int = 200, samples: torch.Tensor | np.ndarray | None = None,
                    ax: Axes | None = None, title: str | None = None,
                    log_scale: bool = False, cmap: str = "viridis",
                    device: torch.device | str | None = None) -> Axes:
    """Draw a 2-D density as a heat map, optionally with samples on top.

    Arguments:
        log_prob: maps a tensor ``[m, 2]`` to log-densities ``[m]`` (e.g. ``model.log_prob``).
        bounds: ``(xmin, xmax, ymin, ymax)`` of the grid.
        resolution: grid points per axis.
        samples: ``[n, 2]`` points drawn as small white dots.
        log_scale: show the log-density instead of the density.
        device: where the grid is built (and ``log_prob`` evaluated). By default the device
            of the model behind a bound method such as ``model.log_prob`` (any
            :class:`~dgm_lab.model.DensityModel`), else the CPU.

    Returns:
        The axes.

    Example:
        >>> density_heatmap(toy_density("two_moons").log_prob, bounds=(-2, 2, -1.5, 1.5))
    """
    resolution = check_int(resolution, "resolution", minimum=2)
    if not callable(log_prob):
        raise TypeError(f"log_prob must be callable (e.g. model.log_prob), "
                        f"got {type(log_prob).__name__}")
    if len(bounds) != 4 or not all(isinstance(b, numbers.Real) for b in bounds):
        raise TypeError(f"bounds must be four numbers (xmin, xmax, ymin, ymax), got {bounds!r}")
    xmin, xmax, ymin, ymax = bounds
    if not (xmin < xmax and ymin < ymax):
        raise ValueError(f"bounds must be (xmin, xmax, ymin, ymax) with min < max, got {bounds}")
    if device is None:
        model = getattr(log_prob, "__self__", None)
        device = model.device if isinstance(model, DensityModel) else "cpu"
    xs = torch.linspace(xmin, xmax, resolution, device=device)
    ys = torch.linspace(ymin, ymax, resolution, device=device)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
    with torch.no_grad():
        values = torch.as_tensor(log_prob(grid))
    if values.shape != (len(grid),):
        raise ValueError(f"log_prob must map [m, 2] points to [m] log-densities, "
                         f"got shape {tuple(values.shape)} for m = {len(grid)}")
    values = values.detach().float().cpu().reshape(resolution, resolution)
    shown = values if log_scale else values.exp()
    ax = _new_ax(ax)
    ax.imshow(shown.numpy(), origin="lower", extent=bounds, cmap=cmap, aspect="auto")
    if samples is not None:
        s = as_float_tensor(samples, "samples", ndim=2).detach().cpu()
        ax.scatter(s[:, 0], s[:, 1], s=2, c="white", alpha=0.6, linewidths=0)
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def training_curves(curves: Mapping[str, Sequence[float]], *, ax: Axes | None = None,
                    xlabel: str = "epoch", ylabel: str = "loss", title: str | None = None,
                    logy: bool = False) -> Axes:
    """Plot named loss curves, e.g. ``{"train": h.train_loss, "validation": h.val_loss}``."""
    if not curves:
        raise ValueError("curves is empty: pass at least one named sequence of losses")
    ax = _new_ax(ax, (5, 3.5))
    for name, values in curves.items():
        v = np.asarray(values, dtype=float)
        if v.ndim != 1 or len(v) == 0:
            raise ValueError(f"curve {name!r} must be a non-empty 1-D sequence")
        ax.plot(np.arange(1, len(v) + 1), v, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax
