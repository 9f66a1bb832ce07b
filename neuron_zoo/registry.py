"""Build any zoo neuron from a spec string such as ``"elastic_bi(k=3, reset='hard')"``, so one
config string swaps the neuron everywhere. Specs are parsed with ``ast`` (no ``eval``)."""
from __future__ import annotations

import ast
import copy
import inspect
from typing import Any, Dict, Tuple, Type, Union

from torch import nn

from .ann import ANNNode
from .elastic_bi import ElasticBiNode
from .fixed_amplitude import STELIFNode, TernaryFixedNode
from .gif import GIFNode
from .soft_lif import SoftResetLIFNode
from .spikingjelly_nodes import PSN, LIFNode


class _Required:
    def __repr__(self) -> str:
        return "<required>"


REQUIRED = _Required()
"""Marks, in :func:`list_neurons`, an argument that has no default (e.g. ``psn``'s ``T``)."""

_REGISTRY: Dict[str, Type[nn.Module]] = {}

NeuronSpec = Union[str, nn.Module]


def register_neuron(name: str, cls: Type[nn.Module]) -> Type[nn.Module]:
    """Make ``cls`` buildable as ``name(...)``; its constructor's keyword arguments are the
    spec's accepted arguments."""
    if not name.isidentifier():
        raise ValueError(f"neuron name {name!r} must be a Python identifier")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"neuron name {name!r} is already registered for {_REGISTRY[name].__name__}")
    _REGISTRY[name] = cls
    return cls


