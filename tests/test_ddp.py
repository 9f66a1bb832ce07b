"""torchrun with 2 CPU processes (gloo) through transformers.Trainer: DDP fine-tuning gives the
single-process result (without dropout the two ranks' batches are the halves of the
single-process batch), calibration included (the ranks all-reduce the statistic)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny import finetune_args

from sj_spikelm.train import finetune

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("model", [dict(model="bert"), dict(model="spikelm", neuron="elastic_bi(k=2)", T=2)],
                         ids=["bert", "spikelm"])
def test_torchrun_two_ranks_matches_one_process(tmp_path, tiny_tokenizer, tiny_glue, model):
    no_dropout = '{"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}'
    common = dict(max_steps=4, eval_strategy="steps", eval_steps=2, save_best="false", save_final="true",
                  model_overrides=no_dropout, **model)
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, single, per_device_train_batch_size=8, **common))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "sj_spikelm.train.finetune"]
    cmd += finetune_args(tiny_tokenizer, tiny_glue, ddp, per_device_train_batch_size=4, **common)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (load_file(d / "final" / "model.safetensors") for d in (single, ddp))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    if model["model"] == "spikelm":  # calibrated identically on both ranks, logged once
        assert proc.stderr.count("calibrated the neurons") == 1
        alphas = [k for k in a if k.endswith(".alpha")]
        assert alphas and all(torch.equal(a[k], b[k]) or torch.allclose(a[k], b[k]) for k in alphas)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (single, ddp))
    assert mb["world_size"] == 2 and mb["dev_examples"] == ma["dev_examples"]
    assert [e["accuracy"] for e in ma["evals"]] == [e["accuracy"] for e in mb["evals"]]
    if model["model"] == "spikelm":  # dev counts all-reduced; accelerate pads the last shard with
        # repeated sequences (8 of 24 here), which the predictions drop but the spike counts keep
        assert mb["firing_rate"] == pytest.approx(ma["firing_rate"], rel=0.02)
