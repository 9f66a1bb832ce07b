"""The SpikeLM elastic bi-spike neuron: ternary spikes ``{-a, 0, +a}`` whose amplitude
(and so firing frequency) is calibrated per time step from the data."""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
from torch import nn

from .amplitude_node import AmplitudeSpikeNode
from .masking import expand_mask, valid_mask
from .validation import check_choice, check_real

ALPHA_MODES = ("calibrated", "learnable")
ALPHA_EPS = 1e-5


def global_abs_mean(m: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``mean(|m|)`` over the elements selected by ``mask`` (all if None), averaged over every
    rank of ``torch.distributed`` (sums and counts all-reduced) when it is initialised.
    Stays on the device: no host synchronisation."""
    a = m.detach().abs()
    mask = expand_mask(mask, a)
    if mask is None:
        total = a.sum()
        count = torch.tensor(float(a.numel()), dtype=total.dtype, device=a.device)
    else:
        total = torch.where(mask, a, torch.zeros_like(a)).sum()
        count = (mask.sum() * (a.numel() // mask.numel())).to(total.dtype)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        both = torch.stack([total, count])
        dist.all_reduce(both)
        total, count = both[0], both[1]
    return total / count.clamp_min(1.0)


class ElasticBiNode(AmplitudeSpikeNode):
    """Elastic bi-spike neuron (SpikeLM, Sec. 3). Charge / fire / reset as in
    :class:`AmplitudeSpikeNode`, with the amplitude (Eq. 10)::

        alpha[t] = k * mean(|m[t]|)

    taken over all (valid) elements of the first batch that reaches step ``t`` in training
    mode, then frozen. ``alpha`` is a ``[T]`` buffer (``alpha='calibrated'``) or parameter
    (``alpha='learnable'``, trained with the LSQ step-size gradient, Table 7), saved in the
    ``state_dict``; it starts empty and grows one entry per calibrated step. Under
    ``torch.distributed`` the statistic is averaged over ranks, so every rank holds the same
    ``alpha``. An uncalibrated step in eval mode raises ``RuntimeError``: run one training
    forward or call :meth:`calibrate` first. With ``alpha='learnable'``, calibrate before
    building the optimizer or wrapping the model in ``DistributedDataParallel``.

    ``threshold_scale=0.5`` reproduces the public code (``round(m / a).clamp(-1, 1) * a``;
    it sends exact ties ``|m| = a/2`` to 0, we send them to ``+-a``); ``threshold_scale=1.0``
    is Eq. 11 as written (fire only when ``|m| >= a``). ``bidirectional=False`` gives spikes
    ``{0, +a}`` (Table 6 row "{0, a}"), with the straight-through range ``[0, a]``.
    """

    def __init__(self, k: float = 2.0, decay: float = 0.25, threshold_scale: float = 0.5,
                 reset: str = "reference", alpha: str = "calibrated", bidirectional: bool = True,
                 step_mode: str = "m", backend: str = "torch"):
        super().__init__(decay, threshold_scale, reset, bidirectional, step_mode, backend)
        self.k = check_real("k", k, 0.0, low_open=True)
        self.alpha_mode = check_choice("alpha", alpha, ALPHA_MODES)
        if alpha == "learnable":
            self.alpha = nn.Parameter(torch.empty(0))
        else:
            self.register_buffer("alpha", torch.empty(0))
        self._calibrating = False

    @property
    def calibrated_steps(self) -> int:
        """Number of time steps whose ``alpha`` is calibrated."""
        return self.alpha.numel()

    def amplitude(self, t: int, m: torch.Tensor) -> torch.Tensor:
        """``alpha[t]`` (clamped to >= 1e-5), calibrating it first if this is its first
        training-mode batch (Eq. 10)."""
        if t >= self.alpha.numel():
            if not (self.training or self._calibrating):
                raise RuntimeError(
                    f"ElasticBiNode has no calibrated alpha for time step {t} (it holds "
                    f"{self.alpha.numel()}); run one forward in training mode or call "
                    "calibrate(x_seq) before using it in eval mode")
            self._append_alpha(self.k * global_abs_mean(m, self.valid_mask))
        return self.alpha[t].clamp_min(ALPHA_EPS)

    def step_amplitudes(self, t0: int, steps: int, device: torch.device) -> Optional[torch.Tensor]:
        """``alpha[t0 : t0 + steps]`` clamped like :meth:`amplitude`, or None if some of these
        steps are not calibrated yet (the torch path then calibrates them, or raises in eval)."""
        if t0 + steps > self.alpha.numel():
            return None
        return self.alpha[t0:t0 + steps].clamp_min(ALPHA_EPS)

    @torch.no_grad()
    def _append_alpha(self, value: torch.Tensor) -> None:
        value = value.reshape(1).to(device=self.alpha.device, dtype=self.alpha.dtype)
        self.alpha.data = torch.cat([self.alpha.data, value])

    @torch.no_grad()
    def allocate_alpha(self, steps: int) -> None:
        """Replace ``alpha`` by ``steps`` NaN placeholders (same dtype and device), counted as
        calibrated steps. For loaders that check a tensor's shape before assigning it, such as
        ``transformers``' ``from_pretrained``: allocate the checkpoint's size, then load the
        values over it. ``allocate_alpha(0)`` discards the calibration."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps={steps!r} is not accepted; an int >= 0")
        self.alpha.data = self.alpha.data.new_full((steps,), float("nan"))

    @torch.no_grad()
    def calibrate(self, x_seq: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Discard ``alpha`` and calibrate it afresh on ``x_seq`` (``[T, N, *]``) with
        ``alpha[t] = k * mean(|m[t]|)`` over the elements where ``mask`` is True (Eq. 10),
        in any mode. Leaves the neuron reset; returns ``alpha``."""
        self.reset()
        self.allocate_alpha(0)
        step_mode, self.step_mode = self.step_mode, "m"
        self._calibrating = True
        try:
            with valid_mask(self, mask):
                self(x_seq)
        finally:
            self._calibrating = False
            self.step_mode = step_mode
            self.reset()
        return self.alpha

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        incoming = state_dict.get(prefix + "alpha")
        if incoming is not None and incoming.dim() == 1 and incoming.shape != self.alpha.shape:
            self.allocate_alpha(incoming.shape[0])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f"k={self.k}, alpha={self.alpha_mode!r}, calibrated_steps={self.calibrated_steps}, "
                + super().extra_repr())
