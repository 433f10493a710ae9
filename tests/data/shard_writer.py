"""Writes small token-shard directories in the ``theseus-tokens-v2`` format for tests, with
exactly known contents (the byte-level tokenizer: a token is a byte, 256 is end-of-text)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence

import numpy as np

from theseus.data.tokenizers import ByteLevel

EOT = 256


def _tokenizer_meta(spec: ByteLevel | None) -> dict:
    tok = (spec or ByteLevel()).load()
    return {"name": tok.name, "kind": type(tok).__name__, "sha256": tok.fingerprint(),
            "vocab_size": tok.vocab_size, "eot_id": tok.eot_id, "pad_id": tok.eot_id}


def write_streaming(out: pathlib.Path, splits: dict[str, Sequence[str]], shard_tokens: int = 0,
                    spec: ByteLevel | None = None) -> dict[str, np.ndarray]:
    """Documents per split, joined with end-of-text into shards of about ``shard_tokens``
    tokens (0: one shard); returns each split's whole token stream."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": "theseus-tokens-v2", "style": "streaming", "tokenizer": _tokenizer_meta(spec),
            "dtype": "uint16", "source": {"kind": "test", "fingerprint": "x", "description": "t"},
            "val_fraction": 0.5, "splits": {}}
    streams = {}
    for split, docs in splits.items():
        stream = np.array([t for d in docs for t in [*d.encode(), EOT]], dtype=np.uint16)
        size = shard_tokens or len(stream)
        entries = []
        for i, start in enumerate(range(0, len(stream), size)):
            name = f"{split}-{i:05d}.bin"
            stream[start:start + size].tofile(out / name)
            entries.append({"file": name, "tokens": len(stream[start:start + size]), "documents": 0})
        meta["splits"][split] = {"tokens": len(stream), "documents": len(docs), "shards": entries}
        streams[split] = stream
    (out / "meta.json").write_text(json.dumps(meta))
    return streams


def write_blockwise(out: pathlib.Path, rows: dict[str, np.ndarray], masks: dict[str, np.ndarray],
                    pad_side: str = "right", spec: ByteLevel | None = None) -> None:
    """Rows ``[n, seq_len]`` and loss masks per split, one shard each."""
    out.mkdir(parents=True, exist_ok=True)
    seq_len = next(iter(rows.values())).shape[1]
    meta = {"format": "theseus-tokens-v2", "style": "blockwise", "seq_len": seq_len,
            "pad_side": pad_side, "truncate_side": "right", "tokenizer": _tokenizer_meta(spec),
            "dtype": "uint16", "source": {"kind": "test", "fingerprint": "x", "description": "t"},
            "val_fraction": 0.5, "splits": {}}
    for split, arr in rows.items():
        np.asarray(arr, np.uint16).tofile(out / f"{split}-00000.bin")
        np.asarray(masks[split], np.uint8).tofile(out / f"{split}-00000.mask.bin")
        meta["splits"][split] = {"tokens": int(arr.size), "documents": len(arr), "rows": len(arr),
                                 "shards": [{"file": f"{split}-00000.bin", "tokens": int(arr.size),
                                             "documents": len(arr),
                                             "mask": f"{split}-00000.mask.bin"}]}
    (out / "meta.json").write_text(json.dumps(meta))
