"""Cost of ``FiringRateMonitor`` on the training step of a small SpikeLM classifier (CPU).

One step = forward, backward, Adam step. Two measurements:

1. direct: the time spent inside the monitor's hooks (reading each neuron's cached
   ``spike_counts`` and adding it to a running sum) per step, and the time of one ``log`` that
   writes (TensorBoard scalars + histogram + flush), relative to the median step time. The
   overhead of ``every=N`` is ``(hooks + log / N) / step``.
2. end to end: steps with the monitor enabled and disabled, alternating (ABBA order) so that
   drifts in machine load cancel; median of each. On a shared machine this difference is noisy.

    python -m experiments.monitor_overhead
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from sj_spikelm import SpikeLMConfig, SpikeLMForSequenceClassification
from sj_spikelm.monitor import FiringRateMonitor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--T", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=10, help="ABBA groups of the end-to-end measurement")
    args = parser.parse_args()

    torch.manual_seed(0)
    config = SpikeLMConfig(hidden_size=args.hidden_size, num_hidden_layers=args.layers,
                           num_attention_heads=args.hidden_size // 64, intermediate_size=4 * args.hidden_size,
                           T=args.T, num_labels=2)
    model = SpikeLMForSequenceClassification(config).train()
    batch = {"input_ids": torch.randint(0, config.vocab_size, (args.batch_size, args.seq_len)),
             "attention_mask": torch.ones(args.batch_size, args.seq_len, dtype=torch.long),
             "labels": torch.randint(0, 2, (args.batch_size,))}
    model(**batch)  # calibrate before building the optimizer
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    monitor = FiringRateMonitor(model, tempfile.mkdtemp(prefix="monitor_overhead_"), every=1)

    hook_time = [0.0]
    record = monitor.counts._record

    def timed_record(name, value):
        start = time.perf_counter()
        record(name, value)
        hook_time[0] += time.perf_counter() - start

    monitor.counts._record = timed_record

    def step() -> float:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    step()  # warm-up
    on, off, hooks, logs = [], [], [], []
    for _ in range(args.pairs):
        for enabled in (True, False, False, True):
            (monitor.counts.enable if enabled else monitor.counts.disable)()
            hook_time[0] = 0.0
            (on if enabled else off).append(step())
            if enabled:
                hooks.append(hook_time[0])
                start = time.perf_counter()
                assert monitor.log(0)
                logs.append(time.perf_counter() - start)
    monitor.close()
    step_s, hook_s, log_s = statistics.median(off), statistics.median(hooks), statistics.median(logs)
    print(f"model: {args.layers} layers, D={args.hidden_size}, T={args.T}, batch {args.batch_size} x "
          f"{args.seq_len} tokens, {len(monitor.counts.monitored_layers)} neurons monitored, "
          f"torch threads {torch.get_num_threads()}")
    print(f"step (monitor disabled): median {step_s * 1e3:.1f} ms over {len(off)} steps")
    print(f"hooks: {hook_s * 1e3:.3f} ms per step; one writing log: {log_s * 1e3:.1f} ms")
    for every in (1, 100):
        print(f"direct overhead every={every}: {100 * (hook_s + log_s / every) / step_s:.2f}%")
    on_s = statistics.median(on)
    print(f"end to end (ABBA, monitor writing every step): enabled median {on_s * 1e3:.1f} ms, "
          f"disabled {step_s * 1e3:.1f} ms, difference {100 * (on_s / step_s - 1):+.1f}%")


if __name__ == "__main__":
    main()
