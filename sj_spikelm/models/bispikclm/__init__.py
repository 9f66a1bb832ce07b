"""BiSpikCLM (Guo et al., 2026) and SpikeLM's decoder: one causal spiking LM family."""
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_bispikclm import BiSpikCLMConfig
from .modeling_bispikclm import BiSpikCLMForCausalLM, BiSpikCLMModel, BiSpikCLMPreTrainedModel

AutoConfig.register(BiSpikCLMConfig.model_type, BiSpikCLMConfig, exist_ok=True)
AutoModel.register(BiSpikCLMConfig, BiSpikCLMModel, exist_ok=True)
AutoModelForCausalLM.register(BiSpikCLMConfig, BiSpikCLMForCausalLM, exist_ok=True)

__all__ = ["BiSpikCLMConfig", "BiSpikCLMForCausalLM", "BiSpikCLMModel", "BiSpikCLMPreTrainedModel"]
