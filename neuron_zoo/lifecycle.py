"""What a model does with its zoo neurons, the same for every neuron type: name them (so errors
say which one failed) and initialise their state when it initialises its weights."""
from __future__ import annotations

from torch import nn

from .calibration import CalibratedNeuron, _loaded


def is_neuron(module: nn.Module) -> bool:
    """Whether ``module`` is a zoo neuron: an instance of a registered neuron class or a
    :class:`~neuron_zoo.calibration.CalibratedNeuron`."""
    from .registry import registered_name

    return isinstance(module, CalibratedNeuron) or registered_name(module) is not None


def neuron_label(node: nn.Module) -> str:
    """How errors name ``node``: its spec (class name if it is not registered), plus the module
    name :func:`name_neurons` gave it, e.g. ``"elastic_bi(k=3.0) at bert.encoder.layer.0..."``."""
    from .registry import neuron_spec

    try:
        text = neuron_spec(node)
    except (ValueError, AttributeError):
        text = type(node).__name__
    name = getattr(node, "module_name", None)
    return f"{text} at {name}" if name else text


def name_neurons(model: nn.Module) -> int:
    """Set ``module_name`` (the qualified name in ``model``) on every zoo neuron in ``model``,
    used by their error messages; returns how many were named. A model calls it once built."""
    count = 0
    for name, module in model.named_modules():
        if name and is_neuron(module):
            module.module_name = name
            count += 1
    return count


def init_neuron_state(module: nn.Module) -> None:
    """The one rule a model's ``_init_weights(module)`` applies to zoo neurons (a no-op for any
    other module; not recursive, as ``_init_weights`` visits every module):

    * a :class:`~neuron_zoo.calibration.CalibratedNeuron` keeps and checks state that
      ``transformers``' ``from_pretrained`` loaded, and is cleared (uncalibrated) otherwise
      (:meth:`~neuron_zoo.calibration.CalibratedNeuron.init_calibration_state`);
    * a neuron with trainable parameters of its own (e.g. PSN's ``W`` and ``B``) is re-initialised
      by its ``reset_parameters()`` unless all of them were loaded (``from_pretrained`` also
      guards each ``torch.nn.init`` call against overwriting a loaded tensor)."""
    if not is_neuron(module):
        return
    if isinstance(module, CalibratedNeuron):
        module.init_calibration_state()
    reset_parameters = getattr(module, "reset_parameters", None)
    own = list(module.parameters(recurse=False))
    if reset_parameters is not None and own and not all(_loaded(p) for p in own):
        reset_parameters()