def _defaults(cls: Type[nn.Module]) -> Dict[str, Any]:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return {p.name: REQUIRED if p.default is inspect.Parameter.empty else p.default
            for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def list_neurons() -> Dict[str, Dict[str, Any]]:
    """``{name: {argument: default}}`` for every registered neuron."""
    return {name: _defaults(cls) for name, cls in _REGISTRY.items()}


def parse_spec(spec: str) -> Tuple[str, Dict[str, Any]]:
    """Split ``"name(arg=literal, ...)"`` into ``(name, {arg: value})`` without ``eval``."""
    if not isinstance(spec, str):
        raise TypeError(f"neuron spec must be a string, got {type(spec).__name__}")
    form = "a neuron spec is 'name' or 'name(arg=value, ...)' with literal values"
    try:
        node = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError as err:
        raise ValueError(f"cannot parse neuron spec {spec!r}: {err.msg}; {form}") from None
    if isinstance(node, ast.Name):
        return node.id, {}
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise ValueError(f"cannot parse neuron spec {spec!r}; {form}")
    if node.args or any(kw.arg is None for kw in node.keywords):
        raise ValueError(f"neuron spec {spec!r} must pass arguments by keyword; {form}")
    kwargs = {}
    for kw in node.keywords:
        if kw.arg in kwargs:
            raise ValueError(f"argument {kw.arg!r} is given twice in neuron spec {spec!r}; "
                             "give each argument once")
        try:
            kwargs[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            raise ValueError(
                f"argument {kw.arg!r} in neuron spec {spec!r} is not a literal; {form}") from None
    return node.func.id, kwargs


def _lookup(name: str) -> Type[nn.Module]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown neuron {name!r}; registered neurons: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def _check_arguments(name: str, cls: Type[nn.Module], kwargs: Dict[str, Any]) -> None:
    accepted = _defaults(cls)
    for arg in kwargs:
        if arg not in accepted:
            raise ValueError(f"neuron {name!r} has no argument {arg!r}; accepted arguments: "
                             f"{', '.join(accepted) or 'none'}")
    missing = [a for a, d in accepted.items() if d is REQUIRED and a not in kwargs]
    if missing:
        raise ValueError(f"neuron {name!r} needs argument(s) {', '.join(missing)}, "
                         f"e.g. '{name}({missing[0]}=4)'")


def registered_name(node: nn.Module):
    """The registry name of ``node``'s class, or None if it is not registered."""
    for name, cls in _REGISTRY.items():
        if type(node) is cls:
            return name
    return None


def neuron_name(node: nn.Module) -> str:
    """The registry name of a zoo neuron instance (``ValueError`` if its class is not registered)."""
    name = registered_name(node)
    if name is None:
        raise ValueError(f"{type(node).__name__} is not a registered neuron; "
                         f"registered: {', '.join(_REGISTRY)}")
    return name


RUNTIME_ARGUMENTS = ("step_mode", "backend")
"""Arguments that are runtime choices, never part of a spec: the step mode (set by the model,
e.g. ``functional.set_step_mode``) and a compute backend (``set_backend`` / ``use_backend``)."""


LAYER_ARGUMENTS = ("channels",)
"""Arguments a model sets per layer, never part of a spec: the input width ``channels`` of a
neuron with per-channel state (``elastic_bi(amplitude='channel')``)."""


def _format_spec(name: str, kwargs: Dict[str, Any]) -> str:
    defaults = _defaults(_lookup(name))
    left_out = RUNTIME_ARGUMENTS + LAYER_ARGUMENTS
    args = [f"{k}={v!r}" for k, v in kwargs.items() if k not in left_out and defaults.get(k) != v]
    return f"{name}({', '.join(args)})" if args else name


def neuron_spec(node: nn.Module) -> str:
    """The spec string that rebuilds ``node``'s configuration, e.g. ``"elastic_bi(k=3.0)"``
    (arguments equal to their defaults, :data:`RUNTIME_ARGUMENTS` and :data:`LAYER_ARGUMENTS`
    are left out), so a
    spec saved in a model config is portable."""
    return _format_spec(neuron_name(node), node.init_kwargs)


def canonical_spec(spec: NeuronSpec, **overrides) -> str:
    """``spec`` (string or registered instance) with ``overrides`` applied, written like
    :func:`neuron_spec`, without building the neuron: names and arguments are checked
    (``ValueError`` as in :func:`build_neuron`), values only when a neuron is built (e.g. with
    its model's ``T``, which ``alpha='learnable'`` needs)."""
    name, kwargs = spec_arguments(spec)
    kwargs.update(overrides)
    _check_arguments(name, _lookup(name), kwargs)
    return _format_spec(name, kwargs)


def build_neuron(spec: NeuronSpec, **overrides) -> nn.Module:
    """A fresh neuron from ``spec``: a string such as ``"elastic_bi(k=3, reset='hard')"``,
    ``"ste_lif"``, ``"psn(T=4)"``, ``"ann"``; or an instance, used as a template (a zoo
    neuron is rebuilt from its arguments, without its state; any other module is deep-copied).
    ``overrides`` replace arguments of the spec. Unknown names or arguments raise ``ValueError``
    naming them and listing what is accepted."""
    if isinstance(spec, nn.Module) and registered_name(spec) is None:
        if overrides:
            raise ValueError(f"cannot apply overrides {sorted(overrides)} to a {type(spec).__name__} "
                             "instance that is not a registered neuron")
        return copy.deepcopy(spec)
    name, kwargs = spec_arguments(spec)
    cls = _lookup(name)
    kwargs.update(overrides)
    _check_arguments(name, cls, kwargs)
    return cls(**kwargs)


def spec_arguments(spec: NeuronSpec) -> Tuple[str, Dict[str, Any]]:
    """``(name, {argument: value})`` of a spec string or a registered neuron instance (its
    constructor arguments); ``ValueError`` for an unregistered instance."""
    if isinstance(spec, nn.Module):
        return neuron_name(spec), dict(spec.init_kwargs)
    return parse_spec(spec)


def accepts_argument(spec: NeuronSpec, argument: str) -> bool:
    """Whether the neuron named by ``spec`` (string or instance) takes ``argument``, e.g. to
    give ``T`` only to the neurons that hold per-step state."""
    if isinstance(spec, nn.Module):
        try:
            name = neuron_name(spec)
        except ValueError:
            return False
    else:
        name = parse_spec(spec)[0]
    return argument in _defaults(_lookup(name))


register_neuron("elastic_bi", ElasticBiNode)
register_neuron("ste_lif", STELIFNode)
register_neuron("ternary_fixed", TernaryFixedNode)
register_neuron("lif", LIFNode)
register_neuron("psn", PSN)
register_neuron("ann", ANNNode)
register_neuron("soft_lif", SoftResetLIFNode)
register_neuron("gif", GIFNode)
