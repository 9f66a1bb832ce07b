"""Helpers for comparing a neuron on the fused backend with its torch-backend twin: same
arguments, same alpha, same input and upstream gradient."""
import math

import torch

ALPHA = torch.tensor([1.0, 0.75, 1.25, 0.5, 2.0, 1.5, 0.8, 1.1, 0.9, 1.3, 0.7, 1.2, 0.6, 1.4, 1.05, 0.95])
# Input-gradient tolerance of the fused backend against the torch backend, per input dtype.
GRAD_RTOL = {torch.float32: 1e-6, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}


def twins(cls, alpha_values=None, device="cpu", **kwargs):
    """The same neuron on the torch backend and on the fused one, with the same alpha: steps
    ``0 .. len(alpha_values) - 1`` calibrated to those values, of ``T`` (default: as many)."""
    if alpha_values is not None:
        kwargs.setdefault("T", len(alpha_values))
    nodes = cls(**kwargs).to(device), cls(**kwargs).to(device)
    nodes[1].backend = "cupy"
    if alpha_values is not None:
        for node in nodes:
            node.load_state_dict(calibrated_state(alpha_values, kwargs["T"]))
    return nodes


def calibrated_state(alpha_values, T=None):
    """An ElasticBiNode state dict of ``T`` steps whose first ``len(alpha_values)`` are calibrated
    to ``alpha_values`` (the others uncalibrated, 0)."""
    T = len(alpha_values) if T is None else T
    alpha, calibrated = torch.zeros(T), torch.zeros(T, dtype=torch.bool)
    alpha[:len(alpha_values)], calibrated[:len(alpha_values)] = alpha_values, True
    return {"alpha": alpha, "calibrated": calibrated}


def tie_inputs(shape, decay, thresholds, amplitudes, dtype=torch.float32, seed=0, device="cpu"):
    """Gaussian input of ``shape`` ([T, N, *], N * ... >= 6) plus exact ties at the threshold and
    at the amplitude (at every step when decay is 0, else at step 0, where m = x)."""
    g = torch.Generator().manual_seed(seed)
    x = 1.5 * torch.randn(shape, generator=g)
    flat = x.view(shape[0], -1)
    for t in range(shape[0] if decay == 0 else 1):
        th, a = float(thresholds[t]), float(amplitudes[t])
        flat[t, :6] = torch.tensor([th, -th, a, -a, 0.0, th * 0.999])
    return x.to(device=device, dtype=dtype)


def run(node, x, grad_s):
    x = x.clone().requires_grad_(True)
    s = node(x)
    s.backward(grad_s)
    return s, x.grad


def assert_alpha_grad_close(fused, ref, grad_s):
    """LSQ gradients agree up to summation order: 1e-6 relative, plus 1e-6 of the scale
    sum |dL/ds| / sqrt(N) of the per-step sums (|ds/da| <= 2)."""
    n = grad_s[0].numel()
    scale = float(grad_s.float().abs().sum()) / math.sqrt(n)
    torch.testing.assert_close(fused.alpha.grad, ref.alpha.grad, rtol=1e-6, atol=1e-6 * scale)


def compare(ref, fused, x, exact_grads=True, seed=1):
    """Forward + backward of both twins on ``x``: spikes, final membrane and spike counts must be
    identical; input gradients identical (``exact_grads``) or within ``GRAD_RTOL``."""
    g = torch.Generator().manual_seed(seed)
    grad_s = torch.randn(x.shape, generator=g).to(device=x.device, dtype=x.dtype)
    s_ref, gx_ref = run(ref, x, grad_s)
    s_fused, gx_fused = run(fused, x, grad_s)
    assert torch.equal(s_fused, s_ref)
    assert torch.equal(fused.v, ref.v) and fused.t == ref.t
    assert torch.equal(fused.spike_counts, ref.spike_counts)
    if exact_grads:
        assert torch.equal(gx_fused, gx_ref)
    else:
        torch.testing.assert_close(gx_fused, gx_ref, rtol=GRAD_RTOL[x.dtype], atol=0)
    if isinstance(getattr(ref, "alpha", None), torch.nn.Parameter):
        assert_alpha_grad_close(fused, ref, grad_s)
