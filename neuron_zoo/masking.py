"""Valid-element masks: which positions (e.g. real tokens, not padding) count in the
calibration statistic and in the firing-rate statistics of a neuron."""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
from torch import nn


def expand_mask(mask: Optional[torch.Tensor], x: torch.Tensor) -> Optional[torch.Tensor]:
    """View a boolean ``mask`` over the leading dims of one time step ``x`` (``[N, *]``) so it
    broadcasts against ``x``: a ``[B, L]`` mask for ``x`` of shape ``[B, L, D]`` becomes
    ``[B, L, 1]``. Raises ``ValueError`` if the mask is not a prefix of ``x.shape``."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise ValueError(f"valid mask must be a bool tensor, got dtype={mask.dtype}")
    if tuple(x.shape[: mask.dim()]) != tuple(mask.shape):
        raise ValueError(
            f"valid mask of shape {tuple(mask.shape)} does not match the leading dims of the "
            f"per-step input of shape {tuple(x.shape)}")
    return mask.reshape(tuple(mask.shape) + (1,) * (x.dim() - mask.dim()))


@contextlib.contextmanager
def valid_mask(module: nn.Module, mask: Optional[torch.Tensor]) -> Iterator[None]:
    """Within the block, every zoo neuron in ``module`` counts only the elements where
    ``mask`` (bool, leading dims of its per-step input, e.g. ``[B, L]``) is True, both when it
    calibrates and in its firing-rate statistics."""
    nodes = [m for m in module.modules() if hasattr(m, "valid_mask")]
    previous = [n.valid_mask for n in nodes]
    for n in nodes:
        n.valid_mask = mask
    try:
        yield
    finally:
        for n, p in zip(nodes, previous):
            n.valid_mask = p
