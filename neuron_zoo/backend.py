"""Switch the compute backend of every zoo neuron in a model."""
from __future__ import annotations

from torch import nn

from .amplitude_node import AmplitudeSpikeNode


def set_backend(model: nn.Module, backend: str) -> int:
    """Set ``backend`` (``'torch'`` or ``'cupy'``) on every amplitude-coded zoo neuron inside
    ``model`` (elastic bi-spike, STE-LIF, fixed ternary; SpikingJelly's LIF / PSN and the ANN
    identity have no such switch and are left as they are); returns how many were switched.
    ``'cupy'`` without CuPy or CUDA raises ``RuntimeError`` naming what is missing."""
    nodes = [m for m in model.modules() if isinstance(m, AmplitudeSpikeNode)]
    for node in nodes:
        node.backend = backend
    return len(nodes)
