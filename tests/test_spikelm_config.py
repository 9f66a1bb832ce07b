"""SpikeLMConfig: BERT-base defaults, neuron specs, key/value neurons, bad values."""
import pytest

from neuron_zoo import PSN, ANNNode, ElasticBiNode, LIFNode, STELIFNode
from sj_spikelm import SpikeLMConfig


def test_defaults_are_bert_base_plus_spiking_fields():
    c = SpikeLMConfig()
    assert (c.vocab_size, c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size,
            c.max_position_embeddings) == (30522, 768, 12, 12, 3072, 512)
    assert (c.T, c.neuron, c.kv_neuron, c.spike_attention_kv, c.calibration_counts_padding) == (
        4, "elastic_bi(k=2)", None, True, False)
    assert c.model_type == "spikelm"


def test_neuron_instance_is_stored_as_its_spec():
    config = SpikeLMConfig(neuron=ElasticBiNode(k=3.0, reset="hard"))
    assert config.neuron == "elastic_bi(k=3.0, reset='hard')"


def test_kv_neuron_defaults_to_the_memoryless_neuron():
    kv = SpikeLMConfig(neuron="elastic_bi(k=3)", T=3).build_kv_neuron()
    assert isinstance(kv, ElasticBiNode) and kv.decay == 0.0 and kv.k == 3.0 and kv.T == 3
    kv = SpikeLMConfig(neuron="ste_lif(decay=0.5)").build_kv_neuron()
    assert isinstance(kv, STELIFNode) and kv.decay == 0.0
    kv = SpikeLMConfig(neuron="lif(tau=3.0)").build_kv_neuron()  # each step alone, H[t] = X[t]
    assert isinstance(kv, LIFNode) and kv.tau == 3.0 and kv.stepwise and not kv.decay_input
    kv = SpikeLMConfig(neuron="psn", T=3).build_kv_neuron()  # PSN(T=1) on each of the 3 steps
    assert isinstance(kv, PSN) and kv.T == 3 and kv.stepwise and kv.weight.shape == (1, 1)


def test_explicit_kv_neuron_and_real_kv():
    c = SpikeLMConfig(neuron="ste_lif", kv_neuron="elastic_bi(k=4, decay=0.0)")
    kv = c.build_kv_neuron()
    assert isinstance(kv, ElasticBiNode) and kv.k == 4.0 and kv.decay == 0.0
    assert isinstance(SpikeLMConfig(spike_attention_kv=False).build_kv_neuron(), ANNNode)


def test_config_round_trip(tmp_path):
    c = SpikeLMConfig(hidden_size=16, num_attention_heads=2, T=3, neuron="ste_lif", kv_neuron="ann",
                      spike_attention_kv=False, calibration_counts_padding=True, num_labels=3)
    c.save_pretrained(tmp_path)
    loaded = SpikeLMConfig.from_pretrained(tmp_path)
    for field in ("hidden_size", "T", "neuron", "kv_neuron", "spike_attention_kv",
                  "calibration_counts_padding", "num_labels"):
        assert getattr(loaded, field) == getattr(c, field)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(T=0), ValueError, "T=0"),
    (dict(T=2.0), TypeError, "T=2.0"),
    (dict(neuron="nope"), ValueError, "unknown neuron 'nope'"),
    (dict(neuron="elastic_bi(kk=1)"), ValueError, "no argument 'kk'"),
    (dict(neuron=3), TypeError, "neuron=3"),
    (dict(neuron="elastic_bi(step_mode='s')"), ValueError, "step_mode"),
    (dict(neuron="psn(T=3)", T=4), ValueError, "T=3 but the config has T=4"),
    (dict(kv_neuron="elastic_bi(k=-1)"), ValueError, "k=-1"),
    (dict(spike_attention_kv="yes"), TypeError, "spike_attention_kv"),
    (dict(calibration_counts_padding=1), TypeError, "calibration_counts_padding"),
    (dict(hidden_size=10, num_attention_heads=3), ValueError, "not a multiple"),
    (dict(is_decoder=True), ValueError, "is_decoder"),
])
def test_bad_values_name_the_field(kwargs, error, match):
    with pytest.raises(error, match=match):
        SpikeLMConfig(**kwargs)
