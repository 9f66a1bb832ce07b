"""The identity "neuron": the same model code with ``neuron='ann'`` is the ANN baseline."""
from __future__ import annotations

import torch
from spikingjelly.activation_based import base
from torch import nn

from .init_args import RecordsInitArgs
from .validation import check_choice, check_neuron_input


class ANNNode(RecordsInitArgs, nn.Module, base.StepModule):
    """``y = x`` in both step modes; reports no firing rate (``firing_rate is None``). Input
    must be floating, like every zoo neuron's."""

    memoryless_arguments = {}  # nothing is carried across steps
    firing_rate = None
    spike_counts = None

    def __init__(self, step_mode: str = "m"):
        super().__init__()
        self.step_mode = check_choice("step_mode", step_mode, ("s", "m"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_neuron_input(self, x, multi_step=self.step_mode == "m")
        return x

    def reset(self) -> None:
        pass

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode!r}"
