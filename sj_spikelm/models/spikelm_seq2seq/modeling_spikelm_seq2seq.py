"""Spiking encoder-decoder with BART's weight layout (SpikeLM paper, Section 5.3), as Hugging Face
``PreTrainedModel`` s with ``GenerationMixin``.

Per time step ``t`` of ``T`` (``[T, B, L, D]`` tensors), with ``SN`` the configured zoo neuron
(one per linear layer) and ``SN_k``, ``SN_v`` the memoryless key/value neurons::

    x[t]   = LayerNorm(Embed(tokens) + Pos)                       (real, the same for every t)
    Attn(x, s) = W_o SN(softmax(Q K^T / sqrt(d) + mask) V) + b_o,
                 Q = W_q SN(x) + b_q, K = SN_k(W_k SN(s) + b_k), V = SN_v(W_v SN(s) + b_v)
    FFN(x) = W_2 SN(act(W_1 SN(x) + b_1)) + b_2
    encoder layer: x = LN(x + Attn(x, x));  x = LN(x + FFN(x))
    decoder layer: y = LN(y + Attn_causal(y, y));  y = LN(y + Attn(y, e));  y = LN(y + FFN(y))
    logits = W_emb mean_t y_L[t] + bias

``e`` is the encoder output averaged over ``T`` (what ``encoder_outputs`` carries, so generation
and distillation see BART's interface), repeated over ``T`` again in every cross-attention.
With ``neuron='ann'`` every ``SN`` is the identity and the model computes BART.

KV cache: every neuron acts over the ``T`` steps of one position; no state passes between
positions (the neurons are reset at every forward). The spiking keys and values of step ``t``
of earlier positions are therefore fixed once computed, and the cache keeps them per time step
(stored as ``[B, T*H, L, d]`` so a ``transformers`` cache concatenates along ``L`` and beam search
reorders along ``B``): decoding with the cache gives the same logits as without. Neurons whose
per-step state is calibrated from data (e.g. ``elastic_bi``'s ``alpha[t]``) calibrate once in
training mode and are fixed in generation.
"""
from __future__ import annotations

import contextlib
from typing import Optional, Tuple

import torch
from spikingjelly.activation_based import functional
from torch import nn
from torch.nn import functional as F
from transformers import GenerationMixin
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.models.bart.modeling_bart import (
    BartForConditionalGeneration,
    BartLearnedPositionalEmbedding,
    BartScaledWordEmbedding,
    shift_tokens_right,
)

import neuron_zoo

from ..spiking import SpikeLinear, SpikingPreTrainedModel, attend
from .configuration_spikelm_seq2seq import SpikeLMSeq2SeqConfig


def _pack(x: torch.Tensor) -> torch.Tensor:
    """``[T, B, H, L, d]`` -> ``[B, T*H, L, d]`` (the cache layout)."""
    T, B, H, L, d = x.shape
    return x.transpose(0, 1).reshape(B, T * H, L, d)


