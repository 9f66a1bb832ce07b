"""elastic_bi(amplitude='channel'): alpha[t, c] = k * mean|m[t, ..., c]|, and folding amplitudes
into the next layer's weights (sj_spikelm.models.folding)."""
import pytest
import torch

import neuron_zoo
from neuron_zoo import CalibrationError, ElasticBiNode, global_sum_count
from sj_spikelm import SpikeLMConfig, SpikeLMForSequenceClassification, SpikeLMModel
from sj_spikelm.energy import estimate_energy
from sj_spikelm.models.folding import FoldedSpikeLinear, fold_amplitudes

CHANNEL = "elastic_bi(k=2, amplitude='channel')"


def test_per_channel_calibration_and_spikes_by_hand():
    # T=2 steps, 3 positions (the last one masked out), C=2 channels; soft reset, decay 0.5
    x = torch.tensor([[[1.0, -4.0], [-3.0, 2.0], [100.0, 100.0]],
                      [[1.0, -4.0], [-3.0, 2.0], [100.0, 100.0]]])
    node = ElasticBiNode(k=2.0, decay=0.5, reset="soft", amplitude="channel", channels=2, T=2)
    with neuron_zoo.valid_mask(node, torch.tensor([True, True, False])):
        s = node(x)
    # step 0: m = x; alpha[0] = 2 * mean|m| over the 2 valid rows = [2 * 2, 2 * 3] = [4, 6]
    torch.testing.assert_close(node.alpha[0], torch.tensor([4.0, 6.0]))
    # fire when |m| >= alpha / 2: channel 0 threshold 2, channel 1 threshold 3
    torch.testing.assert_close(s[0, :2], torch.tensor([[0.0, -6.0], [-4.0, 0.0]]))
    # soft reset v = m - s: [[1, 2], [1, 2]]; step 1: m = 0.5 v + x = [[1.5, -3], [-2.5, 3]]
    torch.testing.assert_close(node.alpha[1], torch.tensor([2 * 2.0, 2 * 3.0]))
    torch.testing.assert_close(s[1, :2], torch.tensor([[0.0, -6.0], [-4.0, 6.0]]))
    assert node.calibrated.tolist() == [True, True] and tuple(node.alpha.shape) == (2, 2)


def test_per_tensor_amplitude_is_unchanged_by_the_option():
    x = torch.randn(3, 5, 4)
    a, b = ElasticBiNode(T=3), ElasticBiNode(T=3, amplitude="tensor", channels=7)  # only recorded
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    assert tuple(b.alpha.shape) == (3,)


@pytest.mark.parametrize("alpha", ["calibrated", "learnable"])
@pytest.mark.parametrize("reset", ["reference", "hard", "soft"])
def test_channel_neuron_equals_one_per_tensor_neuron_per_channel(alpha, reset):
    """Spikes, alpha, input gradients and (learnable) LSQ gradients of the per-channel neuron
    equal those of C per-tensor neurons, one on each channel slice."""
    torch.manual_seed(0)
    x = (torch.randn(4, 6, 3) * torch.tensor([0.1, 1.0, 20.0])).requires_grad_()
    node = ElasticBiNode(k=2.0, reset=reset, alpha=alpha, amplitude="channel", channels=3, T=4)
    s = node(x)
    w = torch.randn_like(s)
    (s * w).sum().backward()
    for c in range(3):
        xc = x.detach()[..., c:c + 1].clone().requires_grad_()
        ref = ElasticBiNode(k=2.0, reset=reset, alpha=alpha, T=4)
        sc = ref(xc)
        (sc * w[..., c:c + 1]).sum().backward()
        torch.testing.assert_close(s[..., c:c + 1], sc, rtol=0, atol=0)
        torch.testing.assert_close(node.alpha[:, c], ref.alpha.detach(), rtol=0, atol=0)
        torch.testing.assert_close(x.grad[..., c:c + 1], xc.grad, rtol=0, atol=0)
        if alpha == "learnable":
            torch.testing.assert_close(node.alpha.grad[:, c], ref.alpha.grad, rtol=1e-6, atol=1e-7)


def test_errors_name_the_option():
    with pytest.raises(ValueError, match="needs channels"):
        ElasticBiNode(amplitude="channel", T=2)
    with pytest.raises(ValueError, match="amplitude='per_row'"):
        ElasticBiNode(amplitude="per_row")
    node = ElasticBiNode(amplitude="channel", channels=4, T=1)
    with pytest.raises(ValueError, match="channels=4 but its input has shape"):
        node(torch.ones(1, 2, 3))
    zero = ElasticBiNode(amplitude="channel", channels=2, T=1)  # channel 1 never fires: refused
    with pytest.raises(CalibrationError, match="refusing to calibrate time step 0"):
        zero(torch.tensor([[[1.0, 0.0], [2.0, 0.0]]]))
    assert zero.calibrated_steps == 0
    with pytest.raises(ValueError, match="backend='cupy' does not support amplitude='channel'"):
        node.backend = "cupy"
    model = SpikeLMModel(SpikeLMConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=16, T=2, neuron=CHANNEL))
    with pytest.raises(ValueError, match="amplitude='channel'"):
        neuron_zoo.set_backend(model, "cupy")
    with pytest.raises(ValueError, match="leave out channels"):
        SpikeLMConfig(neuron="elastic_bi(amplitude='channel', channels=8)")


