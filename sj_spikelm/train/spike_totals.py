"""Firing rates over a whole evaluation set, summed from the per-forward spike counts that every
spiking :mod:`neuron_zoo` neuron keeps (``spike_counts``: ``[steps, 3]`` = ``-a, 0, +a``)."""
from __future__ import annotations

import re
from typing import Dict, Optional

import torch
import torch.distributed as dist
from torch import nn

from neuron_zoo import SpikeStatsMixin


def _rates(totals: Dict[str, torch.Tensor]) -> Dict[str, float]:
    return {name: float((c[0] + c[2]) / c.sum()) for name, c in totals.items() if c.sum() > 0}


class SpikeTotals:
    """Call :meth:`update` after every forward; :meth:`rates` gives each neuron's firing rate
    ``(n(-a) + n(+a)) / n`` over all of them, and :meth:`overall` the rate over all neurons
    together (each element of each neuron and time step counts once)."""

    def __init__(self, model: nn.Module):
        self.nodes = {name: m for name, m in model.named_modules() if isinstance(m, SpikeStatsMixin)}
        self.totals: Dict[str, torch.Tensor] = {}

    def update(self) -> None:
        for name, node in self.nodes.items():
            counts = node.spike_counts
            if counts is not None:
                counts = counts.detach().sum(0).double().cpu()
                self.totals[name] = self.totals[name] + counts if name in self.totals else counts

    def all_reduce(self) -> None:
        """Sum the totals over the ranks of a ``torch.distributed`` group (every rank must call)."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, self.totals)
            merged: Dict[str, torch.Tensor] = {}
            for part in gathered:
                for name, counts in part.items():
                    merged[name] = merged[name] + counts if name in merged else counts
            self.totals = merged

    def rates(self) -> Dict[str, float]:
        """``{neuron name: firing rate}``."""
        return _rates(self.totals)

    def rates_per_layer(self) -> Dict[str, float]:
        """``{layer: firing rate}`` over the neurons of each layer (:func:`layer_of`)."""
        grouped: Dict[str, torch.Tensor] = {}
        for name, counts in self.totals.items():
            key = layer_of(name)
            grouped[key] = grouped[key] + counts if key in grouped else counts
        return _rates(grouped)

    def overall(self) -> Optional[float]:
        if not self.totals:
            return None
        total = sum(self.totals.values())
        return float((total[0] + total[2]) / total.sum()) if total.sum() > 0 else None


def layer_of(name: str) -> str:
    """The layer a neuron belongs to, from its module name: ``"...layer.3.attention.q"`` ->
    ``"3"``, a decoder's ``"model.decoder.layers.3.fc1.neuron"`` -> ``"decoder.3"``; a neuron
    outside the numbered layers gets its parent module's name (``"bert.embeddings.neuron"`` ->
    ``"bert.embeddings"``)."""
    match = re.search(r"(?:^|\.)(decoder\.)?(?:layers?|blocks?|h)\.(\d+)(?:\.|$)", name)
    if match:
        return (match.group(1) or "") + match.group(2)
    return name.rsplit(".", 1)[0] if "." in name else name