def _unpack(x: torch.Tensor, T: int) -> torch.Tensor:
    """``[B, T*H, L, d]`` -> ``[T, B, H, L, d]``."""
    B, TH, L, d = x.shape
    return x.view(B, T, TH // T, L, d).transpose(0, 1)


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``0`` where ``allowed`` (bool), the dtype's most negative number elsewhere (as BART)."""
    return (~allowed).to(dtype) * torch.finfo(dtype).min


class SpikeLMSeq2SeqAttention(nn.Module):
    """BART attention with spiking inputs to ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` and
    spiking keys and values; self-attention (``kv_states`` None) or cross-attention."""

    def __init__(self, config: SpikeLMSeq2SeqConfig, num_heads: int, layer_idx: int, is_cross: bool = False):
        super().__init__()
        self.config, self.layer_idx, self.is_cross = config, layer_idx, is_cross
        self.num_heads, self.head_dim = num_heads, config.d_model // num_heads
        self.scaling = self.head_dim ** -0.5
        width = config.d_model
        self.k_proj = SpikeLinear(width, width, config.build_neuron(width))
        self.v_proj = SpikeLinear(width, width, config.build_neuron(width))
        self.q_proj = SpikeLinear(width, width, config.build_neuron(width))
        self.key_neuron = config.build_kv_neuron(width)
        self.value_neuron = config.build_kv_neuron(width)
        self.out_proj = SpikeLinear(width, width, config.build_neuron(width))
        self.dropout = nn.Dropout(config.attention_dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        T, B, L, _ = x.shape
        return x.view(T, B, L, self.num_heads, self.head_dim).transpose(2, 3)

    def forward(self, x: torch.Tensor, kv_states: Optional[torch.Tensor], mask: Optional[torch.Tensor],
                cache: Optional[EncoderDecoderCache], need_weights: bool):
        T, B, L, D = x.shape
        q = self._heads(self.q_proj(x))
        part = None
        if cache is not None:
            part = cache.cross_attention_cache if self.is_cross else cache.self_attention_cache
        if self.is_cross and cache is not None and cache.is_updated.get(self.layer_idx):
            layer = part.layers[self.layer_idx]
            k, v = _unpack(layer.keys, T), _unpack(layer.values, T)
        else:
            source = kv_states if self.is_cross else x
            k = self._heads(self.key_neuron(self.k_proj(source)))
            v = self._heads(self.value_neuron(self.v_proj(source)))
            if cache is not None:
                k, v = part.update(_pack(k), _pack(v), self.layer_idx)
                k, v = _unpack(k, T), _unpack(v, T)
                if self.is_cross:
                    cache.is_updated[self.layer_idx] = True
        context, probs = attend(q, k, v, mask, self.dropout, self.scaling, need_weights,
                                self.config._attn_implementation == "sdpa")
        return self.out_proj(context.transpose(2, 3).reshape(T, B, L, D)), probs


class SpikeLMSeq2SeqLayer(nn.Module):
    """What encoder and decoder layers share: ``LN(x + Dropout(sublayer))`` and the FFN
    ``fc2(SN(act(fc1(SN(x)))))``, post-norm as in BART."""

    def __init__(self, config: SpikeLMSeq2SeqConfig, ffn_dim: int):
        super().__init__()
        self.fc1 = SpikeLinear(config.d_model, ffn_dim, config.build_neuron(config.d_model))
        self.fc2 = SpikeLinear(ffn_dim, config.d_model, config.build_neuron(ffn_dim))
        self.final_layer_norm = nn.LayerNorm(config.d_model)
        self.activation_fn = ACT2FN[config.activation_function]
        self.dropout = nn.Dropout(config.dropout)
        self.activation_dropout = nn.Dropout(config.activation_dropout)

    def residual(self, norm: nn.LayerNorm, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return norm(x + self.dropout(h))

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc2(self.activation_dropout(self.activation_fn(self.fc1(x))))
        return self.residual(self.final_layer_norm, x, h)


class SpikeLMSeq2SeqEncoderLayer(SpikeLMSeq2SeqLayer):
    def __init__(self, config: SpikeLMSeq2SeqConfig, layer_idx: int):
        super().__init__(config, config.encoder_ffn_dim)
        self.self_attn = SpikeLMSeq2SeqAttention(config, config.encoder_attention_heads, layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)

    def forward(self, x, mask, need_weights: bool):
        h, probs = self.self_attn(x, None, mask, None, need_weights)
        return self.feed_forward(self.residual(self.self_attn_layer_norm, x, h)), probs


class SpikeLMSeq2SeqDecoderLayer(SpikeLMSeq2SeqLayer):
    def __init__(self, config: SpikeLMSeq2SeqConfig, layer_idx: int):
        super().__init__(config, config.decoder_ffn_dim)
        heads = config.decoder_attention_heads
        self.self_attn = SpikeLMSeq2SeqAttention(config, heads, layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.encoder_attn = SpikeLMSeq2SeqAttention(config, heads, layer_idx, is_cross=True)
        self.encoder_attn_layer_norm = nn.LayerNorm(config.d_model)

    def forward(self, y, mask, encoder_states, encoder_mask, cache, need_weights: bool):
        h, self_probs = self.self_attn(y, None, mask, cache, need_weights)
        y = self.residual(self.self_attn_layer_norm, y, h)
        h, cross_probs = self.encoder_attn(y, encoder_states, encoder_mask, cache, need_weights)
        y = self.residual(self.encoder_attn_layer_norm, y, h)
        return self.feed_forward(y), self_probs, cross_probs


class SpikeLMSeq2SeqStack(nn.Module):
    """Token and learned position embeddings, ``layernorm_embedding``, dropout, the repeat over
    ``T`` and the layers (encoder or decoder)."""

    def __init__(self, config: SpikeLMSeq2SeqConfig, layers: nn.ModuleList):
        super().__init__()
        self.config, self.T = config, config.T
        scale = config.d_model ** 0.5 if config.scale_embedding else 1.0
        self.embed_tokens = BartScaledWordEmbedding(config.vocab_size, config.d_model, config.pad_token_id,
                                                    embed_scale=scale)
        self.embed_positions = BartLearnedPositionalEmbedding(config.max_position_embeddings, config.d_model)
        self.layers = layers
        self.layernorm_embedding = nn.LayerNorm(config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        functional.set_step_mode(self, "m")

    def embed(self, input_ids, inputs_embeds, start: int = 0) -> torch.Tensor:
        """``[T, B, L, D]``: the embeddings of positions ``start, start+1, ...`` repeated over T."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds (decoder: decoder_input_ids or "
                             "decoder_inputs_embeds)")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        B, L = inputs_embeds.shape[:2]
        if start + L > self.config.max_position_embeddings:
            raise ValueError(f"sequence of {start + L} positions exceeds max_position_embeddings="
                             f"{self.config.max_position_embeddings}")
        positions = torch.arange(start, start + L, device=inputs_embeds.device)
        positions = self.embed_positions(None, position_ids=positions)
        x = self.dropout(self.layernorm_embedding(inputs_embeds + positions))
        return x.unsqueeze(0).expand(self.T, *x.shape)


def _check_mask(name: str, mask: Optional[torch.Tensor], shape) -> Optional[torch.Tensor]:
    if mask is None:
        return None
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(mask.shape)}, expected [batch, length] = {list(shape)}")
    return mask.bool()


class SpikeLMSeq2SeqEncoder(SpikeLMSeq2SeqStack):
    def __init__(self, config: SpikeLMSeq2SeqConfig):
        super().__init__(config, nn.ModuleList(SpikeLMSeq2SeqEncoderLayer(config, i)
                                               for i in range(config.encoder_layers)))

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, output_attentions=None,
                output_hidden_states=None, return_dict=None) -> Tuple | BaseModelOutput:
        """Encoder output averaged over ``T``; ``hidden_states`` = embeddings and every layer's
        output (each averaged over ``T``), ``attentions`` = probabilities averaged over ``T``."""
        x = self.embed(input_ids, inputs_embeds)
        valid = _check_mask("attention_mask", attention_mask, x.shape[1:3])
        mask = None if valid is None else additive_mask(valid[:, None, None, :], x.dtype)
        hidden, attentions = [x[0]], []
        functional.reset_net(self)
        with neuron_zoo.valid_mask(self, valid):
            for layer in self.layers:
                x, probs = layer(x, mask, bool(output_attentions))
                hidden.append(x.mean(0))
                attentions.append(probs.mean(0) if output_attentions else None)
        output = BaseModelOutput(last_hidden_state=hidden[-1],
                                 hidden_states=tuple(hidden) if output_hidden_states else None,
                                 attentions=tuple(attentions) if output_attentions else None)
        return output if return_dict is not False else output.to_tuple()


class SpikeLMSeq2SeqDecoder(SpikeLMSeq2SeqStack):
    def __init__(self, config: SpikeLMSeq2SeqConfig):
        super().__init__(config, nn.ModuleList(SpikeLMSeq2SeqDecoderLayer(config, i)
                                               for i in range(config.decoder_layers)))

    def forward(self, input_ids=None, attention_mask=None, encoder_hidden_states=None,
                encoder_attention_mask=None, cache=None, inputs_embeds=None, use_cache=None,
                output_attentions=None,
                output_hidden_states=None) -> BaseModelOutputWithPastAndCrossAttentions:
        """Decoder output averaged over ``T`` (causal self-attention over the cached and new
        positions, cross-attention to ``encoder_hidden_states`` ``[B, Ls, D]`` repeated over T)."""
        if encoder_hidden_states is None:
            raise ValueError("the decoder needs encoder_hidden_states (or encoder_outputs)")
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        if cache is not None and not isinstance(cache, EncoderDecoderCache):
            raise TypeError(f"cache must be an EncoderDecoderCache, got {type(cache).__name__}")
        past = cache.get_seq_length() if cache is not None else 0
        y = self.embed(input_ids, inputs_embeds, past)
        B, L = y.shape[1:3]
        valid = _check_mask("decoder_attention_mask", attention_mask, (B, past + L))
        keys = torch.arange(past + L, device=y.device)
        allowed = keys[None, :] <= (past + torch.arange(L, device=y.device))[:, None]  # [L, past+L]
        allowed = allowed[None, None] if valid is None else allowed[None, None] & valid[:, None, None, :]
        mask = additive_mask(allowed, y.dtype)
        source_valid = _check_mask("attention_mask", encoder_attention_mask, encoder_hidden_states.shape[:2])
        encoder_mask = None
        if source_valid is not None:
            encoder_mask = additive_mask(source_valid[:, None, None, :], y.dtype)
        encoder_states = encoder_hidden_states.unsqueeze(0).expand(self.T, *encoder_hidden_states.shape)
        new_valid = None if valid is None else valid[:, past:]
        need = bool(output_attentions)
        hidden, attentions, cross = [y[0]], [], []
        functional.reset_net(self)
        with contextlib.ExitStack() as stack:
            stack.enter_context(neuron_zoo.valid_mask(self, new_valid))
            for layer in self.layers:  # the cross-attention keys and values are source positions
                for module in (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj,
                               layer.encoder_attn.key_neuron, layer.encoder_attn.value_neuron):
                    stack.enter_context(neuron_zoo.valid_mask(module, source_valid))
            for layer in self.layers:
                y, self_probs, cross_probs = layer(y, mask, encoder_states, encoder_mask, cache, need)
                hidden.append(y.mean(0))
                attentions.append(self_probs.mean(0) if need else None)
                cross.append(cross_probs.mean(0) if need else None)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden[-1], cache=cache if use_cache else None,
            hidden_states=tuple(hidden) if output_hidden_states else None,
            attentions=tuple(attentions) if need else None, cross_attentions=tuple(cross) if need else None)


class SpikeLMSeq2SeqPreTrainedModel(SpikingPreTrainedModel):
    config_class = SpikeLMSeq2SeqConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _supports_sdpa = True
    _no_split_modules = ["SpikeLMSeq2SeqEncoderLayer", "SpikeLMSeq2SeqDecoderLayer"]

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, SpikeLMForConditionalGeneration):
            init.zeros_(module.final_logits_bias)

    def _output(self, output, return_dict: Optional[bool]):
        return_dict = self.config.return_dict if return_dict is None else return_dict
        return output if return_dict else output.to_tuple()


class SpikeLMSeq2SeqModel(SpikeLMSeq2SeqPreTrainedModel):
    """Shared token embedding, spiking encoder and spiking decoder (BART's ``BartModel``)."""

    _tied_weights_keys = {"encoder.embed_tokens.weight": "shared.weight",
                          "decoder.embed_tokens.weight": "shared.weight"}

    def __init__(self, config: SpikeLMSeq2SeqConfig):
        super().__init__(config)
        scale = config.d_model ** 0.5 if config.scale_embedding else 1.0
        self.shared = BartScaledWordEmbedding(config.vocab_size, config.d_model, config.pad_token_id,
                                              embed_scale=scale)
        self.encoder = SpikeLMSeq2SeqEncoder(config)
        self.decoder = SpikeLMSeq2SeqDecoder(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.shared

    def set_input_embeddings(self, value):
        self.shared = self.encoder.embed_tokens = self.decoder.embed_tokens = value

    def get_encoder(self, modality=None):
        return self.encoder

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None,
                decoder_attention_mask=None,
                encoder_outputs=None, cache=None, inputs_embeds=None, decoder_inputs_embeds=None,
                use_cache=None, output_attentions=None, output_hidden_states=None,
                return_dict=None) -> Tuple | Seq2SeqModelOutput:
        """BART's forward: without ``decoder_input_ids`` they are ``input_ids`` shifted right
        (denoising); ``encoder_outputs`` skips the encoder (generation)."""
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None:
                raise ValueError("pass decoder_input_ids or decoder_inputs_embeds "
                                 "(or input_ids, shifted right)")
            decoder_input_ids = shift_tokens_right(input_ids, self.config.pad_token_id,
                                                   self.config.decoder_start_token_id)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                           inputs_embeds=inputs_embeds, output_attentions=output_attentions,
                                           output_hidden_states=output_hidden_states)
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(*encoder_outputs)
        decoder = self.decoder(input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
                               encoder_hidden_states=encoder_outputs.last_hidden_state,
                               encoder_attention_mask=attention_mask, cache=cache,
                               inputs_embeds=decoder_inputs_embeds, use_cache=use_cache,
                               output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        output = Seq2SeqModelOutput(
            last_hidden_state=decoder.last_hidden_state, cache=decoder.cache,
            decoder_hidden_states=decoder.hidden_states, decoder_attentions=decoder.attentions,
            cross_attentions=decoder.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions)
        return self._output(output, return_dict)


class SpikeLMForConditionalGeneration(SpikeLMSeq2SeqPreTrainedModel, GenerationMixin):
    """Spiking encoder-decoder with BART's LM head (tied to the shared embedding, plus
    ``final_logits_bias``): ``logits = W_emb mean_t y_L[t] + bias``; ``generate()`` for greedy
    and beam search."""

    _tied_weights_keys = {"lm_head.weight": "model.shared.weight"}
    _keys_to_ignore_on_load_missing = ["final_logits_bias"]

    def __init__(self, config: SpikeLMSeq2SeqConfig):
        super().__init__(config)
        self.model = SpikeLMSeq2SeqModel(config)
        self.final_logits_bias = nn.Buffer(torch.zeros((1, config.vocab_size)))
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    def get_encoder(self, modality=None):
        return self.model.encoder

    # BART's: keep final_logits_bias as long as the vocabulary
    _resize_final_logits_bias = BartForConditionalGeneration._resize_final_logits_bias

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True):
        embeddings = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        self._resize_final_logits_bias(embeddings.weight.shape[0])
        return embeddings

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None,
                decoder_attention_mask=None,
                encoder_outputs=None, cache=None, inputs_embeds=None, decoder_inputs_embeds=None, labels=None,
                use_cache=None, output_attentions=None, output_hidden_states=None,
                return_dict=None) -> Tuple | Seq2SeqLMOutput:
        """``labels`` ``[B, L]``: target ids, ``-100`` where no loss is taken (cross-entropy); without
        ``decoder_input_ids`` they are the labels shifted right behind ``decoder_start_token_id``;
        without ``decoder_attention_mask`` it is ``labels != -100``."""
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
            if decoder_attention_mask is None:  # right padding (-100): the causal loss positions are
                decoder_attention_mask = labels != -100  # unchanged; the neurons count real tokens only
        outputs = self.model(input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                             decoder_attention_mask=decoder_attention_mask, encoder_outputs=encoder_outputs,
                             cache=cache, inputs_embeds=inputs_embeds,
                             decoder_inputs_embeds=decoder_inputs_embeds,
                             use_cache=use_cache, output_attentions=output_attentions,
                             output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.lm_head(outputs.last_hidden_state) + self.final_logits_bias
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.config.vocab_size), labels.reshape(-1))
        output = Seq2SeqLMOutput(
            loss=loss, logits=logits, cache=outputs.cache,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions, cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions)
        return self._output(output, return_dict)

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """``[decoder_start_token_id, labels[:-1]]`` with ``-100`` replaced by ``pad_token_id``."""
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)
