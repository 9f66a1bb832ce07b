"""The SpikeLM elastic bi-spike neuron: ternary spikes ``{-a, 0, +a}`` whose amplitude
(and so firing frequency) is calibrated per time step from the data."""
from __future__ import annotations

from typing import Optional

import torch

from .amplitude_node import AmplitudeSpikeNode
from .calibration import CalibratedNeuron, StepState, global_sum_count
from .lifecycle import neuron_label
from .validation import check_choice, check_positive_int, check_real

ALPHA_MODES = ("calibrated", "learnable")
AMPLITUDE_MODES = ("tensor", "channel")
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

    ``amplitude='channel'`` gives every input channel ``c`` (the last dimension) its own
    amplitude, ``alpha[t, c] = k * mean(|m[t, ..., c]|)`` over the same elements: ``alpha`` is
    ``[T, C]`` (``channels=C`` is then required; models pass their layer's input width). The
    spikes ``alpha[t] * q`` with ternary ``q`` stay spike-driven: in front of a linear layer,
    ``W (alpha[t] * q) = (W diag(alpha[t])) q``, see :func:`sj_spikelm.models.folding.fold_amplitudes`.
    Calibration, the ``calibrated`` flags, loading and the DDP all-reduce work per channel alike
    (a channel with no non-zero input is refused like an all-zero step). The CuPy backend does
    not run it (``backend='cupy'`` raises naming the option). ``channels`` sizes the per-channel
    state and is checked against the input's last dimension; models pass it to every neuron
    that takes it (a per-tensor neuron only records it); it is never part of a spec.

    ``threshold_scale=0.5`` reproduces the public code (``round(m / a).clamp(-1, 1) * a``;
    it sends exact ties ``|m| = a/2`` to 0, we send them to ``+-a``); ``threshold_scale=1.0``
    is Eq. 11 as written (fire only when ``|m| >= a``). ``bidirectional=False`` gives spikes
    ``{0, +a}`` (Table 6 row "{0, a}"), with the straight-through range ``[0, a]``.
    """

    def __init__(self, k: float = 2.0, decay: float = 0.25, threshold_scale: float = 0.5,
                 reset: str = "reference", alpha: str = "calibrated", bidirectional: bool = True,
                 amplitude: str = "tensor", channels: Optional[int] = None, T: Optional[int] = None,
                 step_mode: str = "m"):
        check_choice("amplitude", amplitude, AMPLITUDE_MODES)
        if channels is not None:
            check_positive_int("channels", channels)
        elif amplitude == "channel":
            raise ValueError("elastic_bi(amplitude='channel') needs channels (the input's last dimension) "
                             "at construction, e.g. channels=384; models pass each layer's input width")
        super().__init__(decay, threshold_scale, reset, bidirectional, step_mode)
        self.amplitude_mode = amplitude
        self.channels = channels
        self.k = check_real("k", k, 0.0, low_open=True)
        self.alpha_mode = check_choice("alpha", alpha, ALPHA_MODES)
        shape = (channels,) if amplitude == "channel" else ()
        self.init_calibration(T, alpha=StepState(learnable=alpha == "learnable", positive=True, shape=shape))

    @AmplitudeSpikeNode.backend.setter
    def backend(self, value: str) -> None:
        if value == "cupy" and self.amplitude_mode == "channel":
            raise ValueError(f"{neuron_label(self)}: backend='cupy' does not support amplitude='channel' "
                             "(the fused kernels take one amplitude per step); use backend='torch'")
        AmplitudeSpikeNode.backend.fset(self, value)

    def amplitude(self, t: int, m: torch.Tensor) -> torch.Tensor:
        """``max(alpha[t], 1e-5)``, calibrating ``alpha[t] = k * mean|m[t]|`` first (over the
        valid elements, all ranks; per channel with ``amplitude='channel'``) if step ``t`` is not
        calibrated yet (Eq. 10)."""
        if self.amplitude_mode == "channel" and m.shape[-1] != self.channels:
            raise ValueError(f"{neuron_label(self)} was built with channels={self.channels} but its input "
                             f"has shape {tuple(m.shape)} (last dimension {m.shape[-1]})")
        if self.needs_calibrating(t):
            total, count = global_sum_count(m.detach().abs(), self.valid_mask,
                                            per_channel=self.amplitude_mode == "channel")
            self.store_calibration(t, count, alpha=self.k * total / count.clamp_min(1.0))
        return self.alpha[t].clamp_min(ALPHA_EPS)

    def step_amplitudes(self, t0: int, steps: int, device: torch.device) -> Optional[torch.Tensor]:
        """``alpha[t0 : t0 + steps]`` clamped like :meth:`amplitude`, or None if some of these
        steps are not calibrated yet (the torch path then calibrates them, or raises in eval)."""
        if not all(self._flags()[t0:t0 + steps]):
            return None
        return self.alpha[t0:t0 + steps].clamp_min(ALPHA_EPS)

    def extra_repr(self) -> str:
        return (f"k={self.k}, alpha={self.alpha_mode!r}, amplitude={self.amplitude_mode!r}, "
                f"channels={self.channels}, T={self.T}, "
                f"calibrated_steps={self.calibrated_steps}, " + super().extra_repr())
