"""SpikeLM encoders (Xing et al., ICML 2024) built from SpikingJelly multi-step modules, as
Hugging Face ``PreTrainedModel`` s with BERT's weight layout.

Spike-driven computation, per time step ``t`` of ``T`` (``[T, B, L, D]`` tensors)::

    x[t]    = Embeddings(input)                       (real, the same for every t)
    Q       = W_q SN(x) + b_q,  K = SN_k(W_k SN(x) + b_k),  V = SN_v(W_v SN(x) + b_v)
    A       = softmax(Q K^T / sqrt(d) + mask)         (per head; K and V are spikes)
    x'      = LayerNorm(x + W_o SN(A V) + b_o)
    x_next  = LayerNorm(x' + W_2 SN(GELU(W_1 SN(x') + b_1)) + b_2)
    output  = mean_t x_L[t]

``SN`` is the configured zoo neuron, one per linear layer; ``SN_k``, ``SN_v`` the key/value
neurons (no membrane carried across steps by default). Softmax, LayerNorm, residuals and
embeddings stay real; the pooler and the heads are the only real-valued matmuls.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from spikingjelly.activation_based import functional
from torch import nn
from torch.nn import functional as F
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    SequenceClassifierOutput,
)
from transformers.models.bert.modeling_bert import (
    BertEmbeddings,
    BertLMPredictionHead,
    BertOnlyMLMHead,
    BertPooler,
)

import neuron_zoo

from ..spiking import SpikeLinear, SpikingPreTrainedModel, attend
from .configuration_spikelm import SpikeLMConfig


class SpikeLMSelfAttention(nn.Module):
    """``softmax(Q K^T / sqrt(d) + mask) V`` per time step and head, with spiking K and V.
    Returns the context and, when asked, the probabilities ``[T, B, H, L, L]`` (before
    dropout)."""

    def __init__(self, config: SpikeLMConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_size ** -0.5
        width = config.hidden_size
        self.query = SpikeLinear(width, width, config.build_neuron(width))
        self.key = SpikeLinear(width, width, config.build_neuron(width))
        self.value = SpikeLinear(width, width, config.build_neuron(width))
        self.key_neuron = config.build_kv_neuron(width)
        self.value_neuron = config.build_kv_neuron(width)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor], need_weights: bool):
        T, B, L, D = x.shape
        heads = lambda y: y.view(T, B, L, self.num_heads, self.head_size).transpose(2, 3)
        q = heads(self.query(x))
        k = heads(self.key_neuron(self.key(x)))
        v = heads(self.value_neuron(self.value(x)))
        context, probs = attend(q, k, v, mask, self.dropout, self.scaling, need_weights,
                                self.config._attn_implementation == "sdpa")
        return context.transpose(2, 3).reshape(T, B, L, D), probs


class SpikeLMResidualOutput(nn.Module):
    """``LayerNorm(x + Dropout(W SN(h) + b))``: the attention output and the FFN output."""

    def __init__(self, config: SpikeLMConfig, in_features: int):
        super().__init__()
        self.dense = SpikeLinear(in_features, config.hidden_size, config.build_neuron(in_features))
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(h)) + x)


class SpikeLMAttention(nn.Module):
    def __init__(self, config: SpikeLMConfig):
        super().__init__()
        self.self = SpikeLMSelfAttention(config)
        self.output = SpikeLMResidualOutput(config, config.hidden_size)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor], need_weights: bool):
        context, probs = self.self(x, mask, need_weights)
        return self.output(context, x), probs


class SpikeLMIntermediate(nn.Module):
    """``GELU(W_1 SN(x) + b_1)``."""

    def __init__(self, config: SpikeLMConfig):
        super().__init__()
        width = config.hidden_size
        self.dense = SpikeLinear(width, config.intermediate_size, config.build_neuron(width))
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(x))


class SpikeLMLayer(nn.Module):
    def __init__(self, config: SpikeLMConfig):
        super().__init__()
        self.attention = SpikeLMAttention(config)
        self.intermediate = SpikeLMIntermediate(config)
        self.output = SpikeLMResidualOutput(config, config.intermediate_size)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor], need_weights: bool):
        x, probs = self.attention(x, mask, need_weights)
        return self.output(self.intermediate(x), x), probs


class SpikeLMEncoder(nn.Module):
    """Repeats the embedding over ``T`` steps (``[T, B, L, D]``), runs the spiking layers and
    averages each output over ``T``."""

    def __init__(self, config: SpikeLMConfig):
        super().__init__()
        self.T = config.T
        self.layer = nn.ModuleList(SpikeLMLayer(config) for _ in range(config.num_hidden_layers))
        functional.set_step_mode(self, "m")

    def forward(self, embeddings: torch.Tensor, mask: Optional[torch.Tensor],
                output_hidden_states: bool, output_attentions: bool):
        x = embeddings.unsqueeze(0).expand(self.T, *embeddings.shape)
        hidden_states = (embeddings,) if output_hidden_states else None
        attentions = () if output_attentions else None
        for layer_module in self.layer:
            x, probs = layer_module(x, mask, output_attentions)
            if output_hidden_states:
                hidden_states += (x.mean(0),)
            if output_attentions:
                attentions += (probs.mean(0),)
        last = hidden_states[-1] if output_hidden_states else x.mean(0)
        return last, hidden_states, attentions


class SpikeLMPreTrainedModel(SpikingPreTrainedModel):
    config_class = SpikeLMConfig
    base_model_prefix = "bert"
    main_input_name = "input_ids"
    _supports_sdpa = True
    _no_split_modules = ["BertEmbeddings", "SpikeLMLayer"]

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, BertEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
            init.zeros_(module.token_type_ids)
        elif isinstance(module, BertLMPredictionHead):
            init.zeros_(module.bias)

    def _encode(self, input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions,
                position_ids, inputs_embeds) -> BaseModelOutputWithPooling:
        return self.base_model(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids, output_hidden_states=output_hidden_states,
                               output_attentions=output_attentions, return_dict=True,
                               position_ids=position_ids, inputs_embeds=inputs_embeds)

    def _output(self, output, return_dict: Optional[bool]):
        return_dict = self.config.return_dict if return_dict is None else return_dict
        return output if return_dict else output.to_tuple()


class SpikeLMModel(SpikeLMPreTrainedModel):
    """Embeddings, spiking encoder (output averaged over ``T``) and BERT's pooler."""

    def __init__(self, config: SpikeLMConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = SpikeLMEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    def forward(self, input_ids: Optional[torch.Tensor] = None, attention_mask: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None, output_hidden_states: Optional[bool] = None,
                output_attentions: Optional[bool] = None, return_dict: Optional[bool] = None,
                position_ids: Optional[torch.Tensor] = None,
                inputs_embeds: Optional[torch.Tensor] = None) -> Tuple | BaseModelOutputWithPooling:
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        embeddings = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids,
                                     position_ids=position_ids, inputs_embeds=inputs_embeds)
        mask = valid = None
        if attention_mask is not None:
            if tuple(attention_mask.shape) != tuple(embeddings.shape[:2]):
                raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected "
                                 f"[batch, length] = {list(embeddings.shape[:2])}")
            valid = attention_mask.bool()
            mask = (~valid)[:, None, None, :].to(embeddings.dtype) * torch.finfo(embeddings.dtype).min
            if self.config.calibration_counts_padding and self.training:
                valid = None  # the public code's calibration statistic includes padding
        functional.reset_net(self.encoder)
        with neuron_zoo.valid_mask(self.encoder, valid):
            last, hidden_states, attentions = self.encoder(
                embeddings, mask, output_hidden_states, output_attentions)
        output = BaseModelOutputWithPooling(
            last_hidden_state=last, pooler_output=self.pooler(last) if self.pooler is not None else None,
            hidden_states=hidden_states, attentions=attentions)
        return self._output(output, return_dict)


