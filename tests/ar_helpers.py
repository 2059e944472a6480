"""Helpers shared by the tests of chapter 6's autoregressive models."""

from __future__ import annotations

import itertools

import torch


def every_configuration(d: int, levels: int = 2) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(levels), repeat=d)), dtype=torch.float64)


def randomise(model: torch.nn.Module, scale: float = 1.0, seed: int = 0) -> torch.nn.Module:
    """Random non-zero weights everywhere (biases too), so that no dependency hides."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model


def support(fn, x: torch.Tensor) -> torch.Tensor:
    """``[D_out, D_in]`` boolean: does output i depend on input j at x (autograd Jacobian)?"""
    jac = torch.autograd.functional.jacobian(fn, x)
    return jac.reshape(jac.shape[0], -1, x.numel()).abs().sum(1) > 0
