import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def harness():
    """The host build of the CUDA kernels' per-element math (tests/cuda_host_harness.py)."""
    import cuda_host_harness

    try:
        return cuda_host_harness.load()
    except cuda_host_harness.HarnessUnavailable as err:
        pytest.skip(f"kernel math not checked on the host: {err}")


@pytest.fixture
def launches(monkeypatch, harness):
    """Routes backend='cupy' through the host harness (CPU tensors, no CuPy needed); returns the
    kernel sets handed out, which record their calls."""
    import cuda_host_harness

    from neuron_zoo import cupy_kernels, fused_spike

    created = []

    def kernel_set(x_seq, reset, bidirectional):
        created.append(cuda_host_harness.HostAmplitudeKernels(
            harness, x_seq.dtype, x_seq.shape[0], reset, bidirectional))
        return created[-1]

    monkeypatch.setattr(fused_spike, "check_input", lambda x_seq: None)
    monkeypatch.setattr(fused_spike, "kernel_set", kernel_set)
    monkeypatch.setattr(cupy_kernels, "require_cupy", lambda: None)
    return created
