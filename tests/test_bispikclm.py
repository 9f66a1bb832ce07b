"""BiSpikCLM / SpikeLM decoder: binary matmul inputs, SFSA's equation, causality, loss, save/load,
generation with and without the spiking KV cache, config errors."""
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoConfig, AutoModelForCausalLM

from neuron_zoo import needs_calibration
from sj_spikelm import BiSpikCLMConfig, BiSpikCLMForCausalLM
from sj_spikelm.models.bispikclm.modeling_bispikclm import MatMul

SETTINGS = {
    "bispikclm": {},
    "spikelm_decoder": {"neuron": "elastic_bi(k=2)", "attention": "softmax"},
    "ste_lif_sfsa": {"neuron": "ste_lif(v_threshold=0.5)"},
    "ann_twin": {"neuron": "ann", "attention": "softmax", "hidden_act": "relu"},
}


def tiny(**overrides):
    fields = dict(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=32, T=2, attention_scale=1.0)
    fields.update(overrides)
    return BiSpikCLMConfig(**fields)


def ids(batch=2, length=8, seed=0):
    return torch.randint(0, 40, (batch, length), generator=torch.Generator().manual_seed(seed))


def ready(config):
    """A model in eval mode, calibrated on one batch when its neurons need it."""
    torch.manual_seed(0)
    model = BiSpikCLMForCausalLM(config)
    if needs_calibration(model):
        model.calibrate(input_ids=ids(seed=1))
    return model.eval()


def test_every_matmul_reads_binary_spikes():
    """Hooks on F.linear (every nn.Linear, whatever module calls it) and on both attention
    products: all inputs are exactly {0, 1}, except the LM head's."""
    model = BiSpikCLMForCausalLM(tiny())
    head = model.lm_head.weight
    seen = {"linear": 0, "products": 0}
    linear = F.linear

    def checked_linear(x, weight, bias=None):
        if weight is not head:
            assert set(x.unique().tolist()) <= {0.0, 1.0}
            seen["linear"] += 1
        return linear(x, weight, bias)

    def check_product(module, inputs):
        for x in inputs:
            assert set(x.unique().tolist()) <= {0.0, 1.0}
        seen["products"] += 1
        seen["ones"] = seen.get("ones", 0) + int(inputs[0].sum() > 0)

    for m in model.modules():
        if isinstance(m, MatMul):
            m.register_forward_pre_hook(check_product)
    torch.nn.functional.linear = checked_linear
    try:
        model(input_ids=ids(), labels=ids()).loss.backward()
    finally:
        torch.nn.functional.linear = linear
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules()) - 1
    assert seen["linear"] == n_linear == 2 * 6 and seen["products"] == 2 * 2
    assert seen["ones"] == 4  # Q and A do spike: the check is not on all-zero tensors


def test_sfsa_is_the_masked_scaled_coincidence_count():
    """The attention neuron's input is M ⊙ (Q K^T) · s with the binary causal mask, and O = A V."""
    model = BiSpikCLMForCausalLM(tiny(attention_scale=0.5))
    attn = model.model.layers[0].self_attn
    got = {}
    for name in ("q_neuron", "k_neuron", "v_neuron", "attn_neuron"):
        getattr(attn, name).register_forward_hook(lambda m, i, o, name=name: got.update({name: (i[0], o)}))
    attn.o_proj.neuron.register_forward_pre_hook(lambda m, i: got.update({"context": i[0]}))
    model(input_ids=ids(length=6))
    heads = lambda y: y.view(2, 2, 6, 2, 16).transpose(2, 3)
    q, k, v = (heads(got[n][1]) for n in ("q_neuron", "k_neuron", "v_neuron"))
    mask = torch.ones(6, 6).tril()
    counts = q @ k.transpose(-1, -2)
    assert torch.equal(counts, counts.round()) and counts.max() >= 1  # integer coincidence counts
    torch.testing.assert_close(got["attn_neuron"][0], counts * mask * 0.5, rtol=0, atol=0)
    a = got["attn_neuron"][1]
    assert torch.equal(a * (1 - mask), torch.zeros_like(a))  # no spike above the diagonal
    torch.testing.assert_close(got["context"], (a @ v).transpose(2, 3).reshape(2, 2, 6, 32), rtol=0, atol=0)


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_a_future_token_never_changes_a_past_logit(setting):
    model = ready(tiny(**SETTINGS[setting]))
    x = ids()
    y = x.clone()
    y[:, 5] = (y[:, 5] + 1) % 40
    a, b = model(input_ids=x).logits, model(input_ids=y).logits
    assert torch.equal(a[:, :5], b[:, :5])
    assert not torch.equal(a[:, 5:], b[:, 5:])


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_trains_every_parameter(setting):
    model = BiSpikCLMForCausalLM(tiny(**SETTINGS[setting])).train()
    loss = model(input_ids=ids(), labels=ids()).loss
    loss.backward()
    assert torch.isfinite(loss)
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_loss_is_the_shifted_cross_entropy():
    model = ready(tiny())
    x = ids()
    labels = x.clone()
    labels[0, :3] = -100
    out = model(input_ids=x, labels=labels)
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, 40), labels[:, 1:].reshape(-1),
                               ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)


