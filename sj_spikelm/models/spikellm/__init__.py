"""SpikeLLM: post-training spiking of LLaMA-layout causal LMs with GIF neurons
(:mod:`.spikify`, :mod:`.gif_linear`, :mod:`.weight_quant`)."""
from .gif_linear import GIFLinear
from .spikify import (
    SUPPORTED_MODEL_TYPES,
    SpikifyConfig,
    channel_saliency,
    check_architecture,
    configure_activations,
    obs_saliency,
    spikify,
    spiking_summary,
    stored_saliency,
)
from .weight_quant import quantize_weight

__all__ = ["GIFLinear", "SUPPORTED_MODEL_TYPES", "SpikifyConfig", "channel_saliency", "check_architecture",
           "configure_activations", "obs_saliency", "quantize_weight", "spikify", "spiking_summary",
           "stored_saliency"]
