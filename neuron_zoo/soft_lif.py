"""LIF with a subtractive (soft) reset trained by BPTT through the reset: the binary neuron of
BiSpikCLM (Guo et al., 2026), which does not detach the reset term."""
from __future__ import annotations

from typing import Optional

from spikingjelly.activation_based import neuron, surrogate

from .spikingjelly_nodes import LIFNode
from .validation import check_bool, check_choice, check_real

SURROGATES = {
    "atan": surrogate.ATan,
    "sigmoid": surrogate.Sigmoid,
    "erf": surrogate.Erf,
    "piecewise_quadratic": surrogate.PiecewiseQuadratic,
    "soft_sign": surrogate.SoftSign,
}
"""Surrogate gradients by name (SpikingJelly's classes; ``surrogate_alpha=None`` keeps each
class's own default sharpness)."""


def build_surrogate(name: str, alpha: Optional[float] = None) -> surrogate.SurrogateFunctionBase:
    """SpikingJelly's surrogate function ``name`` (one of :data:`SURROGATES`) with sharpness
    ``alpha`` (its class default when ``None``)."""
    cls = SURROGATES[check_choice("surrogate", name, tuple(SURROGATES))]
    if alpha is None:
        return cls()
    return cls(alpha=check_real("surrogate_alpha", alpha, 0.0, low_open=True))


class SoftResetLIFNode(LIFNode):
    """Binary ``{0, 1}`` LIF with subtractive reset, gradient through the reset (BPTT)::

        H[t] = decay * V[t-1] + X[t]                    (V[-1] = 0)
        S[t] = Heaviside(H[t] - v_threshold)
        V[t] = H[t] - v_threshold * S[t]                (soft reset, not detached)
        dS/dH = surrogate'(H[t] - v_threshold)

    It is SpikingJelly's ``LIFNode`` with ``decay_input=False``, ``v_reset=None`` and
    ``tau = 1 / (1 - decay)`` (its charge ``H = V - V / tau + X`` is ``decay * V + X``; exact
    in floating point when ``1 / (1 - decay)`` and ``decay`` are, e.g. ``decay=0.5``).
    ``detach_reset=True`` gives the usual detached variant (no gradient through
    ``- v_threshold * S[t]``). ``surrogate`` names one of :data:`SURROGATES`, ``surrogate_alpha``
    its sharpness. ``stepwise=True`` runs every step from ``V = 0`` (``H[t] = X[t]``), the
    memoryless form. ``decay`` must lie in ``(0, 1)`` (SpikingJelly needs ``tau > 1``; use
    ``stepwise=True`` for no memory).
    """

    memoryless_arguments = {"stepwise": True}  # H[t] = X[t], see memoryless.py

    def __init__(self, decay: float = 0.5, v_threshold: float = 1.0, surrogate: str = "atan",
                 surrogate_alpha: Optional[float] = None, detach_reset: bool = False,
                 stepwise: bool = False, step_mode: str = "m"):
        decay = check_real("decay", decay, 0.0, low_open=True)
        if decay >= 1.0:
            raise ValueError(f"decay={decay!r} is out of range; accepted: (0.0, 1.0)")
        v_threshold = check_real("v_threshold", v_threshold, 0.0, low_open=True)
        surrogate_function = build_surrogate(surrogate, surrogate_alpha)
        check_bool("detach_reset", detach_reset)
        check_bool("stepwise", stepwise)
        check_choice("step_mode", step_mode, ("s", "m"))
        neuron.LIFNode.__init__(self, tau=1.0 / (1.0 - decay), decay_input=False, v_threshold=v_threshold,
                                v_reset=None, surrogate_function=surrogate_function,
                                detach_reset=detach_reset, step_mode=step_mode)
        self.decay, self.stepwise = decay, stepwise

    def extra_repr(self) -> str:
        return f"decay={self.decay}, stepwise={self.stepwise}, " + super().extra_repr()
