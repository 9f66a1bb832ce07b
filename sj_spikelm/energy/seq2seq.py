"""Energy of the spiking encoder-decoder (:mod:`sj_spikelm.models.spikelm_seq2seq`): the encoder's
count (:mod:`.encoder`) extended to decoder self-attention, cross-attention and the LM head."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..models.spikelm_seq2seq.modeling_spikelm_seq2seq import SpikeLMForConditionalGeneration
from ..models.spiking import forward_in_mode
from .accounting import EnergyReport, Rows, check_precision

SEQ2SEQ_INPUTS = ("input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask", "labels")


def _attention_rows(att: nn.Module, queries: float, keys: float, pairs: float):
    """``(name, m, n, dense ops over the batch, neuron feeding it)`` of one BART-layout attention
    block: ``queries`` / ``keys`` tokens through the projections, ``pairs`` query-key pairs
    through ``Q K^T`` and ``A V``."""
    D = att.q_proj.in_features
    return [("q_proj", D, D, queries * D * D, att.q_proj.neuron),
            ("k_proj", D, D, keys * D * D, att.k_proj.neuron),
            ("v_proj", D, D, keys * D * D, att.v_proj.neuron),
            ("scores (Q K^T)", D, None, pairs * D, att.key_neuron),
            ("context (A V)", D, None, pairs * D, att.value_neuron),
            ("out_proj", D, D, queries * D * D, att.out_proj.neuron)]


def _ffn_rows(layer: nn.Module, tokens: float):
    return [(name, lin.in_features, lin.out_features, tokens * lin.in_features * lin.out_features, lin.neuron)
            for name, lin in (("fc1", layer.fc1), ("fc2", layer.fc2))]


@torch.no_grad()
def estimate_seq2seq_energy(model: SpikeLMForConditionalGeneration, batch: Mapping,
                            precision: str = "fp32") -> EnergyReport:
    """Energy per (source, target) pair of a spiking encoder-decoder, Appendix A.3 extended to
    the decoder: the same ``m n E_MAC`` / ``m n E_AC T r`` per token, with ``r`` measured in one
    eval-mode teacher-forced forward on ``batch`` (``input_ids``, ``attention_mask`` and the
    target as ``labels`` and/or ``decoder_input_ids``; target tokens are those of
    ``decoder_attention_mask``, else ``labels != -100``, else all). For a source of ``S`` and a
    target of ``L`` real tokens: encoder projections and FFN on ``S`` tokens, ``S^2`` pairs in
    self-attention; decoder projections and FFN on ``L`` tokens, ``L (L + 1) / 2`` causal pairs,
    cross-attention queries on ``L`` and keys/values on ``S`` tokens with ``L S`` pairs; the LM head
    (real-valued MACs) on ``L`` tokens. This is also the cost of generating those ``L`` tokens with
    the KV cache (each new token runs its own projections and attends to the cached prefix; the
    cross-attention keys and values are computed once), per beam."""
    cost = check_precision(precision)
    if not isinstance(model, SpikeLMForConditionalGeneration):
        raise TypeError(f"model must be a SpikeLMForConditionalGeneration, got {type(model).__name__}")
    inputs = {k: batch[k] for k in SEQ2SEQ_INPUTS if k in batch}
    if "labels" not in inputs and "decoder_input_ids" not in inputs:
        raise ValueError("batch needs the target: labels or decoder_input_ids")
    forward_in_mode(model, False, **inputs)
    ids = inputs["input_ids"]
    source = inputs.get("attention_mask", torch.ones_like(ids)).bool().sum(1).double()
    if "decoder_attention_mask" in inputs:
        target = inputs["decoder_attention_mask"].bool().sum(1).double()
    elif "labels" in inputs:
        target = (inputs["labels"] != -100).sum(1).double()
    else:
        target = torch.full_like(source, inputs["decoder_input_ids"].shape[1])
    S, L = float(source.sum()), float(target.sum())
    rows = Rows(cost, model.config.T, len(source), model.model)
    for i, layer in enumerate(model.model.encoder.layers):
        parts = _attention_rows(layer.self_attn, S, S, float((source ** 2).sum()))
        for name, m, n, dense, node in [(f"self_attn.{r[0]}", *r[1:]) for r in parts] + _ffn_rows(layer, S):
            rows.add(f"encoder.layers.{i}.{name}", m, n, dense, node)
    for i, layer in enumerate(model.model.decoder.layers):
        parts = [(f"self_attn.{r[0]}", *r[1:])
                 for r in _attention_rows(layer.self_attn, L, L, float((target * (target + 1) / 2).sum()))]
        parts += [(f"encoder_attn.{r[0]}", *r[1:])
                  for r in _attention_rows(layer.encoder_attn, L, S, float((target * source).sum()))]
        for name, m, n, dense, node in parts + _ffn_rows(layer, L):
            rows.add(f"decoder.layers.{i}.{name}", m, n, dense, node)
    head = model.lm_head
    rows.add("lm_head", head.in_features, head.out_features, L * head.in_features * head.out_features, None,
             real=True)
    return rows.report(precision, (S + L) / len(source))
