"""Perplexity of a causal language model on one token stream cut into non-overlapping windows
(the GPTQ / OmniQuant protocol for WikiText-2, :func:`sj_spikelm.data.wikitext.wikitext2_ids`)."""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn


def windows(ids: torch.Tensor, seq_len: int, max_windows: Optional[int] = None) -> torch.Tensor:
    """``[n, seq_len]``: the first ``n = floor(len(ids) / seq_len)`` non-overlapping windows of the
    1-D stream ``ids`` (the remainder is dropped), at most ``max_windows`` of them."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.is_floating_point():
        raise TypeError(f"ids must be a 1-D integer tensor (one token stream), got {type(ids).__name__}"
                        + (f" of shape {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else ""))
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 2:
        raise ValueError(f"seq_len={seq_len!r} is not accepted; an int >= 2")
    if max_windows is not None and (isinstance(max_windows, bool) or not isinstance(max_windows, int)
                                    or max_windows < 1):
        raise ValueError(f"max_windows={max_windows!r} is not accepted; an int >= 1 or None (all windows)")
    n = len(ids) // seq_len
    if n == 0:
        raise ValueError(f"the stream has {len(ids)} tokens: not one window of seq_len={seq_len}")
    if max_windows is not None:
        n = min(n, max_windows)
    return ids[: n * seq_len].view(n, seq_len)


@torch.no_grad()
def perplexity(model: nn.Module, ids: torch.Tensor, seq_len: int, max_windows: Optional[int] = None,
               batch_size: int = 1) -> Dict[str, float]:
    """``exp(mean NLL)`` of ``model`` over the tokens of :func:`windows`: each window is one
    sequence; every token but its first is predicted from the tokens before it in the window::

        NLL = -(1 / (n (seq_len - 1))) * sum_w sum_{i>=1} log p(x[w, i] | x[w, <i])

    (GPTQ's ``eval`` multiplies each window's mean loss by ``seq_len`` instead of
    ``seq_len - 1`` in numerator and denominator alike, the same value). The model runs in eval
    mode (its mode is restored), log-probabilities in float32, sums in float64. Returns
    ``{"perplexity", "nll", "windows", "seq_len", "tokens"}``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is not accepted; an int >= 1")
    blocks = windows(ids, seq_len, max_windows)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    try:
        for batch in blocks.split(batch_size):
            batch = batch.to(device)
            logits = model(input_ids=batch).logits[:, :-1].float()
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                                  reduction="sum")
            total += nll.double().cpu()
    finally:
        model.train(was_training)
    tokens = blocks.shape[0] * (seq_len - 1)
    mean = total.item() / tokens
    return {"perplexity": math.exp(mean), "nll": mean, "windows": int(blocks.shape[0]), "seq_len": seq_len,
            "tokens": tokens}
