"""The charge / fire / reset mechanism shared by the elastic bi-spike, STE-LIF and
fixed-threshold ternary neurons: a leaky membrane that emits amplitude-coded spikes
``{-a, 0, +a}`` (or ``{0, +a}``) with a straight-through gradient."""
from __future__ import annotations

from typing import Optional

import torch
from spikingjelly.activation_based import neuron

from . import cupy_kernels, fused_spike
from .init_args import RecordsInitArgs
from .spike_function import straight_through_spike
from .spike_stats import SpikeStatsMixin
from .validation import check_bool, check_choice, check_neuron_input, check_real

RESET_MODES = ("reference", "hard", "soft")
STEP_MODES = ("s", "m")


def unrolled_steps(single_step, inputs, states):
    """SpikingJelly's functional multi-step forward as a loop of ``single_step((x[t],), states)``
    over ``x = inputs[0]`` (``[T, ...]``). SpikingJelly's default indexes ``x_seq[t]``; in
    backward every index allocates a zero tensor of the whole sequence (O(T^2) memory traffic);
    ``unbind``'s backward stacks once."""
    steps = []
    for x in inputs[0].unbind(0):
        (s,), states = single_step((x,), states)
        steps.append(s)
    return (torch.stack(steps),), states


class AmplitudeSpikeNode(RecordsInitArgs, SpikeStatsMixin, neuron.BaseNode):
    """Base of the amplitude-coded neurons. Per time step ``t`` (state ``v[-1] = 0``)::

        charge:  m[t] = decay * v[t-1] + x[t]                       (Eq. 13)
        fire:    s[t] = a[t] * q(m[t]),  |q| = 1 iff |m[t]| >= theta * a[t]   (Eq. 11)
        reset:   v[t] = m[t] * (a[t] - s[t])       'reference' (Eq. 13 as coded)
                 v[t] = m[t] * (1 - |s[t]| / a[t]) 'hard' (to 0 on any spike)
                 v[t] = m[t] - s[t]                'soft' (subtract what was emitted)

    so ``'reference'`` gives ``m[t] = decay * m[t-1] * (a[t-1] - s[t-1]) + x[t]``. The factor
    ``(a - s)`` is asymmetric in the spike's sign: after ``+a`` the membrane is cleared, after
    no spike it is scaled by ``a``, after ``-a`` by ``2a``. In every mode the reset term is
    detached (the reference code detaches ``a`` and ``s`` there), so gradients flow through
    ``m`` only. Subclasses supply the amplitude ``a[t]`` via :meth:`amplitude`.

    The membrane is kept in float32 (or float64) whatever the input dtype; spikes are
    returned in the input dtype. Multi-step input is ``[T, N, *]`` with ``T >= 1``; input
    that is not float16, bfloat16, float32 or float64 raises ``TypeError`` (integer input
    would be spiked back into its integer dtype). ``decay=0`` carries no membrane across
    steps (``m[t] = x[t]``): the memoryless form, :func:`neuron_zoo.build_memoryless`.

    The compute backend is a runtime choice, never an argument, a spec or a saved config entry:
    ``node.backend``, :func:`neuron_zoo.set_backend` or :func:`neuron_zoo.use_backend`.
    ``'cupy'`` runs a multi-step call as one fused CUDA kernel forward and one backward
    (:mod:`neuron_zoo.fused_spike`) doing the same float32 operations in the same order, so
    spikes and input gradients match the torch backend, the learnable-amplitude gradient up to
    summation order. It continues from the membrane and step left by a previous call when there
    was no ``reset()``. A call still takes the torch path when a step's amplitude needs
    calibrating first (see :meth:`step_amplitudes`), in single-step mode, with
    ``store_v_seq=True`` or for an input with no elements. Asking for it without CuPy or CUDA
    raises ``RuntimeError`` naming what is missing; CPU inputs raise too.
    """

    supported_backends = ("torch", "cupy")
    emit_levels = False
    """True: emit the levels ``q = s / a`` (``{-1, 0, +1}``) instead of the spikes ``s = a q``, the
    amplitude being folded into the next layer (:func:`sj_spikelm.models.folding.fold_amplitudes`);
    charge, fire, reset and spike counts are unchanged."""
    memoryless_arguments = {"decay": 0.0}  # m[t] = x[t]: no membrane carried (neuron_zoo.memoryless)

    def __init__(self, decay: float, threshold_scale: float, reset: str, bidirectional: bool,
                 step_mode: str = "m"):
        decay = check_real("decay", decay, 0.0, 1.0)
        threshold_scale = check_real("threshold_scale", threshold_scale, 0.0, low_open=True)
        check_choice("reset", reset, RESET_MODES)
        check_bool("bidirectional", bidirectional)
        check_choice("step_mode", step_mode, STEP_MODES)
        super().__init__(v_threshold=threshold_scale, v_reset=None if reset == "soft" else 0.0,
                         surrogate_function=None, detach_reset=True, step_mode=step_mode)
        self.decay = decay
        self.threshold_scale = threshold_scale
        self.reset_mode = reset
        self.bidirectional = bidirectional
        self._backend = "torch"
        self.register_memory("t", 0)

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        check_choice("backend", value, self.supported_backends)
        if value == "cupy":
            cupy_kernels.require_cupy()
        self._backend = value

    def begin_steps(self, t0: int, steps: int, multi_step: bool) -> None:
        """Hook run before a forward over steps ``t0 .. t0 + steps - 1`` (neurons with per-step
        state check and size it here, see :class:`~neuron_zoo.calibration.CalibratedNeuron`)."""

    def amplitude(self, t: int, m: torch.Tensor):
        """Amplitude ``a[t]`` (float or 0-d tensor) for time step ``t`` given membrane ``m``."""
        raise NotImplementedError

    def step_amplitudes(self, t0: int, steps: int, device: torch.device) -> Optional[torch.Tensor]:
        """Amplitudes ``a[t0], ..., a[t0 + steps - 1]`` as a ``[steps]`` tensor for the fused
        backend (differentiable where ``a`` is learnable), or None when some step must first run
        on the torch path (calibration)."""
        raise NotImplementedError

    def neuronal_charge(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``m[t] = decay * v[t-1] + x[t]`` (leaky integration, Eq. 13)."""
        return self.decay * v + x

    def neuronal_fire(self, m: torch.Tensor, a) -> torch.Tensor:
        """``s[t] = a[t] * q(m[t])`` with the straight-through gradient (Eq. 11, Eq. 7)."""
        return straight_through_spike(m, a, self.threshold_scale, self.bidirectional)

    def neuronal_reset(self, m: torch.Tensor, s: torch.Tensor, a) -> torch.Tensor:
        """Membrane carried to the next step, ``v[t]``, per ``reset`` (reset term detached)."""
        s = s.detach()
        if self.reset_mode == "reference":
            a = a.detach() if isinstance(a, torch.Tensor) else a
            return m * (a - s)
        if self.reset_mode == "hard":
            return torch.where(s == 0, m, torch.zeros_like(m))
        return m - s

    def _carried_membrane(self, v, x: torch.Tensor) -> Optional[torch.Tensor]:
        """State ``v`` left by a previous call as a membrane for step input ``x`` (float32, or
        float64 for float64 input), None after ``reset()``; raises on a shape mismatch."""
        if not isinstance(v, torch.Tensor):
            return None
        if v.shape != x.shape:
            raise RuntimeError(
                f"{type(self).__name__} still holds the state of an input of shape "
                f"{tuple(v.shape)} but got one of shape {tuple(x.shape)}; call reset() "
                "(spikingjelly functional.reset_net) between independent inputs")
        return v.to(device=x.device, dtype=torch.promote_types(x.dtype, torch.float32))

    def materialize_states(self, inputs, states, step_mode):
        x = inputs[0][0] if step_mode == "m" else inputs[0]
        v, t = states
        v = self._carried_membrane(v, x)
        if v is None:
            v = torch.zeros(x.shape, dtype=torch.promote_types(x.dtype, torch.float32), device=x.device)
        return v, t

    def single_step_functional_forward(self, inputs, states, **kwargs):
        x = inputs[0]
        v, t = states
        m = self.neuronal_charge(x.to(v.dtype), v)
        a = self.amplitude(t, m)
        s = self.neuronal_fire(m, a)
        out = s / a if self.emit_levels else s
        return (out.to(x.dtype),), (self.neuronal_reset(m, s, a), t + 1)

    def multi_step_functional_forward(self, inputs, states, **kwargs):
        return unrolled_steps(self.single_step_functional_forward, inputs, states)

    def single_step_forward(self, x: torch.Tensor, *args, **kwargs):
        check_neuron_input(self, x, multi_step=False)
        self.begin_steps(self.t, 1, multi_step=False)
        s = super().single_step_forward(x, *args, **kwargs)
        self._record_spikes(s.unsqueeze(0))
        return s

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs):
        check_neuron_input(self, x_seq, multi_step=True)
        self.begin_steps(self.t, x_seq.shape[0], multi_step=True)
        if self.backend == "cupy":
            s_seq = self._fused_multi_step_forward(x_seq)
            if s_seq is not None:
                return s_seq
        s_seq = super().multi_step_forward(x_seq, *args, **kwargs)
        self._record_spikes(s_seq)
        return s_seq

    def _fused_multi_step_forward(self, x_seq: torch.Tensor) -> Optional[torch.Tensor]:
        """``backend='cupy'``: all steps in one kernel; None when the call takes the torch path."""
        fused_spike.check_input(x_seq)
        if self.store_v_seq or x_seq.numel() == 0:
            return None
        amp = self.step_amplitudes(self.t, x_seq.shape[0], x_seq.device)
        if amp is None:
            return None
        kernels = fused_spike.kernel_set(x_seq, self.reset_mode, self.bidirectional)
        count = self.record_stats and self.valid_mask is None
        s_seq, v, counts = fused_spike.amplitude_spikes(
            kernels, x_seq, amp, self.threshold_scale * amp, self._carried_membrane(self.v, x_seq[0]),
            self.decay, count)
        self.v, self.t = v, self.t + x_seq.shape[0]
        if self.emit_levels:
            s_seq = s_seq / amp.view(-1, *(1,) * (s_seq.dim() - 1)).to(s_seq.dtype)
        if counts is None:
            self._record_spikes(s_seq)
        else:
            self._append_spike_counts(counts)
        return s_seq

    def reset(self):
        super().reset()
        self._clear_spike_stats()

    def extra_repr(self) -> str:
        return (f"decay={self.decay}, threshold_scale={self.threshold_scale}, "
                f"reset={self.reset_mode!r}, bidirectional={self.bidirectional}, "
                f"step_mode={self.step_mode!r}, backend={self.backend!r}")
