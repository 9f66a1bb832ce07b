"""sj_spikelm.grid: expansion, naming, dry run, the configs checked before any run, skip
finished / re-run failed, failures isolated, locked runs skipped, jobs that die with the grid."""
import json
import multiprocessing
import os
import runpy
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
import yaml

from sj_spikelm import grid
from sj_spikelm import run_dir as rd

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


def test_grid_files_and_the_jobs_own_config_yaml(tmp_path):
    path = write_spec(tmp_path, {"base": {"score": 7}, "settings": {"A": {}}, "grid": {"seed": [1]}})
    (run,) = grid.expand(grid.load_spec(path))
    folder = tmp_path / "runs" / run.name
    folder.mkdir(parents=True)
    (folder / rd.CONFIG_FILE).write_text("resolved: by the job\n")
    assert grid.main([str(path), "--no-report"]) == 0
    assert (folder / rd.CONFIG_FILE).read_text() == "resolved: by the job\n"  # not overwritten
    assert yaml.safe_load((folder / rd.GRID_CONFIG_FILE).read_text()) == {"score": 7, "seed": 1}
    assert rd.read_json(folder / rd.GRID_FILE) == {"job": "fake_job", "setting": "A", "axes": {"seed": 1},
                                                   "hash": run.hash, "config": {"score": 7, "seed": 1}}
    assert f"-m fake_job --config {folder / rd.GRID_CONFIG_FILE} --run_dir {folder}" in \
        (folder / rd.LOG_FILE).read_text()
    assert rd.read_metrics(folder)["scores"] == {"SST-2": 8}


def test_a_typo_in_base_stops_the_grid_before_any_run(tmp_path, capsys):
    path = write_spec(tmp_path, {"base": {"scroe": 50}, "settings": {"A": {}, "B": {"score": "high"}},
                                 "grid": {"seed": [0, 1]}})
    assert grid.main([str(path), "--no-report"]) == 2
    out = capsys.readouterr().out
    assert "4 of 4 run configs rejected by fake_job.check_config; nothing was started" in out
    assert "unknown config field(s) ['scroe']" in out and "(all 4 runs)" in out
    assert "score='high': not a number" not in out  # the first error of each run is listed
    assert not (tmp_path / "runs").exists()
    # a bad value in one setting: only its runs are named
    path = write_spec(tmp_path, {"base": {"score": 50}, "settings": {"A": {}, "B": {"score": "high"}},
                                 "grid": {"seed": [0, 1]}})
    assert grid.main([str(path), "--dry-run"]) == 2
    out = capsys.readouterr().out
    names = [r.name for r in grid.expand(grid.load_spec(path))]
    assert f"score='high': not a number\n    ({names[2]}, {names[3]})" in out
    assert not (tmp_path / "runs").exists()


def test_a_job_without_check_config_runs_with_a_note(tmp_path, capsys):
    path = write_spec(tmp_path, {"job": "fake_job_unchecked", "base": {"score": 5}, "grid": {"seed": [0]}})
    assert grid.main([str(path), "--no-report"]) == 0
    assert "fake_job_unchecked has no check_config(values)" in capsys.readouterr().out
    (folder,) = (tmp_path / "runs").iterdir()
    assert rd.run_status(folder) == "done"


def test_an_unimportable_job_stops_the_grid(tmp_path, capsys):
    path = write_spec(tmp_path, {"job": "no_such_job_module", "grid": {"seed": [0]}})
    assert grid.main([str(path), "--no-report"]) == 2
    assert "cannot import job module 'no_such_job_module': ModuleNotFoundError" in capsys.readouterr().out


def test_run_locked_by_a_live_process_is_skipped_and_a_stale_lock_is_no_lock(tmp_path, capsys):
    path = write_spec(tmp_path, {"base": {"score": 50}, "grid": {"seed": [0, 1]}})
    busy, stale = (tmp_path / "runs" / r.name for r in grid.expand(grid.load_spec(path)))
    stale.mkdir(parents=True)
    (stale / rd.LOCK_FILE).write_text(f"{socket.gethostname()} 4206942\n")  # left by a dead process
    with rd.RunLock(busy):  # a live job (this test) holds it
        assert grid.main([str(path), "--no-report"]) == 0
    out = capsys.readouterr().out
    assert f"{busy.name}: running in another process, skipped" in out and "failed" not in out
    assert not (busy / "calls.txt").exists() and not (busy / rd.FAILED_FILE).exists()
    assert rd.run_status(stale) == "done" and calls(stale) == 1


def test_a_job_that_finds_its_folder_locked_is_not_a_failure(tmp_path, capsys, monkeypatch):
    """The race the grid's probe cannot close: the lock is taken between probe and job start."""
    path = write_spec(tmp_path, {"base": {"score": 50}, "grid": {"seed": [0]}})
    (run,) = grid.expand(grid.load_spec(path))
    folder = tmp_path / "runs" / run.name
    monkeypatch.setattr(grid, "run_status", lambda run_dir: "todo")  # the probe saw it free
    with rd.RunLock(folder):
        assert grid.main([str(path), "--no-report"]) == 0
    out = capsys.readouterr().out
    assert f"{run.name}: running in another process, skipped" in out and "FAILED" not in out
    assert not (folder / rd.FAILED_FILE).exists() and not (folder / "calls.txt").exists()
    assert f"not started: {folder} is in use: {rd.LOCK_FILE} is held by process {socket.gethostname()} " \
        f"{os.getpid()}" in (folder / rd.LOG_FILE).read_text()


