"""Weighted mixtures of datasets: ``Mixture(datasets=(...), weights=(...))``.

The mixed source is grain's ``MapDataset.mix`` (a deterministic weighted interleave) over
the components' records, so a mixture is random-access like any other source: the loader
shuffles it by seed, shards it by process and checkpoints its position the same way.

One training epoch of a mixture is long enough that every component is read whole at
least once: the component with the fewest records per unit of weight is read exactly once,
the others are repeated to keep the proportions (the loader shuffles the whole epoch, so
the components need no shuffle of their own). Validation mixes
the components' validation records in order, each at most once.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Any

import grain

from theseus.data.errors import data_errors
from theseus.data.pipeline import Loaders, Prepared, Shards, TokenizedText


class MixtureSource(grain.sources.RandomAccessDataSource):
    """Records of ``sources`` mixed in proportion to ``weights``.

    With ``cover_all`` (training) the mixture is as long as it takes to read every source at
    least once; without it (validation) as long as no source repeats.
    """

    def __init__(self, sources: list[Any], weights: tuple[float, ...], cover_all: bool):
        total = sum(weights)
        shares = [w / total for w in weights]
        per_share = [len(s) / share for s, share in zip(sources, shares)]
        length = math.ceil(max(per_share)) if cover_all else math.floor(min(per_share))
        parts = []
        for src, share in zip(sources, shares):
            part = grain.MapDataset.source(src)
            if cover_all:
                repeats = math.ceil(share * length / len(src)) + 1
                part = part.repeat(repeats)
            parts.append(part)
        self._mixed = grain.MapDataset.mix(parts, list(weights))[:length]
        self._desc = f"[{', '.join(map(repr, sources))}], weights={tuple(weights)}"
        self._len = length

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"MixtureSource({self._desc}, length={self._len})"

    def __getitem__(self, index: int) -> Any:
        return self._mixed[int(index)]


def record_kind(record: Any) -> str:
    """``tokens`` for a bare window, else the sorted keys of a dict record."""
    return ", ".join(sorted(record)) if isinstance(record, dict) else "tokens"


@dataclasses.dataclass(frozen=True)
class Mixture(Loaders):
    """``datasets`` (``TokenizedText`` or ``Shards``, sharing one tokenizer and record kind)
    mixed by ``weights``. The mixture's own ``worker_count`` and ``worker_buffer_size`` read
    it; those of its components are not used."""

    datasets: tuple[TokenizedText | Shards, ...] = ()
    weights: tuple[float, ...] = ()
    worker_count: int = 0
    worker_buffer_size: int = 1

    def __post_init__(self):
        object.__setattr__(self, "datasets", tuple(self.datasets))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if len(self.datasets) < 1 or len(self.weights) != len(self.datasets):
            raise ValueError(f"data.weights must give one weight per dataset of data.datasets; "
                             f"got {len(self.weights)} weights for {len(self.datasets)} datasets.")
        if not all(math.isfinite(w) and w > 0 for w in self.weights):
            raise ValueError(f"data.weights must all be positive, got {list(self.weights)}.")
        if self.worker_count < 0 or self.worker_buffer_size < 1:
            raise ValueError(f"data.worker_count must be >= 0 and data.worker_buffer_size >= 1, "
                             f"got {self.worker_count} and {self.worker_buffer_size}.")

    @property
    def tokenizer(self) -> Any:
        """The tokenizer spec of the first component (all must write the same tokens)."""
        return self.datasets[0].tokenizer

    def check(self, seq_len: int, vocab_size: int) -> None:
        """Checks every component against the model."""
        for i, data in enumerate(self.datasets):
            try:
                data.check(seq_len, vocab_size)
            except ValueError as e:
                raise ValueError(f"data.datasets[{i}]: {e}") from None

    def prepare(self) -> Prepared:
        """Prepares every component; they must share one tokenizer."""
        with data_errors():
            return self._prepare()

    def _prepare(self) -> Prepared:
        parts = tuple(d.prepare() for d in self.datasets)
        prints = [p.tokenizer.fingerprint() for p in parts]
        for i, p in enumerate(prints[1:], 1):
            if p != prints[0]:
                raise ValueError(f"data.datasets[{i}] uses tokenizer {parts[i].tokenizer.name!r}, "
                                 f"not {parts[0].tokenizer.name!r} like data.datasets[0]; a mixture "
                                 f"needs one tokenizer: tokenize every dataset with the same one.")
        meta = {"mixture": [{"path": str(p.path), "meta": p.meta} for p in parts],
                "weights": list(self.weights)}
        return Prepared(pathlib.Path(parts[0].path), parts[0].tokenizer, meta, parts)

    def source(self, prepared: Prepared, split: str, seq_len: int) -> MixtureSource:
        """The components' records of ``split`` mixed by weight (the loaders read this; a
        training epoch covers every component, validation reads each once, in order)."""
        sources = [d.source(p, split, seq_len) for d, p in zip(self.datasets, prepared.parts)]
        kinds = [record_kind(s[0]) if len(s) else "" for s in sources]
        for i, (src, kind) in enumerate(zip(sources, kinds)):
            if not len(src):
                raise ValueError(f"data.datasets[{i}] has no {split} sequences of "
                                 f"{seq_len + 1} tokens; give it more data or drop it.")
            if kind != kinds[0]:
                raise ValueError(f"data.datasets[{i}] gives records of ({kind}), but "
                                 f"data.datasets[0] gives ({kinds[0]}); mix only datasets of one "
                                 f"style with the same data.packing.")
        return MixtureSource(sources, self.weights, cover_all=split == "train")


