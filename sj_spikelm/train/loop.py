"""The training loop shared by the jobs: AdamW, linear warm-up then linear decay, gradient
clipping, mixed precision on CUDA, evaluation with best-model tracking, TensorBoard, tqdm, and
checkpoints from which a run resumes exactly.

A job supplies a :class:`Job` (how to make a batch, the loss, the evaluation) and a model;
:func:`fit` does the rest. Data order: epoch ``e`` visits the examples in the order of
``DistributedSampler(seed=cfg.seed).set_epoch(e)`` (one replica without ``torch.distributed``),
cut into batches of ``batch_size``, so a data position is just ``(epoch, batch)``. A checkpoint
(``run_dir/checkpoint/``) is a ``save_pretrained`` folder plus ``training_state.pt``: optimizer,
scheduler, grad scaler, data position, best/evaluation history, and the RNG states of Python,
NumPy and torch (CPU and CUDA; one file per rank). Neuron calibration (``alpha``) is part of
the model's ``state_dict``. On CPU, N steps equal N/2 steps + resume + N/2 steps bit for bit.

Launch on several GPUs with ``torchrun --nproc_per_node=N -m sj_spikelm.train.finetune ...``:
the model is wrapped in ``DistributedDataParallel``, each rank trains on its shard, rank 0
logs and saves.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Protocol, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from neuron_zoo import SpikeStatsMixin

from .distill import DEFAULT_WEIGHTS, check_weights

log = logging.getLogger("sj_spikelm.train")
AMP_MODES = ("auto", "bf16", "fp16", "off")


@dataclass
class TrainConfig:
    """Fields shared by every job (model: see :mod:`.build`; distillation: :mod:`.distill`)."""

    run_dir: str = "runs/run"
    seed: int = 0
    # model
    model: str = "spikelm"
    init_from: Optional[str] = None
    tokenizer: Optional[str] = None
    neuron: Optional[str] = None  # None: a spiking checkpoint's own, else build.DEFAULT_NEURON
    k: Optional[float] = None
    T: Optional[int] = None  # None: a spiking checkpoint's own, else build.DEFAULT_T
    model_config: Dict[str, Any] = field(default_factory=dict)
    model_overrides: Dict[str, Any] = field(default_factory=dict)
    # data: sequence length; subsets of max_*_samples examples (0 = all) drawn with data_seed
    max_seq_length: int = 128
    max_train_samples: int = 0
    max_eval_samples: int = 0
    data_seed: int = 0
    # optimisation
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    epochs: float = 3.0
    max_steps: int = 0
    warmup_ratio: float = 0.1
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    amp: str = "auto"
    # evaluation, checkpoints, logging
    eval_batch_size: int = 128
    eval_every: int = 0
    save_every: int = 0
    save_best: bool = True
    save_final: bool = True
    log_every: int = 50
    resume: bool = True
    stop_after: int = 0
    device: str = "auto"
    threads: int = 0
    # distillation from an ANN teacher
    distill: Optional[str] = None
    distill_weights: Dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    distill_temperature: float = 1.0

    # field -> (lowest accepted, lowest excluded?, highest); checked on construction
    RANGES = {"max_seq_length": (1, False, None), "max_train_samples": (0, False, None),
              "max_eval_samples": (0, False, None), "batch_size": (1, False, None),
              "lr": (0, True, None), "weight_decay": (0, False, None), "epochs": (0, True, None),
              "max_steps": (0, False, None), "warmup_ratio": (0, False, 1), "warmup_steps": (0, False, None),
              "max_grad_norm": (0, False, None), "eval_batch_size": (1, False, None),
              "eval_every": (0, False, None), "save_every": (0, False, None), "log_every": (1, False, None),
              "stop_after": (0, False, None), "threads": (0, False, None), "T": (1, False, None),
              "k": (0, True, None), "distill_temperature": (0, True, None)}

    def __post_init__(self):
        for name, (low, open_low, high) in self.RANGES.items():
            value = getattr(self, name, None)
            if value is None or isinstance(value, str):
                continue
            too_low = value <= low if open_low else value < low
            if too_low or (high is not None and value > high):
                accepted = f"{'>' if open_low else '>='} {low}"
                accepted += f" and <= {high}" if high is not None else ""
                raise ValueError(f"{name}={value!r} is out of range; accepted: {accepted}")
        check_weights(self.distill_weights)


class Job(Protocol):
    """What a job gives :func:`fit`."""

    num_examples: int

    def batch(self, indices: List[int], step: int) -> Dict[str, torch.Tensor]:
        """CPU tensors of the examples ``indices`` for optimizer step ``step``."""

    def loss(self, model: nn.Module, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, float]]:
        """The scalar loss to minimise and scalars to log."""

    def evaluate(self, model: nn.Module) -> Dict[str, Any]:
        """Evaluation results with a ``"score"`` entry (every rank calls it)."""


# ----------------------------------------------------------------------------- environment

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def init_distributed() -> Tuple[int, int, int]:
    """``(rank, world_size, local_rank)``; joins the process group ``torchrun`` describes
    (NCCL on CUDA, gloo otherwise) when ``WORLD_SIZE > 1``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def amp_dtype(mode: str, device: torch.device) -> Optional[torch.dtype]:
    """Autocast dtype: ``auto`` is bf16 on a CUDA device that supports it (else fp16), nothing
    on CPU; ``bf16``/``fp16`` need CUDA; ``off`` is full precision."""
    if mode not in AMP_MODES:
        raise ValueError(f"amp={mode!r}; accepted: {', '.join(AMP_MODES)}")
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if device.type != "cuda":
        raise ValueError(f"amp={mode!r} needs a CUDA device (mixed precision is GPU only); use amp='off'")
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if mode == "bf16" else torch.float16