def test_corrupt_metrics_is_not_done_run_again_and_kept_aside(tmp_path, capsys):
    path = write_spec(tmp_path, {"base": {"score": 50}, "grid": {"seed": [0]}})
    (run,) = grid.expand(grid.load_spec(path))
    folder = tmp_path / "runs" / run.name
    folder.mkdir(parents=True)
    (folder / rd.METRICS_FILE).write_text('{"scores": {"SST-2": 5')  # cut off mid-write
    assert rd.run_status(folder) == "started"
    assert grid.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{folder / rd.METRICS_FILE}: not valid JSON" in out and "kept as metrics.json.corrupt" in out
    assert "| run | 50.00 |" in out and rd.read_metrics(folder)["scores"] == {"SST-2": 50}
    assert (folder / "metrics.json.corrupt").read_text() == '{"scores": {"SST-2": 5'


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by init, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _grid_process(argv):
    """The grid in its own process (forked: no interpreter start-up); its exit status is main's."""
    proc = multiprocessing.get_context("fork").Process(target=lambda: sys.exit(grid.main(argv)))
    proc.start()
    return proc


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux prctl")
def test_job_dies_with_a_killed_grid(tmp_path):
    path = write_spec(tmp_path, {"base": {"score": 1, "sleep": 120}, "grid": {"seed": [0]}})
    (run,) = grid.expand(grid.load_spec(path))
    folder = tmp_path / "runs" / run.name
    proc = _grid_process([str(path), "--no-report"])
    try:
        assert _wait_for(lambda: (folder / "job.pid").is_file() and rd.is_locked(folder), 30)
        job = int((folder / "job.pid").read_text())
        assert _alive(job)
        os.kill(proc.pid, signal.SIGKILL)  # no handler, no cleanup in the grid
        proc.join()
        assert _wait_for(lambda: not _alive(job), 5), "the job outlived its grid"
    finally:
        if proc.is_alive():
            proc.kill()
    assert not rd.is_locked(folder) and rd.run_status(folder) == "started"  # the next grid runs it


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_grid_kills_the_jobs_process_group(tmp_path, signum):
    path = write_spec(tmp_path, {"base": {"score": 1, "sleep": 120, "grandchild": True},
                                 "grid": {"seed": [0]}})
    (run,) = grid.expand(grid.load_spec(path))
    folder = tmp_path / "runs" / run.name
    proc = _grid_process([str(path), "--no-report"])
    try:
        assert _wait_for(lambda: (folder / "grandchild.pid").is_file(), 30)
        job, grandchild = (int((folder / f).read_text()) for f in ("job.pid", "grandchild.pid"))
        assert os.getpgid(grandchild) == job != os.getpgid(proc.pid)  # the job leads its own group
        os.kill(proc.pid, signum)
        proc.join(15)
        assert proc.exitcode == 128 + signum
        assert _wait_for(lambda: not _alive(job) and not _alive(grandchild), 5)
    finally:
        if proc.is_alive():
            proc.kill()
    log = (folder / rd.LOG_FILE).read_text()
    assert f"=== grid stopped by {signal.Signals(signum).name}: job killed" in log
    assert rd.run_status(folder) == "started"  # interrupted, not failed


def test_timeout_kills_the_jobs_process_group(tmp_path):
    path = write_spec(tmp_path, {"base": {"score": 1, "sleep": 120, "grandchild": True},
                                 "grid": {"seed": [0]}})
    assert grid.main([str(path), "--no-report", "--timeout", "2"]) == 1
    (folder,) = (tmp_path / "runs").iterdir()
    assert rd.read_json(folder / rd.FAILED_FILE)["error"] == "timed out after 2.0 s"
    assert _wait_for(lambda: not _alive(int((folder / "grandchild.pid").read_text())), 5)


def test_the_experiments_shims_run_the_package_commands(tmp_path, monkeypatch, capsys):
    path = write_spec(tmp_path, {"base": {"score": 3}, "grid": {"seed": [0]}})
    monkeypatch.setattr(sys, "argv", ["grid", str(path), "--dry-run"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("experiments.grid", run_name="__main__")
    assert exit_.value.code == 0 and "1 runs of fake_job" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["report", str(tmp_path)])
    runpy.run_module("experiments.report", run_name="__main__")
    assert capsys.readouterr().out.startswith("no finished runs")


SHIPPED_GRIDS = sorted((Path(__file__).parents[1] / "experiments" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("config", SHIPPED_GRIDS, ids=lambda p: p.stem)
def test_shipped_grids_pass_their_jobs_check(config):
    spec = grid.load_spec(config)
    assert grid.check_runs(spec["job"], grid.expand(spec)) == {}


def test_a_typo_in_a_finetune_grid_is_caught_before_any_run(tmp_path, capsys):
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump({"job": "sj_spikelm.train.finetune", "runs_dir": str(tmp_path / "runs"),
                                    "base": {"task": "sst2", "lr": 1e-4},
                                    "settings": {"ANN": {"model": "bert"}, "SpikeLM": {"model": "spikelm"}}}))
    assert grid.main([str(path)]) == 2
    out = capsys.readouterr().out
    assert "unknown config field(s) ['lr']; accepted: model" in out and "(all 2 runs)" in out
    assert not (tmp_path / "runs").exists()
