"""The neuron benchmark script without a GPU: --help, the no-CUDA exit, and its rows on tiny CPU
tensors with the cupy rows run through the host harness (timings not checked, only that every
implementation runs and that the byte model counts what the fused kernels are given)."""
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import bench_neurons

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "bench_neurons.py"


def test_cupy_bench_help_and_clear_exit_without_cuda(tmp_path):
    shown = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True,
                           cwd=tmp_path)
    assert shown.returncode == 0 and "--out" in shown.stdout
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the no-CUDA exit is not exercised")
    refused = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "out")],
                             capture_output=True, text=True, cwd=tmp_path)
    assert refused.returncode == 1 and "needs a CUDA GPU" in refused.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("steps", (3, 4))
def test_cupy_bench_rows_and_byte_model(launches, tmp_path, steps):
    args = bench_neurons.parse_args([
        "--device", "cpu", "--steps", str(steps), "--batch", "2", "--tokens", "3", "--width", "8",
        "--warmup", "0", "--repeats", "1", "--out", str(tmp_path),
        "--impls", "torch", "cupy", "cupy-learnable", "sj-lif", "sj-ternary-lif"])
    result = bench_neurons.run(args)
    bench_neurons.write(result, args.out)
    rows = result["rows"]
    assert [r["dtype"] for r in rows] == ["float32"] * 5 + ["bfloat16"] * 5
    assert all("error" not in r and r["median_ms"] > 0 for r in rows), rows
    n = 2 * 3 * 8
    fused_rows = [r for r in rows if r["model_bytes"] is not None]
    steps_run = launches  # one kernel set per fused call: the timed step of each layer
    assert len(steps_run) == len(fused_rows) == 4
    for kernels, row in zip(steps_run, fused_rows):
        assert kernels.calls[0] == "nz_forward" and len(kernels.calls) == 2
        given = sum(b for call in kernels.bytes for b in call if b >= n)  # per-element tensors only
        assert given == row["model_bytes"]
    assert (tmp_path / "bench_neurons.md").read_text().count("| elastic_bi cupy |") == 2
