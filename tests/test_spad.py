"""Spike-Aware Alignment Distillation: each term against a hand computation on tiny tensors, the
weighted sum, switching terms off, learned projections, errors, and the causal-LM job end to end
with a tiny ANN-twin teacher (every term logged to TensorBoard, exact resume)."""
import json
import math
from types import SimpleNamespace

import pytest
import torch
from test_causal_lm_job import TINY, corpora, job_args  # noqa: F401 - corpora is a fixture
from torch import nn

from sj_spikelm import BiSpikCLMConfig, BiSpikCLMForCausalLM
from sj_spikelm.train import causal_lm
from sj_spikelm.train.spad import SPAD_WEIGHTS, SpADistiller

OFF = {k: 0.0 for k in SPAD_WEIGHTS}


class FakeTeacher(nn.Module):
    """Only a config and a parameter: the term tests hand teacher outputs in directly."""

    def __init__(self, hidden=2, layers=4, heads=1, vocab=3):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(hidden_size=hidden, num_hidden_layers=layers,
                                      num_attention_heads=heads, vocab_size=vocab)


def student_config(**kw):
    fields = dict(vocab_size=3, hidden_size=2, num_hidden_layers=2, num_attention_heads=1,
                  intermediate_size=4,
                  max_position_embeddings=8, T=2)
    return BiSpikCLMConfig(**{**fields, **kw})


def spad(only, teacher=None, config=None, **kw):
    return SpADistiller(teacher or FakeTeacher(), config or student_config(), {**OFF, **only}, **kw)


def test_ea_is_the_mse_of_the_embedding_outputs_over_real_tokens():
    d = spad({"ea": 1.0})
    student = SimpleNamespace(hidden_states=(torch.tensor([[[1.0, 2.0], [9.0, 9.0]]]),))
    teacher = SimpleNamespace(hidden_states=(torch.tensor([[[0.0, 4.0], [0.0, 0.0]]]),))
    inputs = {"input_ids": torch.zeros(1, 2, dtype=torch.long), "attention_mask": torch.tensor([[1, 0]])}
    parts = d.terms(student, teacher, inputs, None)
    assert set(parts) == {"ea"} and parts["ea"].item() == pytest.approx((1 ** 2 + 2 ** 2) / 2)


def layer_norm(v, eps=1e-5):
    mean = sum(v) / len(v)
    var = sum((x - mean) ** 2 for x in v) / len(v)
    return [(x - mean) / math.sqrt(var + eps) for x in v]


def test_sfa_maps_layers_uniformly_and_normalises_the_student():
    d = spad({"sfa": 1.0})  # 2 student layers, 4 teacher layers: l -> ceil(2 l) = 2, 4
    assert d.mapping == [2, 4] and len(d.learned) == 0  # equal widths: no projection
    s1, s2 = [1.0, 3.0], [2.0, -2.0]
    t = [[0.0, 0.0], [5.0, 5.0], [0.0, 1.0], [7.0, 7.0], [1.0, -2.0]]  # embeddings, layers 1..4
    student = SimpleNamespace(hidden_states=tuple(torch.tensor([[v]]) for v in ([0.0] * 2, s1, s2)))
    teacher = SimpleNamespace(hidden_states=tuple(torch.tensor([[v]]) for v in t))
    parts = d.terms(student, teacher, {"input_ids": torch.zeros(1, 1, dtype=torch.long)}, None)
    mse = lambda a, b: sum((x - y) ** 2 for x, y in zip(a, b)) / len(a)
    expected = (mse(layer_norm(s1), t[2]) + mse(layer_norm(s2), t[4])) / 2
    assert parts["sfa"].item() == pytest.approx(expected, rel=1e-6)


def test_widths_that_differ_get_learned_projections():
    d = spad({"ea": 1.0, "sfa": 1.0}, teacher=FakeTeacher(hidden=3, layers=2))
    assert isinstance(d.learned["ea"], nn.Linear) and len(d.learned["sfa"]) == 2
    with torch.no_grad():
        for lin in (d.learned["ea"], *d.learned["sfa"]):
            lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
            lin.bias.zero_()
    h = [torch.tensor([[[1.0, 2.0]]], requires_grad=True) for _ in range(3)]
    t = [torch.tensor([[v]]) for v in ([1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])]
    parts = d.terms(SimpleNamespace(hidden_states=tuple(h)), SimpleNamespace(hidden_states=tuple(t)),
                    {"input_ids": torch.zeros(1, 1, dtype=torch.long)}, None)
    assert parts["ea"].item() == pytest.approx(9.0 / 3)  # P_0 [1, 2] = [1, 2, 3] vs [1, 2, 0]
    ln = layer_norm([1.0, 2.0, 3.0])
    expected = (sum(x ** 2 for x in ln) / 3 + sum((x - 1) ** 2 for x in ln) / 3) / 2
    assert parts["sfa"].item() == pytest.approx(expected, rel=1e-5)
    (parts["ea"] + parts["sfa"]).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.learned.parameters())


