"""Train a spiking encoder-decoder (BART layout) for translation or summarization and evaluate the
generated text with BLEU (sacreBLEU, detokenised) or ROUGE-1/2/L (``rouge-score``, stemmed).

    sj-seq2seq --task multi30k --model_config '{"d_model": 256, "encoder_layers": 3, ...}' \\
        --neuron ann --T 1 --run_dir runs/m30k_ann                    # the ANN twin (BART itself)
    sj-seq2seq --task multi30k --init_from runs/m30k_ann/best --neuron "elastic_bi(k=2)" --T 4 \\
        --run_dir runs/m30k_spikelm      # a spiking student initialised from the ANN twin's weights
    sj-seq2seq ... --init_from runs/m30k_ann/best --distill runs/m30k_ann/best   # + KD from the ANN
    sj-seq2seq --task aeslc --init_from facebook/bart-base ...          # any BART (from_ann)

Arguments: ``Seq2SeqTrainingArguments`` (with :class:`~.arguments.SpikingTrainingArguments`'
defaults; generation with beam size 4 at evaluation) plus :class:`~.arguments.ModelArguments`,
:class:`~.arguments.SpikingArguments`, :class:`Seq2SeqDataArguments` and
:class:`~.arguments.DistillationArguments` (``--distill TEACHER``: cross-entropy + KL on the
logits + L2 on hidden states and attention maps, :func:`~.distill.seq2seq_distill_loss`);
``--help`` lists them.
``init_from`` is a spiking encoder-decoder checkpoint (loaded as is), a BART (converted with
``from_ann``) or unset (a fresh model from ``model_config``, BART fields). The tokenizer is
``tokenizer`` if set, else ``init_from``'s, else a byte-level BPE trained on the training text
(:mod:`sj_spikelm.data.subword`), saved in ``<run_dir>/tokenizer`` and with every saved model.
The ANN is the spiking model with ``neuron='ann'`` and ``T=1``: BART exactly (tested).
``metrics.json`` reports the best evaluation (by BLEU or ROUGE-L; its model is in ``best/``) and
the final one, with firing rates over the evaluation set and the energy per (source, reference
target) pair of the first ``energy_batch`` evaluation pairs (``estimate_seq2seq_energy``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import datasets
import numpy as np
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

from ..data.seq2seq import Seq2SeqTask, load_seq2seq, seq2seq_task
from ..generation_metrics import bleu, rouge
from .arguments import (
    DistillationArguments,
    ModelArguments,
    SpikingArguments,
    SpikingTrainingArguments,
    check_values,
    parse_args,
    resolve_locations,
)
from .build import DEFAULT_NEURON, DEFAULT_T, check_same_spiking, checkpoint_model_type, resolve_neuron
from .distill import Distiller, load_teacher
from .energy import energy_per_sequence
from .finetune import subsample
from .job import JobSpec, run_folder, train_and_report
from .trainer import SpikingTrainer

log = logging.getLogger("sj_spikelm.seq2seq")


@dataclass
class Seq2SeqDataArguments:
    """The task, how much of it to use, and the tokenizer to train when none is given."""

    task: str = field(default="multi30k", metadata={
        "help": "multi30k (en->de), scitldr, aeslc; from the hub: xsum, cnn_dailymail, wmt16 (en->ro)"})
    data_dir: Optional[str] = field(default=None, metadata={
        "help": "folder holding multi30k/, scitldr-a/, aeslc/; 'hub' for the hub; unset: $SJ_SPIKELM_DATA "
                "or ../shared/data (hub-only tasks: the hub)"})
    eval_split: str = field(default="validation", metadata={"help": "validation or test"})
    max_source_length: int = 128
    max_target_length: int = 64
    max_train_samples: int = field(default=0, metadata={"help": "subsample the training set (0: all)"})
    max_eval_samples: int = field(default=0, metadata={"help": "subsample the evaluation set (0: all)"})
    subsample_seed: int = field(default=0, metadata={"help": "seed of the subsamples (same for every run)"})
    vocab_size: int = field(default=8000, metadata={
        "help": "BPE vocabulary trained when no tokenizer is given"})
    energy_batch: int = field(default=32, metadata={
        "help": "evaluation pairs of the energy estimate (the first ones, file order; 0: none)"})

    def __post_init__(self):
        seq2seq_task(self.task)  # raises naming the accepted tasks
        if self.eval_split not in ("validation", "test"):
            raise ValueError(f"eval_split={self.eval_split!r}; accepted: validation, test")
        for name in ("max_train_samples", "max_eval_samples", "energy_batch"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range; accepted: >= 0")
        for name in ("max_source_length", "max_target_length"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range; accepted: >= 2")


@dataclass
class SpikingSeq2SeqTrainingArguments(SpikingTrainingArguments, Seq2SeqTrainingArguments):
    """:class:`~.arguments.SpikingTrainingArguments` with ``Seq2SeqTrainingArguments``' fields:
    evaluation generates (``predict_with_generate``) with beam size 4;
    ``generation_max_length`` unset means ``max_target_length``."""

    predict_with_generate: bool = True
    generation_num_beams: Optional[int] = 4
    per_device_eval_batch_size: int = 32


ARGUMENTS = (ModelArguments, SpikingArguments, Seq2SeqDataArguments, DistillationArguments,
             SpikingSeq2SeqTrainingArguments)


class SpikingSeq2SeqTrainer(SpikingTrainer, Seq2SeqTrainer):
    """:class:`~.trainer.SpikingTrainer` (calibration, divergence stop, best model, evaluation
    under a forked random state) on ``Seq2SeqTrainer`` (evaluation by ``generate()``)."""


def load_or_train_tokenizer(model_args: ModelArguments, train: datasets.Dataset, vocab_size: int,
                            folder: Path):
    """``model_args.tokenizer``; else ``init_from``'s if it has one; else the BPE saved in
    ``folder`` by an earlier slice of this run; else a byte-level BPE of ``vocab_size`` trained
    on the training sources and targets, saved to ``folder``."""
    from transformers import AutoTokenizer

    from ..data.subword import train_bpe_tokenizer

    if model_args.tokenizer:
        return AutoTokenizer.from_pretrained(model_args.tokenizer)
    init = model_args.init_from
    if init and (not Path(init).exists() or (Path(init) / "tokenizer_config.json").is_file()):
        return AutoTokenizer.from_pretrained(init)
    if (folder / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(folder)
    tokenizer = train_bpe_tokenizer(list(train["source"]) + list(train["target"]), vocab_size)
    tokenizer.save_pretrained(folder)
    log.info("trained a byte-level BPE of %d tokens on the training text (%s)", len(tokenizer), folder)
    return tokenizer


def build_seq2seq_model(model_args: ModelArguments, spiking: SpikingArguments, tokenizer):
    """The spiking encoder-decoder of ``model_args`` / ``spiking``: a spiking checkpoint as
    saved (its neuron and ``T`` must not be contradicted), except the ANN twin (``neuron='ann'``,
    ``T=1``), whose weights start a model of ``neuron`` / ``T`` as BART's do; a BART converted with
    ``from_ann``; or a fresh model from ``model_config`` with the tokenizer's vocabulary and
    special tokens."""
    import sj_spikelm as sl
    from sj_spikelm.models.spikelm_seq2seq import from_ann

    check_model(model_args)
    extra = dict(model_args.model_overrides)
    saved_type = checkpoint_model_type(model_args.init_from) if model_args.init_from else None
    fields = {"neuron": resolve_neuron(spiking.neuron or DEFAULT_NEURON, spiking.k),
              "T": DEFAULT_T if spiking.T is None else spiking.T}
    if saved_type == sl.SpikeLMSeq2SeqConfig.model_type:
        saved = sl.SpikeLMSeq2SeqConfig.from_pretrained(model_args.init_from)
        if saved.neuron == "ann" and saved.T == 1:  # the ANN twin (BART): a student starts from it
            config = sl.SpikeLMSeq2SeqConfig.from_dict({**saved.to_dict(), **extra, **fields})
            return sl.SpikeLMForConditionalGeneration.from_pretrained(model_args.init_from, config=config)
        check_same_spiking(saved, spiking, model_args.init_from)
        return sl.SpikeLMForConditionalGeneration.from_pretrained(model_args.init_from, **extra)
    if model_args.init_from:
        return from_ann(model_args.init_from, **fields, **extra)
    tokens = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
              "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
              "decoder_start_token_id": tokenizer.eos_token_id, "forced_eos_token_id": tokenizer.eos_token_id}
    config = sl.SpikeLMSeq2SeqConfig(**{**tokens, **model_args.model_config, **extra, **fields})
    return sl.SpikeLMForConditionalGeneration(config)


def tokenize(ds: datasets.Dataset, tokenizer, data: Seq2SeqDataArguments) -> datasets.Dataset:
    """``input_ids`` / ``attention_mask`` of the sources and ``labels`` of the targets, truncated
    to ``max_source_length`` / ``max_target_length``, unpadded."""
    def encode(batch):
        return tokenizer(batch["source"], text_target=batch["target"], truncation=True,
                         max_length=data.max_source_length, max_target_length=data.max_target_length)

    return ds.map(encode, batched=True, remove_columns=ds.column_names)


class GenerationMetrics:
    """``compute_metrics`` of generated ids: decoded without special tokens and scored against
    every reference of the evaluation rows (in evaluation order) with BLEU or ROUGE."""

    def __init__(self, task: Seq2SeqTask, tokenizer, references: List[List[str]]):
        self.task, self.tokenizer, self.references = task, tokenizer, references

    def __call__(self, prediction) -> Dict[str, float]:
        ids = prediction.predictions
        ids = ids[0] if isinstance(ids, tuple) else ids
        ids = np.where(ids < 0, self.tokenizer.pad_token_id, ids)  # -100 from padding across batches
        texts = [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        if len(texts) != len(self.references):
            raise ValueError(f"{len(texts)} generated texts for {len(self.references)} evaluation rows")
        score = bleu if self.task.kind == "translation" else rouge
        scores = score(texts, self.references)
        lengths = (ids != self.tokenizer.pad_token_id).sum(-1)
        return {**scores, "gen_len": float(lengths.mean())}

    def scores(self, evaluation: Dict[str, Any]) -> Dict[str, float]:
        """Table scores of one evaluation: BLEU (0-100), or ROUGE-1/2/L x 100."""
        if self.task.kind == "translation":
            return {"BLEU": evaluation["bleu"]} if evaluation.get("bleu") is not None else {}
        names = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L"}
        return {names[k]: 100 * evaluation[k] for k in names if evaluation.get(k) is not None}


def check_config(values: Dict[str, Any]) -> None:
    """Validate a job configuration (a grid run's) without loading data or models."""
    check_model(check_values(ARGUMENTS, values)[0])


def check_model(model_args: ModelArguments) -> None:
    """``ValueError`` unless ``model_args.model`` is ``spikelm`` (the ANN is its ``ann`` twin)."""
    if model_args.model != "spikelm":
        raise ValueError(f"model={model_args.model!r}: the seq2seq job trains model='spikelm' "
                         "(the ANN, BART, is neuron='ann' with T=1)")


def run(model_args: ModelArguments, spiking: SpikingArguments, data: Seq2SeqDataArguments,
        distill: DistillationArguments, args: SpikingSeq2SeqTrainingArguments) -> Optional[Dict[str, Any]]:
    """Train and evaluate as configured; returns the metrics (None for an unfinished time slice)."""
    task = seq2seq_task(data.task)
    resolve_locations((model_args, spiking, data, distill))
    if args.generation_max_length is None:
        args.generation_max_length = data.max_target_length
    with run_folder(args) as run_dir:
        seed = data.subsample_seed
        train = subsample(load_seq2seq(task, "train", data.data_dir), data.max_train_samples, seed)
        dev = subsample(load_seq2seq(task, data.eval_split, data.data_dir), data.max_eval_samples, seed)
        tokenizer = load_or_train_tokenizer(model_args, train, data.vocab_size, run_dir / "tokenizer")
        model = build_seq2seq_model(model_args, spiking, tokenizer)
        if model.config.vocab_size < len(tokenizer):
            raise ValueError(f"the model's vocab_size={model.config.vocab_size} is smaller than the "
                             f"tokenizer's {len(tokenizer)} tokens")
        distiller = None
        if distill.distill:
            teacher = load_teacher(distill.distill, "seq2seq")
            if teacher.config.vocab_size != model.config.vocab_size:
                raise ValueError(f"teacher {distill.distill!r} has vocab_size={teacher.config.vocab_size}, "
                                 f"the student {model.config.vocab_size}: distil from a teacher of the "
                                 "same tokenizer")
            distiller = Distiller(teacher, distill.distill_weights, distill.distill_temperature)
        references = list(dev["references"])
        train, dev = tokenize(train, tokenizer, data), tokenize(dev, tokenizer, data)
        log.info("%s: %d train / %d %s examples, %s %s T=%d (%d parameters)", task.name, len(train), len(dev),
                 data.eval_split, type(model).__name__, model.config.neuron, model.config.T,
                 sum(p.numel() for p in model.parameters()))
        from transformers import DataCollatorForSeq2Seq

        collator = DataCollatorForSeq2Seq(tokenizer, model=model)
        energy_rows = dev.select(range(min(data.energy_batch, len(dev)))) if data.energy_batch else None
        metrics = GenerationMetrics(task, tokenizer, references)
        spec = JobSpec("seq2seq", task.metric, True, metrics.scores,
                       {"task": task.name, "eval_split": data.eval_split, "train_examples": len(train),
                        "eval_examples": len(dev), "num_beams": args.generation_num_beams})
        return train_and_report(
            spec, args, (model_args, spiking, data, distill, args), model, run_dir=run_dir,
            train_dataset=train,
            eval_dataset=dev, data_collator=collator, processing_class=tokenizer, compute_metrics=metrics,
            trainer_class=SpikingSeq2SeqTrainer, distiller=distiller,
            energy=None if energy_rows is None else (lambda m: energy_per_sequence(m, collator, energy_rows)))


def main(argv=None) -> None:
    run(*parse_args(ARGUMENTS, argv, description=__doc__))


if __name__ == "__main__":
    main()
