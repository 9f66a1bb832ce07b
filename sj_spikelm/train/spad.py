"""Spike-Aware Alignment Distillation (SpAD; BiSpikCLM, Guo et al., 2026) of a BiSpikCLM student
from a causal-LM teacher (the ANN twin, or a Llama/OPT model with the same tokenizer)::

    L = l1 EA + l2 SAA + l3 SFA + l4 STA + l5 HTA,   l = (0.2, 0.1, 0.1, 0.3, 0.3), tau = 2

    EA  = MSE(P_0(mean_t e_S), e_T)                        embedding outputs
    SAA = mean_l MSE(mean_t A_S[l], P_T[g(l)])             attention map vs teacher probabilities
          + mu mean_l MSE(mean_t A_S[l], mean_t SN_attn(P_T[g(l)]))   rate term
    SFA = mean_l MSE(LayerNorm(P_l(mean_t h_S[l])), h_T[g(l)])         hidden states
    STA = tau^2 KL(softmax(z_T / tau) || softmax(z_S / tau))           logits
    HTA = CE(z_S, next tokens)                                         the student's own loss

``mean_t`` is the mean over the student's ``T`` steps (the student's ``hidden_states`` and
``attentions`` are already averaged over ``T``). The rate term feeds the teacher's probabilities
as a constant current for ``T`` steps into a fresh copy of the student's attention neuron and
matches its firing rate to the student's map; ``mu`` (``rate_weight``) is a config field.
``g`` is the uniform layer map of :func:`~.distill.layer_map` (``ceil(l N_T / N_S)``).
``P_0, P_l`` are learned linear maps from the student's width to the teacher's when the widths
differ (trained with the student, saved in its checkpoints), the identity otherwise; the
LayerNorm of SFA has no learned affine. MSEs are means over the real tokens, the attention terms
over the causal entries ``j <= i`` of real tokens; STA over the positions the logit mask picks.
Attention terms need the same head count in both models. A term of weight 0 is not computed.
The paper does not state how the rate term is mixed in: here it is added to SAA with weight
``mu`` (default 1).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional
from torch import nn

from .distill import Distiller, _masked_mse, layer_map, logit_kl

SPAD_WEIGHTS = {"ea": 0.2, "saa": 0.1, "sfa": 0.1, "sta": 0.3, "hta": 0.3}


class SpADistiller(Distiller):
    """SpAD on the :class:`~.distill.Distiller` mechanism: logs ``spad_ea``, ``spad_saa`` (with
    its rate term), ``spad_saa_rate`` (the rate term alone, unweighted), ``spad_sfa``,
    ``spad_sta`` and ``spad_hta``.

    ``student_config`` is the student's :class:`~sj_spikelm.models.bispikclm.BiSpikCLMConfig`
    (widths, depth, ``T`` and the attention neuron of the rate term); the teacher's config must
    give ``hidden_size``, ``num_hidden_layers`` and ``num_attention_heads``."""

    defaults = SPAD_WEIGHTS
    task_term = "hta"
    prefix = "spad_"

    def __init__(self, teacher: nn.Module, student_config, weights: Optional[Dict[str, float]] = None,
                 temperature: float = 2.0, rate_weight: float = 1.0):
        super().__init__(teacher, weights or {}, temperature)
        if not rate_weight >= 0:
            raise ValueError(f"spad_rate_weight={rate_weight!r} is out of range; accepted: >= 0")
        w, tc = self.weights, teacher.config
        self.rate_weight, self.T = float(rate_weight), student_config.T
        self.mapping = layer_map(student_config.num_hidden_layers, tc.num_hidden_layers)
        if w["saa"] and student_config.num_attention_heads != tc.num_attention_heads:
            raise ValueError(f"SAA compares attention maps head by head: the student has num_attention_heads="
                             f"{student_config.num_attention_heads}, the teacher {tc.num_attention_heads} "
                             "(give the student the teacher's head count, or set the weight saa to 0)")
        if w["sta"] and student_config.vocab_size != tc.vocab_size:
            raise ValueError(f"STA compares logits over one vocabulary: the student has vocab_size="
                             f"{student_config.vocab_size}, the teacher {tc.vocab_size} (use the teacher's "
                             "tokenizer and vocab_size, or set the weight sta to 0)")
        self.rate_neuron = None
        if w["saa"] and self.rate_weight:
            if student_config.attention != "sfsa":
                raise ValueError(f"the SAA rate term needs the student's attention neuron; attention="
                                 f"{student_config.attention!r} has none (set spad_rate_weight to 0)")
            self.rate_neuron = student_config.build_attention_neuron()
            functional.set_step_mode(self.rate_neuron, "m")
        if student_config.hidden_size != tc.hidden_size:
            width = (student_config.hidden_size, tc.hidden_size)
            if w["ea"]:
                self.learned["ea"] = nn.Linear(*width)
            if w["sfa"]:
                self.learned["sfa"] = nn.ModuleList(nn.Linear(*width) for _ in self.mapping)
        self.teacher_flags = {"use_cache": False}

    def needed_outputs(self) -> Dict[str, bool]:
        w = self.weights
        return {"output_hidden_states": bool(w["ea"] or w["sfa"]), "output_attentions": bool(w["saa"])}

    def log_name(self, term: str) -> str:
        return self.prefix + term  # HTA too: spad_hta

    def _project(self, name: str, h: torch.Tensor, index: Optional[int] = None) -> torch.Tensor:
        if name not in self.learned:
            return h
        proj = self.learned[name] if index is None else self.learned[name][index]
        return proj(h)

    @torch.no_grad()
    def teacher_rate(self, probs: torch.Tensor) -> torch.Tensor:
        """``mean_t SN_attn(P)``: ``probs`` as a constant current for ``T`` steps into a fresh
        copy of the student's attention neuron."""
        functional.reset_net(self.rate_neuron)
        rate = self.rate_neuron(probs.unsqueeze(0).expand(self.T, *probs.shape).contiguous()).mean(0)
        functional.reset_net(self.rate_neuron)
        return rate

    def terms(self, student, teacher, inputs: Dict[str, torch.Tensor],
              logit_mask: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
        w, parts = self.weights, {}
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        valid = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()
        tok = valid[:, :, None]
        if w["ea"]:
            embedded = self._project("ea", student.hidden_states[0])
            parts["ea"] = _masked_mse(embedded, teacher.hidden_states[0], tok)
        if w["sfa"]:
            parts["sfa"] = torch.stack([
                _masked_mse(F.layer_norm(self._project("sfa", student.hidden_states[s], s - 1),
                                         teacher.hidden_states[t].shape[-1:]), teacher.hidden_states[t], tok)
                for s, t in enumerate(self.mapping, start=1)]).mean()
        if w["saa"]:
            L = ids.shape[1]
            causal = torch.ones(L, L, dtype=torch.bool, device=ids.device).tril()
            pair = valid[:, None, :, None] & valid[:, None, None, :] & causal
            maps = [(student.attentions[s - 1], teacher.attentions[t - 1])
                    for s, t in enumerate(self.mapping, start=1)]
            saa = torch.stack([_masked_mse(a_s, p_t, pair) for a_s, p_t in maps]).mean()
            if self.rate_neuron is not None:
                parts["saa_rate"] = torch.stack([_masked_mse(a_s, self.teacher_rate(p_t.float()), pair)
                                                 for a_s, p_t in maps]).mean()
                saa = saa + self.rate_weight * parts["saa_rate"]
            parts["saa"] = saa
        if w["sta"]:
            pick = valid if logit_mask is None else logit_mask & valid
            parts["sta"] = logit_kl(student.logits[pick], teacher.logits[pick], self.temperature)
        return parts
