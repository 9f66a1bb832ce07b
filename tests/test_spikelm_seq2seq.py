"""The spiking encoder-decoder (BART layout): BART reproduced with neuron="ann", shapes, save/load,
decoder causality, the KV cache over T steps, labels shifted into decoder inputs, errors."""
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertModel,
)
from transformers.cache_utils import DynamicCache

from sj_spikelm import SpikeLMForConditionalGeneration, SpikeLMSeq2SeqConfig, SpikeLMSeq2SeqModel
from sj_spikelm.models.spikelm_seq2seq import from_ann

TINY = dict(vocab_size=40, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
            decoder_attention_heads=4, encoder_ffn_dim=32, decoder_ffn_dim=24, max_position_embeddings=32,
            pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
            forced_eos_token_id=None)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    input_ids = torch.randint(3, 40, (3, 7), generator=g)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 5:] = 0
    attention_mask[2, 3:] = 0
    decoder_input_ids = torch.randint(3, 40, (3, 6), generator=g)
    decoder_input_ids[:, 0] = 2
    decoder_attention_mask = torch.ones_like(decoder_input_ids)
    decoder_attention_mask[2, 4:] = 0
    return dict(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                decoder_attention_mask=decoder_attention_mask)


def bart(attn="eager"):
    torch.manual_seed(0)
    return BartForConditionalGeneration(BartConfig(**TINY, attn_implementation=attn)).eval()


def spiking(neuron="elastic_bi(k=2)", T=4, batch=None, **fields):
    torch.manual_seed(0)
    model = SpikeLMForConditionalGeneration(SpikeLMSeq2SeqConfig(**{**TINY, **fields}, T=T, neuron=neuron))
    if batch is not None:
        model.calibrate(**batch)
    return model.eval()


@pytest.mark.parametrize("T", [1, 2])
def test_ann_neuron_reproduces_bart_bit_for_bit(batch, T, tmp_path):
    ann = bart()
    ann.save_pretrained(tmp_path / "bart")
    for source in (ann, tmp_path / "bart"):  # instance and local folder
        snn = from_ann(source, neuron="ann", T=T).eval()
        assert snn.config.d_model == 16 and snn.config.decoder_ffn_dim == 24 and snn.config.T == T
        ref = ann(**batch, output_hidden_states=True, output_attentions=True)
        out = snn(**batch, output_hidden_states=True, output_attentions=True)
        assert torch.equal(out.logits, ref.logits)
        assert torch.equal(out.encoder_last_hidden_state, ref.encoder_last_hidden_state)
        for key in ("encoder_hidden_states", "decoder_hidden_states", "encoder_attentions",
                    "decoder_attentions", "cross_attentions"):
            assert len(out[key]) == len(ref[key])
            for x, y in zip(out[key], ref[key]):
                assert torch.equal(x, y), key
    assert torch.equal(ann.generate(batch["input_ids"], attention_mask=batch["attention_mask"], num_beams=3,
                                    max_new_tokens=6),
                       snn.generate(batch["input_ids"], attention_mask=batch["attention_mask"], num_beams=3,
                                    max_new_tokens=6))


def test_ann_twin_with_sdpa_matches_bart(batch):
    ann = bart("sdpa")
    snn = from_ann(ann, neuron="ann", T=4).eval()
    assert snn.config._attn_implementation == "sdpa"
    torch.testing.assert_close(snn(**batch).logits, ann(**batch).logits, rtol=1e-5, atol=1e-5)


