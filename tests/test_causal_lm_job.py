"""The causal-LM job on the Trainer path: plain token blocks, a tiny BiSpikCLM that learns, the
reported perplexity equal to a hand computation, exact resume, config errors."""
import json
import random

import numpy as np
import pytest
import torch
from tiny import make_corpus
from torch.nn import functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from sj_spikelm.data.clm import CausalBlocks
from sj_spikelm.data.corpus import load_token_blocks
from sj_spikelm.energy import compare_to_ann, estimate_energy
from sj_spikelm.train import causal_lm

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 16, "T": 2, "attention_scale": 1.0}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """A learnable text (sentences from a small grammar) and a held-out one."""
    folder = tmp_path_factory.mktemp("clm")
    for name, seed, lines in (("train.txt", 0, 120), ("valid.txt", 1, 30), ("test.txt", 2, 30)):
        rng = random.Random(seed)
        text = [f"the {rng.choice(['dog', 'cat', 'man'])} {rng.choice(['runs', 'sleeps', 'eats'])} and "
                f"the {rng.choice(['movie', 'film'])} is {rng.choice(['good', 'bad'])}" for _ in range(lines)]
        (folder / name).write_text("\n".join(text) + "\n")
    return folder


def job_args(tok, corpora, run_dir, **extra):
    fields = {"tokenizer": tok, "model_config": json.dumps(TINY), "corpus": corpora / "train.txt",
              "eval_corpus": corpora / "valid.txt", "cache_dir": corpora / "cache", "max_seq_length": 12,
              "per_device_train_batch_size": 8, "per_device_eval_batch_size": 16, "learning_rate": 3e-3,
              "max_steps": 24, "eval_strategy": "steps", "eval_steps": 12, "logging_steps": 6,
              "warmup_steps": 0, "report_to": "none", "run_dir": run_dir, **extra}
    return [f"--{k}={v}" for k, v in fields.items()]


def test_plain_blocks_are_the_token_stream(tiny_tokenizer, tmp_path):
    path = make_corpus(tmp_path / "c.txt", lines=20)
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer)
    blocks, cache = load_token_blocks(str(path), tok, 8, tmp_path / "cache", wrap=False)
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    stream = np.concatenate([tok(line, add_special_tokens=False)["input_ids"] for line in lines])
    n = len(stream) // 8
    assert blocks.shape == (n, 8) and np.array_equal(np.asarray(blocks).ravel(), stream[: n * 8])
    wrapped, other = load_token_blocks(str(path), tok, 8, tmp_path / "cache")
    assert other != cache and (np.asarray(wrapped)[:, 0] == tok.cls_token_id).all()
    example = CausalBlocks(blocks)[1]
    assert torch.equal(example["input_ids"], example["labels"])


def test_a_tiny_bispikclm_learns_and_reports_its_perplexity(tiny_tokenizer, corpora, tmp_path):
    run_dir = tmp_path / "run"
    causal_lm.main(job_args(tiny_tokenizer, corpora, run_dir, save_final=True))
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["job"] == "causal_lm" and m["model"]["neuron"] == "soft_lif" and m["steps"] == 24
    first, last = m["evals"][0]["loss"], m["evals"][-1]["loss"]
    assert last < first < 10
    assert m["best"]["loss"] == min(e["loss"] for e in m["evals"])
    assert abs(m["scores"]["PPL"] - np.exp(m["best"]["loss"])) < 1e-6 * m["scores"]["PPL"]
    assert 0 < m["firing_rate"] < 1
    # the reported loss is the mean next-token cross-entropy over every held-out token
    model = AutoModelForCausalLM.from_pretrained(run_dir / "final").eval()
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer)
    loss = held_out_loss(model, tok, corpora / "valid.txt", corpora / "cache")
    assert abs(loss - m["final"]["loss"]) < 1e-4
    # the energy per sequence of the best evaluation is the estimate on the first 8 held-out blocks
    blocks, _ = load_token_blocks(str(corpora / "valid.txt"), tok, 12, corpora / "cache", wrap=False)
    best = AutoModelForCausalLM.from_pretrained(run_dir / "best").eval()
    energy = estimate_energy(best, torch.from_numpy(np.asarray(blocks[:8], dtype=np.int64))).total_mj
    assert m["energy_mj_per_sequence"] == pytest.approx(energy, rel=1e-9) and energy > 0
    # and its "% of the ANN's cost", in total and per layer, is compare_to_ann's on those blocks
    c = compare_to_ann(best, torch.from_numpy(np.asarray(blocks[:8], dtype=np.int64)))
    assert m["energy_percent_of_ann"] == pytest.approx(100 * energy / c.ann.total_mj, rel=1e-9)
    assert 0 < m["energy_percent_of_ann"] < 100
    per_layer = m["energy_percent_of_ann_per_layer"]
    assert set(per_layer) == set(c.per_layer()) == {"0", "1", "lm_head"}
    assert all(per_layer[k] == pytest.approx(r["percent"], rel=1e-9) for k, r in c.per_layer().items())
    prompt = torch.tensor([tok("the dog runs", add_special_tokens=False)["input_ids"]])
    assert model.generate(prompt, max_new_tokens=3, do_sample=False).shape == (1, prompt.shape[1] + 3)


