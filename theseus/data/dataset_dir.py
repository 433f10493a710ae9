"""A dataset directory while a tokenize job fills it: lock, chunk records, ``meta.json``.

While unfinished, the directory holds the shard files written so far and::

    .lock                       flock held by the job writing it (another one waits)
    progress/job.json           how the source is cut into chunks; other settings start over
    progress/chunk-00003.json   chunk 3's record, written after its shard files

A chunk counts as done iff its record exists: shard files without one (a job killed
between the two writes) are written again. ``finish`` writes ``meta.json`` last,
atomically, from the records in chunk order, then removes ``progress/`` and ``.lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import shutil
from collections.abc import Iterator

from theseus.data.shards import SPLITS
from theseus.fileio import atomic_write_text

PROGRESS = "progress"


@contextlib.contextmanager
def locked(directory: pathlib.Path) -> Iterator[None]:
    """Holds an exclusive ``flock`` on ``directory/.lock``, waiting for another holder; the
    kernel drops it when its process dies, even by SIGKILL."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class DatasetDir:
    """The progress records of an unfinished dataset directory."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.progress = path / PROGRESS

    def start(self, layout: dict, resume: bool = True) -> None:
        """Keeps earlier progress if it was made with the same ``layout`` (and ``resume``);
        otherwise empties the directory and records ``layout``."""
        job = self.progress / "job.json"
        if resume and job.is_file() and json.loads(job.read_text()) == layout:
            return
        for child in self.path.iterdir():
            if child.name != ".lock":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        self.progress.mkdir()
        atomic_write_text(job, json.dumps(layout, sort_keys=True))

    def _record_path(self, index: int) -> pathlib.Path:
        return self.progress / f"chunk-{index:05d}.json"

    def done(self) -> dict[int, dict]:
        """The records of the chunks written so far, by chunk index."""
        return {int(p.stem.split("-")[1]): json.loads(p.read_text())
                for p in self.progress.glob("chunk-*.json")}

    def record(self, rec: dict) -> None:
        """Marks a chunk done (its shard files are already in place)."""
        atomic_write_text(self._record_path(rec["chunk"]), json.dumps(rec))

    def finish(self, meta: dict, records: list[dict], blockwise: bool) -> dict:
        """Writes ``meta.json`` (``meta`` plus the splits totalled from ``records``) and
        removes the progress files; returns the full meta."""
        splits = {}
        for split in SPLITS:
            shards = [r["splits"][split] for r in sorted(records, key=lambda r: r["chunk"])
                      if split in r["splits"]]
            info = {"tokens": sum(s["tokens"] for s in shards),
                    "documents": sum(s["documents"] for s in shards)}
            if blockwise:
                info["rows"] = info["documents"]
            splits[split] = {**info, "shards": shards}
        meta = {**meta, "splits": splits}
        atomic_write_text(self.path / "meta.json", json.dumps(meta, indent=2))
        shutil.rmtree(self.progress, ignore_errors=True)
        (self.path / ".lock").unlink(missing_ok=True)
        return meta
