"""SpikeLM encoders (Xing et al., ICML 2024): BERT layout, elastic bi-spike neurons."""
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
)

from .configuration_spikelm import SpikeLMConfig
from .conversion import from_ann
from .modeling_spikelm import (
    SpikeLMForMaskedLM,
    SpikeLMForSequenceClassification,
    SpikeLMModel,
    SpikeLMPreTrainedModel,
)

AutoConfig.register(SpikeLMConfig.model_type, SpikeLMConfig, exist_ok=True)
AutoModel.register(SpikeLMConfig, SpikeLMModel, exist_ok=True)
AutoModelForMaskedLM.register(SpikeLMConfig, SpikeLMForMaskedLM, exist_ok=True)
AutoModelForSequenceClassification.register(SpikeLMConfig, SpikeLMForSequenceClassification, exist_ok=True)

__all__ = ["SpikeLMConfig", "SpikeLMForMaskedLM", "SpikeLMForSequenceClassification", "SpikeLMModel",
           "SpikeLMPreTrainedModel", "from_ann"]