def test_resume_is_exact(tiny_tokenizer, corpora, tmp_path):
    def weights(run_dir):
        return torch.load(next(run_dir.glob("checkpoint-*")) / "optimizer.pt", weights_only=False)["state"]

    full, split = tmp_path / "full", tmp_path / "split"
    extra = {"max_steps": 8, "eval_steps": 4, "save_strategy": "steps", "save_steps": 4}
    causal_lm.main(job_args(tiny_tokenizer, corpora, full, **extra))
    causal_lm.main(job_args(tiny_tokenizer, corpora, split, stop_after=4, **extra))
    assert not (split / "metrics.json").exists()
    causal_lm.main(job_args(tiny_tokenizer, corpora, split, **extra))
    a, b = weights(full), weights(split)
    assert all(torch.equal(a[i]["exp_avg"], b[i]["exp_avg"]) for i in a)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (full, split))
    assert [e["loss"] for e in ma["evals"]] == [e["loss"] for e in mb["evals"]]


BASE = {"corpus": "t.txt", "eval_corpus": "v.txt"}


@pytest.mark.parametrize("values, match", [
    ({**BASE, "model_config": {"hiden_size": 8}}, r"unknown field\(s\) \['hiden_size'\]"),
    ({**BASE, "model_config": {"attention": "linear"}}, "attention='linear' is not accepted"),
    ({**BASE, "model_config": {"T": 2}, "init_from": "x"}, "model_config=.* is for a fresh model"),
    ({"eval_corpus": "v.txt"}, "corpus and eval_corpus are required"),
    ({**BASE, "learning_rate": "inf"}, "learning_rate=inf is not a finite number"),
])
def test_bad_configs_are_refused_before_anything_loads(values, match):
    with pytest.raises(ValueError, match=match):
        causal_lm.check_config(values)


def test_a_block_longer_than_the_positions_is_refused(tiny_tokenizer, corpora, tmp_path):
    with pytest.raises(ValueError, match="max_seq_length=20 exceeds the model's max_position_embeddings=16"):
        causal_lm.main(job_args(tiny_tokenizer, corpora, tmp_path / "r", max_seq_length=20))


def held_out_loss(model, tok, path, cache):
    """Mean next-token cross-entropy of ``model`` over every token of ``path``'s 12-token blocks."""
    blocks, _ = load_token_blocks(str(path), tok, 12, cache, wrap=False)
    ids = torch.from_numpy(np.asarray(blocks, dtype=np.int64))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)).item()


def test_test_perplexity_is_the_best_validation_steps(tiny_tokenizer, corpora, tmp_path):
    run_dir = tmp_path / "run"
    causal_lm.main(job_args(tiny_tokenizer, corpora, run_dir, test_corpus=corpora / "test.txt"))
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["metric"] == "valid_loss" and m["test_blocks"] > 0
    best = min(m["evals"], key=lambda e: e["valid_loss"])
    assert m["best"]["step"] == best["step"] and set(m["scores"]) == {"valid CLM loss", "valid PPL",
                                                                      "test CLM loss", "test PPL"}
    assert abs(m["scores"]["test PPL"] - np.exp(best["test_loss"])) < 1e-6 * m["scores"]["test PPL"]
    # firing rates and energy of the best step come from the validation split (the selection one)
    for key in ("firing_rate", "firing_rate_per_layer", "energy_mj_per_sequence", "energy_percent_of_ann",
                "energy_percent_of_ann_per_layer"):
        assert m[key] is not None and m[key] == m["best"][f"valid_{key}"], key
    assert m["firing_rate"] != m["best"]["test_firing_rate"]
    model = AutoModelForCausalLM.from_pretrained(run_dir / "best").eval()
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer)
    for split in ("test", "valid"):
        loss = held_out_loss(model, tok, corpora / f"{split}.txt", corpora / "cache")
        assert abs(loss - best[f"{split}_loss"]) < 1e-4