class SpikeLMForMaskedLM(SpikeLMPreTrainedModel):
    """Spiking encoder with BERT's masked-language-model head (tied to the word embeddings)."""

    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: SpikeLMConfig):
        super().__init__(config)
        self.bert = SpikeLMModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings
        self.cls.predictions.bias = new_embeddings.bias

    def forward(self, input_ids: Optional[torch.Tensor] = None, attention_mask: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None, labels: Optional[torch.Tensor] = None,
                output_hidden_states: Optional[bool] = None, output_attentions: Optional[bool] = None,
                return_dict: Optional[bool] = None, position_ids: Optional[torch.Tensor] = None,
                inputs_embeds: Optional[torch.Tensor] = None) -> Tuple | MaskedLMOutput:
        """``labels``: token ids, ``-100`` where no loss is taken (cross-entropy)."""
        outputs = self._encode(input_ids, attention_mask, token_type_ids, output_hidden_states,
                               output_attentions, position_ids, inputs_embeds)
        logits = self.cls(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.config.vocab_size), labels.view(-1))
        output = MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                attentions=outputs.attentions)
        return self._output(output, return_dict)


def sequence_classification_loss(config: SpikeLMConfig, logits: torch.Tensor,
                                 labels: torch.Tensor) -> torch.Tensor:
    """Loss as in ``BertForSequenceClassification``: MSE for ``num_labels=1`` (regression),
    cross-entropy for integer labels, BCE-with-logits for multi-label targets. Sets
    ``config.problem_type`` on first use when it is None."""
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        if config.num_labels == 1:
            return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
        return F.mse_loss(logits, labels.to(logits.dtype))
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.view(-1, config.num_labels), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class SpikeLMForSequenceClassification(SpikeLMPreTrainedModel):
    """Spiking encoder, BERT's pooler and a linear classifier (``num_labels=1``: regression)."""

    def __init__(self, config: SpikeLMConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = SpikeLMModel(config)
        dropout = config.classifier_dropout
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids: Optional[torch.Tensor] = None, attention_mask: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None, labels: Optional[torch.Tensor] = None,
                output_hidden_states: Optional[bool] = None, output_attentions: Optional[bool] = None,
                return_dict: Optional[bool] = None, position_ids: Optional[torch.Tensor] = None,
                inputs_embeds: Optional[torch.Tensor] = None) -> Tuple | SequenceClassifierOutput:
        """``labels``: class ids ``[B]``, float targets ``[B]`` (regression) or multi-hot ``[B, C]``."""
        outputs = self._encode(input_ids, attention_mask, token_type_ids, output_hidden_states,
                               output_attentions, position_ids, inputs_embeds)
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None if labels is None else sequence_classification_loss(self.config, logits, labels)
        output = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                          attentions=outputs.attentions)
        return self._output(output, return_dict)
