"""The compute backend of the zoo neurons in a model: a runtime choice (``'torch'`` or
``'cupy'``), never an argument of a neuron, part of its spec or written into a saved config, so
a model saved while running on CuPy loads on a CPU-only machine."""
from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn

from .amplitude_node import AmplitudeSpikeNode


def _backend_nodes(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, AmplitudeSpikeNode)]


def set_backend(model: nn.Module, backend: str) -> int:
    """Set ``backend`` (``'torch'`` or ``'cupy'``) on every amplitude-coded zoo neuron inside
    ``model`` (elastic bi-spike, STE-LIF, fixed ternary; SpikingJelly's LIF / PSN and the ANN
    identity have no such switch and are left as they are); returns how many were switched.
    ``'cupy'`` without CuPy or CUDA raises ``RuntimeError`` naming what is missing."""
    nodes = _backend_nodes(model)
    for node in nodes:
        node.backend = backend
    return len(nodes)


@contextlib.contextmanager
def use_backend(model: nn.Module, backend: str) -> Iterator[nn.Module]:
    """``with use_backend(model, 'cupy'): ...`` runs ``model``'s neurons on ``backend`` inside
    the block and restores each neuron's previous backend afterwards (also on error)."""
    nodes = _backend_nodes(model)
    previous = [node.backend for node in nodes]
    try:
        set_backend(model, backend)
        yield model
    finally:
        for node, old in zip(nodes, previous):
            node.backend = old
