"""TEMPORARY stand-in for the grid branch's run-folder contract (replaced at merge)."""
from __future__ import annotations

import fcntl
import json
import math
import os
import socket
from pathlib import Path
from typing import Any, Optional

CONFIG_FILE = "config.yaml"
GRID_FILE = "grid.json"
GRID_CONFIG_FILE = "grid_config.yaml"
METRICS_FILE = "metrics.json"
FAILED_FILE = "failed.json"
LOCK_FILE = "running.lock"
LOG_FILE = "log.txt"
TRAIN_LOG = "train.log"
EXIT_LOCKED = 75


class CorruptRunFile(ValueError):
    pass


class RunLocked(RuntimeError):
    pass


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json_atomic(path, obj) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(json.dumps(_finite(obj), indent=1))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path) -> dict:
    try:
        value = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CorruptRunFile(f"{path}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise CorruptRunFile(f"{path}: not a JSON object")
    return value


def read_metrics(run_dir) -> Optional[dict]:
    path = Path(run_dir) / METRICS_FILE
    return read_json(path) if path.is_file() else None


class RunLock:
    def __init__(self, run_dir):
        self.path = Path(run_dir) / LOCK_FILE
        self.fd = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunLocked(f"{self.path.parent} is being run by another process") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} {os.getpid()}".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None