def test_ann_twin_is_the_same_for_every_T():
    a = BiSpikCLMForCausalLM(tiny(T=1, **SETTINGS["ann_twin"])).eval()
    b = BiSpikCLMForCausalLM(tiny(T=3, **SETTINGS["ann_twin"])).eval()
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(input_ids=ids()).logits, b(input_ids=ids()).logits)


@pytest.mark.parametrize("setting", ["bispikclm", "spikelm_decoder"])
def test_save_pretrained_from_pretrained_is_exact(setting, tmp_path):
    model = ready(tiny(**SETTINGS[setting]))
    model.save_pretrained(tmp_path)
    fields = lambda c: {k: v for k, v in c.to_dict().items() if k != "_name_or_path"}
    assert fields(AutoConfig.from_pretrained(tmp_path)) == fields(model.config)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is BiSpikCLMForCausalLM and not needs_calibration(loaded)
    sa, sb = model.state_dict(), loaded.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(model(input_ids=ids()).logits, loaded(input_ids=ids()).logits)


@pytest.mark.parametrize("setting", ["bispikclm", "spikelm_decoder"])
def test_greedy_generation_with_and_without_the_cache(setting):
    model = ready(tiny(**SETTINGS[setting]))
    prompt = ids(length=4)
    cached = model.generate(prompt, max_new_tokens=5, do_sample=False, use_cache=True)
    plain = model.generate(prompt, max_new_tokens=5, do_sample=False, use_cache=False)
    x = prompt
    for _ in range(5):  # greedy by hand: argmax of the last logit, the whole prefix each time
        x = torch.cat([x, model(input_ids=x).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert cached.shape == (2, 9)
    assert torch.equal(cached, x) and torch.equal(plain, x)


def test_beam_search_and_sampling_with_and_without_the_cache():
    model = ready(tiny())
    prompt = ids(length=3)
    beams = [model.generate(prompt, max_new_tokens=4, num_beams=3, do_sample=False, use_cache=c)
             for c in (True, False)]
    assert torch.equal(beams[0], beams[1])
    samples = []
    for use_cache in (True, False):
        torch.manual_seed(3)
        samples.append(model.generate(prompt, max_new_tokens=4, do_sample=True, top_k=0, use_cache=use_cache))
    assert torch.equal(samples[0], samples[1])


def test_cache_holds_every_time_step_of_the_spiking_keys():
    model = ready(tiny(T=3))
    out = model(input_ids=ids(length=5), use_cache=True)
    key = out.cache.layers[0].keys
    assert key.shape == (2, 2, 5, 3 * 16) and set(key.unique().tolist()) <= {0.0, 1.0}


def test_padding_keys_are_masked():
    model = ready(tiny())
    x = ids(length=6)
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[0, 2] = 0
    y = x.clone()
    y[0, 2] = (y[0, 2] + 1) % 40
    a = model(input_ids=x, attention_mask=mask).logits
    b = model(input_ids=y, attention_mask=mask).logits
    assert torch.equal(a[0, 3:], b[0, 3:])  # later positions do not see the masked token
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 5\).*\[2, 6\]"):
        model(input_ids=x, attention_mask=mask[:, :5])
    with pytest.raises(ValueError, match="beyond max_position_embeddings=32"):
        model(input_ids=ids(length=33))


@pytest.mark.parametrize("overrides, error, match", [
    ({"T": 0}, ValueError, "T=0 is out of range"),
    ({"neuron": "nope"}, ValueError, "unknown neuron 'nope'"),
    ({"attention": "linear"}, ValueError, "attention='linear' is not accepted; choose one of 'sfsa'"),
    ({"attention_scale": -1.0}, ValueError, "attention_scale=-1.0 is out of range"),
    ({"hidden_size": 33}, ValueError, "hidden_size=33 is not a multiple of num_attention_heads=2"),
    ({"attention": "softmax", "attention_threshold": 0.5}, ValueError, "attention_threshold=0.5 is only"),
    ({"neuron": "elastic_bi", "attention_threshold": 0.5}, ValueError, "attention_threshold=0.5 needs"),
    ({"attention_neuron": "soft_lif(T=3)"}, ValueError, "attention_neuron=.*T=3 but the config has T=2"),
    ({"hidden_act": "swishy"}, ValueError, "hidden_act='swishy' is not accepted"),
    ({"tie_word_embeddings": 1}, TypeError, "tie_word_embeddings=1 must be a bool"),
])
def test_bad_config_values_name_the_field(overrides, error, match):
    with pytest.raises(error, match=match):
        tiny(**overrides)


def test_attention_threshold_reaches_the_attention_neuron():
    model = BiSpikCLMForCausalLM(tiny(attention_threshold=2.0, attention_neuron="soft_lif(decay=0.25)"))
    node = model.model.layers[1].self_attn.attn_neuron
    assert (node.v_threshold, node.decay) == (2.0, 0.25)
    assert model.model.layers[1].self_attn.q_neuron.v_threshold == 1.0


def test_default_scale_is_the_measured_one_for_sfsa_and_the_softmax_convention_otherwise():
    assert tiny(attention_scale=None).scale == 0.0625
    assert tiny(attention_scale=None, attention="softmax").scale == 16 ** -0.5
    assert tiny(attention_scale=0.25).scale == 0.25
