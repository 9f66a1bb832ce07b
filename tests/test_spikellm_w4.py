"""SpikeLLM weights and block-wise conversion: per-channel W4 (RTN, learnable clipping),
SmoothQuant scales, exact agreement of the spike and quantizer paths with integer weights,
block-wise conversion of tiny random Llama / Qwen2 / Mistral models, save / load, cost counts."""
import math

import pytest
import torch
from torch import nn
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from sj_spikelm.models.spikellm import (
    GIFLinear,
    SpikifyConfig,
    configure_activations,
    quantize_weight,
    spikify,
)
from sj_spikelm.models.spikellm.cost import spikellm_cost
from sj_spikelm.models.spikellm.saving import load_spikified, save_spikified
from sj_spikelm.models.spikellm.spikify import block_inputs, convert_block, smoothing_scales, train_clipping

SIZES = dict(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64)


def tiny(kind=LlamaForCausalLM, config=LlamaConfig):
    torch.manual_seed(0)
    return kind(config(**SIZES)).eval()


IDS = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(0))
CALIB = torch.randint(0, 50, (3, 16), generator=torch.Generator().manual_seed(1))


def test_rtn_weight_codes_by_hand():
    w = torch.tensor([[-1.0, 0.0, 0.4, 2.0], [0.3, -0.3, 0.0, 0.6]])
    ints, scale = quantize_weight(w, 2)
    # row 0: [lo, hi] = [-1, 2], h = 1, z = 1: clamp(round(w) + 1, 0, 3) - 1
    # row 1: [-0.3, 0.6], h = 0.3, z = 1
    assert ints.tolist() == [[-1, 0, 0, 2], [1, -1, 0, 2]]
    assert torch.allclose(scale, torch.tensor([[1.0], [0.3]]))
    # clipping: sigmoid(0) = 1/2 of the max and min -> [-0.5, 1], h = 0.5, z = 1, codes 0..3
    half = torch.zeros(2, 1)
    ints, scale = quantize_weight(w, 2, half, half)
    assert ints[0].tolist() == [-1, 0, 1, 2] and scale[0].item() == 0.5


def test_clip_logits_get_gradients():
    torch.manual_seed(0)
    w = torch.randn(3, 8)
    up, low = torch.full((3, 1), 4.0, requires_grad=True), torch.full((3, 1), 4.0, requires_grad=True)
    ints, scale = quantize_weight(w, 4, up, low)
    ((ints * scale - w) ** 2).sum().backward()
    assert up.grad.abs().sum() > 0 and low.grad.abs().sum() > 0


@pytest.mark.parametrize("levels,steps,channel_steps", [(16, 1, None), (4, 5, None),
                                                        (16, 1, [1, 2, 1, 1, 4, 2, 1, 4]),
                                                        (2, 3, [3, 6, 3, 3, 3, 9, 6, 9])])
def test_w4_spike_path_is_bit_identical_to_quantizer(levels, steps, channel_steps):
    torch.manual_seed(0)
    lin, x = nn.Linear(8, 5), 3 * torch.randn(4, 7, 8)
    layers = {}
    for path in ("spike", "fake"):
        layers[path] = GIFLinear(lin, levels, steps, path, weight_bits=4)
        if channel_steps is not None:
            layers[path].set_channel_steps(torch.tensor(channel_steps))
        layers[path].freeze_weight()
    assert layers["spike"].weight_int.dtype == torch.int16
    assert torch.equal(layers["spike"](x), layers["fake"](x))  # integer products: exact, any step count
    # and both are the quantizer: x̂ (per-token, per-group codes) times the de-quantized weight
    groups = [(list(range(8)), steps)] if channel_steps is None else \
        [([c for c, t in enumerate(channel_steps) if t == g], g) for g in sorted(set(channel_steps))]
    x_hat = torch.empty_like(x)
    for idx, t in groups:
        xg = x[..., idx]
        lo, hi = xg.amin(-1, keepdim=True), xg.amax(-1, keepdim=True)
        delta = (hi - lo) / (t * (levels - 1))
        x_hat[..., idx] = lo + delta * torch.floor((xg - lo) / delta + 0.5)
    w_hat = layers["fake"].dequantized_weight()
    assert torch.allclose(layers["spike"](x), x_hat @ w_hat.t() + lin.bias, atol=1e-4)


