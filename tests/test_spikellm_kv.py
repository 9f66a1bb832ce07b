"""Spiking keys and values (SpikeLLM): per-token per-head codes (spike path == quantizer path),
saliency per head and channel on a hand-made attention, conversion and save / load of a tiny Llama."""
import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from neuron_zoo import GIFNode
from sj_spikelm.models.spikellm import SpikifyConfig, spikify, spiking_summary
from sj_spikelm.models.spikellm.kv_spiking import ATTENTION, KVSaliency, KVSpiking, head_group_code
from sj_spikelm.models.spikellm.saving import load_spikified, save_spikified


def tiny():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=64)).eval()


IDS = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(0))
CALIB = torch.randint(0, 50, (3, 16), generator=torch.Generator().manual_seed(1))


def test_head_group_code_by_hand_and_paths_agree():
    torch.manual_seed(0)
    x = 2 * torch.randn(2, 3, 5, 6)  # [B, H, S, D]
    steps = torch.tensor([[1, 1, 3, 1, 1, 1], [2, 2, 2, 2, 2, 2], [1, 4, 1, 4, 1, 1]])
    node = GIFNode(levels=4, rounding="nearest")
    spike = head_group_code(x, steps, 4, "spike", node)
    assert torch.equal(spike, head_group_code(x, steps, 4, "fake"))  # integer spike counts
    expected = torch.empty_like(x)
    for h in range(3):
        for t in steps[h].unique().tolist():
            idx = (steps[h] == t).nonzero().flatten()
            xg = x[:, h][..., idx]
            lo, hi = xg.amin(-1, keepdim=True), xg.amax(-1, keepdim=True)
            delta = (hi - lo).clamp_min(1e-8) / (t * 3)
            expected[:, h, :, idx] = lo + delta * torch.floor((xg - lo) / delta + 0.5)
    assert torch.allclose(spike, expected, atol=1e-6)


def test_kv_saliency_picks_outlier_channels_per_head():
    torch.manual_seed(0)
    b, hq, hkv, s, d = 1, 4, 2, 64, 8
    module = nn.Module()
    module.o_proj = nn.Linear(hq * d, 16, bias=False)
    query, key, value = torch.randn(b, hq, s, d), torch.randn(b, hkv, s, d), torch.randn(b, hkv, s, d)
    key[:, 0, :, 2] *= 30
    key[:, 1, :, 5] *= 30
    value[:, 0, :, 7] *= 30
    value[:, 1, :, 0] *= 30
    recorder = KVSaliency()
    recorder(module, query, key, value)
    key_saliency, value_saliency = recorder.result()
    assert key_saliency.shape == (hkv, d)
    assert key_saliency.argmax(1).tolist() == [2, 5] and value_saliency.argmax(1).tolist() == [7, 0]
    kv = KVSpiking(hkv, d, levels=16, steps=1)
    kv.key_saliency, kv.value_saliency = key_saliency, value_saliency
    kv.set_salient(0.125, 4)  # one channel of 8 per head
    assert kv.key_steps.tolist()[0] == [1, 1, 4, 1, 1, 1, 1, 1] and kv.value_steps[1, 0].item() == 4
    assert kv.average_steps() == pytest.approx(1 + 3 / 8)


def test_kv_spiking_conversion_and_round_trip(tmp_path):
    reference = tiny()(input_ids=IDS).logits
    fine = spikify(tiny(), CALIB, SpikifyConfig(levels=2 ** 16, kv_levels=2 ** 16))
    assert fine.config._attn_implementation == ATTENTION
    assert (fine(input_ids=IDS).logits - reference).abs().max() < 1e-3 * reference.abs().max()
    config = SpikifyConfig(levels=16, weight_bits=4, kv_levels=16, kv_salient_fraction=0.125,
                           kv_salient_steps=4)
    model = spikify(tiny(), CALIB, config)
    summary = spiking_summary(model)
    assert summary["kv_average_steps"] == pytest.approx(1.375)
    assert summary["kv_average_bits"] == pytest.approx(5.5)
    logits = model(input_ids=IDS).logits
    fake = spikify(tiny(), CALIB, SpikifyConfig(**{**vars(config), "path": "fake"}))
    assert torch.equal(fake(input_ids=IDS).logits, logits)
    plain = spikify(tiny(), CALIB, SpikifyConfig(levels=16, weight_bits=4))
    assert not torch.allclose(plain(input_ids=IDS).logits, logits)  # the K/V spikes change the outputs
    save_spikified(model, tmp_path / "kv", config)
    again = load_spikified(tmp_path / "kv")
    assert isinstance(again.model.layers[1].self_attn.kv_spiking, KVSpiking)
    assert torch.equal(again(input_ids=IDS).logits, logits)
    with pytest.raises(ValueError, match="kv_levels=1 is out of range"):
        SpikifyConfig(kv_levels=1)
    with pytest.raises(ValueError, match="kv_salient_fraction > 0 needs calibration_data"):
        spikify(tiny(), None, SpikifyConfig(kv_levels=4, kv_salient_fraction=0.1, kv_salient_steps=2))
