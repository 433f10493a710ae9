"""Tokenized shards on disk: flat token arrays per split plus a ``meta.json``.

Layout of a prepared dataset directory::

    tokenizer.json
    train.bin  val.bin        # documents joined by the end-of-text token, uint16 or uint32
    meta.json                 # tokenizer identity and hash, dtype, counts, source, splits

The directory is written under a temporary name and renamed into place, so a directory
that exists is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Sequence

import numpy as np

from theseus.data.tokenizers import Tokenizer


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id of the vocabulary."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def split_of(name: str, text: str, val_fraction: float) -> str:
    """``val`` or ``train``, decided by a hash of the document so that it never changes."""
    digest = hashlib.sha256(name.encode() + b"\0" + text.encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < val_fraction else "train"


def assign_splits(docs: Sequence[tuple[str, str]], val_fraction: float) -> dict[str, list[int]]:
    """Indices of the documents in each split; with two or more documents, each split gets
    at least one."""
    splits: dict[str, list[int]] = {"train": [], "val": []}
    for i, (name, text) in enumerate(docs):
        splits[split_of(name, text, val_fraction)].append(i)
    if len(docs) > 1:
        if not splits["val"]:
            splits["val"].append(splits["train"].pop())
        if not splits["train"]:
            splits["train"].append(splits["val"].pop(0))
    return splits


def write_split(tokenizer: Tokenizer, texts: Sequence[str], path: pathlib.Path) -> int:
    """Encodes ``texts``, joins them with end-of-text, writes ``path``; returns the token count."""
    dtype = token_dtype(tokenizer.vocab_size)
    with open(path, "wb") as f:
        total = 0
        for ids in tokenizer.encode_batch(list(texts)):
            arr = np.asarray(ids + [tokenizer.eot_id], dtype=dtype)
            f.write(arr.tobytes())
            total += arr.size
    return total


def write_dataset(out_dir: pathlib.Path, tokenizer_json: pathlib.Path, tokenizer: Tokenizer,
                  docs: Sequence[tuple[str, str]], splits: dict[str, list[int]], source: str) -> None:
    """Writes the shards and ``meta.json`` of ``docs`` into ``out_dir`` atomically."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")
        meta = {"source": source, "tokenizer": {"name": tokenizer.name,
                                                "sha256": tokenizer.fingerprint(),
                                                "vocab_size": tokenizer.vocab_size,
                                                "eot_id": tokenizer.eot_id},
                "dtype": token_dtype(tokenizer.vocab_size).name, "splits": {}}
        for split, idx in splits.items():
            tokens = write_split(tokenizer, [docs[i][1] for i in idx], tmp / f"{split}.bin")
            meta["splits"][split] = {"file": f"{split}.bin", "tokens": tokens,
                                     "documents": len(idx), "names": [docs[i][0] for i in idx]}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_tokens(data_dir: pathlib.Path, split: str) -> np.ndarray:
    """The tokens of ``split`` as a read-only memory map."""
    meta = json.loads((data_dir / "meta.json").read_text())
    if split not in meta["splits"]:
        raise ValueError(f"dataset {data_dir} has no split '{split}'; it has {sorted(meta['splits'])}.")
    return np.memmap(data_dir / meta["splits"][split]["file"], dtype=meta["dtype"], mode="r")
