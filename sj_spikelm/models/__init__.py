"""Spiking model families, one subpackage each (``configuration_*.py`` + ``modeling_*.py``,
registered with the ``transformers`` Auto classes on import), and the mechanism they share
(:mod:`.spiking`)."""
from .folding import FoldedSpikeLinear, fold_amplitudes
from .spikelm import (
    SpikeLMConfig,
    SpikeLMForMaskedLM,
    SpikeLMForSequenceClassification,
    SpikeLMModel,
    SpikeLMPreTrainedModel,
    from_ann,
)
from .spiking import SpikeLinear, SpikingPreTrainedModel

__all__ = ["SpikeLMConfig", "SpikeLMForMaskedLM", "SpikeLMForSequenceClassification", "SpikeLMModel",
           "SpikeLMPreTrainedModel", "SpikeLinear", "SpikingPreTrainedModel", "from_ann",
           "FoldedSpikeLinear", "fold_amplitudes"]
