"""Spiking transformers (SpikeLM) built from SpikingJelly multi-step containers, as Hugging Face
models: ``SpikeLMConfig``, ``SpikeLMModel``, ``SpikeLMForMaskedLM``,
``SpikeLMForSequenceClassification`` and ``from_ann`` (initialise from a BERT checkpoint).
Firing-rate monitoring lives in ``sj_spikelm.monitor``, the energy estimate in
``sj_spikelm.energy``."""
from .import_guard import hide_unloadable_packages

hide_unloadable_packages()

from transformers import (  # noqa: E402
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
)

from .configuration_spikelm import SpikeLMConfig  # noqa: E402
from .conversion import from_ann  # noqa: E402
from .modeling_spikelm import (  # noqa: E402
    SpikeLinear,
    SpikeLMForMaskedLM,
    SpikeLMForSequenceClassification,
    SpikeLMModel,
    SpikeLMPreTrainedModel,
)

AutoConfig.register(SpikeLMConfig.model_type, SpikeLMConfig, exist_ok=True)
AutoModel.register(SpikeLMConfig, SpikeLMModel, exist_ok=True)
AutoModelForMaskedLM.register(SpikeLMConfig, SpikeLMForMaskedLM, exist_ok=True)
AutoModelForSequenceClassification.register(SpikeLMConfig, SpikeLMForSequenceClassification, exist_ok=True)

__all__ = [
    "SpikeLMConfig", "SpikeLMForMaskedLM", "SpikeLMForSequenceClassification", "SpikeLMModel",
    "SpikeLMPreTrainedModel", "SpikeLinear", "from_ann", "hide_unloadable_packages",
]