def test_float_activations_and_smoothing_keep_the_function():
    torch.manual_seed(0)
    lin, x = nn.Linear(6, 4), torch.randn(3, 6)
    layer = GIFLinear(lin, 0, 1)
    assert torch.equal(layer(x), lin(x))  # identity setting: no quantizer at all
    weight = lin.weight.detach().clone()
    absmax = torch.tensor([8.0, 1.0, 0.5, 2.0, 4.0, 1.0])
    scale = smoothing_scales(absmax, [lin.weight], 0.5)
    assert torch.allclose(scale, absmax.sqrt() / weight.abs().amax(0).sqrt())
    layer.set_smoothing(scale)
    assert torch.allclose(layer(x), lin(x), atol=1e-6)  # x / s times W diag(s)
    assert torch.equal(lin.weight, weight)  # the wrapped layer is left alone
    with pytest.raises(ValueError, match=r"positive with shape \(6,\)"):
        layer.set_smoothing(torch.ones(5))


def test_block_inputs_are_the_embeddings():
    model = tiny()
    x, kwargs = block_inputs(model, CALIB)
    hidden = model(input_ids=CALIB, output_hidden_states=True).hidden_states[0]
    assert torch.equal(x, hidden) and "position_embeddings" in kwargs


@pytest.mark.parametrize("kind,config", [(LlamaForCausalLM, LlamaConfig), (Qwen2ForCausalLM, Qwen2Config),
                                         (MistralForCausalLM, MistralConfig)])
def test_blockwise_conversion_identity_exact_and_high_bits_close(kind, config):
    reference = tiny(kind, config)(input_ids=IDS).logits
    log = []
    identity = spikify(tiny(kind, config), CALIB, SpikifyConfig(levels=0), log=log)
    assert sum(isinstance(m, GIFLinear) for m in identity.modules()) == 14
    assert torch.equal(identity(input_ids=IDS).logits, reference)  # the block-wise pipeline is exact
    assert log[0]["block_mse"] == 0.0
    high_bits = SpikifyConfig(levels=2 ** 16, weight_bits=8, salient_fraction=0.1, salient_steps=2)
    high = spikify(tiny(kind, config), CALIB, high_bits)
    error = (high(input_ids=IDS).logits - reference).abs().max() / reference.abs().max()
    assert error < 1e-2  # W8 per channel, 16-bit activations: measured 0.4%
    low = spikify(tiny(kind, config), CALIB, SpikifyConfig(levels=4, weight_bits=2))
    assert (low(input_ids=IDS).logits - reference).abs().max() / reference.abs().max() > 1e-2


def test_learnable_clipping_lowers_the_block_loss_and_keeps_integer_weights():
    log, rtn = [], []
    config = SpikifyConfig(levels=0, weight_bits=3, weight_clipping="lwc", lwc_epochs=6, lwc_lr=0.01)
    model = spikify(tiny(), CALIB, config, log=log)
    for entry in log:
        assert entry["lwc_loss"][-1] < entry["lwc_loss"][0]
    spikify(tiny(), CALIB, SpikifyConfig(levels=0, weight_bits=3), log=rtn)
    assert log[0]["block_mse"] < 0.9 * rtn[0]["block_mse"]  # measured 2.53e-6 vs 3.00e-6 (RTN)
    layer = model.model.layers[1].mlp.down_proj
    assert layer.weight is None and layer.clip_upper is None
    spans = layer.weight_int.amax(1) - layer.weight_int.amin(1)
    assert int(spans.max()) <= 2 ** 3 - 1  # 8 codes per output channel


def test_train_clipping_restores_the_block():
    model = tiny()
    x, kwargs = block_inputs(model, CALIB)
    block = model.model.layers[0]
    with torch.no_grad():
        target = block(x, **kwargs)
    convert_block(block, SpikifyConfig(levels=16, weight_bits=4, path="spike"))
    losses = train_clipping(block, x, target, kwargs, SpikifyConfig(weight_bits=4, weight_clipping="lwc",
                                                                    lwc_epochs=2))
    assert len(losses) == 2
    assert block.self_attn.q_proj.path == "spike"
    assert block.input_layernorm.weight.requires_grad  # flags restored


