"""The CUDA source that the cupy backend hands to NVRTC, compiled to PTX without a GPU or driver:
with nvcc for every dtype / reset / direction / kernel at T = 4 and for T = 1, 3, 8 (no warnings,
every kernel exported, per-element arrays kept in registers: no local memory), and with NVRTC
through CuPy as at first use, when CuPy and the NVRTC library are installed. Each skips, saying
why, when its compiler is missing."""
import inspect
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from neuron_zoo import cupy_kernels

HARNESS = Path(__file__).resolve().parent / "cuda_harness" / "amplitude_harness.cpp"


def instantiations():
    name, kernels, dtypes = cupy_kernels.kernel_name, cupy_kernels.KERNELS, cupy_kernels.DTYPES
    names = [name(k, d, 4, r, b) for d in dtypes for r in cupy_kernels.RESET_CODES for b in (True, False)
             for k in kernels]
    return names + [name(k, d, t, "reference", True) for d in dtypes for t in (1, 3, 8) for k in kernels]


def test_cupy_kernel_names_follow_the_templates():
    assert (cupy_kernels.kernel_name("amplitude_forward", torch.bfloat16, 4, "hard", False)
            == "nz::amplitude_forward<nz::bf16, 4, 1, false>")
    assert cupy_kernels.vector_width(torch.float32) == 4 and cupy_kernels.vector_width(torch.float16) == 8


def parameter_names(source: str, function: str):
    """Names of the parameters of C++ function ``function`` in ``source`` (trailing _ dropped)."""
    match = re.search(rf"\b{function}\(([^)]*)\)", source)
    return [re.findall(r"\w+", p)[-1].rstrip("_") for p in match.group(1).split(",")]


@pytest.mark.parametrize("kernel, method", [
    ("amplitude_forward", "forward"), ("amplitude_backward", "backward"),
    ("amplitude_backward_lsq", "backward_lsq")])
def test_cupy_kernels_harness_and_python_agree_on_arguments(kernel, method):
    python = list(inspect.signature(getattr(cupy_kernels.CupyAmplitudeKernels, method)).parameters)[1:]
    kernel_source = (cupy_kernels.CUDA_DIR / cupy_kernels.KERNEL_SOURCE).read_text()
    assert parameter_names(kernel_source, kernel) == python + ["vectorized"]
    assert parameter_names(HARNESS.read_text(), method) == python


def test_cupy_kernel_source_compiles_to_ptx(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH: the CUDA kernel source is not compile-checked")
    names = instantiations()
    source = cupy_kernels.kernel_source() + "\nvoid* nz_instances[] = {\n" + ",\n".join(
        f"  (void*)&{name}" for name in names) + "\n};\n"
    (tmp_path / "kernels.cu").write_text(source)
    done = subprocess.run(
        [nvcc, "-ptx", "-arch=compute_90", *cupy_kernels.COMPILE_OPTIONS, "--Werror", "all-warnings",
         "kernels.cu", "-o", "kernels.ptx"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    ptx = (tmp_path / "kernels.ptx").read_text()
    entries = re.findall(r"\.entry\s+(\w+)\(", ptx)
    assert len(entries) == len(set(entries)) == len(names)
    assert ".local" not in ptx


def test_cupy_kernel_source_compiles_with_nvrtc():
    """What CuPy does at first use, short of loading the module on a device: NVRTC with CuPy's
    options and our name expressions, every dtype / reset / direction at T = 4."""
    try:
        from cupy.cuda import compiler
        compiler._get_nvrtc_version()
        program = compiler._NVRTCProgram  # CuPy's NVRTC wrapper (private, CuPy 13-14)
    except Exception as err:  # no CuPy, no NVRTC library, or another CuPy layout
        pytest.skip(f"NVRTC through CuPy unavailable: {type(err).__name__}: {err}")
    options = cupy_kernels.COMPILE_OPTIONS + ("-arch=compute_90", "--device-as-default-execution-space")
    name = cupy_kernels.kernel_name
    for dtype in cupy_kernels.DTYPES:
        for reset in cupy_kernels.RESET_CODES:
            for direction in (True, False):
                names = [name(k, dtype, 4, reset, direction) for k in cupy_kernels.KERNELS]
                compiled = program(cupy_kernels.kernel_source(), "kernels.cu", (), (), name_expressions=names,
                                   method="ptx")
                ptx, lowered = compiled.compile(options)
                ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
                assert all(f".entry {lowered[name]}(" in ptx for name in names)
