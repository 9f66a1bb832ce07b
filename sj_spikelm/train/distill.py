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
0 otherwise. Encoder-decoders (:func:`seq2seq_distill_loss`, as DQ-BART): logits of the real target
tokens; hidden states of both stacks; encoder, decoder and cross-attention maps.
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
    returns attention maps; ``head`` is ``mlm``, ``classification``, ``causal`` or ``seq2seq``. A
    classification teacher must have ``num_labels`` outputs."""
    import transformers as tf

    autos = {"mlm": tf.AutoModelForMaskedLM, "classification": tf.AutoModelForSequenceClassification,
             "causal": tf.AutoModelForCausalLM, "seq2seq": tf.AutoModelForSeq2SeqLM}
    if head not in autos:
        raise ValueError(f"head={head!r}; accepted: {', '.join(autos)}")
    if head in ("causal", "seq2seq"):
        from .. import models  # noqa: F401 - registers our families with the Auto classes
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


def logit_term(zs: torch.Tensor, zt: torch.Tensor, logit_mask: Optional[torch.Tensor], temperature: float,
               regression: bool = False) -> torch.Tensor:
    """:func:`logit_kl` over the positions of ``logit_mask`` (all if None); ``MSE(z_s, z_t)`` for a
    regression head."""
    if logit_mask is not None:
        zs, zt = zs[logit_mask], zt[logit_mask]
    if regression:
        return F.mse_loss(zs.float(), zt.float())
    return logit_kl(zs, zt, temperature)


def hidden_term(student_states, teacher_states, valid: torch.Tensor) -> torch.Tensor:
    """``mean_l MSE(H_s[l], H_t[g(l)])`` over the real tokens ``valid`` ``[B, L]``, embeddings
    (index 0) included."""
    n_s, n_t = len(student_states) - 1, len(teacher_states) - 1
    pairs = [(0, 0)] + list(zip(range(1, n_s + 1), layer_map(n_s, n_t)))
    tok = valid[:, :, None]
    return torch.stack([_masked_mse(student_states[s], teacher_states[t], tok) for s, t in pairs]).mean()


def attention_term(student_maps, teacher_maps, valid_query: torch.Tensor,
                   valid_key: torch.Tensor) -> torch.Tensor:
    """``mean_l MSE(A_s[l], A_t[g(l)])`` over the pairs of real query and real key positions."""
    if student_maps is None or teacher_maps is None:
        raise ValueError("attention distillation needs attention maps from both models")
    pair = valid_query[:, None, :, None] & valid_key[:, None, None, :]
    mapping = layer_map(len(student_maps), len(teacher_maps))
    return torch.stack([_masked_mse(student_maps[s - 1], teacher_maps[t - 1], pair)
                        for s, t in zip(range(1, len(student_maps) + 1), mapping)]).mean()


def distill_loss(student, teacher, attention_mask: torch.Tensor, weights: Dict[str, float],
                 temperature: float = 1.0, logit_mask: Optional[torch.Tensor] = None,
                 regression: bool = False) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """The weighted sum above (without the task term) and its parts (with gradients).
    ``student`` / ``teacher`` are model outputs with ``logits``, ``hidden_states`` and
    ``attentions`` (as needed by the non-zero weights); ``logit_mask`` ``[B, L]`` picks the
    positions of token-level logits."""
    parts: Dict[str, torch.Tensor] = {}
    valid = attention_mask.bool()
    if weights["logits"]:
        parts["logits"] = logit_term(student.logits, teacher.logits, logit_mask, temperature, regression)
    if weights["hidden"]:
        parts["hidden"] = hidden_term(student.hidden_states, teacher.hidden_states, valid)
    if weights["attention"]:
        parts["attention"] = attention_term(student.attentions, teacher.attentions, valid, valid)
    return sum(weights[k] * v for k, v in parts.items()), parts


def seq2seq_distill_loss(student, teacher, attention_mask: torch.Tensor, decoder_mask: torch.Tensor,
                         weights: Dict[str, float],
                         temperature: float = 1.0) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """:func:`distill_loss` for encoder-decoder outputs (``Seq2SeqLMOutput``), as in DQ-BART: the
    KL term on the decoder logits of the real target tokens ``decoder_mask`` ``[B, L_t]``; the
    hidden term averaged over the encoder (real source tokens, ``attention_mask``) and decoder
    stacks; the attention term averaged over encoder self-, decoder self- and cross-attention maps."""
    parts: Dict[str, torch.Tensor] = {}
    src, tgt = attention_mask.bool(), decoder_mask.bool()
    if weights["logits"]:
        parts["logits"] = logit_term(student.logits, teacher.logits, tgt, temperature)
    if weights["hidden"]:
        parts["hidden"] = torch.stack([
            hidden_term(student.encoder_hidden_states, teacher.encoder_hidden_states, src),
            hidden_term(student.decoder_hidden_states, teacher.decoder_hidden_states, tgt)]).mean()
    if weights["attention"]:
        parts["attention"] = torch.stack([
            attention_term(student.encoder_attentions, teacher.encoder_attentions, src, src),
            attention_term(student.decoder_attentions, teacher.decoder_attentions, tgt, tgt),
            attention_term(student.cross_attentions, teacher.cross_attentions, tgt, src)]).mean()
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
        if getattr(student, "encoder_last_hidden_state", None) is not None:  # an encoder-decoder
            target = logit_mask if logit_mask is not None else torch.ones_like(inputs["decoder_input_ids"])
            return seq2seq_distill_loss(student, teacher, inputs["attention_mask"], target, self.weights,
                                        self.temperature)[1]
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
