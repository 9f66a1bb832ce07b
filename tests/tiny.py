"""Tiny tokenizer, GLUE folders and BERT configs for fast tests of the training code."""
from __future__ import annotations

import random
from pathlib import Path

WORDS = ("the a movie film plot acting is was very not and it good great fine bad awful dull "
         "man woman dog cat runs sleeps eats ##s ##ing").split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "max_position_embeddings": 64}


def make_tokenizer(folder: Path) -> Path:
    """A WordPiece BERT tokenizer over :data:`WORDS`, saved to ``folder``."""
    from transformers import BertTokenizer


    vocab = {w: i for i, w in enumerate(SPECIALS + WORDS)}
    BertTokenizer(vocab=vocab).save_pretrained(folder)
    return folder


def sentiment(rng: random.Random, label: int) -> str:
    adj = rng.choice(["good", "great", "fine"] if label else ["bad", "awful", "dull"])
    noun, verb = rng.choice(["movie", "film", "plot"]), rng.choice(["is", "was"])
    return f"the {noun} {verb} {'very ' * rng.randint(0, 2)}{adj}"


def make_sst2(root: Path, n_train: int = 64, n_dev: int = 24, seed: int = 0) -> Path:
    """``root/SST-2/{train,dev}.tsv`` with a learnable toy sentiment task."""
    rng = random.Random(seed)
    folder = root / "SST-2"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = ["sentence\tlabel"] + [f"{sentiment(rng, i % 2)} \t{i % 2}" for i in range(n)]
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


def make_corpus(path: Path, lines: int = 60, seed: int = 0) -> Path:
    rng = random.Random(seed)
    text = [" ".join(rng.choice(WORDS[:-2]) for _ in range(rng.randint(3, 15))) for _ in range(lines)]
    path.write_text("\n".join(text) + "\n")
    return path


def finetune_args(tok: Path, data: Path, run_dir: Path, **overrides) -> list:
    """CLI arguments of a tiny BERT fine-tuning run (dropout on, so RNG state matters)."""
    import json

    fields = {"model": "bert", "tokenizer": str(tok), "model_config": json.dumps(TINY_BERT),
              "task": "sst2", "data_dir": str(data), "per_device_train_batch_size": 8,
              "per_device_eval_batch_size": 16, "learning_rate": 1e-3, "logging_steps": 2,
              "run_dir": str(run_dir), **overrides}
    return [f"--{k}={v}" for k, v in fields.items()]
