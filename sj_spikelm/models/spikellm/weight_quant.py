"""Per-output-channel asymmetric weight quantization (RTN) and OmniQuant's learnable weight
clipping (LWC, Shao et al., ICLR 2024, Eq. 2) for :class:`~.gif_linear.GIFLinear`.

For the row ``W_o`` of an ``[O, C]`` weight, ``b`` bits, clip logits ``gamma_o, beta_o``
(RTN: no clipping, ``sigmoid -> 1``)::

    hi_o = sigmoid(gamma_o) max_c W_oc        lo_o = sigmoid(beta_o) min_c W_oc
    h_o  = (hi_o - lo_o) / (2^b - 1)          z_o = round(-lo_o / h_o)
    n_oc = clamp(round(W_oc / h_o) + z_o, 0, 2^b - 1) - z_o          (an integer)
    W_oc ≈ h_o n_oc

``round`` is straight-through (gradient 1) so ``gamma, beta`` are trained by back-propagation
(OmniQuant initialises the logits at 4, ``sigmoid(4) = 0.982``). The integer matrix ``n`` and the
scale ``h`` are kept apart so that a product with integer activation codes is exact in floating
point (:class:`~.gif_linear.GIFLinear`).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

LWC_INIT = 4.0
"""OmniQuant's initial clip logit (``sigmoid(4) = 0.982`` of the row's max / min)."""


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` forward, identity gradient (straight-through)."""
    return x + (torch.round(x) - x).detach()


def quantize_weight(weight: torch.Tensor, bits: int, upper: Optional[torch.Tensor] = None,
                    lower: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(n, h)`` of the module docstring: ``n`` ``[O, C]`` integer-valued (float dtype, STE
    gradient), ``h`` ``[O, 1]``; ``upper`` / ``lower`` the ``[O, 1]`` clip logits (None: RTN)."""
    top = 2 ** bits - 1
    hi = weight.amax(1, keepdim=True)
    lo = weight.amin(1, keepdim=True)
    if upper is not None:
        hi = torch.sigmoid(upper) * hi
    if lower is not None:
        lo = torch.sigmoid(lower) * lo
    scale = ((hi - lo) / top).clamp_min(1e-8)
    zero = round_ste(-lo / scale)
    codes = torch.clamp(round_ste(weight / scale) + zero, 0, top)
    return codes - zero, scale
