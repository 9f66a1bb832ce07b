"""SpikeLM configuration: BERT's fields and defaults plus the spiking ones."""
from __future__ import annotations

from typing import Optional, Union

from torch import nn
from transformers import BertConfig

import neuron_zoo
from neuron_zoo.validation import check_bool, check_positive_int

from ..spiking import build_model_neuron, check_neuron_spec


class SpikeLMConfig(BertConfig):
    r"""Configuration of the SpikeLM encoder: every ``BertConfig`` field with BERT-base's
    defaults, plus

    - ``T`` (int, 4): time steps the embedding output is repeated over.
    - ``neuron`` (spec string or zoo neuron instance, stored as its spec): the neuron in front
      of every linear layer of the encoder, e.g. ``"elastic_bi(k=2)"``, ``"ste_lif"``,
      ``"ann"`` (the ANN baseline, same weight layout).
    - ``kv_neuron`` (spec or None): the neuron that spikes key and value after their
      projections; None means the memoryless form of ``neuron`` (``neuron_zoo.build_memoryless``:
      nothing carried across time steps, as SpikeLM's ``decay=0``, for every neuron type).
    - ``spike_attention_kv`` (bool, True): False keeps key and value real-valued.
    - ``calibration_counts_padding`` (bool, False): True lets padding positions into the
      calibration statistic (and, in training mode, the spike statistics), as the public
      SpikeLM code does.

    The neuron backend (torch / CuPy) is a runtime choice (``neuron_zoo.set_backend``), never
    part of the config; a neuron's calibration state lives in the weights, not here.
    """

    model_type = "spikelm"

    T: int = 4
    neuron: Union[str, nn.Module] = "elastic_bi(k=2)"
    kv_neuron: Optional[Union[str, nn.Module]] = None
    spike_attention_kv: bool = True
    calibration_counts_padding: bool = False

    def __post_init__(self, **kwargs):
        self.T = check_positive_int("T", self.T)
        for name in ("spike_attention_kv", "calibration_counts_padding"):
            check_bool(name, getattr(self, name))
        self.neuron = check_neuron_spec("neuron", self.neuron, self.T)
        if self.kv_neuron is not None:
            self.kv_neuron = check_neuron_spec("kv_neuron", self.kv_neuron, self.T)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not a multiple of "
                             f"num_attention_heads={self.num_attention_heads}")
        if self.is_decoder or self.add_cross_attention:
            raise ValueError("SpikeLM is a bidirectional encoder: is_decoder and add_cross_attention "
                             "must be False")
        super().__post_init__(**kwargs)

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