def test_saa_with_its_rate_term_by_hand():
    # soft_lif (decay 0.5, threshold 1), T = 2, constant current p: H1 = p, H2 = 0.5 (H1 - S1) + p
    # p = 1.0: spikes at t = 1 (V = 0) and t = 2 -> rate 1; p = 0.7: 0.7, 1.05 -> 0.5; p = 0.3 -> 0
    d = spad({"saa": 1.0}, rate_weight=0.5)
    probs = torch.tensor([[[[1.0, 0.0], [0.3, 0.7]]]])
    student = torch.tensor([[[[0.5, 9.0], [0.5, 0.5]]]], requires_grad=True)  # 9 above the diagonal: ignored
    assert torch.equal(d.teacher_rate(probs), torch.tensor([[[[1.0, 0.0], [0.0, 0.5]]]]))
    s_out = SimpleNamespace(attentions=(student, student))
    t_out = SimpleNamespace(attentions=(None, probs, None, probs))  # teacher layers 2 and 4 are used
    ids = torch.zeros(1, 2, dtype=torch.long)
    parts = d.terms(s_out, t_out, {"input_ids": ids}, None)
    map_mse = (0.5 ** 2 + 0.2 ** 2 + 0.2 ** 2) / 3
    rate_mse = (0.5 ** 2 + 0.5 ** 2 + 0.0) / 3
    assert parts["saa_rate"].item() == pytest.approx(rate_mse)
    assert parts["saa"].item() == pytest.approx(map_mse + 0.5 * rate_mse)
    parts["saa"].backward()
    assert student.grad[0, 0, 0, 1] == 0 and student.grad[0, 0, 1, 0] != 0
    # padding: only the pair (0, 0) of the real first token remains
    padded = d.terms(s_out, t_out, {"input_ids": ids, "attention_mask": torch.tensor([[1, 0]])}, None)
    assert padded["saa"].item() == pytest.approx(0.25 + 0.5 * 0.25)
    plain = spad({"saa": 1.0}, rate_weight=0.0).terms(s_out, t_out, {"input_ids": ids}, None)
    assert set(plain) == {"saa"} and plain["saa"].item() == pytest.approx(map_mse)


def test_sta_is_tau_squared_kl_over_the_picked_positions():
    d = spad({"sta": 1.0})
    assert d.temperature == 2.0
    zs = torch.tensor([[[1.0, 0.0, -1.0], [0.0, 2.0, 0.0], [5.0, 5.0, 5.0]]])
    zt = torch.tensor([[[0.0, 1.0, 3.0], [1.0, 1.0, 0.0], [0.0, 0.0, 9.0]]])
    inputs = {"input_ids": torch.zeros(1, 3, dtype=torch.long), "attention_mask": torch.tensor([[1, 1, 0]])}
    everywhere = torch.tensor([[True, True, True]])  # the attention mask still drops position 2
    parts = d.terms(SimpleNamespace(logits=zs), SimpleNamespace(logits=zt), inputs, everywhere)

    def kl(s, t, tau=2.0):
        ps = [math.exp(x / tau) / sum(math.exp(y / tau) for y in s) for x in s]
        pt = [math.exp(x / tau) / sum(math.exp(y / tau) for y in t) for x in t]
        return sum(q * (math.log(q) - math.log(p)) for p, q in zip(ps, pt))

    expected = 4 * sum(kl(zs[0, i].tolist(), zt[0, i].tolist()) for i in (0, 1)) / 2
    assert parts["sta"].item() == pytest.approx(expected, rel=1e-6)


def tiny_models(seed=0, **teacher_kw):
    torch.manual_seed(seed)
    fields = dict(vocab_size=12, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=16, max_position_embeddings=8)
    ann = BiSpikCLMConfig(**{**fields, **teacher_kw}, neuron="ann", attention="softmax", hidden_act="relu",
                          T=1)
    teacher = BiSpikCLMForCausalLM(ann).eval().requires_grad_(False)
    student = BiSpikCLMForCausalLM(BiSpikCLMConfig(**fields, T=2))
    return teacher, student