def test_from_ann_refuses_non_bart(tmp_path):
    BertModel(BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(tmp_path / "bert")
    with pytest.raises(ValueError, match="model_type 'bart'"):
        from_ann(tmp_path / "bert")
    with pytest.raises(TypeError, match="BART model"):
        from_ann(3)


def test_shapes_and_outputs(batch):
    model = spiking(batch=batch)
    out = model(**batch, output_hidden_states=True, output_attentions=True)
    assert out.logits.shape == (3, 6, 40)
    assert out.encoder_last_hidden_state.shape == (3, 7, 16)
    assert len(out.encoder_hidden_states) == 3 and len(out.decoder_hidden_states) == 3
    assert out.encoder_attentions[0].shape == (3, 2, 7, 7)
    assert out.decoder_attentions[0].shape == (3, 4, 6, 6)
    assert out.cross_attentions[0].shape == (3, 4, 6, 7)
    # masked source positions get no cross-attention; no decoder position attends to a later one
    assert torch.all(out.cross_attentions[0][1, :, :, 5:] == 0)
    assert torch.all(out.decoder_attentions[1][0].triu(1) == 0)
    base = SpikeLMSeq2SeqModel(model.config).calibrate(**batch).eval()
    assert base(**batch).last_hidden_state.shape == (3, 6, 16)
    assert isinstance(model(**batch, return_dict=False), tuple)


def test_every_linear_of_encoder_and_decoder_is_spike_driven():
    model = spiking()
    linears = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    fed = {n for n, m in model.named_modules() if hasattr(m, "neuron")}
    assert linears - fed == {"lm_head"}  # the head reads the mean over T
    assert "model.decoder.layers.1.encoder_attn.k_proj" in fed and "model.encoder.layers.0.fc2" in fed
    assert len(fed) == 2 * (4 + 2) + 2 * (8 + 2)


@pytest.mark.parametrize("neuron", ["elastic_bi(k=2)", "ste_lif", "lif"])
def test_save_and_load_round_trip_is_exact(batch, tmp_path, neuron):
    model = spiking(neuron, batch=batch)
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "m").eval()
    assert type(loaded) is SpikeLMForConditionalGeneration and loaded.config.neuron == model.config.neuron
    state, again = model.state_dict(), loaded.state_dict()
    assert state.keys() == again.keys()
    assert all(torch.equal(state[k], again[k]) for k in state)
    assert torch.equal(model(**batch).logits, loaded(**batch).logits)
    assert torch.equal(loaded.lm_head.weight, loaded.model.shared.weight)  # tied


def test_resized_vocabulary_keeps_embeddings_head_and_bias_together(batch):
    model = spiking(batch=batch)
    model.resize_token_embeddings(45)
    assert model.final_logits_bias.shape == (1, 45) and model.config.vocab_size == 45
    assert model.lm_head.weight is model.model.shared.weight is model.model.decoder.embed_tokens.weight
    assert model(**batch).logits.shape == (3, 6, 45)


def test_auto_classes_build_the_spiking_model():
    config = AutoConfig.for_model("spikelm_seq2seq", **TINY, T=2)
    assert isinstance(config, SpikeLMSeq2SeqConfig)
    assert type(AutoModelForSeq2SeqLM.from_config(config)) is SpikeLMForConditionalGeneration


@pytest.mark.parametrize("neuron", ["elastic_bi(k=2)", "ste_lif"])
def test_decoder_is_causal(batch, neuron):
    model = spiking(neuron, batch=batch)
    inputs = {k: v for k, v in batch.items() if k != "decoder_attention_mask"}
    before = model(**inputs).logits
    changed = inputs["decoder_input_ids"].clone()
    changed[:, 3] = (changed[:, 3] + 5) % 40
    after = model(**{**inputs, "decoder_input_ids": changed}).logits
    assert torch.equal(before[:, :3], after[:, :3])
    assert not torch.allclose(before[:, 3:], after[:, 3:])


@pytest.mark.parametrize("neuron,T", [("elastic_bi(k=2)", 4), ("ste_lif", 3), ("psn", 2)])
def test_cached_decoding_equals_full_forward(batch, neuron, T):
    model = spiking(neuron, T, batch=batch)
    inputs = {k: v for k, v in batch.items() if k != "decoder_attention_mask"}
    full = model(**inputs, use_cache=False).logits
    encoder_outputs = model.get_encoder()(input_ids=inputs["input_ids"],
                                          attention_mask=inputs["attention_mask"])
    cache, steps = None, []
    for i in range(inputs["decoder_input_ids"].shape[1]):
        out = model(attention_mask=inputs["attention_mask"], encoder_outputs=encoder_outputs, cache=cache,
                    decoder_input_ids=inputs["decoder_input_ids"][:, i:i + 1], use_cache=True)
        cache = out.cache
        steps.append(out.logits)
    assert cache.get_seq_length() == 6
    assert cache.self_attention_cache.layers[0].keys.shape == (3, T * 4, 6, 4)  # [B, T*H, L, d]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("beams", [1, 3])
