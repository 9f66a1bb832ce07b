"""Conversion-fidelity diagnostics (sj_spikelm.fidelity) on tiny SpikeLM models."""
import pytest
import torch

import neuron_zoo
from sj_spikelm import SpikeLMModel
from sj_spikelm.fidelity import (
    POSITION_CLASSES,
    hidden_state_cosines,
    identity_neurons,
    linear_output_cosines,
    neuron_input_stats,
    neuron_positions,
    pair_similarities,
)


def twins(tiny_config, neuron="elastic_bi(k=2)", T=2):
    torch.manual_seed(0)  # large weights: the layers, not the residual, dominate the hidden states
    ann = SpikeLMModel(tiny_config(neuron="ann", T=1, initializer_range=0.5)).eval()
    snn = SpikeLMModel(tiny_config(neuron=neuron, T=T, initializer_range=0.5))
    snn.load_state_dict(ann.state_dict(), strict=False)
    return ann, snn


def test_identical_models_have_cosine_one_and_spiking_ones_drift(tiny_config, batch):
    ann, snn = twins(tiny_config)
    same = hidden_state_cosines(ann, twins(tiny_config, neuron="ann", T=3)[1], batch)
    assert len(same) == 3 and all(c == pytest.approx(1.0, abs=1e-5) for c in same)
    snn.calibrate(**batch)
    cos = hidden_state_cosines(ann, snn, batch)
    assert cos[0] == pytest.approx(1.0, abs=1e-6)  # embeddings are real and shared
    assert all(c < 0.99 for c in cos[1:]), cos


def test_cosine_is_mean_over_real_tokens(tiny_config, batch):
    ann, snn = twins(tiny_config)
    snn.calibrate(**batch)
    cos = hidden_state_cosines(ann, snn, batch)
    with torch.no_grad():
        a = ann(**batch, output_hidden_states=True).hidden_states[-1]
        s = snn.eval()(**batch, output_hidden_states=True).hidden_states[-1]
    per_token = torch.nn.functional.cosine_similarity(a, s, dim=-1)
    expected = torch.cat([per_token[0], per_token[1, :4]]).mean()  # second sequence: 4 real tokens
    assert cos[-1] == pytest.approx(float(expected), abs=1e-6)


def test_positions_and_identity_neurons(tiny_config, batch):
    ann, snn = twins(tiny_config)
    counts = {p: len(neuron_positions(snn, p)) for p in POSITION_CLASSES}
    assert counts == {"qkv_in": 6, "kv": 4, "attn_out": 2, "ffn_in": 2, "ffn_out": 2}
    with pytest.raises(ValueError, match="position='nope'"):
        neuron_positions(snn, "nope")
    snn.calibrate(**batch)
    before = hidden_state_cosines(ann, snn, batch)
    originals = {n: m for n, m in snn.named_modules() if isinstance(m, neuron_zoo.ElasticBiNode)}
    with identity_neurons(snn, list(POSITION_CLASSES)):
        assert not any(isinstance(m, neuron_zoo.ElasticBiNode) for m in snn.modules())
        assert all(c == pytest.approx(1.0, abs=1e-5) for c in hidden_state_cosines(ann, snn, batch))
    after = {n: m for n, m in snn.named_modules() if isinstance(m, neuron_zoo.ElasticBiNode)}
    assert after.keys() == originals.keys() and all(after[n] is originals[n] for n in after)
    assert hidden_state_cosines(ann, snn, batch) == before


def test_neuron_input_stats_of_the_first_neuron(tiny_config, batch):
    ann, snn = twins(tiny_config)
    snn.calibrate(**batch)
    stats = neuron_input_stats(snn, batch, top=2)
    first = stats["encoder.layer.0.attention.self.query.neuron"]
    with torch.no_grad():
        emb = snn.embeddings(input_ids=batch["input_ids"])[batch["attention_mask"].bool()].abs()
    per_channel = emb.mean(0)
    assert first["channels"] == 8
    assert first["mean_abs"] == pytest.approx(float(emb.mean()), rel=1e-5)
    assert first["max_over_mean"] == pytest.approx(float(emb.max() / emb.mean()), rel=1e-5)
    ratio = per_channel.max() / per_channel.median()
    assert first["top_channel_ratio"] == pytest.approx(float(ratio), rel=1e-5)
    assert [c for c, _ in first["top_channels"]] == per_channel.topk(2).indices.tolist()
    assert 0.0 < first["firing_rate"] < 1.0
    assert stats["encoder.layer.1.output.dense.neuron"]["channels"] == 16
    ann_stats = neuron_input_stats(ann, batch)
    assert ann_stats["encoder.layer.0.attention.self.query.neuron"]["firing_rate"] is None


def test_linear_output_cosines_by_hand(tiny_config, batch):
    ann, _ = twins(tiny_config)
    cos = linear_output_cosines(ann, batch, batch, "elastic_bi(k=2, amplitude='channel')", T=1)
    assert len(cos) == 2 * 6 and all(-1.0 <= c <= 1.0 for c in cos.values())
    identity = linear_output_cosines(ann, batch, batch, "ann", T=2)
    assert identity == pytest.approx(dict.fromkeys(cos, 1.0), abs=1e-5)
    name = "encoder.layer.0.intermediate.dense"
    with torch.no_grad():  # its input: the embeddings after layer 0's attention block, real tokens
        x = []
        hook = ann.get_submodule(name).neuron.register_forward_pre_hook(lambda m, a: x.append(a[0][0]))
        ann(**batch)
        hook.remove()
    x = x[0][batch["attention_mask"].bool()]
    alpha = 2 * x.abs().mean(0)  # per channel, calibrated on the same batch; T=1: m = x
    s = alpha * ((x >= alpha / 2).float() - (x <= -alpha / 2).float())
    w = ann.get_submodule(name).weight.detach()
    expected = torch.nn.functional.cosine_similarity(x @ w.T, s @ w.T, dim=-1).mean()
    assert cos[name] == pytest.approx(float(expected), abs=1e-5)


def test_pair_similarities_by_hand(tiny_config, batch):
    ann, _ = twins(tiny_config)
    second = {"input_ids": batch["input_ids"].flip(1), "attention_mask": torch.ones(2, 6, dtype=torch.long)}
    sims = pair_similarities(ann, batch, second)
    with torch.no_grad():
        h1, h2 = ann(**batch).last_hidden_state, ann(**second).last_hidden_state
    a = torch.stack([h1[0].mean(0), h1[1, :4].mean(0)])  # second sequence: 4 real tokens
    expected = torch.nn.functional.cosine_similarity(a, h2.mean(1), dim=-1)
    torch.testing.assert_close(sims, expected, rtol=1e-5, atol=1e-6)
