"""Spiking keys and values in attention (SpikeLLM): the keys (after the rotary embedding) and the
values of every attention layer become per-token, per-head GIF spike trains, with OBS saliency
per head and channel giving the salient channels of each head more steps.

Per token ``n``, KV head ``h`` and step group ``g`` of that head's channels (the same
per-token asymmetric code as :class:`~.gif_linear.GIFLinear`)::

    Delta = (hi - lo) / (T_g (L - 1)),   k_c = sum_{t<T_g} s[t]_c  (GIF spikes of (x_c - lo) / Delta)
    x̂_c  = lo + Delta k_c

The spike counts ``k`` are integers, so the spike path (``GIFNode.decompose`` summed over
steps) and the quantizer path (:func:`neuron_zoo.gif_quantize`) give the same ``x̂`` bit for bit;
the attention products ``Q x̂_Kᵀ`` and ``A x̂_V`` then run in floating point on ``x̂`` (softmax
stays floating point).

Saliency (the first-order OBS metric of a linear map, applied to the map each operand feeds):
a key channel ``j`` of head ``h`` feeds the scores ``q·k`` of the query heads ``G(h)`` sharing
it; a value channel feeds ``o_proj`` through its columns ``W_o[:, (h', j)]``, ``h' in G(h)``::

    S^K_hj = mean_n [k ⊙ (k Q_hᵀ Q_h / N_q)]_nj        Q_h: the queries of G(h), N_q of them
    S^V_hj = mean_n [v ⊙ (v W_hᵀ W_h)]_nj               W_h = [W_o[:, (h', ·)] for h' in G(h)]

The model's attention implementation becomes ``'spikellm_sdpa'`` (scaled-dot-product attention
after the K/V spiking of the layer's :class:`KVSpiking`, or plain when it has none).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from neuron_zoo import GIFNode, gif_quantize
from neuron_zoo.validation import check_choice, check_positive_int

from .gif_linear import PATHS

ATTENTION = "spikellm_sdpa"


def head_group_code(x: torch.Tensor, steps: torch.Tensor, levels: int, path: str,
                    neuron: Optional[GIFNode] = None) -> torch.Tensor:
    """``x̂`` of the module docstring for ``x`` ``[B, H, S, D]`` and per-head-channel ``steps``
    ``[H, D]`` (each head's channels grouped by step count, per token and head)."""
    out = torch.empty_like(x)
    for t in torch.unique(steps).tolist():
        mask = (steps == t)[None, :, None, :]  # [1, H, 1, D]
        big = torch.finfo(x.dtype).max
        lo = torch.where(mask, x, big).amin(-1, keepdim=True)
        hi = torch.where(mask, x, -big).amax(-1, keepdim=True)
        delta = (hi - lo).clamp_min(1e-8) / (t * (levels - 1))
        u = torch.where(mask, (x - lo) / delta, 0.0)
        if path == "fake":
            k = gif_quantize(u, levels, t, rounding="nearest")
        else:
            k = neuron.decompose(u, t).sum(0)
            neuron.reset()
        out = torch.where(mask, lo + delta * k, out)
    return out


class KVSpiking(nn.Module):
    """The K/V spiking of one attention layer (module docstring): ``levels`` per spike,
    ``steps`` per channel, per-head-channel step counts ``key_steps`` / ``value_steps``
    (``[H_kv, head_dim]`` buffers), saliency buffers ``key_saliency`` / ``value_saliency``."""

    def __init__(self, kv_heads: int, head_dim: int, levels: int, steps: int, path: str = "spike"):
        super().__init__()
        self.levels = check_positive_int("levels", levels)
        if levels < 2:
            raise ValueError(f"levels={levels} is out of range; accepted: an int >= 2")
        self.steps = check_positive_int("steps", steps)
        self.path = check_choice("path", path, PATHS)
        self.neuron = GIFNode(levels=levels, rounding="nearest")
        self.neuron.record_stats = False
        full = torch.full((kv_heads, head_dim), steps, dtype=torch.long)
        self.register_buffer("key_steps", full.clone())
        self.register_buffer("value_steps", full.clone())
        self.register_buffer("key_saliency", None)
        self.register_buffer("value_saliency", None)

    def set_salient(self, fraction: float, salient_steps: int) -> None:
        """The top ``ceil(fraction * head_dim)`` channels of each head (by saliency) get
        ``salient_steps`` steps, the others ``steps``."""
        for name in ("key", "value"):
            saliency = getattr(self, f"{name}_saliency")
            if saliency is None:
                raise ValueError("set_salient needs the K/V saliency (calibrate with calibrate_kv first)")
            steps = torch.full_like(getattr(self, f"{name}_steps"), self.steps)
            top = math.ceil(fraction * saliency.shape[1])
            if top:
                steps.scatter_(1, torch.topk(saliency, top, dim=1).indices.to(steps.device), salient_steps)
            setattr(self, f"{name}_steps", steps)

    def average_steps(self) -> float:
        return (self.key_steps.float().mean().item() + self.value_steps.float().mean().item()) / 2

    def forward(self, key: torch.Tensor, value: torch.Tensor):
        return (head_group_code(key, self.key_steps, self.levels, self.path, self.neuron),
                head_group_code(value, self.value_steps, self.levels, self.path, self.neuron))

    def extra_repr(self) -> str:
        return (f"levels={self.levels}, steps={self.steps}, average_steps={self.average_steps():.3f}, "
                f"path={self.path!r}")


def _attention(module, query, key, value, attention_mask, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    kv = getattr(module, "kv_spiking", None)
    recorder = getattr(module, "_kv_recorder", None)
    if recorder is not None:
        recorder(module, query, key, value)
    if kv is not None:
        key, value = kv(key, value)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def use_spiking_attention(model: nn.Module) -> None:
    """Register and select the ``'spikellm_sdpa'`` attention implementation on ``model``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, _attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    model.config._attn_implementation = ATTENTION
    for m in model.modules():
        if getattr(m, "config", None) is not None and hasattr(m.config, "_attn_implementation"):
            m.config._attn_implementation = ATTENTION


class KVSaliency:
    """Accumulates ``S^K`` and ``S^V`` (module docstring) of one attention layer over calibration
    batches (set as the module's ``_kv_recorder``)."""

    def __init__(self):
        self.key = self.value = None
        self.count = 0

    def __call__(self, module, query, key, value):
        # query [B, Hq, S, D], key / value [B, Hkv, S, D]
        hkv, d = key.shape[1], key.shape[3]
        group = query.shape[1] // hkv
        q = query.detach().float().reshape(query.shape[0], hkv, group, -1, d).transpose(1, 0)
        q = q.reshape(hkv, -1, d)                                   # [Hkv, Nq, D]
        k = key.detach().float().transpose(0, 1).reshape(hkv, -1, d)   # [Hkv, N, D]
        v = value.detach().float().transpose(0, 1).reshape(hkv, -1, d)
        gram_q = q.transpose(1, 2) @ q / q.shape[1]                 # [Hkv, D, D]
        w_o = module.o_proj
        w = w_o.dequantized_weight() if hasattr(w_o, "dequantized_weight") else w_o.weight
        w = w.detach().float()
        if getattr(w_o, "smooth", None) is not None:
            w = w / w_o.smooth  # the map from the (unsmoothed) attention output
        w = w.view(w.shape[0], hkv, group, d).permute(1, 0, 2, 3).reshape(hkv, -1, d)  # [Hkv, O*G, D]
        gram_v = w.transpose(1, 2) @ w                               # [Hkv, D, D]
        s_k = (k * (k @ gram_q)).sum(1).double().cpu()
        s_v = (v * (v @ gram_v)).sum(1).double().cpu()
        self.key = s_k if self.key is None else self.key + s_k
        self.value = s_v if self.value is None else self.value + s_v
        self.count += k.shape[1]

    def result(self):
        return (self.key / self.count).float(), (self.value / self.count).float()
