"""Spiking neurons for spike-driven language models, as SpikingJelly 2.x multi-step nodes.

``build_neuron("elastic_bi(k=2)")`` builds any of them by name; ``list_neurons()`` lists them.
Neurons with per-step state calibrated from data follow one protocol (:class:`CalibratedNeuron`);
``build_memoryless(spec, T)`` gives the form of a neuron that carries nothing across time steps;
the compute backend is a runtime choice (``set_backend``, ``use_backend``).
"""
from .amplitude_node import AmplitudeSpikeNode
from .ann import ANNNode
from .backend import set_backend, use_backend
from .calibration import (
                          CalibratedNeuron,
                          CalibrationError,
                          StepState,
                          calibration_report,
                          global_sum_count,
                          needs_calibration,
)
from .elastic_bi import ElasticBiNode
from .fixed_amplitude import STELIFNode, TernaryFixedNode
from .gif import GIFNode, gif_quantize
from .lifecycle import init_neuron_state, is_neuron, name_neurons, neuron_label
from .masking import valid_mask
from .memoryless import build_memoryless
from .registry import (
                       REQUIRED,
                       accepts_argument,
                       build_neuron,
                       canonical_spec,
                       list_neurons,
                       neuron_name,
                       neuron_spec,
                       parse_spec,
                       register_neuron,
)
from .soft_lif import SoftResetLIFNode
from .spike_function import fire_levels, straight_through_spike
from .spike_stats import SpikeStatsMixin
from .spikingjelly_nodes import PSN, LIFNode

__all__ = [
    "GIFNode", "gif_quantize",
    "AmplitudeSpikeNode", "ANNNode", "CalibratedNeuron", "CalibrationError", "ElasticBiNode", "LIFNode",
    "PSN", "REQUIRED", "STELIFNode", "SoftResetLIFNode",
    "SpikeStatsMixin", "StepState", "TernaryFixedNode", "accepts_argument",
    "build_memoryless", "build_neuron", "calibration_report", "canonical_spec", "fire_levels",
    "global_sum_count", "init_neuron_state", "is_neuron", "list_neurons", "name_neurons", "needs_calibration",
    "neuron_label", "neuron_name", "neuron_spec", "parse_spec", "register_neuron", "set_backend",
    "straight_through_spike", "use_backend", "valid_mask",
]
