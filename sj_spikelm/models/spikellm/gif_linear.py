"""A linear layer driven by GIF spike trains (SpikeLLM): the input of ``nn.Linear`` is
quantized per token and sent as the spike train of a :class:`neuron_zoo.GIFNode`; the matrix
product runs once per time step on the spikes and is accumulated. Optionally the weights are
quantized per output channel (``weight_bits``, RTN or learnable clipping,
:mod:`.weight_quant`) and the input is smoothed by a per-channel scale (SmoothQuant).

Channels are grouped by their step count ``T_g`` (one group with ``T`` steps unless per-channel
steps are set, the OBS allocation). Per token ``n`` (a row of the input) and group ``g`` with
range ``[lo_ng, hi_ng]`` over the group's channels (asymmetric, dynamic, as per-token activation
quantization in OmniQuant / SpikeLLM)::

    x        <- x / s                                      (smoothing, s = 1 without it)
    Delta_ng = (hi_ng - lo_ng) / (T_g (L - 1))
    u_nc     = (x_nc - lo_ng) / Delta_ng                   in [0, T_g (L - 1)], c in g
    s[t]_nc  = GIF spike of u_nc at step t < T_g            (levels 0 .. L-1, rounding 'nearest')
    P_ng     = sum_{t<T_g} s[t]_ng N_gᵀ                     (one product per step and group)
    y_n      = b + h ⊙ sum_g [Delta_ng P_ng + lo_ng sum_{c in g} N_c]

with ``N`` the weight as used in the products: the integer matrix ``n`` of
:func:`~.weight_quant.quantize_weight` and ``h`` its per-output scale (W4), or the float weight
``W diag(s)`` and ``h = 1`` (no weight quantization). ``path='fake'`` evaluates the same
expression with ``P_ng = k_ng N_gᵀ`` on the summed codes ``k = sum_t s[t]``
(:func:`neuron_zoo.gif_quantize`), one product per group. With quantized weights both products
are sums of integers: exact in floating point while ``C · T_max (L - 1) · max|n| < 2^24``
(float32; float64 is used above that bound), so the two paths are **bit-identical** for any step
count. With float weights they are bit-identical for one step and equal up to the order of
floating-point sums for more.

A layer being calibrated (:meth:`GIFLinear.enable_clipping`) quantizes its float weight on the
fly with learnable clip logits (straight-through rounding); :meth:`GIFLinear.freeze_weight`
replaces the float weight by the integer matrix ``weight_int`` (int16) and ``weight_scale``.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from neuron_zoo import GIFNode, gif_quantize
from neuron_zoo.gif import check_channel_steps
from neuron_zoo.validation import check_choice, check_positive_int

from .weight_quant import LWC_INIT, quantize_weight

PATHS = ("spike", "fake")
EXACT_FLOAT32 = 2 ** 24
"""Integers up to this magnitude are exact in float32 (24-bit significand)."""


class GIFLinear(nn.Module):
    """``nn.Linear`` whose input is a per-token GIF spike train (module docstring). Holds the
    wrapped layer's ``weight`` and ``bias`` (the same parameters until smoothing or freezing)."""

    def __init__(self, linear: nn.Linear, levels: int, steps: int, path: str = "spike",
                 weight_bits: int = 0):
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"GIFLinear wraps an nn.Linear, got {type(linear).__name__}")
        self.weight, self.bias = linear.weight, linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features
        if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or not 0 <= weight_bits <= 8:
            raise ValueError(f"weight_bits={weight_bits!r} is not accepted; an int in 1..8, "
                             "or 0 (float weights)")
        self.weight_bits = weight_bits
        self.clip_upper: Optional[nn.Parameter] = None
        self.clip_lower: Optional[nn.Parameter] = None
        for name in ("channel_steps", "smooth", "saliency", "weight_int", "weight_scale"):
            self.register_buffer(name, None)
        self.reset_counts()
        self.float_inputs = False  # True: skip the activation quantizer (weight-only calibration)
        self.configure_activations(levels, steps, path)

    # ---- configuration ---------------------------------------------------------------------
    def configure_activations(self, levels: int, steps: int, path: str) -> None:
        """``levels`` per spike (0: activations stay floating point, no spikes), ``steps`` per
        channel (per-channel steps are cleared), ``path``."""
        if isinstance(levels, bool) or not isinstance(levels, int) or levels == 1 or levels < 0:
            raise ValueError(f"levels={levels!r} is not accepted; an int >= 2, or 0 (float activations)")
        self.neuron = GIFNode(levels=levels, rounding="nearest") if levels else None
        if self.neuron is not None:
            self.neuron.record_stats = False
        self.levels = levels
        self.steps = check_positive_int("steps", steps)
        self.path = check_choice("path", path, PATHS)
        self.set_channel_steps(None)

    def set_channel_steps(self, steps: Optional[torch.Tensor]) -> None:
        """Steps per input channel (None: ``steps`` for every channel); channels with the same
        count form a group with its own per-token range."""
        if steps is not None:
            steps = check_channel_steps(steps).to(self._device())
            if steps.numel() != self.in_features:
                raise ValueError(f"channel steps has {steps.numel()} entries; the layer has "
                                 f"{self.in_features} input channels")
            if int(steps.min()) < 1:
                raise ValueError("channel steps must be >= 1 (a channel with 0 steps would be dropped)")
        if steps is not None and not self.levels:
            raise ValueError("channel steps need spiking activations (levels >= 2), got levels=0")
        self.channel_steps = steps
        if self.neuron is not None:
            self.neuron.set_channel_steps(steps)

    def set_smoothing(self, scale: torch.Tensor) -> None:
        """SmoothQuant: ``x <- x / s``, ``W <- W diag(s)`` (the layer's function is unchanged
        before quantization); before :meth:`freeze_weight`."""
        if self.weight is None:
            raise RuntimeError("set_smoothing needs the float weight (call it before freeze_weight)")
        if scale.shape != (self.in_features,) or not bool((scale > 0).all()):
            raise ValueError(f"smoothing scale must be positive with shape ({self.in_features},), "
                             f"got {tuple(scale.shape)}")
        scale = scale.to(self.weight).clone()  # own tensor (layers sharing an input share the values)
        self.smooth = scale if self.smooth is None else self.smooth * scale
        self.weight = nn.Parameter(self.weight.detach() * scale, requires_grad=self.weight.requires_grad)

    def enable_clipping(self) -> List[nn.Parameter]:
        """Learnable per-output-channel clip logits (OmniQuant LWC, :mod:`.weight_quant`),
        initialised at :data:`LWC_INIT`; returns them."""
        if not self.weight_bits or self.weight is None:
            raise RuntimeError("learnable clipping needs weight_bits > 0 and the float weight")
        init = torch.full((self.out_features, 1), LWC_INIT, device=self.weight.device)
        self.clip_upper, self.clip_lower = nn.Parameter(init.clone()), nn.Parameter(init.clone())
        return [self.clip_upper, self.clip_lower]

    @torch.no_grad()
    def freeze_weight(self) -> None:
        """Replace the float weight by ``weight_int`` / ``weight_scale`` (the clip logits are
        used once and dropped)."""
        if not self.weight_bits or self.weight is None:
            return
        ints, scale = quantize_weight(self.weight.float(), self.weight_bits, self.clip_upper, self.clip_lower)
        self.weight_int, self.weight_scale = ints.to(torch.int16), scale.to(self.weight.dtype)
        self.weight = self.clip_upper = self.clip_lower = None

    def reset_counts(self) -> None:
        """Zero the spike counters of the spike path: ``events`` (non-zero spikes), ``tokens``."""
        self.events, self.tokens = 0, 0

    # ---- introspection -----------------------------------------------------------------------
    def _device(self) -> torch.device:
        return (self.weight if self.weight is not None else self.weight_int).device

    def groups(self) -> List[Tuple[Optional[torch.Tensor], int]]:
        """``[(channel indices, or None for all, steps)]``, one entry per distinct step count."""
        if self.channel_steps is None:
            return [(None, self.steps)]
        return [(torch.nonzero(self.channel_steps == t).flatten(), t)
                for t in torch.unique(self.channel_steps).tolist()]

    @property
    def average_steps(self) -> float:
        """Average steps per input channel (1 for float activations)."""
        if not self.levels:
            return 1.0
        return self.steps if self.channel_steps is None else self.channel_steps.float().mean().item()

    def product_weight(self, dtype: torch.dtype) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``(N, h)`` of the module docstring (``h`` None for float weights)."""
        if self.weight_int is not None:
            return self.weight_int.to(dtype), self.weight_scale.to(dtype)
        if self.weight_bits:
            return quantize_weight(self.weight, self.weight_bits, self.clip_upper, self.clip_lower)
        return self.weight, None

    def dequantized_weight(self) -> torch.Tensor:
        """``h ⊙ N`` (the weight the layer applies to the smoothed input)."""
        ints, scale = self.product_weight(torch.float32 if self.weight is None else self.weight.dtype)
        return ints if scale is None else ints * scale

    # ---- forward -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.smooth is not None:
            x = x / self.smooth
        if not self.levels or self.float_inputs:
            matrix, scale = self.product_weight(x.dtype)
            if scale is None:
                return F.linear(x, matrix, self.bias)
            y = F.linear(x, matrix) * scale.view(-1)
            return y if self.bias is None else y + self.bias
        groups = self.groups()
        u = None if groups[0][0] is None else torch.empty_like(x)
        scales = []
        for idx, steps in groups:
            xg = x if idx is None else x.index_select(-1, idx)
            lo = xg.amin(-1, keepdim=True)
            delta = (xg.amax(-1, keepdim=True) - lo).clamp_min(1e-8) / (steps * (self.levels - 1))
            if idx is None:
                u = (xg - lo) / delta
            else:
                u.index_copy_(-1, idx, (xg - lo) / delta)
            scales.append((lo, delta))
        matrix, scale = self.product_weight(x.dtype)
        max_steps = max(steps for _, steps in groups)
        wide = scale is not None and (self.in_features * max_steps * (self.levels - 1) * 2 ** self.weight_bits
                                       >= EXACT_FLOAT32) and x.dtype == torch.float32
        if wide:  # integer sums beyond float32's exact range: accumulate in float64
            matrix = matrix.double()
        if self.path == "fake":
            steps = self.steps if self.channel_steps is None else self.channel_steps
            trains = [gif_quantize(u, self.levels, steps, rounding="nearest")]
        else:
            trains = self.neuron.decompose(u, max_steps).unbind(0)
            self.neuron.reset()
            if not torch.is_grad_enabled():
                self.events += sum(int(torch.count_nonzero(s)) for s in trains)
                self.tokens += u.numel() // self.in_features
        y = None
        for (idx, steps), (lo, delta) in zip(groups, scales):
            weight = matrix if idx is None else matrix.index_select(1, idx)
            acc = None
            for s in trains[:steps]:
                product = (s if idx is None else s.index_select(-1, idx)).to(weight.dtype) @ weight.t()
                acc = product if acc is None else acc + product
            term = delta * acc.to(x.dtype) + lo * weight.sum(1).to(x.dtype)
            y = term if y is None else y + term
        if scale is not None:
            y = y * scale.view(-1)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, levels={self.levels}, "
                f"steps={self.steps}, average_steps={self.average_steps:.3f}, path={self.path!r}, "
                f"weight_bits={self.weight_bits}, smoothing={self.smooth is not None}")
