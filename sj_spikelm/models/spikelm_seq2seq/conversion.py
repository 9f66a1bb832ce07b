"""Initialise a spiking encoder-decoder from a Hugging Face BART checkpoint, weight by weight."""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Union

import transformers
from transformers import AutoConfig, BartConfig, PretrainedConfig, PreTrainedModel

from ..spikelm.conversion import copy_ann_weights
from ..spiking import NeuronSpec
from .configuration_spikelm_seq2seq import SpikeLMSeq2SeqConfig
from .modeling_spikelm_seq2seq import SpikeLMForConditionalGeneration

logger = logging.getLogger(__name__)

_COMMON_FIELDS = {f.name for f in dataclasses.fields(PretrainedConfig)}
BART_FIELDS = tuple(f.name for f in dataclasses.fields(BartConfig) if f.name not in _COMMON_FIELDS)
"""The architecture fields copied from the ANN's config."""
TOKEN_FIELDS = ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id",
                "forced_eos_token_id", "tie_word_embeddings")


def load_bart(ann: Union[str, os.PathLike, PreTrainedModel]) -> PreTrainedModel:
    """``ann`` itself if it is a model; else the BART model in that local folder or hub
    repository, as ``BartForConditionalGeneration``."""
    if isinstance(ann, PreTrainedModel):
        return ann
    if not isinstance(ann, (str, os.PathLike)):
        raise TypeError(f"ann={ann!r} must be a transformers BART model, a local folder or a hub name")
    config = AutoConfig.from_pretrained(ann)
    if config.model_type != "bart":
        raise ValueError(f"{ann}: model_type={config.model_type!r}; from_ann needs a BART checkpoint "
                         "(model_type 'bart')")
    return transformers.BartForConditionalGeneration.from_pretrained(ann, config=config)


def from_ann(ann: Union[str, os.PathLike, PreTrainedModel], neuron: NeuronSpec = "elastic_bi(k=2)",
             T: int = 4, **config_overrides) -> SpikeLMForConditionalGeneration:
    """A :class:`SpikeLMForConditionalGeneration` initialised from a BART (a
    ``BartForConditionalGeneration`` / ``BartModel`` instance, a local folder or a hub name):
    the config takes BART's architecture and special-token fields, then ``T``, ``neuron`` and
    ``config_overrides``; every BART tensor is copied to the tensor of the same name (a BART
    tensor without a counterpart raises ``ValueError``). With ``neuron='ann'`` the result
    computes BART (bit for bit at ``T=1`` or a power of two in eager attention). Neurons start
    uncalibrated."""
    ann = load_bart(ann)
    if not isinstance(ann.config, BartConfig) or ann.config.model_type != "bart":
        raise ValueError(f"{type(ann).__name__} (model_type {ann.config.model_type!r}) is not a BART model")
    source = ann.config
    fields = {name: getattr(source, name) for name in BART_FIELDS + TOKEN_FIELDS if hasattr(source, name)}
    config = SpikeLMSeq2SeqConfig(**{**fields, "T": T, "neuron": neuron, **config_overrides})
    config._attn_implementation = source._attn_implementation
    model = SpikeLMForConditionalGeneration(config)
    report = copy_ann_weights(ann, model)
    for kind in ("unused", "fresh"):
        if report[kind]:
            logger.warning("from_ann: %s tensors: %s", kind, ", ".join(report[kind]))
    return model
