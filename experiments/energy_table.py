"""Energy per sequence (SpikeLM Appendix A.3) and per-layer firing rates of a BERT-base-sized
SpikeLM (``SpikeLMModel``, 12 layers, D=768) at T=1 and T=4 for k = 2, 3, 4, next to its ANN
twin (``neuron="ann"``).

The weights are untrained (random initialisation, the same seed for every model, so the ANN twin
holds the same weights); the input is random token ids (default: one sequence of 128 tokens).
Each spiking model calibrates its neurons on one training-mode forward of that input, then the
estimate runs one eval-mode forward. Prints the totals and the per-layer firing rates and writes
``energy_table.md`` / ``energy_table.json`` and a per-neuron firing-rate chart per model
(``firing_rates_*.png``) to ``--out``.

    python -m experiments.energy_table --out results/energy_table
"""
from __future__ import annotations

import argparse
import json
import os
import re
import time
from typing import Dict, List

import torch

from neuron_zoo import SpikeStatsMixin
from sj_spikelm import SpikeLMConfig, SpikeLMModel
from sj_spikelm.energy import estimate_energy
from sj_spikelm.monitor import counts_to_rates, plot_firing_rates
from sj_spikelm.train.spike_totals import SpikeTotals


def layer_rates(model: SpikeLMModel) -> List[float]:
    """Firing rate of each encoder layer over all its spiking neurons (non-zero spikes / all
    elements, real tokens, all steps) from the neurons' cached counts of the last forward."""
    totals = SpikeTotals(model)
    totals.update()
    return [rate for _, rate in sorted(totals.rates_per_layer().items(), key=lambda kv: int(kv[0]))]


def measure(config: SpikeLMConfig, batch: Dict[str, torch.Tensor], seed: int, out: str) -> Dict:
    torch.manual_seed(seed)
    model = SpikeLMModel(config)
    spiking = config.neuron != "ann"
    if spiking:
        model.calibrate(**batch)
    fp32 = estimate_energy(model, batch, "fp32")
    result = {"neuron": config.neuron, "T": config.T, "energy_mj_fp32": fp32.total_mj,
              "energy_mj_fp16": estimate_energy(model, batch, "fp16").total_mj, "rows": fp32.rows}
    if spiking:
        rates = [r["rate"] for r in fp32.rows if r["rate"] is not None]
        result["layer_rates"] = layer_rates(model)
        result["mean_matmul_input_rate"] = sum(rates) / len(rates)
        neuron_rates = counts_to_rates({name: node.spike_counts for name, node in model.named_modules()
                                        if isinstance(node, SpikeStatsMixin)})
        result["neuron_rates"] = {name: r["rate"] for name, r in neuron_rates.items()}
        tag = re.sub(r"[^A-Za-z0-9]+", "_", config.neuron).strip("_")
        plot_firing_rates(neuron_rates, os.path.join(out, f"firing_rates_T{config.T}_{tag}.png"),
                          title=f"{config.neuron}, T={config.T} (untrained weights)")
    return result


def markdown(results: List[Dict], ks: List[int], Ts: List[int], seq_len: int) -> str:
    ann = next(r for r in results if r["neuron"] == "ann")
    lines = [f"Energy per sequence, BERT-base size, {seq_len} random tokens, untrained weights.", "",
             "| model | T | energy fp32 (mJ) | energy fp16 (mJ) | ANN / model (fp32) "
             "| mean matmul-input rate |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        rate = f"{r['mean_matmul_input_rate']:.3f}" if "mean_matmul_input_rate" in r else ""
        lines.append(f"| {r['neuron']} | {r['T']} | {r['energy_mj_fp32']:.3f} | {r['energy_mj_fp16']:.3f} | "
                     f"{ann['energy_mj_fp32'] / r['energy_mj_fp32']:.2f} | {rate} |")
    for T in Ts:
        by_k = {k: next(r for r in results if r["T"] == T and r["neuron"] == f"elastic_bi(k={k})")
                for k in ks}
        lines += ["", f"Firing rate per encoder layer (all its neurons), T={T}:", "",
                  "| layer | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
        for i in range(len(by_k[ks[0]]["layer_rates"])):
            lines.append(f"| {i} | " + " | ".join(f"{by_k[k]['layer_rates'][i]:.3f}" for k in ks) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/energy_table")
    parser.add_argument("--T", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--k", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    g = torch.Generator().manual_seed(args.seed)
    base = SpikeLMConfig()
    batch = {"input_ids": torch.randint(0, base.vocab_size, (args.batch_size, args.seq_len), generator=g),
             "attention_mask": torch.ones(args.batch_size, args.seq_len, dtype=torch.long)}
    configs = [SpikeLMConfig(T=1, neuron="ann")]
    configs += [SpikeLMConfig(T=T, neuron=f"elastic_bi(k={k})") for T in args.T for k in args.k]
    results = []
    for config in configs:
        start = time.time()
        results.append(measure(config, batch, args.seed, args.out))
        r = results[-1]
        print(f"{config.neuron:>16} T={config.T}: {r['energy_mj_fp32']:.3f} mJ fp32, "
              f"{r['energy_mj_fp16']:.3f} mJ fp16 ({time.time() - start:.0f} s)", flush=True)
    table = markdown(results, args.k, args.T, args.seq_len)
    print()
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "energy_table.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(args.out, "energy_table.json"), "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=2)
    print(f"\nwrote {args.out}/energy_table.md, energy_table.json and firing_rates_*.png")


if __name__ == "__main__":
    main()
