"""Theoretical inference energy of SpikeLM (Appendix A.3), per layer and per sequence.

Every linear layer and attention matmul of the encoder costs, per token (45 nm, Horowitz 2014)::

    ANN (real input):      E = m * n * E_MAC
    SNN (spiking input):   E = m * n * E_AC * T * r

with ``m x n`` the matmul's size, ``T`` the time steps and ``r`` the measured firing rate of the
spikes feeding it (non-zero share over the real tokens: spikes are counted under the attention
mask, so padding is left out). ``E_MAC / E_AC`` are 4.6 / 0.9 pJ (FP32) and 1.5 / 0.4 pJ (FP16),
taken from SpikingJelly's ``op_counter.SimpleEnergyCostConfig`` presets.

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

What SpikingJelly's ``op_counter`` (``MACCounter`` / ``ACCounter`` under
``DispatchCounterMode``) could not do here: it decides "spike" per aten call by checking that a
tensor is binary ``{0, 1}``, so ternary ``{-a, 0, +a}`` spikes are counted as dense MACs and
contribute no ACs; it counts whatever the tensors hold, padding included; it checks every
matmul operand with ``.item()`` (a host synchronisation per op); and fused attention
(``scaled_dot_product_attention``) is not one of its rules. So counts come from the model's
structure and the neurons' cached spike counts; ``MACCounter`` agrees with the ANN count on an
unpadded batch with eager attention (checked in the tests).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Mapping, Optional, Union

import torch
from spikingjelly.activation_based.op_counter import SimpleEnergyCostConfig
from torch import nn

from neuron_zoo import SpikeStatsMixin

from .models.spikelm.modeling_spikelm import (
    SpikeLMForMaskedLM,
    SpikeLMForSequenceClassification,
    SpikeLMPreTrainedModel,
)
from .models.spikelm_seq2seq.modeling_spikelm_seq2seq import SpikeLMForConditionalGeneration
from .models.spiking import forward_in_mode

PRECISIONS = {"fp32": SimpleEnergyCostConfig.fp32, "fp16": SimpleEnergyCostConfig.fp16}
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
SEQ2SEQ_INPUTS = ("input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask", "labels")
PJ_TO_MJ = 1e-9


@dataclass
class EnergyReport:
    """Per-layer rows (dicts: ``layer``, ``kind`` MAC/AC, ``m``, ``n``, ``dense_ops`` per
    sequence and step, ``steps``, ``rate``, ``ops`` per sequence, ``energy_mj`` per sequence) and
    ``total_mj``, the mean energy of one sequence of the batch."""

    rows: List[Dict] = field(default_factory=list)
    total_mj: float = 0.0
    precision: str = "fp32"
    e_mac_pj: float = 0.0
    e_ac_pj: float = 0.0
    T: int = 1
    sequences: int = 0
    mean_tokens: float = 0.0

    def to_dict(self) -> Dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self) -> str:
        lines = [f"Energy per sequence ({self.precision}: E_MAC={self.e_mac_pj} pJ, E_AC={self.e_ac_pj} pJ; "
                 f"T={self.T}; {self.sequences} sequences, {self.mean_tokens:.1f} real tokens on average)",
                 "", "| layer | kind | m x n | ops/step (dense) | steps | rate | ops | energy (mJ) |",
                 "|---|---|---|---:|---:|---:|---:|---:|"]
        for r in self.rows:
            size = f"{r['m']} x {r['n']}" if r["n"] is not None else f"{r['m']} x N"
            rate = "" if r["rate"] is None else f"{r['rate']:.4f}"
            lines.append(f"| {r['layer']} | {r['kind']} | {size} | {r['dense_ops']:.4g} | {r['steps']} | "
                         f"{rate} | {r['ops']:.4g} | {r['energy_mj']:.4g} |")
        lines.append(f"| **total** | | | | | | | **{self.total_mj:.4g}** |")
        return "\n".join(lines)


def _firing_rate(node: nn.Module) -> Optional[float]:
    """Measured firing rate of a spiking zoo neuron's last forward; None for real outputs."""
    if not isinstance(node, SpikeStatsMixin):
        return None
    if node.spike_counts is None:
        raise RuntimeError(f"{type(node).__name__} recorded no spikes (record_stats={node.record_stats})")
    return float(node.firing_rate)


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
    real length. See the module docstring for exactly what is counted."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not accepted; choose one of {', '.join(PRECISIONS)}")
    if not isinstance(model, SpikeLMPreTrainedModel):
        raise TypeError(f"model must be a SpikeLM model, got {type(model).__name__}")
    cost = PRECISIONS[precision]()
    inputs = {"input_ids": batch} if isinstance(batch, torch.Tensor) else {
        k: v for k, v in batch.items() if k in MODEL_INPUTS}
    forward_in_mode(model, False, **inputs)
    ids = inputs["input_ids"]
    mask = inputs.get("attention_mask")
    lengths = (mask.bool().sum(1) if mask is not None else torch.full((ids.shape[0],), ids.shape[1])).double()
    B, tokens, squares = len(lengths), float(lengths.sum()), float((lengths ** 2).sum())
    encoder = model.base_model.encoder
    rows = _Rows(cost, model.config.T, B, encoder)
    for i, layer in enumerate(encoder.layer):
        for name, m, n, node in _encoder_matmuls(layer):
            dense_total = tokens * m * n if n is not None else squares * m
            rows.add(f"encoder.layer.{i}.{name}", m, n, dense_total, node)
    for name, linear, per_token in _head_linears(model):
        count = tokens if per_token else B
        rows.add(name, linear.in_features, linear.out_features,
                 count * linear.in_features * linear.out_features, None, real=True)
    return rows.report(precision, tokens / B)


class _Rows:
    """The rows of an :class:`EnergyReport`: a matmul fed by a spiking neuron costs ``dense * T * r``
    ACs, one with real input ``dense`` MACs per step (``T`` steps in a spiking model, one in an
    ANN, which repeats the same step; one for the heads, ``real=True``)."""

    def __init__(self, cost, T: int, sequences: int, spiking_part: nn.Module):
        self.cost, self.T, self.B, self.rows = cost, T, sequences, []
        self.spiking = any(isinstance(m, SpikeStatsMixin) for m in spiking_part.modules())

    def add(self, layer: str, m: int, n: Optional[int], dense_total: float, node: Optional[nn.Module],
            real: bool = False) -> None:
        dense = dense_total / self.B
        rate = None if node is None else _firing_rate(node)
        if rate is None:
            steps = 1 if real or not self.spiking else self.T
            kind, ops, energy_pj = "MAC", dense * steps, self.cost.e_mac_pj
        else:
            kind, steps, energy_pj = "AC", self.T, self.cost.e_ac_pj
            ops = dense * self.T * rate
        self.rows.append(dict(layer=layer, kind=kind, m=m, n=n, dense_ops=dense, steps=steps, rate=rate,
                              ops=ops, energy_mj=ops * energy_pj * PJ_TO_MJ))

    def report(self, precision: str, mean_tokens: float) -> EnergyReport:
        return EnergyReport(rows=self.rows, total_mj=sum(r["energy_mj"] for r in self.rows),
                            precision=precision, e_mac_pj=self.cost.e_mac_pj, e_ac_pj=self.cost.e_ac_pj,
                            T=self.T if self.spiking else 1, sequences=self.B, mean_tokens=mean_tokens)


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
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not accepted; choose one of {', '.join(PRECISIONS)}")
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
    rows = _Rows(PRECISIONS[precision](), model.config.T, len(source), model.model)
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
