"""A linear layer driven by GIF spike trains (SpikeLLM): the input of ``nn.Linear`` is
quantized per token and sent as the spike train of a :class:`neuron_zoo.GIFNode`; the matrix
product runs once per time step on the spikes and is accumulated.

Per token ``n`` (a row of the input, ``C`` channels) with range ``[lo_n, hi_n]`` (asymmetric,
dynamic, as per-token activation quantization in OmniQuant / SpikeLLM) and ``T_c`` steps for
channel ``c`` (``T`` for every channel unless per-channel steps are set, the OBS allocation)::

    Delta_n   = (hi_n - lo_n) / (T (L - 1))                 base step of the token's code
    u_nc      = (x_nc - lo_n) / Delta_n * T_c / T           in [0, T_c (L - 1)]
    s[t]_nc   = GIF spike of u_nc at step t                 (levels 0 .. L-1, rounding 'nearest')
    y_n       = Delta_n * sum_t sum_c s[t]_nc (T / T_c) W_oc  +  lo_n * sum_c W_oc  +  b_o

so channel ``c`` is quantized with ``T_c (L - 1) + 1`` levels over the token's range (a salient
channel with more steps gets a finer step ``Delta_n T / T_c``). ``path='fake'`` computes the same
codes in one step (:func:`neuron_zoo.gif_quantize`, ``k = sum_t s[t]``) and one matrix product,
``y = Delta * sum_c k_c (T / T_c) W_oc + lo * sum_c W_oc + b``, the same expression: bit-identical
to the spike path for one step, equal up to the order of floating-point sums for more. (Computing
``W (lo + Delta k)`` instead is the same in exact arithmetic but not in float32, and at 4-bit
activations a 30-layer model is chaotic enough for such rounding to flip codes downstream: on
SmolLM2 that form gave perplexity 18465 against the spike path's 22162.) Weights stay as they are
(full precision).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from neuron_zoo import GIFNode, gif_quantize
from neuron_zoo.gif import check_channel_steps
from neuron_zoo.validation import check_choice, check_positive_int

PATHS = ("spike", "fake")


class GIFLinear(nn.Module):
    """``nn.Linear`` whose input is a per-token GIF spike train (module docstring). Holds the
    wrapped layer's ``weight`` and ``bias`` (the same parameters)."""

    def __init__(self, linear: nn.Linear, levels: int, steps: int, path: str = "spike"):
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"GIFLinear wraps an nn.Linear, got {type(linear).__name__}")
        self.weight, self.bias = linear.weight, linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.neuron = GIFNode(levels=levels, rounding="nearest")
        self.neuron.record_stats = False
        self.levels = levels
        self.steps = check_positive_int("steps", steps)
        self.path = check_choice("path", path, PATHS)
        self.register_buffer("channel_steps", None)

    def set_channel_steps(self, steps: Optional[torch.Tensor]) -> None:
        """Steps per input channel (None: ``steps`` for every channel)."""
        if steps is not None:
            steps = check_channel_steps(steps)
            if steps.numel() != self.in_features:
                raise ValueError(f"channel steps has {steps.numel()} entries; the layer has "
                                 f"{self.in_features} input channels")
            if int(steps.min()) < 1:
                raise ValueError("channel steps must be >= 1 (a channel with 0 steps would be dropped)")
        self.channel_steps = steps
        self.neuron.set_channel_steps(steps)

    @property
    def average_steps(self) -> float:
        return self.steps if self.channel_steps is None else self.channel_steps.float().mean().item()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo = x.amin(-1, keepdim=True)
        delta = (x.amax(-1, keepdim=True) - lo).clamp_min(1e-8) / (self.steps * (self.levels - 1))
        u = (x - lo) / delta
        channel_scale = None
        if self.channel_steps is not None:
            channel_scale = self.channel_steps.to(x.dtype) / self.steps  # T_c / T
            u = u * channel_scale
        weight = self.weight if channel_scale is None else self.weight / channel_scale
        if self.path == "fake":
            steps = self.steps if self.channel_steps is None else self.channel_steps
            acc = gif_quantize(u, self.levels, steps, rounding="nearest") @ weight.t()
        else:
            total_steps = self.steps if self.channel_steps is None else int(self.channel_steps.max())
            spikes = self.neuron.decompose(u, total_steps)
            self.neuron.reset()
            acc = spikes[0] @ weight.t()
            for s in spikes[1:]:
                acc = acc + s @ weight.t()
        y = delta * acc + lo * self.weight.sum(1)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, levels={self.levels}, "
                f"steps={self.steps}, average_steps={self.average_steps:.3f}, path={self.path!r}")
