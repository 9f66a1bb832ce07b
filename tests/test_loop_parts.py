"""Pieces of the training loop: mixed-precision choice, weight-decay groups, calibration check,
checkpoint weight loading."""
import pytest
import torch
from tiny import TINY_BERT
from torch import nn

from neuron_zoo import ElasticBiNode
from sj_spikelm.train.loop import amp_dtype, load_weights, needs_calibration, param_groups


def test_amp_is_gpu_only():
    cpu = torch.device("cpu")
    assert amp_dtype("auto", cpu) is None and amp_dtype("off", cpu) is None
    with pytest.raises(ValueError, match="amp='bf16' needs a CUDA device"):
        amp_dtype("bf16", cpu)
    with pytest.raises(ValueError, match="amp='fp8'; accepted: auto, bf16, fp16, off"):
        amp_dtype("fp8", cpu)


def test_no_weight_decay_on_vectors():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    decay, no_decay = param_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and [p.shape for p in decay["params"]] == [(4, 3)]
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 3  # bias, LN weight, LN bias


def test_needs_calibration_until_the_first_forward():
    model = nn.Sequential(nn.Linear(2, 2), ElasticBiNode(alpha="learnable", T=3))
    assert needs_calibration(model)
    model(torch.randn(1, 3, 2))
    assert not needs_calibration(model) and not needs_calibration(nn.Linear(2, 2))


def test_load_weights_checks_the_keys(tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(vocab_size=30, **TINY_BERT)
    saved = BertForMaskedLM(config)
    saved.save_pretrained(tmp_path / "m")
    fresh = BertForMaskedLM(config)
    load_weights(fresh, tmp_path / "m")  # the tied decoder is not in the file, and that is fine
    for (name, a), b in zip(saved.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
    other = BertForMaskedLM(BertConfig(vocab_size=30, **{**TINY_BERT, "num_hidden_layers": 1}))
    with pytest.raises(RuntimeError, match="does not match the model"):
        load_weights(other, tmp_path / "m")
