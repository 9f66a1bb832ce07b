"""Conversion fidelity: how far a converted spiking model's hidden states are from its ANN's on
the same batch, and what the inputs of its neurons look like.

* :func:`hidden_state_cosines` -- per layer ``l`` (0 = embeddings), the cosine between the ANN's
  and the spiking model's hidden state of each real token, averaged over the tokens::

      cos_l = mean_{b, i: mask[b, i]} <h_ann[l, b, i], h_snn[l, b, i]> / (|h_ann| |h_snn|)

  (the spiking model's hidden state is its mean over the ``T`` steps, as it reports it).
* :func:`neuron_input_stats` -- per neuron, over the real tokens of all steps: ``mean|x|``
  of each input channel ``c`` (``mu_c``), the ratio of the largest ``mu_c`` to the median one,
  ``max|x| / mean|x|`` of the whole input and the channels with the largest ``mu_c``.
* :func:`linear_output_cosines` -- one linear layer at a time, in isolation: the ANN's input
  ``x`` of each linear layer, spiked by a fresh neuron calibrated on that layer's input of a
  calibration batch, ``cos(W x, W mean_t SN(x)[t])`` per real token, averaged.
* :func:`pair_similarities` -- zero-shot sentence similarity, what STS-B asks for: the cosine of
  the two sentences' mean-pooled last hidden states (real tokens), per pair; its Spearman
  correlation with the gold scores says how much of that information survives conversion.
* :func:`neuron_positions` / :func:`identity_neurons` -- the neurons of a SpikeLM layer by
  position class (``qkv_in``, ``kv``, ``attn_out``, ``ffn_in``, ``ffn_out``), and replacing a
  class by the identity, to see which positions cost the most fidelity.
"""
from __future__ import annotations

import contextlib
import re
from typing import Dict, Iterable, Iterator, List, Mapping

import torch
from torch import nn

import neuron_zoo

from .models.spiking import NeuronSpec, SpikeLinear, build_model_neuron, forward_in_mode

POSITION_CLASSES = {
    "qkv_in": ("attention.self.query.neuron", "attention.self.key.neuron", "attention.self.value.neuron"),
    "kv": ("attention.self.key_neuron", "attention.self.value_neuron"),
    "attn_out": ("attention.output.dense.neuron",),
    "ffn_in": ("intermediate.dense.neuron",),
    "ffn_out": ("output.dense.neuron",),
}
"""Neuron position classes of a SpikeLM layer: the module names (relative to the layer) of the
neurons in front of Q/K/V, spiking K and V, in front of the attention output projection, the first
FFN matmul and the second FFN matmul (after GELU)."""


def neuron_positions(model: nn.Module, position: str) -> List[str]:
    """Qualified names of the neurons of position class ``position`` (a key of
    :data:`POSITION_CLASSES`) in every encoder layer of ``model``."""
    if position not in POSITION_CLASSES:
        raise ValueError(f"position={position!r}; accepted: {', '.join(POSITION_CLASSES)}")
    pattern = re.compile(r"(^|\.)layer\.\d+\.(" + "|".join(map(re.escape, POSITION_CLASSES[position])) + ")$")
    return [name for name, m in model.named_modules() if neuron_zoo.is_neuron(m) and pattern.search(name)]


@contextlib.contextmanager
def identity_neurons(model: nn.Module, positions: Iterable[str]) -> Iterator[nn.Module]:
    """Inside the block, the neurons of the given position classes are the identity
    (``neuron_zoo.ANNNode``); the original neurons (and their calibration) come back after."""
    saved = []
    for position in positions:
        for name in neuron_positions(model, position):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            saved.append((parent, child, getattr(parent, child)))
            setattr(parent, child, neuron_zoo.ANNNode())
    try:
        yield model
    finally:
        for parent, child, original in reversed(saved):
            setattr(parent, child, original)


