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

BiSpikCLM family (causal; :func:`estimate_energy` dispatches on the model):

- linears ``q/k/v_proj`` (fed by the block's input neuron), ``o_proj``, ``fc1``, ``fc2`` (each fed
  by its own neuron): as above, ``N m n`` per step, times ``T r`` for spikes.
- ``Q K^T`` and ``A V``: only the causal entries ``j <= i`` are computed (``N (N + 1) / 2`` query-key
  pairs). If an operand spikes, every coincidence of two non-zero entries is one accumulate,
  counted spike by spike in the forward (hooks on the two products): for SFSA, binary ``Q``,
  ``K``, ``A`` and ``V``, ``Q K^T`` costs ``sum_{t, h, j <= i, d} q_id k_jd`` ACs (the sum of the
  integer coincidence counts) and ``A V`` ``sum_{t, h, i, j, d} a_ij v_jd``; with softmax
  attention (real ``A``) ``A V`` costs one AC per non-zero ``v_jd`` of every causal pair. The
  ``rate`` of these rows is the measured count over the dense count ``T N (N + 1) / 2 D``. Both
  operands real (the ANN twin): ``N (N + 1) / 2 D`` MACs.
- the LM head: ``N D V`` MACs. Embeddings, the scale ``s``, neurons, the norm: not counted.
- per generated token: with the KV cache, generating ``N`` tokens one by one computes exactly the
  operations of the ``N``-token forward (each new token's row of the causal products; the
  neurons are elementwise per position, so the spikes are the same), so
  :meth:`EnergyReport.mj_per_token` = energy per sequence / ``N`` is the mean over a context of
  ``N``. Batches must be unpadded blocks (the firing rates count every position).
- :func:`compare_to_ann`: the same count for the ANN twin (the config with ``neuron='ann'``,
  ``attention='softmax'``, ``T=1``, ``hidden_act='relu'``: all MACs, shapes only) and each layer's
  energy as "% of the ANN's cost".

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
import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Mapping, Optional, Union

import torch
from spikingjelly.activation_based.op_counter import SimpleEnergyCostConfig
from torch import nn

from neuron_zoo import SpikeStatsMixin

from .models.bispikclm.modeling_bispikclm import BiSpikCLMPreTrainedModel
from .models.spikelm.modeling_spikelm import (
    SpikeLMForMaskedLM,
    SpikeLMForSequenceClassification,
    SpikeLMPreTrainedModel,
)
from .models.spiking import forward_in_mode

PRECISIONS = {"fp32": SimpleEnergyCostConfig.fp32, "fp16": SimpleEnergyCostConfig.fp16}
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
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

    def mj_per_token(self) -> float:
        """Energy per sequence / real tokens per sequence (for a causal model with a KV cache:
        the mean energy of one generated token over a context of that length)."""
        return self.total_mj / self.mean_tokens

    def per_layer(self) -> Dict[str, float]:
        """mJ per sequence summed per layer (``encoder.layer.3.*`` / ``model.layers.3.*`` -> ``"3"``;
        a head keeps its row name)."""
        out: Dict[str, float] = {}
        for r in self.rows:
            match = re.search(r"(?:^|\.)layers?\.(\d+)\.", r["layer"])
            key = match.group(1) if match else r["layer"]
            out[key] = out.get(key, 0.0) + r["energy_mj"]
        return out

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


def _row_adder(rows: List[Dict], cost, B: int, T: int):
    """``add(layer, m, n, dense_total, rate, steps)``: one row of a batch of ``B`` sequences;
    ``rate`` None: ``dense * steps`` MACs, else ``dense * T * rate`` ACs."""
    def add(layer, m, n, dense_total, rate, steps):
        dense = dense_total / B
        if rate is None:
            kind, ops, energy_pj = "MAC", dense * steps, cost.e_mac_pj
        else:
            kind, steps, energy_pj = "AC", T, cost.e_ac_pj
            ops = dense * T * rate
        rows.append(dict(layer=layer, kind=kind, m=m, n=n, dense_ops=dense, steps=steps, rate=rate,
                         ops=ops, energy_mj=ops * energy_pj * PJ_TO_MJ))
    return add


