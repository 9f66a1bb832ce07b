"""Sequence-to-sequence tasks on local files: Multi30k English -> German (translation), SciTLDR-A
(abstract -> one-sentence summary) and AESLC (e-mail -> subject line), as ``datasets.Dataset`` s
with the columns ``source``, ``target`` (the training target) and ``references`` (every
reference of the evaluation; SciTLDR-A's dev/test have several).

Folder layout (``../shared/data``, see its README): ``multi30k/{train,val,test_2016_flickr}.{en,de}``
(line-aligned raw text), ``scitldr-a/{train,dev,test}.jsonl`` (``source``: list of sentences,
``target``: list of TLDRs), ``aeslc/{train,dev,test}.jsonl`` (``email``, ``subject``).

The paper's sets come from the hub (``data_dir="hub"``, needs internet): ``xsum``
(``EdinburghNLP/xsum``), ``cnn_dailymail`` (``abisee/cnn_dailymail`` 3.0.0), ``wmt16``
(``wmt/wmt16`` ro-en, English -> Romanian); ``multi30k`` is also ``bentrevett/multi30k`` there.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import datasets

from .paths import data_root, sources_tried


def _multi30k(folder: Path, stem: str) -> Tuple[List[str], List[str], List[List[str]]]:
    src = (folder / f"{stem}.en").read_text(encoding="utf-8").splitlines()
    tgt = (folder / f"{stem}.de").read_text(encoding="utf-8").splitlines()
    if len(src) != len(tgt):
        raise ValueError(f"{folder}/{stem}.en has {len(src)} lines but {stem}.de has {len(tgt)}")
    return src, tgt, [[t] for t in tgt]


def _jsonl(path: Path) -> List[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _scitldr(folder: Path, stem: str):
    rows = _jsonl(folder / f"{stem}.jsonl")
    sources = [" ".join(r["source"]) for r in rows]
    return sources, [r["target"][0] for r in rows], [r["target"] for r in rows]


def _aeslc(folder: Path, stem: str):
    rows = _jsonl(folder / f"{stem}.jsonl")
    return [r["email"] for r in rows], [r["subject"] for r in rows], [[r["subject"]] for r in rows]


@dataclass(frozen=True)
class HubSource:
    """Where a task lives on the hub: ``load_dataset(path, config)`` and how a row becomes
    ``(source, target)``."""

    path: str
    config: Optional[str]
    pair: Callable[[dict], Tuple[str, str]]


@dataclass(frozen=True)
class Seq2SeqTask:
    name: str
    kind: str                      # "translation" (BLEU) or "summarization" (ROUGE)
    folder: Optional[str]          # under the data root (None: hub only)
    files: Dict[str, str]          # split -> file stem
    read: Optional[Callable[[Path, str], Tuple[List[str], List[str], List[List[str]]]]]
    hub: Optional[HubSource] = None

    @property
    def metric(self) -> str:
        """Key of the model-selection metric: ``bleu`` or ``rougeL``."""
        return "bleu" if self.kind == "translation" else "rougeL"


HUB_SPLITS = {"train": "train", "validation": "validation", "test": "test"}
TASKS = {
    "multi30k": Seq2SeqTask("multi30k", "translation", "multi30k",
                            {"train": "train", "validation": "val", "test": "test_2016_flickr"}, _multi30k,
                            HubSource("bentrevett/multi30k", None, lambda r: (r["en"], r["de"]))),
    "scitldr": Seq2SeqTask("scitldr", "summarization", "scitldr-a",
                           {"train": "train", "validation": "dev", "test": "test"}, _scitldr),
    "aeslc": Seq2SeqTask("aeslc", "summarization", "aeslc",
                         {"train": "train", "validation": "dev", "test": "test"}, _aeslc),
    "xsum": Seq2SeqTask("xsum", "summarization", None, HUB_SPLITS, None,
                        HubSource("EdinburghNLP/xsum", None, lambda r: (r["document"], r["summary"]))),
    "cnn_dailymail": Seq2SeqTask("cnn_dailymail", "summarization", None, HUB_SPLITS, None,
                                 HubSource("abisee/cnn_dailymail", "3.0.0",
                                           lambda r: (r["article"], r["highlights"]))),
    "wmt16": Seq2SeqTask("wmt16", "translation", None, HUB_SPLITS, None,
                         HubSource("wmt/wmt16", "ro-en",
                                   lambda r: (r["translation"]["en"], r["translation"]["ro"]))),
}


def seq2seq_task(name: str) -> Seq2SeqTask:
    """The task called ``name``; ``ValueError`` naming the accepted ones otherwise."""
    if name not in TASKS:
        raise ValueError(f"task={name!r}; accepted: {', '.join(TASKS)}")
    return TASKS[name]


def load_seq2seq(task: Seq2SeqTask, split: str, data_dir: Optional[str] = None) -> datasets.Dataset:
    """``split`` (``train``, ``validation``, ``test``) of ``task`` from ``data_dir`` (the folder
    holding ``task.folder``; default: :func:`sj_spikelm.data.paths.data_root`), or from the hub
    with ``data_dir="hub"`` (the only source of ``xsum``, ``cnn_dailymail``, ``wmt16``)."""
    if split not in task.files:
        raise ValueError(f"split={split!r}; accepted: {', '.join(task.files)}")
    if data_dir == "hub" or task.folder is None:
        if task.hub is None:
            raise ValueError(f"task {task.name!r} has no hub source; accepted data_dir: a local folder")
        return _from_hub(task, split)
    root = Path(data_dir) if data_dir else data_root()
    if root is None:
        raise FileNotFoundError(f"no local data for {task.name}: set data_dir (tried {sources_tried()})")
    folder = root / task.folder
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist (task {task.name}, data_dir {root})")
    source, target, references = task.read(folder, task.files[split])
    return datasets.Dataset.from_dict({"source": source, "target": target, "references": references})


def _from_hub(task: Seq2SeqTask, split: str) -> datasets.Dataset:
    rows = datasets.load_dataset(task.hub.path, task.hub.config, split=HUB_SPLITS[split])
    pairs = [task.hub.pair(row) for row in rows]
    return datasets.Dataset.from_dict({"source": [p[0] for p in pairs], "target": [p[1] for p in pairs],
                                       "references": [[p[1]] for p in pairs]})
