"""The one place where a job's config becomes a model: ``model: bert`` (the ANN, a Hugging Face
BERT) or ``model: spikelm`` (a spiking model of :mod:`sj_spikelm`, with ``neuron``, ``k``, ``T``).

``init_from`` picks the weights: a spiking checkpoint folder (``model_type`` of
``SpikeLMConfig``) is loaded with ``from_pretrained``; any other folder or hub name is an ANN
checkpoint, converted with ``sj_spikelm.from_ann`` for ``model: spikelm``; ``None`` builds a
fresh model from ``model_config`` (BERT fields, e.g. ``hidden_size``). ``model_overrides`` are
config fields applied on top of a checkpoint (e.g. ``hidden_dropout_prob``). ``neuron``, ``k``
and ``T`` left unset (None) mean the spiking checkpoint's own, else ``DEFAULT_NEURON`` /
``DEFAULT_T``; set to values that differ from a spiking checkpoint's, they raise ``ValueError``
(a trained spiking model is not silently given another neuron).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)
MODELS = ("bert", "spikelm")
HEADS = ("mlm", "classification")
DEFAULT_NEURON = "elastic_bi(k=2)"
DEFAULT_T = 4


def resolve_neuron(neuron: str, k: Optional[float] = None) -> str:
    """Canonical spec of ``neuron`` with ``k`` applied when given, e.g.
    ``("elastic_bi(reset='hard')", 3)`` -> ``"elastic_bi(k=3, reset='hard')"``."""
    import neuron_zoo

    if k is not None and not neuron_zoo.accepts_argument(neuron, "k"):
        raise ValueError(f"k={k} given, but neuron {neuron!r} has no argument 'k'")
    node = neuron_zoo.build_neuron(neuron, **({"k": k} if k is not None else {}))
    return neuron_zoo.neuron_spec(node)


def _checkpoint_model_type(name: str) -> Optional[str]:
    config = Path(name) / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("model_type")
    if Path(name).exists():
        raise FileNotFoundError(f"init_from={name!r} is a path without config.json")
    from transformers import PretrainedConfig

    return PretrainedConfig.get_config_dict(name)[0].get("model_type")


def build_model(cfg, head: str, num_labels: Optional[int] = None, vocab_size: Optional[int] = None,
                eager_attention: bool = False):
    """The model of ``cfg`` (fields ``model``, ``init_from``, ``neuron``, ``k``, ``T``,
    ``model_config``, ``model_overrides``) with an MLM head (``head='mlm'``) or a
    sequence-classification head with ``num_labels`` outputs (1 = regression).
    ``eager_attention`` makes a BERT return attention maps (for distillation)."""
    if head not in HEADS:
        raise ValueError(f"head={head!r}; accepted: {', '.join(HEADS)}")
    if cfg.model not in MODELS:
        raise ValueError(f"model={cfg.model!r}; accepted: {', '.join(MODELS)}")
    extra = dict(cfg.model_overrides)
    if head == "classification":
        if num_labels is None:
            raise ValueError("num_labels is required for head='classification'")
        extra["num_labels"] = num_labels
        if num_labels == 1:
            extra["problem_type"] = "regression"
    if cfg.model == "bert":
        if cfg.k is not None:
            raise ValueError(f"k={cfg.k} applies to model='spikelm' only")
        return _build_bert(cfg, head, extra, vocab_size, eager_attention)
    return _build_spikelm(cfg, head, extra, vocab_size)


def _build_bert(cfg, head, extra, vocab_size, eager_attention):
    import transformers as tf

    attn = {"attn_implementation": "eager"} if eager_attention else {}
    auto = tf.AutoModelForMaskedLM if head == "mlm" else tf.AutoModelForSequenceClassification
    if cfg.init_from:
        return auto.from_pretrained(cfg.init_from, **extra, **attn)
    fields = {**cfg.model_config, **extra}
    if vocab_size is not None:
        fields.setdefault("vocab_size", vocab_size)
    config = tf.BertConfig(**fields)
    cls = tf.BertForMaskedLM if head == "mlm" else tf.BertForSequenceClassification
    model = cls(config)
    if eager_attention:
        model.set_attn_implementation("eager")
    return model


def _build_spikelm(cfg, head, extra, vocab_size):
    import sj_spikelm as sl

    cls = sl.SpikeLMForMaskedLM if head == "mlm" else sl.SpikeLMForSequenceClassification
    if cfg.init_from and _checkpoint_model_type(cfg.init_from) == sl.SpikeLMConfig.model_type:
        saved = sl.SpikeLMConfig.from_pretrained(cfg.init_from)
        if cfg.neuron is not None or cfg.k is not None:
            wanted = resolve_neuron(cfg.neuron or saved.neuron, cfg.k)
            if wanted != resolve_neuron(saved.neuron):
                raise ValueError(f"neuron={wanted!r} differs from the spiking checkpoint's "
                                 f"{saved.neuron!r} ({cfg.init_from}); leave neuron and k unset to keep it")
        if cfg.T is not None and cfg.T != saved.T:
            raise ValueError(f"T={cfg.T} differs from the spiking checkpoint's T={saved.T} "
                             f"({cfg.init_from}); leave T unset to keep it")
        return cls.from_pretrained(cfg.init_from, **extra)
    spiking = {"neuron": resolve_neuron(cfg.neuron or DEFAULT_NEURON, cfg.k),
               "T": DEFAULT_T if cfg.T is None else cfg.T}
    if cfg.init_from:
        return sl.from_ann(cfg.init_from, model_class=cls, **spiking, **extra)
    fields = {**cfg.model_config, **extra, **spiking}
    if vocab_size is not None:
        fields.setdefault("vocab_size", vocab_size)
    return cls(sl.SpikeLMConfig(**fields))


def load_tokenizer(cfg):
    """The tokenizer of ``cfg.tokenizer``, else of ``cfg.init_from`` (folder or hub name)."""
    name = cfg.tokenizer or cfg.init_from
    if not name:
        raise ValueError("no tokenizer: set tokenizer (a folder or hub name) or init_from")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)
