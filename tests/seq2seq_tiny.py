"""Tiny Multi30k / AESLC / SciTLDR-A folders for fast tests of the seq2seq data and job."""
from __future__ import annotations

import json
import random
from pathlib import Path

EN_DE = {"the": "der", "dog": "Hund", "man": "Mann", "runs": "läuft", "sleeps": "schläft",
         "big": "große", "small": "kleine", "eats": "isst", "now": "jetzt", "here": "hier"}


def pair(rng: random.Random):
    words = ["the", rng.choice(["big", "small"]), rng.choice(["dog", "man"]),
             rng.choice(["runs", "sleeps", "eats"]), rng.choice(["now", "here"])]
    return " ".join(words) + ".", " ".join(EN_DE[w] for w in words).capitalize() + "."


def make_data(root: Path, n_train: int = 32, n_eval: int = 8, seed: int = 0) -> Path:
    """``root/{multi30k,aeslc,scitldr-a}`` in the layouts of ``../shared/data``."""
    rng = random.Random(seed)
    m30k = root / "multi30k"
    m30k.mkdir(parents=True, exist_ok=True)
    for stem, n in (("train", n_train), ("val", n_eval), ("test_2016_flickr", n_eval)):
        pairs = [pair(rng) for _ in range(n)]
        (m30k / f"{stem}.en").write_text("\n".join(p[0] for p in pairs) + "\n", encoding="utf-8")
        (m30k / f"{stem}.de").write_text("\n".join(p[1] for p in pairs) + "\n", encoding="utf-8")
    for folder, row in (("aeslc", lambda i, s: {"id": str(i), "email": f"Hi, {s[0]} Thanks,",
                                                "subject": s[0]}),
                        ("scitldr-a", lambda i, s: {"source": [s[0], s[0]], "target": [s[0], s[1]],
                                                    "paper_id": str(i), "title": "t"})):
        (root / folder).mkdir(exist_ok=True)
        for stem, n in (("train", n_train), ("dev", n_eval), ("test", n_eval)):
            lines = [json.dumps(row(i, pair(rng))) for i in range(n)]
            (root / folder / f"{stem}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


TINY_BART = {"d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
             "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32,
             "max_position_embeddings": 64}


def args(root, run_dir, **overrides) -> list:
    """CLI arguments of a tiny sj-seq2seq run (4 steps, ANN twin unless overridden)."""
    fields = {"task": "multi30k", "data_dir": str(root), "vocab_size": 300,
              "model_config": json.dumps(TINY_BART),
              "neuron": "ann", "T": 1, "max_steps": 4, "per_device_train_batch_size": 8,
              "per_device_eval_batch_size": 8, "learning_rate": 3e-3, "generation_max_length": 12,
              "report_to": "none", "run_dir": str(run_dir), "disable_tqdm": "true", **overrides}
    return [f"--{k}={v}" for k, v in fields.items()]
