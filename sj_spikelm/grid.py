"""Run a grid of training jobs, one folder per run, resumable; then print the result table.

    sj-grid experiments/configs/default.yaml
    sj-grid CONFIG.yaml --dry-run        # print the plan and check every run's config, run nothing

(``python -m experiments.grid`` is the same command.) CONFIG.yaml::

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
    report: {reference: ANN}          # optional options of sj-report

Runs are the product settings x axes. Run folder ``<settings name>_<axis>=<value>..-<hash>``,
where the hash covers the run's whole config, so a changed config never reuses old results.
The files of a run folder and who writes them: :mod:`sj_spikelm.run_dir`. Before the first run,
every run's config is checked by the job module's ``check_config(values)`` if it has one; any
error stops the grid with all errors listed. A run with a valid ``metrics.json`` is skipped;
any other run is (re)started, and the job resumes from its own checkpoint if it left one. Each
run is a subprocess tied to the grid (:mod:`sj_spikelm.job_process`: it dies with the grid);
a failure is recorded in ``failed.json`` (exit code, log tail) and the grid goes on; the exit
status is 1 if any run failed.

Several grid processes may share one runs folder (e.g. one per GPU, or one per CPU core): the
job of a run holds the folder's lock (:class:`sj_spikelm.run_dir.RunLock`) and the other grid
processes skip that run.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import importlib
import itertools
import json
import os
import re
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from .job_process import Stopped, parent_death_signal_supported, run_tethered
from .run_dir import (
    EXIT_LOCKED,
    FAILED_FILE,
    GRID_CONFIG_FILE,
    GRID_FILE,
    LOG_FILE,
    METRICS_FILE,
    CorruptRunFile,
    read_metrics,
    run_status,
    write_json_atomic,
    write_text_atomic,
)

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


def job_pythonpath() -> List[str]:
    """The import path a job gets in front of its own: the working folder, then $PYTHONPATH."""
    return [os.getcwd()] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


@contextlib.contextmanager
def _job_import_path():
    saved = list(sys.path)
    sys.path[:0] = job_pythonpath()
    try:
        yield
    finally:
        sys.path[:] = saved


def check_runs(job: str, runs: List[Run]) -> Optional[Dict[str, List[str]]]:
    """Check every run's config with ``check_config(values)`` of the job module (imported as the
    job would import it). Returns ``{error: [run names]}`` (empty: all valid), or ``None`` if the
    module has no ``check_config``. An import failure is an error of every run."""
    try:
        with _job_import_path():
            module = importlib.import_module(job)
    except Exception as err:  # noqa: BLE001 - reported as the grid's error, with its type
        return {f"cannot import job module {job!r}: {type(err).__name__}: {err}": [r.name for r in runs]}
    check = getattr(module, "check_config", None)
    if check is None:
        return None
    errors: Dict[str, List[str]] = defaultdict(list)
    for run in runs:
        try:
            check(copy.deepcopy(run.config))
        except ValueError as err:
            errors[str(err)].append(run.name)
    return dict(errors)


def _tail(path: Path, lines: int = 40) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _exit_error(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def run_one(job: str, run: Run, run_dir: Path, timeout: Optional[float]) -> Dict[str, Any]:
    """Run ``python -m job --config run_dir/grid_config.yaml --run_dir run_dir`` for ``run``;
    returns ``{ok, locked, seconds, error}`` (``locked``: the job found the folder locked by
    another live process and did nothing). Raises :class:`Stopped` if the grid is stopped."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / GRID_FILE, {"job": job, "setting": run.setting, "axes": run.axes,
                                            "hash": run.hash, "config": run.config})
    config_path = run_dir / GRID_CONFIG_FILE
    write_text_atomic(config_path, yaml.safe_dump(run.config, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(job_pythonpath()))
    cmd = [sys.executable, "-m", job, "--config", str(config_path), "--run_dir", str(run_dir)]
    log_path = run_dir / LOG_FILE
    start = time.time()
    with open(log_path, "a") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
        log.flush()
        try:
            code = run_tethered(cmd, log, env, timeout)
        except Stopped as stop:
            log.write(f"=== grid {stop}: job killed\n")
            raise
    seconds = time.time() - start
    if code == EXIT_LOCKED:
        return {"ok": False, "locked": True, "seconds": seconds, "error": None}
    error = None
    if code is None:
        error = f"timed out after {timeout} s"
    elif code != 0:
        error = _exit_error(code)
    else:
        try:
            if read_metrics(run_dir) is None:
                error = f"exit code 0 but no {METRICS_FILE}"
        except CorruptRunFile as err:
            error = f"exit code 0 but {err}"
    if error:
        write_json_atomic(run_dir / FAILED_FILE, {"error": error, "seconds": seconds, "command": cmd,
                                                  "log_tail": _tail(log_path)})
    else:
        (run_dir / FAILED_FILE).unlink(missing_ok=True)
    return {"ok": error is None, "locked": False, "seconds": seconds, "error": error}


def _set_corrupt_metrics_aside(run_dir: Path) -> Optional[str]:
    """Rename an unreadable ``metrics.json`` to ``metrics.json.corrupt`` (kept for inspection,
    out of the way of the job's new one); returns the reason, or None if there was none."""
    try:
        read_metrics(run_dir)
    except CorruptRunFile as err:
        os.replace(run_dir / METRICS_FILE, run_dir / (METRICS_FILE + ".corrupt"))
        return str(err)
    return None


def _print_check(job: str, errors: Optional[Dict[str, List[str]]], total: int) -> None:
    if errors is None:
        print(f"note: {job} has no check_config(values); each run checks its own config when it starts")
        return
    if not errors:
        return
    print(f"invalid grid: {sum(map(len, errors.values()))} of {total} run configs rejected by "
          f"{job}.check_config; nothing was started:")
    for message, names in errors.items():
        which = f"all {total} runs" if len(names) == total else ", ".join(names)
        print(f"  {message}\n    ({which})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="sj-grid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="grid YAML file")
    parser.add_argument("--runs-dir", help="output folder (default: the config's runs_dir, or runs/<stem>)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, check the configs and exit")
    parser.add_argument("--timeout", type=float, help="seconds per run (overrides the config)")
    parser.add_argument("--no-report", action="store_true", help="do not print the result table")
    args = parser.parse_args(argv)
    spec = load_spec(args.config)
    runs_dir = Path(args.runs_dir or spec.get("runs_dir") or Path("runs") / Path(args.config).stem)
    runs = expand(spec)
    timeout = args.timeout or spec.get("timeout")
    states = [run_status(runs_dir / r.name) for r in runs]
    print(f"grid {args.config}: {len(runs)} runs of {spec['job']} in {runs_dir} "
          f"({states.count('done')} done, {len(runs) - states.count('done')} to run)")
    for run, state in zip(runs, states):
        print(f"  [{state:>7}] {run.name}")
    names = {r.name for r in runs} | {"report"}
    stale = sorted(p.name for p in runs_dir.iterdir() if p.is_dir() and p.name not in names) \
        if runs_dir.is_dir() else []
    if stale:
        print(f"  ({len(stale)} other folder(s) in {runs_dir} are not runs of this grid (an earlier "
              "config?); the table below leaves them out, `sj-report` on the folder would not)")
    pending = [r for r, s in zip(runs, states) if s != "done"]
    errors = check_runs(spec["job"], pending) if pending else {}
    _print_check(spec["job"], errors, len(pending))
    if errors:
        return 2
    if args.dry_run:
        return 0
    if not parent_death_signal_supported():
        print("note: no parent-death signal on this system (Linux only): a job outlives a grid killed "
              "by SIGKILL (SIGTERM and Ctrl-C still kill it)")
    failures, elsewhere = [], []
    try:
        for i, run in enumerate(runs, start=1):
            run_dir = runs_dir / run.name
            state = run_status(run_dir)
            if state == "done":
                continue
            if state == "running":
                print(f"[{i}/{len(runs)}] {run.name}: running in another process, skipped", flush=True)
                elsewhere.append(run.name)
                continue
            corrupt = _set_corrupt_metrics_aside(run_dir)
            if corrupt:
                print(f"[{i}/{len(runs)}] {corrupt}; kept as {METRICS_FILE}.corrupt, running again")
            print(f"[{i}/{len(runs)}] {run.name} ...", flush=True)
            result = run_one(spec["job"], run, run_dir, timeout)
            if result["locked"]:
                print(f"[{i}/{len(runs)}] {run.name}: running in another process, skipped", flush=True)
                elsewhere.append(run.name)
                continue
            print(f"[{i}/{len(runs)}] {run.name}: {'ok' if result['ok'] else 'FAILED: ' + result['error']} "
                  f"({result['seconds']:.0f} s)", flush=True)
            if not result["ok"]:
                failures.append(run.name)
    except Stopped as stop:
        print(f"grid {stop}: the running job was killed; run the grid again to resume", flush=True)
        return 128 + stop.signum
    if failures:
        print(f"{len(failures)} run(s) failed (see {FAILED_FILE} and {LOG_FILE} in each): "
              f"{', '.join(failures)}")
    if elsewhere:
        print(f"{len(elsewhere)} run(s) running in another process: {', '.join(elsewhere)}")
    if not args.no_report:
        from .report import make_report

        print()
        print(make_report(runs_dir, runs=[r.name for r in runs], **(spec.get("report") or {})))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