def eval_shard(n: int) -> List[int]:
    """The evaluation indices of this rank (``rank::world``; all of ``range(n)`` without DDP)."""
    if dist.is_initialized():
        return list(range(dist.get_rank(), n, dist.get_world_size()))
    return list(range(n))


def gather(items: List[Any]) -> List[Any]:
    """Concatenate every rank's ``items`` (rank order); ``items`` itself without DDP."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return items
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, items)
    return [x for part in parts for x in part]


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# ----------------------------------------------------------------------------- checkpoints

def rng_state() -> Dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_model(model: nn.Module, folder: Path, tokenizer=None) -> None:
    unwrap(model).save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


def load_weights(model: nn.Module, folder: Path) -> None:
    """Load a ``save_pretrained`` folder's weights into ``model`` in place. Keys missing from
    the files must be weights tied to loaded ones (e.g. the MLM decoder)."""
    from safetensors.torch import load_file

    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() \
        else ["model.safetensors"]
    state = {}
    for name in files:
        state.update(load_file(folder / name))
    missing, unexpected = model.load_state_dict(state, strict=False)
    own = model.state_dict()
    loaded = {own[k].data_ptr() for k in state if k in own}
    untied = [k for k in missing if own[k].numel() and own[k].data_ptr() not in loaded]
    if unexpected or untied:
        raise RuntimeError(f"checkpoint {folder} does not match the model: missing {untied}, "
                           f"unexpected {unexpected}")


def _replace_dir(tmp: Path, final: Path) -> None:
    old = final.with_name(final.name + ".old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(folder: Path, model, tokenizer, optimizer, scheduler, scaler, state: Dict) -> None:
    """Write the resumable checkpoint atomically (a ``.tmp`` folder renamed into place); every
    rank must call it (each saves its RNG state)."""
    tmp = folder.with_name(folder.name + ".tmp")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        save_model(model, tmp, tokenizer)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(), "state": state}, tmp / "training_state.pt")
    barrier()
    torch.save(rng_state(), tmp / f"rng_rank{rank}.pt")
    barrier()
    if rank == 0:
        _replace_dir(tmp, folder)
    barrier()


# ----------------------------------------------------------------------------- the loop

def param_groups(model: nn.Module, weight_decay: float) -> List[Dict]:
    """Weight decay on matrices only (not on biases, LayerNorm weights or neuron amplitudes)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def needs_calibration(model: nn.Module) -> bool:
    """Whether some neuron has not calibrated its amplitude yet (``calibrated_steps == 0``)."""
    return any(getattr(m, "calibrated_steps", None) == 0 for m in model.modules())


def _to(batch: Dict[str, torch.Tensor], device: torch.device) -> Dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _better(score: float, best: Optional[Dict], higher_is_better: bool) -> bool:
    if score is None or math.isnan(score):
        return False
    if best is None or best.get("score") is None or math.isnan(best["score"]):
        return True
    return score > best["score"] if higher_is_better else score < best["score"]


def _firing_rate_monitor(model: nn.Module, writer, every: int):
    """``sj_spikelm.monitor.FiringRateMonitor`` for a model with spiking neurons, else None."""
    from sj_spikelm.monitor import FiringRateMonitor

    if not any(isinstance(m, SpikeStatsMixin) for m in model.modules()):
        return None
    return FiringRateMonitor(model, writer, every=every)


