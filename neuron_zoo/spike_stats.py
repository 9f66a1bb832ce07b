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
            g = torch.sign(s_seq)  # reduced as float: summing bool tensors first casts them to int64
            if mask is None:
                total = torch.full((s_seq.shape[0],), float(s_seq[0].numel()), device=s_seq.device,
                                   dtype=torch.float64)
            else:
                g = g * mask
                total = (mask.sum() * (s_seq[0].numel() // mask.numel())).double().expand(s_seq.shape[0])
            # per-row sums of +-1 are exact in float32 below 2**24 elements; the rest in float64
            acc = torch.float32 if g.shape[-1] < 2 ** 24 else torch.float64
            net = g.sum(-1, dtype=acc).double().reshape(s_seq.shape[0], -1).sum(1)
            fired = g.abs().sum(-1, dtype=acc).double().reshape(s_seq.shape[0], -1).sum(1)
            counts = torch.stack([(fired - net) / 2, total - fired, (fired + net) / 2], dim=1).float()
        self._append_spike_counts(counts)

    def _append_spike_counts(self, counts: torch.Tensor) -> None:
        """Append ``[steps, 3]`` counts of ``(-, 0, +)`` spikes (e.g. reduced by a fused kernel)."""
        previous = self.__dict__.get("_spike_counts")
        self.__dict__["_spike_counts"] = counts if previous is None else torch.cat([previous, counts])
        self.__dict__["_spike_rows_recorded"] = self.spike_rows_recorded + counts.shape[0]

    def _clear_spike_stats(self) -> None:
        self.__dict__["_spike_counts"] = None

    @property
    def spike_counts(self) -> Optional[torch.Tensor]:
        """``[steps, 3]`` float tensor: counts of ``-a``, ``0`` and ``+a`` spikes per time
        step since the last ``reset()`` (``None`` before any forward)."""
        return self.__dict__.get("_spike_counts")

    @property
    def spike_rows_recorded(self) -> int:
        """Rows (time steps) appended to ``spike_counts`` since the neuron was built; ``reset()``
        does not clear it, so a monitor can take exactly the rows a forward added."""
        return self.__dict__.get("_spike_rows_recorded", 0)

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
