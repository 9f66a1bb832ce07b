"""Spiking neurons for spike-driven language models, as SpikingJelly 2.x multi-step nodes.

``build_neuron("elastic_bi(k=2)")`` builds any of them by name; ``list_neurons()`` lists them.
"""
from .amplitude_node import AmplitudeSpikeNode
from .ann import ANNNode
from .backend import set_backend
from .elastic_bi import ElasticBiNode
from .fixed_amplitude import STELIFNode, TernaryFixedNode
from .masking import valid_mask
from .registry import (
                       REQUIRED,
                       accepts_argument,
                       build_neuron,
                       list_neurons,
                       neuron_name,
                       neuron_spec,
                       parse_spec,
                       register_neuron,
)
from .spike_function import fire_levels, straight_through_spike
from .spike_stats import SpikeStatsMixin
from .spikingjelly_nodes import PSN, LIFNode

__all__ = [
    "AmplitudeSpikeNode", "ANNNode", "ElasticBiNode", "LIFNode", "PSN", "REQUIRED", "STELIFNode",
    "SpikeStatsMixin", "TernaryFixedNode", "accepts_argument", "build_neuron", "fire_levels",
    "list_neurons", "neuron_name", "neuron_spec", "parse_spec", "register_neuron", "set_backend",
    "straight_through_spike", "valid_mask",
]
