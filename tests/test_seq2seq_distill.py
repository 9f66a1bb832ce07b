"""Distillation of a spiking encoder-decoder (DQ-BART's terms): each term by hand on small
tensors, padding left out on every axis, and the job distilling a student from the ANN twin."""
import json
from types import SimpleNamespace as Out

import pytest
import torch
from seq2seq_tiny import args, make_data

from sj_spikelm.train import seq2seq
from sj_spikelm.train.distill import Distiller, logit_term, seq2seq_distill_loss

ONLY = {k: {"task": 0.0, "logits": 0.0, "hidden": 0.0, "attention": 0.0, k: 1.0}
        for k in ("logits", "hidden", "attention")}


def outputs(value, pad_value, src, tgt):
    """Outputs filled with ``value`` on real positions and ``pad_value`` wherever padding is
    involved; attention maps: encoder ``value``, decoder ``0``, cross ``3 * value``."""
    def fill(shape, valid, v):
        x = torch.full(shape, pad_value)
        x[valid] = v
        return x

    B, S, T, D, H = 2, 4, 3, 2, 1
    pair = lambda q, k: q[:, None, :, None] & k[:, None, None, :]  # noqa: E731
    return Out(
        logits=torch.randn(B, T, 5),
        encoder_hidden_states=(fill((B, S, D), src, value),) * 2,
        decoder_hidden_states=(fill((B, T, D), tgt, 2 * value),) * 2,
        encoder_attentions=(fill((B, H, S, S), pair(src, src).expand(B, H, S, S), value),),
        decoder_attentions=(fill((B, H, T, T), pair(tgt, tgt).expand(B, H, T, T), 0.0),),
        cross_attentions=(fill((B, H, T, S), pair(tgt, src).expand(B, H, T, S), 3 * value),),
        encoder_last_hidden_state=torch.zeros(B, S, D))


def test_each_term_by_hand_with_padding_left_out():
    src = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]).bool()
    tgt = torch.tensor([[1, 1, 1], [1, 0, 0]]).bool()
    student, teacher = outputs(0.0, 0.0, src, tgt), outputs(1.0, 100.0, src, tgt)
    _, parts = seq2seq_distill_loss(student, teacher, src.long(), tgt.long(), ONLY["hidden"])
    assert parts["hidden"] == pytest.approx((1 + 4) / 2)  # encoder (1 - 0)^2, decoder (2 - 0)^2
    _, parts = seq2seq_distill_loss(student, teacher, src.long(), tgt.long(), ONLY["attention"])
    assert parts["attention"] == pytest.approx((1 + 0 + 9) / 3)  # encoder, decoder, cross
    total, parts = seq2seq_distill_loss(student, teacher, src.long(), tgt.long(), ONLY["logits"], 2.0)
    assert parts["logits"] == pytest.approx(float(logit_term(student.logits, teacher.logits, tgt, 2.0)))
    kl = torch.nn.functional.kl_div(torch.log_softmax(student.logits[tgt] / 2, -1),
                                    torch.log_softmax(teacher.logits[tgt] / 2, -1), log_target=True,
                                    reduction="batchmean") * 4
    assert float(total) == pytest.approx(float(kl))


def test_distiller_dispatches_encoder_decoder_outputs():
    src = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    tgt = torch.tensor([[1, 1, 1], [1, 0, 0]]).bool()
    teacher_out = outputs(1.0, 100.0, src.bool(), tgt)

    class Teacher(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, **kwargs):
            return teacher_out

    student = outputs(0.0, 0.0, src.bool(), tgt)
    student.loss = torch.tensor(2.0)
    distiller = Distiller(Teacher(), {"logits": 0.0, "attention": 0.0}, 1.0)
    loss, logs = distiller(student, {"input_ids": torch.zeros(2, 4, dtype=torch.long), "attention_mask": src,
                                     "decoder_input_ids": torch.zeros(2, 3, dtype=torch.long)}, tgt)
    assert float(logs["distill_hidden"]) == pytest.approx(2.5) and float(loss) == pytest.approx(2.0 + 2.5)


def test_job_distils_a_spiking_student_from_the_ann_twin(tmp_path):
    root = make_data(tmp_path / "data")
    teacher = tmp_path / "ann"
    seq2seq.main(args(root, teacher))
    student = tmp_path / "student"
    seq2seq.main(args(root, student, init_from=str(teacher / "best"), model_config="{}",
                      neuron="elastic_bi(k=2)", T=2, distill=str(teacher / "best"),
                      distill_weights='{"attention": 0.5}', logging_steps=1, report_to="tensorboard"))
    m = json.loads((student / "metrics.json").read_text())
    assert m["config"]["distill"] == str(teacher / "best") and m["steps"] == 4
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(student / "tb"))
    acc.Reload()
    assert {"train/distill_logits", "train/distill_hidden", "train/distill_attention", "train/task_loss"} <= \
        set(acc.Tags()["scalars"])
    assert all(e.value > 0 for e in acc.Scalars("train/distill_hidden"))