@torch.no_grad()
def estimate_energy(model: SpikeLMPreTrainedModel, batch: Union[Mapping, torch.Tensor],
                    precision: str = "fp32") -> EnergyReport:
    """Energy per sequence of ``model`` on ``batch`` (a dict of model inputs or an
    ``input_ids`` tensor), Appendix A.3: ``m n E_MAC`` per token for real-valued matmuls,
    ``m n E_AC T r`` for spike-driven ones, ``r`` measured in one eval-mode forward on the
    batch (the model must be calibrated). Attention matmuls are counted with each sequence's
    real length. A BiSpikCLM-family model is counted with its causal products (coincidences
    counted spike by spike). See the module docstring for exactly what is counted."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not accepted; choose one of {', '.join(PRECISIONS)}")
    if not isinstance(model, (SpikeLMPreTrainedModel, BiSpikCLMPreTrainedModel)):
        raise TypeError(f"model must be a SpikeLM model or a BiSpikCLM model, got {type(model).__name__}")
    cost = PRECISIONS[precision]()
    inputs = {"input_ids": batch} if isinstance(batch, torch.Tensor) else {
        k: v for k, v in batch.items() if k in MODEL_INPUTS}
    if isinstance(model, BiSpikCLMPreTrainedModel):
        return _causal_energy(model, inputs, cost, precision)
    forward_in_mode(model, False, **inputs)
    ids = inputs["input_ids"]
    mask = inputs.get("attention_mask")
    lengths = (mask.bool().sum(1) if mask is not None else torch.full((ids.shape[0],), ids.shape[1])).double()
    B, tokens, squares = len(lengths), float(lengths.sum()), float((lengths ** 2).sum())
    encoder = model.base_model.encoder
    T = model.config.T
    spiking = any(isinstance(m, SpikeStatsMixin) for m in encoder.modules())
    real_steps = T if spiking else 1
    rows: List[Dict] = []
    add = _row_adder(rows, cost, B, T)
    for i, layer in enumerate(encoder.layer):
        for name, m, n, node in _encoder_matmuls(layer):
            dense_total = tokens * m * n if n is not None else squares * m
            add(f"encoder.layer.{i}.{name}", m, n, dense_total, _firing_rate(node), real_steps)
    for name, linear, per_token in _head_linears(model):
        count = tokens if per_token else B
        add(name, linear.in_features, linear.out_features, count * linear.in_features * linear.out_features,
            None, 1)
    return EnergyReport(rows=rows, total_mj=sum(r["energy_mj"] for r in rows), precision=precision,
                        e_mac_pj=cost.e_mac_pj, e_ac_pj=cost.e_ac_pj, T=T if spiking else 1,
                        sequences=B, mean_tokens=tokens / B)


def _nonzero_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[a != 0] @ [b != 0]``: per output entry, the products of two non-zero operands."""
    return torch.matmul((a != 0).to(torch.float64), (b != 0).to(torch.float64))


