"""A job's output folder: ``config.yaml`` (the resolved config), ``train.log``, ``tb/``
(TensorBoard), ``checkpoint/`` (last resumable state), ``best/`` (best model) and
``metrics.json``, written last and atomically, so its presence means the job finished."""
from __future__ import annotations

import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict

from .config import save_config

METRICS_FILE = "metrics.json"


def write_json_atomic(path: os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` via a temporary file and ``os.replace`` (NaN and
    infinities become ``null``, so the file is strict JSON)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(_finite(obj), indent=1, sort_keys=False))
    os.replace(tmp, path)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def setup_run(cfg, is_main: bool = True) -> logging.Logger:
    """Create ``cfg.run_dir``, write ``config.yaml`` and log to ``train.log`` and stderr (rank 0
    only under ``torch.distributed``; other ranks log warnings to stderr)."""
    run_dir = Path(cfg.run_dir)
    log = logging.getLogger("sj_spikelm")
    for handler in log.handlers:
        handler.close()
    log.handlers.clear()
    log.propagate = False
    log.setLevel(logging.INFO if is_main else logging.WARNING)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(fmt)
    log.addHandler(stream)
    import datasets
    import transformers

    datasets.disable_progress_bars()  # per-call bars of tokenising and saving: noise in logs
    transformers.utils.logging.disable_progress_bar()
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        file = logging.FileHandler(run_dir / "train.log")
        file.setFormatter(fmt)
        log.addHandler(file)
    return log


def write_metrics(cfg, summary: Dict[str, Any], is_main: bool = True, **info) -> Dict[str, Any]:
    """Assemble ``metrics.json`` from the loop's summary; write it (rank 0) unless the run
    stopped early (``stop_after``), so an unfinished run never looks finished."""
    best, final = summary["best"] or {}, summary["final"] or {}
    metrics = {**info,
               "scores": best.get("scores"), "final_scores": final.get("scores"),
               "firing_rate": best.get("firing_rate"),
               "firing_rate_per_layer": best.get("firing_rate_per_layer"),
               "energy_mj_per_sequence": best.get("energy_mj_per_sequence"),
               **{k: v for k, v in summary.items() if k not in ("best", "final")},
               "best": best, "final": final}
    if is_main and not summary["stopped_early"]:
        write_json_atomic(Path(cfg.run_dir) / METRICS_FILE, metrics)
    return metrics
