"""The data configs of an experiment and their grain input pipeline.

The ``data`` field of an experiment is one of:

    TokenizedText(corpus=..., tokenizer=...)   a corpus, tokenized into shards on first use
    Shards(path=..., tokenizer=...)            a directory written by a tokenize job
    Mixture(datasets=(...), weights=(...))     several of those, mixed by weight (mixture.py)

Each ``prepare()``s its shards once (cheap when cached) and serves fixed-length training
records through a grain ``DataLoader`` that shuffles by seed, shards by JAX process, reads in
``worker_count`` processes and has a checkpointable iterator, plus a fixed, ordered set of
validation batches. Streaming records are ``[seq_len + 1]`` token windows, or with
``packing=True`` dicts that keep document boundaries (``packing.py``); blockwise records
are ``{"tokens", "loss_mask"}`` rows (``grain_sources.py``).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import grain
import jax
import numpy as np

from theseus.data import shards
from theseus.data.corpus import Shakespeare
from theseus.data.errors import data_errors
from theseus.data.grain_sources import (
    BlockRows,
    GlobalOrderSampler,
    ShardSplit,
    StreamWindows,
    check_rows_fit,
)
from theseus.data.packing import Packed
from theseus.data.spm import SentencePiece
from theseus.data.styles import Blockwise, Streaming
from theseus.data.tiktoken_files import Tiktoken
from theseus.data.tokenize_job import tokenize
from theseus.data.tokenizers import ByteLevel, HFTokenizerFile, Tokenizer, TrainedBPE

TokenizerSpec = TrainedBPE | HFTokenizerFile | ByteLevel | Tiktoken | SentencePiece


class TokenWindows(grain.sources.RandomAccessDataSource):
    """Windows of ``seq_len + 1`` tokens of an in-memory array; neighbours share one token."""

    def __init__(self, tokens: np.ndarray, seq_len: int):
        self._tokens, self._window = tokens, seq_len + 1
        self._len = (len(tokens) - 1) // seq_len

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:  # grain compares reprs when restoring an iterator's state
        return f"TokenWindows(tokens={len(self._tokens)}, seq_len={self._window - 1})"

    def __getitem__(self, index: int) -> np.ndarray:
        start = int(index) * (self._window - 1)
        return np.asarray(self._tokens[start:start + self._window], dtype=np.int32)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A dataset on disk: its directory, tokenizer and metadata (a mixture: its ``parts``)."""

    path: pathlib.Path
    tokenizer: Tokenizer
    meta: dict
    parts: tuple[Prepared, ...] = ()

    def split(self, split: str) -> ShardSplit:
        """The shard files of ``split``."""
        return ShardSplit.from_meta(self.path, self.meta, split)

    def tokens(self, split: str) -> np.ndarray:
        """All tokens of a streaming ``split`` as one array (memory-mapped when one shard)."""
        s = self.split(split)
        maps = [np.memmap(pathlib.Path(s.directory) / f, dtype=s.dtype, mode="r") for f in s.files]
        return maps[0] if len(maps) == 1 else np.concatenate([np.zeros(0, s.dtype), *maps])


def load_tokenizer(spec: TokenizerSpec, directory: pathlib.Path) -> Tokenizer:
    """The tokenizer ``spec`` names; a trained BPE is read from ``directory``."""
    if isinstance(spec, TrainedBPE):
        return spec.load(directory / "tokenizer.json")
    return spec.load()


def spec_vocab_size(spec: TokenizerSpec) -> int:
    """The vocabulary size of ``spec`` (loading it unless the spec states it)."""
    return spec.vocab_size if isinstance(spec, TrainedBPE) else spec.load().vocab_size


def check_vocab(tokenizer_vocab: int, model_vocab: int, what: str) -> None:
    """Raises if token ids of a ``tokenizer_vocab``-token vocabulary overflow the model's."""
    if model_vocab < tokenizer_vocab:
        raise ValueError(f"model.vocab_size ({model_vocab}) is smaller than the {tokenizer_vocab} "
                         f"tokens of {what}; raise model.vocab_size to at least "
                         f"{tokenizer_vocab}.")


def stack(records: list[Any]) -> Any:
    """Records (arrays or dicts of arrays) stacked into one batch."""
    return jax.tree.map(lambda *rows: np.stack(rows), *records)


def this_process() -> tuple[int, int]:
    """``(index, count)`` of this JAX process."""
    return jax.process_index(), jax.process_count()


