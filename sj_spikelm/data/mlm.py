"""BERT's masked-language-model corruption with an explicit random generator."""
from __future__ import annotations

from typing import Iterable, Tuple

import numpy as np
import torch

IGNORE_INDEX = -100


def mask_tokens(input_ids: torch.Tensor, mask_token_id: int, vocab_size: int,
                special_ids: Iterable[int], probability: float = 0.15,
                generator: torch.Generator = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """BERT masking (Devlin et al. 2019, 3.1): every non-special token is selected with
    ``probability``; a selected token becomes ``[MASK]`` with probability 0.8, a uniformly
    random token with 0.1, and stays with 0.1. Returns ``(inputs, labels)`` with
    ``labels = input_ids`` at selected positions and ``-100`` elsewhere. All draws come from
    ``generator``, so the same generator state gives the same corruption."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability={probability} must be in [0, 1]")
    device = input_ids.device
    special = torch.isin(input_ids, torch.tensor(list(special_ids), device=device))
    u_select = torch.rand(input_ids.shape, generator=generator, device=device)
    u_kind = torch.rand(input_ids.shape, generator=generator, device=device)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, device=device)
    selected = (u_select < probability) & ~special
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    inputs = torch.where(selected & (u_kind < 0.8), torch.full_like(input_ids, mask_token_id), input_ids)
    inputs = torch.where(selected & (u_kind >= 0.8) & (u_kind < 0.9), random_ids, inputs)
    return inputs, labels


def step_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from integer ``keys`` (e.g. seed, step, rank) by NumPy's
    ``SeedSequence``: the masks of a step depend on nothing else, so resuming is exact."""
    seed = int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)
