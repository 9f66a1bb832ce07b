"""The weight path of SpikeLLM: ternary GIF weights (signed spikes) with Hessian saliency and
GPTQ error compensation, activations in floating point, so the linear layers are additive.

A weight ``w`` of output row ``o`` sent as ``T`` steps of signed ternary spikes
``s_t ∈ {-1, 0, 1}`` at threshold ``α_o`` (:class:`neuron_zoo.GIFNode` with ``signed=True,
levels=2``) is the symmetric uniform quantizer with ``2T + 1`` levels (``gif_quantize``)::

    n = clip(round(w / α_o), -T, T) = sum_{t<T} s_t,        ŵ = α_o n

Salient weights get ``T_s`` steps and their own per-row step ``α_s,o``. Saliency of a weight
(OBS, as PB-LLM): ``w_oj² / [U]_jj²`` with ``U`` the upper Cholesky factor of ``H⁻¹``,
``H = 2 X Xᵀ / n`` over the layer's calibration inputs (+ 1% of its mean diagonal). Each step
``α`` minimises ``||w - ŵ||²`` of its row's weights over a grid of ``c · mean|w|``,
``c ∈ {0.2, 0.25, ..., 3}``. GPTQ (Frantar et al. 2023, Alg. 1): columns quantized left to
right, each column's error ``(w_j - ŵ_j) / U_jj`` compensated on the columns not yet quantized
(``W_{:, k>j} -= err U_{j, k>j}``), in blocks of 128 columns (lazy batch updates).

Modes (the table's rows): ``'gif'`` (salient at ``T_s`` ternary steps, GPTQ), ``'pb'``
(PB-LLM-style: salient weights kept in floating point, the rest ternary, GPTQ), ``'rtn'``
(plain ternary rounding at the same step budget: salient chosen by ``|w|``, ``T_s`` steps,
no compensation).

:class:`TernaryGIFLinear` ``path='spike'`` executes the spikes,
``y = b + sum_t x (A ⊙ S_t)ᵀ (+ x W_fpᵀ)`` with ``A`` the per-weight step (additions and
subtractions of activations, one scale per weight group); ``path='fake'`` is ``x Ŵᵀ + b``: equal
up to the order of floating-point sums (activations are floating point).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from neuron_zoo import GIFNode
from neuron_zoo.validation import check_choice

MODES = ("gif", "pb", "rtn")
GRID = torch.arange(0.2, 3.0001, 0.05)


def ternary_round(w: torch.Tensor, alpha: torch.Tensor, steps: int) -> torch.Tensor:
    """``α clip(round(w/α), -T, T)``: ``w`` on the grid of ``T`` signed steps of size ``α``."""
    return alpha * torch.clamp(torch.round(w / alpha), -steps, steps)


def ternary_step(w: torch.Tensor, mask: torch.Tensor, steps: int) -> torch.Tensor:
    """``[O, 1]`` per-row step ``α`` minimising ``sum_{mask} (w - α clip(round(w/α), -T, T))²``
    over ``α = c mean_{mask}|w|`` (module docstring); rows with no masked weight get 1."""
    count = mask.sum(1, keepdim=True).clamp_min(1)
    mean = (w.abs() * mask).sum(1, keepdim=True) / count
    mean = torch.where(mean > 0, mean, torch.ones_like(mean))
    best, best_err = None, None
    for c in GRID.tolist():
        alpha = c * mean
        q = ternary_round(w, alpha, steps)
        err = (((w - q) ** 2) * mask).sum(1, keepdim=True)
        if best is None:
            best, best_err = alpha, err
        else:
            better = err < best_err
            best, best_err = torch.where(better, alpha, best), torch.where(better, err, best_err)
    return best


def hessian_saliency(w: torch.Tensor, hinv_upper: torch.Tensor) -> torch.Tensor:
    """``w_oj² / U_jj²`` (OBS / PB-LLM saliency of each weight)."""
    return w ** 2 / torch.diag(hinv_upper).reshape(1, -1) ** 2


def inverse_cholesky(hessian: torch.Tensor, damp: float = 0.01) -> torch.Tensor:
    """Upper Cholesky factor of ``(H + damp mean(diag H) I)⁻¹`` (GPTQ); dead inputs get 1."""
    h = hessian.double().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    h += damp * torch.diag(h).mean() * torch.eye(h.shape[0], dtype=h.dtype)
    hinv = torch.cholesky_inverse(torch.linalg.cholesky(h))
    return torch.linalg.cholesky(hinv, upper=True).float()


@torch.no_grad()
def quantize_ternary(weight: torch.Tensor, hessian: Optional[torch.Tensor], mode: str,
                     salient_fraction: float, salient_steps: int, steps: int = 1, block: int = 128):
    """``(codes n [O, C] int, steps α [O, 1], salient step α_s [O, 1], salient mask [O, C],
    float salient weights [O, C] (pb; zeros otherwise))`` of the module docstring."""
    check_choice("mode", mode, MODES)
    w = weight.detach().float().clone()
    out_features, columns = w.shape
    if mode == "rtn" or hessian is None:
        if mode != "rtn":
            raise ValueError(f"mode={mode!r} needs the layer's Hessian (calibration data)")
        saliency, upper = w.abs(), None
    else:
        upper = inverse_cholesky(hessian.to(w.device))
        saliency = hessian_saliency(w, upper)
    mask = torch.zeros_like(w, dtype=torch.bool)
    top = math.ceil(salient_fraction * w.numel())
    if top:
        mask.view(-1)[torch.topk(saliency.view(-1), top).indices] = True
    alpha = ternary_step(w, ~mask, steps)
    alpha_s = ternary_step(w, mask, salient_steps) if mode != "pb" else torch.ones_like(alpha)

    def quant(x, m):
        """``x``: the whole ``[O, C]`` matrix or one ``[O]`` column, ``m`` its salient mask."""
        a, a_s = (alpha, alpha_s) if x.dim() == 2 else (alpha[:, 0], alpha_s[:, 0])
        salient = x if mode == "pb" else ternary_round(x, a_s, salient_steps)
        return torch.where(m, salient, ternary_round(x, a, steps))

    if upper is None:  # no compensation: every weight rounded at once
        q = quant(w, mask)
    else:
        q = torch.zeros_like(w)
        for start in range(0, columns, block):
            end = min(start + block, columns)
            w_block, err_block = w[:, start:end].clone(), torch.zeros(out_features, end - start)
            u_block = upper[start:end, start:end]
            for i in range(end - start):
                col = w_block[:, i]
                qc = quant(col, mask[:, start + i])
                q[:, start + i] = qc
                err = (col - qc) / u_block[i, i]
                w_block[:, i:] -= err.unsqueeze(1) * u_block[i, i:].unsqueeze(0)
                err_block[:, i] = err
            w[:, end:] -= err_block @ upper[start:end, end:]
    fp = torch.where(mask, q, torch.zeros_like(q)) if mode == "pb" else torch.zeros_like(q)
    scale = torch.where(mask, alpha_s, alpha) if mode != "pb" else alpha.expand_as(q)
    codes = torch.where(mask & (mode == "pb"), torch.zeros_like(q), torch.round(q / scale))
    return codes.to(torch.int8), alpha, alpha_s, mask, fp


class TernaryGIFLinear(nn.Module):
    """``nn.Linear`` with ternary GIF weights (module docstring); activations floating point."""

    def __init__(self, linear: nn.Linear, hessian: Optional[torch.Tensor], mode: str,
                 salient_fraction: float, salient_steps: int, steps: int = 1, path: str = "spike"):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.bias = linear.bias
        self.mode, self.steps, self.salient_steps = mode, steps, salient_steps
        self.path = check_choice("path", path, ("spike", "fake"))
        codes, alpha, alpha_s, mask, fp = quantize_ternary(linear.weight, hessian, mode, salient_fraction,
                                                           salient_steps, steps)
        dtype = linear.weight.dtype
        self.register_buffer("codes", codes)
        self.register_buffer("scale", torch.where(mask, alpha_s, alpha).to(dtype) if mode != "pb"
                             else alpha.expand_as(codes).to(dtype).clone())
        self.register_buffer("salient", mask)
        self.register_buffer("float_weight", fp.to(dtype) if mode == "pb" else None)
        self.neuron = GIFNode(levels=2, signed=True, rounding="nearest")
        self.neuron.record_stats = False

    def weight_steps(self) -> torch.Tensor:
        """Steps per weight: ``T_s`` for salient, ``T`` otherwise; 0 for float salient (pb)."""
        t = torch.full(self.codes.shape, self.steps, dtype=torch.long, device=self.codes.device)
        t[self.salient] = 0 if self.mode == "pb" else self.salient_steps
        return t

    def dequantized_weight(self) -> torch.Tensor:
        w = self.scale * self.codes.to(self.scale.dtype)
        return w if self.float_weight is None else w + self.float_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.path == "fake":
            return F.linear(x, self.dequantized_weight(), self.bias)
        spikes = self.neuron.decompose(self.codes.to(x.dtype), int(self.weight_steps().max().clamp_min(1)))
        self.neuron.reset()
        y = None
        for s in spikes:  # additions / subtractions of the activations, one step per product
            product = F.linear(x, self.scale * s)
            y = product if y is None else y + product
        if self.float_weight is not None:
            y = y + F.linear(x, self.float_weight)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, mode={self.mode!r}, "
                f"steps={self.steps}, salient_steps={self.salient_steps}, path={self.path!r}")


def ternary_cost(model: nn.Module, precision: str = "fp16") -> dict:
    """Per token over the :class:`TernaryGIFLinear` layers: ``additions`` (one per non-zero
    weight spike, ``sum |n|``), ``multiplies`` (one scale per output and weight group, plus the
    float salient weights' MACs in pb), ACE (``O C`` times the average weight steps), the
    average weight steps and bits (``steps log2 3``; 16 per float weight), and the energy
    ``additions E_AC + multiplies E_MAC`` against dense FP16 MACs ``O C E_MAC``."""
    from sj_spikelm.energy.accounting import check_precision

    cost = check_precision(precision)
    layers = [m for m in model.modules() if isinstance(m, TernaryGIFLinear)]
    adds = mults = ace = bits = macs = 0.0
    for m in layers:
        steps = m.weight_steps()
        adds += float(m.codes.abs().sum())
        groups = 1 if m.mode == "pb" else 2
        mults += m.out_features * groups + (float(m.salient.sum()) if m.mode == "pb" else 0.0)
        ace += float(steps.sum())
        bits += float(steps.sum()) * math.log2(3) + (16.0 * float(m.salient.sum()) if m.mode == "pb" else 0.0)
        macs += m.out_features * m.in_features
    energy = (adds * cost.e_ac_pj + mults * cost.e_mac_pj) * 1e-6
    fp16 = macs * cost.e_mac_pj * 1e-6
    return {"ternary_linears": len(layers), "additions": adds, "multiplies": mults, "ace": ace,
            "macs": macs, "weight_average_steps": ace / macs if macs else 0.0,
            "weight_average_bits": bits / macs if macs else 0.0, "energy_additive_uj": energy,
            "energy_fp16_uj": fp16, "energy_ratio": energy / fp16 if fp16 else None}
