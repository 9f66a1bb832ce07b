"""Saving and reloading a converted (spiking) causal LM: a folder with the float model's
``config.json`` (and tokenizer files when given), ``spikellm.json`` (the conversion settings
and, per :class:`~.gif_linear.GIFLinear`, its activation / weight settings) and
``model.safetensors`` (every parameter and buffer: integer weights ``weight_int``, scales,
smoothing, per-channel steps, saliency, K/V spiking steps; tied embeddings stored once).

    save_spikified(model, "out/", config, tokenizer)
    model = load_spikified("out/")          # same outputs, bit for bit
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from .gif_linear import GIFLinear
from .kv_spiking import KVSpiking, use_spiking_attention
from .spikify import SpikifyConfig, check_architecture
from .ternary import TernaryGIFLinear

SETTINGS_FILE = "spikellm.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = 1


def save_spikified(model: nn.Module, directory: Union[str, Path], config: Optional[SpikifyConfig] = None,
                   tokenizer=None) -> Path:
    """Write the converted ``model`` to ``directory`` (module docstring); returns the folder."""
    from safetensors.torch import save_model

    check_architecture(model)
    if any(isinstance(m, TernaryGIFLinear) for m in model.modules()):
        raise NotImplementedError("save_spikified does not handle ternary weights (weight_path) yet; "
                                  "supported: GIFLinear layers and K/V spiking")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    layers = {name: {"levels": m.levels, "steps": m.steps, "path": m.path, "weight_bits": m.weight_bits,
                     "frozen": m.weight is None}
              for name, m in model.named_modules() if isinstance(m, GIFLinear)}
    kv = {name: {"levels": m.levels, "steps": m.steps, "path": m.path, "shape": list(m.key_steps.shape)}
          for name, m in model.named_modules() if isinstance(m, KVSpiking)}
    settings = {"format": FORMAT, "spikify": None if config is None else dataclasses.asdict(config),
                "layers": layers, "kv_spiking": kv}
    (directory / SETTINGS_FILE).write_text(json.dumps(settings, indent=1))
    save_model(model, str(directory / WEIGHTS_FILE))
    return directory


def load_spikified(directory: Union[str, Path], dtype: torch.dtype = torch.float32) -> nn.Module:
    """The model written by :func:`save_spikified`, in eval mode (the float architecture from
    ``config.json``, its projections replaced by :class:`GIFLinear` as recorded, then every
    tensor loaded strictly)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    directory = Path(directory)
    settings_path = directory / SETTINGS_FILE
    if not settings_path.is_file():
        raise FileNotFoundError(f"{directory} has no {SETTINGS_FILE}: not a folder written by save_spikified")
    settings = json.loads(settings_path.read_text())
    if settings.get("format") != FORMAT:
        raise ValueError(f"{settings_path}: format {settings.get('format')!r}, this version reads {FORMAT}")
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(directory), dtype=dtype)
    check_architecture(model)
    for name, spec in settings["layers"].items():
        parent, _, child = name.rpartition(".")
        layer = GIFLinear(model.get_submodule(name), spec["levels"], spec["steps"], spec["path"],
                          spec["weight_bits"])
        if spec["frozen"]:
            layer.weight = None
        setattr(model.get_submodule(parent), child, layer)
    for name, spec in settings.get("kv_spiking", {}).items():
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, KVSpiking(*spec["shape"], spec["levels"], spec["steps"],
                                                              spec["path"]))
    if settings.get("kv_spiking"):
        use_spiking_attention(model)
    tensors = load_file(str(directory / WEIGHTS_FILE))
    for key, value in tensors.items():  # buffers that are None in a fresh layer (steps, codes, ...)
        module_name, _, attr = key.rpartition(".")
        module = model.get_submodule(module_name)
        if attr in module._buffers:
            module._buffers[attr] = value.to(dtype) if value.is_floating_point() else value
    for name, m in model.named_modules():
        if isinstance(m, GIFLinear) and m.channel_steps is not None:
            m.set_channel_steps(m.channel_steps)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    if unexpected or set(missing) - tied:
        raise ValueError(f"{directory / WEIGHTS_FILE} does not match the recorded model: "
                         f"missing {sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}")
    model.tie_weights()
    return model.eval()
