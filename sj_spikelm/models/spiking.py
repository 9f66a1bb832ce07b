"""What every spiking model family shares: neuron fields of a config, the linear layer fed by
its own neuron, and the calibration entry point of a ``PreTrainedModel``.

A spiking model runs ``T`` time steps on ``[T, B, ...]`` tensors. Every matrix product whose
input should be spike-driven goes through :class:`SpikeLinear`, ``y[t] = W SN(x)[t] + b``; the
neuron is any zoo neuron named by a spec string (``"elastic_bi(k=2)"``, ``"ste_lif"``,
``"ann"`` for the ANN twin), so one config field swaps it everywhere.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from spikingjelly.activation_based import layer
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel

import neuron_zoo
from neuron_zoo.validation import check_bool, check_positive_int

NeuronSpec = Union[str, nn.Module]


def build_model_neuron(spec: NeuronSpec, T: int, channels: Optional[int] = None, **overrides) -> nn.Module:
    """A fresh zoo neuron from ``spec`` for a model that runs ``T`` time steps, in front of an
    input of width ``channels`` (each is passed to neurons that take it: per-step and
    per-channel state is then sized at construction)."""
    if neuron_zoo.accepts_argument(spec, "T"):
        overrides.setdefault("T", T)
    if channels is not None and neuron_zoo.accepts_argument(spec, "channels"):
        overrides["channels"] = channels
    return neuron_zoo.build_neuron(spec, **overrides)


def check_neuron_spec(name: str, spec: NeuronSpec, T: int) -> str:
    """Validate the config field ``name`` (spec string or zoo neuron instance) for a model of
    ``T`` steps and return it as a spec string. Raises ``TypeError`` / ``ValueError`` naming the
    field and what is accepted."""
    if isinstance(spec, nn.Module):
        spec = neuron_zoo.neuron_spec(spec)
    elif not isinstance(spec, str):
        raise TypeError(f"{name}={spec!r} must be a neuron spec string such as 'elastic_bi(k=2)' "
                        f"or a zoo neuron instance; registered: {', '.join(neuron_zoo.list_neurons())}")
    arguments = neuron_zoo.parse_spec(spec)[1]
    if "step_mode" in arguments:
        raise ValueError(f"{name}={spec!r}: leave out step_mode; models run every neuron in multi-step mode")
    if arguments.get("T", T) != T:
        raise ValueError(f"{name}={spec!r} sets T={arguments['T']} but the config has T={T}")
    if "channels" in arguments:
        raise ValueError(f"{name}={spec!r}: leave out channels; the model sets each layer's input width")
    build_model_neuron(spec, T, channels=1)  # raises ValueError naming a bad name or argument
    return spec


class SpikingConfigMixin:
    """The spiking fields every model config shares (declared by each config as dataclass
    fields): ``T``, ``neuron``, ``kv_neuron``, ``spike_attention_kv``; their validation and the
    neurons they build."""

    def check_spiking_fields(self) -> None:
        """Validate (and canonicalise the neuron fields of) ``T``, ``neuron``, ``kv_neuron`` and
        ``spike_attention_kv``; errors name the field and what is accepted."""
        self.T = check_positive_int("T", self.T)
        check_bool("spike_attention_kv", self.spike_attention_kv)
        self.neuron = check_neuron_spec("neuron", self.neuron, self.T)
        if self.kv_neuron is not None:
            self.kv_neuron = check_neuron_spec("kv_neuron", self.kv_neuron, self.T)

    def build_neuron(self, channels: Optional[int] = None) -> nn.Module:
        """A fresh ``neuron`` (the one in front of every linear layer) for an input of width
        ``channels`` (needed by per-channel neurons, e.g. ``elastic_bi(amplitude='channel')``)."""
        return build_model_neuron(self.neuron, self.T, channels)

    def build_kv_neuron(self, channels: Optional[int] = None) -> nn.Module:
        """A fresh key/value neuron: ``kv_neuron``, else the memoryless form of ``neuron``
        (``neuron_zoo.build_memoryless``); the identity when ``spike_attention_kv`` is False."""
        if not self.spike_attention_kv:
            return neuron_zoo.ANNNode()
        if self.kv_neuron is not None:
            return build_model_neuron(self.kv_neuron, self.T, channels)
        return neuron_zoo.build_memoryless(self.neuron, self.T, channels)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor],
           dropout: nn.Dropout, scaling: float, need_weights: bool,
           sdpa: bool) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Attention per time step and head: ``softmax(Q K^T * scaling + mask) V`` on ``q``
    ``[T, B, H, Lq, d]``, ``k``, ``v`` ``[T, B, H, Lk, d]`` (spiking K and V in the models), with
    an additive ``mask`` broadcastable to ``[B, H, Lq, Lk]``. Returns the context
    ``[T, B, H, Lq, d]`` and, when ``need_weights`` (or without ``sdpa``), the probabilities
    ``[T, B, H, Lq, Lk]`` before dropout; with ``sdpa`` and no weights asked, the fused kernel
    runs on ``[T*B, H, L, d]`` (same result, no ``[Lq, Lk]`` probabilities kept)."""
    if need_weights or not sdpa:
        scores = torch.matmul(q, k.transpose(-1, -2)) * scaling
        if mask is not None:
            scores = scores + mask
        probs = F.softmax(scores, dim=-1)
        return torch.matmul(dropout(probs), v), probs
    T, B = q.shape[:2]
    if mask is not None:
        mask = mask.expand(T, B, *mask.shape[1:]).flatten(0, 1)
    context = F.scaled_dot_product_attention(
        q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1), attn_mask=mask,
        dropout_p=dropout.p if dropout.training else 0.0, scale=scaling)
    return context.view(T, B, *context.shape[1:]), None


class SpikeLinear(layer.Linear):
    """Multi-step linear layer fed by its own neuron: ``y[t] = W s[t] + b``, ``s = SN(x)``."""

    def __init__(self, in_features: int, out_features: int, neuron: nn.Module, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias, step_mode="m")
        self.neuron = neuron

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return super().forward(self.neuron(x_seq))


@torch.no_grad()
def forward_in_mode(model: nn.Module, training: bool, **inputs):
    """``model(**inputs)`` without gradients in training (or eval) mode; restores the mode."""
    was_training = model.training
    model.train(training)
    try:
        return model(**inputs)
    finally:
        model.train(was_training)


class SpikingPreTrainedModel(PreTrainedModel):
    """Base of every spiking model family: the same rule for every zoo neuron, whatever its type
    (a neuron registered by a user included), and :meth:`calibrate`."""

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        # zoo neurons: calibration state kept (and checked) if loaded, else cleared; own
        # parameters (e.g. PSN's) re-initialised unless loaded; a no-op for other modules
        neuron_zoo.init_neuron_state(module)

    def post_init(self):
        super().post_init()
        neuron_zoo.name_neurons(self)  # errors name the neuron's module

    def calibrate(self, **inputs):
        """Run ``self(**inputs)`` once in training mode without gradients, as the first training
        batch would: every uncalibrated neuron calibrates its per-step state on the valid
        positions (e.g. SpikeLM's ``alpha[t] = k mean|m[t]|``, Eq. 10). Restores the mode;
        returns ``self``."""
        forward_in_mode(self, True, **inputs)
        return self
