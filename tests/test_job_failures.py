"""Nothing silent: a diverged run, a bad hyper-parameter, a crash while saving a checkpoint, a
corrupt checkpoint, a resumed TensorBoard log (fault injection)."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny import finetune_args

from sj_spikelm.train import finetune
from sj_spikelm.train.checkpoints import CorruptCheckpoint
from sj_spikelm.train.trainer import TrainingDiverged

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def job(argv, script=None, **env):
    cmd = [sys.executable, str(script)] if script else [sys.executable, "-m", "sj_spikelm.train.finetune"]
    return subprocess.run(cmd + argv, env={**ENV, **env}, capture_output=True, text=True, timeout=300)


def test_non_finite_hyper_parameter_is_refused_before_anything_loads(tmp_path, tiny_tokenizer, tiny_glue):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="learning_rate=inf is not a finite number"):
        finetune.main(finetune_args(tiny_tokenizer, tiny_glue, run, learning_rate="inf", max_steps=2))
    assert not run.exists()


def test_divergence_stops_the_job_with_no_result(tmp_path, tiny_tokenizer, tiny_glue):
    """A learning rate of 1e30 blows the weights up after the first step: the next loss is not
    finite, the job exits non-zero, says why in its log, and writes no metrics.json."""
    run = tmp_path / "run"
    proc = job(finetune_args(tiny_tokenizer, tiny_glue, run, learning_rate=1e30, max_steps=6, warmup_steps=0,
                             max_grad_norm=0, eval_strategy="steps", eval_steps=1))
    assert proc.returncode != 0
    assert "training diverged" in (run / "train.log").read_text()
    assert not (run / "metrics.json").exists()


def test_a_non_finite_gradient_norm_stops_the_run(tmp_path, tiny_tokenizer, tiny_glue, monkeypatch):
    """Fault injection: at step 2 one gradient is inf while the loss is finite."""
    from transformers import Trainer

    backward = Trainer.training_step

    def poisoned(self, model, inputs, num_items_in_batch=None):
        loss = backward(self, model, inputs, num_items_in_batch)
        if self.state.global_step == 1:
            next(p for p in model.parameters() if p.grad is not None).grad.fill_(float("inf"))
        return loss

    monkeypatch.setattr(Trainer, "training_step", poisoned)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="gradient norm inf at step 2"):
        finetune.main(finetune_args(tiny_tokenizer, tiny_glue, run, max_steps=4))
    assert not (run / "metrics.json").exists()


def test_kill_during_a_checkpoint_save_loses_nothing(tmp_path, tiny_tokenizer, tiny_glue):
    """kill -9 while checkpoint-4 is being written: the next start keeps the partial folder aside,
    resumes from checkpoint-2 and ends with the weights of an uninterrupted run."""
    common = dict(max_steps=6, save_strategy="steps", save_steps=2, save_best="false", save_final="true",
                  eval_strategy="no")
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    assert job(finetune_args(tiny_tokenizer, tiny_glue, full, **common)).returncode == 0
    proc = job(finetune_args(tiny_tokenizer, tiny_glue, crashed, **common),
               script=REPO / "tests" / "fixtures" / "crash_during_save.py", CRASH_AT_STEP="4")
    assert proc.returncode == -signal.SIGKILL
    assert (crashed / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (crashed / "checkpoint-4" / "trainer_state.json").exists()
    assert job(finetune_args(tiny_tokenizer, tiny_glue, crashed, **common)).returncode == 0  # same threads
    assert (crashed / "incomplete-checkpoint-4").is_dir()  # kept, not deleted
    assert "save was interrupted" in (crashed / "train.log").read_text()
    a, b = (load_file(d / "final" / "model.safetensors") for d in (full, crashed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((crashed / "metrics.json").read_text())["steps"] == 6


@pytest.mark.parametrize("damage", ["truncate_weights", "garble_state", "truncate_optimizer"])
def test_a_corrupt_checkpoint_is_named_with_the_way_out(tmp_path, tiny_tokenizer, tiny_glue, damage):
    common = dict(max_steps=4, save_strategy="steps", save_steps=2, save_best="false")
    run = tmp_path / "run"
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, run, stop_after=2, **common))
    ckpt = run / "checkpoint-2"
    if damage == "truncate_weights":
        path = ckpt / "model.safetensors"
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "garble_state":
        path = ckpt / "trainer_state.json"
        path.write_text("{not json")
    else:
        path = ckpt / "optimizer.pt"
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CorruptCheckpoint, match=rf"{path.name}.*start fresh with --resume false"):
        finetune.main(finetune_args(tiny_tokenizer, tiny_glue, run, **common))
    assert ckpt.is_dir()  # nothing deleted
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, run, resume="false", **common))
    assert (run / "metrics.json").is_file()


def test_resumed_tensorboard_shows_each_step_once(tmp_path, tiny_tokenizer, tiny_glue):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    common = dict(model="spikelm", T=2, max_steps=8, logging_steps=1, save_strategy="steps", save_steps=4,
                  save_best="false", eval_strategy="steps", eval_steps=4)
    run = tmp_path / "run"
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, run, stop_after=4, **common))
    # a killed attempt logs steps beyond its last checkpoint: a slice that goes to step 6 and
    # whose checkpoint is then lost, before the run resumes from checkpoint-4
    keep = run / "kept-checkpoint-4"
    shutil.copytree(run / "checkpoint-4", keep)
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, run, stop_after=6, **common))
    shutil.rmtree(run / "checkpoint-6")
    keep.rename(run / "checkpoint-4")
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, run, **common))
    query = "firing_rate/bert.encoder.layer.0.attention.self.query.neuron"
    for folder, tag in ((run / "tb", "train/loss"), (run / "tb" / "spikes", query)):
        acc = EventAccumulator(str(folder))
        acc.Reload()
        steps = [e.step for e in acc.Scalars(tag)]
        assert steps == list(range(1, 9)), (tag, steps)


def test_a_second_job_on_a_running_folder_exits_as_locked(tmp_path, tiny_tokenizer, tiny_glue):
    from sj_spikelm.run_dir import EXIT_LOCKED, RunLock

    run = tmp_path / "run"
    with RunLock(run):
        proc = job(finetune_args(tiny_tokenizer, tiny_glue, run, max_steps=2))
    assert proc.returncode == EXIT_LOCKED and "is in use" in proc.stderr
    assert not (run / "metrics.json").exists()


def test_a_different_config_does_not_resume_an_old_run(tmp_path, tiny_tokenizer, tiny_glue):
    run = tmp_path / "run"
    common = dict(max_steps=4, save_strategy="steps", save_steps=2, save_best="false")
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, run, stop_after=2, **common))
    with pytest.raises(ValueError, match=r"another configuration \(fields \['learning_rate'\] differ"):
        finetune.main(finetune_args(tiny_tokenizer, tiny_glue, run, **{**common, "learning_rate": 5e-4}))
