"""The SpikeLM elastic bi-spike neuron: ternary spikes ``{-a, 0, +a}`` whose amplitude
(and so firing frequency) is calibrated per time step from the data."""
from __future__ import annotations

from typing import Optional

import torch

from .amplitude_node import AmplitudeSpikeNode
from .calibration import CalibratedNeuron, StepState, global_sum_count
from .validation import check_choice, check_real

ALPHA_MODES = ("calibrated", "learnable")
ALPHA_EPS = 1e-5


class ElasticBiNode(CalibratedNeuron, AmplitudeSpikeNode):
    """Elastic bi-spike neuron (SpikeLM, Sec. 3). Charge / fire / reset as in
    :class:`AmplitudeSpikeNode`, with the amplitude (Eq. 10)::

        alpha[t] = k * mean(|m[t]|)

    taken over all (valid) elements of the first batch that reaches step ``t`` in training
    mode (or :meth:`calibrate`), then frozen. ``alpha`` is a ``[T]`` buffer
    (``alpha='calibrated'``) or parameter (``alpha='learnable'``, trained with the LSQ
    step-size gradient, Table 7) saved in the ``state_dict`` next to the ``[T]`` bool
    ``calibrated`` flags: the :class:`~neuron_zoo.calibration.CalibratedNeuron` protocol. With
    ``T`` given both exist with their final shape from construction (``alpha='learnable'``
    requires it); ``T=None`` sizes them from the first calibrating multi-step input.

    A statistic that is not finite and positive (NaN or +-inf in the batch, only zeros) or
    taken over no valid element (empty batch, all padding) is refused with
    :class:`~neuron_zoo.calibration.CalibrationError`; the step stays uncalibrated. Under
    ``torch.distributed`` the sum and count are all-reduced, so every rank holds the same
    ``alpha``. An uncalibrated step in eval mode raises. While in use the amplitude is
    ``max(alpha[t], 1e-5)`` (a learnable alpha may be trained towards 0).

    ``threshold_scale=0.5`` reproduces the public code (``round(m / a).clamp(-1, 1) * a``;
    it sends exact ties ``|m| = a/2`` to 0, we send them to ``+-a``); ``threshold_scale=1.0``
    is Eq. 11 as written (fire only when ``|m| >= a``). ``bidirectional=False`` gives spikes
    ``{0, +a}`` (Table 6 row "{0, a}"), with the straight-through range ``[0, a]``.
    """

    def __init__(self, k: float = 2.0, decay: float = 0.25, threshold_scale: float = 0.5,
                 reset: str = "reference", alpha: str = "calibrated", bidirectional: bool = True,
                 T: Optional[int] = None, step_mode: str = "m"):
        super().__init__(decay, threshold_scale, reset, bidirectional, step_mode)
        self.k = check_real("k", k, 0.0, low_open=True)
        self.alpha_mode = check_choice("alpha", alpha, ALPHA_MODES)
        self.init_calibration(T, alpha=StepState(learnable=alpha == "learnable", positive=True))

    def amplitude(self, t: int, m: torch.Tensor) -> torch.Tensor:
        """``max(alpha[t], 1e-5)``, calibrating ``alpha[t] = k * mean|m[t]|`` first (over the
        valid elements, all ranks) if step ``t`` is not calibrated yet (Eq. 10)."""
        if self.needs_calibrating(t):
            total, count = global_sum_count(m.detach().abs(), self.valid_mask)
            self.store_calibration(t, count, alpha=self.k * total / count.clamp_min(1.0))
        return self.alpha[t].clamp_min(ALPHA_EPS)

    def step_amplitudes(self, t0: int, steps: int, device: torch.device) -> Optional[torch.Tensor]:
        """``alpha[t0 : t0 + steps]`` clamped like :meth:`amplitude`, or None if some of these
        steps are not calibrated yet (the torch path then calibrates them, or raises in eval)."""
        if not all(self._flags()[t0:t0 + steps]):
            return None
        return self.alpha[t0:t0 + steps].clamp_min(ALPHA_EPS)

    def extra_repr(self) -> str:
        return (f"k={self.k}, alpha={self.alpha_mode!r}, T={self.T}, "
                f"calibrated_steps={self.calibrated_steps}, " + super().extra_repr())
