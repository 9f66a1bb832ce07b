"""Config -> model mapping (build_model): the ANN (Hugging Face BERT) and the spiking models."""
import pytest
import torch
from tiny import TINY_BERT

from sj_spikelm.train import finetune
from sj_spikelm.train.arguments import check_values
from sj_spikelm.train.build import build_model, describe_model, resolve_neuron


def cfg(**fields):
    """(ModelArguments, SpikingArguments) of a tiny BERT with ``fields``."""
    model, spiking, *_ = check_values(finetune.ARGUMENTS, {"model": "bert", "model_config": dict(TINY_BERT),
                                                           **fields})
    return model, spiking


def test_resolve_neuron_applies_k():
    assert resolve_neuron("elastic_bi", 3) == "elastic_bi(k=3)"
    assert resolve_neuron("elastic_bi(k=2, reset='hard')", 4.0) == "elastic_bi(k=4.0, reset='hard')"
    assert resolve_neuron("elastic_bi(k=2)", None) == "elastic_bi"  # default k, canonical spec
    with pytest.raises(ValueError, match="k=3 given, but neuron 'ste_lif' has no argument 'k'"):
        resolve_neuron("ste_lif", 3)


def test_fresh_bert_heads():
    from transformers import BertForMaskedLM, BertForSequenceClassification

    clf = build_model(*cfg(), "classification", num_labels=3, vocab_size=40)
    assert isinstance(clf, BertForSequenceClassification) and clf.config.num_labels == 3
    assert clf.config.vocab_size == 40 and clf.config.hidden_size == 32
    no_dropout = cfg(model_overrides={"hidden_dropout_prob": 0.0})
    reg = build_model(*no_dropout, "classification", num_labels=1, vocab_size=40)
    assert reg.config.problem_type == "regression" and reg.config.hidden_dropout_prob == 0.0
    out = reg(torch.tensor([[2, 5, 3]]), labels=torch.tensor([0.5]))
    assert out.logits.shape == (1, 1) and out.loss.shape == ()
    mlm = build_model(*cfg(), "mlm", vocab_size=40, eager_attention=True)
    assert isinstance(mlm, BertForMaskedLM) and mlm.config._attn_implementation == "eager"


def test_bert_from_a_checkpoint_folder(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=40, **TINY_BERT)).save_pretrained(tmp_path / "ann")
    model = build_model(*cfg(init_from=str(tmp_path / "ann")), "classification", num_labels=2)
    assert model.config.num_labels == 2 and model.config.vocab_size == 40


def test_bad_choices_are_named():
    with pytest.raises(ValueError, match="head='lm'"):
        build_model(*cfg(), "lm")
    with pytest.raises(ValueError, match="k given, but they apply to model='spikelm' only"):
        build_model(*cfg(k=3.0), "mlm", vocab_size=40)
    with pytest.raises(ValueError, match="num_labels is required"):
        build_model(*cfg(), "classification")


def test_spikelm_from_ann_and_fresh(tmp_path):
    from transformers import BertConfig, BertModel

    import sj_spikelm as sl

    BertModel(BertConfig(vocab_size=40, **TINY_BERT)).save_pretrained(tmp_path / "ann")
    model = build_model(*cfg(model="spikelm", init_from=str(tmp_path / "ann"), neuron="elastic_bi", k=3, T=2),
                        "classification", num_labels=2)
    assert isinstance(model, sl.SpikeLMForSequenceClassification)
    assert model.config.T == 2 and model.config.neuron == "elastic_bi(k=3.0)" and model.config.num_labels == 2
    mlm = build_model(*cfg(model="spikelm", init_from=str(tmp_path / "ann"), T=1), "mlm")  # pooler dropped
    assert isinstance(mlm, sl.SpikeLMForMaskedLM)
    ann = BertModel.from_pretrained(tmp_path / "ann")
    copied = mlm.bert.encoder.layer[1].output.dense.weight
    assert torch.equal(copied, ann.encoder.layer[1].output.dense.weight)
    fresh = build_model(*cfg(model="spikelm", neuron="ste_lif", T=1), "mlm", vocab_size=40)
    assert isinstance(fresh, sl.SpikeLMForMaskedLM) and fresh.config.hidden_size == 32
    fresh.save_pretrained(tmp_path / "spiking")
    again = build_model(*cfg(model="spikelm", init_from=str(tmp_path / "spiking"), neuron="ste_lif", T=1),
                        "mlm")
    assert isinstance(again, sl.SpikeLMForMaskedLM)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), again.state_dict().values()))
    kept = build_model(*cfg(model="spikelm", init_from=str(tmp_path / "spiking")), "mlm")  # fields unset
    assert kept.config.neuron == "ste_lif" and kept.config.T == 1
    with pytest.raises(ValueError, match="neuron='elastic_bi' differs from the spiking checkpoint's"):
        build_model(*cfg(model="spikelm", init_from=str(tmp_path / "spiking"), neuron="elastic_bi"), "mlm")
    with pytest.raises(ValueError, match="T=4 differs from the spiking checkpoint's T=1"):
        build_model(*cfg(model="spikelm", init_from=str(tmp_path / "spiking"), T=4), "mlm")



def test_the_ann_path_refuses_a_spiking_checkpoint(tmp_path):
    """model='bert' must train the ANN: with a spiking checkpoint the Auto classes would quietly
    build the spiking model and the result would be labelled as the ANN."""
    fresh = build_model(*cfg(model="spikelm", neuron="ste_lif", T=1), "classification", num_labels=2,
                        vocab_size=40)
    fresh.save_pretrained(tmp_path / "spiking")
    with pytest.raises(ValueError, match="model='bert' trains the ANN, but init_from=.* is a spiking"):
        build_model(*cfg(init_from=str(tmp_path / "spiking")), "classification", num_labels=2)
    from sj_spikelm import BiSpikCLMConfig, BiSpikCLMForCausalLM

    causal = BiSpikCLMConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32, max_position_embeddings=16, T=1)
    BiSpikCLMForCausalLM(causal).save_pretrained(tmp_path / "causal")
    with pytest.raises(ValueError, match="model='bert' trains the ANN, but init_from=.* is a spiking"):
        build_model(*cfg(init_from=str(tmp_path / "causal")), "classification", num_labels=2)
    assert describe_model(fresh) == {"class": "SpikeLMForSequenceClassification", "model_type": "spikelm",
                                     "neuron": "ste_lif", "T": 1}
    ann = build_model(*cfg(), "classification", num_labels=2, vocab_size=40)
    assert describe_model(ann) == {"class": "BertForSequenceClassification", "model_type": "bert"}
