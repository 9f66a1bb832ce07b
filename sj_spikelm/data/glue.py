"""GLUE tasks from the hub (``nyu-mll/glue``) or a local folder in the standard GLUE TSV layout
(``SST-2/train.tsv``, ``SST-2/dev.tsv``, ``MNLI/dev_matched.tsv``, ...), as ``datasets.Dataset``
objects with the hub's column names and label ids, so both sources tokenise the same way."""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import datasets

from ..metrics import MAIN_METRIC
from .paths import data_root, sources_tried

log = logging.getLogger(__name__)
HUB_DATASET = "nyu-mll/glue"
SAMPLE_DIR = Path(__file__).resolve().parent / "sst2_sample"
"""GLUE-layout folder of the SST-2 sample shipped with the package (experiments/make_sst2_sample.py)."""
SPLIT_FILES = {"train": "train.tsv", "validation": "dev.tsv", "validation_matched": "dev_matched.tsv",
               "validation_mismatched": "dev_mismatched.tsv", "test": "test.tsv"}


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: hub config ``name``, local ``folder``, input ``text_columns``,
    ``num_labels`` (1 = regression), and how its TSV files map to those columns:
    ``tsv_columns`` maps a column to its header name (or to its position, for the header-less
    CoLA files); ``label_names`` turns string labels into the hub's ids."""

    name: str
    folder: str
    text_columns: Tuple[str, ...]
    num_labels: int
    tsv_columns: Mapping[str, Union[str, int]] = field(default_factory=dict)
    label_names: Optional[Tuple[str, ...]] = None
    eval_splits: Tuple[str, ...] = ("validation",)
    eval_names: Tuple[str, ...] = ()
    skip_malformed: bool = False

    @property
    def metric(self) -> str:
        """The metric the paper reports for this task (see :mod:`sj_spikelm.metrics`)."""
        return MAIN_METRIC[self.name]

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    def column(self, split: str) -> str:
        """Table column of an evaluation split: ``SST-2``, ``MNLI-m``, ``MNLI-mm``, ..."""
        names = self.eval_names or (self.folder,)
        return names[self.eval_splits.index(split)]

    def tsv_column(self, column: str) -> Union[str, int]:
        return self.tsv_columns.get(column, column)


TASKS: Dict[str, GlueTask] = {t.name: t for t in [
    GlueTask("cola", "CoLA", ("sentence",), 2, {"sentence": 3, "label": 1}),
    GlueTask("sst2", "SST-2", ("sentence",), 2),
    GlueTask("mrpc", "MRPC", ("sentence1", "sentence2"), 2,
             {"sentence1": "#1 String", "sentence2": "#2 String", "label": "Quality"}),
    GlueTask("stsb", "STS-B", ("sentence1", "sentence2"), 1, {"label": "score"}),
    GlueTask("qqp", "QQP", ("question1", "question2"), 2, {"label": "is_duplicate"}, skip_malformed=True),
    GlueTask("mnli", "MNLI", ("premise", "hypothesis"), 3,
             {"premise": "sentence1", "hypothesis": "sentence2", "label": "gold_label"},
             label_names=("entailment", "neutral", "contradiction"),
             eval_splits=("validation_matched", "validation_mismatched"), eval_names=("MNLI-m", "MNLI-mm")),
    GlueTask("qnli", "QNLI", ("question", "sentence"), 2, label_names=("entailment", "not_entailment")),
    GlueTask("rte", "RTE", ("sentence1", "sentence2"), 2, label_names=("entailment", "not_entailment")),
]}


def glue_task(name: str) -> GlueTask:
    """The task named ``name``: ``sst2``, ``SST-2``, ``glue/sst2``, ``STS-B``, ... (any case)."""
    key = name.lower().strip()
    key = key[len("glue/"):] if key.startswith("glue/") else key
    key = key.replace("-", "").replace("_", "")
    if key not in TASKS:
        raise ValueError(f"task={name!r}; accepted: {', '.join(TASKS)} (or 'glue/<task>', or the "
                         f"folder names {', '.join(t.folder for t in TASKS.values())})")
    return TASKS[key]


def find_task_folder(task: GlueTask, data_dir: Union[str, Path]) -> Optional[Path]:
    """``<data_dir>/<FOLDER>``, ``<data_dir>/glue/<FOLDER>`` or ``data_dir`` itself when it is
    named ``<FOLDER>``; ``None`` if none exists."""
    data_dir = Path(data_dir)
    for candidate in (data_dir / task.folder, data_dir / "glue" / task.folder):
        if candidate.is_dir():
            return candidate
    return data_dir if data_dir.name == task.folder and data_dir.is_dir() else None


