"""CuPy runtime of the fused amplitude-neuron kernels: finds CuPy and CUDA (with an error naming
what is missing), compiles the CUDA sources shipped in ``neuron_zoo/cuda`` once per
(dtype, T, reset, bidirectional) on first use, and launches them on PyTorch's current stream.

Nothing here imports CuPy or compiles at import time. Tensors are passed to the kernels as raw
device pointers (``data_ptr()``): no copy, no conversion; outputs are allocated by PyTorch.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch

CUDA_DIR = Path(__file__).with_name("cuda")
HEADER = "amplitude_node.cuh"
KERNEL_SOURCE = "amplitude_kernels.cu"
KERNELS = ("amplitude_forward", "amplitude_backward", "amplitude_backward_lsq")
DTYPES = {torch.float32: "float", torch.bfloat16: "nz::bf16", torch.float16: "nz::fp16"}
RESET_CODES = {"reference": 0, "hard": 1, "soft": 2}  # nz::ResetMode in amplitude_node.cuh
COMPILE_OPTIONS = ("-std=c++17",)
THREADS = 256  # nz::THREADS in amplitude_kernels.cu
VECTOR_BYTES = 16  # bytes of input each thread loads per step (nz::Vec)
BLOCKS_PER_SM = 16  # grid cap: enough resident blocks to fill every SM, then grid-stride


def cupy_problem() -> Optional[str]:
    """Why ``backend='cupy'`` cannot run on this machine, or None when it can."""
    try:
        import cupy
    except ImportError as err:
        return (f"CuPy is not installed ({err}); install the build for your CUDA version, e.g. "
                "pip install 'sj_spikelm[cuda12]' (cupy-cuda12x) or 'sj_spikelm[cuda13]' (cupy-cuda13x)")
    if not torch.cuda.is_available():
        return "PyTorch finds no CUDA device (torch.cuda.is_available() is False)"
    try:
        available = cupy.cuda.is_available()
    except Exception as err:  # a broken driver or runtime surfaces as CUDA errors of many kinds
        return f"CuPy cannot reach CUDA ({type(err).__name__}: {err})"
    if not available:
        return "CuPy finds no CUDA device (cupy.cuda.is_available() is False)"
    return None


def require_cupy():
    """The ``cupy`` module; ``RuntimeError`` saying what is missing when CuPy or CUDA is not there."""
    problem = cupy_problem()
    if problem is not None:
        raise RuntimeError(f"backend='cupy' cannot run here: {problem}. Use backend='torch'.")
    import cupy
    return cupy


@functools.lru_cache(maxsize=None)
def kernel_source() -> str:
    """The kernel file with the header inlined (so CuPy's source-keyed disk cache sees both)."""
    header = (CUDA_DIR / HEADER).read_text()
    kernels = (CUDA_DIR / KERNEL_SOURCE).read_text()
    include = f'#include "{HEADER}"'
    if include not in kernels:
        raise RuntimeError(f"{KERNEL_SOURCE} no longer includes {HEADER}")
    return kernels.replace(include, header)


def kernel_name(kernel: str, dtype: torch.dtype, steps: int, reset: str, bidirectional: bool) -> str:
    """C++ name of one template instantiation, e.g. ``nz::amplitude_forward<float, 4, 0, true>``."""
    return (f"nz::{kernel}<{DTYPES[dtype]}, {steps}, {RESET_CODES[reset]}, "
            f"{'true' if bidirectional else 'false'}>")


def vector_width(dtype: torch.dtype) -> int:
    """Elements per thread (``nz::Vec<S>::size``): 4 for float32, 8 for 16-bit types."""
    return VECTOR_BYTES // torch.empty(0, dtype=dtype).element_size()


def _pointer(tensor: Optional[torch.Tensor]) -> int:
    return 0 if tensor is None else tensor.data_ptr()


def vectorizable(n: int, width: int, *tensors: Optional[torch.Tensor]) -> bool:
    """Whether 16-byte vector access is valid: ``n`` a multiple of the vector width and each
    tensor's start aligned to ``width`` of its elements."""
    return n % width == 0 and all(
        t is None or t.data_ptr() % (width * t.element_size()) == 0 for t in tensors)


@functools.lru_cache(maxsize=None)
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


class CupyAmplitudeKernels:
    """The three kernels of one (dtype, T, reset, bidirectional) instantiation. The methods take
    contiguous tensors (``None`` for an absent optional one) and launch on the current PyTorch
    stream of the input's device; the partial sums have one row per block (:meth:`blocks`)."""

    def __init__(self, dtype: torch.dtype, steps: int, reset: str, bidirectional: bool):
        cupy = require_cupy()
        names = {k: kernel_name(k, dtype, steps, reset, bidirectional) for k in KERNELS}
        module = cupy.RawModule(code=kernel_source(), options=COMPILE_OPTIONS,
                                name_expressions=list(names.values()))
        self._cupy = cupy
        self._kernels = {k: module.get_function(name) for k, name in names.items()}
        self.width = vector_width(dtype)

    def blocks(self, n: int, device: torch.device) -> int:
        chunks = math.ceil(n / self.width)
        return max(1, min(math.ceil(chunks / THREADS), _sm_count(device.index) * BLOCKS_PER_SM))

    def _launch(self, kernel: str, device: torch.device, n: int, tensors, per_element, scalars) -> None:
        """Launch ``kernel`` with ``tensors`` (pointers), ``n``, ``scalars`` (float32) and the
        vectorized flag, valid when every tensor in ``per_element`` allows 16-byte access."""
        cupy = self._cupy
        args = tuple(_pointer(t) for t in tensors) + (np.int64(n),) + tuple(np.float32(s) for s in scalars)
        args += (np.int32(vectorizable(n, self.width, *per_element)),)
        with cupy.cuda.Device(device.index), _torch_stream(cupy, device):
            self._kernels[kernel]((self.blocks(n, device),), (THREADS,), args)

    def forward(self, x, amp, thr, v0, s, v_last, code, count_partials, n: int, decay: float) -> None:
        self._launch("amplitude_forward", x.device, n, (x, amp, thr, v0, s, v_last, code, count_partials),
                     (x, v0, s, v_last, code), (decay,))

    def backward(self, grad_s, code, amp, grad_v_last, grad_x, grad_v0, n: int, decay: float) -> None:
        self._launch("amplitude_backward", grad_s.device, n,
                     (grad_s, code, amp, grad_v_last, grad_x, grad_v0),
                     (grad_s, code, grad_v_last, grad_x, grad_v0), (decay,))

    def backward_lsq(self, x, v0, grad_s, amp, thr, grad_v_last, grad_x, grad_v0, lsq_partials,
                     n: int, decay: float) -> None:
        self._launch("amplitude_backward_lsq", x.device, n,
                     (x, v0, grad_s, amp, thr, grad_v_last, grad_x, grad_v0, lsq_partials),
                     (x, v0, grad_s, grad_v_last, grad_x, grad_v0), (decay,))


def _torch_stream(cupy, device: torch.device):
    """PyTorch's current stream on ``device`` as a CuPy stream: CuPy 14's ``Stream.from_external``
    (CUDA stream protocol), else the older ``ExternalStream`` on the raw handle."""
    stream = torch.cuda.current_stream(device)
    from_external = getattr(cupy.cuda.Stream, "from_external", None)
    if from_external is not None and hasattr(stream, "__cuda_stream__"):
        return from_external(stream)
    return cupy.cuda.ExternalStream(stream.cuda_stream)


_COMPILED: Dict[Tuple, CupyAmplitudeKernels] = {}


def amplitude_kernels(dtype: torch.dtype, steps: int, reset: str,
                      bidirectional: bool) -> CupyAmplitudeKernels:
    """The compiled kernels for this configuration, compiled on first request and cached."""
    key = (dtype, steps, reset, bidirectional)
    if key not in _COMPILED:
        _COMPILED[key] = CupyAmplitudeKernels(*key)
    return _COMPILED[key]
