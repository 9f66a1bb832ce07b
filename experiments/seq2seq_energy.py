"""Energy per (source, reference) pair and firing rate of saved seq2seq models on the first
evaluation pairs of a task (``sj_spikelm.energy.estimate_seq2seq_energy``)::

    python -m experiments.seq2seq_energy runs/m30k_ann_smoke/best runs/m30k_spikelm_smoke/best \\
        --task multi30k --split test --pairs 32
"""
from __future__ import annotations

import argparse

import torch


def main(argv=None) -> None:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, DataCollatorForSeq2Seq

    from sj_spikelm.data.seq2seq import load_seq2seq, seq2seq_task
    from sj_spikelm.energy import estimate_seq2seq_energy

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="+", help="saved model folders (with their tokenizer)")
    parser.add_argument("--task", default="multi30k")
    parser.add_argument("--split", default="test")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--max_length", type=int, default=40)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = load_seq2seq(seq2seq_task(args.task), args.split).select(range(args.pairs))
    print("| model | neuron | T | energy (mJ / pair) | firing rate |\n|---|---|---:|---:|---:|")
    for folder in args.models:
        tok, model = AutoTokenizer.from_pretrained(folder), AutoModelForSeq2SeqLM.from_pretrained(folder)
        enc = tok(list(rows["source"]), text_target=list(rows["target"]), truncation=True,
                  max_length=args.max_length)
        pairs = [{k: enc[k][i] for k in enc} for i in range(len(rows))]
        batch = DataCollatorForSeq2Seq(tok, model=model)(pairs)
        report = estimate_seq2seq_energy(model, batch)
        ac = [r for r in report.rows if r["kind"] == "AC"]
        rate = sum(r["rate"] * r["dense_ops"] for r in ac) / sum(r["dense_ops"] for r in ac) if ac else None
        print(f"| {folder} | {model.config.neuron} | {model.config.T} | {report.total_mj:.4f} | "
              f"{'' if rate is None else f'{rate:.3f}'} |")


if __name__ == "__main__":
    main()
