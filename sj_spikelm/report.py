"""Result table and plots of a folder of runs (each a folder with ``metrics.json``).

    sj-report RUNS_DIR [--reference ANN] [--final]     # = python -m experiments.report

Rows are settings (the grid's ``settings`` name plus every axis other than ``task`` and
``seed``; without ``grid.json``: model, neuron and T from the config), columns are the
``scores`` of ``metrics.json`` (GLUE tasks in the paper's order: MNLI-m, MNLI-mm, QQP, QNLI,
SST-2, CoLA, STS-B, MRPC, RTE, then any others), then the average over the GLUE columns (only
for rows that have all of them), the energy per sequence (mJ) and the average firing rate.
Cells are ``mean ± std`` over seeds (sample standard deviation; the mean alone for one seed).
Scores are the best dev evaluation of each run (``--final``: the last one). Writes
``RUNS_DIR/report/{table.md,table.csv,accuracy_vs_energy.png,firing_rate_per_layer.png}``
and prints the Markdown table. Run files are read through :mod:`sj_spikelm.run_dir`: a run
whose ``metrics.json`` (or ``grid.json``) is unreadable is not done, and the report names the
file and what is wrong with it.
"""
from __future__ import annotations

import argparse
import csv
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from .run_dir import GRID_FILE, CorruptRunFile, read_json, read_metrics

GLUE_COLUMNS = ["MNLI-m", "MNLI-mm", "QQP", "QNLI", "SST-2", "CoLA", "STS-B", "MRPC", "RTE"]
ROW_AXES_IGNORED = ("task", "seed")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def row_label(run: Dict[str, Any]) -> str:
    """The table row of a run: its setting and the axes that are neither task nor seed; without
    them, the model that actually ran (``metrics.json``'s ``model``: type, neuron, ``T``)."""
    grid = run.get("grid")
    if grid:
        parts = [grid["setting"]] if grid.get("setting") is not None else []
        parts += [f"{k}={_fmt(v)}" for k, v in grid.get("axes", {}).items() if k not in ROW_AXES_IGNORED]
        if parts:
            return ", ".join(parts)
    ran = run["metrics"].get("model")  # what the job actually built (metrics.json "model")
    if isinstance(ran, dict) and ran.get("model_type"):
        if ran.get("neuron") is not None:
            return f"{ran['model_type']} {ran['neuron']}, T={ran.get('T')}"
        return str(ran["model_type"])
    config = run["metrics"].get("config") or {}
    return str(config.get("model", "run"))


def load_runs(runs_dir: Path, names: Optional[Iterable[str]] = None,
              unreadable: Optional[List[str]] = None) -> List[Dict[str, Any]]:
    """``[{name, metrics, grid}]`` of the finished runs in ``runs_dir`` (or just ``names``).
    A run with an unreadable ``metrics.json`` or ``grid.json`` is left out, and the reason
    (naming the file) appended to ``unreadable`` if given."""
    runs_dir = Path(runs_dir)
    if names is None:
        folders = sorted(p for p in runs_dir.iterdir() if p.is_dir())
    else:
        folders = [runs_dir / n for n in names]
    runs = []
    for folder in folders:
        try:
            metrics = read_metrics(folder)
            if metrics is None:
                continue
            grid = read_json(folder / GRID_FILE) if (folder / GRID_FILE).is_file() else None
        except CorruptRunFile as err:
            if unreadable is not None:
                unreadable.append(str(err))
            continue
        runs.append({"name": folder.name, "metrics": metrics, "grid": grid})
    return runs


def _mean_std(values: List[float]) -> Dict[str, Any]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values)}


def _ordered(columns: Iterable[str]) -> List[str]:
    columns = set(columns)
    return [c for c in GLUE_COLUMNS if c in columns] + sorted(columns - set(GLUE_COLUMNS))


