"""Forward + backward time of one neuron layer on a GPU, for every way of running it.

Shape: ``T`` steps of ``batch * tokens * width`` elements (default T=4, 64 * 128 * 3072: a BERT-
base FFN activation), fp32 and bf16. Implementations:

* ``elastic_bi torch``: ``ElasticBiNode`` on the torch backend, eager;
* ``elastic_bi torch.compile``: the same forward under ``torch.compile`` (backward by AOTAutograd);
* ``elastic_bi cupy``: the fused CuPy kernels (``backend='cupy'``), calibrated alpha;
* ``elastic_bi(learnable) cupy``: the same with ``alpha='learnable'`` (backward recomputes m);
* ``sj LIFNode``: SpikingJelly 2.x ``LIFNode`` (ATan, detached reset), whose multi-step CUDA path
  is SpikingJelly's own fused kernel (native CUDA if built, else Triton; the one selected is
  reported);
* ``sj TernaryLIFNode``: SpikingJelly 2.x ``TernaryLIFNode``, a per-step PyTorch loop.

Each time is the median over ``--repeats`` runs (CUDA events, after ``--warmup`` runs) of
``reset(); s = node(x); torch.autograd.grad(s, (x, ...), g)``, our neurons keeping their default
spike statistics. Also measured: the device-to-device copy bandwidth of a tensor of the same size
(``2 * T * N * itemsize`` bytes per copy). For each implementation the table gives
``io``, the traffic any implementation must have (read x, write s, read dL/ds, write dL/dx:
``4 * T * N * itemsize``) and its rate as a fraction of the copy bandwidth, and for our kernels
the exact bytes they move (``model``; see neuron_zoo/fused_spike.py) and that fraction; plus the
memory ``held`` between forward and backward (the output, what autograd saved, the state).

    python experiments/bench_neurons.py --out results/bench_neurons

Writes ``bench_neurons.json`` and ``bench_neurons.md`` under ``--out``. Needs a CUDA GPU.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Callable, Dict, List, Optional, Tuple

import torch

if __package__ in (None, ""):  # run as a script: make the repository's packages importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import neuron_zoo  # noqa: E402
from neuron_zoo import cupy_kernels  # noqa: E402

IMPLEMENTATIONS = ("torch", "torch.compile", "cupy", "cupy-learnable", "sj-lif", "sj-ternary-lif")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Layer:
    """One neuron layer ready to run: ``forward()`` resets it and returns its spikes for ``x``,
    ``step()`` is one forward + backward."""
    name: str
    forward: Callable[[], torch.Tensor]
    inputs: Tuple[torch.Tensor, ...]
    grad: torch.Tensor
    model_bytes: Optional[int] = None  # exact traffic of our fused kernels, None if not known
    note: str = ""

    def step(self) -> None:
        torch.autograd.grad(self.forward(), self.inputs, self.grad)


def elastic_bi(x: torch.Tensor, backend: str, alpha: str = "calibrated") -> neuron_zoo.ElasticBiNode:
    """A calibrated ElasticBiNode in training mode (alpha from ``x``, so the timed calls never
    take the calibration path)."""
    node = neuron_zoo.ElasticBiNode(alpha=alpha, T=x.shape[0]).to(x.device)
    neuron_zoo.set_backend(node, backend)
    node.calibrate(x.detach())
    return node.train()


def fused_model_bytes(steps: int, n: int, itemsize: int, learnable: bool) -> int:
    """Bytes our kernels read and write for one forward + backward of ``steps`` x ``n`` elements:
    calibrated: x, s, code, v_last | dL/ds, code, dL/dx; learnable: x, s, v_last | x, dL/ds, dL/dx
    (the [T] amplitudes and per-block partial sums are negligible)."""
    if learnable:
        return 5 * steps * n * itemsize + 4 * n
    return 4 * steps * n * itemsize + 2 * ((steps + 1) // 2) * n + 4 * n


def reset_then(node, call: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor):
    def forward():
        node.reset()
        return call(x)
    return forward


def build_layer(kind: str, x: torch.Tensor, grad: torch.Tensor) -> Layer:
    steps, n, itemsize = x.shape[0], x[0].numel(), x.element_size()
    if kind == "torch":
        node = elastic_bi(x, "torch")
        return Layer("elastic_bi torch", reset_then(node, node, x), (x,), grad)
    if kind == "torch.compile":
        node = elastic_bi(x, "torch")
        return Layer("elastic_bi torch.compile", reset_then(node, torch.compile(node), x), (x,), grad)
    if kind in ("cupy", "cupy-learnable"):
        learnable = kind == "cupy-learnable"
        node = elastic_bi(x, "cupy", "learnable" if learnable else "calibrated")
        name = "elastic_bi(learnable) cupy" if learnable else "elastic_bi cupy"
        return Layer(name, reset_then(node, node, x), (x, node.alpha) if learnable else (x,), grad,
                     fused_model_bytes(steps, n, itemsize, learnable))
    from spikingjelly.activation_based import neuron, surrogate
    if kind == "sj-lif":
        node = neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), detach_reset=True, step_mode="m")
        return Layer("sj LIFNode", reset_then(node, node, x), (x,), grad,
                     note=sj_lif_implementation(x.device))
    if kind == "sj-ternary-lif":
        node = neuron.TernaryLIFNode(tau=2.0, surrogate_function=surrogate.ATan(), detach_reset=True,
                                     step_mode="m")
        return Layer("sj TernaryLIFNode", reset_then(node, node, x), (x,), grad, note="per-step PyTorch loop")
    raise ValueError(f"implementation {kind!r}; accepted: {', '.join(IMPLEMENTATIONS)}")


def sj_lif_implementation(device: torch.device) -> str:
    """Which multi-step LIF implementation SpikingJelly selected on ``device``."""
    if device.type != "cuda":
        return "cpu"
    try:
        from spikingjelly._ops.lif import _selection
        found = _selection.diagnostics(device)
    except Exception as err:  # private API of SpikingJelly 2.0; report instead of failing the run
        return f"unknown ({type(err).__name__}: {err})"
    return found["implementation"]


def median_ms(fn: Callable[[], None], warmup: int, repeats: int, device: torch.device) -> Tuple[float, float]:
    """Median and minimum wall time of ``fn`` on ``device``'s current stream, in ms (CUDA events;
    perf_counter on a CPU)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - begin))
    return statistics.median(times), min(times)


