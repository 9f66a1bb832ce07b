"""Energy accounting shared by every family (SpikeLM Appendix A.3): costs, rows, the report.

Every linear layer and attention matmul costs, per token (45 nm, Horowitz 2014)::

    ANN (real input):      E = m * n * E_MAC
    SNN (spiking input):   E = m * n * E_AC * T * r

with ``m x n`` the matmul's size, ``T`` the time steps and ``r`` the measured firing rate of the
spikes feeding it (non-zero share over the real tokens: spikes are counted under the attention
mask, so padding is left out). ``E_MAC / E_AC`` are 4.6 / 0.9 pJ (FP32) and 1.5 / 0.4 pJ (FP16),
taken from SpikingJelly's ``op_counter.SimpleEnergyCostConfig`` presets.

What SpikingJelly's ``op_counter`` (``MACCounter`` / ``ACCounter`` under
``DispatchCounterMode``) could not do here: it decides "spike" per aten call by checking that a
tensor is binary ``{0, 1}``, so ternary ``{-a, 0, +a}`` spikes are counted as dense MACs and
contribute no ACs; it counts whatever the tensors hold, padding included; it checks every
matmul operand with ``.item()`` (a host synchronisation per op); and fused attention
(``scaled_dot_product_attention``) is not one of its rules. So counts come from the model's
structure and the neurons' cached spike counts; ``MACCounter`` agrees with the ANN count on an
unpadded batch with eager attention (checked in the tests).
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from spikingjelly.activation_based.op_counter import SimpleEnergyCostConfig
from torch import nn

from neuron_zoo import SpikeStatsMixin

PRECISIONS = {"fp32": SimpleEnergyCostConfig.fp32, "fp16": SimpleEnergyCostConfig.fp16}
PJ_TO_MJ = 1e-9


@dataclass
class EnergyReport:
    """Per-layer rows (dicts: ``layer``, ``kind`` MAC/AC, ``m``, ``n``, ``dense_ops`` per
    sequence and step, ``steps``, ``rate``, ``ops`` per sequence, ``energy_mj`` per sequence) and
    ``total_mj``, the mean energy of one sequence of the batch."""

    rows: List[Dict] = field(default_factory=list)
    total_mj: float = 0.0
    precision: str = "fp32"
    e_mac_pj: float = 0.0
    e_ac_pj: float = 0.0
    T: int = 1
    sequences: int = 0
    mean_tokens: float = 0.0

    def to_dict(self) -> Dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self) -> str:
        lines = [f"Energy per sequence ({self.precision}: E_MAC={self.e_mac_pj} pJ, E_AC={self.e_ac_pj} pJ; "
                 f"T={self.T}; {self.sequences} sequences, {self.mean_tokens:.1f} real tokens on average)",
                 "", "| layer | kind | m x n | ops/step (dense) | steps | rate | ops | energy (mJ) |",
                 "|---|---|---|---:|---:|---:|---:|---:|"]
        for r in self.rows:
            size = f"{r['m']} x {r['n']}" if r["n"] is not None else f"{r['m']} x N"
            rate = "" if r["rate"] is None else f"{r['rate']:.4f}"
            lines.append(f"| {r['layer']} | {r['kind']} | {size} | {r['dense_ops']:.4g} | {r['steps']} | "
                         f"{rate} | {r['ops']:.4g} | {r['energy_mj']:.4g} |")
        lines.append(f"| **total** | | | | | | | **{self.total_mj:.4g}** |")
        return "\n".join(lines)

    def mj_per_token(self) -> float:
        """Energy per sequence / real tokens per sequence (for a causal model with a KV cache:
        the mean energy of one generated token over a context of that length)."""
        return self.total_mj / self.mean_tokens

    def per_layer(self) -> Dict[str, float]:
        """mJ per sequence summed per layer (``encoder.layer.3.*`` / ``model.layers.3.*`` -> ``"3"``;
        a head keeps its row name)."""
        out: Dict[str, float] = {}
        for r in self.rows:
            match = re.search(r"(?:^|\.)layers?\.(\d+)\.", r["layer"])
            key = match.group(1) if match else r["layer"]
            out[key] = out.get(key, 0.0) + r["energy_mj"]
        return out


def firing_rate(node: nn.Module) -> Optional[float]:
    """Measured firing rate of a spiking zoo neuron's last forward; None for real outputs."""
    if not isinstance(node, SpikeStatsMixin):
        return None
    if node.spike_counts is None:
        raise RuntimeError(f"{type(node).__name__} recorded no spikes (record_stats={node.record_stats})")
    return float(node.firing_rate)


def check_precision(precision: str):
    """The energy costs of ``precision`` (one of :data:`PRECISIONS`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not accepted; choose one of {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]()


class Rows:
    """The rows of an :class:`EnergyReport`: a matmul fed by a spiking neuron costs ``dense * T * r``
    ACs, one with real input ``dense`` MACs per step (``T`` steps in a spiking model, one in an
    ANN, which repeats the same step; one for the heads, ``real=True``)."""

    def __init__(self, cost, T: int, sequences: int, spiking_part: nn.Module):
        self.cost, self.T, self.B, self.rows = cost, T, sequences, []
        self.spiking = any(isinstance(m, SpikeStatsMixin) for m in spiking_part.modules())

    def add(self, layer: str, m: int, n: Optional[int], dense_total: float, node: Optional[nn.Module] = None,
            real: bool = False, rate: Optional[float] = None) -> None:
        """One row: ``dense_total`` operations per step over the batch; spikes at ``rate`` (else the
        firing rate of ``node``, a spiking zoo neuron) cost ``dense T rate`` ACs, real input
        ``dense`` MACs per step."""
        dense = dense_total / self.B
        if rate is None and node is not None:
            rate = firing_rate(node)
        if rate is None:
            steps = 1 if real or not self.spiking else self.T
            kind, ops, energy_pj = "MAC", dense * steps, self.cost.e_mac_pj
        else:
            kind, steps, energy_pj = "AC", self.T, self.cost.e_ac_pj
            ops = dense * self.T * rate
        self.rows.append(dict(layer=layer, kind=kind, m=m, n=n, dense_ops=dense, steps=steps, rate=rate,
                              ops=ops, energy_mj=ops * energy_pj * PJ_TO_MJ))

    def report(self, precision: str, mean_tokens: float) -> EnergyReport:
        return EnergyReport(rows=self.rows, total_mj=sum(r["energy_mj"] for r in self.rows),
                            precision=precision, e_mac_pj=self.cost.e_mac_pj, e_ac_pj=self.cost.e_ac_pj,
                            T=self.T if self.spiking else 1, sequences=self.B, mean_tokens=mean_tokens)
