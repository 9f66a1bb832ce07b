"""``TrainerCallback`` s of the jobs: firing rates (TensorBoard during training, and over every
evaluation), the energy estimate at every evaluation, TensorBoard that purges a killed
attempt's steps on resume, time slices (``stop_after``) and training throughput across
slices. Each works with a plain ``transformers.Trainer`` too."""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, Optional

import torch
from transformers import TrainerCallback
from transformers.integrations import TensorBoardCallback
from transformers.trainer_callback import ExportableState

from .spike_totals import SpikeTotals


def eval_prefix(metrics: Dict[str, Any]) -> str:
    """The ``metric_key_prefix`` of an evaluation's metrics (``eval`` or ``eval_<split>``)."""
    for key in metrics:
        if key.endswith("_runtime"):
            return key[: -len("_runtime")]
    return "eval"


def add_eval_metrics(state, metrics: Dict[str, Any], extra: Dict[str, Any]) -> None:
    """Add ``extra`` (keys without prefix) to an evaluation's ``metrics`` (what ``evaluate``
    returns) and to its entry in ``state.log_history`` (checkpointed; ``metrics.json`` is built
    from it), prefixed like the evaluation's own keys."""
    prefix = eval_prefix(metrics)
    extra = {f"{prefix}_{k}": v for k, v in extra.items()}
    metrics.update(extra)
    last = state.log_history[-1] if state.log_history else None
    if last is not None and f"{prefix}_runtime" in last and last.get("step") == state.global_step:
        last.update(extra)


def summary_writer(log_dir: str, state):
    """A ``SummaryWriter`` in ``log_dir`` that hides what a killed attempt logged after the step
    it resumes from (TensorBoard's ``purge_step = state.global_step + 1``), so a resumed run
    shows each step once."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir, purge_step=state.global_step + 1 if state.global_step else None)


class PurgingTensorBoardCallback(TensorBoardCallback):
    """Transformers' TensorBoard logging into ``log_dir``, purging on resume (:func:`summary_writer`)."""

    def __init__(self, log_dir: str):
        super().__init__()
        self.logging_dir = log_dir
        self._state = None

    def _init_summary_writer(self, args):
        if self._state is None:
            super()._init_summary_writer(args)
        else:
            self.tb_writer = summary_writer(self.logging_dir, self._state)

    def on_train_begin(self, args, state, control, **kwargs):
        self._state = state
        super().on_train_begin(args, state, control, **kwargs)