def test_the_loss_is_the_weighted_sum_and_hta_the_students_cross_entropy():
    teacher, student = tiny_models()
    d = SpADistiller(teacher, student.config)
    assert d.weights == {"ea": 0.2, "saa": 0.1, "sfa": 0.1, "sta": 0.3, "hta": 0.3}
    ids = torch.randint(0, 12, (2, 6))
    inputs = {"input_ids": ids}
    out = student(input_ids=ids, labels=ids, **d.output_flags)
    loss, logs = d(out, inputs)
    names = {"spad_ea", "spad_saa", "spad_saa_rate", "spad_sfa", "spad_sta", "spad_hta"}
    assert set(logs) == names and all(torch.isfinite(v) for v in logs.values())
    logits = out.logits[:, :-1].reshape(-1, 12)
    ce = nn.functional.cross_entropy(logits, ids[:, 1:].reshape(-1))
    assert logs["spad_hta"].item() == pytest.approx(ce.item())
    expected = sum(w * logs[f"spad_{k}"] for k, w in d.weights.items())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_a_term_of_weight_zero_is_switched_off():
    teacher, student = tiny_models()
    ids = torch.randint(0, 12, (2, 6))
    d = SpADistiller(teacher, student.config, {"saa": 0.0, "sta": 0.0})
    assert d.output_flags == {"output_hidden_states": True, "output_attentions": False}
    assert d.rate_neuron is None
    out = student(input_ids=ids, labels=ids, **d.output_flags)
    loss, logs = d(out, {"input_ids": ids})
    assert set(logs) == {"spad_ea", "spad_sfa", "spad_hta"}
    expected = 0.2 * logs["spad_ea"] + 0.1 * logs["spad_sfa"] + 0.3 * logs["spad_hta"]
    assert loss.item() == pytest.approx(expected.item())
    only_ce = SpADistiller(teacher, student.config, {**OFF, "hta": 1.0})
    assert only_ce.output_flags == {"output_hidden_states": False, "output_attentions": False}
    loss, logs = only_ce(student(input_ids=ids, labels=ids), {"input_ids": ids})
    assert set(logs) == {"spad_hta"} and loss.item() == pytest.approx(logs["spad_hta"].item())


@pytest.mark.parametrize("make, match", [
    (lambda: spad({"tea": 1.0}), r"spad_weights tea=1.0: accepted keys ea, saa, sfa, sta, hta"),
    (lambda: spad({"ea": -1.0}), "spad_weights ea=-1.0"),
    (lambda: spad({}, rate_weight=-1.0), "spad_rate_weight=-1.0"),
    (lambda: spad({}, temperature=0.0), "must be positive"),
    (lambda: spad({"saa": 1.0}, teacher=FakeTeacher(heads=2)), "num_attention_heads=1, the teacher 2"),
    (lambda: spad({"sta": 1.0}, teacher=FakeTeacher(vocab=5)), "vocab_size=3, the teacher 5"),
    (lambda: spad({"saa": 1.0}, config=student_config(attention="softmax")), "the SAA rate term needs"),
])
def test_bad_settings_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def teacher_run(tok, corpora, tmp_path, width=32):  # noqa: F811
    ann = {**TINY, "hidden_size": width, "neuron": "ann", "attention": "softmax", "hidden_act": "relu",
           "T": 1}
    run = tmp_path / f"teacher{width}"
    causal_lm.main(job_args(tok, corpora, run, model_config=json.dumps(ann), max_steps=12))
    return run / "best"


def test_the_job_distils_with_spad_and_logs_every_term(tiny_tokenizer, corpora, tmp_path):  # noqa: F811
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    teacher = teacher_run(tiny_tokenizer, corpora, tmp_path)
    run = tmp_path / "spad"
    causal_lm.main(job_args(tiny_tokenizer, corpora, run, distill=teacher, report_to="tensorboard",
                            spad_weights=json.dumps({"ea": 0.0}), max_steps=12))
    m = json.loads((run / "metrics.json").read_text())
    assert m["config"]["distill"] == str(teacher) and m["config"]["spad_weights"]["ea"] == 0.0
    assert m["evals"][-1]["loss"] < m["evals"][0]["loss"] + 1.0 and math.isfinite(m["scores"]["PPL"])
    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for term in ("saa", "saa_rate", "sfa", "sta", "hta"):
        assert len(acc.Scalars(f"train/spad_{term}")) == 2, term  # logging_steps 6 of 12
    assert "train/spad_ea" not in tags


def test_learned_projections_are_trained_and_resumed_exactly(tiny_tokenizer, corpora, tmp_path):  # noqa: F811
    teacher = teacher_run(tiny_tokenizer, corpora, tmp_path, width=48)
    extra = {"distill": teacher, "max_steps": 8, "eval_steps": 4, "save_strategy": "steps", "save_steps": 4,
             "spad_weights": json.dumps({"saa": 0.0})}
    full, split = tmp_path / "full", tmp_path / "split"
    causal_lm.main(job_args(tiny_tokenizer, corpora, full, **extra))
    causal_lm.main(job_args(tiny_tokenizer, corpora, split, stop_after=4, **extra))
    first = torch.load(split / "checkpoint-4" / "distiller.pt", weights_only=True)
    sfa = {f"sfa.{i}.{p}" for i in (0, 1) for p in ("weight", "bias")}
    assert set(first) == {"ea.weight", "ea.bias"} | sfa
    assert first["ea.weight"].shape == (48, 32)
    causal_lm.main(job_args(tiny_tokenizer, corpora, split, **extra))
    a, b = (torch.load(d / "checkpoint-8" / "distiller.pt", weights_only=True) for d in (full, split))
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["ea.weight"], first["ea.weight"])
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (full, split))
    assert [e["loss"] for e in ma["evals"]] == [e["loss"] for e in mb["evals"]]
