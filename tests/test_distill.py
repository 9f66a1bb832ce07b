"""Distillation: layer map, each loss term against hand-computed values, and a teacher/student
step with tiny BERTs."""
import math
from types import SimpleNamespace as Out

import pytest
import torch
from tiny import TINY_BERT

from sj_spikelm.train.distill import Distiller, check_weights, distill_loss, layer_map, load_teacher

ONLY = {k: {"task": 0.0, "logits": 0.0, "hidden": 0.0, "attention": 0.0, k: 1.0}
        for k in ("logits", "hidden", "attention")}


def test_layer_map_is_uniform():
    assert layer_map(6, 12) == [2, 4, 6, 8, 10, 12]
    assert layer_map(4, 6) == [2, 3, 5, 6]  # ceil(1.5), ceil(3), ceil(4.5), ceil(6)
    assert layer_map(3, 3) == [1, 2, 3]
    assert layer_map(3, 2) == [1, 2, 2]
    with pytest.raises(ValueError, match="student=0"):
        layer_map(0, 12)


def test_logit_kl_with_temperature_by_hand():
    s, t = Out(logits=torch.tensor([[0.0, 0.0]])), Out(logits=torch.tensor([[math.log(3.0), 0.0]]))
    mask = torch.ones(1, 2)
    loss, parts = distill_loss(s, t, mask, check_weights(ONLY["logits"]), temperature=1.0)
    assert loss.item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), rel=1e-5)
    loss2, _ = distill_loss(s, t, mask, check_weights(ONLY["logits"]), temperature=2.0)
    p = math.sqrt(3) / (math.sqrt(3) + 1)  # softmax([ln 3 / 2, 0])
    expected = 4 * (p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p)))
    assert loss2.item() == pytest.approx(expected, rel=1e-5)
    reg, _ = distill_loss(Out(logits=torch.tensor([[1.0], [2.0]])), Out(logits=torch.tensor([[2.0], [4.0]])),
                          mask, check_weights(ONLY["logits"]), regression=True)
    assert reg.item() == pytest.approx((1 + 4) / 2)


def test_token_logits_use_only_the_masked_positions():
    s = Out(logits=torch.zeros(1, 3, 2))
    t = Out(logits=torch.tensor([[[math.log(3.0), 0.0], [50.0, 0.0], [50.0, 0.0]]]))
    pick = torch.tensor([[True, False, False]])
    loss, _ = distill_loss(s, t, torch.ones(1, 3), check_weights(ONLY["logits"]), logit_mask=pick)
    assert loss.item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), rel=1e-5)


def test_hidden_and_attention_terms_by_hand():
    mask = torch.tensor([[1, 1, 0]])  # last token is padding
    valid = mask.bool()

    def hidden(value):
        h = torch.full((1, 3, 4), float(value))
        h[:, 2] = 100.0  # padding: must not count
        return h

    def attention(value):
        a = torch.full((1, 2, 3, 3), 100.0)
        a[:, :, :2, :2] = value
        return a

    student = Out(logits=None, hidden_states=tuple(hidden(0) for _ in range(3)),
                  attentions=tuple(attention(0.0) for _ in range(2)))
    teacher = Out(logits=None, hidden_states=tuple(hidden(layer) for layer in range(5)),
                  attentions=tuple(attention(0.1 * layer) for layer in range(1, 5)))
    # student layers 1, 2 <- teacher layers 2, 4; embeddings <- embeddings
    h, _ = distill_loss(student, teacher, mask, check_weights(ONLY["hidden"]))
    assert h.item() == pytest.approx((0 + 2 ** 2 + 4 ** 2) / 3)
    a, parts = distill_loss(student, teacher, mask, check_weights(ONLY["attention"]))
    assert a.item() == pytest.approx((0.2 ** 2 + 0.4 ** 2) / 2)
    assert set(parts) == {"attention"} and valid.sum() == 2
    wide = Out(logits=None, hidden_states=tuple(torch.zeros(1, 3, 8) for _ in range(5)), attentions=None)
    with pytest.raises(ValueError, match="different width"):
        distill_loss(student, wide, mask, check_weights(ONLY["hidden"]))


def test_unknown_weight_is_rejected():
    with pytest.raises(ValueError, match=r"unknown distillation weight\(s\) \['kl'\]"):
        check_weights({"kl": 1.0})


def test_distiller_trains_the_student_only(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30, num_labels=2, attn_implementation="eager", **TINY_BERT)
    teacher_dir = tmp_path / "teacher"
    BertForSequenceClassification(config).save_pretrained(teacher_dir)
    teacher = load_teacher(str(teacher_dir), "classification", num_labels=2)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(ValueError, match="num_labels=2, the task needs 3"):
        load_teacher(str(teacher_dir), "classification", num_labels=3)
    student = BertForSequenceClassification(config)
    distiller = Distiller(teacher, {"task": 0.5}, temperature=2.0)
    inputs = {"input_ids": torch.tensor([[2, 5, 6, 3, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1, 0]])}
    out = student(**inputs, labels=torch.tensor([1]), **distiller.output_flags)
    loss, logs = distiller(out, inputs)
    parts = ("distill_logits", "distill_hidden", "distill_attention")
    expected = 0.5 * logs["task_loss"] + sum(logs[k] for k in parts)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in student.bert.encoder.parameters())
