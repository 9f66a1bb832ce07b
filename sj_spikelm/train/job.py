"""What every training job does around ``SpikingTrainer.train()``: the run folder
(:mod:`sj_spikelm.run_dir`), its lock, logging, resuming, and ``metrics.json``.

A run folder holds ``config.yaml`` (the job's resolved arguments), ``train.log``, ``tb/``
(TensorBoard; ``tb/spikes``: firing rates per neuron), ``checkpoint-<step>/`` (the Trainer's),
``best/`` (the best evaluation's model), ``final/`` (with ``save_final``) and ``metrics.json``,
written last and atomically: its presence means the job finished. While the job runs it holds
the folder's lock (``running.lock``, an OS lock released when the process dies); a second job
on the same folder exits with status ``EXIT_LOCKED``. Re-running a finished job returns its
``metrics.json``; re-running an unfinished one resumes from its newest complete checkpoint,
which must come from the same configuration.
"""
from __future__ import annotations

import contextlib
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import yaml

from .. import run_dir as rd
from .arguments import RUN_CONTROL, SpikingTrainingArguments, flat_config
from .build import describe_model
from .callbacks import StopAfterCallback, ThroughputCallback, find_callback, job_callbacks
from .checkpoints import resumable_checkpoint
from .trainer import SpikingTrainer, TrainingDiverged

log = logging.getLogger("sj_spikelm")


@dataclass
class JobSpec:
    """How a job names, ranks and tabulates its evaluations."""

    name: str                                   # "finetune", "pretrain", ...
    metric: str                                 # key (without "eval_") of the model-selection metric
    greater_is_better: bool
    scores: Callable[[Dict[str, Any]], Dict[str, float]]  # evaluation -> table scores (x100 where usual)
    info: Dict[str, Any] = field(default_factory=dict)    # extra fields of metrics.json


def setup_logging(run_dir: Path, is_main: bool) -> None:
    """Log to ``train.log`` and stderr on the main process (warnings only on the others);
    silence the per-call progress bars of ``datasets``."""
    logger = logging.getLogger("sj_spikelm")
    for handler in logger.handlers:
        handler.close()
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(fmt)
    logger.addHandler(stream)
    if is_main:
        file = logging.FileHandler(run_dir / rd.TRAIN_LOG)
        file.setFormatter(fmt)
        logger.addHandler(file)
    import datasets

    datasets.disable_progress_bars()


def _comparable(config: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in config.items() if k not in RUN_CONTROL}


def write_config(run_dir: Path, config: Dict[str, Any], resuming: bool) -> None:
    """Write ``config.yaml``; a resumed run must have the configuration it started with."""
    path = run_dir / rd.CONFIG_FILE
    if resuming and path.is_file():
        before = _comparable(yaml.safe_load(path.read_text()) or {})
        now = _comparable(yaml.safe_load(yaml.safe_dump(config)))
        changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        if changed:
            raise ValueError(f"{run_dir} holds a run of another configuration (fields {changed} differ); "
                             "use a new run_dir, or --resume false to start this one afresh")
    rd.write_text_atomic(path, yaml.safe_dump(config, sort_keys=False))


@contextlib.contextmanager
def run_folder(args: SpikingTrainingArguments):
    """Create the run folder, take its lock (main process), set up logging and threads, and
    seed every random generator with ``args.seed`` (the model is built inside, before the
    Trainer exists). Yields the run folder; exits with ``EXIT_LOCKED`` if another process runs it."""
    from transformers import set_seed

    run_dir = Path(args.output_dir)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)
    args.device  # sets up torch.distributed under torchrun; process_index reads 0 before that
    is_main = args.process_index == 0
    lock = contextlib.nullcontext()
    if is_main:
        lock = rd.lock_or_exit(run_dir)  # exits with EXIT_LOCKED if another live process runs it
    with lock:
        setup_logging(run_dir, is_main)
        yield run_dir