def _valid(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    mask = inputs.get("attention_mask")
    ids = inputs["input_ids"]
    return torch.ones(ids.shape, dtype=torch.bool) if mask is None else mask.bool()


@torch.no_grad()
def hidden_state_cosines(reference: nn.Module, model: nn.Module, inputs: Mapping[str, torch.Tensor]
                         ) -> List[float]:
    """``[cos_0, ..., cos_L]``: per hidden state (embeddings, then each layer), the mean over
    real tokens of the cosine between ``reference``'s and ``model``'s hidden states (eval-mode
    forwards on the same ``inputs``; see the module docstring)."""
    valid = _valid(inputs)
    ref = forward_in_mode(reference, False, **inputs, output_hidden_states=True).hidden_states
    out = forward_in_mode(model, False, **inputs, output_hidden_states=True).hidden_states
    if len(ref) != len(out):
        raise ValueError(f"reference has {len(ref)} hidden states, model {len(out)}")
    return [float(torch.cosine_similarity(a.float(), b.float(), dim=-1)[valid].mean())
            for a, b in zip(ref, out)]


@torch.no_grad()
def neuron_input_stats(model: nn.Module, inputs: Mapping[str, torch.Tensor], top: int = 3
                       ) -> Dict[str, Dict]:
    """Per zoo neuron of ``model`` (qualified name), statistics of its input over the real
    tokens of all time steps, from one eval-mode forward on ``inputs``: ``channels``,
    ``mean_abs`` (of the whole input), ``max_over_mean`` (``max|x| / mean|x|``),
    ``top_channel_ratio`` (largest per-channel ``mean|x|`` over the median channel's),
    ``top_channels`` (``[(channel, mean|x|), ...]``, largest first) and ``firing_rate`` (None for
    the identity)."""
    valid = _valid(inputs)
    captured: Dict[str, torch.Tensor] = {}

    def hook(name):
        def capture(module, args):
            x = args[0].detach().float()  # [T, B, L, C]
            captured[name] = x[:, valid].abs().flatten(0, 1)  # [T * tokens, C]
        return capture

    handles = [m.register_forward_pre_hook(hook(name)) for name, m in model.named_modules()
               if neuron_zoo.is_neuron(m) and name]
    try:
        forward_in_mode(model, False, **inputs)
    finally:
        for h in handles:
            h.remove()
    modules = dict(model.named_modules())
    stats = {}
    for name, x in captured.items():
        per_channel = x.mean(0)
        values, index = per_channel.topk(min(top, per_channel.numel()))
        rate = getattr(modules[name], "firing_rate", None)
        stats[name] = dict(
            channels=per_channel.numel(), mean_abs=float(x.mean()),
            max_over_mean=float(x.max() / x.mean().clamp_min(1e-30)),
            top_channel_ratio=float(per_channel.max() / per_channel.median().clamp_min(1e-30)),
            top_channels=[(int(i), float(v)) for i, v in zip(index, values)],
            firing_rate=None if rate is None else float(rate))
    return stats


@torch.no_grad()
def _linear_inputs(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``{name: [tokens, in_features]}``: the input of every :class:`SpikeLinear`'s neuron at step 0,
    on the real tokens, from one eval-mode forward."""
    valid = _valid(inputs)
    captured: Dict[str, torch.Tensor] = {}

    def hook(name):
        def capture(module, args):
            captured[name] = args[0][0][valid].detach().float()
        return capture

    handles = [m.neuron.register_forward_pre_hook(hook(name)) for name, m in model.named_modules()
               if isinstance(m, SpikeLinear)]
    try:
        forward_in_mode(model, False, **inputs)
    finally:
        for h in handles:
            h.remove()
    return captured


@torch.no_grad()
def linear_output_cosines(reference: nn.Module, calib_inputs: Mapping[str, torch.Tensor],
                          inputs: Mapping[str, torch.Tensor], neuron: NeuronSpec, T: int) -> Dict[str, float]:
    """Per linear layer of ``reference`` (the ANN twin, ``neuron='ann'``), in isolation: its input
    ``x`` is repeated over ``T`` steps and spiked by a fresh ``neuron`` (built for the layer's
    width) calibrated on the same layer's input for ``calib_inputs``; returns the mean over the
    real tokens of ``inputs`` of ``cos(W x, W mean_t SN(x)[t])`` (bias left out)."""
    calib = _linear_inputs(reference, calib_inputs)
    measure = _linear_inputs(reference, inputs)
    result = {}
    for name, x in measure.items():
        weight = reference.get_submodule(name).weight.float()
        node = build_model_neuron(neuron, T, channels=x.shape[-1])
        if isinstance(node, neuron_zoo.CalibratedNeuron):
            node.calibrate(calib[name].unsqueeze(0).expand(T, *calib[name].shape).contiguous())
        node.eval()
        spikes = node(x.unsqueeze(0).expand(T, *x.shape).contiguous()).mean(0)
        result[name] = float(torch.cosine_similarity(x @ weight.T, spikes @ weight.T, dim=-1).mean())
    return result


@torch.no_grad()
def pair_similarities(model: nn.Module, first: Mapping[str, torch.Tensor], second: Mapping[str, torch.Tensor]
                      ) -> torch.Tensor:
    """``[pairs]``: ``cos(mean_i h_a[i], mean_j h_b[j])`` of each pair's mean-pooled last hidden
    states over real tokens, sentence ``a`` in ``first``, ``b`` in ``second`` (eval mode)."""
    def pooled(inputs):
        hidden = forward_in_mode(model, False, **inputs).last_hidden_state.float()
        mask = _valid(inputs).unsqueeze(-1).float()
        return (hidden * mask).sum(1) / mask.sum(1)

    return torch.cosine_similarity(pooled(first), pooled(second), dim=-1)
