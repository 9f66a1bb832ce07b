"""The one place where a job's arguments become a model: ``model: bert`` (the ANN, a Hugging Face
BERT) or ``model: spikelm`` (a spiking model of :mod:`sj_spikelm`, with ``neuron``, ``k``, ``T``).

``init_from`` picks the weights: a spiking checkpoint folder (``model_type`` of a spiking family)
is loaded with ``from_pretrained``; any other folder or hub name is an ANN checkpoint, converted
with ``sj_spikelm.from_ann`` for ``model: spikelm``; ``None`` builds a fresh model from
``model_config`` (BERT fields, e.g. ``hidden_size``). ``model_overrides`` are config fields
applied on top of a checkpoint (e.g. ``hidden_dropout_prob``). ``neuron``, ``k`` and ``T`` left
unset (None) mean the spiking checkpoint's own, else ``DEFAULT_NEURON`` / ``DEFAULT_T``; set to
values that differ from a spiking checkpoint's, they raise ``ValueError`` (a trained spiking
model is not silently given another neuron). ``model: bert`` with a spiking checkpoint raises
too (the Auto classes would otherwise quietly build the spiking model).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, Optional

log = logging.getLogger(__name__)
HEADS = ("mlm", "classification")
DEFAULT_NEURON = "elastic_bi(k=2)"
DEFAULT_T = 4


def resolve_neuron(neuron: str, k: Optional[float] = None) -> str:
    """Canonical spec of ``neuron`` with ``k`` applied when given, e.g.
    ``("elastic_bi(reset='hard')", 3)`` -> ``"elastic_bi(k=3, reset='hard')"``."""
    import neuron_zoo

    if k is not None and not neuron_zoo.accepts_argument(neuron, "k"):
        raise ValueError(f"k={k} given, but neuron {neuron!r} has no argument 'k'")
    return neuron_zoo.canonical_spec(neuron, **({"k": k} if k is not None else {}))


def checkpoint_model_type(name: str) -> Optional[str]:
    """``model_type`` in the ``config.json`` of a local folder or hub repository."""
    config = Path(name) / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("model_type")
    if Path(name).exists():
        raise FileNotFoundError(f"init_from={name!r} is a path without config.json")
    from transformers import PretrainedConfig

    return PretrainedConfig.get_config_dict(name)[0].get("model_type")


def spiking_model_types() -> Dict[str, Any]:
    """``{model_type: config class}`` of every spiking family in :mod:`sj_spikelm.models`."""
    import sj_spikelm as sl

    return {cls.model_type: cls for cls in (sl.SpikeLMConfig, sl.SpikeLMSeq2SeqConfig, sl.BiSpikCLMConfig)}


def check_model_fields(model_args, spiking) -> None:
    """``ValueError`` for spiking fields given to the ANN (``model: bert``), which has none."""
    if model_args.model == "bert":
        given = [name for name in ("neuron", "k", "T") if getattr(spiking, name) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} given, but they apply to model='spikelm' only "
                             "(model='bert' is the ANN)")


def build_model(model_args, spiking, head: str, num_labels: Optional[int] = None,
                vocab_size: Optional[int] = None, eager_attention: bool = False):
    """The model of ``model_args`` (:class:`~.arguments.ModelArguments`) and ``spiking``
    (:class:`~.arguments.SpikingArguments`) with an MLM head (``head='mlm'``) or a
    sequence-classification head with ``num_labels`` outputs (1 = regression).
    ``eager_attention`` makes a BERT return attention maps (for distillation)."""
    if head not in HEADS:
        raise ValueError(f"head={head!r}; accepted: {', '.join(HEADS)}")
    extra = dict(model_args.model_overrides)
    if head == "classification":
        if num_labels is None:
            raise ValueError("num_labels is required for head='classification'")
        extra["num_labels"] = num_labels
        if num_labels == 1:
            extra["problem_type"] = "regression"
    check_model_fields(model_args, spiking)
    saved_type = checkpoint_model_type(model_args.init_from) if model_args.init_from else None
    if model_args.model == "bert":
        if saved_type in spiking_model_types():
            raise ValueError(f"model='bert' trains the ANN, but init_from={model_args.init_from!r} is a "
                             f"spiking checkpoint (model_type {saved_type!r}); use model='spikelm' for it, "
                             "or an ANN checkpoint")
        return _build_bert(model_args, head, extra, vocab_size, eager_attention)
    return _build_spikelm(model_args, spiking, head, extra, vocab_size, saved_type)


def _build_bert(model_args, head, extra, vocab_size, eager_attention):
    import transformers as tf

    attn = {"attn_implementation": "eager"} if eager_attention else {}
    auto = tf.AutoModelForMaskedLM if head == "mlm" else tf.AutoModelForSequenceClassification
    if model_args.init_from:
        return auto.from_pretrained(model_args.init_from, **extra, **attn)
    fields = {**model_args.model_config, **extra}
    if vocab_size is not None:
        fields.setdefault("vocab_size", vocab_size)
    config = tf.BertConfig(**fields, **attn)
    cls = tf.BertForMaskedLM if head == "mlm" else tf.BertForSequenceClassification
    return cls(config)


def _build_spikelm(model_args, spiking, head, extra, vocab_size, saved_type):
    import sj_spikelm as sl

    cls = sl.SpikeLMForMaskedLM if head == "mlm" else sl.SpikeLMForSequenceClassification
    if saved_type == sl.SpikeLMConfig.model_type:
        saved = sl.SpikeLMConfig.from_pretrained(model_args.init_from)
        check_same_spiking(saved, spiking, model_args.init_from)
        return cls.from_pretrained(model_args.init_from, **extra)
    fields = {"neuron": resolve_neuron(spiking.neuron or DEFAULT_NEURON, spiking.k),
              "T": DEFAULT_T if spiking.T is None else spiking.T}
    if model_args.init_from:
        return sl.from_ann(model_args.init_from, model_class=cls, **fields, **extra)
    fields = {**model_args.model_config, **extra, **fields}
    if vocab_size is not None:
        fields.setdefault("vocab_size", vocab_size)
    return cls(sl.SpikeLMConfig(**fields))


def check_same_spiking(saved, spiking, init_from: str) -> None:
    """A spiking checkpoint (config ``saved``) loads as saved: a requested ``neuron`` / ``k`` /
    ``T`` that differs from it raises, naming both."""
    if spiking.neuron is not None or spiking.k is not None:
        wanted = resolve_neuron(spiking.neuron or saved.neuron, spiking.k)
        if wanted != resolve_neuron(saved.neuron):
            raise ValueError(f"neuron={wanted!r} differs from the spiking checkpoint's {saved.neuron!r} "
                             f"({init_from}); leave neuron and k unset to keep it")
    if spiking.T is not None and spiking.T != saved.T:
        raise ValueError(f"T={spiking.T} differs from the spiking checkpoint's T={saved.T} "
                         f"({init_from}); leave T unset to keep it")


def describe_model(model) -> Dict[str, Any]:
    """What actually runs, for labelling results: class, ``model_type``, and for a spiking model
    its neuron and ``T``."""
    config = model.config
    out = {"class": type(model).__name__, "model_type": config.model_type}
    for key in ("neuron", "T"):
        if hasattr(config, key):
            out[key] = getattr(config, key)
    return out


def load_tokenizer(model_args):
    """The tokenizer of ``model_args.tokenizer``, else of ``init_from`` (folder or hub name)."""
    name = model_args.tokenizer or model_args.init_from
    if not name:
        raise ValueError("no tokenizer: set tokenizer (a folder or hub name) or init_from")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)