def read_glue_tsv(path: Union[str, Path], task: GlueTask) -> Dict[str, List]:
    """Columns ``task.text_columns + ("label", "idx")`` of one GLUE TSV file (UTF-8, an optional
    BOM, no quoting; CoLA has no header). Rows with a wrong number of fields raise ``ValueError``
    naming the line, except for QQP, whose official files have a few that are skipped."""
    path = Path(path)
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    wanted = task.text_columns + ("label",)
    spec = {c: task.tsv_column(c) for c in wanted}
    if all(isinstance(v, int) for v in spec.values()):
        index, width, first_line = spec, None, 1
    else:
        header, rows, first_line = rows[0], rows[1:], 2
        missing = [v for v in spec.values() if v not in header]
        if missing:
            raise ValueError(f"{path}: no column(s) {missing} for task {task.name!r}; header: {header}")
        index, width = {c: header.index(v) for c, v in spec.items()}, len(header)
    need = max(index.values()) + 1
    out: Dict[str, List] = {c: [] for c in wanted}
    for line, row in enumerate(rows, start=first_line):
        if not row:
            continue
        if len(row) < need or (width is not None and len(row) != width):
            if task.skip_malformed:
                continue
            raise ValueError(f"{path}:{line}: {len(row)} fields, expected {width or need}")
        for c in task.text_columns:
            out[c].append(row[index[c]])
        out["label"].append(_label(row[index["label"]], task, f"{path}:{line}"))
    out["idx"] = list(range(len(out["label"])))
    return out


def _label(raw: str, task: GlueTask, where: str):
    raw = raw.strip()
    try:
        if task.is_regression:
            return float(raw)
        if task.label_names is not None:
            return task.label_names.index(raw)
        value = int(raw)
    except ValueError:
        accepted = task.label_names or ("a float" if task.is_regression else "an integer id")
        raise ValueError(f"{where}: label {raw!r} for task {task.name!r}; accepted: {accepted}") from None
    if not 0 <= value < task.num_labels:
        raise ValueError(f"{where}: label {value} outside 0..{task.num_labels - 1} for task {task.name!r}")
    return value


def _from_folder(folder: Path, task: GlueTask, split: str) -> datasets.Dataset:
    path = folder / SPLIT_FILES[split]
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (split {split!r} of task {task.name!r})")
    columns = read_glue_tsv(path, task)
    features = datasets.Features({
        **{c: datasets.Value("string") for c in task.text_columns},
        "label": datasets.Value("float32" if task.is_regression else "int64"),
        "idx": datasets.Value("int64")})
    return datasets.Dataset.from_dict(columns, features=features)


_HUB_FAILURES: Dict[str, Exception] = {}


def _from_hub(task: GlueTask, split: str) -> datasets.Dataset:
    """The split from the hub; a failure is remembered for the process (one retry cycle, not one
    per split)."""
    if task.name in _HUB_FAILURES:
        raise _HUB_FAILURES[task.name]
    try:
        return datasets.load_dataset(HUB_DATASET, task.name, split=split)
    except Exception as err:  # noqa: BLE001 - offline: ConnectionError, LocalEntryNotFoundError, ...
        _HUB_FAILURES[task.name] = err
        raise


def load_glue(task: Union[str, GlueTask], split: str, data_dir: Optional[str] = None) -> datasets.Dataset:
    """Split ``split`` (``train``, ``validation``, ``validation_matched``, ...) of a GLUE task.
    ``data_dir``: a folder holding ``<FOLDER>/`` or ``glue/<FOLDER>/``; ``"hub"`` for the hub;
    ``None`` for, in order: the local data root (``$SJ_SPIKELM_DATA``, else ``../shared/data``
    next to a source checkout; :func:`~sj_spikelm.data.paths.data_root`) when it holds the task,
    the hub, and for SST-2 the sample shipped with the package (:data:`SAMPLE_DIR`: 2,000
    training sentences and the whole dev set), with a warning. When none has the task, the
    error names all of them."""
    task = glue_task(task) if isinstance(task, str) else task
    if split not in SPLIT_FILES:
        raise ValueError(f"split={split!r}; accepted: {', '.join(SPLIT_FILES)}")
    if data_dir == "hub":
        return _from_hub(task, split)
    if data_dir is not None:
        folder = find_task_folder(task, data_dir)
        if folder is None:
            raise FileNotFoundError(f"data_dir={data_dir!r} holds no {task.folder}/ or glue/{task.folder}/ "
                                    "folder; pass data_dir='hub' to use the hub")
        return _from_folder(folder, task, split)
    root = data_root()
    folder = find_task_folder(task, root) if root is not None else None
    if folder is not None:
        log.info("GLUE %s %s from %s", task.name, split, folder)
        return _from_folder(folder, task, split)
    try:
        return _from_hub(task, split)
    except Exception as err:  # noqa: BLE001
        sample = find_task_folder(task, SAMPLE_DIR)
        if sample is None:
            raise FileNotFoundError(
                f"GLUE task {task.name!r} not found: no {task.folder}/ in {sources_tried()}, and the hub "
                f"({HUB_DATASET}) failed: {type(err).__name__}: {err}") from err
        log.warning("GLUE %s %s from the sample shipped with sj_spikelm (%s): no %s/ in %s, and the hub "
                    "failed (%s)", task.name, split, sample, task.folder, sources_tried(), type(err).__name__)
        return _from_folder(sample, task, split)
