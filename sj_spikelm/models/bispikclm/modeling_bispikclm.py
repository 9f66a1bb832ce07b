"""BiSpikCLM (Guo et al., 2026): a fully binary spiking causal LM, and with ``neuron='elastic_bi(k=2)'``
and ``attention='softmax'`` SpikeLM's decoder; ``neuron='ann'`` is the ANN twin of the same code.

Per time step ``t`` of ``T`` (tensors ``[T, B, L, D]``; Figure 2)::

    x[t]  = E[token] + P[position]                        (real, a constant input current)
    S     = SN(x);   Q = SN_q(W_q S + b_q),  K = SN_k(W_k S + b_k),  V = SN_v(W_v S + b_v)
    A     = SN_attn(M ⊙ (Q K^T) · s)                        (SFSA: integer coincidence counts,
                                                           binary causal mask M, no softmax)
    x     = x + W_o SN(A V) + b_o
    x     = x + SN(W_2 SN(W_1 SN(x) + b_1) + b_2)
    logits = LM_head(LayerNorm(mean_t x[t]))                (the only real-valued matrix product)

Every ``SN`` is its own zoo neuron (``config.neuron``), reset at every forward and run over the
``T`` steps; elementwise per position, so the model is causal and the spiking keys and values
of earlier positions can be cached (all ``T`` steps, ``[B, H, L, T * head_dim]`` per layer).
``attention='softmax'`` uses ``softmax(Q K^T · s + mask)`` instead of ``SN_attn`` (ablation).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from spikingjelly.activation_based import functional, layer
from torch import nn
from transformers import GenerationMixin
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from ..spiking import SpikeLinear, SpikingPreTrainedModel
from .configuration_bispikclm import BiSpikCLMConfig


class MatMul(nn.Module):
    """``a @ b`` as a module, so hooks (tests, monitors, operation counters) see both attention
    products' inputs."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


class BiSpikCLMAttention(nn.Module):
    """``SN -> SFSA`` (or softmax attention over spiking Q, K, V), ending in ``W_o SN(O) + b_o``.
    Returns the output ``[T, B, L, D]`` and the attention map ``[T, B, H, L, L_k]``."""

    def __init__(self, config: BiSpikCLMConfig, layer_idx: int):
        super().__init__()
        self.config, self.layer_idx = config, layer_idx
        self.num_heads, self.head_dim, self.scale = config.num_attention_heads, config.head_dim, config.scale
        width = config.hidden_size
        self.input_neuron = config.build_neuron()
        self.q_proj = layer.Linear(width, width, step_mode="m")
        self.k_proj = layer.Linear(width, width, step_mode="m")
        self.v_proj = layer.Linear(width, width, step_mode="m")
        self.q_neuron, self.k_neuron, self.v_neuron = (config.build_neuron() for _ in range(3))
        self.attn_neuron = config.build_attention_neuron() if config.attention == "sfsa" else None
        self.qk, self.av = MatMul(), MatMul()
        self.o_proj = SpikeLinear(width, width, config.build_neuron())

    def _heads(self, y: torch.Tensor) -> torch.Tensor:
        T, B, L, _ = y.shape
        return y.view(T, B, L, self.num_heads, self.head_dim).transpose(2, 3)  # [T, B, H, L, d]

    def _cached(self, cache: Cache, k: torch.Tensor, v: torch.Tensor):
        """Append this call's keys and values (all ``T`` steps) to ``cache``; return all of them."""
        T, B, H, L, d = k.shape
        pack = lambda y: y.permute(1, 2, 3, 0, 4).reshape(B, H, L, T * d)
        k, v = cache.update(pack(k), pack(v), self.layer_idx)
        unpack = lambda y: y.view(B, H, -1, T, d).permute(3, 0, 1, 2, 4)
        return unpack(k), unpack(v)

    def forward(self, x: torch.Tensor, keep: torch.Tensor, cache: Optional[Cache]):
        """``keep``: bool ``[B, 1, L, L_k]``, True where query ``i`` may see key ``j`` (causal and
        not padding)."""
        T, B, L, D = x.shape
        s = self.input_neuron(x)
        q = self._heads(self.q_neuron(self.q_proj(s)))
        k = self._heads(self.k_neuron(self.k_proj(s)))
        v = self._heads(self.v_neuron(self.v_proj(s)))
        if cache is not None:
            k, v = self._cached(cache, k, v)
        scores = self.qk(q, k.transpose(-1, -2))
        if self.attn_neuron is not None:  # SFSA: A = SN_attn(M ⊙ (Q K^T) · s)
            probs = self.attn_neuron(scores * keep.to(scores.dtype) * self.scale)
        else:
            scores = (scores * self.scale).masked_fill(~keep, torch.finfo(scores.dtype).min)
            probs = torch.softmax(scores, dim=-1)
        context = self.av(probs, v).transpose(2, 3).reshape(T, B, L, D)
        return self.o_proj(context), probs


