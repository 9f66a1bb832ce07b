"""SpikeLM encoder-decoder configuration: BART's fields and defaults plus the spiking ones."""
from __future__ import annotations

from typing import Optional, Union

from torch import nn
from transformers import BartConfig

from ..spiking import SpikingConfigMixin


class SpikeLMSeq2SeqConfig(SpikingConfigMixin, BartConfig):
    r"""Configuration of the spiking encoder-decoder (SpikeLM paper, Section 5.3): every
    ``BartConfig`` field with its defaults (``d_model``, ``encoder_layers``, ``decoder_layers``,
    ``*_attention_heads``, ``*_ffn_dim``, ``dropout``, ...), plus

    - ``T`` (int, 4): time steps the encoder and decoder embeddings are repeated over.
    - ``neuron`` (spec string or zoo neuron instance, stored as its spec): the neuron in front
      of every linear layer of encoder and decoder (self-, cross-attention and FFN), e.g.
      ``"elastic_bi(k=2)"``, ``"ste_lif"``, ``"ann"`` (the ANN twin: BART itself).
    - ``kv_neuron`` (spec or None): the neuron that spikes keys and values after their
      projections; None means the memoryless form of ``neuron`` (as in the SpikeLM encoder).
    - ``spike_attention_kv`` (bool, True): False keeps keys and values real-valued.
    """

    model_type = "spikelm_seq2seq"

    T: int = 4
    neuron: Union[str, nn.Module] = "elastic_bi(k=2)"
    kv_neuron: Optional[Union[str, nn.Module]] = None
    spike_attention_kv: bool = True

    def __post_init__(self, **kwargs):
        self.check_spiking_fields()
        for side in ("encoder", "decoder"):
            heads = getattr(self, f"{side}_attention_heads")
            if self.d_model % heads:
                raise ValueError(f"d_model={self.d_model} is not a multiple of "
                                 f"{side}_attention_heads={heads}")
        if not self.is_encoder_decoder or self.is_decoder:
            raise ValueError("SpikeLMSeq2SeqConfig is an encoder-decoder: is_encoder_decoder must be True "
                             "and is_decoder False")
        super().__post_init__(**kwargs)
