"""The generalized integrate-and-fire (GIF) neuron of SpikeLLM (Xing et al., ICLR 2025): a
non-leaky integrate-and-fire neuron whose spike per step is an integer level, so ``T`` steps of
``L`` levels carry a multi-bit code, and the uniform quantizer that the spike train realises (the
training / calibration path, with a straight-through gradient).

In units of the threshold ``theta`` (``u = x / theta``), with ``H = L - 1`` and the rounding
``r(a) = floor(a)`` (``rounding='floor'``, the paper's ``floor(v / theta)``) or the nearest
integer (``'nearest'``: ``floor(a + 1/2)`` unsigned, ``ceil(|a| - 1/2)`` for the signed
magnitude, ties toward zero, so that a residual of exactly ``-1/2`` never fires back)::

    charge:  v[t] = v[t-1] + x[t] / theta                       (v[-1] = 0, no leak)
    fire:    s[t] = clip(r(v[t]), 0, H)                         unsigned
             s[t] = sign(v[t]) * min(r(|v[t]|), H)              signed (L = 2: ternary)
    reset:   v[t] <- v[t] - s[t]                                (soft reset by s[t] * theta)

A static input ``x`` presented at step 0 (``x[t>0] = 0``, :meth:`GIFNode.decompose`) is the
greedy decomposition of its code ``k = r(u)`` (signed ``sign(u) r(|u|)``): the membrane after
``S = sum_{tau<t} s[tau]`` is ``u - S`` (exact in floating point: ``S`` is an integer below
``|u|``), so ``s[t] = clip(k - S, 0, H)`` and::

    sum_{t<T} s[t] = clip(k, -T H, T H)    (lower bound 0 unsigned)

so ``T`` steps of ``L`` levels are exactly a uniform quantizer with step ``theta`` and
``T (L - 1) + 1`` levels (unsigned; ``2 T (L - 1) + 1`` signed): :func:`gif_quantize`. A ``b``-bit
code (``2**b`` levels) needs ``T = ceil((2**b - 1) / (L - 1))`` steps; ``T = 2**b / L`` steps
(the issue's "T/L steps") reach only ``2**b (L - 1) / L + 1`` levels and saturate below the top
codes. For ``x`` in range (floor: ``0 <= u < T H + 1``; nearest: ``-1/2 <= u < T H + 1/2``,
signed ``|u| <= T H + 1/2``) the reconstruction error ``x - theta * sum_t s[t]`` lies in
``[0, theta)`` (floor; signed: same sign as ``x``, magnitude below ``theta``) or within
``theta / 2`` (nearest); the membrane keeps the residual, ``v = u - sum_t s[t]``.

A per-channel step count ``T_c`` (:meth:`GIFNode.set_channel_steps`, last input dimension)
lets channel ``c`` fire only at steps ``t < T_c`` (a silent step leaves its membrane as it
is), so salient channels get more steps: channel ``c`` is a quantizer with ``T_c (L - 1) + 1``
levels.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from spikingjelly.activation_based import neuron

from .amplitude_node import unrolled_steps
from .init_args import RecordsInitArgs
from .spike_stats import SpikeStatsMixin
from .validation import check_bool, check_choice, check_neuron_input, check_positive_int, check_real

ROUNDING_OFFSETS = {"floor": 0.0, "nearest": 0.5}
STEP_MODES = ("s", "m")

Steps = Union[int, torch.Tensor]


def _check_levels(levels) -> int:
    levels = check_positive_int("levels", levels)
    if levels < 2:
        raise ValueError(f"levels={levels} is out of range; accepted: an int >= 2 (spike levels 0 .. L-1)")
    return levels


def check_channel_steps(steps) -> torch.Tensor:
    """``steps`` as a 1-D int64 tensor of per-channel step counts ``>= 0``, else raise."""
    if not isinstance(steps, torch.Tensor) or steps.dim() != 1 or steps.is_floating_point() \
            or steps.is_complex() or steps.dtype == torch.bool:
        raise TypeError("channel steps must be a 1-D integer tensor (one step count per channel), "
                        f"got {steps!r}")
    if steps.numel() and int(steps.min()) < 0:
        raise ValueError(f"channel steps must be >= 0, got minimum {int(steps.min())}")
    return steps.to(torch.long)


def gif_code_range(levels: int, steps: Steps, signed: bool):
    """``(lo, hi)``: the codes ``sum_t s[t]`` reachable in ``steps`` steps of ``levels`` levels,
    ``hi = steps (L - 1)``, ``lo = -hi`` signed else 0 (``steps`` an int or a per-channel tensor)."""
    hi = steps * (_check_levels(levels) - 1)
    return (-hi if signed else hi * 0), hi


def gif_quantize(x: torch.Tensor, levels: int, steps: Steps, signed: bool = False,
                 rounding: str = "floor", v_threshold: float = 1.0) -> torch.Tensor:
    """The quantizer a GIF spike train realises (module docstring), in one step::

        q(x) = theta * clip(r(u), 0, T (L - 1))                 u = x / theta, unsigned
        q(x) = theta * sign(u) * min(r(|u|), T (L - 1))         signed

    with ``steps`` ``T`` an int or a per-channel tensor (last dimension of ``x``). Gradient:
    straight-through, that of ``theta * clamp(u, lo, hi)`` (1 for ``lo <= u <= hi``, the code
    range of :func:`gif_code_range`), the same gradient as the spike path of :class:`GIFNode`.
    Equals ``theta * GIFNode(...).decompose(x, T).sum(0)`` exactly."""
    b = ROUNDING_OFFSETS[check_choice("rounding", rounding, tuple(ROUNDING_OFFSETS))]
    check_bool("signed", signed)
    theta = check_real("v_threshold", v_threshold, 0.0, low_open=True)
    if isinstance(steps, torch.Tensor):
        steps = check_channel_steps(steps).to(x.device)
        if steps.numel() != x.shape[-1]:
            raise ValueError(f"steps has {steps.numel()} channels but the input's last dimension is "
                             f"{x.shape[-1]}")
    else:
        steps = check_positive_int("steps", steps)
    lo, hi = gif_code_range(levels, steps, signed)
    u = x / theta
    lo, hi = (torch.as_tensor(bound, dtype=u.dtype, device=u.device) for bound in (lo, hi))
    if signed:
        hard = torch.sign(u) * torch.minimum(_magnitude_code(u.abs(), rounding), hi)
    else:
        hard = torch.minimum(torch.floor(u + b).clamp_min(0), hi)
    return theta * _straight_through(hard, u, lo, hi)


def _straight_through(hard: torch.Tensor, u: torch.Tensor, lo, hi) -> torch.Tensor:
    """``hard`` in the forward pass (exactly: ``+ 0``), the gradient of ``clamp(u, lo, hi)``
    (1 for ``lo <= u <= hi``, else 0) in the backward pass."""
    window = (u >= lo) & (u <= hi)
    return hard + torch.where(window, u - u.detach(), torch.zeros_like(u))


def _magnitude_code(a: torch.Tensor, rounding: str) -> torch.Tensor:
    """Code of a magnitude ``a >= 0`` for the signed GIF: ``floor(a)``, or ``ceil(a - 1/2)``
    (nearest, ties toward zero: a residual of exactly ``-1/2`` after ``+1`` must not fire back)."""
    return torch.floor(a) if rounding == "floor" else torch.ceil(a - 0.5)


class GIFNode(RecordsInitArgs, SpikeStatsMixin, neuron.BaseNode):
    """Generalized integrate-and-fire neuron (SpikeLLM): multi-level spikes ``s[t]`` in
    ``{0, ..., L-1}`` (``signed``: ``{-(L-1), ..., L-1}``), soft reset; equations in the module
    docstring. Output is the integer level ``s[t]`` (in the input dtype); ``theta * s[t]`` is the
    charge it carries. The membrane ``v`` is kept in units of ``theta`` (float32, or float64 for
    float64 input), so the decomposition is exact in floating point: ``theta * sum_t s[t]``
    equals :func:`gif_quantize` bit for bit.

    Gradient: straight-through in ``fire`` (that of ``clamp(v, 0, L-1)``, signed
    ``clamp(v, 1-L, L-1)``) and a reset that is not detached: a step inside the window passes
    ``ds/dv = 1`` and stops the gradient to later steps (``d(v - s)/dv = 0``), a clipped one passes
    it on, so the summed train has the gradient of :func:`gif_quantize` (1 for codes in range).

    ``levels``: ``L >= 2`` (``L = 2`` is binary, or ternary when ``signed``); ``v_threshold``:
    ``theta > 0``; ``rounding``: ``'floor'`` (the paper's ``floor(v / theta)``) or ``'nearest'``.
    Multi-step input is ``[T, N, *]``; a per-channel step count applies to the last dimension.
    """

    def __init__(self, levels: int = 2, v_threshold: float = 1.0, signed: bool = False,
                 rounding: str = "floor", step_mode: str = "m"):
        levels = _check_levels(levels)
        v_threshold = check_real("v_threshold", v_threshold, 0.0, low_open=True)
        check_bool("signed", signed)
        check_choice("rounding", rounding, tuple(ROUNDING_OFFSETS))
        check_choice("step_mode", step_mode, STEP_MODES)
        super().__init__(v_threshold=v_threshold, v_reset=None, surrogate_function=None,
                         detach_reset=False, step_mode=step_mode)
        self.levels = levels
        self.signed = signed
        self.rounding = rounding
        self.offset = ROUNDING_OFFSETS[rounding]
        self.register_buffer("channel_steps", None)
        self.register_memory("t", 0)

    # ---- per-channel step counts ---------------------------------------------------------------
    def set_channel_steps(self, steps: Optional[torch.Tensor]) -> None:
        """Let channel ``c`` (last input dimension) fire only at steps ``t < steps[c]``; None lets
        every channel fire at every step. Kept as the buffer ``channel_steps``."""
        self.channel_steps = None if steps is None else check_channel_steps(steps).clone()

    def _step_mask(self, t: int, x: torch.Tensor) -> Optional[torch.Tensor]:
        if self.channel_steps is None:
            return None
        if x.shape[-1] != self.channel_steps.numel():
            raise ValueError(f"GIFNode has channel_steps for {self.channel_steps.numel()} channels but the "
                             f"input's last dimension is {x.shape[-1]}")
        return self.channel_steps.to(x.device) > t

    # ---- charge / fire / reset -----------------------------------------------------------------
    def neuronal_charge(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``v[t] = v[t-1] + x[t] / theta`` (no leak; membrane in units of ``theta``)."""
        return v + x / self.v_threshold

    def neuronal_fire(self, v: torch.Tensor) -> torch.Tensor:
        """``s[t] = clip(floor(v + b), 0, L-1)`` (signed: ``sign(v) clip(r(|v|), 0, L-1)``), with
        the straight-through gradient of ``clamp(v, 0, L-1)`` (signed ``clamp(v, 1-L, L-1)``)."""
        top = self.levels - 1
        if self.signed:
            hard = torch.sign(v) * _magnitude_code(v.abs(), self.rounding).clamp(max=top)
        else:
            hard = torch.floor(v + self.offset).clamp(0, top)
        return _straight_through(hard, v, -top if self.signed else 0, top)

    def neuronal_reset(self, v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Soft reset ``v[t] <- v[t] - s[t]`` (subtract the emitted ``s[t] * theta``)."""
        return v - s

    # ---- SpikingJelly plumbing -------------------------------------------------------------------
    def materialize_states(self, inputs, states, step_mode):
        x = inputs[0][0] if step_mode == "m" else inputs[0]
        v, t = states
        dtype = torch.promote_types(x.dtype, torch.float32)
        if not isinstance(v, torch.Tensor):
            v = torch.zeros(x.shape, dtype=dtype, device=x.device)
        elif v.shape != x.shape:
            raise RuntimeError(f"GIFNode still holds the state of an input of shape {tuple(v.shape)} but got "
                               f"one of shape {tuple(x.shape)}; call reset() between independent inputs")
        return v, t

    def single_step_functional_forward(self, inputs, states, **kwargs):
        x = inputs[0]
        v, t = states
        v = self.neuronal_charge(x.to(v.dtype), v)
        s = self.neuronal_fire(v)
        mask = self._step_mask(t, x)
        if mask is not None:
            s = s * mask
        return (s.to(x.dtype),), (self.neuronal_reset(v, s), t + 1)

    def multi_step_functional_forward(self, inputs, states, **kwargs):
        return unrolled_steps(self.single_step_functional_forward, inputs, states)

    def single_step_forward(self, x: torch.Tensor, *args, **kwargs):
        check_neuron_input(self, x, multi_step=False)
        s = super().single_step_forward(x, *args, **kwargs)
        self._record_spikes(s.unsqueeze(0))
        return s

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs):
        check_neuron_input(self, x_seq, multi_step=True)
        s_seq = super().multi_step_forward(x_seq, *args, **kwargs)
        self._record_spikes(s_seq)
        return s_seq

    def decompose(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """The spike train ``[steps, *x.shape]`` of a static input ``x`` charged at step 0
        (inputs ``x, 0, ..., 0``), from a reset state; multi-step mode only."""
        steps = check_positive_int("steps", steps)
        if self.step_mode != "m":
            raise ValueError("decompose needs step_mode='m'")
        self.reset()
        x_seq = torch.cat([x.unsqueeze(0), x.new_zeros((steps - 1, *x.shape))])
        return self(x_seq)

    def reset(self):
        super().reset()
        self._clear_spike_stats()

    def extra_repr(self) -> str:
        return (f"levels={self.levels}, v_threshold={self.v_threshold}, signed={self.signed}, "
                f"rounding={self.rounding!r}, step_mode={self.step_mode!r}")
