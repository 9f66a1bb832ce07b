"""SpikeLM models: output shapes of every head, spikes into every matmul, calibration on real
tokens only, no state carried between calls."""
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from neuron_zoo import ElasticBiNode
from sj_spikelm import (
    SpikeLinear,
    SpikeLMForMaskedLM,
    SpikeLMForSequenceClassification,
    SpikeLMModel,
)


def calibrated(model, batch):
    torch.manual_seed(0)
    return model.calibrate(**batch).eval()


def test_base_model_shapes_hidden_states_and_attentions(tiny_config, batch):
    model = calibrated(SpikeLMModel(tiny_config()), batch)
    out = model(**batch, output_hidden_states=True, output_attentions=True)
    assert out.last_hidden_state.shape == (2, 6, 8) and out.pooler_output.shape == (2, 8)
    assert len(out.hidden_states) == 3 and all(h.shape == (2, 6, 8) for h in out.hidden_states)
    assert len(out.attentions) == 2 and all(a.shape == (2, 2, 6, 6) for a in out.attentions)
    torch.testing.assert_close(out.hidden_states[0], model.embeddings(batch["input_ids"]))
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    for a in out.attentions:  # probabilities over the real keys only
        torch.testing.assert_close(a.sum(-1), torch.ones(2, 2, 6))
        assert torch.all(a[1, :, :, 4:] == 0)
    plain = model(**batch, return_dict=False)
    assert isinstance(plain, tuple) and torch.equal(plain[0], out.last_hidden_state)


def test_masked_lm_shapes_and_loss(tiny_config, batch):
    model = calibrated(SpikeLMForMaskedLM(tiny_config()), batch)
    labels = torch.full((2, 6), -100)
    labels[0, 1], labels[1, 2] = 5, 7
    out = model(**batch, labels=labels)
    assert out.logits.shape == (2, 6, 40)
    expected = F.cross_entropy(out.logits[[0, 1], [1, 2]], torch.tensor([5, 7]))
    torch.testing.assert_close(out.loss, expected)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight


def test_classification_and_regression_heads(tiny_config, batch):
    model = calibrated(SpikeLMForSequenceClassification(tiny_config(num_labels=3)), batch)
    out = model(**batch, labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, torch.tensor([0, 2])))
    assert model.config.problem_type == "single_label_classification"
    # the contract's argument order: input_ids, attention_mask, token_type_ids, labels
    positional = model(batch["input_ids"], batch["attention_mask"], None, torch.tensor([0, 2]))
    assert torch.equal(positional.loss, out.loss)

    model = calibrated(SpikeLMForSequenceClassification(tiny_config(num_labels=1)), batch)
    target = torch.tensor([0.5, 3.0])
    out = model(**batch, labels=target)
    assert out.logits.shape == (2, 1) and model.config.problem_type == "regression"
    torch.testing.assert_close(out.loss, ((out.logits.squeeze(1) - target) ** 2).mean())


@pytest.mark.parametrize("spec, levels", [("elastic_bi(k=2)", "alpha"),
                                          ("ste_lif(v_threshold=0.1)", "binary")])
def test_every_linear_layer_reads_spikes(tiny_config, batch, spec, levels, monkeypatch):
    """The operand that reaches every encoder matmul (F.linear) is spikes: per time step a
    subset of the feeding neuron's levels, {-alpha[t], 0, +alpha[t]} or {0, 1}."""
    model = calibrated(SpikeLMModel(tiny_config(neuron=spec, T=3, initializer_range=0.5)), batch)
    linears = {id(m.weight): m for m in model.encoder.modules() if isinstance(m, nn.Linear)}
    assert len(linears) == 6 * 2 and all(isinstance(m, SpikeLinear) for m in linears.values())
    operands = {}
    real_linear = F.linear

    def recording_linear(x, weight, bias=None):
        operands[id(weight)] = x
        return real_linear(x, weight, bias)

    monkeypatch.setattr(F, "linear", recording_linear)
    model(**batch)
    monkeypatch.undo()
    assert operands.keys() >= linears.keys()
    for key, module in linears.items():
        x = operands[key]
        assert x.shape[0] == 3  # [T, B, L, in]
        for t in range(3):
            values = set(x[t].unique().tolist())
            if levels == "alpha":
                a = module.neuron.alpha[t].item()
                allowed = {-a, 0.0, a}
            else:
                allowed = {0.0, 1.0}
            assert values <= allowed, (values, allowed)
        assert (x != 0).any() and (x == 0).any()


