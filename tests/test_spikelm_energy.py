"""Energy estimate (Appendix A.3) against hand counts on a one-layer model."""
import pytest
import torch
from spikingjelly.activation_based.op_counter import DispatchCounterMode, MACCounter

from neuron_zoo import SpikeStatsMixin
from sj_spikelm import SpikeLMConfig, SpikeLMForSequenceClassification, SpikeLMModel
from sj_spikelm.energy import estimate_energy

# one layer, D=4, 2 heads, FFN 8, two sequences of 3 and 2 real tokens (padded to 3)
TINY = dict(vocab_size=20, hidden_size=4, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
            max_position_embeddings=8, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
BATCH = {"input_ids": torch.tensor([[3, 5, 7], [2, 9, 0]]),
         "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]])}
# per sequence: 5 tokens / 2 sequences, sum of squared lengths 9 + 4 = 13
HAND_DENSE = {  # operations per sequence and step
    "encoder.layer.0.attention.self.query": 4 * 4 * 5 / 2,
    "encoder.layer.0.attention.self.key": 4 * 4 * 5 / 2,
    "encoder.layer.0.attention.self.value": 4 * 4 * 5 / 2,
    "encoder.layer.0.attention.scores (Q K^T)": 4 * 13 / 2,
    "encoder.layer.0.attention.context (A V)": 4 * 13 / 2,
    "encoder.layer.0.attention.output.dense": 4 * 4 * 5 / 2,
    "encoder.layer.0.intermediate.dense": 4 * 8 * 5 / 2,
    "encoder.layer.0.output.dense": 8 * 4 * 5 / 2,
    "pooler.dense": 4 * 4,
    "classifier": 4 * 3,
}


def model(neuron, T, **kw):
    torch.manual_seed(0)
    m = SpikeLMForSequenceClassification(SpikeLMConfig(neuron=neuron, T=T, num_labels=3, **TINY, **kw))
    return m.calibrate(**BATCH)


@pytest.mark.parametrize("precision, e_mac", [("fp32", 4.6), ("fp16", 1.5)])
def test_ann_rows_are_m_n_e_mac_per_real_token(precision, e_mac):
    report = estimate_energy(model("ann", T=1), BATCH, precision)
    assert [r["layer"] for r in report.rows] == list(HAND_DENSE)
    for r in report.rows:
        assert r["kind"] == "MAC" and r["rate"] is None and r["steps"] == 1
        assert r["energy_mj"] == pytest.approx(HAND_DENSE[r["layer"]] * e_mac * 1e-9)
    assert report.total_mj == pytest.approx(sum(HAND_DENSE.values()) * e_mac * 1e-9)
    assert report.sequences == 2 and report.mean_tokens == 2.5
    # the ANN twin at T=4 repeats one step: counted once
    assert estimate_energy(model("ann", T=4), BATCH, precision).total_mj == pytest.approx(report.total_mj)


def measured_rates(m):
    """Firing rate of every spiking neuron measured from its output spikes on real tokens."""
    valid = BATCH["attention_mask"].bool()
    rates, hooks = {}, []
    for name, node in m.named_modules():
        if isinstance(node, SpikeStatsMixin):
            def keep(module, inputs, out, name=name):
                rates[name] = ((out != 0) & valid[None, :, :, None]).sum().item() / (
                    out.shape[0] * valid.sum().item() * out.shape[-1])
            hooks.append(node.register_forward_hook(keep))
    with torch.no_grad():
        m.eval()(**BATCH)
    for h in hooks:
        h.remove()
    return rates


@pytest.mark.parametrize("neuron", ["elastic_bi(k=2)", "ste_lif(v_threshold=0.5)"])
def test_spiking_rows_are_m_n_e_ac_t_r(neuron):
    m = model(neuron, T=3, initializer_range=0.5)
    rates = measured_rates(m)
    feeding = {  # neuron whose spikes feed each row
        "encoder.layer.0.attention.self.query": "bert.encoder.layer.0.attention.self.query.neuron",
        "encoder.layer.0.attention.self.key": "bert.encoder.layer.0.attention.self.key.neuron",
        "encoder.layer.0.attention.self.value": "bert.encoder.layer.0.attention.self.value.neuron",
        "encoder.layer.0.attention.scores (Q K^T)": "bert.encoder.layer.0.attention.self.key_neuron",
        "encoder.layer.0.attention.context (A V)": "bert.encoder.layer.0.attention.self.value_neuron",
        "encoder.layer.0.attention.output.dense": "bert.encoder.layer.0.attention.output.dense.neuron",
        "encoder.layer.0.intermediate.dense": "bert.encoder.layer.0.intermediate.dense.neuron",
        "encoder.layer.0.output.dense": "bert.encoder.layer.0.output.dense.neuron",
    }
    report = estimate_energy(m, BATCH)
    assert report.T == 3
    for r in report.rows:
        if r["layer"] in feeding:
            r_measured = rates[feeding[r["layer"]]]
            assert 0 < r_measured < 1
            assert r["kind"] == "AC" and r["rate"] == pytest.approx(r_measured)
            assert r["energy_mj"] == pytest.approx(HAND_DENSE[r["layer"]] * 0.9 * 3 * r_measured * 1e-9)
        else:  # pooler and classifier stay real-valued
            assert r["kind"] == "MAC" and r["energy_mj"] == pytest.approx(HAND_DENSE[r["layer"]] * 4.6e-9)


def test_real_valued_key_value_cost_macs_at_every_step():
    report = estimate_energy(model("elastic_bi", T=2, spike_attention_kv=False), BATCH)
    rows = {r["layer"]: r for r in report.rows}
    for name in ("encoder.layer.0.attention.scores (Q K^T)", "encoder.layer.0.attention.context (A V)"):
        assert rows[name]["kind"] == "MAC" and rows[name]["steps"] == 2
        assert rows[name]["energy_mj"] == pytest.approx(HAND_DENSE[name] * 2 * 4.6e-9)


def test_ann_count_matches_spikingjelly_mac_counter():
    torch.manual_seed(0)
    m = SpikeLMModel(SpikeLMConfig(neuron="ann", T=1, attn_implementation="eager", **TINY)).eval()
    ids = torch.tensor([[3, 5, 7, 1], [2, 9, 4, 4]])  # unpadded: op_counter counts every position
    report = estimate_energy(m, ids)
    counter = MACCounter()
    with torch.no_grad(), DispatchCounterMode([counter]):
        m(ids)
    assert sum(r["ops"] for r in report.rows) * 2 == counter.get_total()


def test_report_renders_and_bad_arguments():
    report = estimate_energy(model("ann", T=1), BATCH)
    md = report.to_markdown()
    assert "| encoder.layer.0.attention.scores (Q K^T) | MAC | 4 x N |" in md and "**total**" in md
    assert report.to_dict()["rows"][0]["layer"] == "encoder.layer.0.attention.self.query"
    with pytest.raises(ValueError, match="precision='int8'"):
        estimate_energy(model("ann", T=1), BATCH, "int8")
    with pytest.raises(TypeError, match="SpikeLM model"):
        estimate_energy(torch.nn.Linear(2, 2), BATCH)
