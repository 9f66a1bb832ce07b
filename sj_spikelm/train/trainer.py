"""``transformers.Trainer`` for spiking models: neuron calibration on the first training batch,
distillation as a ``compute_loss`` override with every loss part logged, and a stop on a
non-finite loss or gradient norm. Everything else (DDP / FSDP / DeepSpeed through
``accelerate``, mixed precision, gradient accumulation, checkpoints with RNG state, logging)
is the Trainer's own.
"""
from __future__ import annotations

import logging
import math
import os
from typing import Dict, Optional, Tuple

import torch
from transformers import Trainer, TrainerCallback

import neuron_zoo

from ..models.spiking import forward_in_mode
from .distill import Distiller

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A non-finite loss or gradient norm: the run stops without writing a result."""


class _ZeroGradAfterStep(TrainerCallback):
    """``module.zero_grad()`` after every optimizer step (the Trainer zeroes only the model's)."""

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def on_step_end(self, args, state, control, **kwargs):
        self.module.zero_grad(set_to_none=True)


class SpikingTrainer(Trainer):
    """``Trainer`` with three additions, each a no-op for a model without spiking neurons:

    * **calibration**: before the first optimizer step, if some neuron of the model still has
      uncalibrated per-step state (e.g. SpikeLM's amplitude ``alpha[t] = k mean|m[t]|``, Eq. 10),
      the first training batch runs once in training mode without gradients, through the
      wrapped model (under ``torch.distributed`` the neurons all-reduce the statistic, so every
      rank calibrates identically). A resumed run restores the calibrated state from its
      checkpoint and never calibrates again.
    * **distillation**: with ``distiller``, the training ``compute_loss`` adds its terms to the
      task loss and logs each part (averaged over the logging window) next to ``loss``;
      evaluation reports the task loss. Parameters the distiller learns (``distiller.learned``,
      e.g. SpAD's projections) are one more optimizer group (no weight decay) and are saved in
      every checkpoint (``distiller.pt``) and restored on resume.
    * **evaluation** leaves the training's random stream untouched, so results do not depend
      on when evaluations happen.
    * **best model**: with ``best_model_dir`` and ``best_metric=(key, greater_is_better)``, every
      evaluation that improves ``key`` over the earlier evaluations of ``state.log_history``
      saves the model there (``save_model``: FSDP / DeepSpeed aware), e.g. to serve as a
      distillation teacher. (Not ``args.metric_for_best_model``: with it, the Trainer ends a run
      with ``save_total_limit=1`` by deleting the newest checkpoint when it is not the best one,
      which would lose a time slice's resume point.)
    * **divergence**: a non-finite training loss or (outside fp16 loss scaling, where skipped
      steps are expected) gradient norm raises :class:`TrainingDiverged` naming the step, so the
      job exits non-zero and writes no ``metrics.json``.
    """

    def __init__(self, *args, distiller: Optional[Distiller] = None,
                 best_model_dir: Optional[os.PathLike] = None, best_metric: Optional[Tuple[str, bool]] = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.distiller = distiller
        self.best_model_dir, self.best_metric = best_model_dir, best_metric
        self._calibration_checked = False
        self._loss_parts: Dict[str, torch.Tensor] = {}
        self._loss_part_count = 0
        if self._learned() is not None:
            self.add_callback(_ZeroGradAfterStep(self._learned()))

    # ------------------------------------------------------------------ calibration
    def calibrate_on(self, model: torch.nn.Module, inputs: Dict[str, torch.Tensor]) -> None:
        """One forward of ``inputs`` in training mode without gradients (the neurons calibrate)."""
        forward_in_mode(model, True, **{k: v for k, v in inputs.items() if k != "labels"})
        log.info("calibrated the neurons on the first training batch (%d sequences)",
                 len(next(iter(inputs.values()))))

    def training_step(self, model, inputs, num_items_in_batch=None):
        if not self._calibration_checked:
            self._calibration_checked = True
            if neuron_zoo.needs_calibration(self.model):
                self.calibrate_on(model, self._prepare_inputs(inputs))
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"training diverged: loss {float(loss)} at step "
                                   f"{self.state.global_step + 1}; no result is written (lower "
                                   "learning_rate, or check the data)")
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
        # the one place where Trainer hands out the gradient norm (before the optimizer step)
        norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        scaled = self.accelerator.scaler is not None  # fp16: inf norms are skipped steps
        if norm is not None and not scaled and not math.isfinite(float(norm)):
            raise TrainingDiverged(f"training diverged: gradient norm {float(norm)} at step "
                                   f"{self.state.global_step + 1}; no result is written")
        return norm

    def get_decay_parameter_names(self, model) -> list:
        """The Trainer's rule (no weight decay on biases and norms), and none on the parameters
        of zoo neurons (learnable amplitudes, PSN's weights)."""
        own = {f"{name}.{p}" if name else p for name, module in model.named_modules()
               if neuron_zoo.is_neuron(module) for p, _ in module.named_parameters(recurse=False)}
        return [n for n in super().get_decay_parameter_names(model) if n not in own]

    # ------------------------------------------------------------------ evaluation, best model
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        """``Trainer.evaluate`` under a forked random state (an evaluation's data loader draws a
        seed from the global stream: without the fork, when evaluations happen would change the
        training's dropout), then the best-model save."""
        previous = self.best_so_far()
        device = self.args.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        multi_split = isinstance(eval_dataset if eval_dataset is not None else self.eval_dataset, dict)
        if self.best_model_dir is not None and self.best_metric is not None and not multi_split:
            # (a multi-split evaluation came through here once per split: saved there)
            key, greater = self.best_metric
            value = metrics.get(key)
            if isinstance(value, float) and math.isfinite(value) and \
                    (previous is None or (value > previous if greater else value < previous)):
                self.save_model(os.fspath(self.best_model_dir))
        return metrics

    def best_so_far(self) -> Optional[float]:
        """The best finite value of ``best_metric`` over the evaluations in ``state.log_history``
        (checkpointed, so a resumed run knows it)."""
        if self.best_metric is None:
            return None
        key, greater = self.best_metric
        values = [e[key] for e in self.state.log_history
                  if isinstance(e.get(key), float) and math.isfinite(e[key])]
        return (max if greater else min)(values) if values else None

    # ------------------------------------------------------------------ distillation
    DISTILLER_FILE = "distiller.pt"

    def _learned(self) -> Optional[torch.nn.Module]:
        return self.distiller.learned if self.distiller is not None and len(self.distiller.learned) else None

    def create_optimizer(self, model=None):
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        learned = self._learned()
        if fresh and learned is not None:
            learned.to(self.args.device)
            optimizer.add_param_group({"params": list(learned.parameters()), "weight_decay": 0.0})
        return optimizer

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        # inside _save_checkpoint, before trainer_state.json (the file that marks a complete checkpoint)
        super()._save_optimizer_and_scheduler(output_dir)
        learned = self._learned()
        if learned is not None and self.args.should_save:
            torch.save(learned.state_dict(), os.path.join(output_dir, self.DISTILLER_FILE))

    def _load_optimizer_and_scheduler(self, checkpoint: Optional[str]) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        learned = self._learned()
        if checkpoint is not None and learned is not None:
            path = os.path.join(checkpoint, self.DISTILLER_FILE)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} is missing: the checkpoint holds no learned distillation "
                                        "parameters to resume with")
            learned.load_state_dict(torch.load(path, map_location=self.args.device, weights_only=True))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.distiller is None or not model.training:  # evaluation reports the task loss
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.get("labels")
        features = {k: v for k, v in inputs.items() if k != "labels"}
        outputs = model(**features, labels=labels, **self.distiller.output_flags)
        logit_mask = labels != -100 if labels is not None and labels.dim() > 1 else None
        loss, parts = self.distiller(outputs, features, logit_mask)
        for name, value in parts.items():
            self._loss_parts[name] = self._loss_parts.get(name, 0.0) + value
        self._loss_part_count += 1
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: Dict[str, float], start_time: Optional[float] = None) -> None:
        if "loss" in logs and self._loss_part_count:
            for name, total in self._loss_parts.items():
                logs[name] = round(float(total) / self._loss_part_count, 6)
            self._loss_parts, self._loss_part_count = {}, 0
        super().log(logs, start_time)