def test_configure_activations_and_save_load_round_trip(tmp_path):
    config = SpikifyConfig(levels=16, weight_bits=4, weight_clipping="lwc", lwc_epochs=1, smooth_alpha=0.5)
    model = spikify(tiny(), CALIB, config)
    t2 = SpikifyConfig(levels=16, weight_bits=4, salient_fraction=0.1, salient_steps=2)
    configure_activations(model, t2)
    assert model.model.layers[0].self_attn.q_proj.channel_steps.sum().item() == 32 + 4
    expected = model(input_ids=IDS).logits
    save_spikified(model, tmp_path / "m", t2)
    again = load_spikified(tmp_path / "m")
    assert torch.equal(again(input_ids=IDS).logits, expected)
    layer = again.model.layers[1].mlp.up_proj
    assert layer.weight is None and layer.smooth is not None and layer.weight_int.dtype == torch.int16
    with pytest.raises(FileNotFoundError, match="not a folder written by save_spikified"):
        load_spikified(tmp_path)


def test_unsupported_architecture_names_the_supported_ones():
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=20))
    with pytest.raises(ValueError, match=r"spikify supports Llama, Qwen2, Mistral .* got model_type 'gpt2'"):
        spikify(gpt2, None, SpikifyConfig())
    with pytest.raises(ValueError, match="smooth_alpha > 0 needs calibration_data"):
        spikify(tiny(), None, SpikifyConfig(smooth_alpha=0.5))
    with pytest.raises(ValueError, match="weight_clipping='lwc' needs weight_bits > 0"):
        SpikifyConfig(weight_clipping="lwc")
    with pytest.raises(ValueError, match="weight_bits=9 is not accepted"):
        SpikifyConfig(weight_bits=9)


def test_cost_counts():
    t2 = SpikifyConfig(levels=16, weight_bits=4, salient_fraction=0.1, salient_steps=2)
    model = spikify(tiny(), CALIB, t2)
    assert spikellm_cost(model)["energy_spike_uj"] is None  # nothing counted yet (calibration is not)
    with torch.no_grad():
        model(input_ids=IDS)
    cost = spikellm_cost(model)
    # per block: q 32x32, k 16x32, v 16x32, o 32x32, gate 64x32, up 64x32, down 32x64
    macs = 2 * (32 * 32 * 2 + 16 * 32 * 2 + 64 * 32 * 3)
    assert cost["macs"] == macs
    # ace: 4 of 32 input channels at 2 steps (q, k, v, o, gate, up), 7 of 64 (down)
    ace = 2 * ((32 + 16 + 16 + 32 + 64 + 64) * (32 + 4) + 32 * (64 + 7))
    assert cost["ace"] == pytest.approx(ace)
    assert cost["bitops"] == pytest.approx(ace * 4 * 4)
    assert cost["energy_fp16_uj"] == pytest.approx(macs * 1.5e-6)
    layers = [m for m in model.modules() if isinstance(m, GIFLinear)]
    events = sum(m.out_features * m.events / m.tokens for m in layers)
    assert cost["energy_spike_uj"] == pytest.approx(events * 0.4e-6)
    assert all(m.tokens == IDS.numel() for m in layers)
    assert math.isclose(cost["energy_ratio"], cost["energy_spike_uj"] / cost["energy_fp16_uj"])


def test_weight_only_calibration_matches_float_activations():
    lwc = dict(weight_bits=3, weight_clipping="lwc", lwc_epochs=3, lwc_lr=0.05)
    weight_only = spikify(tiny(), CALIB, SpikifyConfig(levels=16, calib_activations="float", **lwc))
    float_acts = spikify(tiny(), CALIB, SpikifyConfig(levels=0, **lwc))
    a4 = spikify(tiny(), CALIB, SpikifyConfig(levels=16, **lwc))
    reference = dict(float_acts.named_modules())
    layers = [(m, reference[name]) for name, m in weight_only.named_modules() if isinstance(m, GIFLinear)]
    assert len(layers) == 14
    assert all(torch.equal(m.weight_int, n.weight_int) and not m.float_inputs for m, n in layers)
    quantized = dict(a4.named_modules())
    assert any(not torch.equal(m.weight_int, quantized[name].weight_int)  # clipping saw other inputs
               for name, m in weight_only.named_modules() if isinstance(m, GIFLinear))
    with pytest.raises(ValueError, match="calib_activations='fp' is not accepted"):
        SpikifyConfig(calib_activations="fp")
