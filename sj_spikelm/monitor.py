"""Per-layer firing rates and ``-a / 0 / +a`` spike shares, per time step, to TensorBoard.

Built on SpikingJelly's ``monitor.AttributeMonitor``: after each forward of a spiking zoo neuron
it reads the neuron's cached ``spike_counts`` (``[T, 3]``: ``-a``, ``0``, ``+a`` counts on the
valid positions) and adds them to a running sum on the device. No extra pass over the
activations and no host synchronisation per step; the sums are copied to the host once per
``log``.
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Union

import torch
from spikingjelly.activation_based import monitor
from torch import nn

import neuron_zoo
from neuron_zoo.validation import check_choice, check_positive_int

Rates = Dict[str, Dict[str, object]]


class SpikeCountMonitor(monitor.AttributeMonitor):
    """``AttributeMonitor`` on ``spike_counts`` of every spiking zoo neuron in ``net`` (the
    classes deriving from ``neuron_zoo.SpikeStatsMixin``; ``ann`` neurons have no spikes) that
    keeps one running ``[T, 3]`` sum per neuron (``totals``) instead of a list of records. After
    each forward it adds only the rows that forward appended (``spike_rows_recorded``), at
    their time-step positions, so single-step neurons (one row per call, counts kept until
    ``reset()``) are summed correctly too. ``mode='train'`` counts only training forwards (the
    neuron in training mode with gradients enabled: not evaluation, not a calibration pass)."""

    MODES = ("all", "train")

    def __init__(self, net: nn.Module, mode: str = "all"):
        super().__init__("spike_counts", False, net, instance=neuron_zoo.SpikeStatsMixin)
        self.mode = check_choice("mode", mode, self.MODES)
        self.totals: Dict[str, torch.Tensor] = {}
        modules = dict(net.named_modules())
        self._rows_seen = {name: modules[name].spike_rows_recorded for name in self.monitored_layers}

    def create_hook(self, name):
        def hook(module, *args):
            if self.is_enable() and (self.mode == "all" or (module.training and torch.is_grad_enabled())):
                self._add_new_rows(name, module)

        return hook

    def _add_new_rows(self, name: str, node: nn.Module) -> None:
        counts, recorded = node.spike_counts, node.spike_rows_recorded
        new = recorded - self._rows_seen.get(name, 0)
        self._rows_seen[name] = recorded
        if counts is None or new <= 0:
            return
        new = min(new, len(counts))
        start, end = len(counts) - new, len(counts)
        total = self.totals.get(name)
        if total is None or len(total) < end:
            grown = counts.new_zeros(end, 3)
            if total is not None:
                grown[: len(total)] = total
            total = grown
        total[start:end] += counts[start:end].detach()
        self.totals[name] = total

    def clear_recorded_data(self) -> None:
        super().clear_recorded_data()
        self.totals = {}

def has_spiking_neurons(model: nn.Module) -> bool:
    """Whether ``model`` holds a zoo neuron that emits spikes (not only ``ann`` identities)."""
    return any(isinstance(m, neuron_zoo.SpikeStatsMixin) for m in model.modules())


def counts_to_rates(totals: Dict[str, torch.Tensor]) -> Rates:
    """``{name: {"rate", "shares", "per_step", "per_step_shares"}}`` from ``[T, 3]`` counts:
    ``rate = (n_- + n_+) / n`` over all steps, ``shares = [n_-, n_0, n_+] / n``, and the same
    per time step. One host copy for all neurons."""
    if not totals:
        return {}
    counts = torch.stack([c.detach().float() for c in totals.values()]).cpu()  # [N, T, 3]
    per_step_shares = counts / counts.sum(-1, keepdim=True).clamp_min(1)
    overall = counts.sum(1)
    shares = overall / overall.sum(-1, keepdim=True).clamp_min(1)
    return {name: {"rate": float(1 - shares[i, 1]),
                   "shares": shares[i].tolist(),
                   "per_step": (1 - per_step_shares[i, :, 1]).tolist(),
                   "per_step_shares": per_step_shares[i].tolist()}
            for i, name in enumerate(totals)}


class FiringRateMonitor:
    """Firing rate and ``-a / 0 / +a`` shares of every spiking neuron of ``model`` (named by
    module path, e.g. ``bert.encoder.layer.0.attention.self.query.neuron`` = the spikes feeding
    ``query``), summed over the forwards since the last ``log`` that wrote.

    ``mode`` is :class:`SpikeCountMonitor`'s (``'train'``: training forwards only).
    ``log(step)`` writes when ``step % every == 0``: per neuron the scalars
    ``firing_rate/<name>``, ``firing_rate_per_step/<name>/t<t>`` and
    ``spike_share/<name>/{neg,zero,pos}``, and the histogram ``firing_rate_across_layers`` of
    all neurons' rates (the paper's Fig. 5); then starts a new window. ``writer_or_logdir`` is a
    ``SummaryWriter`` (or anything with ``add_scalar`` / ``add_histogram``) or a log folder.
    """

    def __init__(self, model: nn.Module, writer_or_logdir, every: int = 100, mode: str = "all"):
        self.every = check_positive_int("every", every)
        if isinstance(writer_or_logdir, (str, os.PathLike)):
            from torch.utils.tensorboard import SummaryWriter

            self.writer, self._owns_writer = SummaryWriter(os.fspath(writer_or_logdir)), True
        elif hasattr(writer_or_logdir, "add_scalar") and hasattr(writer_or_logdir, "add_histogram"):
            self.writer, self._owns_writer = writer_or_logdir, False
        else:
            raise TypeError(f"writer_or_logdir={writer_or_logdir!r} must be a SummaryWriter or a folder path")
        self.counts = SpikeCountMonitor(model, mode)
        if not self.counts.monitored_layers:
            raise ValueError(f"{type(model).__name__} has no spiking zoo neuron to monitor")

    def rates(self) -> Rates:
        """Rates of the forwards since the last written ``log``, in module order:
        ``{name: {"rate": float, "shares": [neg, zero, pos], "per_step": [rate_t ...],
        "per_step_shares": [[neg, zero, pos] per step]}}``."""
        totals = self.counts.totals
        return counts_to_rates({n: totals[n] for n in self.counts.monitored_layers if n in totals})

    def log(self, step: int) -> bool:
        """Write the window's rates to TensorBoard if ``step % every == 0`` and there were
        forwards; returns whether it wrote."""
        if step % self.every or not self.counts.totals:
            return False
        rates = self.rates()
        for name, r in rates.items():
            self.writer.add_scalar(f"firing_rate/{name}", r["rate"], step)
            for t, rate in enumerate(r["per_step"]):
                self.writer.add_scalar(f"firing_rate_per_step/{name}/t{t}", rate, step)
            for label, share in zip(("neg", "zero", "pos"), r["shares"]):
                self.writer.add_scalar(f"spike_share/{name}/{label}", share, step)
        self.writer.add_histogram("firing_rate_across_layers",
                                  torch.tensor([r["rate"] for r in rates.values()]), step)
        self.writer.flush()
        self.counts.clear_recorded_data()
        return True

    def close(self) -> None:
        """Remove the hooks (and close the writer if this monitor opened it)."""
        self.counts.close()
        if self._owns_writer:
            self.writer.close()


def short_name(name: str) -> str:
    """``bert.encoder.layer.3.attention.self.query.neuron`` -> ``3.attention.self.query``."""
    for prefix in ("bert.", "encoder.", "layer."):
        name = name[len(prefix):] if name.startswith(prefix) else name
    return name[: -len(".neuron")] if name.endswith(".neuron") else name


def plot_firing_rates(rates: Rates, path: Union[str, os.PathLike], title: Optional[str] = None) -> str:
    """Bar chart of every neuron's firing rate, split into ``-a`` and ``+a`` shares, in the
    order of ``rates``, written to ``path`` (PNG). Returns the path."""
    from matplotlib.figure import Figure

    if not rates:
        raise ValueError("rates is empty: nothing to plot")
    names = [short_name(n) for n in rates]
    neg = [r["shares"][0] for r in rates.values()]
    pos = [r["shares"][2] for r in rates.values()]
    fig = Figure(figsize=(max(6.0, 0.22 * len(names)), 4.5))
    ax = fig.add_subplot()
    ax.bar(range(len(names)), neg, label="-a", color="tab:blue")
    ax.bar(range(len(names)), pos, bottom=neg, label="+a", color="tab:red")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_ylabel("firing rate (share of non-zero spikes)")
    ax.set_title(title or "firing rate per layer")
    ax.legend()
    fig.tight_layout()
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
