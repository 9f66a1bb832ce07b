"""Cost of a converted model's decoder projections per token: SpikeLLM's ACE-style count and the
energy of the spike path against the FP16 model (45 nm, Horowitz 2014, the presets of
:mod:`sj_spikelm.energy.accounting`).

For a :class:`~.gif_linear.GIFLinear` with ``O`` outputs and input channels ``c`` of ``T_c``
steps of ``L`` levels, weights of ``b_w`` bits (16 when float)::

    ACE    = sum_layers O * sum_c T_c                     (matrix-product size times steps)
    BitOps = sum_layers O * sum_c T_c * log2(L) * b_w
    E_FP16 = sum_layers O * C * E_MAC                     (dense FP16 MACs)
    E_SNN  = sum_layers O * (events / tokens) * E_AC      (one accumulate per non-zero spike)

``events`` are the non-zero spikes counted by the spike path (``path='spike'``) over the
evaluated tokens; a multi-level spike ``s`` is one accumulate of ``s * W`` (a shift-add of a
small integer, counted as one AC). Attention products, the LM head, norms and SiLU are left out.
"""
from __future__ import annotations

import math
from typing import Dict

from torch import nn

from sj_spikelm.energy.accounting import check_precision

from .gif_linear import GIFLinear


def spikellm_cost(model: nn.Module, precision: str = "fp16") -> Dict[str, float]:
    """``{"ace", "macs", "bitops", "energy_fp16_uj", "energy_spike_uj", "energy_ratio"}`` per
    token over the :class:`GIFLinear` layers of ``model`` (module docstring); the spike energy
    only when the spike path has counted tokens (else None)."""
    cost = check_precision(precision)
    layers = [m for m in model.modules() if isinstance(m, GIFLinear)]
    ace = macs = bitops = events = 0.0
    counted = bool(layers) and all(m.tokens > 0 for m in layers)
    for m in layers:
        steps = m.average_steps * m.in_features
        ace += m.out_features * steps
        macs += m.out_features * m.in_features
        bits = math.log2(m.levels) if m.levels else 16.0
        bitops += m.out_features * steps * bits * (m.weight_bits or 16)
        if counted:
            events += m.out_features * m.events / m.tokens
    fp16 = macs * cost.e_mac_pj * 1e-6
    spike = events * cost.e_ac_pj * 1e-6 if counted else None
    return {"ace": ace, "macs": macs, "bitops": bitops, "energy_fp16_uj": fp16, "energy_spike_uj": spike,
            "energy_ratio": None if spike is None else spike / fp16}
