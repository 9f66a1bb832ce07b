"""Neurons with a fixed unit amplitude: the paper's STE-LIF baseline and the fixed-threshold
ternary neuron. Same mechanism as the elastic neuron, without elastic encoding."""
from __future__ import annotations

import torch

from .amplitude_node import AmplitudeSpikeNode
from .validation import check_real


class UnitAmplitudeNode(AmplitudeSpikeNode):
    """An amplitude-coded neuron whose amplitude is 1 at every step."""

    def amplitude(self, t, m) -> float:
        return 1.0

    def step_amplitudes(self, t0: int, steps: int, device: torch.device) -> torch.Tensor:
        return torch.ones(steps, device=device)


class STELIFNode(UnitAmplitudeNode):
    """LIF with a straight-through gradient, the paper's LIF-BERT baseline (App. A.1,
    Eq. 19-20)::

        m[t] = decay * m[t-1] * (1 - s[t-1]) + x[t]     (hard reset to 0)
        s[t] = 1 if m[t] >= v_threshold else 0
        ds/dm = d clip(m, 0, 1) / dm = 1 if 0 <= m <= 1 else 0
    """

    def __init__(self, decay: float = 0.25, v_threshold: float = 1.0, step_mode: str = "m"):
        v_threshold = check_real("v_threshold", v_threshold, 0.0, low_open=True)
        super().__init__(decay, v_threshold, "hard", False, step_mode)

    def extra_repr(self) -> str:
        return (f"decay={self.decay}, v_threshold={self.threshold_scale}, "
                f"step_mode={self.step_mode!r}, backend={self.backend!r}")


class TernaryFixedNode(UnitAmplitudeNode):
    """Bidirectional spikes ``{-1, 0, +1}`` with a fixed threshold (Eq. 8)::

        s[t] = +1 if m[t] >= v_threshold, -1 if m[t] <= -v_threshold, else 0

    with the straight-through gradient on ``[-1, 1]`` and the charge / reset of
    :class:`AmplitudeSpikeNode` at ``a = 1``. ``v_threshold=0.5`` equals the public code's
    ``round(m).clamp(-1, 1)``; the Table 6 row "{-1, 0, 1}" (no elastic encoding)."""

    def __init__(self, decay: float = 0.25, v_threshold: float = 0.5, reset: str = "reference",
                 step_mode: str = "m"):
        v_threshold = check_real("v_threshold", v_threshold, 0.0, low_open=True)
        super().__init__(decay, v_threshold, reset, True, step_mode)
