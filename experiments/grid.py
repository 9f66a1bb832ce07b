"""Run a grid of training jobs, one folder per run, resumable; then print the result table.

    python -m experiments.grid experiments/configs/default.yaml
    python -m experiments.grid CONFIG.yaml --dry-run        # print the plan, run nothing

CONFIG.yaml::

    job: sj_spikelm.train.finetune    # a module run as `python -m JOB --config F --run_dir D`
    runs_dir: runs/default            # optional (default: runs/<config file stem>)
    timeout: 3600                     # optional, seconds per run
    base: {task: sst2, lr: 5.0e-5}    # fields shared by every run
    settings:                         # optional: named partial configs, the table's rows
      ANN: {model: bert}
      SpikeLM: {model: spikelm, neuron: "elastic_bi(k=2)"}
    grid:                             # axes: field -> values (a.b sets key b of dict field a)
      task: [sst2, mrpc]
      seed: [0, 1, 2]
    report: {reference: ANN}          # optional options of experiments.report

Runs are the product settings x axes. Run folder ``<settings name>_<axis>=<value>..-<hash>``,
where the hash covers the run's whole config, so a changed config never reuses old results.
It holds ``grid.json`` (the run's setting, axes and config), ``config.yaml``, ``log.txt``
(stdout/stderr of every attempt) and, from the job, ``metrics.json``. A run with
``metrics.json`` is skipped; any other run is (re)started, and the job resumes from its own
checkpoint if it left one. Each run is a subprocess: a failure is recorded in ``failed.json``
(exit code, log tail) and the grid goes on; the exit status is 1 if any run failed.

Several grid processes may share one runs folder (e.g. one per GPU, or one per CPU core with
``threads: 1``): a run in progress holds ``running.lock`` (host and pid), the others skip it.
A lock whose process is gone on this host is taken over.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

METRICS_FILE = "metrics.json"
LOCK_FILE = "running.lock"
TOP_KEYS = ("job", "runs_dir", "timeout", "base", "settings", "grid", "report")


@dataclass
class Run:
    name: str
    setting: Optional[str]
    axes: Dict[str, Any]
    config: Dict[str, Any]
    hash: str


def load_spec(path: os.PathLike) -> Dict[str, Any]:
    spec = yaml.safe_load(Path(path).read_text()) or {}
    unknown = [k for k in spec if k not in TOP_KEYS]
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; accepted: {', '.join(TOP_KEYS)}")
    if not spec.get("job"):
        raise ValueError(f"{path}: 'job' (a module, e.g. sj_spikelm.train.finetune) is required")
    for key in ("base", "settings", "grid", "report"):
        if not isinstance(spec.get(key) or {}, dict):
            raise ValueError(f"{path}: '{key}' must be a mapping")
    for axis, values in (spec.get("grid") or {}).items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{path}: grid axis {axis!r} must be a non-empty list, got {values!r}")
    return spec


def set_field(config: Dict[str, Any], key: str, value: Any) -> None:
    """``config[key] = value``; a dotted key ``a.b`` sets entry ``b`` of the dict field ``a``."""
    *parents, last = key.split(".")
    for part in parents:
        config = config.setdefault(part, {})
        if not isinstance(config, dict):
            raise ValueError(f"cannot set {key!r}: {part!r} is not a mapping")
    config[last] = value


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "x"


def expand(spec: Dict[str, Any]) -> List[Run]:
    """Every run of the grid: settings x product of the axes, in config order."""
    settings = spec.get("settings") or {None: {}}
    axes = spec.get("grid") or {}
    runs = []
    for setting, partial in settings.items():
        for values in itertools.product(*axes.values()):
            config = copy.deepcopy(spec.get("base") or {})
            for key, value in (partial or {}).items():
                set_field(config, key, copy.deepcopy(value))
            chosen = dict(zip(axes, values))
            for key, value in chosen.items():
                set_field(config, key, copy.deepcopy(value))
            digest = hashlib.sha1(json.dumps([spec["job"], config], sort_keys=True).encode()).hexdigest()[:8]
            parts = ([_slug(setting)] if setting is not None else []) + \
                [f"{_slug(k.split('.')[-1])}={_slug(v)}" for k, v in chosen.items()]
            name = "_".join(parts)[:100] + f"-{digest}" if parts else digest
            runs.append(Run(name, setting, chosen, config, digest))
    names = [r.name for r in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"runs with identical configs: {dupes}; remove the duplicated settings/axis values")
    return runs


def _lock_owner_alive(lock: Path) -> bool:
    """Whether the process named in ``lock`` ("host pid") still runs; a lock from another host
    counts as alive (it cannot be checked from here)."""
    try:
        host, pid = lock.read_text().split()
    except (OSError, ValueError):
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def acquire(run_dir: Path) -> bool:
    """Take ``run_dir``'s lock for this process; False if another live process holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK_FILE
    owner = run_dir / f".{LOCK_FILE}.{socket.gethostname()}.{os.getpid()}"
    owner.write_text(f"{socket.gethostname()} {os.getpid()}")
    try:
        for _ in range(2):
            try:  # link: the lock appears with its content, or not at all
                os.link(owner, lock)
                return True
            except FileExistsError:
                if _lock_owner_alive(lock):
                    return False
                lock.unlink(missing_ok=True)  # stale: its process is gone
        return False
    finally:
        owner.unlink(missing_ok=True)


