"""The run-folder contract: the files of one run, who writes them, and the lock of a live job.

====================  ===========  =========================================================
file                  written by   meaning
====================  ===========  =========================================================
``grid.json``         grid         job, setting, axes, hash and config of the run
``grid_config.yaml``  grid         the config handed to the job as ``--config``
``log.txt``           grid         the job's stdout/stderr, every attempt appended
``failed.json``       grid         the last attempt failed: error, seconds, command, log tail
``running.lock``      job          ``flock``-ed by the live job (:class:`RunLock`); the text
                                   ``host pid`` is for humans only
``config.yaml``       job          the job's own resolved config
``train.log``         job          the job's log
``metrics.json``      job          written last, atomically: present and valid = finished
====================  ===========  =========================================================

A job started as ``python -m JOB --config <run>/grid_config.yaml --run_dir <run>`` holds
:class:`RunLock` for its whole life and exits with :data:`EXIT_LOCKED` if another live process
holds it. The lock is an OS lock (``fcntl.flock``): the kernel drops it when its process dies,
so a stale lock needs no take-over and cannot be taken twice.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import random
import socket
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

CONFIG_FILE = "config.yaml"
GRID_FILE = "grid.json"
GRID_CONFIG_FILE = "grid_config.yaml"
METRICS_FILE = "metrics.json"
FAILED_FILE = "failed.json"
LOCK_FILE = "running.lock"
LOG_FILE = "log.txt"
TRAIN_LOG = "train.log"
EXIT_LOCKED = 75  # EX_TEMPFAIL: the run folder is locked by another live process


class CorruptRunFile(ValueError):
    """A run file that exists but is not what the contract says (not JSON, not an object)."""


class RunLocked(RuntimeError):
    """Another live process holds the run folder's lock."""


def write_text_atomic(path: os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, flushed to disk
    (``fsync``), then ``os.replace``: readers see the old file or the whole new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def write_json_atomic(path: os.PathLike, obj: Any) -> None:
    """Write ``obj`` as strict JSON to ``path`` with :func:`write_text_atomic`; NaN and
    infinities become ``null``."""
    write_text_atomic(path, json.dumps(_finite(obj), indent=1, allow_nan=False))


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def read_json(path: os.PathLike) -> Dict[str, Any]:
    """The JSON object in ``path``. Raises ``FileNotFoundError`` if it is missing and
    :class:`CorruptRunFile` naming the file if it is empty, not JSON or not an object."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CorruptRunFile(f"{path}: not UTF-8 text ({err})") from None
    if not text.strip():
        raise CorruptRunFile(f"{path}: empty file")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise CorruptRunFile(f"{path}: not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise CorruptRunFile(f"{path}: holds a JSON {type(obj).__name__}, expected an object")
    return obj


def read_metrics(run_dir: os.PathLike) -> Optional[Dict[str, Any]]:
    """``metrics.json`` of ``run_dir``; ``None`` if absent; :class:`CorruptRunFile` if unreadable."""
    try:
        return read_json(Path(run_dir) / METRICS_FILE)
    except FileNotFoundError:
        return None


def is_locked(run_dir: os.PathLike) -> bool:
    """Whether a live process holds ``run_dir``'s lock. Probes with a shared non-blocking
    ``flock`` held for an instant (a starting :class:`RunLock` tells such a probe from a job)."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the probe's lock
    return False


def run_status(run_dir: os.PathLike) -> str:
    """``done`` (valid ``metrics.json``), ``running`` (locked by a live process), ``failed``
    (``failed.json``), ``started`` (folder exists) or ``todo``. A corrupt ``metrics.json`` is
    not done."""
    run_dir = Path(run_dir)
    try:
        if read_metrics(run_dir) is not None:
            return "done"
    except CorruptRunFile:
        pass
    if is_locked(run_dir):
        return "running"
    if (run_dir / FAILED_FILE).is_file():
        return "failed"
    return "started" if run_dir.exists() else "todo"


class RunLock:
    """The exclusive lock of a run folder, held by the job for its whole life::

        with RunLock(run_dir):
            ...  # train, then write metrics.json last

    ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``run_dir/running.lock`` (created if missing), then
    ``host pid`` written into it for humans. Raises :class:`RunLocked` naming the holder if a
    live process holds it. A momentary shared lock of :func:`is_locked` is waited out (up to
    ``patience`` seconds), not mistaken for a holder. The kernel releases the lock when the
    process dies; the file itself is never deleted (deleting a locked file would let a second
    process lock a new file of the same name)."""

    def __init__(self, run_dir: os.PathLike, patience: float = 2.0):
        self.path = Path(run_dir) / LOCK_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: Optional[int] = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._acquire(patience)
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{socket.gethostname()} {os.getpid()}\n".encode(), 0)

    def _acquire(self, patience: float) -> None:
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            try:  # a shared lock is granted only if no process holds the exclusive one
                fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunLocked(f"{self.path.parent} is in use: {self.path.name} is held by "
                                f"{self.holder()}") from None
            fcntl.flock(self._fd, fcntl.LOCK_UN)  # only probes were there: try again
            if time.monotonic() > deadline:
                raise RunLocked(f"{self.path.parent}: {self.path.name} stayed share-locked "
                                f"for {patience} s (probed without pause?)")
            time.sleep(random.uniform(0.001, 0.01))

    def holder(self) -> str:
        """The ``host pid`` text of the lock file (``another process`` if not written yet)."""
        try:
            text = self.path.read_text(errors="replace").strip()
        except OSError:
            text = ""
        return f"process {text}" if text else "another process"

    def release(self) -> None:
        """Clear the ``host pid`` text and unlock (the file stays)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_or_exit(run_dir: os.PathLike) -> RunLock:
    """:class:`RunLock` of ``run_dir`` for a job's ``main``; if another live process holds it,
    print who to stderr and exit with :data:`EXIT_LOCKED` (the grid reports the run as running
    in another process)."""
    try:
        return RunLock(run_dir)
    except RunLocked as err:
        print(f"not started: {err}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_LOCKED) from None
