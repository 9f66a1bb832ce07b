"""Post-training spiking of a LLaMA-layout causal LM (SpikeLLM), **one decoder block at a time**:
the input of every linear layer of every decoder block (q, k, v, o, gate, up, down) becomes a
per-token GIF spike train (:class:`~.gif_linear.GIFLinear`); with Optimal Brain Spiking (OBS)
the most salient input channels of each layer get more steps; optionally the weights are
quantized per output channel (RTN, or OmniQuant's learnable weight clipping trained block by
block) and the inputs smoothed (SmoothQuant). The LM head, embeddings, softmax, RMSNorm, SiLU
and the residual stream stay in floating point.

Block-wise conversion (GPTQ / OmniQuant style, :func:`spikify`): the calibration windows are run
up to the input of block 0 (``X``, ``[n, S, d]``); for block ``i``: a float forward of ``X``
with hooks gives each projection's statistics (OBS saliency, ``max|X_j|``) and the target
``Y = block_i(X)``; the projections are replaced by ``GIFLinear`` (smoothing, weight codes,
steps); with learnable clipping the clip logits minimise ``||block_i^q(X) - Y||²`` (Adam, the
activation quantizer's straight-through gradient); then ``X <- block_i^q(X)`` feeds block
``i + 1``. Only one block's activations (``X`` and ``Y``) are held at a time.

OBS saliency of input channel ``j`` of a layer with weight ``W`` (the paper's first-order
metric), over the calibration tokens ``X`` (``N x C``) of that layer::

    S_j = (1 / N) sum_n [X ⊙ (X Wᵀ W)]_nj

(``O(C)`` memory per layer, no ``C x C`` matrix). The top ``ceil(salient_fraction * C)``
channels get ``salient_steps`` steps, the others ``steps``, and each of the two groups is
quantized per token over its own range (:class:`~.gif_linear.GIFLinear`): SpikeLLM's "t2" is
``steps=1, salient_fraction=0.1, salient_steps=2`` (1.1 average steps), "t4" is ``0.05`` at
``4`` (1.15).

SmoothQuant scale of the input channel ``j`` shared by the layers ``G`` (q/k/v; gate/up; o;
down): ``s_j = max|X_j|^α / max_{W in G} max_o |W_oj|^(1-α)``, applied as an explicit scale
(``x / s`` before the quantizer, ``W diag(s)``; foldable into the RMSNorm weight for q/k/v and
gate/up, into ``up_proj`` for ``down_proj``).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from neuron_zoo.validation import check_choice, check_positive_int, check_real

from .gif_linear import PATHS, GIFLinear
from .kv_spiking import KVSaliency, KVSpiking, use_spiking_attention
from .ternary import MODES, TernaryGIFLinear

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "mistral")
SUPPORTED_NAMES = "Llama, Qwen2, Mistral"
PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
SHARED_INPUTS = (("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), ("self_attn.o_proj",),
                 ("mlp.gate_proj", "mlp.up_proj"), ("mlp.down_proj",))
CLIPPING = ("none", "lwc")
CALIB_ACTIVATIONS = ("quantized", "float")
WEIGHT_PATHS = ("none", *MODES)


@dataclasses.dataclass
class SpikifyConfig:
    """Activations: ``levels`` ``L`` per spike (0: floating point, no spikes), ``steps`` ``T``
    per channel (``T (L - 1) + 1`` code levels per token), ``path`` ``'spike'`` (matrix
    products on the spikes) or ``'fake'`` (the equal quantizer, one product); OBS:
    ``salient_fraction`` of each layer's input channels at ``salient_steps`` steps (0: no OBS).
    Weights: ``weight_bits`` per output channel (0: float), ``weight_clipping`` ``'none'``
    (RTN) or ``'lwc'`` (learnable clipping, ``lwc_epochs`` passes over the calibration
    windows, Adam at ``lwc_lr``). ``smooth_alpha`` > 0: SmoothQuant's migration strength.
    ``calib_activations``: during block-wise calibration (clipping and the propagation of
    ``X`` to the next block) the activation quantizer is on (``'quantized'``, OmniQuant W4A4)
    or off (``'float'``: weight-only calibration, activations quantized at evaluation only).
    Keys and values (:mod:`.kv_spiking`): ``kv_levels`` per spike (0: floating point),
    ``kv_steps``, and ``kv_salient_fraction`` of each head's channels at ``kv_salient_steps``
    (saliency per head and channel). The weight path (:mod:`.ternary`, activations floating
    point): ``weight_path`` ``'gif'`` (ternary GIF weights, Hessian saliency, GPTQ), ``'pb'``
    (PB-LLM-style), ``'rtn'`` (plain ternary rounding) with ``weight_salient_fraction`` of each
    layer's weights at ``weight_salient_steps`` ternary steps (pb: kept floating point)."""

    levels: int = 16
    steps: int = 1
    path: str = "spike"
    salient_fraction: float = 0.0
    salient_steps: int = 1
    weight_bits: int = 0
    weight_clipping: str = "none"
    lwc_epochs: int = 2
    lwc_lr: float = 1e-2
    smooth_alpha: float = 0.0
    calib_activations: str = "quantized"
    kv_levels: int = 0
    kv_steps: int = 1
    kv_salient_fraction: float = 0.0
    kv_salient_steps: int = 1
    weight_path: str = "none"
    weight_salient_fraction: float = 0.1
    weight_salient_steps: int = 2

    def __post_init__(self):
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or self.levels == 1 \
                or self.levels < 0:
            raise ValueError(f"levels={self.levels!r} is out of range; accepted: an int >= 2, "
                             "or 0 (activations stay floating point)")
        check_positive_int("steps", self.steps)
        check_choice("path", self.path, PATHS)
        check_real("salient_fraction", self.salient_fraction, 0.0, 1.0)
        check_positive_int("salient_steps", self.salient_steps)
        if isinstance(self.weight_bits, bool) or not isinstance(self.weight_bits, int) \
                or not 0 <= self.weight_bits <= 8:
            raise ValueError(f"weight_bits={self.weight_bits!r} is not accepted; an int in 1..8, "
                             "or 0 (float)")
        check_choice("weight_clipping", self.weight_clipping, CLIPPING)
        if self.weight_clipping == "lwc" and not self.weight_bits:
            raise ValueError("weight_clipping='lwc' needs weight_bits > 0")
        check_positive_int("lwc_epochs", self.lwc_epochs)
        check_real("lwc_lr", self.lwc_lr, 0.0, low_open=True)
        check_real("smooth_alpha", self.smooth_alpha, 0.0, 1.0)
        check_choice("calib_activations", self.calib_activations, CALIB_ACTIVATIONS)
        if isinstance(self.kv_levels, bool) or not isinstance(self.kv_levels, int) or self.kv_levels == 1 \
                or self.kv_levels < 0:
            raise ValueError(f"kv_levels={self.kv_levels!r} is out of range; accepted: an int >= 2, "
                             "or 0 (keys and values stay floating point)")
        check_positive_int("kv_steps", self.kv_steps)
        check_real("kv_salient_fraction", self.kv_salient_fraction, 0.0, 1.0)
        check_positive_int("kv_salient_steps", self.kv_salient_steps)
        check_choice("weight_path", self.weight_path, WEIGHT_PATHS)
        check_real("weight_salient_fraction", self.weight_salient_fraction, 0.0, 1.0)
        check_positive_int("weight_salient_steps", self.weight_salient_steps)
        if self.weight_path != "none" and (self.levels or self.weight_bits):
            raise ValueError(f"weight_path={self.weight_path!r} (ternary weights) keeps activations in "
                             f"floating point: it needs levels=0 and weight_bits=0, got "
                             f"levels={self.levels}, weight_bits={self.weight_bits}")

    @property
    def needs_calibration(self) -> bool:
        return self.salient_fraction > 0 or self.smooth_alpha > 0 or self.weight_clipping != "none" \
            or (self.kv_levels > 0 and self.kv_salient_fraction > 0) or self.weight_path in ("gif", "pb")


