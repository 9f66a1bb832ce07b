"""BERT's masked-language-model corruption, deterministic per example.

Each block's mask is drawn from a generator seeded by ``(seed, epoch, block index)``, so it
depends on nothing else: not on the batch a block lands in, not on when a loader fetches it,
not on the global random stream. A resumed run therefore masks every block exactly as the
uninterrupted run does, and every evaluation sees the same masks. (``transformers``'
``DataCollatorForLanguageModeling`` draws from the global stream while the Trainer restores
that stream only after fetching the first batch of a resumed epoch, so resuming with it is
not exact.) Masks change from epoch to epoch (dynamic masking) through :meth:`MaskedBlocks.set_epoch`.
"""
from __future__ import annotations

from typing import Dict, Iterable, Tuple

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


def example_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from non-negative integer ``keys`` by NumPy's ``SeedSequence``."""
    seed = int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


class MaskedBlocks(torch.utils.data.Dataset):
    """Rows of a ``[n, seq_len]`` token-id array, masked by :func:`mask_tokens` with a generator
    seeded by ``(seed, epoch, index)``: ``{"input_ids", "attention_mask", "labels"}``. With
    ``fixed=True`` (evaluation) the epoch is ignored: the same masks every time."""

    def __init__(self, blocks: np.ndarray, tokenizer, probability: float, seed: int, fixed: bool = False):
        self.blocks, self.probability, self.seed, self.fixed = blocks, probability, seed, fixed
        self.mask_token_id, self.vocab_size = tokenizer.mask_token_id, len(tokenizer)
        self.special_ids = list(tokenizer.all_special_ids)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        ids = torch.from_numpy(np.asarray(self.blocks[i], dtype=np.int64))
        keys = (self.seed, 0, i) if self.fixed else (self.seed, 1 + self.epoch, i)
        inputs, labels = mask_tokens(ids, self.mask_token_id, self.vocab_size, self.special_ids,
                                     self.probability, example_generator(*keys))
        return {"input_ids": inputs, "attention_mask": torch.ones_like(inputs), "labels": labels}
