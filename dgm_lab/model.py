r"""One interface for every density model of the course: :class:`DensityModel`.

A density model describes a probability distribution :math:`p(x)` over *events* :math:`x` of
a fixed shape (``event_shape``: ``(D,)`` for points in :math:`\mathbb R^D`, ``(64,)`` for a
flattened 8x8 digit). Like ``torch.distributions.Distribution`` and nflows' ``Distribution``
it answers two questions, and its public methods check their input before a private method
does the work:

* ``log_prob(x)`` :math:`\to` ``[n]``: :math:`\log p(x_i)` in nats for each of ``n`` events.
  It is always the **marginal** density of the data: latent variables (a mixture component,
  a class label, a code) are summed or integrated out. A joint or conditional density gets
  its own, explicitly named method (``log_joint``, ``predict_joint_log_proba``, ...).
* ``sample(n, generator=None)`` :math:`\to` ``[n, *event_shape]``: ``n`` independent draws.

A subclass implements ``_log_prob(x)`` (``x`` already checked: a tensor ``[n, *event_shape]``
on the model's device, in its dtype) and ``_sample(n, generator)``, and says what its events
look like through ``event_shape``. Latent-variable models add ``encode`` / ``decode``.

The rules every model follows (``docs/models.md`` explains how to add one):

* **Fitted state** lives in buffers registered as ``None`` in ``__init__`` and named with a
  trailing underscore (``means_``, ``counts_``), as in scikit-learn. A model is *fitted* when
  none of its buffers is ``None``; using an unfitted one raises a ``RuntimeError`` that says
  what to call. Fitted numbers that are not tensors (``n_iter_``, ``converged_``) are named in
  ``_extra_fitted`` and travel in ``state_dict()`` as extra state, so that
  ``Model(**same_arguments).load_state_dict(fitted.state_dict())`` rebuilds the fitted model.
* **Device and dtype** are those of the model's tensors (``model.device``, ``model.dtype``);
  ``model.to("cuda")`` or ``model.double()`` converts them. Input is *moved* to the model's
  device and *converted* to its dtype, and results live there. Half precision (float16,
  bfloat16) data is upcast to float32, and a model converted with ``.half()`` is refused:
  exponentials and log-determinants need at least float32. Nothing is computed in float64
  unless the model is float64, because Apple GPUs (MPS) have no float64.
* **Random numbers** come from :func:`randn`, :func:`rand`, :func:`randint` and
  :func:`multinomial`: drawn on the generator's device (so a CPU ``torch.Generator`` repeats
  the same draws whatever the model's device), in the model's dtype, then moved to the model.

References:
    J. V. Dillon et al. (2017). TensorFlow Distributions (the design of
    ``torch.distributions``: ``event_shape``, ``log_prob``, ``sample``).
    C. Durkan, A. Bekasov, I. Murray and G. Papamakarios (2019). nflows: normalizing flows
    in PyTorch (public methods check, private ``_log_prob`` / ``_sample`` compute).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from dgm_lab._validation import HALF_DTYPES, as_float_tensor, check_int, generator_device

__all__ = ["DensityModel", "multinomial", "rand", "randint", "randn"]

# --------------------------------------------------------------------------------------
# random draws: on the generator's device, in the model's dtype, then moved to the model
# --------------------------------------------------------------------------------------

def randn(shape: Sequence[int], generator: torch.Generator | None, *,
          device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Standard normal draws of ``shape`` on ``device`` in ``dtype``.

    The numbers are drawn on the generator's device (``device`` when ``generator`` is
    ``None``) and then moved, so one seed gives the same draws whatever ``device`` is.
    """
    where = generator_device(generator, torch.device(device))
    return torch.randn(tuple(shape), generator=generator, device=where, dtype=dtype).to(device)


