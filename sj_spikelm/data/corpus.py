"""A plain-text corpus for MLM pre-training, tokenised once into fixed-length blocks and cached.

The corpus is one text file, a folder of ``.txt`` files (recursively, sorted), or a hub dataset
name (with ``config`` / ``split`` / ``text_column``). Non-empty lines are tokenised without
special tokens and concatenated; the stream is cut into blocks ``[CLS] + seq_len - 2 tokens +
[SEP]`` (the remainder is dropped, as in Hugging Face's ``run_mlm`` "group texts"), or with
``wrap=False`` plain blocks of ``seq_len`` tokens (causal LM, as ``run_clm``). The blocks
are saved as ``<cache_dir>/mlm-<key>.npy`` where ``key`` hashes the corpus content, the
tokenizer (its full serialised definition) and ``seq_len``; later calls memory-map that file.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import numpy as np

from .paths import cache_root

log = logging.getLogger(__name__)
CHUNK_LINES = 2000


def corpus_files(source: str) -> Optional[List[Path]]:
    """The text files of a local corpus (``None`` if ``source`` is not a local path)."""
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise FileNotFoundError(f"corpus folder {source!r} holds no .txt files")
        return files
    return None


def _hub_texts(source: str, config: Optional[str], split: str, text_column: str):
    import datasets

    try:
        ds = datasets.load_dataset(source, config, split=split)
    except Exception as err:
        raise FileNotFoundError(f"corpus={source!r} is not a local file or folder, and loading it as "
                                f"a hub dataset failed: {type(err).__name__}: {err}") from err
    if text_column not in ds.column_names:
        raise ValueError(f"text_column={text_column!r} not in hub dataset {source!r}; "
                         f"columns: {ds.column_names}")
    return ds, ds[text_column]


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of everything that decides the token ids: the tokenizer's serialised pipeline
    (normaliser, pre-tokeniser, vocabulary) and its special token ids; not its truncation and
    padding settings, which each call sets anew."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        pipeline = json.loads(backend.to_str())
        pipeline = {k: v for k, v in pipeline.items() if k not in ("truncation", "padding")}
        h.update(json.dumps(pipeline, sort_keys=True).encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(json.dumps([tokenizer.cls_token_id, tokenizer.sep_token_id]).encode())
    return h.hexdigest()


def _tokenise(lines: Iterable[str], tokenizer) -> np.ndarray:
    pieces, chunk = [], []

    def flush():
        if chunk:
            ids = tokenizer(chunk, add_special_tokens=False, verbose=False)["input_ids"]
            pieces.extend(np.asarray(x, dtype=np.int64) for x in ids)
            chunk.clear()

    for line in lines:
        line = line.strip()
        if line:
            chunk.append(line)
            if len(chunk) == CHUNK_LINES:
                flush()
    flush()
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)


def _blocks(ids: np.ndarray, tokenizer, seq_len: int, wrap: bool = True) -> np.ndarray:
    body = seq_len - 2 if wrap else seq_len
    n = len(ids) // body
    dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max + 1 else np.int32
    blocks = np.empty((n, seq_len), dtype=dtype)
    if not wrap:
        blocks[:] = ids[: n * body].reshape(n, body)
        return blocks
    blocks[:, 0], blocks[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    blocks[:, 1:-1] = ids[: n * body].reshape(n, body)
    return blocks


def load_token_blocks(source: str, tokenizer, seq_len: int, cache_dir: Optional[str] = None,
                      config: Optional[str] = None, split: str = "train",
                      text_column: str = "text", wrap: bool = True) -> Tuple[np.ndarray, Path]:
    """``([n_blocks, seq_len] token ids, cache file)``; tokenises ``source`` on the first call
    and memory-maps the cached blocks afterwards. ``wrap``: ``[CLS] ... [SEP]`` blocks (MLM),
    else plain ones (causal LM)."""
    if seq_len < (3 if wrap else 2):
        raise ValueError(f"seq_len={seq_len} must be at least {'3 ([CLS] token [SEP])' if wrap else 2}")
    files = corpus_files(source)
    key = f"seq_len={seq_len};tokenizer={tokenizer_fingerprint(tokenizer)}" + ("" if wrap else ";plain")
    h = hashlib.sha256(key.encode())
    if files is not None:
        for f in files:
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        texts = None
    else:
        ds, texts = _hub_texts(source, config, split, text_column)
        h.update(f"hub={source};{config};{split};{text_column};{ds._fingerprint}".encode())
    cache = Path(cache_dir) if cache_dir else cache_root() / "corpus"
    path = cache / f"mlm-{h.hexdigest()[:20]}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r"), path

    def lines():
        if files is None:
            for text in texts:
                yield from text.splitlines()
        else:
            for f in files:
                with open(f, encoding="utf-8") as fh:
                    yield from fh

    ids = _tokenise(lines(), tokenizer)
    blocks = _blocks(ids, tokenizer, seq_len, wrap)
    if len(blocks) == 0:
        raise ValueError(f"corpus {source!r} gives {len(ids)} tokens: not one block of seq_len={seq_len}")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, blocks)
    os.replace(tmp, path)
    path.with_suffix(".json").write_text(json.dumps(
        {"source": str(source), "config": config, "split": split, "seq_len": seq_len,
         "tokenizer": getattr(tokenizer, "name_or_path", None), "tokens": int(len(ids)),
         "blocks": int(len(blocks))}, indent=1))
    log.info("tokenised %s: %d tokens -> %d blocks of %d, cached at %s",
             source, len(ids), len(blocks), seq_len, path)
    return np.load(path, mmap_mode="r"), path
