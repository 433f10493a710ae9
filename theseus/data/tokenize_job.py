"""Tokenize jobs: a source and a tokenizer into token shards (``theseus-tokens-v2``).

``tokenize(source, tokenizer, style=..., val_fraction=...)`` returns the dataset directory,
at once if it is complete, resuming it if a job was interrupted::

    1. name the directory by a hash of everything that changes its bytes (source fingerprint,
       tokenizer identity, style and settings, val_fraction): another tokenizer never
       reuses stale shards
    2. lock it; a trained tokenizer (TrainedBPE) is trained on the train split first
    3. cut the source into chunks of consecutive documents; encode the chunks not done yet in
       worker processes; each chunk's shards, then its record, are written atomically
    4. write meta.json from the records (the dataset is complete from then on)

A *source* has ``documents() -> Iterator[(id, text)]`` (text may be UTF-8 bytes),
``fingerprint()`` and ``describe()``; ``num_documents()`` or ``len()``, if it has one, gives
the progress bar its ETA. ``TokenizeJob`` is the same as an experiment for ``launch.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import re
import shutil
import time
from collections.abc import Iterator
from typing import Any

from tqdm import tqdm

from theseus.data.dataset_dir import DatasetDir, locked
from theseus.data.encode_pool import Chunk, ChunkEncoder, EncodeTask, document_text, encode_in_order
from theseus.data.shards import FORMAT, default_data_root, split_of, token_dtype
from theseus.data.styles import Blockwise, Streaming

__all__ = ["Blockwise", "Streaming", "TokenizeJob", "TokenizeResult", "tokenize"]

CHUNK_DOCUMENTS = 1024      # a chunk ends after this many documents ...
CHUNK_CHARS = 4 * 2**20     # ... or this many characters of text, whichever comes first
STREAMING = Streaming()


@dataclasses.dataclass(frozen=True)
class TokenizeResult:
    """A finished dataset and how this call made it (``encoded_tokens`` 0 if it was cached)."""

    path: pathlib.Path
    meta: dict
    seconds: float
    encoded_tokens: int
    resumed_chunks: int


def check_source(source: Any) -> None:
    """Refuses an object that is not a source, in one sentence."""
    missing = [m for m in ("documents", "fingerprint", "describe")
               if not callable(getattr(source, m, None))]
    if missing:
        raise ValueError(f"{type(source).__name__} is not a document source: it lacks "
                         f"{', '.join(f'{m}()' for m in missing)}.")


def source_size(source: Any) -> int | None:
    """How many documents the source says it has, if it knows."""
    for probe in (getattr(source, "num_documents", None), getattr(source, "__len__", None)):
        size = probe() if callable(probe) else None
        if size is not None:
            return int(size)
    return None


def _tokenizer_identity(spec: Any) -> tuple[Any, str]:
    """The loaded tokenizer (``None`` if it is trained by the job) and a string that changes
    whenever the tokens it produces can."""
    if hasattr(spec, "load_or_train"):
        fields = dataclasses.asdict(spec) if dataclasses.is_dataclass(spec) else repr(spec)
        return None, json.dumps({"trained": type(spec).__name__, "spec": fields}, sort_keys=True)
    tok = spec.load()
    return tok, tok.fingerprint()


def dataset_name(source: Any, spec: Any, tokenizer_identity: str, style: Streaming | Blockwise,
                 val_fraction: float) -> str:
    """``<source>-<tokenizer>-<style>-<hash>``, the hash covering everything that changes
    the output."""
    key = {"format": FORMAT, "source": [type(source).__name__, source.fingerprint()],
           "tokenizer": [type(spec).__name__, tokenizer_identity],
           "style": [style.name, dataclasses.asdict(style)], "val_fraction": val_fraction}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    tok_name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(getattr(spec, "name", type(spec).__name__)))
    return f"{type(source).__name__.lower()}-{tok_name}-{style.name}-{digest[:12]}"


def chunks_of(source: Any, chunk_documents: int, chunk_chars: int) -> Iterator[Chunk]:
    """Consecutive documents of ``source`` in chunks, numbered from 0."""
    buf: list[tuple[str, str | bytes]] = []
    size, index = 0, 0
    for item in source.documents():
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], (str, bytes))):
            raise ValueError(f"{source.describe()} yielded {item!r:.60}; a source must yield "
                             f"(document id, text) pairs.")
        buf.append((str(item[0]), item[1]))
        size += len(item[1])
        if len(buf) >= chunk_documents or size >= chunk_chars:
            yield index, buf
            buf, size, index = [], 0, index + 1
    if buf:
        yield index, buf


def _train_texts(source: Any, val_fraction: float, counts: dict[str, int]) -> Iterator[str]:
    """The non-empty texts of the train split, counting every document into ``counts``."""
    where = source.describe()
    for name, raw in source.documents():
        text = document_text(str(name), raw, where)
        counts["all"] += bool(text)
        if text and split_of(str(name), text, val_fraction) == "train":
            counts["train"] += 1
            yield text


def _train_tokenizer(spec: Any, source: Any, val_fraction: float, path: pathlib.Path) -> Any:
    """A trained tokenizer (``TrainedBPE``): read from ``path``, or trained on the train
    split of ``source`` and written there."""
    counts = {"all": 0, "train": 0}
    tok = spec.load_or_train(_train_texts(source, val_fraction, counts), path)
    if counts["all"] and not counts["train"]:
        raise ValueError(f"all {counts['all']} documents of {source.describe()} fell in the val "
                         f"split, so {type(spec).__name__} has nothing to train on; lower "
                         f"val_fraction.")
    return tok


def _empty_corpus(source: Any) -> ValueError:
    return ValueError(f"{source.describe()} has no documents with text; check the path or "
                      f"pattern it reads and that its files are not empty.")


def spec_record(spec: Any) -> dict[str, Any] | None:
    """What ``meta.json`` records of a tokenizer spec so that its config can be rebuilt
    (``train_on.tokenizer_config``): the class and its fields; ``None`` if not a dataclass."""
    if not dataclasses.is_dataclass(spec):
        return None
    cls = type(spec)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "fields": dataclasses.asdict(spec)}


def _base_meta(source: Any, spec: Any, tok: Any, style: Streaming | Blockwise,
               val_fraction: float) -> dict:
    """``meta.json`` without its splits."""
    from theseus.data.styles import pad_id

    return {"format": FORMAT, "style": style.name, **style.settings(),
            "tokenizer": {"name": tok.name, "kind": type(spec).__name__, "sha256": tok.fingerprint(),
                          "vocab_size": tok.vocab_size, "eot_id": tok.eot_id, "pad_id": pad_id(tok),
                          "spec": spec_record(spec)},
            "dtype": token_dtype(tok.vocab_size).name,
            "source": {"kind": type(source).__name__, "fingerprint": source.fingerprint(),
                       "description": source.describe()},
            "val_fraction": val_fraction}


def _check_args(source: Any, style: Any, val_fraction: float, workers: int) -> None:
    check_source(source)
    if not isinstance(style, (Streaming, Blockwise)):
        raise ValueError(f"style must be Streaming() or Blockwise(seq_len=...), got "  # noqa: TRY004
                         f"{type(style).__name__}.")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0: one per CPU core), got {workers}.")


def _check_not_in_worker_start() -> None:
    """Refuses to run while a spawned worker imports the main script: without the
    ``if __name__ == "__main__":`` guard it would wait forever for its parent's lock."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError("tokenize() ran again inside a worker process that was importing your "
                           "script; call it under `if __name__ == \"__main__\":`, as "
                           "multiprocessing requires.")


