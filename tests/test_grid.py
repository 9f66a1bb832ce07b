"""experiments.grid: expansion, naming, dry run, skip finished / re-run failed, failures isolated."""
import json
from pathlib import Path

import pytest
import yaml

from experiments import grid

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def fake_job_on_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(FIXTURES))


def write_spec(tmp_path, spec):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"job": "fake_job", "runs_dir": str(tmp_path / "runs"), **spec}))
    return path


def calls(run_dir):
    return len((run_dir / "calls.txt").read_text().splitlines())


def test_expand_settings_times_axes():
    spec = {"job": "j", "base": {"lr": 1.0, "distill_weights": {"task": 1.0}},
            "settings": {"ANN": {"model": "bert"},
                         "SpikeLM": {"model": "spikelm", "neuron": "elastic_bi(k=2)"}},
            "grid": {"task": ["sst2", "rte"], "seed": [0, 1], "distill_weights.hidden": [0.5]}}
    runs = grid.expand(spec)
    assert len(runs) == 2 * 2 * 2 * 1
    first = runs[0]
    assert first.setting == "ANN" and first.axes == {"task": "sst2", "seed": 0, "distill_weights.hidden": 0.5}
    assert first.config == {"lr": 1.0, "distill_weights": {"task": 1.0, "hidden": 0.5}, "model": "bert",
                            "task": "sst2", "seed": 0}
    assert first.name == f"ANN_task=sst2_seed=0_hidden=0.5-{first.hash}"
    assert runs[4].name.startswith("SpikeLM_task=sst2_seed=0")
    assert len({r.name for r in runs}) == 8 and spec["base"] == {"lr": 1.0, "distill_weights": {"task": 1.0}}
    changed = grid.expand({**spec, "base": {"lr": 2.0}})
    assert changed[0].hash != first.hash  # any config change gives new folders


def test_spec_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['grids'\]"):
        grid.load_spec(write_spec(tmp_path, {"grids": {}}))
    with pytest.raises(ValueError, match="grid axis 'seed' must be a non-empty list"):
        grid.load_spec(write_spec(tmp_path, {"grid": {"seed": 0}}))
    with pytest.raises(ValueError, match="identical configs"):
        grid.expand({"job": "j", "grid": {"seed": [0, 0]}})


def test_dry_run_runs_nothing(tmp_path, capsys):
    path = write_spec(tmp_path, {"base": {"score": 50}, "grid": {"seed": [0, 1]}})
    assert grid.main([str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 runs of fake_job" in out and out.count("[   todo]") == 2
    assert not (tmp_path / "runs").exists()


def test_failures_are_isolated_and_rerun_finished_are_skipped(tmp_path, capsys):
    path = write_spec(tmp_path, {"base": {"score": 50},
                                 "settings": {"good": {}, "bad": {"fail": True}, "flaky": {"fail_once": True},
                                              "silent": {"no_metrics": True}},
                                 "grid": {"seed": [0, 1]}})
    assert grid.main([str(path), "--no-report"]) == 1
    runs = {r.name: tmp_path / "runs" / r.name for r in grid.expand(grid.load_spec(path))}
    by_setting = {s: [d for n, d in runs.items() if n.startswith(s + "_")]
                  for s in ("good", "bad", "flaky", "silent")}
    for d in by_setting["good"]:
        assert json.loads((d / "metrics.json").read_text())["scores"]["SST-2"] in (50, 51)
        assert json.loads((d / "grid.json").read_text())["setting"] == "good"
    for d in by_setting["bad"] + by_setting["flaky"]:
        failed = json.loads((d / "failed.json").read_text())
        assert failed["error"] in ("exit code 3", "exit code 4")
        assert "boom: failing on purpose" in failed["log_tail"]
    for d in by_setting["silent"]:
        assert json.loads((d / "failed.json").read_text())["error"] == "exit code 0 but no metrics.json"
    assert "6 run(s) failed" in capsys.readouterr().out

    assert grid.main([str(path), "--no-report"]) == 1  # bad and silent still fail
    for d in by_setting["good"]:
        assert calls(d) == 1  # finished: skipped
    for d in by_setting["flaky"]:
        assert calls(d) == 2 and (d / "metrics.json").is_file() and not (d / "failed.json").exists()
    for d in by_setting["bad"]:
        assert calls(d) == 2 and (d / "log.txt").read_text().count("=== ") == 2


def test_timeout_is_a_failure(tmp_path):
    path = write_spec(tmp_path, {"base": {"score": 1, "sleep": 30}, "grid": {"seed": [0]}})
    assert grid.main([str(path), "--no-report", "--timeout", "1"]) == 1
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "failed.json").read_text())["error"] == "timed out after 1.0 s"


def test_grid_prints_the_report(tmp_path, capsys):
    path = write_spec(tmp_path, {"base": {"score": 90}, "settings": {"A": {}, "B": {"score": 80}},
                                 "grid": {"seed": [0, 2]}, "report": {"reference": "A"}})
    assert grid.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "| A | 91.00 ± 1.41 |" in out and "| B | 81.00 ± 1.41 |" in out
    assert "Relative to A" in out and "| B | 89.0 |" in out


def test_run_locked_by_a_live_process_is_skipped_and_a_stale_lock_taken_over(tmp_path, capsys):
    import os
    import socket

    path = write_spec(tmp_path, {"base": {"score": 50}, "grid": {"seed": [0, 1]}})
    runs = grid.expand(grid.load_spec(path))
    busy, stale = (tmp_path / "runs" / r.name for r in runs)
    busy.mkdir(parents=True)
    stale.mkdir(parents=True)
    (busy / grid.LOCK_FILE).write_text(f"{socket.gethostname()} {os.getpid()}")  # alive: this test
    dead = 2 ** 22 + 12345  # above the default pid_max, so no such process
    (stale / grid.LOCK_FILE).write_text(f"{socket.gethostname()} {dead}")
    assert grid.status(busy) == "running"
    grid.main([str(path), "--no-report"])
    assert "running in another grid process, skipped" in capsys.readouterr().out
    assert not (busy / "metrics.json").exists() and (busy / grid.LOCK_FILE).exists()
    assert (stale / "metrics.json").exists() and not (stale / grid.LOCK_FILE).exists()
    assert grid.acquire(stale) and not grid.acquire(stale)  # exclusive while held