def train_loader(source: Any, global_batch: int, seed: int, worker_count: int,
                 worker_buffer_size: int, process: tuple[int, int] | None = None
                 ) -> grain.DataLoader:
    """Shuffled batches of ``global_batch / processes`` records of ``source``, forever; each
    JAX process (``process``: index and count, default this one) reads its rows of every
    global batch (``GlobalOrderSampler``), so the batches do not depend on the process count."""
    rank, n_proc = process or this_process()
    if len(source) < global_batch:
        raise ValueError(f"the training split has only {len(source)} sequences ({source!r}), "
                         f"fewer than trainer.batch_size={global_batch}; use a smaller batch or "
                         f"more data.")
    sampler = GlobalOrderSampler(len(source), global_batch, seed, rank, n_proc)
    local = global_batch // n_proc
    # Reading a memory map is fast: one reading thread with a short buffer is quicker than
    # grain's default (16 threads, 500 records), whose bookkeeping costs more than the reads.
    # Parallelism comes from worker processes.
    return grain.DataLoader(
        data_source=source, sampler=sampler, shard_options=grain.sharding.NoSharding(),
        worker_count=worker_count,
        worker_buffer_size=worker_buffer_size,
        read_options=grain.ReadOptions(num_threads=1, prefetch_buffer_size=2 * local),
        operations=[grain.transforms.Batch(local, drop_remainder=True)])


def val_batches(source: Any, global_batch: int, max_batches: int,
                process: tuple[int, int] | None = None) -> list[Any]:
    """The first ``max_batches`` batches of ``source`` in order (``process``'s rows)."""
    n_batches = min(max_batches, len(source) // global_batch)
    if n_batches == 0:
        raise ValueError(f"the validation split has only {len(source)} sequences, fewer than "
                         f"trainer.batch_size={global_batch}; raise data.val_fraction.")
    rank, n_proc = process or this_process()
    local = global_batch // n_proc
    return [stack([source[b * global_batch + rank * local + i] for i in range(local)])
            for b in range(n_batches)]


class Loaders:
    """The loaders of a data config whose ``source(prepared, split, seq_len)`` gives records
    and whose ``worker_count`` / ``worker_buffer_size`` say how grain reads them."""

    worker_count: int
    worker_buffer_size: int

    def source(self, prepared: Prepared, split: str, seq_len: int) -> Any:
        """The records of ``split``."""
        raise NotImplementedError

    def train_loader(self, prepared: Prepared, seq_len: int, global_batch: int,
                     seed: int) -> grain.DataLoader:
        """Shuffled training batches ``[global_batch / processes, seq_len + 1]``, forever."""
        with data_errors():
            return train_loader(self.source(prepared, "train", seq_len), global_batch, seed,
                                self.worker_count, self.worker_buffer_size)

    def val_batches(self, prepared: Prepared, seq_len: int, global_batch: int,
                    max_batches: int) -> list[Any]:
        """The first ``max_batches`` validation batches in order (this process's rows)."""
        with data_errors():
            return val_batches(self.source(prepared, "val", seq_len), global_batch, max_batches)


@dataclasses.dataclass(frozen=True)
class Served(Loaders):
    """How shards are served: ``packing`` (streaming only) keeps document boundaries;
    ``worker_count`` > 0 reads in that many grain processes, each ``worker_buffer_size``
    batches ahead."""

    packing: bool = False
    worker_count: int = 0
    worker_buffer_size: int = 1

    def __post_init__(self):
        if self.worker_count < 0:
            raise ValueError(f"data.worker_count must be >= 0, got {self.worker_count}.")
        if self.worker_buffer_size < 1:
            raise ValueError(f"data.worker_buffer_size must be at least 1, got "
                             f"{self.worker_buffer_size}.")

    def source(self, prepared: Prepared, split: str, seq_len: int) -> Any:
        """The records of ``split``: windows (packed or not) or blockwise rows."""
        files = prepared.split(split)
        if files.blockwise:
            self.check_packing(True, str(prepared.path))
            return BlockRows(files, seq_len)
        windows = StreamWindows(files, seq_len)
        return Packed(windows, prepared.tokenizer.eot_id) if self.packing else windows

    def check_packing(self, blockwise: bool, where: str) -> None:
        """Raises if ``packing`` is asked of blockwise rows (``where`` names them)."""
        if blockwise and self.packing:
            raise ValueError(f"data.packing applies to streaming shards, but {where} holds "
                             f"blockwise rows (one document each); set data.packing=False.")


@dataclasses.dataclass(frozen=True)
class TokenizedText(Served):
    """A corpus (any document source) tokenized into shards on first use by
    ``tokenize_job.tokenize`` (cached: later runs reuse the shards), served by grain.

    ``style`` is ``Streaming()`` (windows across documents) or ``Blockwise(seq_len=...)``
    (one row per document). ``cache_dir`` defaults to ``$THESEUS_DATA`` or
    ``~/.cache/theseus/data``; ``tokenize_workers`` = 0 encodes with every core.
    """

    corpus: Any = dataclasses.field(default_factory=Shakespeare)
    tokenizer: TokenizerSpec = dataclasses.field(default_factory=TrainedBPE)
    style: Streaming | Blockwise = dataclasses.field(default_factory=Streaming)
    val_fraction: float = 0.05
    cache_dir: str = ""
    tokenize_workers: int = 0

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}.")
        if self.tokenize_workers < 0:
            raise ValueError(f"data.tokenize_workers must be >= 0 (0: every core), got "
                             f"{self.tokenize_workers}.")

    def check(self, seq_len: int, vocab_size: int) -> None:
        """Raises if the tokenizer's ids or the blockwise rows do not fit the model."""
        check_vocab(spec_vocab_size(self.tokenizer), vocab_size, "data.tokenizer")
        if isinstance(self.style, Blockwise):
            self.check_packing(True, "data.style (Blockwise)")
            check_rows_fit(self.style.seq_len, seq_len, "data.style")

    def prepare(self) -> Prepared:
        """Tokenizes the corpus into shards unless that was done before; cheap when cached."""
        with data_errors():
            out = tokenize(self.corpus, self.tokenizer, style=self.style,
                           val_fraction=self.val_fraction, out_root=self.cache_dir or None,
                           workers=self.tokenize_workers)
            return Prepared(out, load_tokenizer(self.tokenizer, out), shards.read_meta(out))


