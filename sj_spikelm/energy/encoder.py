"""Energy of the SpikeLM encoder (Appendix A.3; the shared accounting: :mod:`.accounting`).

Counting, for a sequence of ``N`` real tokens (padding ignored), hidden size ``D``:

- linear ``m -> n``: ``N m n`` operations per step.
- ``Q K^T``: ``Q`` real, ``K`` spikes. Each score ``q_i . k_j = a (sum_{k=+a} q - sum_{k=-a} q)``
  adds one entry of ``q_i`` per non-zero entry of ``k_j``: ``N^2 D r_K`` additions per step
  (the dense count ``N^2 D`` times the key neurons' rate).
- ``A V``: ``A`` real, ``V`` spikes: ``out_i = sum_j A_ij v_j`` adds ``A_ij`` for every non-zero
  ``v_j`` entry: ``N^2 D r_V`` per step.
- the one multiply by the amplitude ``a`` per output element (which can be folded into the
  weights or the softmax scale) is not counted, as in the paper; nor are softmax, LayerNorm,
  residual additions, embeddings and neurons.
- real-valued inputs (the ANN, or K / V with ``spike_attention_kv=False``) cost MACs at every
  step. A model without any spiking neuron (``neuron="ann"``) is an ANN: it repeats the same
  step ``T`` times, so one step is counted.
- the pooler, classifier and MLM head are real-valued MACs in both models (pooler and
  classifier on one token per sequence, the MLM head on every real token).
"""
from __future__ import annotations

from typing import Mapping, Union

import torch
from torch import nn

from ..models.bispikclm.modeling_bispikclm import BiSpikCLMPreTrainedModel
from ..models.spikelm.modeling_spikelm import (
    SpikeLMForMaskedLM,
    SpikeLMForSequenceClassification,
    SpikeLMPreTrainedModel,
)
from ..models.spiking import forward_in_mode
from .accounting import EnergyReport, Rows, check_precision
from .causal import causal_energy

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


def _encoder_matmuls(layer: nn.Module):
    """``(name, m, n, neuron feeding it)`` in forward order; ``n=None`` marks an attention
    matmul (``N^2 m`` per sequence)."""
    att, width = layer.attention.self, layer.attention.self.query.in_features
    linears = [("attention.self.query", att.query), ("attention.self.key", att.key),
               ("attention.self.value", att.value)]
    rows = [(name, lin.in_features, lin.out_features, lin.neuron) for name, lin in linears]
    rows += [("attention.scores (Q K^T)", width, None, att.key_neuron),
             ("attention.context (A V)", width, None, att.value_neuron)]
    rows += [(name, lin.in_features, lin.out_features, lin.neuron) for name, lin in (
        ("attention.output.dense", layer.attention.output.dense),
        ("intermediate.dense", layer.intermediate.dense), ("output.dense", layer.output.dense))]
    return rows


def _head_linears(model: SpikeLMPreTrainedModel):
    """``(name, linear, per_token)``: real-valued head matmuls; ``per_token`` False = once per
    sequence (first token)."""
    heads = []
    if model.base_model.pooler is not None:
        heads.append(("pooler.dense", model.base_model.pooler.dense, False))
    if isinstance(model, SpikeLMForSequenceClassification):
        heads.append(("classifier", model.classifier, False))
    if isinstance(model, SpikeLMForMaskedLM):
        heads += [("cls.predictions.transform.dense", model.cls.predictions.transform.dense, True),
                  ("cls.predictions.decoder", model.cls.predictions.decoder, True)]
    return heads


@torch.no_grad()
def estimate_energy(model: SpikeLMPreTrainedModel, batch: Union[Mapping, torch.Tensor],
                    precision: str = "fp32") -> EnergyReport:
    """Energy per sequence of ``model`` on ``batch`` (a dict of model inputs or an
    ``input_ids`` tensor), Appendix A.3: ``m n E_MAC`` per token for real-valued matmuls,
    ``m n E_AC T r`` for spike-driven ones, ``r`` measured in one eval-mode forward on the
    batch (the model must be calibrated). Attention matmuls are counted with each sequence's
    real length. A BiSpikCLM-family model is counted with its causal products (:mod:`.causal`).
    See the module docstrings for exactly what is counted."""
    cost = check_precision(precision)
    if not isinstance(model, (SpikeLMPreTrainedModel, BiSpikCLMPreTrainedModel)):
        raise TypeError(f"model must be a SpikeLM model or a BiSpikCLM model, got {type(model).__name__}")
    inputs = {"input_ids": batch} if isinstance(batch, torch.Tensor) else {
        k: v for k, v in batch.items() if k in MODEL_INPUTS}
    if isinstance(model, BiSpikCLMPreTrainedModel):
        return causal_energy(model, inputs, cost, precision)
    forward_in_mode(model, False, **inputs)
    ids = inputs["input_ids"]
    mask = inputs.get("attention_mask")
    lengths = (mask.bool().sum(1) if mask is not None else torch.full((ids.shape[0],), ids.shape[1])).double()
    B, tokens, squares = len(lengths), float(lengths.sum()), float((lengths ** 2).sum())
    encoder = model.base_model.encoder
    rows = Rows(cost, model.config.T, B, encoder)
    for i, layer in enumerate(encoder.layer):
        for name, m, n, node in _encoder_matmuls(layer):
            dense_total = tokens * m * n if n is not None else squares * m
            rows.add(f"encoder.layer.{i}.{name}", m, n, dense_total, node)
    for name, linear, per_token in _head_linears(model):
        count = tokens if per_token else B
        rows.add(name, linear.in_features, linear.out_features,
                 count * linear.in_features * linear.out_features, None, real=True)
    return rows.report(precision, tokens / B)
