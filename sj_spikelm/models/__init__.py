"""Spiking model families, one subpackage each (``configuration_*.py`` + ``modeling_*.py``,
registered with the ``transformers`` Auto classes on import), and the mechanism they share
(:mod:`.spiking`)."""
from .bispikclm import BiSpikCLMConfig, BiSpikCLMForCausalLM, BiSpikCLMModel
from .folding import FoldedSpikeLinear, fold_amplitudes
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

__all__ = ["BiSpikCLMConfig", "BiSpikCLMForCausalLM", "BiSpikCLMModel", "FoldedSpikeLinear",
           "SpikeLMConfig", "SpikeLMForConditionalGeneration", "SpikeLMForMaskedLM",
           "SpikeLMForSequenceClassification", "SpikeLMModel", "SpikeLMPreTrainedModel",
           "SpikeLMSeq2SeqConfig", "SpikeLMSeq2SeqModel", "SpikeLinear", "SpikingPreTrainedModel",
           "fold_amplitudes", "from_ann"]
