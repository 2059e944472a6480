"""Pieces shared by the models of :mod:`dgm_lab.energy` (private).

* :class:`LazyParameters`: a model whose learned tensors are ``nn.Parameter`` s registered as
  ``None`` until it is initialised on data (its size comes from the data, as with
  scikit-learn's estimators), so that an untrained model is *unfitted* in the sense of
  :class:`dgm_lab.model.DensityModel` and a saved ``state_dict`` reloads into a fresh one.
* :func:`bernoulli`: binary draws ``u < p`` from uniforms drawn with :func:`dgm_lab.model.rand`
  (on the generator's device, so one seed gives the same draws on every device).
* :func:`enumeration_size`: the guard on exact sums over :math:`2^n` states.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from dgm_lab.model import rand

#: Exact sums run over at most 2**MAX_ENUMERATION_UNITS states (about a million).
MAX_ENUMERATION_UNITS = 20

#: Rows of states processed at once by the exact sums (bounds their memory).
ENUMERATION_CHUNK = 1 << 14


def check_enumerable(n_units: int, what: str) -> None:
    """Raise a ``ValueError`` when ``2**n_units`` states are too many to enumerate."""
    if n_units > MAX_ENUMERATION_UNITS:
        raise ValueError(f"{what} would sum over 2^{n_units} states; exact enumeration is "
                         f"limited to {MAX_ENUMERATION_UNITS} units (2^{MAX_ENUMERATION_UNITS} "
                         "states): estimate it with annealed importance sampling "
                         "(dgm_lab.energy.ais_log_partition) instead")


def binary_states(n: int, *, dtype: torch.dtype, device: torch.device | str | None,
                  start: int = 0, stop: int | None = None) -> torch.Tensor:
    """Rows ``start..stop-1`` of the ``2**n`` binary vectors in counting order (the first
    unit is the most significant bit), as ``[stop - start, n]`` zeros and ones."""
    stop = (1 << n) if stop is None else stop
    codes = torch.arange(start, stop, device=device)
    shifts = torch.arange(n - 1, -1, -1, device=device)
    return ((codes[:, None] >> shifts) & 1).to(dtype)


def iter_states(n: int, *, dtype: torch.dtype, device: torch.device | str | None,
                spins: bool = False) -> Iterator[torch.Tensor]:
    """The ``2**n`` states of ``n`` units in counting order, in chunks of at most
    :data:`ENUMERATION_CHUNK` rows: 0/1 values, or -1/+1 values when ``spins``."""
    for start in range(0, 1 << n, ENUMERATION_CHUNK):
        states = binary_states(n, dtype=dtype, device=device, start=start,
                               stop=min(start + ENUMERATION_CHUNK, 1 << n))
        yield 2 * states - 1 if spins else states


def logsumexp_over_states(n: int, score: Callable[[torch.Tensor], torch.Tensor], *,
                          dtype: torch.dtype, device: torch.device | str | None,
                          spins: bool = False) -> torch.Tensor:
    """``log sum_s exp(score(s))`` over the ``2**n`` states ``s`` of :func:`iter_states`.

    ``score`` maps ``[m, n]`` states to ``[m, ...]`` scores; the result has the trailing shape.
    """
    parts = [torch.logsumexp(score(states), dim=0)
             for states in iter_states(n, dtype=dtype, device=device, spins=spins)]
    return torch.logsumexp(torch.stack(parts), dim=0)


def shuffled_batches(x: torch.Tensor, batch_size: int, seed: int) -> DataLoader:
    """A ``DataLoader`` of ``x`` in shuffled batches (a new order every epoch, from ``seed``).

    Each batch is one indexing of ``x`` (not ``batch_size`` indexings and a stack, as a
    ``DataLoader`` over a ``TensorDataset`` does): for the small batches of RBM training the
    loader would otherwise cost as much as the update.
    """
    order = RandomSampler(range(len(x)), generator=torch.Generator().manual_seed(seed))
    return DataLoader(x, sampler=BatchSampler(order, batch_size, drop_last=False),
                      batch_size=None)


def softplus(a: torch.Tensor) -> torch.Tensor:
    r""":math:`\log(1 + e^a)` to the last bit: ``F.softplus`` returns ``a`` itself above its
    default threshold of 20, an error of :math:`e^{-20} \approx 2 \times 10^{-9}` that an exact
    oracle notices; above 40 the error is below float64's resolution."""
    return F.softplus(a, threshold=40.0)


def bernoulli(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A 0/1 draw per entry of ``probs`` (same shape, dtype and device): ``u < p``."""
    u = rand(probs.shape, generator, device=probs.device, dtype=probs.dtype)
    return (u < probs).to(probs.dtype)


class LazyParameters:
    """Mixin for a :class:`~dgm_lab.model.DensityModel` whose parameters appear on ``fit``.

    A subclass registers its parameters with ``self.register_parameter(name, None)`` in
    ``__init__`` and creates them with :meth:`_set_parameters` once the data say how many
    units there are. Until then the model is not fitted (every method says what to call).
    ``load_state_dict`` creates missing parameters with the saved shape and dtype, so that a
    fresh instance reloads a trained one.
    """

    _parameters: dict[str, nn.Parameter | None]
    _buffers: dict[str, torch.Tensor | None]

    @property
    def is_fitted(self) -> bool:
        """Whether every parameter and buffer holds a tensor."""
        return (all(p is not None for p in self._parameters.values())
                and all(b is not None for b in self._buffers.values()))

    def _set_parameters(self, **tensors: torch.Tensor) -> None:
        for name, value in tensors.items():
            self._parameters[name] = nn.Parameter(value.detach().clone())

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              *args: Any, **kwargs: Any) -> None:
        here = next((t.device for t in (*self._parameters.values(), *self._buffers.values())
                     if t is not None), None)
        for name, value in self._parameters.items():
            key = prefix + name
            if value is None and key in state_dict:
                saved = state_dict[key]
                self._parameters[name] = nn.Parameter(
                    torch.empty_like(saved, device=here or saved.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)  # type: ignore[misc]