@dataclasses.dataclass(frozen=True)
class Shards(Served):
    """Shards written by a tokenize job in ``path``, read with ``tokenizer`` (which must be
    the tokenizer that wrote them)."""

    path: str = ""
    tokenizer: TokenizerSpec = dataclasses.field(default_factory=TrainedBPE)

    def __post_init__(self):
        super().__post_init__()
        if not self.path:
            raise ValueError("data.path is empty; name the directory a tokenize job wrote.")

    def _meta(self) -> dict:
        return shards.read_meta(pathlib.Path(self.path).expanduser())

    def check(self, seq_len: int, vocab_size: int) -> None:
        """Raises if the shards do not fit the tokenizer named or the model."""
        meta = self._meta()
        check_vocab(int(meta["tokenizer"]["vocab_size"]), vocab_size, f"the shards in {self.path}")
        if meta.get("style") == "blockwise":
            self.check_packing(True, self.path)
            check_rows_fit(int(meta["seq_len"]), seq_len, self.path)
        for split in shards.SPLITS:
            self._check_not_empty(meta, split, seq_len)
        self._check_tokenizer(meta)

    def _check_not_empty(self, meta: dict, split: str, seq_len: int) -> None:
        """Raises if ``split`` holds not one record of ``seq_len + 1`` tokens."""
        info = meta.get("splits", {}).get(split, {})
        tokens = int(info.get("tokens", 0))
        records = (int(info.get("rows", info.get("documents", 0))) if meta.get("style") == "blockwise"
                   else max(tokens - 1, 0) // seq_len)
        if not records:
            hint = "raise val_fraction and tokenize again" if split == "val" else "tokenize more text"
            raise ValueError(f"the {split} split of the shards in {self.path} has no sequence of "
                             f"{seq_len + 1} tokens (it has {tokens} tokens); {hint}, or lower "
                             f"model.seq_len.")

    def _check_tokenizer(self, meta: dict) -> Tokenizer:
        path = pathlib.Path(self.path).expanduser()
        wrote, spec = meta["tokenizer"], self.tokenizer
        if isinstance(spec, TrainedBPE):  # its file is in the dataset: the name must match
            tokenizer = load_tokenizer(spec, path) if wrote.get("name") == spec.name else None
        else:
            tokenizer = load_tokenizer(spec, path)
        if tokenizer is None or (not isinstance(spec, TrainedBPE)
                                 and wrote.get("sha256") != tokenizer.fingerprint()):
            yours = f" (sha256 {tokenizer.fingerprint()[:12]})" if tokenizer else ""
            raise ValueError(f"the shards in {self.path} were written by tokenizer "
                             f"{wrote.get('name')!r} (sha256 {str(wrote.get('sha256'))[:12]}), not "
                             f"by data.tokenizer {spec.name!r}{yours}; set data.tokenizer to the "
                             f"one that wrote them, or tokenize again with yours.")
        return tokenizer

    def prepare(self) -> Prepared:
        """The shards as they are on disk (nothing is written), with their tokenizer."""
        with data_errors():
            meta = self._meta()
            path = pathlib.Path(self.path).expanduser()
            return Prepared(path, self._check_tokenizer(meta), meta)
