"""Spiking model families, one subpackage each (``configuration_*.py`` + ``modeling_*.py``,
registered with the ``transformers`` Auto classes on import), and the mechanism they share
(:mod:`.spiking`)."""
from .bispikclm import BiSpikCLMConfig, BiSpikCLMForCausalLM, BiSpikCLMModel
from .spikelm import (
    SpikeLMConfig,
    SpikeLMForMaskedLM,
    SpikeLMForSequenceClassification,
    SpikeLMModel,
    SpikeLMPreTrainedModel,
    from_ann,
)
from .spikelm_seq2seq import SpikeLMForConditionalGeneration, SpikeLMSeq2SeqConfig, SpikeLMSeq2SeqModel
from .spiking import SpikeLinear, SpikingPreTrainedModel

__all__ = ["BiSpikCLMConfig", "BiSpikCLMForCausalLM", "BiSpikCLMModel",
           "SpikeLMConfig", "SpikeLMForMaskedLM", "SpikeLMForSequenceClassification", "SpikeLMModel",
           "SpikeLMPreTrainedModel", "SpikeLinear", "SpikingPreTrainedModel", "from_ann"]
__all__ += ["SpikeLMForConditionalGeneration", "SpikeLMSeq2SeqConfig", "SpikeLMSeq2SeqModel"]
