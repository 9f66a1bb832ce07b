"""Which checkpoint a job resumes from, checked before the Trainer touches it.

The Trainer writes ``<run_dir>/checkpoint-<step>/`` file by file and ``trainer_state.json``
last, and removes older checkpoints only after a new one is complete. So a folder without a
``trainer_state.json`` is a save that was interrupted (the job was killed while saving): it is
set aside as ``incomplete-checkpoint-<step>`` (kept, not deleted) and the run resumes from the
newest complete one. A complete-looking checkpoint whose files are truncated or corrupt stops
the job with an error naming the file and saying how to start fresh, instead of a raw
safetensors / torch error deep inside the Trainer.
"""
from __future__ import annotations

import json
import logging
import re
import struct
import zipfile
from pathlib import Path
from typing import List, Optional

log = logging.getLogger(__name__)
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"


class CorruptCheckpoint(RuntimeError):
    """A checkpoint file that cannot be read."""


def checkpoints(run_dir: Path) -> List[Path]:
    """``checkpoint-<step>`` folders of ``run_dir``, newest (highest step) first."""
    if not Path(run_dir).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(run_dir).iterdir()
             if p.is_dir() and (m := CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def check_safetensors(path: Path) -> None:
    """Header readable and file as long as the tensors it declares (catches truncation)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CorruptCheckpoint(f"{path}: {size} bytes, shorter than a safetensors header")
        (length,) = struct.unpack("<Q", head)
        try:
            header = json.loads(f.read(length))
        except (ValueError, UnicodeDecodeError) as err:
            raise CorruptCheckpoint(f"{path}: unreadable safetensors header ({err})") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if size < 8 + length + end:
        raise CorruptCheckpoint(f"{path}: truncated ({size} bytes, the header declares {8 + length + end})")


def check_torch_file(path: Path) -> None:
    """A ``torch.save`` file is a zip archive; its central directory sits at the end of the
    file, so truncation or damage shows when it is opened and its entries' CRCs are checked."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as err:
        raise CorruptCheckpoint(f"{path}: not a readable torch file ({err})") from None
    if bad is not None:
        raise CorruptCheckpoint(f"{path}: damaged entry {bad}")


def check_checkpoint(folder: Path) -> None:
    """Raise :class:`CorruptCheckpoint` naming the first unreadable file of ``folder``."""
    try:
        json.loads((folder / STATE_FILE).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CorruptCheckpoint(f"{folder / STATE_FILE}: not valid JSON ({err})") from None
    weights = sorted(folder.glob("*.safetensors"))
    if not weights and not any(folder.glob("pytorch_model*.bin")):
        raise CorruptCheckpoint(f"{folder}: no model weights (*.safetensors)")
    for path in weights:
        check_safetensors(path)
    for path in sorted(folder.glob("*.pt")) + sorted(folder.glob("*.pth")) + sorted(folder.glob("*.bin")):
        check_torch_file(path)


def resumable_checkpoint(run_dir: Path) -> Optional[Path]:
    """The newest complete checkpoint of ``run_dir`` (None if there is none). Interrupted saves
    are renamed ``incomplete-checkpoint-<step>`` with a warning; a complete checkpoint that
    does not read raises :class:`CorruptCheckpoint` with the way out."""
    for folder in checkpoints(run_dir):
        if not (folder / STATE_FILE).is_file():
            aside = folder.with_name(f"incomplete-{folder.name}")
            folder.rename(aside)
            log.warning("%s has no %s: its save was interrupted; kept as %s, resuming from an "
                        "earlier checkpoint if there is one", folder, STATE_FILE, aside.name)
            continue
        try:
            check_checkpoint(folder)
        except CorruptCheckpoint as err:
            raise CorruptCheckpoint(
                f"cannot resume: {err}. Move {folder} away to resume from an earlier checkpoint (if "
                f"any), or start fresh with --resume false (or a new run_dir)") from None
        return folder
    return None
