"""SpikingJelly's own neurons as zoo members: they record spike statistics like ours and
remember their arguments, so the registry can build and describe them."""
from __future__ import annotations

import torch
from spikingjelly.activation_based import neuron, surrogate

from .init_args import RecordsInitArgs
from .spike_stats import SpikeStatsMixin
from .validation import check_bool, check_choice, check_positive_int, check_real


class LIFNode(RecordsInitArgs, SpikeStatsMixin, neuron.LIFNode):
    """SpikingJelly's ``LIFNode`` with the ATan surrogate, the paper's LIF-BERT* baseline::

        H[t] = V[t-1] + (X[t] - V[t-1]) / tau       (decay_input=True)
        H[t] = V[t-1] - V[t-1] / tau + X[t]         (decay_input=False)
        S[t] = Heaviside(H[t] - v_threshold),  V[t] = H[t] * (1 - S[t])
    """

    def __init__(self, tau: float = 2.0, v_threshold: float = 1.0, decay_input: bool = True,
                 detach_reset: bool = False, step_mode: str = "m"):
        tau = check_real("tau", tau, 1.0, low_open=True)
        v_threshold = check_real("v_threshold", v_threshold, 0.0, low_open=True)
        check_bool("decay_input", decay_input)
        check_bool("detach_reset", detach_reset)
        check_choice("step_mode", step_mode, ("s", "m"))
        super().__init__(tau=tau, decay_input=decay_input, v_threshold=v_threshold, v_reset=0.0,
                         surrogate_function=surrogate.ATan(), detach_reset=detach_reset,
                         step_mode=step_mode)

    def single_step_forward(self, x: torch.Tensor, *args, **kwargs):
        s = super().single_step_forward(x, *args, **kwargs)
        self._record_spikes(s.unsqueeze(0))
        return s

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs):
        s_seq = super().multi_step_forward(x_seq, *args, **kwargs)
        self._record_spikes(s_seq)
        return s_seq

    def reset(self):
        super().reset()
        self._clear_spike_stats()


class PSN(RecordsInitArgs, SpikeStatsMixin, neuron.PSN):
    """SpikingJelly's parallel spiking neuron (multi-step only, input ``[T, N, *]``)::

        H = W X,  W in R^{T x T};   S = Heaviside(H - B)
    """

    def __init__(self, T: int):
        super().__init__(T=check_positive_int("T", T), surrogate_function=surrogate.ATan())

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if x_seq.dim() < 2 or x_seq.shape[0] != self.T:
            raise ValueError(
                f"PSN(T={self.T}) needs input [T={self.T}, N, *], got shape {tuple(x_seq.shape)}")
        s_seq = super().forward(x_seq)
        self._clear_spike_stats()
        self._record_spikes(s_seq)
        return s_seq

    def reset(self):
        self._clear_spike_stats()