class BiSpikCLMMLP(nn.Module):
    """``SN(W_2 SN(act(W_1 SN(x) + b_1)) + b_2)``; ``act`` is ``config.hidden_act`` (None: none,
    the neuron is the nonlinearity)."""

    def __init__(self, config: BiSpikCLMConfig):
        super().__init__()
        self.fc1 = SpikeLinear(config.hidden_size, config.intermediate_size, config.build_neuron())
        self.act = ACT2FN[config.hidden_act] if config.hidden_act is not None else nn.Identity()
        self.fc2 = SpikeLinear(config.intermediate_size, config.hidden_size, config.build_neuron())
        self.output_neuron = config.build_neuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_neuron(self.fc2(self.act(self.fc1(x))))


class BiSpikCLMBlock(nn.Module):
    """``x + SFSA(SN(x))``, then ``x + MLP(x)`` (Figure 2: no norm inside the block)."""

    def __init__(self, config: BiSpikCLMConfig, layer_idx: int):
        super().__init__()
        self.self_attn = BiSpikCLMAttention(config, layer_idx)
        self.mlp = BiSpikCLMMLP(config)

    def forward(self, x: torch.Tensor, keep: torch.Tensor, cache: Optional[Cache]):
        attended, probs = self.self_attn(x, keep, cache)
        x = x + attended
        return x + self.mlp(x), probs


class BiSpikCLMPreTrainedModel(SpikingPreTrainedModel):
    config_class = BiSpikCLMConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules = ["BiSpikCLMBlock"]

    @torch.no_grad()
    def _init_weights(self, module):
        """Embeddings ``N(0, 1)``: a unit input current against the neurons' threshold (1.0 for
        ``soft_lif``), which ``N(0, 0.02)`` would never reach; linear layers of the blocks
        ``N(0, 1 / fan_in)`` (unit-variance currents from unit-variance inputs), biases 0; the
        LM head ``N(0, initializer_range)``."""
        super()._init_weights(module)
        if isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)
        elif isinstance(module, nn.Linear) and module is not getattr(self, "lm_head", None):
            init.normal_(module.weight, mean=0.0, std=module.in_features ** -0.5)
            if module.bias is not None:
                init.zeros_(module.bias)