def status(run_dir: Path) -> str:
    if (run_dir / METRICS_FILE).is_file():
        return "done"
    if (run_dir / LOCK_FILE).is_file() and _lock_owner_alive(run_dir / LOCK_FILE):
        return "running"
    if (run_dir / "failed.json").is_file():
        return "failed"
    return "started" if run_dir.exists() else "todo"


def _tail(path: Path, lines: int = 40) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def run_one(job: str, run: Run, run_dir: Path, timeout: Optional[float]) -> Dict[str, Any]:
    """Run ``python -m job`` for ``run`` in ``run_dir``; returns ``{ok, seconds, error}``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "failed.json").unlink(missing_ok=True)
    _write_json(run_dir / "grid.json", {"job": job, "setting": run.setting, "axes": run.axes,
                                        "hash": run.hash, "config": run.config})
    config_path = run_dir / "config.yaml"
    config_path.write_text(yaml.safe_dump(run.config, sort_keys=False))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", job, "--config", str(config_path), "--run_dir", str(run_dir)]
    log_path = run_dir / "log.txt"
    start = time.time()
    error = None
    with open(log_path, "a") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
        log.flush()
        try:
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                  timeout=timeout).returncode
            if code != 0:
                error = f"exit code {code}"
            elif not (run_dir / METRICS_FILE).is_file():
                error = f"exit code 0 but no {METRICS_FILE}"
        except subprocess.TimeoutExpired:
            error = f"timed out after {timeout} s"
    seconds = time.time() - start
    if error:
        _write_json(run_dir / "failed.json", {"error": error, "seconds": seconds, "command": cmd,
                                              "log_tail": _tail(log_path)})
    return {"ok": error is None, "seconds": seconds, "error": error}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="grid YAML file")
    parser.add_argument("--runs-dir", help="output folder (default: the config's runs_dir, or runs/<stem>)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    parser.add_argument("--timeout", type=float, help="seconds per run (overrides the config)")
    parser.add_argument("--no-report", action="store_true", help="do not print the result table")
    args = parser.parse_args(argv)
    spec = load_spec(args.config)
    runs_dir = Path(args.runs_dir or spec.get("runs_dir") or Path("runs") / Path(args.config).stem)
    runs = expand(spec)
    timeout = args.timeout or spec.get("timeout")
    states = [status(runs_dir / r.name) for r in runs]
    print(f"grid {args.config}: {len(runs)} runs of {spec['job']} in {runs_dir} "
          f"({states.count('done')} done, {len(runs) - states.count('done')} to run)")
    for run, state in zip(runs, states):
        print(f"  [{state:>7}] {run.name}")
    names = {r.name for r in runs} | {"report"}
    stale = sorted(p.name for p in runs_dir.iterdir() if p.is_dir() and p.name not in names) \
        if runs_dir.is_dir() else []
    if stale:
        print(f"  ({len(stale)} other folder(s) in {runs_dir} are not runs of this grid (an earlier "
              "config?); the table below leaves them out, `experiments.report` on the folder would not)")
    if args.dry_run:
        return 0
    failures = []
    for i, run in enumerate(runs, start=1):
        run_dir = runs_dir / run.name
        if status(run_dir) == "done":
            continue
        if not acquire(run_dir):
            print(f"[{i}/{len(runs)}] {run.name}: running in another grid process, skipped", flush=True)
            continue
        if status(run_dir) == "done":  # finished by another process between the checks
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
            continue
        print(f"[{i}/{len(runs)}] {run.name} ...", flush=True)
        try:
            result = run_one(spec["job"], run, run_dir, timeout)
        finally:
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
        print(f"[{i}/{len(runs)}] {run.name}: {'ok' if result['ok'] else 'FAILED: ' + result['error']} "
              f"({result['seconds']:.0f} s)", flush=True)
        if not result["ok"]:
            failures.append(run.name)
    if failures:
        print(f"{len(failures)} run(s) failed (see failed.json and log.txt in each): {', '.join(failures)}")
    if not args.no_report:
        from experiments.report import make_report

        print()
        print(make_report(runs_dir, runs=[r.name for r in runs], **(spec.get("report") or {})))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
