"""Fused multi-step amplitude spikes, the ``backend='cupy'`` path of the amplitude-coded neurons:
one CUDA kernel runs charge / fire / reset of all ``T`` steps per element in registers, one runs
the gradient back in time, wrapped as a ``torch.autograd.Function``. The math is that of
:class:`~neuron_zoo.amplitude_node.AmplitudeSpikeNode` (source: ``cuda/amplitude_node.cuh``).

Saved for backward, per element of ``x_seq`` (``[T, N, *]``) and time step:

* amplitude without gradient (calibrated ``alpha``, STE-LIF, fixed ternary): a 4-bit code
  (spike sign, inside the straight-through range), two steps per byte, so ``ceil(T/2)/T``
  bytes: 0.5 for even ``T``. The reverse recurrence needs nothing else.
* learnable amplitude: the input ``x_seq`` itself (4 bytes fp32, 2 bytes fp16/bf16) and, when
  the call continues from a previous membrane, that float32 membrane (4 bytes per element,
  once, not per step). The LSQ gradient needs ``m / a`` inside the range; recomputing ``m``
  from ``x`` in the backward kernel costs less memory and traffic than saving the float32
  membrane (4 bytes) plus the code.
* no gradient needed (eval, ``no_grad``): nothing.

Outputs: spikes in the input dtype, the final membrane ``v[T-1]`` (float32, the state a
SpikingJelly neuron keeps in ``node.v``; gradients arriving on it flow back), and optionally the
per-step ``(-a, 0, +a)`` spike counts reduced per block inside the forward kernel.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from . import cupy_kernels


def check_input(x_seq: torch.Tensor) -> None:
    """Raise unless ``x_seq`` is a CUDA tensor of a dtype the kernels are built for."""
    if x_seq.device.type != "cuda":
        raise RuntimeError(
            f"backend='cupy' runs on CUDA tensors, got an input on {x_seq.device}; move the model "
            "and its inputs to a GPU (model.cuda()) or use backend='torch'")
    if x_seq.dtype not in cupy_kernels.DTYPES:
        accepted = ", ".join(str(d) for d in cupy_kernels.DTYPES)
        raise TypeError(f"backend='cupy' supports inputs of dtype {accepted}; got {x_seq.dtype}")


def kernel_set(x_seq: torch.Tensor, reset: str, bidirectional: bool):
    """The compiled kernels for ``x_seq``'s dtype and length (``T >= 1``)."""
    return cupy_kernels.amplitude_kernels(x_seq.dtype, x_seq.shape[0], reset, bidirectional)


def counts_from_partials(partials: torch.Tensor, n: int) -> torch.Tensor:
    """``[T, 3]`` float counts of ``-a``, ``0``, ``+a`` from per-block ``[blocks, T, 2]``
    counts of ``(-a, +a)`` over ``n`` elements per step."""
    neg, pos = partials.sum(0, dtype=torch.int64).unbind(1)
    return torch.stack([neg, n - neg - pos, pos], dim=1).float()


class FusedAmplitudeSpikes(torch.autograd.Function):
    """``(s_seq, v_last, counts) = f(x_seq, amp, v0)`` with the kernels of ``kernel_set``.

    ``mode`` is what to save for backward: ``None`` (no gradient needed), ``"code"`` or ``"lsq"``
    (learnable amplitude), see the module docstring."""

    @staticmethod
    def forward(ctx, x_seq, amp, v0, threshold, kernels, decay: float, mode: Optional[str], count: bool):
        x = x_seq.contiguous()
        steps, n, device = x.shape[0], x[0].numel(), x.device
        amp32 = amp.detach().to(device=device, dtype=torch.float32).contiguous()
        thr32 = threshold.detach().to(device=device, dtype=torch.float32).contiguous()
        v0 = None if v0 is None else v0.detach().contiguous()
        s = torch.empty(x.shape, dtype=x.dtype, device=device)
        v_last = torch.empty(x.shape[1:], dtype=torch.float32, device=device)
        code = (torch.empty(((steps + 1) // 2, n), dtype=torch.uint8, device=device)
                if mode == "code" else None)
        partials = (torch.empty((kernels.blocks(n, device), steps, 2), dtype=torch.int32, device=device)
                    if count else None)
        kernels.forward(x, amp32, thr32, v0, s, v_last, code, partials, n, decay)
        counts = counts_from_partials(partials, n) if count else x.new_empty(0)
        ctx.mark_non_differentiable(counts)
        ctx.set_materialize_grads(False)
        ctx.kernels, ctx.decay, ctx.mode, ctx.amp_dtype = kernels, decay, mode, amp.dtype
        ctx.shape, ctx.dtype = x.shape, x.dtype
        if mode == "code":
            ctx.save_for_backward(code, amp32)
        elif mode == "lsq":
            ctx.save_for_backward(x, amp32, thr32, v0)
        return s, v_last, counts

    @staticmethod
    def backward(ctx, grad_s, grad_v_last, _grad_counts):
        need_x, need_amp, need_v0 = ctx.needs_input_grad[:3]
        if grad_s is None:  # only the final membrane was used downstream
            grad_s = torch.zeros(ctx.shape, dtype=ctx.dtype, device=grad_v_last.device)
        g = grad_s.contiguous()
        steps, n, device = g.shape[0], g[0].numel(), g.device
        gv = None if grad_v_last is None else grad_v_last.contiguous()
        grad_x = torch.empty(g.shape, dtype=g.dtype, device=device) if need_x else None
        grad_v0 = torch.empty(g.shape[1:], dtype=torch.float32, device=device) if need_v0 else None
        grad_amp = None
        if ctx.mode == "lsq":
            x, amp32, thr32, v0 = ctx.saved_tensors
            partials = torch.empty((ctx.kernels.blocks(n, device), steps), dtype=torch.float64, device=device)
            ctx.kernels.backward_lsq(x, v0, g, amp32, thr32, gv, grad_x, grad_v0, partials, n, ctx.decay)
            if need_amp:
                grad_amp = (partials.sum(0) / math.sqrt(n)).to(ctx.amp_dtype)
        else:
            code, amp32 = ctx.saved_tensors
            ctx.kernels.backward(g, code, amp32, gv, grad_x, grad_v0, n, ctx.decay)
        return grad_x, grad_amp, grad_v0, None, None, None, None, None


def amplitude_spikes(kernels, x_seq: torch.Tensor, amp: torch.Tensor, threshold: torch.Tensor,
                     v0: Optional[torch.Tensor], decay: float, count: bool
                     ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Spikes of all ``T`` steps of ``x_seq`` (``[T, N, *]``, CUDA) in one kernel.

    ``amp`` / ``threshold``: ``[T]`` amplitudes ``a[t]`` and thresholds ``theta * a[t]``;
    ``v0``: float32 membrane carried from a previous call, or None for ``v = 0``. Returns
    ``(s_seq, v_last, counts)``, ``counts`` the ``[T, 3]`` spike counts when ``count`` else None.
    Gradients reach ``x_seq``, ``amp`` (LSQ, Eq. 7 / Table 7) and ``v0``."""
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x_seq, amp, v0))
    mode = None if not needs_grad else ("lsq" if amp.requires_grad else "code")
    s_seq, v_last, counts = FusedAmplitudeSpikes.apply(x_seq, amp, v0, threshold, kernels, decay, mode, count)
    return s_seq, v_last, counts if count else None