def test_attention_matmuls_take_key_and_value_spikes(tiny_config, batch):
    model = calibrated(SpikeLMModel(tiny_config(T=2)), batch)
    att = model.encoder.layer[0].attention.self
    captured = {}

    def keep(name):
        return lambda module, inputs, output: captured.__setitem__(name, output)

    hooks = [att.query.register_forward_hook(keep("q")), att.key_neuron.register_forward_hook(keep("k")),
             att.value_neuron.register_forward_hook(keep("v")),
             model.encoder.layer[0].attention.output.dense.register_forward_pre_hook(
                 lambda module, inputs: captured.__setitem__("context", inputs[0]))]
    model(**batch)
    for h in hooks:
        h.remove()
    for name, node in (("k", att.key_neuron), ("v", att.value_neuron)):
        for t in range(2):
            a = node.alpha[t].item()
            assert set(captured[name][t].unique().tolist()) <= {-a, 0.0, a}
    heads = lambda y: y.view(2, 2, 6, 2, 4).transpose(2, 3)
    q, k, v = heads(captured["q"]), heads(captured["k"]), heads(captured["v"])
    scores = q @ k.transpose(-1, -2) / 2.0
    scores = scores.masked_fill(~batch["attention_mask"].bool()[:, None, None, :], float("-inf"))
    context = (scores.softmax(-1) @ v).transpose(2, 3).reshape(2, 2, 6, 8)
    torch.testing.assert_close(captured["context"], context)


def test_two_calls_give_identical_outputs_and_no_state_leaks(tiny_config, batch):
    model = calibrated(SpikeLMForSequenceClassification(tiny_config(T=3)), batch)
    first = model(**batch).logits
    other = torch.randint(1, 40, (3, 5))
    model(input_ids=other)  # a different batch shape in between
    assert torch.equal(model(**batch).logits, first)


def test_first_training_batch_calibrates_on_real_tokens_only(tiny_config, batch):
    for counts_padding in (False, True):
        model = SpikeLMModel(tiny_config(calibration_counts_padding=counts_padding))
        model.calibrate(**batch)
        nodes = [m for m in model.modules() if isinstance(m, ElasticBiNode)]
        assert nodes and all(n.calibrated_steps == 2 for n in nodes)
        embeddings = model.embeddings(batch["input_ids"])
        valid = batch["attention_mask"].bool()
        mean_abs = embeddings.abs().mean(-1)  # step 0 of the first neuron sees the embedding
        expected = 2.0 * (mean_abs.mean() if counts_padding else mean_abs[valid].mean())
        torch.testing.assert_close(model.encoder.layer[0].attention.self.query.neuron.alpha[0], expected)


def test_uncalibrated_eval_raises_and_ann_needs_no_calibration(tiny_config, batch):
    with pytest.raises(RuntimeError, match="time step 0 is not calibrated"):
        SpikeLMModel(tiny_config()).eval()(**batch)
    assert torch.isfinite(SpikeLMModel(tiny_config(neuron="ann")).eval()(**batch).last_hidden_state).all()


def test_sdpa_and_eager_attention_agree(tiny_config, batch):
    torch.manual_seed(0)
    eager = SpikeLMModel(tiny_config(neuron="ann", attn_implementation="eager")).eval()
    sdpa = SpikeLMModel(tiny_config(neuron="ann", attn_implementation="sdpa")).eval()
    sdpa.load_state_dict(eager.state_dict())
    torch.testing.assert_close(sdpa(**batch).last_hidden_state, eager(**batch).last_hidden_state)


def test_every_parameter_gets_a_gradient(tiny_config, batch):
    model = SpikeLMForSequenceClassification(tiny_config(num_labels=2)).train()
    model(**batch, labels=torch.tensor([0, 1])).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_bad_inputs(tiny_config, batch):
    model = SpikeLMModel(tiny_config(neuron="ann"))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(batch["input_ids"], attention_mask=batch["attention_mask"][:, :4])
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model()
