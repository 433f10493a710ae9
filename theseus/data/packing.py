"""Sequence packing that keeps document boundaries.

A streaming window holds several documents joined by the end-of-text token. Packed, it
becomes ``{"tokens", "segment_ids", "positions"}``: a new segment starts at every
end-of-text token (it opens the next document, as it does when sampling starts from it),
segment ids count from 1 in each row (0 is reserved for padding), and positions restart
at 0 with each segment. A model that attends only within a segment then computes, for a
document packed after others, exactly what it computes for that document alone.
"""

from __future__ import annotations

from typing import Any

import grain
import numpy as np


def document_segments(tokens: np.ndarray, eot_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``(segment_ids, positions)`` of a row of ``tokens``: both int32, of its length."""
    index = np.arange(len(tokens), dtype=np.int32)
    starts = tokens == eot_id
    starts[0] = True
    segment_ids = np.cumsum(starts, dtype=np.int32)
    last_start = np.maximum.accumulate(np.where(starts, index, 0))
    return segment_ids, (index - last_start).astype(np.int32)


def pack(tokens: np.ndarray, eot_id: int) -> dict[str, np.ndarray]:
    """The packed record of one window of tokens."""
    segment_ids, positions = document_segments(tokens, eot_id)
    return {"tokens": tokens, "segment_ids": segment_ids, "positions": positions}


class Packed(grain.sources.RandomAccessDataSource):
    """A source of token windows, each returned packed (``pack``)."""

    def __init__(self, source: Any, eot_id: int):
        self._source, self._eot = source, eot_id

    def __len__(self) -> int:
        return len(self._source)

    def __repr__(self) -> str:
        return f"Packed({self._source!r}, eot_id={self._eot})"

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return pack(self._source[index], self._eot)
