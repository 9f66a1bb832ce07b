"""Builds the host harness of the CUDA kernel math (tests/cuda_harness/amplitude_harness.cpp,
which includes neuron_zoo/cuda/amplitude_node.cuh) with g++ and wraps it in the interface of
``neuron_zoo.cupy_kernels.CupyAmplitudeKernels``, so the fused backend's Python glue and the
kernels' per-element math run on CPU tensors. The library is cached in the temp folder under a
hash of its sources and flags, so it is compiled once."""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from neuron_zoo import cupy_kernels

SOURCE = Path(__file__).resolve().parent / "cuda_harness" / "amplitude_harness.cpp"
FLAGS = ("-std=c++20", "-O1", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math",
         "-Wall", "-Wextra", "-Werror")
DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1}
STEPS = (1, 2, 3, 4, 5, 8)  # nz_harness_steps in the harness


class HarnessUnavailable(RuntimeError):
    pass


def build() -> Path:
    """Path of the compiled harness, compiling it if this version is not cached yet."""
    compiler = shutil.which("g++")
    if compiler is None:
        raise HarnessUnavailable("g++ is not on PATH")
    header = cupy_kernels.CUDA_DIR / cupy_kernels.HEADER
    digest = hashlib.sha256(SOURCE.read_bytes() + header.read_bytes() + " ".join(FLAGS).encode())
    library = Path(tempfile.gettempdir()) / "neuron_zoo_harness" / f"amplitude_{digest.hexdigest()[:16]}.so"
    if not library.exists():
        library.parent.mkdir(exist_ok=True)
        partial = library.with_name(f"{library.stem}.{os.getpid()}.tmp")
        done = subprocess.run([compiler, *FLAGS, f"-I{header.parent}", str(SOURCE), "-o", str(partial)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"g++ failed on the harness:\n{done.stderr}")
        os.replace(partial, library)
    return library


def load() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build()))
    p, i, ll, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong, ctypes.c_float
    lib.nz_forward.argtypes = [i, i, i, i] + [p] * 8 + [ll, f]
    lib.nz_backward.argtypes = [i, i, i, i] + [p] * 6 + [ll, f]
    lib.nz_backward_lsq.argtypes = [i, i, i, i] + [p] * 9 + [ll, f]
    lib.nz_to_bf16.argtypes = [p, p, ll]
    lib.nz_from_bf16.argtypes = [p, p, ll]
    for fn in (lib.nz_forward, lib.nz_backward, lib.nz_backward_lsq):
        fn.restype = ctypes.c_int
    return lib


def _pointer(tensor):
    if tensor is None:
        return None
    assert tensor.device.type == "cpu" and tensor.is_contiguous(), "the harness takes contiguous CPU tensors"
    return tensor.data_ptr()


class HostAmplitudeKernels:
    """``CupyAmplitudeKernels`` on the CPU: same methods and arguments, one 'block'."""

    def __init__(self, lib: ctypes.CDLL, dtype: torch.dtype, steps: int, reset: str, bidirectional: bool):
        if dtype not in DTYPE_CODES or steps not in STEPS:
            raise ValueError(f"the host harness is built for {list(DTYPE_CODES)} and T in {STEPS}")
        self.lib = lib
        self.config = (DTYPE_CODES[dtype], steps, cupy_kernels.RESET_CODES[reset], int(bidirectional))
        self.calls = []  # kernel names, in order
        self.bytes = []  # per call: bytes of each tensor argument given

    def blocks(self, n: int, device) -> int:
        return 1

    def _call(self, name: str, tensors, n: int, decay: float) -> None:
        self.calls.append(name)
        self.bytes.append([t.numel() * t.element_size() for t in tensors if t is not None])
        status = getattr(self.lib, name)(*self.config, *(_pointer(t) for t in tensors), n, decay)
        assert status == 0, f"{name} is not built for {self.config}"

    def forward(self, x, amp, thr, v0, s, v_last, code, count_partials, n, decay):
        self._call("nz_forward", (x, amp, thr, v0, s, v_last, code, count_partials), n, decay)

    def backward(self, grad_s, code, amp, grad_v_last, grad_x, grad_v0, n, decay):
        self._call("nz_backward", (grad_s, code, amp, grad_v_last, grad_x, grad_v0), n, decay)

    def backward_lsq(self, x, v0, grad_s, amp, thr, grad_v_last, grad_x, grad_v0, lsq_partials, n, decay):
        self._call("nz_backward_lsq", (x, v0, grad_s, amp, thr, grad_v_last, grad_x, grad_v0, lsq_partials),
                   n, decay)
