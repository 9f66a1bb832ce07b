"""Post-training spiking of a LLaMA-layout causal LM (SpikeLLM): the input of every linear layer
of every decoder block (q, k, v, o, gate, up, down) becomes a per-token GIF spike train
(:class:`~.gif_linear.GIFLinear`); with Optimal Brain Spiking (OBS) the most salient input
channels of each layer get more steps. Weights, the LM head, embeddings, softmax, RMSNorm, SiLU
and the residual stream stay in floating point.

OBS saliency of input channel ``j`` of a layer with weight ``W`` (the paper's first-order
metric), over the calibration tokens ``X`` (``N x C``)::

    S_j = (1 / N) sum_n [X ⊙ (X Wᵀ W)]_nj

computed per calibration batch from forward hooks (``O(C)`` memory per layer, no ``C x C``
matrix). The top ``ceil(salient_fraction * C)`` channels get ``salient_steps`` steps, the others
``steps``, and each of the two groups is quantized per token over its own range
(:class:`~.gif_linear.GIFLinear`): SpikeLLM's "t2" is ``steps=1, salient_fraction=0.1,
salient_steps=2`` (1.1 average steps), "t4" is ``0.05`` at ``4`` (1.15).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Optional

import torch
from torch import nn

from neuron_zoo.validation import check_choice, check_positive_int, check_real

from .gif_linear import PATHS, GIFLinear

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "mistral")
PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


@dataclasses.dataclass
class SpikifyConfig:
    """``levels`` ``L`` per spike, ``steps`` ``T`` per channel (``T (L - 1) + 1`` code levels per
    token), ``path`` ``'spike'`` (matrix products on the spikes) or ``'fake'`` (the equal
    quantizer, one product); OBS: ``salient_fraction`` of each layer's input channels at
    ``salient_steps`` steps (0: no OBS)."""

    levels: int = 16
    steps: int = 1
    path: str = "spike"
    salient_fraction: float = 0.0
    salient_steps: int = 1

    def __post_init__(self):
        check_positive_int("levels", self.levels)
        if self.levels < 2:
            raise ValueError(f"levels={self.levels} is out of range; accepted: an int >= 2")
        check_positive_int("steps", self.steps)
        check_choice("path", self.path, PATHS)
        check_real("salient_fraction", self.salient_fraction, 0.0, 1.0)
        check_positive_int("salient_steps", self.salient_steps)


def decoder_linears(model: nn.Module) -> Dict[str, nn.Linear]:
    """``{qualified name: module}`` of the projections of every decoder block of a supported
    model; ``ValueError`` naming the supported architectures otherwise."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"spikify supports model_type {', '.join(SUPPORTED_MODEL_TYPES)} (LLaMA layout); "
                         f"got {model_type!r} ({type(model).__name__})")
    layers = model.model.layers
    return {f"model.layers.{i}.{p}": layer.get_submodule(p)
            for i, layer in enumerate(layers) for p in PROJECTIONS}


def channel_saliency(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``S_j = mean_n [X ⊙ (X Wᵀ W)]_nj`` for tokens ``x`` (``[N, C]``) into a layer of weight
    ``W`` (``[O, C]``): the first-order OBS saliency of each input channel (float32)."""
    x, w = x.float(), weight.float()
    return (x * ((x @ w.t()) @ w)).mean(0)


@torch.no_grad()
def obs_saliency(model: nn.Module, calibration_data: torch.Tensor,
                 batch_size: int = 1) -> Dict[str, torch.Tensor]:
    """``{layer name: [C] saliency S_j}`` (module docstring) of every decoder projection, from
    forward passes of ``calibration_data`` (``[n, seq_len]`` token ids) through ``model``."""
    linears = decoder_linears(model)
    sums = {name: torch.zeros(m.in_features, dtype=torch.float64) for name, m in linears.items()}
    counts = dict.fromkeys(linears, 0)

    def hook(name):
        def record(module, args):
            x = args[0].reshape(-1, module.in_features)
            sums[name] += channel_saliency(x, module.weight).double().cpu() * x.shape[0]
            counts[name] += x.shape[0]
        return record

    handles = [m.register_forward_pre_hook(hook(name)) for name, m in linears.items()]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        for batch in calibration_data.split(batch_size):
            model(input_ids=batch.to(device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {name: (sums[name] / max(counts[name], 1)).float() for name in linears}


def salient_steps(saliency: torch.Tensor, config: SpikifyConfig) -> torch.Tensor:
    """``[C]`` steps: ``salient_steps`` for the ``ceil(salient_fraction * C)`` most salient
    channels (ties broken by channel index), ``steps`` for the rest."""
    steps = torch.full(saliency.shape, config.steps, dtype=torch.long)
    top = math.ceil(config.salient_fraction * saliency.numel())
    if top:
        steps[torch.topk(saliency, top, sorted=False).indices] = config.salient_steps
    return steps


def spikify(model: nn.Module, calibration_data: Optional[torch.Tensor], config: SpikifyConfig,
            saliency: Optional[Dict[str, torch.Tensor]] = None) -> nn.Module:
    """Replace, in place, every decoder projection of ``model`` by a :class:`GIFLinear` driven by
    per-token GIF spike trains; with ``config.salient_fraction > 0``, OBS saliency from
    ``calibration_data`` (``[n, seq_len]`` token ids), or ``saliency`` given (:func:`obs_saliency`
    of the same float model, to convert it several times), sets per-channel steps. Returns
    ``model``."""
    linears = decoder_linears(model)
    if config.salient_fraction > 0 and saliency is None:
        if calibration_data is None:
            raise ValueError("salient_fraction > 0 (OBS) needs calibration_data ([n, seq_len] token ids)")
        saliency = obs_saliency(model, calibration_data)
    if config.salient_fraction == 0:
        saliency = None
    elif set(saliency) != set(linears):
        raise ValueError("saliency must hold one entry per decoder projection (obs_saliency of this model)")
    for name, linear in linears.items():
        parent_name, _, child = name.rpartition(".")
        spiking = GIFLinear(linear, config.levels, config.steps, config.path)
        if saliency is not None:
            spiking.set_channel_steps(salient_steps(saliency[name], config).to(linear.weight.device))
        setattr(model.get_submodule(parent_name), child, spiking)
    return model


def spiking_summary(model: nn.Module) -> Dict[str, float]:
    """Over every :class:`GIFLinear`, weighted by ``in_features * out_features`` (each layer's
    share of the matrix-product work): the average steps per input channel and the average spike
    train length in bits, ``steps * log2(L)`` (``log2 L`` bits per step); and the layer count."""
    layers = [m for m in model.modules() if isinstance(m, GIFLinear)]
    work = sum(m.in_features * m.out_features for m in layers)

    def average(value):
        return sum(value(m) * m.in_features * m.out_features for m in layers) / work if work else 0.0

    return {"gif_linears": len(layers), "average_steps": average(lambda m: m.average_steps),
            "average_bits": average(lambda m: m.average_steps * math.log2(m.levels))}
