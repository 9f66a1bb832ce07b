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


def check_weights(weights: Dict[str, float], defaults: Dict[str, float] = DEFAULT_WEIGHTS,
                  name: str = "distill_weights") -> Dict[str, float]:
    """``defaults`` updated with ``weights``; an unknown key or a negative weight raises naming
    ``name``."""
    accepted = f"accepted keys {', '.join(defaults)} with weights >= 0"
    for key, weight in weights.items():
        if key not in defaults:
            unknown = sorted(set(weights) - set(defaults))
            raise ValueError(f"{name} {key}={weight!r}: {accepted} "
                             f"(unknown distillation weight(s) {unknown})")
        if not weight >= 0:
            raise ValueError(f"{name} {key}={weight!r}: {accepted}")
    return {**defaults, **weights}


def load_teacher(name: str, head: str, num_labels: Optional[int] = None) -> nn.Module:
    """The ANN teacher (folder or hub name) in eval mode, frozen, with eager attention so it
    returns attention maps; ``head`` is ``mlm``, ``classification`` or ``causal``. A
    classification teacher must have ``num_labels`` outputs."""
    import transformers as tf

    autos = {"mlm": tf.AutoModelForMaskedLM, "classification": tf.AutoModelForSequenceClassification,
             "causal": tf.AutoModelForCausalLM}
    if head not in autos:
        raise ValueError(f"head={head!r}; accepted: {', '.join(autos)}")
    if head == "causal":
        from .. import models  # noqa: F401 - registers BiSpikCLM with the Auto classes
    auto = autos[head]
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


def logit_kl(zs: torch.Tensor, zt: torch.Tensor, temperature: float) -> torch.Tensor:
    """``tau^2 KL(softmax(z_t / tau) || softmax(z_s / tau))``, mean over the rows of ``[N, V]``
    logits (0 for no rows)."""
    if zs.shape != zt.shape:
        raise ValueError(f"cannot distil logits: student {tuple(zs.shape)} vs teacher {tuple(zt.shape)} "
                         "(a different vocabulary: use the teacher's tokenizer)")
    if zs.shape[0] == 0:
        return zs.sum() * 0.0
    tau = temperature
    log_ps, log_pt = F.log_softmax(zs.float() / tau, -1), F.log_softmax(zt.float() / tau, -1)
    return F.kl_div(log_ps, log_pt, log_target=True, reduction="batchmean") * tau ** 2


def distill_loss(student, teacher, attention_mask: torch.Tensor, weights: Dict[str, float],
                 temperature: float = 1.0, logit_mask: Optional[torch.Tensor] = None,
                 regression: bool = False) -> Tuple[torch.Tensor, Dict[str, float]]:
    """The weighted sum above (without the task term) and its parts (with gradients).
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
        else:
            parts["logits"] = logit_kl(zs, zt, temperature)
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
    return total, parts


class Distiller:
    """Adds the distillation terms to a student's task loss: ask the student for
    :attr:`output_flags`, then ``loss, parts = distiller(student_out, inputs)``; ``parts`` are
    detached tensors named ``distill_<term>`` (and ``task_loss``) for logging.

    The mechanism every distillation recipe shares (SpAD, :mod:`.spad`, subclasses it):
    :attr:`defaults` names the weighted terms, :attr:`task_term` the one that is the student's
    own loss, :meth:`terms` computes the others from the student's and the (frozen, no-grad)
    teacher's outputs; the loss is ``sum_k w_k term_k``, and a term of weight 0 is not computed.
    :attr:`learned` holds parameters the recipe trains with the student (none here); the
    :class:`~.trainer.SpikingTrainer` optimises and checkpoints them."""

    defaults: Dict[str, float] = DEFAULT_WEIGHTS
    task_term = "task"
    prefix = "distill_"

    def __init__(self, teacher: nn.Module, weights: Dict[str, float], temperature: float = 1.0,
                 regression: bool = False):
        if not temperature > 0:
            raise ValueError(f"distill_temperature={temperature} must be positive")
        self.teacher, self.weights = teacher, check_weights(weights, self.defaults, self.prefix + "weights")
        self.temperature, self.regression = temperature, regression
        self.learned = nn.ModuleDict()
        self.teacher_flags: Dict[str, bool] = {}
        self.output_flags = self.needed_outputs()

    def needed_outputs(self) -> Dict[str, bool]:
        """The output flags both models are called with (what the non-zero terms need)."""
        hidden, attention = bool(self.weights["hidden"]), bool(self.weights["attention"])
        return {"output_hidden_states": hidden or attention, "output_attentions": attention}

    def terms(self, student, teacher, inputs: Dict[str, torch.Tensor],
              logit_mask: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The distillation terms of non-zero weight (with gradients), by name."""
        return distill_loss(student, teacher, inputs["attention_mask"], self.weights, self.temperature,
                            logit_mask, self.regression)[1]

    def log_name(self, term: str) -> str:
        return "task_loss" if term == self.task_term else self.prefix + term

    def __call__(self, student, inputs: Dict[str, torch.Tensor],
                 logit_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        device = inputs["input_ids"].device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        if self.learned and next(self.learned.parameters()).device != device:
            self.learned.to(device)
        with torch.no_grad():
            teacher = self.teacher(**inputs, **self.output_flags, **self.teacher_flags)
        parts = self.terms(student, teacher, inputs, logit_mask)
        if student.loss is not None:
            parts[self.task_term] = student.loss
        loss = sum(self.weights[k] * v for k, v in parts.items() if k in self.weights)
        return loss, {self.log_name(k): v.detach() for k, v in parts.items()}
