"""The SpikeLLM weight path: ternary GIF weights, Hessian saliency, GPTQ compensation, PB-LLM and
plain ternary baselines, additive cost."""
import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from neuron_zoo import gif_quantize
from sj_spikelm.models.spikellm import SpikifyConfig, spikify
from sj_spikelm.models.spikellm.saving import save_spikified
from sj_spikelm.models.spikellm.ternary import TernaryGIFLinear, quantize_ternary, ternary_cost, ternary_step


def correlated_inputs(n=256, c=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 4, generator=g)
    return base @ torch.randn(4, c, generator=g) + 0.1 * torch.randn(n, c, generator=g)


def test_ternary_step_and_codes_by_hand():
    w = torch.tensor([[1.0, -1.0, 1.0, 0.0]])
    alpha = ternary_step(w, torch.ones_like(w, dtype=torch.bool), 1)
    assert abs(alpha.item() - 1.0) < 0.03  # the grid c * mean|w| nearest to the exact 1
    codes, alpha, _, mask, _ = quantize_ternary(w, None, "rtn", 0.0, 2)
    assert codes.tolist() == [[1, -1, 1, 0]] and not mask.any()
    # codes are gif_quantize's signed (2T+1)-level quantizer: T = 1 step of ternary spikes
    assert torch.equal(codes.float() * alpha, gif_quantize(w, 2, 1, signed=True, rounding="nearest",
                                                           v_threshold=alpha.item()))


def test_hessian_saliency_picks_the_outlier_input_channel():
    x = correlated_inputs()
    x[:, 3] *= 50
    hessian = 2 * x.t() @ x / x.shape[0]
    w = torch.ones(6, 16)
    _, _, _, mask, _ = quantize_ternary(w, hessian, "gif", 6 / 96, 2)
    assert mask.nonzero()[:, 1].tolist() == [3] * 6


def test_gptq_compensation_beats_plain_rounding_and_pb_keeps_salient_weights():
    torch.manual_seed(0)
    x = correlated_inputs()
    lin = nn.Linear(16, 8)
    hessian = 2 * x.t() @ x / x.shape[0]
    errors = {}
    for mode in ("rtn", "gif", "pb"):
        layer = TernaryGIFLinear(lin, hessian, mode, 0.1, 2, path="fake")
        errors[mode] = ((layer(x) - lin(x)) ** 2).mean().item()
        spiking = TernaryGIFLinear(lin, hessian, mode, 0.1, 2, path="spike")
        assert torch.allclose(spiking(x), layer(x), atol=1e-4)  # executed ternary spikes
    assert errors["gif"] < 0.7 * errors["rtn"]  # compensation on correlated inputs (measured 0.53)
    pb = TernaryGIFLinear(lin, hessian, "pb", 0.1, 2)
    assert torch.equal(pb.float_weight != 0, pb.salient) and pb.codes[pb.salient].abs().sum() == 0
    gif = TernaryGIFLinear(lin, hessian, "gif", 0.1, 2)
    assert gif.codes[gif.salient].abs().max() <= 2 and gif.codes[~gif.salient].abs().max() <= 1
    assert pb.weight_steps()[pb.salient].sum() == 0
    assert gif.weight_steps().float().mean() == pytest.approx(1.1, 0.01)


def test_weight_path_conversion_cost_and_errors(tmp_path):
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=64)).eval()
    calib = torch.randint(0, 50, (3, 16), generator=torch.Generator().manual_seed(1))
    spikify(model, calib, SpikifyConfig(levels=0, weight_path="gif"))
    layers = [m for m in model.modules() if isinstance(m, TernaryGIFLinear)]
    assert len(layers) == 14
    cost = ternary_cost(model)
    assert cost["additions"] == sum(float(m.codes.abs().sum()) for m in layers)  # one add per weight spike
    assert cost["weight_average_steps"] == pytest.approx(1.1, 0.01) and cost["energy_ratio"] < 0.5
    with pytest.raises(NotImplementedError, match="ternary weights"):
        save_spikified(model, tmp_path / "t")
    with pytest.raises(ValueError, match="needs levels=0 and weight_bits=0"):
        SpikifyConfig(levels=16, weight_path="gif")
    with pytest.raises(ValueError, match="weight_path='ternary' is not accepted"):
        SpikifyConfig(levels=0, weight_path="ternary")