class BiSpikCLMModel(BiSpikCLMPreTrainedModel):
    """Token and position embeddings, the spiking blocks over ``T`` steps, the mean over ``T``
    and the final LayerNorm."""

    def __init__(self, config: BiSpikCLMConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.layers = nn.ModuleList(BiSpikCLMBlock(config, i) for i in range(config.num_hidden_layers))
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        functional.set_step_mode(self.layers, "m")
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def forward(self, input_ids: Optional[torch.LongTensor] = None,
                attention_mask: Optional[torch.Tensor] = None,
                cache: Optional[Cache] = None, inputs_embeds: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.LongTensor] = None, use_cache: Optional[bool] = None,
                output_hidden_states: Optional[bool] = None, output_attentions: Optional[bool] = None,
                return_dict: Optional[bool] = None, **kwargs) -> Tuple | BaseModelOutputWithPast:
        """``attention_mask`` ``[B, past + L]`` (1 = token, 0 = padding) over the cached and the new
        positions; ``hidden_states`` are means over ``T`` (embeddings first), ``attentions`` the
        attention maps averaged over ``T``."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        B, L, _ = inputs_embeds.shape
        past = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + L, device=inputs_embeds.device).unsqueeze(0)
        if int(position_ids.max()) >= self.config.max_position_embeddings:
            raise ValueError(f"position {int(position_ids.max())} is beyond max_position_embeddings="
                             f"{self.config.max_position_embeddings}")
        keep = self._visible(B, L, past, attention_mask, inputs_embeds.device)
        embeddings = inputs_embeds + self.embed_positions(position_ids)
        x = embeddings.unsqueeze(0).expand(self.config.T, *embeddings.shape)
        hidden_states = (embeddings,) if output_hidden_states else None
        attentions = () if output_attentions else None
        functional.reset_net(self.layers)
        for block in self.layers:
            x, probs = block(x, keep, cache if use_cache else None)
            if output_hidden_states:
                hidden_states += (x.mean(0),)
            if output_attentions:
                attentions += (probs.mean(0),)
        output = BaseModelOutputWithPast(last_hidden_state=self.norm(x.mean(0)),
                                         cache=cache if use_cache else None,
                                         hidden_states=hidden_states, attentions=attentions)
        return_dict = self.config.return_dict if return_dict is None else return_dict
        return output if return_dict else output.to_tuple()

    @staticmethod
    def _visible(B: int, L: int, past: int, attention_mask: Optional[torch.Tensor], device) -> torch.Tensor:
        """The binary mask ``M``: query ``i`` (position ``past + i``) sees key ``j <= past + i`` that is
        not padding; bool ``[B, 1, L, past + L]``."""
        total = past + L
        causal = torch.ones(L, total, dtype=torch.bool, device=device).tril(diagonal=past)
        keep = causal.expand(B, 1, L, total)
        if attention_mask is not None:
            if tuple(attention_mask.shape) != (B, total):
                raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected "
                                 f"[batch, past + length] = {[B, total]}")
            keep = keep & attention_mask.bool()[:, None, None, :]
        return keep


class BiSpikCLMForCausalLM(BiSpikCLMPreTrainedModel, GenerationMixin):
    """:class:`BiSpikCLMModel` and a linear LM head; ``labels`` are shifted inside (as every
    Hugging Face causal LM: position ``i`` predicts ``labels[i + 1]``, ``-100`` ignored)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: BiSpikCLMConfig):
        super().__init__(config)
        self.model = BiSpikCLMModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def forward(self, input_ids: Optional[torch.LongTensor] = None,
                attention_mask: Optional[torch.Tensor] = None,
                cache: Optional[Cache] = None, inputs_embeds: Optional[torch.Tensor] = None,
                labels: Optional[torch.LongTensor] = None, position_ids: Optional[torch.LongTensor] = None,
                use_cache: Optional[bool] = None, output_hidden_states: Optional[bool] = None,
                output_attentions: Optional[bool] = None, return_dict: Optional[bool] = None,
                **kwargs) -> Tuple | CausalLMOutputWithPast:
        """Next-token logits ``[B, L, V]``; with ``labels`` the mean cross-entropy of the shifted
        targets (``num_items_in_batch`` from the Trainer is passed on to the loss)."""
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, cache=cache,
                             inputs_embeds=inputs_embeds, position_ids=position_ids, use_cache=use_cache,
                             output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                             return_dict=True)
        logits = self.lm_head(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size,
                                      **kwargs)
        output = CausalLMOutputWithPast(loss=loss, logits=logits, cache=outputs.cache,
                                        hidden_states=outputs.hidden_states, attentions=outputs.attentions)
        return_dict = self.config.return_dict if return_dict is None else return_dict
        return output if return_dict else output.to_tuple()