def held_after_forward(layer: Layer, device: torch.device) -> Optional[int]:
    """Bytes allocated while one forward's output, what autograd saved and the state are alive."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    kept = layer.forward()
    held = torch.cuda.memory_allocated(device) - before
    del kept
    return held


def copy_bandwidth(x: torch.Tensor, warmup: int, repeats: int) -> float:
    """Device-to-device copy bandwidth (bytes read + written per second) for a tensor like ``x``."""
    src, dst = torch.randn_like(x), torch.empty_like(x)
    ms, _ = median_ms(lambda: dst.copy_(src), warmup, repeats, x.device)
    return 2 * x.numel() * x.element_size() / (ms * 1e-3)


def run(args) -> Dict:
    device = torch.device(args.device)
    shape = (args.steps, args.batch, args.tokens, args.width)
    rows: List[Dict] = []
    bandwidth = {}
    for dtype_name in args.dtypes:
        dtype = DTYPES[dtype_name]
        torch.manual_seed(0)
        x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
        grad = torch.randn(shape, device=device, dtype=dtype)
        bandwidth[dtype_name] = copy_bandwidth(x.detach(), args.warmup, args.repeats)
        io_bytes = 4 * x.numel() * x.element_size()
        for kind in args.impls:
            row = {"implementation": kind, "dtype": dtype_name}
            try:
                layer = build_layer(kind, x, grad)
                row.update(implementation=layer.name, note=layer.note)
                ms, best = median_ms(layer.step, args.warmup, args.repeats, device)
                row.update(median_ms=ms, min_ms=best, held_bytes=held_after_forward(layer, device),
                           io_bytes=io_bytes,
                           io_fraction=io_bytes / (ms * 1e-3) / bandwidth[dtype_name],
                           model_bytes=layer.model_bytes,
                           model_fraction=(None if layer.model_bytes is None
                                           else layer.model_bytes / (ms * 1e-3) / bandwidth[dtype_name]))
                del layer
            except Exception as err:  # one failing implementation must not lose the others' figures
                row["error"] = f"{type(err).__name__}: {err}"
            rows.append(row)
            print(format_row(row), flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
        del x, grad
    return {"device": device_name(device), "shape": list(shape), "elements_per_step": math.prod(shape[1:]),
            "copy_bandwidth_GBps": {k: v / 1e9 for k, v in bandwidth.items()}, "versions": versions(),
            "sj_lif_implementation": sj_lif_implementation(device), "warmup": args.warmup,
            "repeats": args.repeats, "command": " ".join(sys.argv), "rows": rows}


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def versions() -> Dict[str, Optional[str]]:
    found = {"torch": torch.__version__, "cuda": torch.version.cuda}
    for package in ("spikingjelly", "cupy", "cupy-cuda12x", "cupy-cuda13x"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


COLUMNS = [("implementation", "implementation"), ("dtype", "dtype"), ("median_ms", "median ms"),
           ("min_ms", "min ms"), ("io_fraction", "io / copy BW"), ("model_bytes", "model GB"),
           ("model_fraction", "model / copy BW"), ("held_bytes", "held GB"), ("note", "note")]


def format_value(key: str, value) -> str:
    if value is None or value == "":
        return "-"
    if key.endswith("fraction"):
        return f"{100 * value:.0f}%"
    if key.endswith("bytes"):
        return f"{value / 1e9:.3f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_row(row: Dict) -> str:
    if "error" in row:
        return f"{row['implementation']} {row['dtype']}: {row['error']}"
    return "  ".join(f"{title}={format_value(key, row.get(key))}" for key, title in COLUMNS)


def markdown(result: Dict) -> str:
    lines = [f"# Neuron layer forward + backward, {result['device']}", "",
             f"Shape {result['shape']} ([T, B, L, D]); median of {result['repeats']} runs after "
             f"{result['warmup']} warm-up runs; copy bandwidth (read + write) "
             + ", ".join(f"{k}: {v:.0f} GB/s" for k, v in result["copy_bandwidth_GBps"].items())
             + f"; SpikingJelly LIF implementation: {result['sj_lif_implementation']}.", "",
             "| " + " | ".join(title for _, title in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in result["rows"]:
        if "error" in row:
            cells = [row["implementation"], row["dtype"]] + ["-"] * (len(COLUMNS) - 3) + [row["error"]]
        else:
            cells = [format_value(key, row.get(key)) for key, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "`io / copy BW`: (4 T N itemsize bytes / time) / copy bandwidth, comparable across "
              "implementations; `model`: the bytes our fused kernels actually move; `held`: memory "
              "allocated between forward and backward (output, saved tensors, state).", "",
              f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def write(result: Dict, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "bench_neurons.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(out, "bench_neurons.md"), "w") as f:
        f.write(markdown(result))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/bench_neurons", help="results folder")
    parser.add_argument("--steps", type=int, default=4, help="time steps T")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--width", type=int, default=3072)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=list(DTYPES))
    parser.add_argument("--impls", nargs="+", default=list(IMPLEMENTATIONS), choices=IMPLEMENTATIONS)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cuda", help="a CUDA device, e.g. cuda or cuda:1")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not torch.cuda.is_available() or not args.device.startswith("cuda"):
        sys.exit("bench_neurons.py times CUDA kernels and needs a CUDA GPU: "
                 f"torch.cuda.is_available() is {torch.cuda.is_available()}, --device {args.device}")
    problem = cupy_kernels.cupy_problem()
    if problem is not None:
        print(f"note: the cupy rows will fail: {problem}", file=sys.stderr)
    result = run(args)
    write(result, args.out)
    print(markdown(result))


if __name__ == "__main__":
    main()
