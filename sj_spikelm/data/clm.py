"""Fixed-length token blocks as causal-LM examples."""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch


class CausalBlocks(torch.utils.data.Dataset):
    """Rows of a ``[n, seq_len]`` token-id array as ``{"input_ids", "labels"}`` with
    ``labels = input_ids``: the model shifts them (position ``i`` predicts token ``i + 1``), so
    each block scores its last ``seq_len - 1`` tokens."""

    def __init__(self, blocks: np.ndarray):
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        ids = torch.from_numpy(np.asarray(self.blocks[i], dtype=np.int64))
        return {"input_ids": ids, "labels": ids.clone()}
