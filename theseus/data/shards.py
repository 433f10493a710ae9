"""Token shards on disk (format ``theseus-tokens-v2``) and the API every reader uses.

A prepared dataset is a directory; it is complete iff ``meta.json`` exists (written last,
atomically)::

    meta.json                      tokenizer identity and sha256, dtype, counts, source, splits
    tokenizer.json                 only for a tokenizer trained on the train split (TrainedBPE)
    train-00000.bin ...            streaming: flat tokens, each document followed by end-of-text
    train-00000.mask.bin ...       blockwise: rows [n, seq_len] of tokens plus a uint8 loss mask
    val-00000.bin ...

``theseus.data.tokenize_job.tokenize`` writes it; ``read_meta``, ``split_shards`` and
``split_masks`` read it. ``write_dataset``/``load_tokens`` are the single-file v1 format
that ``TokenizedText`` still uses until it switches to ``tokenize``.
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

FORMAT = "theseus-tokens-v2"
SPLITS = ("train", "val")


def default_data_root() -> pathlib.Path:
    """``$THESEUS_DATA`` or ``~/.cache/theseus/data``: where prepared datasets live."""
    return pathlib.Path(os.environ.get("THESEUS_DATA", "~/.cache/theseus/data")).expanduser()


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


def shard_file(split: str, index: int, mask: bool = False) -> str:
    """``train-00003.bin`` (or ``train-00003.mask.bin``): the file of chunk ``index``."""
    return f"{split}-{index:05d}{'.mask' if mask else ''}.bin"


def read_meta(data_dir: pathlib.Path | str) -> dict:
    """The ``meta.json`` of a complete v2 dataset; one clear sentence if there is none."""
    path = pathlib.Path(data_dir) / "meta.json"
    if not path.is_file():
        raise ValueError(f"{data_dir} is not a prepared dataset (it has no meta.json); run its "
                         f"tokenize job to completion first.")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{data_dir} holds shards in format {meta.get('format', 'v1')!r}, not "
                         f"{FORMAT!r}; tokenize the corpus again (it gets a new directory).")
    return meta


def _split_info(data_dir: pathlib.Path, meta: dict, split: str) -> dict:
    if split not in meta["splits"]:
        raise ValueError(f"dataset {data_dir} has no split '{split}'; it has {sorted(meta['splits'])}.")
    return meta["splits"][split]


def split_shards(data_dir: pathlib.Path | str, split: str) -> list[np.memmap]:
    """The token shards of ``split`` as read-only memory maps (2-D ``[rows, seq_len]`` for a
    blockwise dataset). Empty shards are never listed, so every map has data."""
    data_dir = pathlib.Path(data_dir)
    meta = read_meta(data_dir)
    shape = (-1, meta["seq_len"]) if meta["style"] == "blockwise" else (-1,)
    return [np.memmap(data_dir / s["file"], dtype=meta["dtype"], mode="r").reshape(shape)
            for s in _split_info(data_dir, meta, split)["shards"]]


def split_masks(data_dir: pathlib.Path | str, split: str) -> list[np.memmap]:
    """The ``uint8`` loss masks ``[rows, seq_len]`` of a blockwise ``split``, shard by shard."""
    data_dir = pathlib.Path(data_dir)
    meta = read_meta(data_dir)
    if meta["style"] != "blockwise":
        raise ValueError(f"dataset {data_dir} is {meta['style']}; only blockwise datasets have "
                         f"loss masks.")
    return [np.memmap(data_dir / s["mask"], dtype=np.uint8, mode="r").reshape(-1, meta["seq_len"])
            for s in _split_info(data_dir, meta, split)["shards"]]


# --- v1 (one file per split), used by TokenizedText until it calls tokenize(); remove then.

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
    """v1: writes ``train.bin``/``val.bin`` and ``meta.json`` of ``docs`` into ``out_dir``
    atomically."""
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
    """v1: the tokens of ``split`` as a read-only memory map."""
    meta = json.loads((data_dir / "meta.json").read_text())
    return np.memmap(data_dir / _split_info(data_dir, meta, split)["file"], dtype=meta["dtype"],
                     mode="r")
