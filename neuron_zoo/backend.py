"""Switch the compute backend of every zoo neuron in a model."""
from __future__ import annotations

from torch import nn

from .amplitude_node import AmplitudeSpikeNode


def set_backend(model: nn.Module, backend: str) -> int:
    """Set ``backend`` on every amplitude-coded zoo neuron inside ``model`` (checked against
    each neuron's ``supported_backends``); returns how many neurons were switched."""
    nodes = [m for m in model.modules() if isinstance(m, AmplitudeSpikeNode)]
    for node in nodes:
        node.backend = backend
    return len(nodes)