def _causal_energy(model: BiSpikCLMPreTrainedModel, inputs: Dict, cost, precision: str) -> EnergyReport:
    """:func:`estimate_energy` of a BiSpikCLM-family model (module docstring)."""
    ids = inputs["input_ids"]
    mask = inputs.get("attention_mask")
    if mask is not None and not bool(mask.bool().all()):
        raise ValueError("the energy of a BiSpikCLM model is estimated on unpadded blocks: attention_mask "
                         "has padding (firing rates would count the padded positions)")
    config, (B, N) = model.config, ids.shape
    base = model.base_model
    layers, head = base.layers, getattr(model, "lm_head", None)
    causal = torch.ones(N, N, dtype=torch.bool, device=ids.device).tril()
    coincidences: Dict[str, float] = {}

    def count(name, scores):  # Q K^T: mask the [.., L, L] result; A V: mask A
        def hook(module, args, out):
            a, b = args
            pairs = _nonzero_pairs(a, b) * causal if scores else _nonzero_pairs(a * causal, b)
            coincidences[name] = float(pairs.sum())
        return hook

    hooks = []
    for i, block in enumerate(layers):
        hooks.append(block.self_attn.qk.register_forward_hook(count(f"{i}.qk", True)))
        hooks.append(block.self_attn.av.register_forward_hook(count(f"{i}.av", False)))
    try:
        forward_in_mode(model, False, input_ids=ids, use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    spiking = any(isinstance(m, SpikeStatsMixin) for m in layers.modules())
    T = config.T if spiking else 1
    D, V, tokens, pairs = config.hidden_size, config.vocab_size, B * N, B * N * (N + 1) / 2
    rows: List[Dict] = []
    add = _row_adder(rows, cost, B, T)
    for i, block in enumerate(layers):
        att, mlp, prefix = block.self_attn, block.mlp, f"model.layers.{i}"
        for name, lin in (("q_proj", att.q_proj), ("k_proj", att.k_proj), ("v_proj", att.v_proj)):
            add(f"{prefix}.self_attn.{name}", lin.in_features, lin.out_features,
                tokens * lin.in_features * lin.out_features, _firing_rate(att.input_neuron), T)
        products = (("scores (Q K^T)", "qk", (att.q_neuron, att.k_neuron)),
                    ("context (A V)", "av", (att.attn_neuron, att.v_neuron)))
        for name, key, nodes in products:
            spikes = any(node is not None and _firing_rate(node) is not None for node in nodes)
            rate = coincidences[f"{i}.{key}"] / (pairs * D * T) if spikes else None
            add(f"{prefix}.self_attn.{name}", D, None, pairs * D, rate, T)
        for name, lin in (("self_attn.o_proj", att.o_proj), ("mlp.fc1", mlp.fc1), ("mlp.fc2", mlp.fc2)):
            add(f"{prefix}.{name}", lin.in_features, lin.out_features,
                tokens * lin.in_features * lin.out_features, _firing_rate(lin.neuron), T)
    if head is not None:
        add("lm_head", D, V, tokens * D * V, None, 1)
    return EnergyReport(rows=rows, total_mj=sum(r["energy_mj"] for r in rows), precision=precision,
                        e_mac_pj=cost.e_mac_pj, e_ac_pj=cost.e_ac_pj, T=T, sequences=B, mean_tokens=float(N))


def ann_twin_config(config):
    """The ANN twin of a BiSpikCLM config: ``neuron='ann'``, softmax attention, ``T=1``,
    ``hidden_act`` ReLU unless set; the sizes unchanged."""
    from .models.bispikclm import BiSpikCLMConfig

    fields = config.to_dict()
    for name in ("attention_neuron", "attention_threshold", "attention_scale"):
        fields.pop(name, None)
    fields.update(neuron="ann", attention="softmax", T=1, hidden_act=config.hidden_act or "relu")
    return BiSpikCLMConfig.from_dict(fields)


@dataclass
class EnergyComparison:
    """A model's :class:`EnergyReport` next to its ANN twin's, per layer and in total."""

    model: EnergyReport
    ann: EnergyReport

    def percent_of_ann(self) -> float:
        return 100.0 * self.model.total_mj / self.ann.total_mj

    def per_layer(self) -> Dict[str, Dict[str, float]]:
        """``{layer: {"mj": ..., "ann_mj": ..., "percent": ...}}`` (mJ per sequence)."""
        ann = self.ann.per_layer()
        return {k: {"mj": v, "ann_mj": ann[k], "percent": 100.0 * v / ann[k]}
                for k, v in self.model.per_layer().items()}

    def to_dict(self) -> Dict:
        return {"percent_of_ann": self.percent_of_ann(), "mj_per_sequence": self.model.total_mj,
                "ann_mj_per_sequence": self.ann.total_mj, "mj_per_token": self.model.mj_per_token(),
                "ann_mj_per_token": self.ann.mj_per_token(), "per_layer": self.per_layer(),
                "model": self.model.to_dict(), "ann": self.ann.to_dict()}

    def to_markdown(self) -> str:
        lines = [f"Energy per sequence of {self.model.mean_tokens:.0f} tokens vs the ANN twin "
                 f"(E_MAC={self.model.e_mac_pj} pJ, E_AC={self.model.e_ac_pj} pJ; T={self.model.T})", "",
                 "| layer | mJ | ANN mJ | % of the ANN's cost |", "|---|---:|---:|---:|"]
        for name, r in self.per_layer().items():
            lines.append(f"| {name} | {r['mj']:.4g} | {r['ann_mj']:.4g} | {r['percent']:.2f} |")
        lines.append(f"| **total** | **{self.model.total_mj:.4g}** | **{self.ann.total_mj:.4g}** | "
                     f"**{self.percent_of_ann():.2f}** |")
        lines.append(f"| per token | {self.model.mj_per_token():.4g} | {self.ann.mj_per_token():.4g} | |")
        return "\n".join(lines)


def compare_to_ann(model: BiSpikCLMPreTrainedModel, batch: Union[Mapping, torch.Tensor],
                   precision: str = "fp32") -> EnergyComparison:
    """:func:`estimate_energy` of a BiSpikCLM-family ``model`` on ``batch`` and of its ANN twin
    (:func:`ann_twin_config`; all MACs, so its weights do not matter), as the paper reports
    energy: "% of the ANN's cost", per layer and in total."""
    from .models.bispikclm import BiSpikCLMForCausalLM

    if not isinstance(model, BiSpikCLMPreTrainedModel):
        raise TypeError(f"model must be a BiSpikCLM model, got {type(model).__name__}")
    twin = BiSpikCLMForCausalLM(ann_twin_config(model.config)).to(next(model.parameters()).device)
    return EnergyComparison(estimate_energy(model, batch, precision), estimate_energy(twin, batch, precision))