def test_generate_with_cache_equals_without(batch, beams):
    model = spiking(batch=batch)
    kwargs = dict(attention_mask=batch["attention_mask"], num_beams=beams, max_new_tokens=8, min_new_tokens=6,
                  do_sample=False)
    cached = model.generate(batch["input_ids"], use_cache=True, **kwargs)
    plain = model.generate(batch["input_ids"], use_cache=False, **kwargs)
    assert cached.shape[0] == 3 and cached.shape[1] >= 7
    assert torch.all(cached[:, 0] == model.config.decoder_start_token_id)
    assert torch.equal(cached, plain)


def test_greedy_generation_is_the_argmax_of_the_forward(batch):
    model = spiking(batch=batch)
    out = model.generate(batch["input_ids"], attention_mask=batch["attention_mask"], num_beams=1,
                         do_sample=False, max_new_tokens=5, min_new_tokens=5)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   decoder_input_ids=out[:, :-1]).logits
    logits[..., model.config.eos_token_id] = -float("inf")  # min_new_tokens suppresses the end
    assert out.shape == (3, 6)
    assert torch.equal(logits.argmax(-1), out[:, 1:])


def test_labels_are_shifted_into_decoder_inputs(batch):
    model = spiking(batch=batch)
    labels = batch["decoder_input_ids"][:, 1:].clone()
    labels[2, 3:] = -100
    shifted = model.prepare_decoder_input_ids_from_labels(labels)
    assert torch.equal(shifted[:, 0], torch.full((3,), 2))
    assert torch.equal(shifted[:2, 1:], labels[:2, :-1])
    assert torch.equal(shifted[2, 4:], torch.tensor([1]))  # -100 -> pad
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   decoder_input_ids=shifted,
                   decoder_attention_mask=labels != -100).logits
    assert torch.equal(out.logits, logits)
    keep = labels != -100
    expected = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(out.loss, expected)
    assert out.cache is None


def test_training_step_reaches_every_linear(batch):
    model = spiking(batch=batch).train()
    labels = batch["decoder_input_ids"][:, 1:]
    model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss.backward()
    for name, p in model.named_parameters():
        if name.endswith("proj.weight") or name.endswith("fc1.weight") or name.endswith("fc2.weight"):
            assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("fields,match", [
    ({"T": 0}, "T"),
    ({"neuron": "nope"}, "nope"),
    ({"neuron": "elastic_bi(T=3)", "T": 4}, "T=3"),
    ({"kv_neuron": 5}, "kv_neuron"),
    ({"spike_attention_kv": "yes"}, "spike_attention_kv"),
    ({"decoder_attention_heads": 5}, "decoder_attention_heads"),
    ({"is_encoder_decoder": False}, "is_encoder_decoder"),
])
def test_bad_config_raises_naming_the_field(fields, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SpikeLMSeq2SeqConfig(**{**TINY, **fields})


def test_bad_inputs_and_generation_arguments_raise(batch):
    model = spiking(batch=batch)
    with pytest.raises(ValueError, match="decoder_input_ids"):
        model(decoder_attention_mask=batch["decoder_attention_mask"],
              encoder_outputs=(torch.zeros(3, 7, 16),))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(**{**batch, "attention_mask": batch["attention_mask"][:, :4]})
    with pytest.raises(ValueError, match="decoder_attention_mask has shape"):
        model(**{**batch, "decoder_attention_mask": batch["decoder_attention_mask"][:2]})
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(input_ids=torch.full((1, 40), 5))
    with pytest.raises(ValueError, match="num_return_sequences"):
        model.generate(batch["input_ids"], num_beams=2, num_return_sequences=3, max_new_tokens=3)
    with pytest.raises(TypeError, match="EncoderDecoderCache"):
        model(**batch, cache=DynamicCache(), use_cache=True)
