"""The memoryless form of a neuron: the same kind of neuron, carrying no state from one time step
to the next, so its output at step ``t`` depends on its input at step ``t`` only. SpikeLM spikes
the attention's keys and values this way (the spiking K/V of every neuron type compare like with
like).

Each neuron class states its rule as the class attribute ``memoryless_arguments``: the constructor
arguments that remove the carried state, as a dict, or a function of the neuron's arguments
returning that dict. The built-in rules:

* ``elastic_bi``, ``ste_lif``, ``ternary_fixed``: ``decay=0``, so ``m[t] = 0 * v[t-1] + x[t] = x[t]``
  exactly (Eq. 13 without the leak term);
* ``lif``: the ``tau -> 1`` limit ``H[t] = X[t]``, ``S[t] = Heaviside(X[t] - V_th)``. SpikingJelly
  refuses ``tau <= 1`` (its constructor asserts ``tau > 1`` and its kernels check it), so this is
  ``decay_input=False, stepwise=True``: each step is run alone from the reset membrane,
  ``H = V - V / tau + X = 0 - 0 + X``, exactly ``X[t]`` (and no gradient to earlier steps);
* ``psn``: ``stepwise=True``, one ``PSN(T=1)`` (a scalar weight and bias) applied to each step
  separately, the steps folded into the batch;
* ``ann``: the identity already carries nothing (no arguments).

A class without ``memoryless_arguments`` has no memoryless form: :func:`build_memoryless` raises
naming it (give the class the attribute, or configure the K/V neuron explicitly).
"""
from __future__ import annotations

from typing import Optional

from torch import nn

from .registry import NeuronSpec, _lookup, accepts_argument, build_neuron, spec_arguments


def build_memoryless(spec: NeuronSpec, T: Optional[int], channels: Optional[int] = None) -> nn.Module:
    """A fresh neuron of ``spec``'s kind (string or registered instance) that carries no state
    across time steps, built with ``T`` (and the input width ``channels``, if given) when it
    takes one (a different ``T`` in the spec raises); see the module docstring for each
    neuron's rule."""
    name, kwargs = spec_arguments(spec)
    cls = _lookup(name)
    rule = getattr(cls, "memoryless_arguments", None)
    if rule is None:
        raise ValueError(
            f"neuron {name!r} ({cls.__name__}) declares no memoryless form; give the class an attribute "
            "memoryless_arguments (the constructor arguments that remove the state carried across time "
            "steps, e.g. {'decay': 0.0}, or a function of its arguments returning them), or set the "
            "key/value neuron explicitly (kv_neuron=...)")
    overrides = dict(rule(dict(kwargs)) if callable(rule) else rule)
    if accepts_argument(name, "T"):
        if kwargs.get("T", T) != T:
            raise ValueError(f"neuron spec {spec!r} sets T={kwargs['T']} but T={T} was asked for")
        overrides.setdefault("T", T)
    if channels is not None and accepts_argument(name, "channels"):
        overrides["channels"] = channels
    return build_neuron(spec, **overrides)