def rand(shape: Sequence[int], generator: torch.Generator | None, *,
         device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Uniform draws on :math:`[0, 1)` of ``shape`` on ``device`` in ``dtype`` (see
    :func:`randn`)."""
    where = generator_device(generator, torch.device(device))
    return torch.rand(tuple(shape), generator=generator, device=where, dtype=dtype).to(device)


def randint(high: int, shape: Sequence[int], generator: torch.Generator | None, *,
            device: torch.device) -> torch.Tensor:
    """Uniform integers in ``0..high-1`` (int64) of ``shape`` on ``device`` (see :func:`randn`)."""
    where = generator_device(generator, torch.device(device))
    return torch.randint(high, tuple(shape), generator=generator, device=where).to(device)


def multinomial(probs: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` category indices drawn with replacement, with probabilities proportional to ``probs``.

    ``probs`` is ``[K]`` (returns ``[n]``) or ``[m, K]`` (returns ``[m, n]``, one row of draws
    per row of ``probs``); it need not sum to 1. The result is int64 on ``probs``' device.
    """
    where = generator_device(generator, probs.device)
    draws = torch.multinomial(probs.to(where), n, replacement=True, generator=generator)
    return draws.to(probs.device)


# --------------------------------------------------------------------------------------
# the base class
# --------------------------------------------------------------------------------------

class DensityModel(nn.Module):
    r"""Base class of the density models of :mod:`dgm_lab`: ``log_prob`` and ``sample``.

    Subclasses implement:

    * ``event_shape`` (a property): the shape of one event, e.g. ``torch.Size([D])``;
    * ``_log_prob(x) -> [n]``: the marginal log-density of a checked batch ``x``;
    * ``_sample(n, generator) -> [n, *event_shape]``;
    * usually ``fit(...) -> self``, which sets the fitted buffers.

    Class attributes a subclass may set: ``_fit_hint`` (what the unfitted error tells the
    user to call, default ``"fit(x)"``) and ``_extra_fitted`` (names of fitted attributes
    that are not tensors, saved in ``state_dict()``).

    ``model(x)`` is ``model.log_prob(x)``.

    Example:
        >>> class Uniform01(DensityModel):   # the uniform density on [0, 1)^D
        ...     def __init__(self, d):
        ...         super().__init__()
        ...         self.register_buffer("low_", torch.zeros(d))
        ...     @property
        ...     def event_shape(self):
        ...         return self.low_.shape
        ...     def _log_prob(self, x):
        ...         inside = ((x >= 0) & (x < 1)).all(1)
        ...         return torch.where(inside, 0.0, -torch.inf).to(x)
        ...     def _sample(self, n, generator):
        ...         return rand((n, len(self.low_)), generator, device=self.device,
        ...                     dtype=self.dtype)
        >>> Uniform01(2).log_prob(torch.tensor([[0.5, 0.5], [2.0, 0.0]]))
        tensor([0., -inf])
    """

    _fit_hint: str = "fit(x)"
    _extra_fitted: tuple[str, ...] = ()

    # ---- what a subclass implements ----------------------------------------------------

    @property
    def event_shape(self) -> torch.Size:
        """The shape of one event ``x`` (``log_prob`` takes ``[n, *event_shape]``)."""
        raise NotImplementedError

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    # ---- the public interface ----------------------------------------------------------

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Marginal log-density (nats) of each event of ``x`` ``[n, *event_shape]``.

        Arguments:
            x: a tensor, array or nested list of ``n`` events; 1-D events may also be given
                as ``[n]`` when ``event_shape`` is ``(1,)``. It is moved to the model's
                device and converted to its dtype.

        Returns:
            ``[n]`` log-densities (log-probabilities for discrete data), in nats, on the
            model's device and in its dtype.
        """
        return self._log_prob(self._check_input(x))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` independent events ``[n, *event_shape]`` from the model.

        Arguments:
            n: number of draws (>= 1).
            generator: a ``torch.Generator`` for repeatable draws (on any device: the
                numbers are drawn there and moved to the model's device); ``None`` uses
                PyTorch's global random state.

        Returns:
            ``[n, *event_shape]`` on the model's device, in its dtype.
        """
        self._require_fitted()
        n = check_int(n, "n")
        generator_device(generator, self.device)  # checks its type
        return self._sample(n, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``model(x)`` is :meth:`log_prob`."""
        return self.log_prob(x)

    # ---- fitted state --------------------------------------------------------------------

    @property
    def is_fitted(self) -> bool:
        """Whether every buffer holds a tensor (fitted state is registered as ``None``)."""
        return all(b is not None for b in self._buffers.values())

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: "
                               f"call {self._fit_hint} first")

    def _first_tensor(self, floating: bool) -> torch.Tensor:
        self._require_fitted()
        for t in (*self.parameters(), *self.buffers()):
            if not floating or t.is_floating_point():
                return t
        raise RuntimeError(f"{type(self).__name__} holds no floating-point tensor: "
                           "register one so that .to(device) and .double() reach it")

    @property
    def device(self) -> torch.device:
        """The device of the model's tensors (where its computations run)."""
        return self._first_tensor(floating=False).device

    @property
    def dtype(self) -> torch.dtype:
        """The floating-point dtype of the model's tensors (the dtype of its results)."""
        dtype = self._first_tensor(floating=True).dtype
        if dtype in HALF_DTYPES:
            raise TypeError(f"this {type(self).__name__} holds {dtype} tensors (after .half()?): "
                            "dgm_lab computes in float32 or float64; call .float()")
        return dtype

    def _check_input(self, x: object, name: str = "x", *, allow_bool: bool = False,
                     allow_nan: bool = False) -> torch.Tensor:
        """``x`` as a tensor ``[n, *event_shape]`` on the model's device, in its dtype."""
        self._require_fitted()
        event = tuple(self.event_shape)
        t = as_float_tensor(x, name, dtype=self.dtype, device=self.device,
                            allow_bool=allow_bool, allow_nan=allow_nan)
        if event == (1,) and t.dim() == 1:
            t = t.unsqueeze(1)  # n scalars
        if t.dim() == len(event) + 1 and t.shape[1:] != event and len(event) == 1:
            raise ValueError(f"{name} has {t.shape[1]} features but this "
                             f"{type(self).__name__} expects {event[0]}")
        if t.dim() != len(event) + 1 or t.shape[1:] != event:
            want = "[n, " + ", ".join(map(str, event)) + "]"
            raise ValueError(f"{name} must have shape {want} (n events of shape {event}), "
                             f"got shape {tuple(t.shape)}")
        return t

    # ---- state_dict: a fitted model reloads into a fresh, unfitted one -----------------

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              *args: Any, **kwargs: Any) -> None:
        # nn.Module skips buffers that are None: give them the saved shape and dtype first
        # (on the device of the tensors the model already has, else the saved one's).
        here = next((t.device for t in (*self.parameters(), *self.buffers())), None)
        for name, value in self._buffers.items():
            key = prefix + name
            if value is None and key in state_dict:
                saved = state_dict[key]
                self._buffers[name] = torch.empty_like(saved, device=here or saved.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def get_extra_state(self) -> dict[str, Any]:
        """The fitted attributes that are not tensors (named in ``_extra_fitted``)."""
        return {name: getattr(self, name) for name in self._extra_fitted}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_extra_state` saved."""
        unknown = set(state) - set(self._extra_fitted) if isinstance(state, dict) else {"?"}
        if unknown:
            raise ValueError(f"this state_dict does not belong to a {type(self).__name__}: "
                             f"unexpected extra state {sorted(unknown)}")
        for name, value in state.items():
            setattr(self, name, value)
