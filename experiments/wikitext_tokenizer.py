"""Train the WikiText-2 byte-level BPE used by the issue-11 runs (a smaller LM head than MiniLM's
30,522-token WordPiece) and save it as a Hugging Face tokenizer folder::

    OMP_NUM_THREADS=1 python experiments/wikitext_tokenizer.py --vocab_size 8000 --out runs/tok_wt2_bpe8k

Trained on the stripped non-empty lines of ``wikitext-2/train.txt`` only (the same lines the
causal-LM job tokenises), with :func:`sj_spikelm.data.subword.train_bpe_tokenizer`.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def train_lines(path: Path):
    """The stripped non-empty lines of ``path``."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                yield line


def main(argv=None):
    from sj_spikelm.data.subword import train_bpe_tokenizer

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", default="../shared/data/wikitext-2/train.txt")
    p.add_argument("--vocab_size", type=int, default=8000)
    p.add_argument("--out", default="runs/tok_wt2_bpe8k")
    a = p.parse_args(argv)
    tok = train_bpe_tokenizer(train_lines(Path(a.train)), a.vocab_size)
    tok.save_pretrained(a.out)
    print(f"saved {len(tok)} tokens to {a.out}")


if __name__ == "__main__":
    main()
