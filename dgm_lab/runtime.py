"""Where tensors live and how runs repeat: :func:`device` and :func:`seed_everything`.

Every model, loss and training loop in :mod:`dgm_lab` takes its device from
:func:`device` (or from the tensors it is given), never from a hard-coded ``.cuda()``,
so the same code runs on a laptop CPU, an Apple GPU or a CUDA card.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from dgm_lab._validation import check_seed


def device(prefer: str | None = None) -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then CPU.

    Arguments:
        prefer: force a device by name (``"cpu"``, ``"cuda"``, ``"mps"``). ``None`` picks
            automatically. The environment variable ``DGM_LAB_DEVICE`` overrides the
            automatic choice, which is handy to force the CPU on a GPU machine.

    Returns:
        A ``torch.device``. Raises ``ValueError`` for an unknown name or an unavailable
        device (the message says whether it came from ``prefer`` or ``DGM_LAB_DEVICE``).

    Example:
        >>> import dgm_lab
        >>> x = torch.zeros(3, device=dgm_lab.device())
    """
    if prefer is not None and not isinstance(prefer, str):
        raise TypeError(f"prefer must be a device name such as 'cpu', got {type(prefer).__name__}")
    source = "prefer" if prefer else "the environment variable DGM_LAB_DEVICE"
    name = prefer or os.environ.get("DGM_LAB_DEVICE")
    if name:
        try:
            dev = torch.device(name)
        except RuntimeError as err:
            raise ValueError(f"unknown device {name!r} (from {source}); use 'cpu', 'cuda', "
                             "'cuda:1' or 'mps'") from err
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was requested (by {source}) but "
                             "torch.cuda.is_available() is False")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device {name!r} was requested (by {source}) but no Apple MPS "
                             "backend is available")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and every CUDA device) so CPU runs repeat exactly.

    Arguments:
        seed: a non-negative integer.

    Returns:
        A CPU ``torch.Generator`` seeded with ``seed``, for code that prefers an explicit
        generator over the global state.

    CUDA kernels can still be non-deterministic (atomics in scatter/index_add); exact
    repetition is promised on the CPU only.
    """
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)
