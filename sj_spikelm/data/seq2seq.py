"""Sequence-to-sequence tasks on local files: Multi30k English -> German (translation), SciTLDR-A
(abstract -> one-sentence summary) and AESLC (e-mail -> subject line), as ``datasets.Dataset`` s
with the columns ``source``, ``target`` (the training target) and ``references`` (every
reference of the evaluation; SciTLDR-A's dev/test have several).

Folder layout (``../shared/data``, see its README): ``multi30k/{train,val,test_2016_flickr}.{en,de}``
(line-aligned raw text), ``scitldr-a/{train,dev,test}.jsonl`` (``source``: list of sentences,
``target``: list of TLDRs), ``aeslc/{train,dev,test}.jsonl`` (``email``, ``subject``).
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
class Seq2SeqTask:
    name: str
    kind: str                      # "translation" (BLEU) or "summarization" (ROUGE)
    folder: str                    # under the data root
    files: Dict[str, str]          # split -> file stem
    read: Callable[[Path, str], Tuple[List[str], List[str], List[List[str]]]]

    @property
    def metric(self) -> str:
        """Key of the model-selection metric: ``bleu`` or ``rougeL``."""
        return "bleu" if self.kind == "translation" else "rougeL"


TASKS = {
    "multi30k": Seq2SeqTask("multi30k", "translation", "multi30k",
                            {"train": "train", "validation": "val", "test": "test_2016_flickr"}, _multi30k),
    "scitldr": Seq2SeqTask("scitldr", "summarization", "scitldr-a",
                           {"train": "train", "validation": "dev", "test": "test"}, _scitldr),
    "aeslc": Seq2SeqTask("aeslc", "summarization", "aeslc",
                         {"train": "train", "validation": "dev", "test": "test"}, _aeslc),
}


def seq2seq_task(name: str) -> Seq2SeqTask:
    """The task called ``name``; ``ValueError`` naming the accepted ones otherwise."""
    if name not in TASKS:
        raise ValueError(f"task={name!r}; accepted: {', '.join(TASKS)}")
    return TASKS[name]


def load_seq2seq(task: Seq2SeqTask, split: str, data_dir: Optional[str] = None) -> datasets.Dataset:
    """``split`` (``train``, ``validation``, ``test``) of ``task`` from ``data_dir`` (the folder
    holding ``task.folder``; default: :func:`sj_spikelm.data.paths.data_root`)."""
    if split not in task.files:
        raise ValueError(f"split={split!r}; accepted: {', '.join(task.files)}")
    root = Path(data_dir) if data_dir else data_root()
    if root is None:
        raise FileNotFoundError(f"no local data for {task.name}: set data_dir (tried {sources_tried()})")
    folder = root / task.folder
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist (task {task.name}, data_dir {root})")
    source, target, references = task.read(folder, task.files[split])
    return datasets.Dataset.from_dict({"source": source, "target": target, "references": references})