def build_table(runs: List[Dict[str, Any]], final: bool = False) -> Dict[str, Any]:
    """``{columns, rows: {label: {column: {mean, std, n}, "Avg.", energy, firing_rate,
    firing_rate_per_layer}}}`` from loaded runs (row order: first appearance)."""
    key = "final_scores" if final else "scores"
    cells: Dict[str, Dict[str, List[float]]] = defaultdict(lambda: defaultdict(list))
    extras: Dict[str, Dict[str, List]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        label, m = row_label(run), run["metrics"]
        row_cells = cells[label]  # every finished run makes its row, even without scores
        for column, value in (m.get(key) or {}).items():
            if value is not None and math.isfinite(value):
                row_cells[column].append(float(value))
        for field in ("energy_mj_per_sequence", "firing_rate", "firing_rate_per_layer"):
            if m.get(field) not in (None, {}):
                extras[label][field].append(m[field])
    columns = _ordered(c for row in cells.values() for c in row)
    glue = [c for c in columns if c in GLUE_COLUMNS]
    rows = {}
    for label, row_cells in cells.items():
        row = {c: _mean_std(v) for c, v in row_cells.items()}
        if glue and all(c in row for c in glue):
            row["Avg."] = statistics.fmean(row[c]["mean"] for c in glue)
        e = extras[label]
        row["energy"] = statistics.fmean(e["energy_mj_per_sequence"]) if e["energy_mj_per_sequence"] else None
        row["firing_rate"] = statistics.fmean(e["firing_rate"]) if e["firing_rate"] else None
        layers: Dict[str, List[float]] = defaultdict(list)
        for per_layer in e["firing_rate_per_layer"]:
            for layer, rate in per_layer.items():
                layers[layer].append(rate)
        row["firing_rate_per_layer"] = {k: statistics.fmean(v) for k, v in layers.items()}
        rows[label] = row
    return {"columns": columns, "glue": glue, "rows": rows}


def _cell(cell: Optional[Dict[str, Any]]) -> str:
    if cell is None:
        return "–"
    if cell["std"] is None:
        return f"{cell['mean']:.2f}"
    return f"{cell['mean']:.2f} ± {cell['std']:.2f}"


def to_markdown(table: Dict[str, Any], reference: Optional[str] = None) -> str:
    cols = table["columns"] + (["Avg."] if table["glue"] else [])
    head = ["Setting"] + cols + ["Energy (mJ/seq)", "Firing rate", "Seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, row in table["rows"].items():
        seeds = sorted({row[c]["n"] for c in table["columns"] if c in row})
        values = [_cell(row.get(c)) for c in table["columns"]]
        if table["glue"]:
            values.append(f"{row['Avg.']:.2f}" if "Avg." in row else "–")
        values += [f"{row['energy']:.4g}" if row["energy"] is not None else "–",
                   f"{row['firing_rate']:.3f}" if row["firing_rate"] is not None else "–",
                   "/".join(map(str, seeds)) or "0"]
        lines.append("| " + " | ".join([label] + values) + " |")
    text = "\n".join(lines)
    if reference is not None:
        text += "\n\n" + relative_markdown(table, reference)
    return text


def relative_markdown(table: Dict[str, Any], reference: str) -> str:
    """Each row's mean as a percentage of the ``reference`` row's mean, per column."""
    if reference not in table["rows"]:
        return f"(no row {reference!r} to compare with; rows: {', '.join(table['rows'])})"
    ref = table["rows"][reference]
    cols = table["columns"] + (["Avg."] if "Avg." in ref else [])
    lines = [f"Relative to {reference} (% of its mean score)", "",
             "| Setting | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]

    def mean(row, c):
        value = row.get(c)
        return value["mean"] if isinstance(value, dict) else value

    for label, row in table["rows"].items():
        values = []
        for c in cols:
            a, b = mean(row, c), mean(ref, c)
            values.append(f"{100 * a / b:.1f}" if a is not None and b not in (None, 0) else "–")
        lines.append("| " + " | ".join([label] + values) + " |")
    return "\n".join(lines)


def write_csv(table: Dict[str, Any], path: Path) -> None:
    cols = table["columns"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["setting"] + [f"{c} {s}" for c in cols for s in ("mean", "std", "n")] +
                        ["Avg.", "energy_mj_per_sequence", "firing_rate"])
        for label, row in table["rows"].items():
            values = []
            for c in cols:
                cell = row.get(c) or {}
                std = cell.get("std")
                values += [cell.get("mean", ""), "" if std is None else std, cell.get("n", 0)]
            values += [row.get("Avg.", ""), "" if row["energy"] is None else row["energy"],
                       "" if row["firing_rate"] is None else row["firing_rate"]]
            writer.writerow([label] + values)


def _layer_order(layer: str):
    return (1, int(layer), "") if layer.isdigit() else (0 if "embed" in layer else 2, 0, layer)


def plot(table: Dict[str, Any], out: Path) -> List[Path]:
    """Accuracy (the GLUE average, or the only column) vs energy, and firing rate per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    score_name = "Avg." if table["glue"] and len(table["columns"]) > 1 else (table["columns"] or [None])[0]
    points = []
    for label, row in table["rows"].items():
        score = row.get(score_name)
        score = score["mean"] if isinstance(score, dict) else score
        if score is not None and row["energy"] is not None:
            points.append((row["energy"], score, label))
    if points:
        fig, ax = plt.subplots(figsize=(6, 4))
        for energy, score, label in points:
            ax.scatter(energy, score)
            ax.annotate(label, (energy, score), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("energy per sequence (mJ)")
        ax.set_ylabel(f"{score_name} score")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        written.append(out / "accuracy_vs_energy.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    layered = {label: row["firing_rate_per_layer"] for label, row in table["rows"].items()
               if row["firing_rate_per_layer"]}
    if layered:
        fig, ax = plt.subplots(figsize=(7, 4))
        for label, rates in layered.items():
            layers = sorted(rates, key=_layer_order)
            ax.plot(layers, [rates[k] for k in layers], marker="o", label=label)
        ax.set_xlabel("layer")
        ax.set_ylabel("firing rate")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        written.append(out / "firing_rate_per_layer.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    return written


def make_report(runs_dir, reference: Optional[str] = None, final: bool = False,
                runs: Optional[Iterable[str]] = None) -> str:
    """Write the report files under ``runs_dir/report`` and return the Markdown text."""
    runs_dir = Path(runs_dir)
    unreadable: List[str] = []
    loaded = load_runs(runs_dir, runs, unreadable)
    problems = "".join(f"\nnot done, unreadable: {reason}" for reason in unreadable)
    if not loaded:
        return f"no finished runs (metrics.json) in {runs_dir}" + problems
    table = build_table(loaded, final)
    out = runs_dir / "report"
    out.mkdir(exist_ok=True)
    text = to_markdown(table, reference)
    note = (f"\n\n{len(loaded)} finished runs in {runs_dir}; "
            f"scores: {'final' if final else 'best'} dev evaluation x 100 (MCC for CoLA, Spearman for "
            "STS-B, F1 for MRPC/QQP, accuracy otherwise).")
    (out / "table.md").write_text(text + note + problems + "\n")
    write_csv(table, out / "table.csv")
    plots = plot(table, out)
    return text + note + problems + "".join(f"\nplot: {p}" for p in plots)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="sj-report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs_dir")
    parser.add_argument("--reference", help="row to express the others relative to (e.g. ANN)")
    parser.add_argument("--final", action="store_true", help="use the final instead of the best evaluation")
    args = parser.parse_args(argv)
    print(make_report(args.runs_dir, args.reference, args.final))


if __name__ == "__main__":
    main()
