"""The data config of an experiment and its grain input pipeline.

``TokenizedText`` (the ``data`` field of an experiment) prepares a corpus once — trains or
loads the tokenizer, writes the shards — then serves fixed-length training windows through
a grain ``DataLoader`` that shuffles by seed, shards by JAX process and has a checkpointable
iterator, plus a fixed, ordered set of validation batches.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import tempfile

import grain
import jax
import numpy as np

from theseus.data import shards
from theseus.data.corpus import Shakespeare
from theseus.data.tokenizers import HFTokenizer, TrainedBPE


def default_data_root() -> pathlib.Path:
    """``$THESEUS_DATA`` or ``~/.cache/theseus/data``: where prepared datasets live."""
    return pathlib.Path(os.environ.get("THESEUS_DATA", "~/.cache/theseus/data")).expanduser()


class TokenWindows(grain.sources.RandomAccessDataSource):
    """Windows of ``seq_len + 1`` tokens (inputs, shifted targets); neighbours share one token."""

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
    """A dataset on disk: its directory, tokenizer and metadata."""

    path: pathlib.Path
    tokenizer: HFTokenizer
    meta: dict

    def tokens(self, split: str) -> np.ndarray:
        """Memory-mapped tokens of ``split``."""
        return shards.load_tokens(self.path, split)


@dataclasses.dataclass(frozen=True)
class TokenizedText:
    """A text corpus tokenized into shards and served by grain.

    ``cache_dir`` defaults to ``$THESEUS_DATA`` or ``~/.cache/theseus/data``.
    ``worker_count`` > 0 reads batches in that many grain worker processes.
    """

    corpus: Shakespeare = dataclasses.field(default_factory=Shakespeare)
    tokenizer: TrainedBPE = dataclasses.field(default_factory=TrainedBPE)
    val_fraction: float = 0.05
    cache_dir: str = ""
    worker_count: int = 0

    def __post_init__(self):
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}.")
        if self.worker_count < 0:
            raise ValueError(f"data.worker_count must be >= 0, got {self.worker_count}.")

    def dataset_dir(self, fingerprint: str) -> pathlib.Path:
        """Where this corpus, tokenizer and split live on disk."""
        root = pathlib.Path(self.cache_dir).expanduser() if self.cache_dir else default_data_root()
        name = type(self.corpus).__name__.lower()
        return root / f"{name}-{fingerprint}-{self.tokenizer.name}-val{self.val_fraction:g}"

    def prepare(self) -> Prepared:
        """Tokenizes the corpus into shards unless that was done before; cheap when cached."""
        out = self.dataset_dir(self.corpus.fingerprint())
        if not (out / "meta.json").exists():
            self._build(list(self.corpus.documents()), out)
        return Prepared(out, HFTokenizer(out / "tokenizer.json", self.tokenizer.name),
                        json.loads((out / "meta.json").read_text()))

    def _build(self, docs: list[tuple[str, str]], out: pathlib.Path) -> None:
        splits = shards.assign_splits(docs, self.val_fraction)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            tok_path = pathlib.Path(tmp) / "tokenizer.json"
            tok = self.tokenizer.load_or_train((docs[i][1] for i in splits["train"]), tok_path)
            try:
                shards.write_dataset(out, tok_path, tok, docs, splits,
                                     source=type(self.corpus).__name__)
            except OSError:
                if not (out / "meta.json").exists():  # another process may have won the race
                    raise

    def train_loader(self, prepared: Prepared, seq_len: int, global_batch: int,
                     seed: int) -> grain.DataLoader:
        """Shuffled training batches ``[global_batch / processes, seq_len + 1]``, forever."""
        source = TokenWindows(prepared.tokens("train"), seq_len)
        n_proc = jax.process_count()
        if len(source) < global_batch:
            raise ValueError(f"the training split has only {len(source)} windows of "
                             f"{seq_len + 1} tokens, fewer than trainer.batch_size={global_batch}.")
        shard = grain.sharding.ShardOptions(shard_index=jax.process_index(), shard_count=n_proc,
                                            drop_remainder=True)
        sampler = grain.samplers.IndexSampler(num_records=len(source), shard_options=shard,
                                              shuffle=True, num_epochs=None, seed=seed)
        return grain.DataLoader(
            data_source=source, sampler=sampler, worker_count=self.worker_count,
            operations=[grain.transforms.Batch(global_batch // n_proc, drop_remainder=True)])

    def val_batches(self, prepared: Prepared, seq_len: int, global_batch: int,
                    max_batches: int) -> list[np.ndarray]:
        """The first ``max_batches`` validation batches in order (this process's rows)."""
        source = TokenWindows(prepared.tokens("val"), seq_len)
        n_batches = min(max_batches, len(source) // global_batch)
        if n_batches == 0:
            raise ValueError(f"the validation split has only {len(source)} windows, fewer than "
                             f"trainer.batch_size={global_batch}; raise data.val_fraction.")
        n_proc, rank = jax.process_count(), jax.process_index()
        local = global_batch // n_proc
        return [np.stack([source[b * global_batch + rank * local + i] for i in range(local)])
                for b in range(n_batches)]
