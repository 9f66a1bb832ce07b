"""Firing rate and gradient comparison of every registered neuron on synthetic activations.

For each neuron and input distribution (unit-variance Gaussian and Laplacian, the same
activation repeated over T steps as the embedding is in SpikeLM) it prints the firing rate,
the share of -a / 0 / +a spikes, the rate per time step, and how much of the identity's
gradient survives the neuron (cosine between dL/dx through the neuron and through the
identity, for L = sum(w * s) with random w). For the elastic neuron it also prints the
closed-form step-0 rate of Lemma 1 for that distribution.

    python -m experiments.neuron_demo --out results/neuron_demo
"""
from __future__ import annotations

import argparse
import json
import math
import os
from typing import Dict, List

import torch

import neuron_zoo

DEFAULT_SPECS = [
    "elastic_bi(k=2)", "elastic_bi(k=3)", "elastic_bi(k=4)",
    "elastic_bi(k=2, threshold_scale=1.0)", "elastic_bi(k=2, reset='hard')",
    "elastic_bi(k=2, reset='soft')", "elastic_bi(k=2, bidirectional=False)",
    "elastic_bi(k=2, alpha='learnable', T={T})", "ternary_fixed", "ste_lif", "lif", "psn(T={T})", "ann",
]


def lemma1_rate(distribution: str, k: float, threshold_scale: float = 0.5,
                bidirectional: bool = True) -> float:
    """Step-0 firing rate P(|m| >= theta * k * E|m|) for a zero-mean symmetric membrane
    (Lemma 1): Laplacian ``exp(-theta k)``; Gaussian ``erfc(theta k / sqrt(pi))``; half of
    that when only positive spikes are emitted."""
    if distribution == "laplace":
        rate = math.exp(-threshold_scale * k)
    elif distribution == "gaussian":
        rate = math.erfc(threshold_scale * k / math.sqrt(math.pi))
    else:
        raise ValueError(f"distribution={distribution!r}; accepted: 'gaussian', 'laplace'")
    return rate if bidirectional else rate / 2


def sample(distribution: str, shape, generator: torch.Generator) -> torch.Tensor:
    """Unit-variance Gaussian or Laplacian activations of ``shape``."""
    if distribution == "gaussian":
        return torch.randn(shape, generator=generator)
    u = torch.rand(shape, generator=generator) - 0.5
    return -torch.sign(u) * torch.log1p(-2 * u.abs()) / math.sqrt(2.0)


def measure(spec: str, distribution: str, x: torch.Tensor, w: torch.Tensor) -> Dict:
    """Run one training-mode forward/backward of ``spec`` on ``x``; rates and gradient match."""
    node = neuron_zoo.build_neuron(spec)
    x = x.clone().requires_grad_(True)
    s = node(x)
    (s * w).sum().backward()
    grad, ref = x.grad.flatten(), w.expand_as(x).flatten()
    row = {
        "input": distribution,
        "neuron": spec,
        "grad_cosine": float(torch.nn.functional.cosine_similarity(grad, ref, dim=0)),
        "grad_nonzero": float((grad != 0).float().mean()),
    }
    if node.firing_rate is None:
        row.update(firing_rate=None, shares=None, rate_per_step=None)
    else:
        row.update(firing_rate=float(node.firing_rate),
                   shares=[round(float(v), 4) for v in node.spike_shares.mean(0)],
                   rate_per_step=[round(float(v), 4) for v in node.firing_rate_per_step])
    if isinstance(node, neuron_zoo.ElasticBiNode):
        row["alpha"] = [round(float(a), 4) for a in node.alpha.detach()]
        rate = lemma1_rate(distribution, node.k, node.threshold_scale, node.bidirectional)
        row["lemma1_step0"] = round(rate, 4)
    return row


def run(T: int, shape: List[int], seed: int, specs: List[str]) -> List[Dict]:
    rows = []
    for distribution in ("gaussian", "laplace"):
        g = torch.Generator().manual_seed(seed)
        x = sample(distribution, shape, g).expand(T, *shape).contiguous()
        w = torch.randn(shape, generator=g)
        rows += [measure(spec.format(T=T), distribution, x, w) for spec in specs]
    return rows


def markdown(rows: List[Dict]) -> str:
    head = ("| input | neuron | firing rate | share -a / 0 / +a | rate per step | Lemma 1 (step 0) "
            "| grad cosine | grad non-zero |\n|---|---|---|---|---|---|---|---|\n")

    def fmt(v):
        if v is None:
            return "-"
        return f"{v:.3f}" if isinstance(v, float) else " ".join(f"{u:.3f}" for u in v)

    return head + "".join(
        f"| {r['input']} | `{r['neuron']}` | {fmt(r['firing_rate'])} | {fmt(r['shares'])} | "
        f"{fmt(r['rate_per_step'])} | {fmt(r.get('lemma1_step0'))} | {r['grad_cosine']:.3f} | "
        f"{r['grad_nonzero']:.3f} |\n" for r in rows)


def plot(rows: List[Dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spiking = [r for r in rows if r["firing_rate"] is not None]
    names = list(dict.fromkeys(r["neuron"] for r in spiking))
    fig, (ax_rate, ax_step) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.4
    for i, dist in enumerate(("gaussian", "laplace")):
        rates = {r["neuron"]: r["firing_rate"] for r in spiking if r["input"] == dist}
        ax_rate.bar([j + (i - 0.5) * width for j in range(len(names))], [rates[n] for n in names],
                    width, label=dist)
    ax_rate.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax_rate.set_ylabel("firing rate (non-zero spikes)")
    ax_rate.legend()
    for r in spiking:
        if r["neuron"].startswith("elastic_bi(k=") and r["neuron"].count("=") == 1:
            ax_step.plot(r["rate_per_step"], marker="o", label=f"{r['neuron']} {r['input']}")
    ax_step.set_xlabel("time step")
    ax_step.set_ylabel("firing rate")
    ax_step.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> List[Dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--T", type=int, default=4, help="time steps")
    p.add_argument("--shape", type=int, nargs="+", default=[16, 128, 256],
                   help="per-step activation shape, e.g. batch tokens features")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/neuron_demo", help="folder for table.md, table.json, rates.png")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    rows = run(args.T, args.shape, args.seed, DEFAULT_SPECS)
    table = markdown(rows)
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table)
    with open(os.path.join(args.out, "table.json"), "w") as f:
        json.dump(rows, f, indent=1)
    plot(rows, os.path.join(args.out, "rates.png"))
    print(f"wrote {args.out}/table.md, table.json, rates.png")
    return rows


if __name__ == "__main__":
    main()
