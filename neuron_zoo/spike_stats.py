"""Per-time-step spike counts that every spiking zoo neuron keeps from its last forward, so a
monitor reads firing rates without another pass over the activations."""
from __future__ import annotations

from typing import Optional

import torch

from .masking import expand_mask


class SpikeStatsMixin:
    """Records, for every time step since the last ``reset()``, the number of negative, zero
    and positive spikes (``[steps, 3]`` in ``spike_counts``). Set ``record_stats = False`` to
    skip the two reductions per step."""

    record_stats: bool = True
    valid_mask: Optional[torch.Tensor] = None

    def _record_spikes(self, s_seq: torch.Tensor) -> None:
        """Append the ``(-, 0, +)`` counts of ``s_seq`` (``[steps, N, *]``) to ``spike_counts``."""
        if not self.record_stats:
            return
        with torch.no_grad():
            mask = expand_mask(self.valid_mask, s_seq[0])
            neg, pos = s_seq < 0, s_seq > 0
            if mask is None:
                total = torch.full((s_seq.shape[0],), s_seq[0].numel(), device=s_seq.device)
            else:
                neg, pos = neg & mask, pos & mask
                total = mask.sum() * (s_seq[0].numel() // mask.numel())
                total = total.expand(s_seq.shape[0])
            dims = tuple(range(1, s_seq.dim()))
            n_neg, n_pos = neg.sum(dims), pos.sum(dims)
            counts = torch.stack([n_neg, total - n_neg - n_pos, n_pos], dim=1).float()
        self._append_spike_counts(counts)

    def _append_spike_counts(self, counts: torch.Tensor) -> None:
        """Append ``[steps, 3]`` counts of ``(-, 0, +)`` spikes (e.g. reduced by a fused kernel)."""
        previous = self.__dict__.get("_spike_counts")
        self.__dict__["_spike_counts"] = counts if previous is None else torch.cat([previous, counts])

    def _clear_spike_stats(self) -> None:
        self.__dict__["_spike_counts"] = None

    @property
    def spike_counts(self) -> Optional[torch.Tensor]:
        """``[steps, 3]`` float tensor: counts of ``-a``, ``0`` and ``+a`` spikes per time
        step since the last ``reset()`` (``None`` before any forward)."""
        return self.__dict__.get("_spike_counts")

    @property
    def spike_shares(self) -> Optional[torch.Tensor]:
        """``[steps, 3]``: fraction of ``-a``, ``0`` and ``+a`` spikes per time step."""
        c = self.spike_counts
        return None if c is None else c / c.sum(dim=1, keepdim=True).clamp_min(1)

    @property
    def firing_rate_per_step(self) -> Optional[torch.Tensor]:
        """``[steps]``: fraction of non-zero spikes per time step."""
        s = self.spike_shares
        return None if s is None else 1.0 - s[:, 1]

    @property
    def firing_rate(self) -> Optional[torch.Tensor]:
        """0-d tensor: fraction of non-zero spikes over all recorded steps and elements."""
        c = self.spike_counts
        return None if c is None else (c[:, 0] + c[:, 2]).sum() / c.sum().clamp_min(1)
