"""A child process that dies with its parent: how the grid runs a job.

The job starts in its own process group (a new session), with the parent-death signal set to
SIGKILL (Linux ``prctl(PR_SET_PDEATHSIG)``), so it is killed when the grid process dies, even
by SIGKILL. While waiting, SIGTERM, SIGINT and SIGHUP to the grid kill the job's whole process
group before the grid exits, and a timeout does the same; after the job exits, whatever it left
in its group is killed too.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from typing import Dict, List, Optional, TextIO

PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
GRACE_SECONDS = 5.0  # between SIGTERM and SIGKILL of a job's group


class Stopped(BaseException):
    """The grid was asked to stop (SIGTERM / SIGINT / SIGHUP) while a job ran."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _load_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


_PRCTL = _load_prctl()  # resolved here: the child between fork and exec only calls it


def parent_death_signal_supported() -> bool:
    return _PRCTL is not None


def _die_with(parent_pid: int):
    def preexec() -> None:  # runs in the child, after fork (and setsid), before exec
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl: no signal would come
            os._exit(1)

    return preexec


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group ``pgid`` (nothing if it is gone)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _raise_stopped(signum, frame):
    raise Stopped(signum)


def _wait_exited(proc: subprocess.Popen, timeout: Optional[float]) -> bool:
    """Wait until ``proc`` has exited, without reaping it (its pid, and so its process group id,
    stays reserved); False on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the job's group, SIGKILL it after the grace period, then reap the job."""
    try:
        kill_group(proc.pid, signal.SIGTERM)
        _wait_exited(proc, GRACE_SECONDS)
    finally:  # also when a second signal cuts the grace period short
        kill_group(proc.pid, signal.SIGKILL)
        proc.wait()


def run_tethered(cmd: List[str], log: TextIO, env: Dict[str, str],
                 timeout: Optional[float] = None) -> Optional[int]:
    """Run ``cmd`` with stdout and stderr into ``log``, tied to this process as described in the
    module docstring. Returns the exit status (negative: killed by that signal), or ``None`` if
    it ran past ``timeout`` seconds (its group is then killed). Raises :class:`Stopped` if this
    process got SIGTERM, SIGINT or SIGHUP (the job's group is killed first)."""
    main_thread = threading.current_thread() is threading.main_thread()  # signals: main thread only
    previous = {s: signal.signal(s, _raise_stopped) for s in STOP_SIGNALS} if main_thread else {}
    try:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True, preexec_fn=_die_with(os.getpid()))
        try:
            finished = _wait_exited(proc, timeout)
        except BaseException:
            _stop(proc)
            raise
        if not finished:
            _stop(proc)
            return None
        kill_group(proc.pid)  # leftovers of the job; its unreaped pid keeps the group id ours
        return proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
