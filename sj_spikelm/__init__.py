"""sj_spikelm: spiking language models built from SpikingJelly multi-step neurons
(:mod:`neuron_zoo`) as Hugging Face models, one family per subpackage of
:mod:`sj_spikelm.models`, trained with ``transformers.Trainer`` (:mod:`sj_spikelm.train`).
Firing-rate monitoring lives in :mod:`sj_spikelm.monitor`, the energy estimate in
:mod:`sj_spikelm.energy`, ablation grids in :mod:`sj_spikelm.grid`."""
from .models import (
    BiSpikCLMConfig,
    BiSpikCLMForCausalLM,
    BiSpikCLMModel,
    SpikeLinear,
    SpikeLMConfig,
    SpikeLMForConditionalGeneration,
    SpikeLMForMaskedLM,
    SpikeLMForSequenceClassification,
    SpikeLMModel,
    SpikeLMPreTrainedModel,
    SpikeLMSeq2SeqConfig,
    SpikeLMSeq2SeqModel,
    SpikingPreTrainedModel,
    from_ann,
)

__all__ = [
    "BiSpikCLMConfig", "BiSpikCLMForCausalLM", "BiSpikCLMModel",
    "SpikeLMConfig", "SpikeLMForMaskedLM", "SpikeLMForSequenceClassification", "SpikeLMModel",
    "SpikeLMPreTrainedModel", "SpikeLinear", "SpikingPreTrainedModel", "from_ann",
]
__all__ += ["SpikeLMForConditionalGeneration", "SpikeLMSeq2SeqConfig", "SpikeLMSeq2SeqModel"]