def _eval_entries(log_history: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The evaluations in ``log_history``, keys without the ``eval_`` prefix. The Trainer logs
    each split of a multi-split evaluation (MNLI matched / mismatched) as its own entry: entries
    of one step are merged into one evaluation."""
    out: List[Dict[str, Any]] = []
    for entry in log_history:
        if any(k.startswith("eval_") and k.endswith("_runtime") for k in entry):
            evaluation = {(k[len("eval_"):] if k.startswith("eval_") else k): v for k, v in entry.items()}
            if out and out[-1].get("step") == evaluation.get("step"):
                out[-1].update(evaluation)
            else:
                out.append(evaluation)
    return out


def split_value(entry: Dict[str, Any], key: str, metric: str) -> Any:
    """``entry[key]`` of an evaluation, or, for a multi-split evaluation whose keys carry the split
    (``valid_firing_rate``, ``test_firing_rate``), the value of the split ``metric`` belongs to
    (``valid_loss`` -> ``valid_<key>``); None if absent."""
    if key in entry:
        return entry[key]
    for k in entry:
        split = k[: -len("_runtime")] if k.endswith("_runtime") else None
        if split and metric.startswith(split + "_"):
            return entry.get(f"{split}_{key}")
    return None


def finished_metrics(spec: JobSpec, trainer: SpikingTrainer, model, config: Dict[str, Any]) -> Dict[str, Any]:
    """``metrics.json``: the best and final evaluation (their table scores, firing rates and
    energy: of the model-selection split when the evaluation has several), every evaluation,
    throughput summed over all slices of the run, the model that actually ran, and the resolved
    configuration."""
    evals = _eval_entries(trainer.state.log_history)
    if not evals:
        raise RuntimeError("no evaluation was recorded; cannot write a result")
    for entry in evals:
        entry["scores"] = spec.scores(entry)
    ranked = [e for e in evals if isinstance(e.get(spec.metric), float) and math.isfinite(e[spec.metric])]
    pick = max if spec.greater_is_better else min
    best = pick(ranked, key=lambda e: e[spec.metric]) if ranked else evals[-1]
    final = evals[-1]
    speed = find_callback(trainer, ThroughputCallback)
    seconds = speed.train_seconds if speed is not None else None
    rate = trainer.state.global_step / seconds if seconds else None
    world = trainer.args.world_size
    return {"job": spec.name, "metric": spec.metric, **spec.info, "model": describe_model(model),
            "scores": best["scores"], "final_scores": final["scores"],
            **{k: split_value(best, k, spec.metric) for k in ("firing_rate", "firing_rate_per_layer",
                                                             "energy_mj_per_sequence")},
            **{k: v for k in ("energy_percent_of_ann", "energy_percent_of_ann_per_layer")
               if (v := split_value(best, k, spec.metric)) is not None},
            "steps": trainer.state.global_step, "total_steps": trainer.state.max_steps,
            "epochs": trainer.state.epoch, "train_seconds": seconds, "steps_per_second": rate,
            "samples_per_second": rate * trainer.args.per_device_train_batch_size * world if rate else None,
            "world_size": world, "best": best, "final": final, "evals": evals, "config": config}


def train_and_report(spec: JobSpec, args: SpikingTrainingArguments, arguments: Sequence[Any], model, *,
                     run_dir: Path, train_dataset, eval_dataset, data_collator=None, processing_class=None,
                     compute_metrics=None, distiller=None, energy=None,
                     trainer_class=SpikingTrainer) -> Optional[Dict[str, Any]]:
    """Train ``model`` with ``trainer_class`` (a :class:`SpikingTrainer`) in ``run_dir`` and write
    ``metrics.json`` (main process). Returns the metrics, or None when the invocation ended early
    (``stop_after``: a checkpoint is left to resume from)."""
    config = flat_config(arguments)
    existing = rd.read_metrics(run_dir) if args.process_index == 0 else None
    if existing is not None:
        log.info("%s already finished (%s present); delete it to run again", run_dir, rd.METRICS_FILE)
        return existing
    with args.main_process_first(desc="checking checkpoints"):
        checkpoint = resumable_checkpoint(run_dir) if args.resume else None
    if args.process_index == 0:
        write_config(run_dir, config, resuming=checkpoint is not None)
    tensorboard = "tensorboard" in args.report_to
    args.report_to = [r for r in args.report_to if r != "tensorboard"]  # ours purges on resume
    trainer = trainer_class(
        model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
        data_collator=data_collator, processing_class=processing_class, compute_metrics=compute_metrics,
        distiller=distiller, best_model_dir=run_dir / "best" if args.save_best else None,
        best_metric=(f"eval_{spec.metric}", spec.greater_is_better),
        callbacks=job_callbacks(str(run_dir), energy, args.stop_after, tensorboard))
    if checkpoint is not None:
        log.info("resuming from %s", checkpoint)
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    except TrainingDiverged as err:
        log.error("%s", err)
        raise
    stop = find_callback(trainer, StopAfterCallback)
    if stop is not None and stop.stopped:
        log.info("stopped after step %d of %d (stop_after); re-run the same command to continue",
                 trainer.state.global_step, trainer.state.max_steps)
        return None
    evals = _eval_entries(trainer.state.log_history)
    if not evals or evals[-1].get("step") != trainer.state.global_step:
        trainer.evaluate()
    if args.save_final:
        trainer.save_model(str(run_dir / "final"))
    metrics = finished_metrics(spec, trainer, model, config)
    if args.process_index == 0:
        rd.write_json_atomic(run_dir / rd.METRICS_FILE, metrics)
        log.info("done: %s", metrics["scores"])
    return metrics