def run_tokenize(source: Any, tokenizer: Any, *, style: Streaming | Blockwise = STREAMING,
                 val_fraction: float = 0.05, out_root: str | pathlib.Path | None = None,
                 workers: int = 0, progress: bool = True, resume: bool = True,
                 chunk_documents: int = CHUNK_DOCUMENTS,
                 chunk_chars: int = CHUNK_CHARS) -> TokenizeResult:
    """``tokenize``, returning how the dataset was made as well (see ``TokenizeResult``);
    ``resume=False`` discards an interrupted job's progress, and ``chunk_documents`` /
    ``chunk_chars`` say where chunks (and shard files) end."""
    started = time.time()
    _check_not_in_worker_start()
    _check_args(source, style, val_fraction, workers)
    tok, identity = _tokenizer_identity(tokenizer)
    root = pathlib.Path(out_root).expanduser() if out_root else default_data_root()
    out = root / dataset_name(source, tokenizer, identity, style, val_fraction)
    if (out / "meta.json").is_file():
        return TokenizeResult(out, json.loads((out / "meta.json").read_text()), 0.0, 0, 0)
    with locked(out):
        if (out / "meta.json").is_file():  # another process finished it while we waited
            return TokenizeResult(out, json.loads((out / "meta.json").read_text()), 0.0, 0, 0)
        job = DatasetDir(out)
        job.start({"chunk_documents": chunk_documents, "chunk_chars": chunk_chars}, resume)
        try:
            tok_path = ""
            if tok is None:
                tok_path = str(out / "tokenizer.json")
                tok = _train_tokenizer(tokenizer, source, val_fraction, pathlib.Path(tok_path))
            task = EncodeTask(tokenizer, tok_path, style, val_fraction, str(out), source.describe())
            records, encoded, resumed = _encode(
                source, ChunkEncoder(task, tok), job, workers or os.cpu_count() or 1, progress,
                chunk_documents, chunk_chars)
            if not any(r["splits"] for r in records):
                raise _empty_corpus(source)
            meta = job.finish(_base_meta(source, tokenizer, tok, style, val_fraction), records,
                              isinstance(style, Blockwise))
        except ValueError:  # bad data: these shards can never be finished, so drop them
            shutil.rmtree(out, ignore_errors=True)
            raise
    return TokenizeResult(out, meta, time.time() - started, encoded, resumed)


