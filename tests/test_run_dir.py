"""sj_spikelm.run_dir: strict atomic JSON, corrupt files named, run states, the job's OS lock
(exclusive, released by the kernel when its process dies, one winner when raced)."""
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

from sj_spikelm import run_dir as rd

DEAD_PID = 2 ** 22 + 12345  # above the default pid_max, so no such process


def test_write_json_atomic_is_strict_json_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("old")
    rd.write_json_atomic(path, {"a": float("nan"), "b": [1.5, float("-inf")], "c": {"d": float("inf")}})
    assert json.loads(path.read_text(), parse_constant=pytest.fail) == {"a": None, "b": [1.5, None],
                                                                         "c": {"d": None}}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
    with pytest.raises(TypeError):  # not serialisable: the old file stays whole
        rd.write_json_atomic(path, {"x": object()})
    assert rd.read_json(path)["b"] == [1.5, None] and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("text, why", [("", "empty file"), ('{"scores": {"SST-2": 9', "not valid JSON"),
                                       ("[1, 2]", "holds a JSON list, expected an object"),
                                       (b"\xff\xfe{}", "not UTF-8 text")])
def test_corrupt_metrics_are_named(tmp_path, text, why):
    path = tmp_path / rd.METRICS_FILE
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(rd.CorruptRunFile, match=why) as err:
        rd.read_metrics(tmp_path)
    assert isinstance(err.value, ValueError) and str(path) in str(err.value)
    assert rd.run_status(tmp_path) == "started"  # not done


def test_run_status(tmp_path):
    run = tmp_path / "run"
    assert rd.run_status(run) == "todo" and rd.read_metrics(run) is None
    run.mkdir()
    assert rd.run_status(run) == "started"
    (run / rd.FAILED_FILE).write_text("{}")
    assert rd.run_status(run) == "failed"
    with rd.RunLock(run):
        assert rd.run_status(run) == "running"
    rd.write_json_atomic(run / rd.METRICS_FILE, {"scores": {}})
    assert rd.run_status(run) == "done"


def test_lock_is_exclusive_names_its_holder_and_is_released(tmp_path):
    with rd.RunLock(tmp_path / "run") as lock:
        assert lock.path.read_text() == f"{socket.gethostname()} {os.getpid()}\n"
        assert rd.is_locked(tmp_path / "run")
        with pytest.raises(rd.RunLocked, match=f"held by process {socket.gethostname()} {os.getpid()}"):
            rd.RunLock(tmp_path / "run", patience=0.1)
    assert not rd.is_locked(tmp_path / "run")
    assert lock.path.read_text() == "" and lock.path.exists()  # the file stays, emptied
    rd.RunLock(tmp_path / "run").release()


def test_lock_of_a_killed_process_is_free(tmp_path):
    folder = tmp_path / "run"
    code = (f"import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('rd', {rd.__file__!r})\n"
            "rd = importlib.util.module_from_spec(spec); spec.loader.exec_module(rd)\n"
            f"lock = rd.RunLock({str(folder)!r}); print('locked', flush=True); sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        assert rd.is_locked(folder) and rd.run_status(folder) == "running"
        with pytest.raises(rd.RunLocked, match=f"process {socket.gethostname()} {holder.pid}"):
            rd.RunLock(folder, patience=0.1)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (folder / rd.LOCK_FILE).read_text().split() == [socket.gethostname(), str(holder.pid)]
    assert not rd.is_locked(folder)  # stale text, no lock
    rd.RunLock(folder).release()


def _racer(folders, barrier, wins, slot, racers):
    for trial, folder in enumerate(folders):
        barrier.wait()
        try:
            lock = rd.RunLock(folder)
            wins[racers * trial + slot] = 1
        except rd.RunLocked:
            lock = None
        barrier.wait()  # all have tried: only now may the winner let go
        if lock is not None:
            lock.release()


@pytest.mark.parametrize("racers", [2, 4])
def test_stale_lock_raced_by_several_processes_has_exactly_one_winner(tmp_path, racers):
    """200 stale locks (text of a dead process, nobody holding it), each raced by ``racers``
    processes released together by a barrier; the link-and-take-over lock of the old grid let
    two processes win in up to 9 of 200 such trials."""
    trials = 200
    folders = [tmp_path / f"run{i}" for i in range(trials)]
    for folder in folders:
        folder.mkdir()
        (folder / rd.LOCK_FILE).write_text(f"{socket.gethostname()} {DEAD_PID}\n")
    ctx = multiprocessing.get_context("fork")
    barrier, wins = ctx.Barrier(racers), ctx.Array("i", racers * trials)
    procs = [ctx.Process(target=_racer, args=(folders, barrier, wins, slot, racers))
             for slot in range(racers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * racers
    assert [sum(wins[racers * t:racers * (t + 1)]) for t in range(trials)] == [1] * trials


def test_probes_do_not_make_a_starting_job_give_up(tmp_path):
    """is_locked holds a shared lock for an instant; RunLock waits such probes out."""
    folder = tmp_path / "run"
    rd.RunLock(folder).release()
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            rd.is_locked(folder)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        for _ in range(300):
            rd.RunLock(folder).release()
    finally:
        stop.set()
        prober.join()
