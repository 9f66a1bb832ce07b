"""Where data comes from, with nothing machine-specific: $SJ_SPIKELM_DATA, else ../shared/data
next to a source checkout, else the hub, else (SST-2 only) the sample shipped with the package;
one error names every place tried. The library imports in either order with transformers."""
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from sj_spikelm.data import glue, paths
from sj_spikelm.data.glue import SAMPLE_DIR, load_glue


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No $SJ_SPIKELM_DATA, a source checkout with no ../shared/data, an unreachable hub."""
    monkeypatch.delenv("SJ_SPIKELM_DATA", raising=False)
    checkout = tmp_path / "clone" / "sj_spikelm"
    checkout.mkdir(parents=True)
    (checkout / "setup.py").write_text("")
    monkeypatch.setattr(paths, "REPO_ROOT", checkout)

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    monkeypatch.setattr(glue.datasets, "load_dataset", offline)
    monkeypatch.setattr(glue, "_HUB_FAILURES", {})
    return tmp_path


def test_data_root_order(tmp_path, monkeypatch):
    monkeypatch.delenv("SJ_SPIKELM_DATA", raising=False)
    checkout = tmp_path / "clone"
    checkout.mkdir()
    monkeypatch.setattr(paths, "REPO_ROOT", checkout)
    assert paths.data_root() is None  # not a source checkout: no ../shared/data is looked for
    (checkout / "setup.py").write_text("")
    assert paths.data_root() is None  # a checkout without ../shared/data
    (tmp_path / "shared" / "data").mkdir(parents=True)
    assert paths.data_root() == tmp_path / "shared" / "data"
    monkeypatch.setenv("SJ_SPIKELM_DATA", str(tmp_path))
    assert paths.data_root() == tmp_path
    monkeypatch.setenv("SJ_SPIKELM_DATA", str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError, match="SJ_SPIKELM_DATA='.*typo' is not a folder"):
        paths.data_root()


def test_no_machine_specific_path_in_the_code():
    root = Path(paths.__file__).resolve().parents[1]
    offenders = [p for p in root.rglob("*.py") if "/work/" in p.read_text()]
    assert offenders == []


def test_a_task_nowhere_names_every_place_tried(nowhere):
    with pytest.raises(FileNotFoundError) as err:
        load_glue("rte", "validation")
    message = str(err.value)
    assert "no RTE/ in $SJ_SPIKELM_DATA (unset)" in message
    assert str(nowhere / "clone" / "shared" / "data") + " (absent)" in message
    assert "the hub (nyu-mll/glue) failed: ConnectionError: Couldn't reach" in message


def test_sst2_falls_back_to_the_shipped_sample(nowhere, caplog):
    with caplog.at_level(logging.WARNING, logger="sj_spikelm.data.glue"):
        train, dev = load_glue("sst2", "train"), load_glue("sst2", "validation")
    assert len(train) == 2000 and len(dev) == 872 and set(train["label"]) == {0, 1}
    assert "from the sample shipped with sj_spikelm" in caplog.text
    calls = []
    glue._HUB_FAILURES.clear()
    glue.datasets.load_dataset = lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(OSError("down"))
    load_glue("sst2", "train"), load_glue("sst2", "validation")
    assert len(calls) == 1  # the hub is tried once per process, not once per split


def test_the_sample_gives_the_default_grids_subsample(shared_data):
    """max_train_samples 1600 with subsample_seed 0 picks the same sentences, in the same order,
    from the sample as from the full SST-2 (experiments/make_sst2_sample.py)."""
    from sj_spikelm.train.finetune import subsample

    full = subsample(load_glue("sst2", "train", str(shared_data / "glue")), 1600, 0)
    sample = subsample(load_glue("sst2", "train", str(SAMPLE_DIR)), 1600, 0)
    assert full["sentence"] == sample["sentence"] and full["label"] == sample["label"]
    assert load_glue("sst2", "validation", str(SAMPLE_DIR))["sentence"] == \
        load_glue("sst2", "validation", str(shared_data / "glue"))["sentence"]


@pytest.mark.parametrize("first, second", [("from transformers import AutoModel", "import sj_spikelm"),
                                           ("import sj_spikelm", "from transformers import AutoModel")])
def test_imports_in_either_order(first, second):
    code = f"{first}\n{second}\nimport sj_spikelm, sys\nprint(sj_spikelm.SpikeLMConfig.model_type, " \
           "'torchvision' in sys.modules and sys.modules['torchvision'] is None)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["spikelm", "False"]  # nothing hidden in sys.modules