def _encode(source: Any, encoder: ChunkEncoder, job: DatasetDir, workers: int, progress: bool,
            chunk_documents: int, chunk_chars: int) -> tuple[list[dict], int, int]:
    """Encodes the chunks not done yet; returns every record, the tokens encoded now and how
    many chunks were already done."""
    done = job.done()
    records: list[dict] = []
    encoded = 0
    bar = tqdm(total=source_size(source), unit="doc", desc="tokenize", disable=not progress,
               dynamic_ncols=True, smoothing=0.1)
    started = time.time()

    def todo() -> Iterator[Chunk]:
        for index, docs in chunks_of(source, chunk_documents, chunk_chars):
            if index in done:
                records.append(done[index])
                bar.update(len(docs))
            else:
                yield index, docs

    with bar:
        for rec in encode_in_order(encoder, todo(), workers):
            records.append(rec)
            encoded += sum(s["tokens"] for s in rec["splits"].values())
            bar.update(rec["documents"])
            rate = encoded / max(time.time() - started, 1e-9)
            bar.set_postfix_str(f"{encoded:,} tokens, {rate:,.0f} tok/s", refresh=False)
    return records, encoded, len(done)


def tokenize(source: Any, tokenizer: Any, *, style: Streaming | Blockwise = STREAMING,
             val_fraction: float = 0.05, out_root: str | pathlib.Path | None = None,
             workers: int = 0, progress: bool = True) -> pathlib.Path:
    """Tokenizes ``source`` with the ``tokenizer`` spec into a dataset directory under
    ``out_root`` (default ``$THESEUS_DATA``) and returns it; see the module docstring.
    ``workers`` = 0 uses one process per CPU core. Workers are spawned, so a script that
    calls this needs the ``if __name__ == "__main__":`` guard."""
    return run_tokenize(source, tokenizer, style=style, val_fraction=val_fraction,
                        out_root=out_root, workers=workers, progress=progress).path


@dataclasses.dataclass(frozen=True)
class TokenizeJob:
    """A tokenize job as an experiment: ``launch.py --config=configs/tokenize.py:NAME``.

    ``out_root`` defaults to ``$THESEUS_DATA`` (or ``~/.cache/theseus/data``); ``workers``
    = 0 uses one process per CPU core. The workdir gets ``config.json`` and ``summary.json``.
    """

    source: Any
    tokenizer: Any
    style: Streaming | Blockwise = dataclasses.field(default_factory=Streaming)
    val_fraction: float = 0.05
    out_root: str = ""
    workers: int = 0
    progress: bool = True

    def validate(self) -> None:
        """Checks the settings, the source's files and the tokenizer (a missing or altered
        file fails here, before anything is written); raises ValueError."""
        _check_args(self.source, self.style, self.val_fraction, self.workers)
        self.source.fingerprint()  # a missing file or a glob that matches nothing fails here
        if not hasattr(self.tokenizer, "load_or_train"):
            self.tokenizer.load()

    def run(self, workdir: pathlib.Path | str, started_at: float | None = None,
            from_scratch: bool = False) -> dict[str, Any]:
        """Tokenizes (resuming an interrupted job unless ``from_scratch``) and returns the
        summary, also written to ``workdir/summary.json``. Bad data raises ``ConfigError``."""
        from theseus.config import ConfigError
        from theseus.fileio import atomic_write_text

        workdir = pathlib.Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            result = run_tokenize(self.source, self.tokenizer, style=self.style,
                                  val_fraction=self.val_fraction, out_root=self.out_root or None,
                                  workers=self.workers, progress=self.progress,
                                  resume=not from_scratch)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        splits = result.meta["splits"]
        summary = {"dataset_dir": str(result.path), "style": result.meta["style"],
                   "tokenizer": result.meta["tokenizer"]["name"],
                   "tokens": sum(s["tokens"] for s in splits.values()),
                   "documents": sum(s["documents"] for s in splits.values()),
                   **{f"{k}_tokens": s["tokens"] for k, s in splits.items()},
                   "encoded_tokens": result.encoded_tokens, "resumed_chunks": result.resumed_chunks,
                   "seconds": round(result.seconds, 3),
                   "tokens_per_second": (round(result.encoded_tokens / result.seconds)
                                         if result.encoded_tokens and result.seconds else None)}
        atomic_write_text(workdir / "summary.json", json.dumps(summary, indent=2))
        return summary


def describe_summary(summary: dict[str, Any], workdir: pathlib.Path) -> str:
    """What ``launch.py`` prints after a tokenize job."""
    counts = (f"{summary['documents']:,} documents, {summary['tokens']:,} tokens (train "
              f"{summary['train_tokens']:,}, val {summary['val_tokens']:,})")
    if summary["tokens_per_second"] is None:
        head = f"already tokenized: {counts}"
    else:
        head = (f"tokenized {counts} in {summary['seconds']:.1f} s, "
                f"{summary['tokens_per_second']:,} tokens/s")
        if summary["resumed_chunks"]:
            head += f" (resumed: {summary['resumed_chunks']} chunks were already done)"
    if not summary["val_tokens"]:
        head += "\nthe val split is empty: no document hashed into it; raise val_fraction for one"
    return "\n".join([head, f"dataset directory: {summary['dataset_dir']}",
                      f"run directory: {workdir} (config.json, summary.json)"])
