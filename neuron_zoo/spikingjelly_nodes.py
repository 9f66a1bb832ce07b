"""SpikingJelly's own neurons as zoo members: they record spike statistics like ours, remember
their arguments (so the registry can build and describe them), check their input, and have a
``stepwise`` form that runs every time step alone (their memoryless form, see
:mod:`neuron_zoo.memoryless`)."""
from __future__ import annotations

import math
from typing import Callable

import torch
from spikingjelly.activation_based import neuron, surrogate
from torch import nn

from .init_args import RecordsInitArgs
from .spike_stats import SpikeStatsMixin
from .validation import check_bool, check_choice, check_neuron_input, check_positive_int, check_real


def each_step_alone(forward: Callable[[torch.Tensor], torch.Tensor], x_seq: torch.Tensor) -> torch.Tensor:
    """``forward`` (a multi-step neuron call) on ``x_seq`` ``[T, N, *]`` with the steps folded into
    the batch, ``[1, T * N, *]``: every step is the first step of its own sequence, so output
    ``t`` depends on input ``t`` only."""
    return forward(x_seq.reshape(1, -1, *x_seq.shape[2:])).reshape(x_seq.shape)


class LIFNode(RecordsInitArgs, SpikeStatsMixin, neuron.LIFNode):
    """SpikingJelly's ``LIFNode`` with the ATan surrogate, the paper's LIF-BERT* baseline::

        H[t] = V[t-1] + (X[t] - V[t-1]) / tau       (decay_input=True)
        H[t] = V[t-1] - V[t-1] / tau + X[t]         (decay_input=False)
        S[t] = Heaviside(H[t] - v_threshold),  V[t] = H[t] * (1 - S[t])

    ``stepwise=True`` runs each step from the reset membrane ``V = 0`` (steps folded into the
    batch), so ``H[t] = X[t] / tau`` (decay_input=True) or ``H[t] = X[t]`` (decay_input=False):
    nothing is carried across steps. Input must be floating.
    """

    memoryless_arguments = {"decay_input": False, "stepwise": True}  # H[t] = X[t], see memoryless.py

    def __init__(self, tau: float = 2.0, v_threshold: float = 1.0, decay_input: bool = True,
                 detach_reset: bool = False, stepwise: bool = False, step_mode: str = "m"):
        tau = check_real("tau", tau, 1.0, low_open=True)
        v_threshold = check_real("v_threshold", v_threshold, 0.0, low_open=True)
        check_bool("decay_input", decay_input)
        check_bool("detach_reset", detach_reset)
        check_bool("stepwise", stepwise)
        check_choice("step_mode", step_mode, ("s", "m"))
        super().__init__(tau=tau, decay_input=decay_input, v_threshold=v_threshold, v_reset=0.0,
                         surrogate_function=surrogate.ATan(), detach_reset=detach_reset,
                         step_mode=step_mode)
        self.stepwise = stepwise

    def single_step_forward(self, x: torch.Tensor, *args, **kwargs):
        check_neuron_input(self, x, multi_step=False)
        if self.stepwise:
            neuron.LIFNode.reset(self)
        s = super().single_step_forward(x, *args, **kwargs)
        self._record_spikes(s.unsqueeze(0))
        return s

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs):
        check_neuron_input(self, x_seq, multi_step=True)
        if self.stepwise:
            neuron.LIFNode.reset(self)
            s_seq = each_step_alone(super().multi_step_forward, x_seq)
        else:
            s_seq = super().multi_step_forward(x_seq, *args, **kwargs)
        self._record_spikes(s_seq)
        return s_seq

    def reset(self):
        super().reset()
        self._clear_spike_stats()


class PSN(RecordsInitArgs, SpikeStatsMixin, neuron.PSN):
    """SpikingJelly's parallel spiking neuron (multi-step only, input ``[T, N, *]``)::

        H = W X + b,  W in R^{T x T}, b in R^T;   S = Heaviside(H)

    (the paper's ``S = Heaviside(W X - B)`` with threshold ``B = -b``; ``b`` starts at -1).
    ``stepwise=True`` is one ``PSN(T=1)`` (scalar ``w``, ``b``) applied to each of the ``T``
    steps alone, ``H[t] = w X[t] + b``: nothing mixes across steps. The input dtype must be the
    weight's (convert the model, e.g. ``model.to(torch.bfloat16)``) unless autocast is on.
    """

    memoryless_arguments = {"stepwise": True}  # PSN(T=1) per step, see memoryless.py

    def __init__(self, T: int, stepwise: bool = False):
        T = check_positive_int("T", T)
        check_bool("stepwise", stepwise)
        super().__init__(T=1 if stepwise else T, surrogate_function=surrogate.ATan())
        self.T, self.stepwise = T, stepwise

    def reset_parameters(self) -> None:
        """SpikingJelly's initialisation: ``W`` Kaiming-uniform (``a = sqrt(5)``), ``B = -1``."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.constant_(self.bias, -1.0)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        check_neuron_input(self, x_seq, multi_step=True)
        if x_seq.shape[0] != self.T:
            raise ValueError(
                f"PSN(T={self.T}) needs input [T={self.T}, N, *], got shape {tuple(x_seq.shape)}")
        if x_seq.dtype != self.weight.dtype and not torch.is_autocast_enabled(x_seq.device.type):
            from .lifecycle import neuron_label

            raise TypeError(f"{neuron_label(self)}: input dtype {x_seq.dtype} differs from its weight dtype "
                            f"{self.weight.dtype}; convert the model (model.to({x_seq.dtype})) or run under "
                            "torch.autocast")
        if self.stepwise:
            s_seq = each_step_alone(super().forward, x_seq)
        else:
            s_seq = super().forward(x_seq)
        self._clear_spike_stats()
        self._record_spikes(s_seq)
        return s_seq

    def reset(self):
        self._clear_spike_stats()

    def extra_repr(self) -> str:
        return f"T={self.T}, stepwise={self.stepwise}"
