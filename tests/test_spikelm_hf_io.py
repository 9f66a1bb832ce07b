"""save_pretrained / from_pretrained (and torch load_state_dict) round-trip exactly, including
the calibrated amplitudes of the elastic neurons."""
import pytest
import torch
from torch import nn
from transformers import AutoModel, AutoModelForMaskedLM

from neuron_zoo import ElasticBiNode
from sj_spikelm import (
    SpikeLMForMaskedLM,
    SpikeLMForSequenceClassification,
    SpikeLMModel,
    neurons_calibrated,
)


def assert_same_state(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("neuron", ["elastic_bi(k=2)", "elastic_bi(k=3, alpha='learnable')", "psn",
                                    "ste_lif"])
def test_calibrated_round_trip_is_exact(tiny_config, batch, tmp_path, neuron):
    torch.manual_seed(0)
    model = SpikeLMForSequenceClassification(tiny_config(neuron=neuron, num_labels=3))
    model.calibrate(**batch).eval()
    expected = model(**batch).logits
    model.save_pretrained(tmp_path)
    loaded = SpikeLMForSequenceClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.neurons_calibrated == neuron.startswith("elastic_bi")
    assert_same_state(model, loaded)
    assert torch.equal(loaded(**batch).logits, expected)
    if "learnable" in neuron:
        alphas = [n.alpha for n in loaded.modules() if isinstance(n, ElasticBiNode)]
        assert all(isinstance(a, nn.Parameter) and a.requires_grad and a.shape == (2,) for a in alphas)


def test_uncalibrated_round_trip_stays_uncalibrated(tiny_config, batch, tmp_path):
    SpikeLMModel(tiny_config()).save_pretrained(tmp_path)
    loaded = SpikeLMModel.from_pretrained(tmp_path)
    assert not loaded.config.neurons_calibrated
    assert all(n.calibrated_steps == 0 for n in loaded.modules() if isinstance(n, ElasticBiNode))
    with pytest.raises(RuntimeError, match="no calibrated alpha"):
        loaded.eval()(**batch)


def test_config_of_calibrated_checkpoint_alone_gives_uncalibrated_model(tiny_config, batch, tmp_path):
    model = SpikeLMModel(tiny_config()).calibrate(**batch)
    model.save_pretrained(tmp_path)
    fresh = SpikeLMModel(type(model.config).from_pretrained(tmp_path))
    assert fresh.config.neurons_calibrated
    assert all(n.calibrated_steps == 0 for n in fresh.modules() if isinstance(n, ElasticBiNode))
    fresh.load_state_dict(model.state_dict())  # torch loading resizes alpha
    assert_same_state(model, fresh)


def test_auto_classes_and_tied_head(tiny_config, batch, tmp_path):
    model = SpikeLMForMaskedLM(tiny_config()).calibrate(**batch).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is SpikeLMForMaskedLM
    assert loaded.cls.predictions.decoder.weight is loaded.bert.embeddings.word_embeddings.weight
    assert torch.equal(loaded(**batch).logits, model(**batch).logits)
    base = AutoModel.from_pretrained(tmp_path).eval()  # the encoder of the MLM checkpoint
    assert type(base) is SpikeLMModel
    assert torch.equal(base(**batch).last_hidden_state, model.bert(**batch).last_hidden_state)


def test_partially_calibrated_model_refuses_to_save(tiny_config, batch, tmp_path):
    model = SpikeLMModel(tiny_config())
    model.encoder.layer[0].attention.self.query.neuron.calibrate(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="model.calibrate"):
        neurons_calibrated(model)
    with pytest.raises(ValueError, match="expected all 0 or all T=2"):
        model.save_pretrained(tmp_path)
