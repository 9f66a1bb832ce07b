"""SpikeLLM post-training spiking: GIF-driven linear layers (spike path == quantizer), OBS
saliency and step allocation, conversion of a tiny random Llama, errors."""
import math

import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from sj_spikelm.models.spikellm import (
    GIFLinear,
    SpikifyConfig,
    channel_saliency,
    spikify,
    spiking_summary,
    stored_saliency,
)
from sj_spikelm.models.spikellm.spikify import salient_steps
from sj_spikelm.perplexity import perplexity


def linear(c_in=6, c_out=5, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(c_in, c_out)


def tiny_llama():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def test_per_token_code_by_hand():
    lin = linear()
    x = torch.randn(2, 3, 6)
    lo, hi = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
    delta = (hi - lo) / 15  # L = 16, T = 1: 16 levels per token
    x_hat = lo + delta * torch.floor((x - lo) / delta + 0.5)
    expected = x_hat @ lin.weight.t() + lin.bias
    for path in ("spike", "fake"):
        assert torch.allclose(GIFLinear(lin, levels=16, steps=1, path=path)(x), expected, atol=1e-5)


def test_spike_path_equals_quantizer_path_and_level_count():
    lin = linear(8, 4)
    x = 3 * torch.randn(5, 8)
    for levels, steps in [(2, 3), (4, 5), (3, 2)]:
        spike = GIFLinear(lin, levels, steps, "spike")(x)
        fake = GIFLinear(lin, levels, steps, "fake")(x)
        assert torch.allclose(spike, fake, atol=1e-5, rtol=1e-5)
    one_step = [GIFLinear(lin, 16, 1, path)(x) for path in ("spike", "fake")]
    assert torch.equal(*one_step)  # the same expression on the same codes: bit-identical
    # T (L - 1) + 1 = 16 levels either way: 5 steps of 4 levels == 1 step of 16 levels
    assert torch.allclose(GIFLinear(lin, 4, 5)(x), GIFLinear(lin, 16, 1)(x), atol=1e-5)
    assert not torch.allclose(GIFLinear(lin, 4, 4)(x), GIFLinear(lin, 16, 1)(x), atol=1e-3)
    # many levels: the float layer
    assert torch.allclose(GIFLinear(lin, 2 ** 16, 1)(x), lin(x), atol=1e-3)


def test_salient_channels_get_their_own_range_and_more_steps():
    lin = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(4))
    x = torch.tensor([[0.0, 1.0, 3.0, 10.0]])
    for path in ("spike", "fake"):
        layer = GIFLinear(lin, levels=2, steps=1, path=path)
        assert layer(x).tolist() == [[0.0, 0.0, 0.0, 10.0]]  # one range [0, 10], Delta = 10
        layer.set_channel_steps(torch.tensor([1, 3, 1, 3]))
        # group {0, 2}: [0, 3], 1 step, Delta = 3; group {1, 3}: [1, 10], 3 steps, Delta = 9 / 3
        assert torch.allclose(layer(x), x)
        assert layer.average_steps == 2.0
    torch.manual_seed(0)
    lin, x = nn.Linear(6, 3), 4 * torch.randn(5, 6)
    spike, fake = GIFLinear(lin, 3, 2, "spike"), GIFLinear(lin, 3, 2, "fake")
    for layer in (spike, fake):
        layer.set_channel_steps(torch.tensor([2, 6, 3, 2, 2, 6]))
    assert torch.allclose(spike(x), fake(x), atol=1e-5)
    x_hat = torch.empty_like(x)
    for idx, steps in [([0, 3, 4], 2), ([2], 3), ([1, 5], 6)]:  # T_g (L - 1) codes per group
        xg = x[:, idx]
        lo, hi = xg.amin(-1, keepdim=True), xg.amax(-1, keepdim=True)
        delta = (hi - lo).clamp_min(1e-8) / (2 * steps)
        x_hat[:, idx] = lo + delta * torch.floor((xg - lo) / delta + 0.5)
    assert torch.allclose(spike(x), lin(x_hat), atol=1e-5)
    assert not torch.allclose(spike(x), lin(x), atol=1e-2)


def test_saliency_formula_and_outlier_channels():
    x, w = torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 1.0]])
    assert channel_saliency(x, w).tolist() == [3.0, 6.0]  # x ⊙ (x Wᵀ W) = [1, 2] ⊙ [3, 3]
    torch.manual_seed(0)
    x = torch.randn(64, 10)
    x[:, 3] *= 30
    x[:, 7] *= 20
    saliency = channel_saliency(x, torch.randn(6, 10))
    config = SpikifyConfig(steps=1, salient_fraction=0.2, salient_steps=4)
    steps = salient_steps(saliency, config)
    assert steps.tolist() == [1, 1, 1, 4, 1, 1, 1, 4, 1, 1]


