"""The issue-11 result table of a folder of causal-LM runs (``experiments/configs/clm_wikitext.yaml``)::

    python experiments/clm_results.py runs/clm_wikitext --teacher "ANN twin" \
        --config experiments/configs/clm_wikitext.yaml

One row per finished run (its grid setting; in the grid's order with ``--config``, else by folder): test and
valid perplexity at the best validation step, "% of the teacher" = ``100 * PPL_teacher / PPL``
(test; 100 = the teacher's perplexity, higher is better), the ratio ``PPL / PPL_teacher`` (the
quality bar asks <= 1.5), training tokens = optimizer steps x batch x block length (tokens fed,
each block predicts ``length - 1`` of them), energy as % of the ANN twin's cost (total and per
layer, ``metrics.json`` ``energy_percent_of_ann``) and the mean firing rate per layer.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sj_spikelm.report import load_runs, row_label  # noqa: E402
from sj_spikelm.train.job import split_value  # noqa: E402


def training_tokens(metrics: Dict[str, Any]) -> int:
    """Steps x per-device batch x world size x block length."""
    c = metrics["config"]
    world = int(metrics.get("world_size") or 1)
    return int(metrics["steps"]) * int(c["per_device_train_batch_size"]) * world * int(c["max_seq_length"])


def result_rows(runs: List[Dict[str, Any]], teacher: Optional[str]) -> List[Dict[str, Any]]:
    """One dict per run: label, test/valid PPL, % of the teacher, PPL ratio, tokens, energy %,
    firing rates per layer. ``teacher``: the row label of the reference (None: no % columns)."""
    ref = next((r for r in runs if row_label(r) == teacher), None) if teacher else None
    if teacher and ref is None:
        raise ValueError(f"teacher={teacher!r} is not a finished run; rows: {[row_label(r) for r in runs]}")
    ref_ppl = ref["metrics"]["scores"]["test PPL"] if ref else None
    rows = []
    for run in runs:
        m = run["metrics"]
        ppl = m["scores"]["test PPL"]

        def get(key):  # top level, else the selection split of the best evaluation (older runs)
            value = m.get(key)
            return value if value is not None else split_value(m.get("best") or {}, key, m.get("metric", ""))

        rows.append({"label": row_label(run), "test PPL": ppl, "valid PPL": m["scores"]["valid PPL"],
                     "% of teacher": 100.0 * ref_ppl / ppl if ref_ppl else None,
                     "PPL / teacher": ppl / ref_ppl if ref_ppl else None,
                     "tokens": training_tokens(m), "energy %": get("energy_percent_of_ann"),
                     "energy % per layer": get("energy_percent_of_ann_per_layer") or {},
                     "firing rate per layer": get("firing_rate_per_layer") or {},
                     "train s": m.get("train_seconds")})
    return rows


def _f(value, fmt):
    return "-" if value is None else format(value, fmt)


def to_markdown(rows: List[Dict[str, Any]]) -> str:
    lines = ["| run | test PPL | valid PPL | % of teacher | PPL / teacher | training tokens "
             "| energy % of ANN (layers 0 / 1 / head) | firing rate (layer 0 / 1) | train s |",
             "|---|---:|---:|---:|---:|---:|---|---|---:|"]
    for r in rows:
        e = r["energy % per layer"]
        per_layer = " / ".join(_f(e.get(k), ".1f") for k in sorted(e, key=lambda k: (not k.isdigit(), k)))
        rates = " / ".join(_f(v, ".3f") for _, v in sorted(r["firing rate per layer"].items()))
        lines.append(f"| {r['label']} | {r['test PPL']:.1f} | {r['valid PPL']:.1f} | "
                     f"{_f(r['% of teacher'], '.1f')} | {_f(r['PPL / teacher'], '.2f')} | {r['tokens']:,} | "
                     f"{_f(r['energy %'], '.1f')} "
                     f"({per_layer}) | {rates or '-'} | {_f(r['train s'], '.0f')} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs_dir")
    p.add_argument("--teacher", default=None, help="row label of the teacher run")
    p.add_argument("--config", default=None, help="the grid file: rows in its order")
    a = p.parse_args(argv)
    names = None
    if a.config:
        from sj_spikelm.grid import expand, load_spec

        runs_dir = Path(a.runs_dir)
        names = [r.name for r in expand(load_spec(a.config))]
        names = [n for n in names if (runs_dir / n / "metrics.json").is_file()]
    print(to_markdown(result_rows(load_runs(Path(a.runs_dir), names), a.teacher)))


if __name__ == "__main__":
    main()
