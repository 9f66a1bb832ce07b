"""WikiText-2 as one token stream, the way GPTQ and OmniQuant evaluate language models: the
split's rows (the file's lines, each with its newline, as the Hugging Face ``wikitext`` rows)
joined with ``"\\n\\n"`` and tokenised in one call, without special tokens."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from .paths import resolve_location

SPLITS = ("train", "valid", "test")


def wikitext2_text(split: str = "test", path: Optional[Union[str, Path]] = None) -> str:
    """The text of a WikiText-2 split: ``path``, else ``data:wikitext-2/<split>.txt`` (the
    tokenised v1 release with ``<unk>``), rows joined with ``"\\n\\n"``."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not accepted; choose one of {', '.join(map(repr, SPLITS))}")
    file = Path(path) if path is not None else Path(resolve_location(f"data:wikitext-2/{split}.txt"))
    with open(file, encoding="utf-8") as fh:
        return "\n\n".join(fh.readlines())


def wikitext2_ids(tokenizer, split: str = "test", path: Optional[Union[str, Path]] = None) -> torch.Tensor:
    """1-D int64 token ids of :func:`wikitext2_text` (no BOS/EOS added)."""
    ids = tokenizer(wikitext2_text(split, path), add_special_tokens=False)["input_ids"]
    return torch.as_tensor(ids, dtype=torch.long)


def random_windows(ids: torch.Tensor, n: int, seq_len: int, seed: int = 0) -> torch.Tensor:
    """``[n, seq_len]`` windows of the stream ``ids`` at random starts (GPTQ's calibration
    sampling: start uniform in ``[0, len(ids) - seq_len)``, a ``torch.Generator`` seeded with
    ``seed``)."""
    if len(ids) <= seq_len:
        raise ValueError(f"the stream has {len(ids)} tokens: too few for windows of seq_len={seq_len}")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids) - seq_len, (n,), generator=g)
    return torch.stack([ids[s: s + seq_len] for s in starts.tolist()])