def test_spec_leaves_out_channels_and_models_size_each_layer(tiny_config):
    node = neuron_zoo.build_neuron(CHANNEL, channels=5, T=2)
    assert neuron_zoo.neuron_spec(node) == "elastic_bi(amplitude='channel', T=2)"
    model = SpikeLMModel(tiny_config(neuron=CHANNEL))
    layer = model.encoder.layer[0]
    assert model.config.neuron == CHANNEL
    assert tuple(layer.intermediate.dense.neuron.alpha.shape) == (2, 8)
    assert tuple(layer.output.dense.neuron.alpha.shape) == (2, 16)
    kv = layer.attention.self.key_neuron
    assert kv.decay == 0.0 and kv.amplitude_mode == "channel" and tuple(kv.alpha.shape) == (2, 8)


def test_global_sum_count_per_channel_with_mask():
    values = torch.arange(12.0).reshape(2, 2, 3)  # [B, L, C]
    mask = torch.tensor([[True, False], [True, True]])
    total, count = global_sum_count(values, mask, per_channel=True)
    torch.testing.assert_close(total, torch.tensor([0 + 6 + 9, 1 + 7 + 10, 2 + 8 + 11.0]))
    assert float(count) == 3.0
    total, count = global_sum_count(values, None, per_channel=True)
    torch.testing.assert_close(total, values.reshape(-1, 3).sum(0))
    assert float(count) == 4.0


def calibrated_classifier(tiny_config, batch, neuron, T=2):
    torch.manual_seed(0)
    model = SpikeLMForSequenceClassification(tiny_config(neuron=neuron, T=T, num_labels=1,
                                                          initializer_range=0.5))
    return model.calibrate(**batch).eval()


def test_save_load_and_from_pretrained(tiny_config, batch, tmp_path):
    model = calibrated_classifier(tiny_config, batch, CHANNEL)
    model.save_pretrained(tmp_path)
    loaded = SpikeLMForSequenceClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.neuron == CHANNEL
    for name, node in model.named_modules():
        if isinstance(node, ElasticBiNode):
            other = loaded.get_submodule(name)
            torch.testing.assert_close(other.alpha, node.alpha, rtol=0, atol=0)
            assert other.is_calibrated and other.amplitude_mode == "channel"
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)
    per_tensor = SpikeLMForSequenceClassification(tiny_config(num_labels=1))
    with pytest.raises(RuntimeError, match=r"alpha has shape \(2, 8\) in the checkpoint, expected \[T\]"):
        per_tensor.load_state_dict(model.state_dict())


@pytest.mark.parametrize("neuron", [CHANNEL, "elastic_bi(k=2)", "ste_lif",
                                    "elastic_bi(amplitude='channel', reset='soft')"])
def test_folding_gives_the_same_output_levels_and_energy(tiny_config, batch, neuron):
    model = calibrated_classifier(tiny_config, batch, neuron)
    folded = fold_amplitudes(model).eval()
    folded_linears = [m for m in folded.modules() if isinstance(m, FoldedSpikeLinear)]
    assert len(folded_linears) == 2 * 6
    inputs = []
    hooks = [m.register_forward_hook(lambda mod, args, out: inputs.append(out)) for m in
             (lin.neuron for lin in folded_linears)]
    with torch.no_grad():
        expected, got = model(**batch).logits, folded(**batch).logits
    for h in hooks:
        h.remove()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert all(set(q.unique().tolist()) <= {-1.0, 0.0, 1.0} for q in inputs)  # only levels reach W_t
    lin = model.bert.encoder.layer[0].intermediate.dense
    flin = folded.bert.encoder.layer[0].intermediate.dense
    amp = lin.neuron.step_amplitudes(0, 2, lin.weight.device)
    amp = amp if amp.dim() == 2 else amp[:, None].expand(2, lin.in_features)
    torch.testing.assert_close(flin.weight, lin.weight[None] * amp[:, None, :], rtol=0, atol=0)
    assert not lin.neuron.emit_levels  # the original model is unchanged
    a, b = estimate_energy(model, batch), estimate_energy(folded, batch)
    assert [r["layer"] for r in a.rows] == [r["layer"] for r in b.rows]
    for ra, rb in zip(a.rows, b.rows):
        assert ra["kind"] == rb["kind"] and ra["rate"] == pytest.approx(rb["rate"], abs=1e-9)
    assert b.total_mj == pytest.approx(a.total_mj, rel=1e-9)
    assert any(r["kind"] == "AC" for r in b.rows)


def test_folding_needs_a_calibrated_model(tiny_config):
    model = SpikeLMModel(tiny_config(neuron=CHANNEL))
    with pytest.raises(CalibrationError, match="calibrate the model before folding"):
        fold_amplitudes(model)


def test_the_encoder_decoder_takes_per_channel_amplitudes():
    """Every neuron of the spiking encoder-decoder gets its input width (one amplitude per channel)."""
    import torch

    from sj_spikelm.models.spikelm_seq2seq import SpikeLMForConditionalGeneration, SpikeLMSeq2SeqConfig

    config = SpikeLMSeq2SeqConfig(vocab_size=40, d_model=16, encoder_layers=1, decoder_layers=1,
                                  encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=24,
                                  decoder_ffn_dim=24, max_position_embeddings=32, T=2,
                                  neuron="elastic_bi(k=2, amplitude='channel')")
    model = SpikeLMForConditionalGeneration(config)
    fc2 = model.model.decoder.layers[0].fc2.neuron
    assert fc2.channels == 24 and model.model.encoder.layers[0].self_attn.key_neuron.channels == 16
    ids = torch.randint(4, 40, (2, 5))
    model.train()
    with torch.no_grad():
        model(input_ids=ids, labels=ids)
    assert tuple(fc2.alpha.shape) == (2, 24) and bool((fc2.alpha > 0).all())
