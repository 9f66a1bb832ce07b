"""The amplitude-coded spike with a straight-through gradient, shared by every zoo neuron.

Forward (SpikeLM Eq. 11, with the threshold as a fraction of the amplitude)::

    s = +a  if m >=  theta * a
        -a  if m <= -theta * a   (bidirectional only)
         0  otherwise

Backward (Eq. 7, straight-through inside the quantiser's range ``[q_n a, a]``,
``q_n = -1`` bidirectional, ``0`` unidirectional)::

    ds/dm = 1 if q_n a <= m <= a else 0

and, when the amplitude is learnable, the LSQ step-size gradient
(Esser et al. 2020, the paper's Table 7 "Learnable" row)::

    ds/da = g * (q - m / a)   inside the range, q = s / a
            g * 1             above it (m > a)
            g * q_n           below it (m < q_n a)
    g = 1 / sqrt(numel(m))    (numel per time step, times Q_p = 1)

A per-channel amplitude ``a[c]`` (the last dimension of ``m``) gets the per-channel sums of the
same terms, with ``g = 1 / sqrt(numel(m) / C)`` (the elements sharing one step size).
"""
from __future__ import annotations

import math

import torch


def fire_levels(m: torch.Tensor, a, threshold_scale: float, bidirectional: bool) -> torch.Tensor:
    """Spike levels ``q in {-1, 0, +1}`` (``{0, +1}`` unidirectional) of membrane ``m``
    for amplitude ``a`` and threshold ``theta * a`` (Eq. 11)."""
    threshold = threshold_scale * a
    q = (m >= threshold).to(m.dtype)
    if bidirectional:
        q = q - (m <= -threshold).to(m.dtype)
    return q


class StraightThroughSpike(torch.autograd.Function):
    """``s = a * q(m)`` with the straight-through / LSQ gradients of the module docstring."""

    @staticmethod
    def forward(ctx, m, a, threshold_scale: float, bidirectional: bool):
        q = fire_levels(m, a, threshold_scale, bidirectional)
        ctx.bidirectional = bidirectional
        ctx.threshold_scale = threshold_scale
        if isinstance(a, torch.Tensor):
            ctx.save_for_backward(m, a)
        else:
            ctx.save_for_backward(m)
            ctx.a = a
        return q * a

    @staticmethod
    def backward(ctx, grad_s):
        if len(ctx.saved_tensors) == 2:
            m, a = ctx.saved_tensors
        else:
            (m,), a = ctx.saved_tensors, ctx.a
        q_n = -1.0 if ctx.bidirectional else 0.0
        in_range = (m >= q_n * a) & (m <= a)
        grad_m = grad_s * in_range.to(grad_s.dtype) if ctx.needs_input_grad[0] else None
        grad_a = None
        if ctx.needs_input_grad[1]:
            q = fire_levels(m, a, ctx.threshold_scale, ctx.bidirectional)
            outside = torch.where(m > a, 1.0, q_n).to(m.dtype)
            step_grad = torch.where(in_range, q - m / a, outside)
            terms = grad_s * step_grad
            if a.dim() == 0:
                grad_a = terms.sum() / math.sqrt(m.numel())
            else:  # per channel: a broadcasts over every dimension but the last
                shared = m.numel() / a.numel()
                grad_a = terms.reshape(-1, a.numel()).sum(0).reshape(a.shape) / math.sqrt(shared)
        return grad_m, grad_a, None, None


def straight_through_spike(m: torch.Tensor, a, threshold_scale: float,
                           bidirectional: bool) -> torch.Tensor:
    """Fire ``s = a * q(m)`` (Eq. 11) with the straight-through gradient of Eq. 7.

    ``a`` is a Python float (fixed amplitude), a 0-d tensor (calibrated or learnable) or a
    ``[C]`` tensor, one amplitude per channel (the last dimension of ``m``)."""
    return StraightThroughSpike.apply(m, a, threshold_scale, bidirectional)
