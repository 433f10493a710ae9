"""Grain random-access sources over token shards on disk.

A split is one or more shard files (``format.md``: streaming shards are flat token arrays,
blockwise shards rows of a fixed length with a uint8 loss mask beside them). The sources
keep only file names, sizes and the dtype; the memory maps are opened on first access, in
whichever process reads, so a source pickles into grain worker processes in microseconds
and never copies tokens. ``repr`` is stable (grain compares it when restoring a position).

    ShardSplit.from_meta(dir, meta, split)   the files of a split (v2 or the first format)
    StreamWindows(split, seq_len)            windows of seq_len + 1 tokens across all shards
    BlockRows(split, seq_len)                {"tokens", "loss_mask"} rows of seq_len + 1
"""

from __future__ import annotations

import bisect
import dataclasses
import pathlib
import sys
from typing import Any

import grain
import numpy as np


@dataclasses.dataclass(frozen=True)
class ShardSplit:
    """The shard files of one split: ``files[i]`` holds ``lengths[i]`` tokens (streaming) or
    rows (blockwise, ``row_len`` tokens each, loss masks in ``masks[i]``)."""

    directory: str
    split: str
    dtype: str
    files: tuple[str, ...]
    lengths: tuple[int, ...]
    row_len: int = 0
    masks: tuple[str, ...] = ()
    pad_id: int = 0
    pad_side: str = "right"

    @property
    def blockwise(self) -> bool:
        """Whether the split holds fixed-length rows (else a flat token stream)."""
        return self.row_len > 0

    @classmethod
    def from_meta(cls, directory: pathlib.Path, meta: dict, split: str) -> ShardSplit:
        """The files of ``split`` as ``meta.json`` lists them; a missing one is an error."""
        if split not in meta.get("splits", {}):
            raise ValueError(f"dataset {directory} has no '{split}' split (it has "
                             f"{sorted(meta.get('splits', {}))}); tokenize it again.")
        info = meta["splits"][split]
        shards = info["shards"] if "shards" in info else [{"file": info["file"]}]  # v1: one file
        itemsize = np.dtype(meta["dtype"]).itemsize
        blockwise = meta.get("style") == "blockwise"
        row_len = int(meta["seq_len"]) if blockwise else 0
        lengths = []
        for shard in shards:
            path = directory / shard["file"]
            if not path.is_file():
                raise ValueError(f"shard {path} listed in {directory / 'meta.json'} is missing; "
                                 f"run the tokenize job again to rewrite the dataset.")
            lengths.append(path.stat().st_size // itemsize // max(row_len, 1))
        masks = tuple(s.get("mask", "") for s in shards) if blockwise else ()
        tok = meta.get("tokenizer", {})
        return cls(str(directory), split, meta["dtype"], tuple(s["file"] for s in shards),
                   tuple(lengths), row_len, masks, int(tok.get("pad_id", tok.get("eot_id", 0))),
                   meta.get("pad_side", "right"))

    def total(self) -> int:
        """Tokens (streaming) or rows (blockwise) over all shards."""
        return sum(self.lengths)

    def describe(self) -> str:
        """A short, stable description for reprs."""
        return f"{pathlib.Path(self.directory).name}/{self.split}, {self.total()} " \
               f"{'rows' if self.blockwise else 'tokens'} in {len(self.files)} shards"


class _LazyMaps:
    """Memory maps of a split's shards, opened on first use and never pickled."""

    def __init__(self, split: ShardSplit):
        self.split = split
        self._offsets = np.cumsum((0,) + split.lengths).tolist()
        self._maps: list[np.ndarray] | None = None
        self._masks: list[np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": None, "_masks": None}

    def _open(self) -> None:
        s, d = self.split, pathlib.Path(self.split.directory)
        shape = (lambda n: (n, s.row_len)) if s.blockwise else (lambda n: (n,))
        self._maps = [np.memmap(d / f, dtype=s.dtype, mode="r", shape=shape(n))
                      for f, n in zip(s.files, s.lengths)]
        self._masks = [np.memmap(d / m, dtype=np.uint8, mode="r", shape=shape(n))
                       for m, n in zip(s.masks, s.lengths)]

    def locate(self, index: int) -> tuple[int, int]:
        """(shard, offset inside it) of global token or row ``index``."""
        shard = bisect.bisect_right(self._offsets, index) - 1
        return shard, index - self._offsets[shard]

    def maps(self) -> list[np.ndarray]:
        """The shard arrays, opened now if needed."""
        if self._maps is None:
            self._open()
        return self._maps

    def masks(self) -> list[np.ndarray]:
        """The loss-mask arrays (blockwise), opened now if needed."""
        if self._masks is None:
            self._open()
        return self._masks

    def tokens(self, start: int, stop: int) -> np.ndarray:
        """Global tokens ``[start, stop)`` of a streaming split, across shard boundaries."""
        maps, pieces = self.maps(), []
        shard, offset = self.locate(start)
        while stop > start:
            piece = maps[shard][offset:offset + (stop - start)]
            pieces.append(piece)
            start += len(piece)
            shard, offset = shard + 1, 0
        return np.concatenate(pieces).astype(np.int32)


class StreamWindows(grain.sources.RandomAccessDataSource):
    """Windows of ``seq_len + 1`` tokens over a streaming split (all shards as one stream);
    neighbours share one token, so the inputs of consecutive windows tile the stream."""

    def __init__(self, split: ShardSplit, seq_len: int):
        if split.blockwise:
            raise ValueError(f"{split.describe()} holds blockwise rows, not a token stream.")
        self._lazy, self._seq = _LazyMaps(split), seq_len
        self._len = max(split.total() - 1, 0) // seq_len

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"StreamWindows({self._lazy.split.describe()}, seq_len={self._seq})"

    def __getitem__(self, index: int) -> np.ndarray:
        start = int(index) * self._seq
        return self._lazy.tokens(start, start + self._seq + 1)


class BlockRows(grain.sources.RandomAccessDataSource):
    """Rows of a blockwise split as ``{"tokens", "loss_mask"}`` of ``seq_len + 1`` int32.

    Rows longer than ``seq_len + 1`` keep their content side (the start when padded on the
    right, the end when padded on the left); a row of exactly ``seq_len`` tokens gets one
    padding token (masked out) on its padding side. Longer sequences are refused.
    """

    def __init__(self, split: ShardSplit, seq_len: int):
        if not split.blockwise:
            raise ValueError(f"{split.describe()} is a token stream, not blockwise rows.")
        check_rows_fit(split.row_len, seq_len, split.directory)
        self._lazy, self._seq = _LazyMaps(split), seq_len

    def __len__(self) -> int:
        return self._lazy.split.total()

    def __repr__(self) -> str:
        return f"BlockRows({self._lazy.split.describe()}, seq_len={self._seq})"

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        shard, row = self._lazy.locate(int(index))
        tokens = np.asarray(self._lazy.maps()[shard][row], dtype=np.int32)
        mask = np.asarray(self._lazy.masks()[shard][row], dtype=np.int32)
        return {"tokens": self._fit(tokens, self._lazy.split.pad_id), "loss_mask": self._fit(mask, 0)}

    def _fit(self, row: np.ndarray, pad: int) -> np.ndarray:
        want, left = self._seq + 1, self._lazy.split.pad_side == "left"
        if len(row) >= want:
            return row[len(row) - want:] if left else row[:want]
        fill = np.full(want - len(row), pad, dtype=row.dtype)
        return np.concatenate([fill, row] if left else [row, fill])


def check_rows_fit(row_len: int, seq_len: int, where: str) -> None:
    """Raises unless rows of ``row_len`` tokens can feed a model of context ``seq_len``."""
    if seq_len > row_len:
        raise ValueError(f"model.seq_len={seq_len} is longer than the {row_len}-token rows of the "
                         f"blockwise shards in {where}; lower model.seq_len to at most {row_len} "
                         f"or tokenize again with Blockwise(seq_len={seq_len + 1}).")


class GlobalOrderSampler:
    """A grain sampler: one shuffled global order of ``num_records``, of which process
    ``rank`` reads rows ``[rank * local, (rank + 1) * local)`` of every ``global_batch``.

    A run therefore sees the same global batches whatever its number of processes (a
    2-process run matches the 1-process run step by step), and with one process it is
    grain's own shuffled ``IndexSampler`` order.
    """

    def __init__(self, num_records: int, global_batch: int, seed: int, rank: int, n_proc: int):
        self._order = grain.samplers.IndexSampler(num_records=num_records, shuffle=True,
                                                  num_epochs=None, seed=seed)
        self._global, self._local, self._rank = global_batch, global_batch // n_proc, rank
        self._repr = (f"GlobalOrderSampler({num_records}, {global_batch}, {seed}, {rank}, "
                      f"{n_proc})")

    def __len__(self) -> int:
        return sys.maxsize

    def __repr__(self) -> str:  # grain compares reprs when restoring an iterator's state
        return self._repr

    def __getitem__(self, index: int) -> grain.RecordMetadata:
        batch, row = divmod(index, self._local)
        meta = self._order[batch * self._global + self._rank * self._local + row]
        return grain.RecordMetadata(index=index, record_key=meta.record_key, rng=meta.rng)
