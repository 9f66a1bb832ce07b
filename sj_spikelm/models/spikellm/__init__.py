"""SpikeLLM: post-training spiking of LLaMA-layout causal LMs with GIF neurons
(:mod:`.spikify`, :mod:`.gif_linear`)."""
from .gif_linear import GIFLinear
from .spikify import SpikifyConfig, channel_saliency, obs_saliency, spikify, spiking_summary

__all__ = ["GIFLinear", "SpikifyConfig", "channel_saliency", "obs_saliency", "spikify", "spiking_summary"]
