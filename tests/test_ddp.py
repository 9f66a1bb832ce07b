"""torchrun with 2 CPU processes (gloo): DDP fine-tuning gives the single-process result
(without dropout the two ranks' batches are the halves of the single-process batch)."""
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
    """For SpikeLM this includes the amplitude calibration, all-reduced over the ranks."""
    common = dict(max_steps=4, eval_every=2, save_best="false", amp="off", **model,
                  model_overrides='{"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}')
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, single, batch_size=8, **common))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "sj_spikelm.train.finetune"]
    cmd += finetune_args(tiny_tokenizer, tiny_glue, ddp, batch_size=4, **common)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("training 4 steps") == 1  # only rank 0 logs
    assert (ddp / "checkpoint" / "rng_rank1.pt").is_file()
    a, b = (load_file(d / "checkpoint" / "model.safetensors") for d in (single, ddp))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    import json

    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (single, ddp))
    assert mb["world_size"] == 2 and mb["dev_examples"] == ma["dev_examples"]
    assert [e["validation"] for e in ma["evals"]] == [e["validation"] for e in mb["evals"]]
