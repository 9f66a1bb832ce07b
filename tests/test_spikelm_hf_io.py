"""save_pretrained / from_pretrained (and torch load_state_dict) round-trip exactly, calibrated
or not, with no neuron-specific model code: the neurons' per-step state and calibrated flags are
ordinary tensors of the checkpoint; corrupt or mismatched ones are refused naming the key."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, AutoModelForMaskedLM

from neuron_zoo import CalibrationError, ElasticBiNode, calibration_report, needs_calibration
from sj_spikelm import SpikeLMForMaskedLM, SpikeLMForSequenceClassification, SpikeLMModel

QUERY = "bert.encoder.layer.0.attention.self.query.neuron"


def assert_same_state(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("neuron", ["elastic_bi(k=2)", "elastic_bi(k=3, alpha='learnable')", "psn",
                                    "ste_lif", "lif"])
def test_calibrated_round_trip_is_exact(tiny_config, batch, tmp_path, neuron):
    torch.manual_seed(0)
    model = SpikeLMForSequenceClassification(tiny_config(neuron=neuron, num_labels=3))
    model.calibrate(**batch).eval()
    expected = model(**batch).logits
    model.save_pretrained(tmp_path)
    assert "calibrated" not in json.loads((tmp_path / "config.json").read_text())
    loaded = SpikeLMForSequenceClassification.from_pretrained(tmp_path).eval()
    assert not needs_calibration(loaded)
    assert_same_state(model, loaded)
    assert torch.equal(loaded(**batch).logits, expected)
    if "learnable" in neuron:
        alphas = [n.alpha for n in loaded.modules() if isinstance(n, ElasticBiNode)]
        assert all(isinstance(a, nn.Parameter) and a.requires_grad and a.shape == (2,) for a in alphas)


@pytest.mark.parametrize("neuron", ["elastic_bi(k=2)", "elastic_bi(k=2, alpha='learnable')"])
def test_uncalibrated_round_trip_stays_uncalibrated(tiny_config, batch, tmp_path, neuron):
    SpikeLMModel(tiny_config(neuron=neuron)).save_pretrained(tmp_path)
    loaded = SpikeLMModel.from_pretrained(tmp_path)
    report = calibration_report(loaded)
    assert len(report) == 2 * 8 and set(report.values()) == {(0, 2)} and needs_calibration(loaded)
    with pytest.raises(CalibrationError, match=r"elastic_bi.* at encoder\.layer\.0\..*step 0 is not calib"):
        loaded.eval()(**batch)
    loaded.train().calibrate(**batch)  # and it calibrates like a fresh model
    fresh = SpikeLMModel(tiny_config(neuron=neuron))
    fresh.load_state_dict(SpikeLMModel.from_pretrained(tmp_path).state_dict())
    fresh.calibrate(**batch)
    assert_same_state(loaded, fresh)


def test_partially_calibrated_model_round_trips(tiny_config, tmp_path):
    model = SpikeLMModel(tiny_config())
    model.encoder.layer[0].attention.self.query.neuron.calibrate(torch.randn(2, 3, 8))
    model.encoder.layer[1].output.dense.neuron.train()(torch.randn(1, 3, 8))  # step 0 of 2 only
    model.save_pretrained(tmp_path)
    loaded = SpikeLMModel.from_pretrained(tmp_path)
    assert_same_state(model, loaded)
    report = calibration_report(loaded)
    assert report["encoder.layer.0.attention.self.query.neuron"] == (2, 2)
    assert report["encoder.layer.1.output.dense.neuron"] == (1, 2)
    assert sum(steps for steps, _ in report.values()) == 3


def test_config_of_calibrated_checkpoint_alone_gives_uncalibrated_model(tiny_config, batch, tmp_path):
    model = SpikeLMModel(tiny_config()).calibrate(**batch)
    model.save_pretrained(tmp_path)
    fresh = SpikeLMModel(type(model.config).from_pretrained(tmp_path))
    assert needs_calibration(fresh)
    fresh.load_state_dict(model.state_dict())
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


def rewrite_weights(folder, change):
    """Apply ``change`` to the state dict saved in ``folder`` (one safetensors file)."""
    weights = load_file(folder / "model.safetensors")
    change(weights)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def test_checkpoint_from_before_the_calibrated_flags_loads(tiny_config, batch, tmp_path):
    """Checkpoints of the growing-alpha version: no ``calibrated`` keys, alpha ``[T]`` when
    calibrated (``[0]`` before); valid (finite, positive) alpha counts as calibrated."""
    model = SpikeLMForSequenceClassification(tiny_config(num_labels=2)).calibrate(**batch).eval()
    model.save_pretrained(tmp_path)

    def drop_flags(weights):
        for key in [k for k in weights if k.endswith(".calibrated")]:
            del weights[key]

    rewrite_weights(tmp_path, drop_flags)
    loaded = SpikeLMForSequenceClassification.from_pretrained(tmp_path).eval()
    assert not needs_calibration(loaded)
    assert torch.equal(loaded(**batch).logits, model(**batch).logits)
    old = {k: v for k, v in model.state_dict().items() if not k.endswith(".calibrated")}
    fresh = SpikeLMForSequenceClassification(model.config)
    fresh.load_state_dict(old)  # strict: the flags are derived, not missing
    assert_same_state(model, fresh)
    empty = {k: torch.empty(0) if k.endswith(".alpha") else v for k, v in old.items()}
    fresh.load_state_dict(empty)
    assert set(calibration_report(fresh).values()) == {(0, 2)}


def test_corrupt_alpha_in_checkpoint_is_refused_naming_the_key(tiny_config, batch, tmp_path):
    model = SpikeLMForSequenceClassification(tiny_config(num_labels=2)).calibrate(**batch)
    model.save_pretrained(tmp_path)
    rewrite_weights(tmp_path, lambda w: w[f"{QUERY}.alpha"].__setitem__(1, float("nan")))
    with pytest.raises(CalibrationError, match=rf"{QUERY}\.alpha .*time step\(s\) \[1\] marked calibrated"):
        SpikeLMForSequenceClassification.from_pretrained(tmp_path)
    state = model.state_dict()
    state[f"{QUERY}.alpha"] = torch.tensor([0.5, -1.0])
    with pytest.raises(CalibrationError, match=rf"{QUERY}\.alpha .*\[1\]"):
        SpikeLMForSequenceClassification(model.config).load_state_dict(state)
    state[f"{QUERY}.calibrated"] = torch.tensor([True, False])  # an uncalibrated step may hold anything
    SpikeLMForSequenceClassification(model.config).load_state_dict(state)


def test_checkpoint_of_another_T_is_refused_naming_both_shapes(tiny_config, batch, tmp_path):
    model = SpikeLMModel(tiny_config(T=2)).calibrate(**batch)
    with pytest.raises(RuntimeError, match=r"alpha has shape \(2,\) in the checkpoint \(2 time steps\) "
                                           r"but shape \(3,\) here \(T=3\)"):
        SpikeLMModel(tiny_config(T=3)).load_state_dict(model.state_dict())
    model.save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):  # transformers' own check
        SpikeLMModel.from_pretrained(tmp_path, T=3)