class SpikeStatsCallback(TrainerCallback):
    """Firing rates of every spiking zoo neuron.

    * Training: a :class:`sj_spikelm.monitor.FiringRateMonitor` on the training forwards only
      (training mode with gradients: not the calibration forward, not evaluation) writes per
      neuron and time step to TensorBoard (``log_dir``) every ``logging_steps``.
    * Evaluation: spike counts summed over every evaluation batch (all-reduced over ranks) give
      ``<prefix>_firing_rate`` (all neurons together), ``<prefix>_firing_rate_per_layer`` and
      ``<prefix>_firing_rates`` (per neuron) in the evaluation's metrics. (With several
      processes, accelerate completes the last shard with repeated sequences; the predictions
      drop them, these counts keep them.)
    A model without spiking neurons gets neither."""

    def __init__(self, log_dir: Optional[str] = None):
        self.log_dir = log_dir
        self.monitor = None
        self.totals: Optional[SpikeTotals] = None
        self.writer = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from sj_spikelm.monitor import FiringRateMonitor, has_spiking_neurons

        if not state.is_world_process_zero or self.log_dir is None or not has_spiking_neurons(model):
            return
        self.writer = summary_writer(self.log_dir, state)
        every = max(1, int(args.logging_steps))
        self.monitor = FiringRateMonitor(model, self.writer, every=every, mode="train")

    def on_step_end(self, args, state, control, **kwargs):
        if self.monitor is not None:
            self.monitor.log(state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self.monitor is not None:
            self.monitor.close()
            self.writer.close()
            self.monitor = self.writer = None

    def on_prediction_step(self, args, state, control, model=None, **kwargs):
        if self.totals is None:
            self.totals = SpikeTotals(model)
        self.totals.update()

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        totals, self.totals = self.totals, None
        if totals is None or not totals.nodes:
            return
        totals.all_reduce()
        rate = totals.overall()
        add_eval_metrics(state, metrics, {"firing_rate": rate, "firing_rates": totals.rates(),
                                          "firing_rate_per_layer": totals.rates_per_layer()})
        if self.writer is not None and rate is not None:
            tag = eval_prefix(metrics).replace("_", "/", 1)  # eval/firing_rate, eval/<split>/firing_rate
            self.writer.add_scalar(f"{tag}/firing_rate", rate, state.global_step)


class EnergyCallback(TrainerCallback):
    """At every evaluation, ``energy(model)`` (``(mJ per sequence, None)``, or ``(None, reason)``
    when it cannot be estimated) becomes ``<prefix>_energy_mj_per_sequence`` in the metrics; a
    dict instead of mJ adds each of its keys (e.g. ``energy_percent_of_ann``). Runs on
    the main process, under a forked RNG so that evaluations never change the training's
    random stream."""

    def __init__(self, energy: Callable[[torch.nn.Module], Any]):
        self.energy = energy

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        device = next(model.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            value, why = self.energy(model)
        extra = dict(value) if isinstance(value, dict) else {"energy_mj_per_sequence": value}
        if why:
            extra["energy_unavailable"] = why
        add_eval_metrics(state, metrics, extra)


class StopAfterCallback(TrainerCallback):
    """End this invocation after optimizer step ``step`` with a checkpoint (a time slice); the
    learning-rate schedule still spans the whole run, and re-running resumes from it."""

    def __init__(self, step: int):
        self.step = step
        self.stopped = False

    def on_step_end(self, args, state, control, **kwargs):
        if 0 < self.step <= state.global_step < state.max_steps:
            control.should_save = control.should_training_stop = True
            self.stopped = True


class DatasetEpochCallback(TrainerCallback):
    """Tell a training dataset with ``set_epoch`` (e.g. :class:`sj_spikelm.data.mlm.MaskedBlocks`,
    whose masks change per epoch) which epoch starts, on resume too."""

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        dataset = getattr(train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(int(state.epoch or 0))


class ThroughputCallback(TrainerCallback, ExportableState):
    """Seconds spent in optimizer steps (forward, backward, update; not evaluation or saving),
    summed over every slice of a resumed run (checkpointed with the trainer state)."""

    def __init__(self):
        self.train_seconds = 0.0
        self.steps = 0
        self._tick: Optional[float] = None

    def on_step_begin(self, args, state, control, **kwargs):
        self._tick = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._tick is not None:
            self.train_seconds += time.perf_counter() - self._tick
            self.steps += 1
            self._tick = None

    def state(self) -> dict:
        return {"args": {}, "attributes": {"train_seconds": self.train_seconds, "steps": self.steps}}


def find_callback(trainer, cls):
    """The trainer's callback of type ``cls`` (resuming replaces stateful callbacks by new
    instances, so look them up instead of keeping a reference)."""
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, cls):
            return callback
    return None


def job_callbacks(run_dir: str, energy: Optional[Callable] = None, stop_after: int = 0,
                  tensorboard: bool = True) -> list:
    """The callbacks every job installs (TensorBoard in ``<run_dir>/tb``, firing rates per
    neuron in ``<run_dir>/tb/spikes``)."""
    spikes = os.path.join(run_dir, "tb", "spikes") if tensorboard else None
    callbacks = [ThroughputCallback(), DatasetEpochCallback(), SpikeStatsCallback(spikes)]
    if tensorboard:
        callbacks.insert(0, PurgingTensorBoardCallback(os.path.join(run_dir, "tb")))
    if energy is not None:
        callbacks.append(EnergyCallback(energy))
    if stop_after:
        callbacks.append(StopAfterCallback(stop_after))
    return callbacks