def test_spikify_tiny_llama():
    ids = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(0))
    reference = tiny_llama()(input_ids=ids).logits
    model = spikify(tiny_llama(), None, SpikifyConfig(levels=2 ** 16, steps=1))
    assert sum(isinstance(m, GIFLinear) for m in model.modules()) == 14
    assert isinstance(model.lm_head, nn.Linear) and not isinstance(model.lm_head, GIFLinear)
    assert spiking_summary(model) == {"gif_linears": 14, "average_steps": 1.0, "average_bits": 16.0}
    assert torch.allclose(model(input_ids=ids).logits, reference, atol=2e-3)
    coarse = spikify(tiny_llama(), None, SpikifyConfig(levels=4, steps=1))
    assert not torch.allclose(coarse(input_ids=ids).logits, reference, atol=2e-3)


def test_spikify_with_obs_spike_and_fake_paths_agree():
    calibration = torch.randint(0, 50, (3, 16), generator=torch.Generator().manual_seed(1))
    stream = torch.randint(0, 50, (64,), generator=torch.Generator().manual_seed(2))
    ppl = {}
    for path in ("spike", "fake"):
        config = SpikifyConfig(levels=4, steps=1, path=path, salient_fraction=0.1, salient_steps=2)
        model = spikify(tiny_llama(), calibration, config)
        # 10% of 32 channels -> 4 at 2 steps; of 64 (down_proj) -> 7 at 2 steps
        q = model.model.layers[0].self_attn.q_proj
        assert q.channel_steps.sum().item() == 32 + 4
        assert model.model.layers[1].mlp.down_proj.channel_steps.sum().item() == 64 + 7
        summary = spiking_summary(model)
        assert summary["gif_linears"] == 14 and 1.1 < summary["average_steps"] < 1.13
        assert summary["average_bits"] == pytest.approx(2 * summary["average_steps"])  # log2(4) bits a step
        ppl[path] = perplexity(model, stream, seq_len=16)["perplexity"]
    assert math.isclose(ppl["spike"], ppl["fake"], rel_tol=1e-5)
    saliency = stored_saliency(model)  # block-wise OBS saliency kept by the converted model
    config = SpikifyConfig(levels=4, path="fake", salient_fraction=0.1, salient_steps=2)
    again = spikify(tiny_llama(), None, config, saliency)
    assert perplexity(again, stream, seq_len=16)["perplexity"] == ppl["fake"]


def test_errors():
    with pytest.raises(ValueError,
                       match=r"spikify supports Llama, Qwen2, Mistral \(model_type llama, qwen2, mistral"):
        spikify(nn.Module(), None, SpikifyConfig())
    with pytest.raises(ValueError, match="needs calibration_data"):
        spikify(tiny_llama(), None, SpikifyConfig(salient_fraction=0.1, salient_steps=2))
    with pytest.raises(ValueError, match="one entry per decoder projection"):
        spikify(tiny_llama(), None, SpikifyConfig(salient_fraction=0.1, salient_steps=2), {"x": None})
    with pytest.raises(ValueError, match="levels=1 is out of range; accepted: an int >= 2, or 0"):
        SpikifyConfig(levels=1)
    with pytest.raises(ValueError, match="path='real' is not accepted"):
        SpikifyConfig(path="real")
    with pytest.raises(ValueError, match="salient_fraction=1.5 is out of range"):
        SpikifyConfig(salient_fraction=1.5)
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        GIFLinear(nn.Conv1d(2, 2, 1), 2, 1)
    layer = GIFLinear(linear(), 2, 1)
    with pytest.raises(ValueError, match="has 6 input channels"):
        layer.set_channel_steps(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="must be >= 1"):
        layer.set_channel_steps(torch.tensor([1, 0, 1, 1, 1, 1]))


def test_experiment_settings_grammar():
    from experiments.spikellm_perplexity import parse_setting

    assert parse_setting("fp") is None
    t2 = SpikifyConfig(levels=16, steps=1, salient_fraction=0.1, salient_steps=2)
    assert parse_setting("16x1:t2") == t2
    t4 = SpikifyConfig(levels=4, steps=5, path="fake", salient_fraction=0.05, salient_steps=20)
    assert parse_setting("4x5:t4@fake") == t4
    with pytest.raises(ValueError, match="setting '16x1:t3' is not accepted"):
        parse_setting("16x1:t3")
