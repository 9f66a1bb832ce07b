"""BiSpikCLM configuration: a decoder-only causal LM whose neuron and attention are chosen by name."""
from __future__ import annotations

import math
from typing import Optional, Union

from torch import nn
from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

import neuron_zoo
from neuron_zoo.validation import check_bool, check_choice, check_positive_int, check_real

from ..spiking import build_model_neuron, check_neuron_spec

ATTENTIONS = ("sfsa", "softmax")


class BiSpikCLMConfig(PreTrainedConfig):
    r"""Configuration of :class:`BiSpikCLMForCausalLM` (Guo et al., 2026, Figure 2).

    - ``vocab_size``, ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
      ``intermediate_size``, ``max_position_embeddings`` (learned absolute positions),
      ``layer_norm_eps`` (the final norm), ``initializer_range`` (the LM head's init std),
      ``tie_word_embeddings`` (False: the embeddings start at ``N(0, 1)``, see ``_init_weights``).
    - ``hidden_act`` (None): an activation after ``W_1`` (e.g. ``"relu"`` for the ANN twin, whose
      identity neurons leave the MLP linear); None: the neuron is the only nonlinearity.
    - ``T`` (int, 4): time steps the (real) embedding is applied over as a constant input current.
    - ``neuron`` (spec, ``"soft_lif"``): every ``SN`` of the block, e.g. ``"soft_lif"`` (binary
      LIF, soft reset, BPTT through the reset: BiSpikCLM), ``"elastic_bi(k=2)"`` (SpikeLM
      decoder), ``"ste_lif"``, ``"ann"`` (the ANN twin from the same code).
    - ``attention`` (``"sfsa"``): ``"sfsa"`` is softmax-free spiking attention
      ``A = SN_attn(M ⊙ (Q K^T) · s)``; ``"softmax"`` is ``softmax(Q K^T · s + mask)`` over the
      same spiking ``Q, K, V`` (the ablation, and the ANN teacher's attention).
    - ``attention_scale`` (``s``; None: 0.0625 for SFSA, measured (see below), and
      ``1 / sqrt(head_dim)`` for softmax).
    - ``attention_neuron`` (spec or None: ``neuron``): ``SN_attn`` of SFSA.
    - ``attention_threshold`` (float or None): ``v_threshold`` of ``SN_attn`` (None: the spec's
      own, 1.0 for ``soft_lif``); only for an attention neuron that takes ``v_threshold``.

    The paper states neither ``s`` nor the attention threshold. For ``soft_lif`` the forward
    depends only on ``s / threshold`` (checked). SFSA's ``s = 0.0625`` (threshold 1) is chosen by
    a WikiText-2 sweep (hidden 128, 2 layers, head_dim 32, T = 2, 150 steps): validation loss
    6.19 / 6.05 / 5.83 / 5.78 / 5.73 / 5.72 for s = 1 / 0.5 / 0.25 / 0.125 / 0.0625 / 0.03125
    (0.0625 and 1 repeated with a second seed: +0.006, +0.010); with s = 1 the attention neuron
    fired on ~100% of the causal entries after training, with 0.0625 on 20-36% (see the notes).
    """

    model_type = "bispikclm"

    vocab_size: int = 50272
    hidden_size: int = 512
    num_hidden_layers: int = 6
    num_attention_heads: int = 8
    intermediate_size: int = 2048
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False
    hidden_act: Optional[str] = None
    use_cache: bool = True
    pad_token_id: Optional[int] = None
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[int] = None
    T: int = 4
    neuron: Union[str, nn.Module] = "soft_lif"
    attention: str = "sfsa"
    attention_scale: Optional[float] = None
    attention_neuron: Optional[Union[str, nn.Module]] = None
    attention_threshold: Optional[float] = None

    def __post_init__(self, **kwargs):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "T"):
            setattr(self, name, check_positive_int(name, getattr(self, name)))
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not a multiple of "
                             f"num_attention_heads={self.num_attention_heads}")
        check_bool("tie_word_embeddings", self.tie_word_embeddings)
        check_bool("use_cache", self.use_cache)
        self.layer_norm_eps = check_real("layer_norm_eps", self.layer_norm_eps, 0.0, low_open=True)
        self.initializer_range = check_real("initializer_range", self.initializer_range, 0.0, low_open=True)
        if self.hidden_act is not None:
            check_choice("hidden_act", self.hidden_act, sorted(ACT2FN))
        self.neuron = check_neuron_spec("neuron", self.neuron, self.T)
        check_choice("attention", self.attention, ATTENTIONS)
        if self.attention_scale is not None:
            self.attention_scale = check_real("attention_scale", self.attention_scale, 0.0, low_open=True)
        if self.attention == "softmax":
            for name in ("attention_neuron", "attention_threshold"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}={getattr(self, name)!r} is only used with attention='sfsa'; "
                                     "leave it None with attention='softmax'")
        if self.attention_neuron is not None:
            self.attention_neuron = check_neuron_spec("attention_neuron", self.attention_neuron, self.T)
        if self.attention_threshold is not None:
            self.attention_threshold = check_real("attention_threshold", self.attention_threshold, 0.0,
                                                  low_open=True)
            spec = self.attention_neuron or self.neuron
            if not neuron_zoo.accepts_argument(spec, "v_threshold"):
                raise ValueError(f"attention_threshold={self.attention_threshold!r} needs an attention "
                                 f"neuron that takes v_threshold; {spec!r} does not (set attention_neuron, "
                                 "e.g. 'soft_lif', or leave attention_threshold None)")
        super().__post_init__(**kwargs)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def scale(self) -> float:
        """``s``: ``attention_scale``, else 0.0625 (SFSA) or ``1 / sqrt(head_dim)`` (softmax)."""
        if self.attention_scale is not None:
            return self.attention_scale
        return 0.0625 if self.attention == "sfsa" else 1.0 / math.sqrt(self.head_dim)

    def build_neuron(self) -> nn.Module:
        """A fresh ``SN`` of the block."""
        return build_model_neuron(self.neuron, self.T)

    def build_attention_neuron(self) -> nn.Module:
        """A fresh ``SN_attn``: ``attention_neuron`` (else ``neuron``) with ``attention_threshold``."""
        overrides = {} if self.attention_threshold is None else {"v_threshold": self.attention_threshold}
        return build_model_neuron(self.attention_neuron or self.neuron, self.T, **overrides)
