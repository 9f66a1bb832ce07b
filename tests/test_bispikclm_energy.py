"""Energy of the BiSpikCLM family against hand counts: accumulates of every linear from the
recorded input spikes, SFSA's Q K^T and A V coincidences counted spike by spike in loops, the LM
head's MACs, the ANN twin's dense MACs, per layer and as % of the ANN's cost."""
import itertools

import pytest
import torch

from sj_spikelm import BiSpikCLMConfig, BiSpikCLMForCausalLM
from sj_spikelm.energy import ann_twin_config, compare_to_ann, estimate_energy

D, H, FFN, V, T, B, N = 4, 2, 8, 10, 2, 2, 4
E_AC, E_MAC = 0.9e-9, 4.6e-9  # mJ


def tiny(**kw):
    """Threshold 0.5 (and s = 1 for SFSA): every product of both layers gets some coincidences on IDS."""
    torch.manual_seed(0)
    if kw.get("attention", "sfsa") == "sfsa":
        kw.setdefault("attention_scale", 1.0)
    return BiSpikCLMForCausalLM(BiSpikCLMConfig(vocab_size=V, hidden_size=D, num_hidden_layers=2,
                                                num_attention_heads=H, intermediate_size=FFN,
                                                max_position_embeddings=8, T=T,
                                                neuron="soft_lif(v_threshold=0.5)", **kw)).eval()


IDS = torch.tensor([[1, 4, 2, 7], [3, 3, 9, 0]])


def record(model):
    """Every module's output in one forward of IDS."""
    out, hooks = {}, []
    for name, module in model.named_modules():
        hooks.append(module.register_forward_hook(lambda m, a, o, name=name: out.__setitem__(name, o)))
    with torch.no_grad():
        model(input_ids=IDS, use_cache=False)
    for h in hooks:
        h.remove()
    return out


def heads(y):  # [T, B, L, D] -> [T, B, H, L, d]
    return y.view(T, B, N, H, D // H).transpose(2, 3)


def hand_count(model):
    """ACs per sequence of each row, counted from the recorded spikes."""
    rec, ops = record(model), {}
    for i in range(2):
        p = f"model.layers.{i}"
        att, mlp = f"{p}.self_attn", f"{p}.mlp"
        spikes_in = int((rec[f"{att}.input_neuron"] != 0).sum())
        for name in ("q_proj", "k_proj", "v_proj"):
            ops[f"{att}.{name}"] = spikes_in * D / B  # every input spike drives D accumulates
        q, k, v = (heads(rec[f"{att}.{n}_neuron"]) for n in "qkv")
        a = rec[f"{att}.attn_neuron"] if f"{att}.attn_neuron" in rec else rec[att][1]
        qk = av = 0
        for t, b, h, i_, j, d in itertools.product(*(range(n) for n in (T, B, H, N, N, D // H))):
            if j <= i_:
                qk += bool(q[t, b, h, i_, d] != 0 and k[t, b, h, j, d] != 0)
                av += bool(a[t, b, h, i_, j] != 0 and v[t, b, h, j, d] != 0)
        ops[f"{att}.scores (Q K^T)"], ops[f"{att}.context (A V)"] = qk / B, av / B
        ops[f"{att}.o_proj"] = int((rec[f"{att}.o_proj.neuron"] != 0).sum()) * D / B
        ops[f"{mlp}.fc1"] = int((rec[f"{mlp}.fc1.neuron"] != 0).sum()) * FFN / B
        ops[f"{mlp}.fc2"] = int((rec[f"{mlp}.fc2.neuron"] != 0).sum()) * D / B
    return ops


@pytest.mark.parametrize("attention", ["sfsa", "softmax"])
def test_spike_operations_equal_a_hand_count(attention):
    model = tiny(attention=attention)
    report = estimate_energy(model, IDS)
    hand = hand_count(model)
    assert [r["layer"] for r in report.rows] == list(hand) + ["lm_head"]
    for r in report.rows[:-1]:
        assert r["kind"] == "AC" and r["steps"] == T
        assert r["ops"] == pytest.approx(hand[r["layer"]], rel=1e-9, abs=1e-9), r["layer"]
        assert r["energy_mj"] == pytest.approx(hand[r["layer"]] * E_AC, rel=1e-9, abs=1e-18)
    assert all(v > 0 for k, v in hand.items() if "Q K^T" in k or "A V" in k)
    head = report.rows[-1]
    assert head["kind"] == "MAC" and head["ops"] == N * D * V
    assert head["energy_mj"] == pytest.approx(N * D * V * E_MAC)
    assert report.total_mj == pytest.approx(sum(hand.values()) * E_AC + N * D * V * E_MAC)
    assert report.mj_per_token() == pytest.approx(report.total_mj / N)
    if attention == "softmax":  # real A: one AC per non-zero v_jd of every causal pair
        v = heads(record(model)["model.layers.0.self_attn.v_neuron"])
        per_key = (v != 0).sum(-1)  # [T, B, H, L]
        expected = sum(int(per_key[..., j].sum()) * (N - j) for j in range(N)) / B
        assert hand["model.layers.0.self_attn.context (A V)"] == expected


def test_the_ann_twin_costs_dense_macs_and_the_percentages():
    model = tiny()
    twin_config = ann_twin_config(model.config)
    fields = (twin_config.neuron, twin_config.attention, twin_config.T, twin_config.hidden_act)
    assert fields == ("ann", "softmax", 1, "relu")
    comparison = compare_to_ann(model, IDS)
    pairs = N * (N + 1) / 2
    layer_macs = 4 * N * D * D + 2 * pairs * D + 2 * N * D * FFN
    ann = comparison.ann
    assert all(r["kind"] == "MAC" and r["steps"] == 1 for r in ann.rows)
    assert ann.per_layer() == pytest.approx({"0": layer_macs * E_MAC, "1": layer_macs * E_MAC,
                                             "lm_head": N * D * V * E_MAC})
    hand = hand_count(model)
    for i in ("0", "1"):
        spikes = sum(v for k, v in hand.items() if k.startswith(f"model.layers.{i}."))
        percent = 100 * spikes * E_AC / (layer_macs * E_MAC)
        assert comparison.per_layer()[i]["percent"] == pytest.approx(percent)
    assert comparison.per_layer()["lm_head"]["percent"] == pytest.approx(100.0)
    total = sum(hand.values()) * E_AC + N * D * V * E_MAC
    ann_total = 2 * layer_macs * E_MAC + N * D * V * E_MAC
    assert comparison.percent_of_ann() == pytest.approx(100 * total / ann_total)
    assert "% of the ANN's cost" in comparison.to_markdown() and comparison.to_dict()["percent_of_ann"] < 100


def test_padding_and_other_models_are_refused():
    model = tiny()
    with pytest.raises(ValueError, match="unpadded blocks"):
        padded = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
        estimate_energy(model, {"input_ids": IDS, "attention_mask": padded})
    with pytest.raises(TypeError, match="a SpikeLM model or a BiSpikCLM model"):
        estimate_energy(torch.nn.Linear(2, 2), IDS)
