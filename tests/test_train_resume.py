"""Jobs on the Trainer with tiny BERTs: N steps == N/2 steps + resume + N/2 steps, bit for bit
on CPU (weights and optimizer state), for fine-tuning and MLM pre-training; metrics.json only
when done; a finished job is not re-run."""
import json

import torch
from safetensors.torch import load_file
from tiny import TINY_BERT, finetune_args, make_corpus

from sj_spikelm.train import finetune, pretrain


def checkpoint(run_dir):
    (folder,) = run_dir.glob("checkpoint-*")
    return folder


def weights(run_dir):
    return load_file(checkpoint(run_dir) / "model.safetensors")


def assert_same_run(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    sa, sb = (torch.load(checkpoint(d) / "optimizer.pt", weights_only=False)["state"] for d in (a, b))
    assert sa.keys() == sb.keys()
    for i in sa:
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(sa[i][key], sb[i][key])
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert [e["loss"] for e in ma["evals"]] == [e["loss"] for e in mb["evals"]]
    assert ma["best"]["step"] == mb["best"]["step"]


def test_finetune_resume_is_exact(tmp_path, tiny_tokenizer, tiny_glue):
    # 64 examples / batch 8 = 8 steps per epoch; 12 steps cross an epoch boundary; stop at 6
    common = dict(max_steps=12, eval_strategy="steps", eval_steps=4, save_best="false", save_strategy="steps",
                  save_steps=6)
    full, split = tmp_path / "full", tmp_path / "split"
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, full, **common))
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, split, stop_after=5, **common))
    assert not (split / "metrics.json").exists()  # stopped early: not finished
    assert checkpoint(split).name == "checkpoint-5"
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, split, **common))
    assert checkpoint(split).name == "checkpoint-12"
    assert_same_run(full, split)
    m = json.loads((full / "metrics.json").read_text())
    assert m["steps"] == 12 and [e["step"] for e in m["evals"]] == [4, 8, 12]
    assert m["scores"]["SST-2"] == 100 * m["best"]["accuracy"]
    assert m["best"]["accuracy"] == max(e["accuracy"] for e in m["evals"])
    assert m["task"] == "sst2" and m["metric"] == "accuracy" and m["firing_rate"] is None
    assert m["energy_mj_per_sequence"] > 0 and "energy_unavailable" not in m["best"]  # ANN: all MACs
    assert m["model"] == {"class": "BertForSequenceClassification", "model_type": "bert"}
    slices = json.loads((split / "metrics.json").read_text())
    assert slices["train_seconds"] > 0 and slices["steps_per_second"] > 0  # summed over both slices


def test_spiking_finetune_resume_is_exact(tmp_path, tiny_tokenizer, tiny_glue):
    """The same with a SpikeLM whose amplitudes are learnable: calibrated on the first batch,
    trained, checkpointed, and restored with the optimizer state (never recalibrated)."""
    common = dict(model="spikelm", neuron="elastic_bi(k=2, alpha='learnable')", T=2, max_steps=6,
                  eval_strategy="steps", eval_steps=3, save_best="false", save_strategy="steps", save_steps=3)
    full, split = tmp_path / "full", tmp_path / "split"
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, full, **common))
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, split, stop_after=3, **common))
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, split, **common))
    assert "calibrated the neurons" not in (split / "train.log").read_text().split("resuming from")[1]
    assert_same_run(full, split)
    alphas = [k for k in weights(full) if k.endswith("alpha")]
    assert alphas and all(weights(full)[k].shape == (2,) for k in alphas)
    m = json.loads((full / "metrics.json").read_text())
    assert m["firing_rate"] > 0 and m["model"]["neuron"] == "elastic_bi(alpha='learnable')"


def test_finetune_without_resume_differs_from_a_fresh_start(tmp_path, tiny_tokenizer, tiny_glue):
    """The equality above is not trivial: a different seed changes the weights."""
    common = dict(max_steps=3, save_best="false", save_strategy="steps", save_steps=3)
    a, b = tmp_path / "a", tmp_path / "b"
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, a, **common))
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, b, seed=1, **common))
    wa, wb = weights(a), weights(b)
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


def test_pretrain_resume_is_exact(tmp_path, tiny_tokenizer):
    corpus = make_corpus(tmp_path / "train.txt", lines=80)
    held_out = make_corpus(tmp_path / "test.txt", lines=20, seed=1)
    cache = tmp_path / "cache"

    def args(run_dir, **extra):
        fields = {"model": "bert", "tokenizer": tiny_tokenizer, "model_config": json.dumps(TINY_BERT),
                  "corpus": corpus, "eval_corpus": held_out, "cache_dir": cache, "max_seq_length": 16,
                  "per_device_train_batch_size": 8, "learning_rate": 1e-3, "max_steps": 8,
                  "eval_strategy": "steps", "eval_steps": 4, "save_strategy": "steps", "save_steps": 4,
                  "run_dir": run_dir, **extra}
        return [f"--{k}={v}" for k, v in fields.items()]

    full, split = tmp_path / "full", tmp_path / "split"
    pretrain.main(args(full))
    pretrain.main(args(split, stop_after=3))
    pretrain.main(args(split))
    assert_same_run(full, split)
    m = json.loads((full / "metrics.json").read_text())
    assert m["job"] == "pretrain" and m["best"]["loss"] == min(e["loss"] for e in m["evals"])
    assert abs(m["scores"]["MLM PPL"] - torch.tensor(m["best"]["loss"]).exp().item()) < 1e-3
    assert (full / "best" / "model.safetensors").is_file()
    assert len(list(cache.glob("mlm-*.npy"))) == 2  # train and eval corpus, tokenised once each


def test_training_does_not_depend_on_when_evaluations_happen(tmp_path, tiny_tokenizer, tiny_glue):
    """Evaluations (with the ANN's energy estimate) draw no random numbers from the training's
    stream: evaluating every 2 or every 4 steps trains the same weights."""
    common = dict(max_steps=4, save_best="false", save_strategy="steps", save_steps=4, eval_strategy="steps")
    a, b = tmp_path / "a", tmp_path / "b"
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, a, eval_steps=2, **common))
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, b, eval_steps=4, **common))
    wa, wb = weights(a), weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_rerunning_a_finished_job_returns_its_result(tmp_path, tiny_tokenizer, tiny_glue, caplog):
    run = tmp_path / "run"
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, run, max_steps=2, save_best="false"))
    first = (run / "metrics.json").read_text()
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, run, max_steps=2, save_best="false"))
    assert (run / "metrics.json").read_text() == first
    assert "already finished" in (run / "train.log").read_text()