def fit(cfg: TrainConfig, job: Job, model: nn.Module, tokenizer=None,
        higher_is_better: bool = True) -> Dict[str, Any]:
    """Train ``model`` on ``job`` as configured by ``cfg``; returns a summary (steps, timing,
    evaluations, ``best`` and ``final`` evaluation, ``stopped_early``)."""
    run_dir = Path(cfg.run_dir)
    rank, world, local_rank = init_distributed()
    main = rank == 0
    device = pick_device(cfg.device, local_rank)
    dtype = amp_dtype(cfg.amp, device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    model.to(device)

    sampler = DistributedSampler(range(job.num_examples), num_replicas=world, rank=rank,
                                 shuffle=True, seed=cfg.seed)
    steps_per_epoch = math.ceil(len(sampler) / cfg.batch_size)
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.epochs * steps_per_epoch)
    if total <= 0:
        raise ValueError(f"no training steps: max_steps={cfg.max_steps}, epochs={cfg.epochs}, "
                         f"{job.num_examples} examples")

    def epoch_batches(epoch: int) -> List[List[int]]:
        sampler.set_epoch(epoch)
        order = list(sampler)
        return [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]

    state = {"step": 0, "epoch": 0, "batch": 0, "best": None, "evals": [], "train_seconds": 0.0}
    ckpt = run_dir / "checkpoint"
    resumed = cfg.resume and (ckpt / "training_state.pt").is_file()
    if resumed:
        load_weights(model, ckpt)
        saved = torch.load(ckpt / "training_state.pt", map_location="cpu", weights_only=False)
        log.info("resuming from %s at step %d", ckpt, saved["state"]["step"])
    elif needs_calibration(model):  # calibrate before the optimizer sees learnable amplitudes
        model.train()
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            job.loss(model, _to(job.batch(epoch_batches(0)[0], 0), device))

    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    warmup = cfg.warmup_steps if cfg.warmup_steps > 0 else round(cfg.warmup_ratio * total)
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    if resumed:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        state.update(saved["state"])
    train_model = nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else model

    writer = None
    if main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"))
    monitor = _firing_rate_monitor(model, writer, cfg.log_every) if main else None
    log.info("training %d steps (%d per epoch, batch %d x %d ranks, warm-up %d) on %s%s",
             total, steps_per_epoch, cfg.batch_size, world, warmup, device,
             f" with {dtype} autocast" if dtype else "")

    def evaluate() -> None:
        model.eval()
        if monitor is not None:
            monitor.counts.disable()  # the training firing rates must not count dev forwards
        try:
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                result = {"step": state["step"], **job.evaluate(model)}
        finally:
            if monitor is not None:
                monitor.counts.enable()
        model.train()
        state["evals"].append(result)
        if writer is not None:
            for key, value in result.items():
                if isinstance(value, (int, float)) and key != "step":
                    writer.add_scalar(f"eval/{key}", value, state["step"])
        log.info("eval at step %d: %s", state["step"],
                 {k: round(v, 4) for k, v in result.items() if isinstance(v, float)})
        if _better(result["score"], state["best"], higher_is_better):
            state["best"] = result
            if main and cfg.save_best:
                save_model(model, run_dir / "best", tokenizer)

    def checkpoint() -> None:
        save_checkpoint(ckpt, model, tokenizer, optimizer, scheduler, scaler, state)

    if resumed:
        set_rng_state(torch.load(ckpt / f"rng_rank{rank}.pt", weights_only=False))
    model.train()
    steps_run = 0
    stopped = False
    bar = tqdm(total=total, initial=state["step"], disable=not main or None, desc=run_dir.name)
    while state["step"] < total and not stopped:
        batches = epoch_batches(state["epoch"])
        for b in range(state["batch"], len(batches)):
            tick = time.perf_counter()
            batch = _to(job.batch(batches[b], state["step"]), device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss, logs = job.loss(train_model, batch)
            scaler.scale(loss).backward()
            grad_norm = None
            if cfg.max_grad_norm > 0:
                scaler.unscale_(optimizer)
                grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm))
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            seconds = time.perf_counter() - tick
            steps_run += 1
            state["train_seconds"] += seconds
            state["step"] += 1
            epoch_end = b + 1 == len(batches)
            state["epoch"], state["batch"] = (state["epoch"] + 1, 0) if epoch_end else (state["epoch"], b + 1)
            step, at_end = state["step"], state["step"] >= total
            bar.update(1)
            if main and (step % cfg.log_every == 0 or at_end):
                scalars = {"loss": float(loss.detach()), "lr": scheduler.get_last_lr()[0], **logs}
                if grad_norm is not None:
                    scalars["grad_norm"] = grad_norm
                for key, value in scalars.items():
                    writer.add_scalar(f"train/{key}", value, step)
                bar.set_postfix(loss=f"{scalars['loss']:.4f}")
            if monitor is not None:
                monitor.log(step)
            if at_end or (cfg.eval_every > 0 and step % cfg.eval_every == 0) or \
                    (cfg.eval_every == 0 and epoch_end):
                evaluate()
            stopped = 0 < cfg.stop_after <= step and not at_end
            if (cfg.save_every > 0 and step % cfg.save_every == 0) or stopped or (at_end and cfg.save_final):
                checkpoint()
            if at_end or stopped:
                break
    bar.close()
    if not state["evals"] or state["evals"][-1]["step"] != state["step"]:
        if not stopped:
            evaluate()  # a resumed run that had finished before its last evaluation
    if monitor is not None:
        monitor.close()  # removes its hooks from the model
    if writer is not None:
        writer.close()
    # throughput over the whole run, resumed slices included (train_seconds is checkpointed)
    rate = state["step"] / state["train_seconds"] if state["train_seconds"] else None
    return {"steps": state["step"], "total_steps": total, "epochs": state["step"] / steps_per_epoch,
            "train_seconds": state["train_seconds"], "steps_this_run": steps_run,
            "steps_per_second": rate,
            "samples_per_second": rate * cfg.batch_size * world if rate else None,
            "best": state["best"], "final": state["evals"][-1] if state["evals"] else None,
            "evals": state["evals"], "stopped_early": stopped, "world_size": world,
            "config": dataclasses.asdict(cfg)}
