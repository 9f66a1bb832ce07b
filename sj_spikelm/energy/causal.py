"""Energy of the BiSpikCLM family (causal; ``estimate_energy`` dispatches here), per sequence:

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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Union

import torch

from ..models.bispikclm.modeling_bispikclm import BiSpikCLMPreTrainedModel
from ..models.spiking import forward_in_mode
from .accounting import EnergyReport, Rows, firing_rate


def _nonzero_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[a != 0] @ [b != 0]``: per output entry, the products of two non-zero operands."""
    return torch.matmul((a != 0).to(torch.float64), (b != 0).to(torch.float64))


def causal_energy(model: BiSpikCLMPreTrainedModel, inputs: Dict, cost, precision: str) -> EnergyReport:
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
    D, V, tokens, pairs = config.hidden_size, config.vocab_size, B * N, B * N * (N + 1) / 2
    rows = Rows(cost, config.T, B, layers)
    for i, block in enumerate(layers):
        att, mlp, prefix = block.self_attn, block.mlp, f"model.layers.{i}"
        for name, lin in (("q_proj", att.q_proj), ("k_proj", att.k_proj), ("v_proj", att.v_proj)):
            rows.add(f"{prefix}.self_attn.{name}", lin.in_features, lin.out_features,
                     tokens * lin.in_features * lin.out_features, att.input_neuron)
        products = (("scores (Q K^T)", "qk", (att.q_neuron, att.k_neuron)),
                    ("context (A V)", "av", (att.attn_neuron, att.v_neuron)))
        for name, key, nodes in products:
            spikes = any(node is not None and firing_rate(node) is not None for node in nodes)
            rate = coincidences[f"{i}.{key}"] / (pairs * D * config.T) if spikes else None
            rows.add(f"{prefix}.self_attn.{name}", D, None, pairs * D, rate=rate)
        for name, lin in (("self_attn.o_proj", att.o_proj), ("mlp.fc1", mlp.fc1), ("mlp.fc2", mlp.fc2)):
            rows.add(f"{prefix}.{name}", lin.in_features, lin.out_features,
                     tokens * lin.in_features * lin.out_features, lin.neuron)
    if head is not None:
        rows.add("lm_head", D, V, tokens * D * V, real=True)
    return rows.report(precision, float(N))


def ann_twin_config(config):
    """The ANN twin of a BiSpikCLM config: ``neuron='ann'``, softmax attention, ``T=1``,
    ``hidden_act`` ReLU unless set; the sizes unchanged."""
    from ..models.bispikclm import BiSpikCLMConfig

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
    from ..models.bispikclm import BiSpikCLMForCausalLM

    if not isinstance(model, BiSpikCLMPreTrainedModel):
        raise TypeError(f"model must be a BiSpikCLM model, got {type(model).__name__}")
    twin = BiSpikCLMForCausalLM(ann_twin_config(model.config)).to(next(model.parameters()).device)
    from .encoder import estimate_energy  # (encoder.estimate_energy dispatches to this module)

    return EnergyComparison(estimate_energy(model, batch, precision), estimate_energy(twin, batch, precision))
