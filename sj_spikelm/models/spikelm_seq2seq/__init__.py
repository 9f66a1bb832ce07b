"""SpikeLM as a spiking encoder-decoder (BART layout) for translation and summarization."""
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from .configuration_spikelm_seq2seq import SpikeLMSeq2SeqConfig
from .conversion import from_ann
from .modeling_spikelm_seq2seq import (
    SpikeLMForConditionalGeneration,
    SpikeLMSeq2SeqModel,
    SpikeLMSeq2SeqPreTrainedModel,
)

AutoConfig.register(SpikeLMSeq2SeqConfig.model_type, SpikeLMSeq2SeqConfig, exist_ok=True)
AutoModel.register(SpikeLMSeq2SeqConfig, SpikeLMSeq2SeqModel, exist_ok=True)
AutoModelForSeq2SeqLM.register(SpikeLMSeq2SeqConfig, SpikeLMForConditionalGeneration, exist_ok=True)

__all__ = ["SpikeLMForConditionalGeneration", "SpikeLMSeq2SeqConfig", "SpikeLMSeq2SeqModel",
           "SpikeLMSeq2SeqPreTrainedModel", "from_ann"]
