"""The config that ``test_multiprocess.py`` trains with 1 and with 2 JAX processes.

It is the tiny GPT preset with one change: training batches follow one global order, and
each process reads its slice of every global batch (rows ``[rank * B/P, (rank + 1) * B/P)``),
so a run sees the same batches whatever its number of processes. The shipped loader
instead gives each process its own contiguous part of the data set, which is just as
random but differs with the process count; with it, a 2-process run could not be
compared with a 1-process run step by step.

    uv run launch.py --config=tests/training/multiprocess_worker.py:tiny
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import fiddle as fdl
import grain
import jax
from grain._src.python.record import RecordMetadata

from configs import gpt
from theseus.data.pipeline import Prepared, TokenizedText


class GlobalOrderSampler:
    """A grain sampler: the shuffled global order of ``num_records``, of which this process
    reads rows ``[rank * local, (rank + 1) * local)`` of every ``global_batch``."""

    def __init__(self, num_records: int, global_batch: int, seed: int, rank: int, n_proc: int):
        self._order = grain.samplers.IndexSampler(num_records=num_records, shuffle=True,
                                                  num_epochs=None, seed=seed)
        self._global, self._local, self._rank = global_batch, global_batch // n_proc, rank
        self._repr = (f"GlobalOrderSampler({num_records}, {global_batch}, {seed}, {rank}, "
                      f"{n_proc})")

    def __len__(self) -> int:
        return sys.maxsize

    def __repr__(self) -> str:
        return self._repr

    def __getitem__(self, index: int) -> RecordMetadata:
        batch, row = divmod(index, self._local)
        meta = self._order[batch * self._global + self._rank * self._local + row]
        return RecordMetadata(index=index, record_key=meta.record_key, rng=meta.rng)


@dataclasses.dataclass(frozen=True)
class SameOrderText(TokenizedText):
    """``TokenizedText`` whose training batches do not depend on the number of processes."""

    def train_loader(self, prepared: Prepared, seq_len: int, global_batch: int,
                     seed: int) -> grain.DataLoader:
        """This process's rows of each global batch, in one global shuffled order."""
        source = self.source(prepared, "train", seq_len)
        sampler = GlobalOrderSampler(len(source), global_batch, seed, jax.process_index(),
                                     jax.process_count())
        return grain.DataLoader(
            data_source=source, sampler=sampler, shard_options=grain.sharding.NoSharding(),
            operations=[grain.transforms.Batch(global_batch // jax.process_count(),
                                               drop_remainder=True)])


def tiny() -> fdl.Config[Any]:
    """The tiny GPT preset, reading training batches in a process-count-free order."""
    cfg = gpt.tiny()
    data = cfg.data
    cfg.data = fdl.Config(SameOrderText, **{k: getattr(data, k) for k in data.__arguments__})
    return cfg
