"""A linear layer driven by GIF spike trains (SpikeLLM): the input of ``nn.Linear`` is
quantized per token and sent as the spike train of a :class:`neuron_zoo.GIFNode`; the matrix
product runs once per time step on the spikes and is accumulated.

Channels are grouped by their step count ``T_g`` (one group with ``T`` steps unless per-channel
steps are set, the OBS allocation). Per token ``n`` (a row of the input) and group ``g`` with
range ``[lo_ng, hi_ng]`` over the group's channels (asymmetric, dynamic, as per-token activation
quantization in OmniQuant / SpikeLLM)::

    Delta_ng = (hi_ng - lo_ng) / (T_g (L - 1))
    u_nc     = (x_nc - lo_ng) / Delta_ng                   in [0, T_g (L - 1)], c in g
    s[t]_nc  = GIF spike of u_nc at step t < T_g            (levels 0 .. L-1, rounding 'nearest')
    y_n      = b + sum_g [Delta_ng sum_{t<T_g} sum_{c in g} s[t]_nc W_oc + lo_ng sum_{c in g} W_oc]

so a group is quantized with ``T_g (L - 1) + 1`` levels over its own range: salient (outlier)
channels, given more steps, no longer stretch the step of the others. The spikes of all channels
come from one neuron with per-channel step counts; per step, one product per group.
``path='fake'`` evaluates the same expression on the summed codes ``k = sum_t s[t]``
(:func:`neuron_zoo.gif_quantize`), one product per group: bit-identical to the spike path for one
step, equal up to the order of floating-point sums for more. (Computing ``W (lo + Delta k)``
instead is equal in exact arithmetic only; on SmolLM2 at 4-bit activations that form gave
perplexity 18465 against the spike path's 22162 on the same windows.) Weights stay as they are
(full precision).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

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
        """Steps per input channel (None: ``steps`` for every channel); channels with the same
        count form a group with its own per-token range."""
        if steps is not None:
            steps = check_channel_steps(steps).to(self.weight.device)
            if steps.numel() != self.in_features:
                raise ValueError(f"channel steps has {steps.numel()} entries; the layer has "
                                 f"{self.in_features} input channels")
            if int(steps.min()) < 1:
                raise ValueError("channel steps must be >= 1 (a channel with 0 steps would be dropped)")
        self.channel_steps = steps
        self.neuron.set_channel_steps(steps)

    def groups(self) -> List[Tuple[Optional[torch.Tensor], int]]:
        """``[(channel indices, or None for all, steps)]``, one entry per distinct step count."""
        if self.channel_steps is None:
            return [(None, self.steps)]
        return [(torch.nonzero(self.channel_steps == t).flatten(), t)
                for t in torch.unique(self.channel_steps).tolist()]

    @property
    def average_steps(self) -> float:
        return self.steps if self.channel_steps is None else self.channel_steps.float().mean().item()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
        if self.path == "fake":
            steps = self.steps if self.channel_steps is None else self.channel_steps
            trains = [gif_quantize(u, self.levels, steps, rounding="nearest")]
        else:
            trains = self.neuron.decompose(u, max(steps for _, steps in groups)).unbind(0)
            self.neuron.reset()
        y = 0.0 if self.bias is None else self.bias
        for (idx, steps), (lo, delta) in zip(groups, scales):
            weight = self.weight if idx is None else self.weight.index_select(1, idx)
            acc = None
            for s in trains[:steps]:
                product = (s if idx is None else s.index_select(-1, idx)) @ weight.t()
                acc = product if acc is None else acc + product
            y = y + (delta * acc + lo * weight.sum(1))
        return y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, levels={self.levels}, "
                f"steps={self.steps}, average_steps={self.average_steps:.3f}, path={self.path!r}")