def check_architecture(model: nn.Module) -> None:
    """``ValueError`` naming the supported architectures unless ``model`` is a Llama, Qwen2 or
    Mistral causal LM (the LLaMA layout: ``model.model.layers[i].self_attn / .mlp``)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        types = ", ".join(SUPPORTED_MODEL_TYPES)
        raise ValueError(f"spikify supports {SUPPORTED_NAMES} (model_type {types}; "
                         f"the LLaMA layout); got model_type {model_type!r} ({type(model).__name__})")


def decoder_linears(model: nn.Module) -> Dict[str, nn.Module]:
    """``{qualified name: module}`` of the projections of every decoder block of a supported
    model; ``ValueError`` naming the supported architectures otherwise."""
    check_architecture(model)
    return {f"model.layers.{i}.{p}": layer.get_submodule(p)
            for i, layer in enumerate(model.model.layers) for p in PROJECTIONS}


def channel_saliency(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``S_j = mean_n [X ⊙ (X Wᵀ W)]_nj`` for tokens ``x`` (``[N, C]``) into a layer of weight
    ``W`` (``[O, C]``): the first-order OBS saliency of each input channel (float32)."""
    x, w = x.float(), weight.float()
    return (x * ((x @ w.t()) @ w)).mean(0)


@torch.no_grad()
def obs_saliency(model: nn.Module, calibration_data: torch.Tensor,
                 batch_size: int = 1) -> Dict[str, torch.Tensor]:
    """``{layer name: [C] saliency S_j}`` (module docstring) of every decoder projection, from
    forward passes of ``calibration_data`` (``[n, seq_len]`` token ids) through the whole float
    ``model`` (for inspection; :func:`spikify` computes it block by block)."""
    linears = decoder_linears(model)
    stats = {name: _Stats() for name in linears}
    handles = [m.register_forward_pre_hook(stats[name].hook) for name, m in linears.items()]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        for batch in calibration_data.split(batch_size):
            model(input_ids=batch.to(device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {name: s.saliency() for name, s in stats.items()}


class _Stats:
    """Running OBS saliency sum and ``max|X_j|`` of one layer's inputs (a forward pre-hook)."""

    def __init__(self, hessian: bool = False):
        self.sum, self.count, self.absmax = None, 0, None
        self.hessian = 0.0 if hessian else None

    def hook(self, module, args):
        x = args[0].reshape(-1, module.in_features)
        s = channel_saliency(x, module.weight).double().cpu() * x.shape[0]
        m = x.detach().abs().amax(0).float().cpu()
        self.sum = s if self.sum is None else self.sum + s
        self.absmax = m if self.absmax is None else torch.maximum(self.absmax, m)
        self.count += x.shape[0]
        if self.hessian is not None:  # H = 2 X Xᵀ / n (accumulated as a sum, divided at the end)
            xf = x.detach().double().cpu()
            self.hessian = self.hessian + 2 * xf.t() @ xf

    def saliency(self) -> torch.Tensor:
        return (self.sum / max(self.count, 1)).float()


def salient_steps(saliency: torch.Tensor, config: SpikifyConfig) -> torch.Tensor:
    """``[C]`` steps: ``salient_steps`` for the ``ceil(salient_fraction * C)`` most salient
    channels (ties broken by channel index), ``steps`` for the rest."""
    steps = torch.full(saliency.shape, config.steps, dtype=torch.long)
    top = math.ceil(config.salient_fraction * saliency.numel())
    if top:
        steps[torch.topk(saliency, top, sorted=False).indices] = config.salient_steps
    return steps


def smoothing_scales(absmax: torch.Tensor, weights: List[torch.Tensor], alpha: float) -> torch.Tensor:
    """SmoothQuant: ``s_j = max|X_j|^α / max_{W} max_o |W_oj|^(1-α)`` over the layers ``weights``
    sharing the input (both maxima clamped at 1e-5, as SmoothQuant)."""
    w_max = torch.stack([w.detach().abs().amax(0).float().cpu() for w in weights]).amax(0).clamp_min(1e-5)
    return (absmax.clamp_min(1e-5).pow(alpha) / w_max.pow(1 - alpha)).clamp_min(1e-5)


class _Captured(Exception):
    pass


@torch.no_grad()
def block_inputs(model: nn.Module, calibration_data: torch.Tensor,
                 device: Optional[torch.device] = None) -> Tuple[torch.Tensor, Dict[str, Any]]:
    """``(X, kwargs)``: the hidden states entering decoder block 0 for each calibration window
    (``[n, S, d]``, one window at a time) and the keyword arguments the model passes to its
    blocks (position embeddings, mask) for one window (the same for every window of length S)."""
    layers = model.model.layers
    inputs, kwargs = [], {}

    def catch(module, args, kw):
        hidden = args[0] if args else kw["hidden_states"]
        inputs.append(hidden.to(device) if device is not None else hidden)
        kwargs.update({k: v for k, v in kw.items() if k not in ("hidden_states", "cache", "past_key_values",
                                                                  "past_key_value", "use_cache")})
        raise _Captured

    handle = layers[0].register_forward_pre_hook(catch, with_kwargs=True)
    try:
        model_device = next(model.parameters()).device
        for window in calibration_data:
            try:
                model(input_ids=window.unsqueeze(0).to(model_device), use_cache=False)
            except _Captured:
                pass
    finally:
        handle.remove()
    if device is not None:
        kwargs = {k: _to(v, device) for k, v in kwargs.items()}
    return torch.cat(inputs), kwargs


def _to(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(_to(v, device) for v in value)
    return value


def _run(block: nn.Module, x: torch.Tensor, kwargs: Dict[str, Any]) -> torch.Tensor:
    out = block(x, **kwargs)
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def _forward_all(block: nn.Module, x: torch.Tensor, kwargs: Dict[str, Any]) -> torch.Tensor:
    return torch.cat([_run(block, x[j: j + 1], kwargs) for j in range(x.shape[0])])


def train_clipping(block: nn.Module, x: torch.Tensor, target: torch.Tensor, kwargs: Dict[str, Any],
                   config: SpikifyConfig, seed: int = 0) -> List[float]:
    """OmniQuant LWC for one block: Adam on the clip logits of its :class:`GIFLinear` layers,
    ``lwc_epochs`` passes over the windows (one window per step, order from ``seed``),
    minimising ``mean (block^q(X) - Y)²`` with the activation quantizer in its fake path
    (straight-through). Returns the mean loss of each epoch."""
    layers = [m for m in block.modules() if isinstance(m, GIFLinear)]
    params = [p for m in layers for p in m.enable_clipping()]
    frozen = [(p, p.requires_grad) for n, p in block.named_parameters() if "clip_" not in n]
    paths = [m.path for m in layers]
    for p, _ in frozen:
        p.requires_grad_(False)
    for m in layers:
        m.path = "fake"
    optimizer = torch.optim.Adam(params, lr=config.lwc_lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    try:
        with torch.enable_grad():
            for _ in range(config.lwc_epochs):
                total = 0.0
                for j in torch.randperm(x.shape[0], generator=generator).tolist():
                    loss = F.mse_loss(_run(block, x[j: j + 1], kwargs).float(), target[j: j + 1].float())
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total += loss.item()
                losses.append(total / x.shape[0])
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
        for m, path in zip(layers, paths):
            m.path = path
    return losses


def convert_block(block: nn.Module, config: SpikifyConfig,
                  stats: Optional[Dict[str, Tuple[torch.Tensor, torch.Tensor]]] = None,
                  saliency: Optional[Dict[str, torch.Tensor]] = None) -> Dict[str, GIFLinear]:
    """Replace the projections of one decoder block by :class:`GIFLinear` in place:
    ``stats`` ``{projection: (saliency, max|X|)}`` from calibration (or ``saliency`` given)
    set smoothing and OBS steps, and are kept as the buffer ``saliency``. Weights are not
    frozen here (learnable clipping may follow). Returns ``{projection: GIFLinear}``."""
    linears = {p: block.get_submodule(p) for p in PROJECTIONS}
    new = {}
    for group in SHARED_INPUTS:
        scale = None
        if config.smooth_alpha > 0:
            if stats is None:
                raise ValueError("smooth_alpha > 0 (SmoothQuant) needs calibration data")
            weights = [linears[p].weight for p in group]
            scale = smoothing_scales(stats[group[0]][1], weights, config.smooth_alpha)
        for p in group:
            layer = GIFLinear(linears[p], config.levels, config.steps, config.path, config.weight_bits)
            if scale is not None:
                layer.set_smoothing(scale)
            s = saliency[p] if saliency is not None else (stats[p][0] if stats is not None else None)
            if s is not None:
                layer.saliency = s.to(layer._device())
            if config.salient_fraction > 0:
                if s is None:
                    raise ValueError("salient_fraction > 0 (OBS) needs calibration_data "
                                     "([n, seq_len] token ids)")
                layer.set_channel_steps(salient_steps(s, config))
            parent, _, child = p.rpartition(".")
            setattr(block.get_submodule(parent), child, layer)
            new[p] = layer
    return new


def spikify(model: nn.Module, calibration_data: Optional[torch.Tensor], config: SpikifyConfig,
            saliency: Optional[Dict[str, torch.Tensor]] = None, device: Optional[torch.device] = None,
            log: Optional[list] = None) -> nn.Module:
    """Convert ``model`` in place, block by block (module docstring): every decoder projection
    becomes a :class:`GIFLinear`. ``calibration_data`` (``[n, seq_len]`` token ids) is needed for
    OBS (``salient_fraction > 0``, unless ``saliency`` ``{layer name: [C]}`` is given),
    smoothing and learnable clipping; when given, each layer keeps its block-wise saliency
    (:func:`configure_activations` can then add OBS later). ``device``: where each block is
    calibrated (the block and
    ``X`` move there, the block moves back). ``log``: a list receiving one dict per block (LWC
    losses). Returns ``model``."""
    linears = decoder_linears(model)
    if saliency is not None and set(saliency) != set(linears):
        raise ValueError("saliency must hold one entry per decoder projection (obs_saliency of this model)")
    needed = config.needs_calibration and not (saliency is not None and config.smooth_alpha == 0
                                               and config.weight_clipping == "none")
    calibrate = calibration_data is not None
    if needed and not calibrate:
        needs = [what for what, on in (("salient_fraction > 0 (OBS)", config.salient_fraction > 0),
                                       ("smooth_alpha > 0", config.smooth_alpha > 0),
                                       ("weight_clipping='lwc'", config.weight_clipping == "lwc"),
                                       ("kv_salient_fraction > 0", config.kv_levels > 0
                                        and config.kv_salient_fraction > 0)) if on]
        raise ValueError(f"{' and '.join(needs)} needs calibration_data ([n, seq_len] token ids)")
    was_training = model.training
    model.eval()
    if config.kv_levels:
        use_spiking_attention(model)
    x = kwargs = None
    if calibrate:
        x, kwargs = block_inputs(model, calibration_data, device)
    for i, block in enumerate(model.model.layers):
        home = next(block.parameters()).device
        if calibrate and device is not None:
            block.to(device)
        stats = target = None
        if calibrate:
            recorders = {p: _Stats(hessian=config.weight_path in ("gif", "pb")) for p in PROJECTIONS}
            handles = [block.get_submodule(p).register_forward_pre_hook(recorders[p].hook)
                       for p in PROJECTIONS]
            kv_recorder = block.self_attn._kv_recorder = KVSaliency() if config.kv_levels else None
            try:
                target = _forward_all(block, x, kwargs)
            finally:
                for h in handles:
                    h.remove()
                block.self_attn._kv_recorder = None
            stats = {p: (r.saliency(), r.absmax) for p, r in recorders.items()}
            hessians = {p: r.hessian / r.count for p, r in recorders.items() if r.hessian is not None}
        block_saliency = None if saliency is None else \
            {p: saliency[f"model.layers.{i}.{p}"] for p in PROJECTIONS}
        if config.weight_path != "none":
            layers = ternary_block(block, config, hessians if calibrate else {})
        else:
            layers = convert_block(block, config, stats, block_saliency)
        if config.kv_levels:
            attach_kv_spiking(block.self_attn, model.config, config,
                              kv_recorder.result() if calibrate else None)
        for layer in layers.values():
            layer.float_inputs = config.calib_activations == "float"
        entry = {"block": i}
        if config.weight_clipping == "lwc":
            entry["lwc_loss"] = train_clipping(block, x, target, kwargs, config, seed=i)
        for layer in layers.values():
            if isinstance(layer, GIFLinear):
                layer.freeze_weight()
        if calibrate:
            if config.weight_clipping == "lwc" or i + 1 < len(model.model.layers):
                out = _forward_all(block, x, kwargs)
                entry["block_mse"] = F.mse_loss(out.float(), target.float()).item()
                x = out
            del target
            if device is not None:
                block.to(home)
        for layer in layers.values():
            layer.float_inputs = False
        if log is not None:
            log.append(entry)
    for m in model.modules():
        if isinstance(m, GIFLinear):
            m.reset_counts()
    model.train(was_training)
    return model


def ternary_block(block: nn.Module, config: SpikifyConfig, hessians: Dict[str, torch.Tensor]) -> dict:
    """Replace the projections of one block by :class:`~.ternary.TernaryGIFLinear`
    (``config.weight_path``), with the layers' Hessians ``{projection: H}``."""
    new = {}
    for p in PROJECTIONS:
        linear = block.get_submodule(p)
        layer = TernaryGIFLinear(linear, hessians.get(p), config.weight_path, config.weight_salient_fraction,
                                 config.weight_salient_steps, path=config.path)
        parent, _, child = p.rpartition(".")
        setattr(block.get_submodule(parent), child, layer)
        new[p] = layer
    return new


def attach_kv_spiking(attention: nn.Module, model_config, config: SpikifyConfig,
                      saliency: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> KVSpiking:
    """Give one attention layer a :class:`~.kv_spiking.KVSpiking` (``config.kv_*``) with the
    per-head-channel ``saliency`` ``(keys, values)`` from calibration; returns it."""
    heads = model_config.num_key_value_heads or model_config.num_attention_heads
    head_dim = getattr(model_config, "head_dim", None) or \
        model_config.hidden_size // model_config.num_attention_heads
    device = next(attention.parameters()).device
    kv = KVSpiking(heads, head_dim, config.kv_levels, config.kv_steps, config.path).to(device)
    if saliency is not None:
        kv.key_saliency, kv.value_saliency = (s.to(device) for s in saliency)
    if config.kv_salient_fraction > 0:
        if saliency is None:
            raise ValueError("kv_salient_fraction > 0 needs calibration_data ([n, seq_len] token ids)")
        kv.set_salient(config.kv_salient_fraction, config.kv_salient_steps)
    attention.kv_spiking = kv
    return kv


def configure_activations(model: nn.Module, config: SpikifyConfig) -> nn.Module:
    """Set the activation spiking of every :class:`GIFLinear` of a converted model to
    ``config`` (levels, steps, path, OBS steps from each layer's stored ``saliency``), keeping
    its weights: e.g. the same learnable-clipping W4 weights with and without OBS."""
    for name, m in model.named_modules():
        if isinstance(m, GIFLinear):
            m.configure_activations(config.levels, config.steps, config.path)
            if config.salient_fraction > 0:
                if m.saliency is None:
                    raise ValueError(f"{name} has no stored saliency (converted without calibration data)")
                m.set_channel_steps(salient_steps(m.saliency.cpu(), config))
    return model


def spiking_summary(model: nn.Module) -> Dict[str, float]:
    """Over every :class:`GIFLinear`, weighted by ``in_features * out_features`` (each layer's
    share of the matrix-product work): the average steps per input channel and the average spike
    train length in bits, ``steps * log2(L)`` (``log2 L`` bits per step); and the layer count;
    with K/V spiking, the same averages over keys and values (``kv_average_steps`` / ``_bits``)."""
    layers = [m for m in model.modules() if isinstance(m, GIFLinear)]
    work = sum(m.in_features * m.out_features for m in layers)

    def average(value):
        return sum(value(m) * m.in_features * m.out_features for m in layers) / work if work else 0.0

    summary = {"gif_linears": len(layers), "average_steps": average(lambda m: m.average_steps),
               "average_bits": average(lambda m: m.average_steps * math.log2(m.levels) if m.levels else 16.0)}
    kv = [m for m in model.modules() if isinstance(m, KVSpiking)]
    if kv:
        summary["kv_average_steps"] = sum(m.average_steps() for m in kv) / len(kv)
        summary["kv_average_bits"] = sum(m.average_steps() * math.log2(m.levels) for m in kv) / len(kv)
    return summary


def stored_saliency(model: nn.Module) -> Dict[str, torch.Tensor]:
    """``{layer name: [C] saliency}`` kept by the :class:`GIFLinear` layers of a converted model
    (block-wise OBS saliency), to convert another copy of the float model the same way."""
    return {name: m.saliency for name, m in model.named_modules()
            if isinstance(m, GIFLinear) and m.saliency is not None}
