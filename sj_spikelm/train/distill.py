"""Knowledge distillation from an ANN teacher (``--distill TEACHER``), as in SpikeLM's
generative setup: a KL term on the logits plus L2 terms on the hidden states and attention maps
of every student layer.

    L = w_task L_task + w_logits tau^2 KL(softmax(z_t / tau) || softmax(z_s / tau))
        + w_hidden mean_l MSE(H_s[l], H_t[g(l)]) + w_attention mean_l MSE(A_s[l], A_t[g(l)])

Regression heads (STS-B) use ``MSE(z_s, z_t)`` for the logit term. For MLM only the masked
positions enter the logit term. Hidden states and attention maps are compared over real tokens
only (padding excluded on both attention axes). Layer map (uniform, as in TinyBERT): student layer
``l = 1..N_s`` learns from teacher layer ``g(l) = ceil(l * N_t / N_s)``, embeddings from embeddings,
so a 6-layer student of a 12-layer teacher uses teacher layers 2, 4, ..., 12. The hidden and
attention terms need equal widths and head counts (no projection is learnt): set their weight to
0 otherwise.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WEIGHTS = {"task": 1.0, "logits": 1.0, "hidden": 1.0, "attention": 1.0}


def layer_map(student_layers: int, teacher_layers: int) -> List[int]:
    """Teacher layer (1-based) for each student layer 1..N_s: ``ceil(l * N_t / N_s)``."""
    if student_layers < 1 or teacher_layers < 1:
        raise ValueError(f"layer counts must be positive, got student={student_layers}, "
                         f"teacher={teacher_layers}")
    return [-(-layer * teacher_layers // student_layers) for layer in range(1, student_layers + 1)]


def check_weights(weights: Dict[str, float]) -> Dict[str, float]:
    """``DEFAULT_WEIGHTS`` updated with ``weights``; an unknown key or a negative weight raises."""
    accepted = f"accepted keys {', '.join(DEFAULT_WEIGHTS)} with weights >= 0"
    for key, weight in weights.items():
        if key not in DEFAULT_WEIGHTS:
            unknown = sorted(set(weights) - set(DEFAULT_WEIGHTS))
            raise ValueError(f"distill_weights {key}={weight!r}: {accepted} "
                             f"(unknown distillation weight(s) {unknown})")
        if not weight >= 0:
            raise ValueError(f"distill_weights {key}={weight!r}: {accepted}")
    return {**DEFAULT_WEIGHTS, **weights}


def load_teacher(name: str, head: str, num_labels: Optional[int] = None) -> nn.Module:
    """The ANN teacher (folder or hub name) in eval mode, frozen, with eager attention so it
    returns attention maps. A classification teacher must have ``num_labels`` outputs."""
    import transformers as tf

    auto = tf.AutoModelForMaskedLM if head == "mlm" else tf.AutoModelForSequenceClassification
    teacher = auto.from_pretrained(name, attn_implementation="eager")
    if head == "classification" and teacher.config.num_labels != num_labels:
        raise ValueError(f"teacher {name!r} has num_labels={teacher.config.num_labels}, the task "
                         f"needs {num_labels}: distil from a teacher fine-tuned on the same task")
    teacher.eval().requires_grad_(False)
    return teacher


def _masked_mse(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``(a - b)^2`` over the elements where ``valid`` (broadcast to ``a``) is True."""
    if a.shape != b.shape:
        raise ValueError(f"cannot distil: student tensor {tuple(a.shape)} vs teacher {tuple(b.shape)} "
                         "(different width or head count; set that weight to 0)")
    w = valid.to(torch.float32).expand_as(a)
    return ((a.float() - b.float()).pow(2) * w).sum() / w.sum().clamp_min(1)


def distill_loss(student, teacher, attention_mask: torch.Tensor, weights: Dict[str, float],
                 temperature: float = 1.0, logit_mask: Optional[torch.Tensor] = None,
                 regression: bool = False) -> Tuple[torch.Tensor, Dict[str, float]]:
    """The weighted sum above (without the task term) and its parts (detached tensors).
    ``student`` / ``teacher``
    are model outputs with ``logits``, ``hidden_states`` and ``attentions`` (as needed by the
    non-zero weights); ``logit_mask`` ``[B, L]`` picks the positions of token-level logits."""
    parts: Dict[str, torch.Tensor] = {}
    zs, zt = student.logits, teacher.logits
    if weights["logits"]:
        if logit_mask is not None:
            zs, zt = zs[logit_mask], zt[logit_mask]
        if regression:
            parts["logits"] = F.mse_loss(zs.float(), zt.float())
        elif zs.shape[0] == 0:
            parts["logits"] = zs.sum() * 0.0
        else:
            tau = temperature
            log_ps, log_pt = F.log_softmax(zs.float() / tau, -1), F.log_softmax(zt.float() / tau, -1)
            parts["logits"] = F.kl_div(log_ps, log_pt, log_target=True, reduction="batchmean") * tau ** 2
    if weights["hidden"] or weights["attention"]:
        n_s, n_t = len(student.hidden_states) - 1, len(teacher.hidden_states) - 1
        mapping = layer_map(n_s, n_t)
        valid = attention_mask.bool()
    if weights["hidden"]:
        tok = valid[:, :, None]
        pairs = [(0, 0)] + list(zip(range(1, n_s + 1), mapping))
        parts["hidden"] = torch.stack([_masked_mse(student.hidden_states[s], teacher.hidden_states[t], tok)
                                       for s, t in pairs]).mean()
    if weights["attention"]:
        if student.attentions is None or teacher.attentions is None:
            raise ValueError("attention distillation needs attention maps from both models")
        pair = (valid[:, None, :, None] & valid[:, None, None, :])
        parts["attention"] = torch.stack([
            _masked_mse(student.attentions[s - 1], teacher.attentions[t - 1], pair)
            for s, t in zip(range(1, n_s + 1), mapping)]).mean()
    total = sum(weights[k] * v for k, v in parts.items())
    return total, {k: v.detach() for k, v in parts.items()}


class Distiller:
    """Adds the distillation terms to a student's task loss: ask the student for
    :attr:`output_flags`, then ``loss, parts = distiller(student_out, inputs)``; ``parts`` are
    detached tensors named ``distill_<term>`` (and ``task_loss``) for logging."""

    def __init__(self, teacher: nn.Module, weights: Dict[str, float], temperature: float = 1.0,
                 regression: bool = False):
        if temperature <= 0:
            raise ValueError(f"distill_temperature={temperature} must be positive")
        self.teacher, self.weights = teacher, check_weights(weights)
        self.temperature, self.regression = temperature, regression
        hidden, attention = bool(self.weights["hidden"]), bool(self.weights["attention"])
        self.output_flags = {"output_hidden_states": hidden or attention, "output_attentions": attention}

    def __call__(self, student, inputs: Dict[str, torch.Tensor],
                 logit_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        device = inputs["input_ids"].device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        with torch.no_grad():
            teacher = self.teacher(**inputs, **self.output_flags)
        kd, parts = distill_loss(student, teacher, inputs["attention_mask"], self.weights,
                                 self.temperature, logit_mask, self.regression)
        logs = {f"distill_{k}": v for k, v in parts.items()}
        if student.loss is None:
            return kd, logs
        logs["task_loss"] = student.loss.detach()
        return self.weights["task"] * student.loss + kd, logs
