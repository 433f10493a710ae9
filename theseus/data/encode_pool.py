"""Encoding chunks of documents into shard files, in this process or in a pool of them.

A *chunk* is a run of consecutive documents of the source. ``ChunkEncoder.encode`` splits a
chunk by document hash into train and val, encodes each part with the job's style, writes
its shard files atomically, then its record (file names and counts), and returns the record.
``encode_in_order`` hands chunks to worker processes (spawned: JAX may already be imported
here, and forking it is unsafe), keeps a bounded number in flight, and yields the records in
chunk order; a worker that dies (out of memory, say) raises ``BrokenProcessPool`` rather than
hanging the job.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import multiprocessing
import os
import pathlib
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from theseus.data.dataset_dir import DatasetDir
from theseus.data.shards import SPLITS, shard_file, split_of, token_dtype
from theseus.data.styles import Blockwise, Streaming
from theseus.fileio import atomic_write_bytes

Chunk = tuple[int, list[tuple[str, str | bytes]]]


def document_text(name: str, text: str | bytes, where: str) -> str:
    """A document's text as ``str``; bytes that are not UTF-8 are refused, naming the byte."""
    if isinstance(text, str):
        return text
    try:
        return bytes(text).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"document {name!r} of {where} is not UTF-8: byte {e.start} is "
                         f"{bytes(text)[e.start:e.start + 1]!r}; convert it to UTF-8 (e.g. with "
                         f"iconv) or drop it from the source.") from None


def load_tokenizer(spec: Any, path: str = "") -> Any:
    """The ``Tokenizer`` of a spec; a trained one (``TrainedBPE``) is read from ``path``."""
    return spec.load(pathlib.Path(path)) if hasattr(spec, "load_or_train") else spec.load()


@dataclasses.dataclass(frozen=True)
class EncodeTask:
    """Everything a worker needs to encode chunks; picklable."""

    tokenizer: Any                  # the spec (a frozen dataclass)
    tokenizer_path: str             # tokenizer.json of a trained tokenizer, else ""
    style: Streaming | Blockwise
    val_fraction: float
    out_dir: str
    where: str                      # the source's description, for error messages


class ChunkEncoder:
    """Encodes chunks for one task with one loaded tokenizer."""

    def __init__(self, task: EncodeTask, tokenizer: Any = None):
        self.task = task
        self.tokenizer = tokenizer or load_tokenizer(task.tokenizer, task.tokenizer_path)
        self.dtype = token_dtype(self.tokenizer.vocab_size)
        self.parent_pid: int | None = None  # in a worker: the job's process

    def _check_parent(self) -> None:
        """A worker whose job was killed writes nothing more: a new job may own the dir."""
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            raise SystemExit(0)

    def encode(self, chunk: Chunk) -> dict:
        """Writes chunk ``index``'s shards, then its record, and returns the record
        (``documents`` counts what the source gave, ``splits`` what was written; empty
        documents are skipped). Workers record their chunks themselves, so a chunk is kept
        even while the parent waits on a slow source."""
        index, docs = chunk
        parts: dict[str, list[tuple[str, str]]] = {s: [] for s in SPLITS}
        for name, raw in docs:
            text = document_text(name, raw, self.task.where)
            if text:
                parts[split_of(name, text, self.task.val_fraction)].append((name, text))
        out = pathlib.Path(self.task.out_dir)
        self._check_parent()
        splits = {}
        for split, part in parts.items():
            if not part:
                continue
            enc = self.task.style.encode(self.tokenizer, part, self.dtype)
            entry = {"file": shard_file(split, index), "tokens": int(enc.num_tokens),
                     "documents": enc.documents}
            if enc.mask is not None:
                entry["mask"] = shard_file(split, index, mask=True)
                atomic_write_bytes(out / entry["mask"], memoryview(np.ascontiguousarray(enc.mask)))
            atomic_write_bytes(out / entry["file"], memoryview(np.ascontiguousarray(enc.tokens)))
            splits[split] = entry
        record = {"chunk": index, "documents": len(docs), "splits": splits}
        self._check_parent()
        DatasetDir(out).record(record)  # after the shards: a record means the chunk is done
        return record


_WORKER: ChunkEncoder | None = None


def _init_worker(task: EncodeTask) -> None:
    """Loads the tokenizer once per worker process, single-threaded (the pool is the
    parallelism), and watches the job's process."""
    global _WORKER
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER = ChunkEncoder(task)
    _WORKER.parent_pid = os.getppid()
    threading.Thread(target=_exit_with_parent, args=(_WORKER.parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    """Ends this worker soon after its job dies (even by SIGKILL), instead of waiting forever
    for chunks that will never come."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(0)


def _encode_in_worker(chunk: Chunk) -> dict:
    assert _WORKER is not None, "worker was not initialised"
    return _WORKER.encode(chunk)


def encode_in_order(encoder: ChunkEncoder, chunks: Iterable[Chunk], workers: int) -> Iterator[dict]:
    """Records of ``chunks`` in order; ``workers`` > 1 encodes in that many processes (but
    only when there is more than one chunk), otherwise here with ``encoder``."""
    chunks = iter(chunks)
    head = list(itertools.islice(chunks, 2))
    if workers <= 1 or len(head) < 2:
        for chunk in itertools.chain(head, chunks):
            yield encoder.encode(chunk)
        return
    limit = 2 * workers
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
        initargs=(encoder.task,))
    try:
        pending: collections.deque = collections.deque()
        for chunk in itertools.chain(head, chunks):
            pending.append(pool.submit(_encode_in_worker, chunk))
            while len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # on an error, let the running chunks finish; drop the queued ones
        pool.shutdown(wait=True, cancel_futures=True)
