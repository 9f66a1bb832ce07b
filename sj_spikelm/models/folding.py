"""Folding spike amplitudes into the weights: an amplitude-coded neuron emits ``s[t] = a[t] * q[t]``
with ternary levels ``q[t]``, and the linear layer it feeds computes

    W s[t] + b = (W diag(a[t])) q[t] + b = W_t q[t] + b

with ``a[t]`` a scalar per step (``elastic_bi``) or one amplitude per input channel
(``elastic_bi(amplitude='channel')``, ``a[t, c]``). The folded layer reads only ``{-1, 0, +1}``
levels, so every product is an addition or a subtraction of a weight column (accumulates), for a
per-channel amplitude as for a per-tensor one; it keeps one weight matrix per time step
(``[T, out, in]``), or the same matrix scaled once per step for a per-tensor amplitude.
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

from neuron_zoo import AmplitudeSpikeNode, CalibrationError, neuron_label

from .spiking import SpikeLinear


class FoldedSpikeLinear(nn.Module):
    """``y[t] = W_t q[t] + b`` with ``W_t = W diag(a[t])`` and ``q`` the levels its neuron emits
    (``neuron.emit_levels``); built by :meth:`from_spike_linear`. ``in_features``,
    ``out_features`` and ``neuron`` as in :class:`~sj_spikelm.models.spiking.SpikeLinear`, so
    energy and firing-rate accounting read it alike."""

    def __init__(self, weight: torch.Tensor, bias, neuron: nn.Module):
        super().__init__()
        self.weight = nn.Parameter(weight)                  # [T, out, in]
        self.bias = None if bias is None else nn.Parameter(bias)
        self.neuron = neuron
        self.T, self.out_features, self.in_features = weight.shape

    @classmethod
    @torch.no_grad()
    def from_spike_linear(cls, linear: SpikeLinear, T: int) -> "FoldedSpikeLinear":
        """The folded form of ``linear`` for ``T`` steps (its neuron calibrated,
        ``CalibrationError`` otherwise): ``W_t = W diag(a[t])``, a copy of the neuron emitting
        levels."""
        node = linear.neuron
        amplitudes = node.step_amplitudes(0, T, linear.weight.device)
        if amplitudes is None:
            raise CalibrationError(f"{neuron_label(node)} is not calibrated; calibrate the model before "
                                   "folding its amplitudes")
        amplitudes = amplitudes.detach().to(linear.weight.dtype)
        if amplitudes.dim() == 1:                            # per tensor: a[t] for every channel
            amplitudes = amplitudes[:, None].expand(T, linear.in_features)
        weight = linear.weight.detach()[None] * amplitudes[:, None, :]
        neuron = copy.deepcopy(node)  # the original keeps emitting spikes
        neuron.emit_levels = True
        bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(weight, bias, neuron)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        q = self.neuron(x_seq)
        if q.shape[0] != self.T:
            raise ValueError(f"FoldedSpikeLinear holds weights for T={self.T} steps, got an input of "
                             f"shape {tuple(x_seq.shape)}")
        y = torch.einsum("t...i,toi->t...o", q, self.weight)
        return y if self.bias is None else y + self.bias


def fold_amplitudes(model: nn.Module, T: Optional[int] = None) -> nn.Module:
    """A copy of ``model`` (calibrated) in which every :class:`SpikeLinear` fed by an amplitude-coded
    zoo neuron (``elastic_bi`` per tensor or per channel, ``ste_lif``, ``ternary_fixed``) is a
    :class:`FoldedSpikeLinear`: ``W s[t] + b = (W diag(a[t])) q[t] + b``. Same outputs (up to
    float rounding of the product order), same spikes, so the same firing rates and energy
    (:func:`sj_spikelm.energy.estimate_energy`). ``T``: the model's time steps (default
    ``model.config.T``). For inference; ``model`` is left unchanged."""
    T = model.config.T if T is None else T
    folded = copy.deepcopy(model)
    for name, module in list(folded.named_modules()):
        if isinstance(module, SpikeLinear) and isinstance(module.neuron, AmplitudeSpikeNode):
            parent_name, _, child = name.rpartition(".")
            parent = folded.get_submodule(parent_name) if parent_name else folded
            setattr(parent, child, FoldedSpikeLinear.from_spike_linear(module, T))
    return folded
