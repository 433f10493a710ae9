"""seqio Tasks and Mixtures: as a source of documents, and as a direct feed of training.

``SeqioTask`` yields the raw text of a Task (or of every Task in a Mixture): the Task's data
source followed by its preprocessors up to, not including, the first one that tokenizes.
That is the text exactly as the Task would have tokenized it, so any theseus tokenizer can
write it to shards; decoding the Task's tokens instead would lose what its vocabulary cannot
represent (unknown pieces, normalization).

``SeqioData`` is a ``data`` config that feeds training from a Task's or Mixture's token
stream (feature ``feature``, the Task's own vocabulary): examples are joined with the
end-of-text id and cut into windows of ``seq_len + 1`` tokens, as ``TokenizedText`` does
with shards. Its iterator has grain's ``get_state``/``set_state``, so the Checkpointer saves
its position; a restored iterator rebuilds the (seeded, deterministic) tf.data pipeline,
skips the examples already read and continues at exactly the next token.

TensorFlow is imported only when data is read; name the modules that register the Tasks in
``modules`` so that a fresh process (a resumed run, a tokenize job) finds them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import pathlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from theseus.data.errors import DataError, data_errors
from theseus.data.sources import decode_utf8
from theseus.data.tfds_source import tensorflow_off_gpus
from theseus.data.tokenizers import digest


def _seqio() -> Any:
    """seqio, imported on first use, with TensorFlow kept off GPUs (JAX owns them)."""
    tensorflow_off_gpus()
    import seqio

    return seqio


def provider(name: str, modules: Sequence[str]) -> Any:
    """The registered seqio Task or Mixture ``name``, after importing ``modules``."""
    for module in modules:
        importlib.import_module(module)
    seqio = _seqio()
    try:
        return seqio.get_mixture_or_task(name)
    except ValueError:
        known = sorted(seqio.TaskRegistry.names()) + sorted(seqio.MixtureRegistry.names())
        raise ValueError(f"no seqio Task or Mixture is registered as {name!r} (known: "
                         f"{', '.join(known[:20]) or 'none'}); name the module that registers "
                         f"it in modules=(...).") from None


def _check_split(task: Any, split: str) -> None:
    if split not in task.splits:
        raise ValueError(f"seqio {type(task).__name__} {task.name!r} has no split {split!r} "
                         f"(it has: {', '.join(task.splits)}).")


def _text_dataset(task: Any, split: str, text_feature: str) -> Any:
    """The Task's source with its preprocessors up to the first tokenizing one, in order."""
    seqio = _seqio()
    _check_split(task, split)
    ds = task.source.get_dataset(split=split, shuffle=False)
    steps = []
    for step in task.preprocessors:
        if "tokenize" in seqio.utils.function_name(step):
            break
        if not isinstance(step, seqio.CacheDatasetPlaceholder):
            steps.append(step)
    ds = task._preprocess_dataset(ds, steps)
    spec = ds.element_spec if isinstance(ds.element_spec, dict) else {}
    if text_feature not in spec or spec[text_feature].dtype.name != "string":
        raise ValueError(f"seqio Task {task.name!r} has no text feature {text_feature!r} before "
                         f"tokenization (it has: {', '.join(sorted(spec)) or 'no named features'}); "
                         f"set text_feature.")
    return ds


@dataclasses.dataclass(frozen=True)
class SeqioTask:
    """The raw text of a seqio Task, or of every Task of a Mixture in turn (mixing rates
    apply only when a Mixture feeds training through ``SeqioData``)."""

    name: str
    split: str = "train"
    text_feature: str = "text"
    modules: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "modules", tuple(self.modules))

    def _tasks(self) -> list[Any]:
        found = provider(self.name, self.modules)
        return list(getattr(found, "tasks", [found]))

    def documents(self) -> Iterator[tuple[str, str]]:
        """Yields ``(task/split:index, text)`` in the Tasks' unshuffled order."""
        count = 0
        for task in self._tasks():
            ds = _text_dataset(task, self.split, self.text_feature)
            for i, example in enumerate(ds.as_numpy_iterator()):
                where = f"{task.name}/{self.split}:{i}"
                count += 1
                yield where, decode_utf8(example[self.text_feature], f"seqio example {where}")
        if count == 0:
            raise ValueError(f"the source {self.describe()} has no documents.")

    def fingerprint(self) -> str:
        """sha256 of the settings, each Task's preprocessor names and its files' stats."""
        seqio = _seqio()
        h = hashlib.sha256(json.dumps([self.name, self.split, self.text_feature]).encode())
        for task in self._tasks():
            _check_split(task, self.split)
            names = [seqio.utils.function_name(p) for p in task.preprocessors]
            h.update(json.dumps([task.name, names]).encode())
            h.update(_shards_stats(task.source, self.split).encode())
        return h.hexdigest()

    def describe(self) -> str:
        """One line: the Task and split."""
        return f"seqio {self.name!r} split {self.split!r} (feature {self.text_feature!r})"

    def num_documents(self) -> int | None:
        """The sources' example counts when they declare them, else None."""
        counts = [task.source.num_input_examples(self.split) for task in self._tasks()]
        return None if None in counts else sum(counts)


def _shards_stats(source: Any, split: str) -> str:
    """Path, size and mtime of each local file a seqio source reads ('' when it has none)."""
    try:
        paths = [pathlib.Path(p) for p in source.list_shards(split)]
    except Exception:  # noqa: BLE001 - function sources have no files
        return ""
    return "\n".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" if p.is_file() else str(p)
                     for p in paths)


class VocabularyTokenizer:
    """A seqio ``Vocabulary`` behind theseus's ``Tokenizer`` interface (end of text = EOS)."""

    def __init__(self, vocabulary: Any, name: str):
        if vocabulary.eos_id is None:
            raise ValueError(f"the seqio vocabulary of {name} has no EOS id to end texts with.")
        self._vocab, self.name = vocabulary, name
        self.vocab_size = int(vocabulary.vocab_size)
        self.eot_id = int(vocabulary.eos_id)
        self.special_tokens = {"</s>": self.eot_id}

    def encode(self, text: str | bytes) -> list[int]:
        """Token ids of ``text`` (no EOS added)."""
        return [int(i) for i in self._vocab.encode(text if isinstance(text, str) else
                                                    decode_utf8(bytes(text), "encode() input"))]

    def encode_batch(self, texts: Sequence[str | bytes]) -> list[list[int]]:
        """Token ids of several texts."""
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; ids outside the vocabulary (model padding) are dropped."""
        return self._vocab.decode([int(i) for i in ids if 0 <= int(i) < self.vocab_size])

    def fingerprint(self) -> str:
        """sha256 of the vocabulary's kind, size, EOS id and (SentencePiece) model bytes."""
        model = getattr(self._vocab, "sp_model", None) or b""
        return digest(type(self._vocab).__name__, {"size": self.vocab_size, "eos": self.eot_id,
                                                   "extra_ids": int(self._vocab.extra_ids)}, model)


@dataclasses.dataclass(frozen=True)
class SeqioPrepared:
    """What training needs from prepared seqio data: the tokenizer and a description."""

    tokenizer: VocabularyTokenizer
    meta: dict
    path: None = None


class TokenStream:
    """Windows of ``seq_len + 1`` tokens cut from examples joined by ``eot`` (neighbouring
    windows share one token), ``rows`` windows per batch. The position of the next window
    is ``(example, offset)``: the offset into that example's tokens (its ``eot`` included)."""

    def __init__(self, examples: Iterator[np.ndarray], seq_len: int, rows: int, eot: int,
                 example: int = 0, offset: int = 0):
        self._examples, self._seq_len, self._rows, self._eot = examples, seq_len, rows, eot
        self.example, self.offset = example, offset
        self._chunks: list[np.ndarray] = []
        self._skip = offset  # tokens of the first example pulled that came before the position

    def _pull(self) -> None:
        tokens = np.asarray(next(self._examples), dtype=np.int64).reshape(-1)
        if not len(tokens) or tokens[-1] != self._eot:
            tokens = np.append(tokens, self._eot)
        self._chunks.append(tokens[self._skip:])
        self._skip = 0

    def __next__(self) -> np.ndarray:
        step = self._rows * self._seq_len
        while sum(len(c) for c in self._chunks) < step + 1:
            self._pull()
        flat = np.concatenate(self._chunks)[:step + 1]
        windows = np.lib.stride_tricks.sliding_window_view(flat, self._seq_len + 1)[::self._seq_len]
        drop = step
        while drop >= len(self._chunks[0]):
            drop -= len(self._chunks.pop(0))
            self.example, self.offset = self.example + 1, 0
        self._chunks[0] = self._chunks[0][drop:]
        self.offset += drop
        return windows.astype(np.int32)


class SeqioIterator:
    """Training batches ``[rows, seq_len + 1]`` from a seqio token stream, checkpointable the
    way grain's ``DataLoaderIterator`` is (``get_state`` bytes, ``set_state``)."""

    def __init__(self, data: SeqioData, seq_len: int, rows: int, seed: int,
                 shard: tuple[int, int], eot: int):
        self._data, self._seq_len, self._rows, self._seed = data, seq_len, rows, seed
        self._shard, self._eot = shard, eot
        self._stream: TokenStream | None = None
        self._position = (0, 0)

    def _identity(self) -> dict:
        return {"task": self._data.task, "split": self._data.split, "feature": self._data.feature,
                "seed": self._seed, "seq_len": self._seq_len, "rows": self._rows,
                "shard": list(self._shard)}

    def __iter__(self) -> SeqioIterator:
        return self

    def __next__(self) -> np.ndarray:
        if self._stream is None:
            example, offset = self._position
            examples = self._data.token_examples(self._data.split, self._seed, self._shard,
                                                 skip=example, repeat=True)
            self._stream = TokenStream(examples, self._seq_len, self._rows, self._eot,
                                       example, offset)
        return next(self._stream)

    def get_state(self) -> bytes:
        """The position of the next batch (example index, token offset) and what it is of."""
        if self._stream is not None:
            self._position = (self._stream.example, self._stream.offset)
        return json.dumps({**self._identity(), "example": self._position[0],
                           "offset": self._position[1]}).encode()

    def set_state(self, state: bytes) -> None:
        """Continues at a position from ``get_state`` (of the same data, seed and shapes)."""
        saved = json.loads(state)
        changed = {k: (saved.get(k), v) for k, v in self._identity().items() if saved.get(k) != v}
        if changed:
            what = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items())
            raise ValueError(f"the checkpoint's seqio data position belongs to other data or "
                             f"shapes ({what}); resume with the same settings or start afresh.")
        self._position, self._stream = (int(saved["example"]), int(saved["offset"])), None

    def start_prefetch(self) -> None:
        """Nothing to start: tf.data prefetches once the first batch is asked for."""


class SeqioBatches:
    """The iterable ``SeqioData.train_loader`` returns; each ``iter`` starts at the beginning."""

    def __init__(self, *args: Any):
        self._args = args

    def __iter__(self) -> SeqioIterator:
        return SeqioIterator(*self._args)


@dataclasses.dataclass(frozen=True)
class SeqioData:
    """A ``data`` config that trains directly on a seqio Task's or Mixture's tokens.

    ``feature`` is the output feature whose tokens are trained on; its vocabulary is the
    tokenizer. ``val_split`` serves the validation batches. ``modules`` are imported first
    (they register the Tasks). Resuming skips the examples read before, through the
    preprocessing pipeline: cheap for text Tasks, slower for heavy preprocessors.
    """

    task: str
    split: str = "train"
    feature: str = "targets"
    val_split: str = "validation"
    shuffle: bool = True
    modules: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "modules", tuple(self.modules))
        if not self.task:
            raise ValueError("SeqioData.task must name a registered seqio Task or Mixture.")

    def _provider(self) -> Any:
        return provider(self.task, self.modules)

    @property
    def tokenizer(self) -> VocabularyTokenizer:
        """The vocabulary of ``feature`` as a theseus tokenizer."""
        found = self._provider()
        if self.feature not in found.output_features:
            raise ValueError(f"seqio {self.task!r} has no output feature {self.feature!r} (it has: "
                             f"{', '.join(found.output_features)}); set data.feature.")
        return VocabularyTokenizer(found.output_features[self.feature].vocabulary, self.task)

    def check(self, seq_len: int, vocab_size: int) -> None:
        """Raises if the vocabulary's ids overflow the model's ``vocab_size``."""
        del seq_len  # windows of any length are cut from the stream
        tokens = self.tokenizer.vocab_size
        if vocab_size < tokens:
            raise ValueError(f"model.vocab_size ({vocab_size}) is smaller than the {tokens} tokens "
                             f"of the seqio vocabulary of {self.task!r}; raise model.vocab_size to "
                             f"at least {tokens}.")

    def prepare(self) -> SeqioPrepared:
        """The tokenizer and a description; nothing is written (seqio reads on the fly)."""
        tok = self.tokenizer
        for split in (self.split, self.val_split):
            _check_split(self._provider(), split)
        return SeqioPrepared(tok, {"format": "seqio", "task": self.task, "split": self.split,
                                   "feature": self.feature, "tokenizer": {
                                       "name": tok.name, "vocab_size": tok.vocab_size,
                                       "eot_id": tok.eot_id, "sha256": tok.fingerprint()}})

    def token_examples(self, split: str, seed: int | None, shard: tuple[int, int], *,
                       skip: int = 0, repeat: bool = False) -> Iterator[np.ndarray]:
        """The token arrays of ``feature``, example by example, after skipping ``skip``."""
        seqio = _seqio()
        index, n_shards = shard
        ds = self._provider().get_dataset(
            sequence_length=None, split=split, shuffle=self.shuffle and repeat, seed=seed,
            shard_info=seqio.ShardInfo(index, n_shards) if n_shards > 1 else None,
            num_epochs=None if repeat else 1, trim_output_features=False, use_cached=False)
        if self.feature not in ds.element_spec:
            raise ValueError(f"seqio {self.task!r} yields no feature {self.feature!r} (it has: "
                             f"{', '.join(sorted(ds.element_spec))}); set data.feature.")
        count = 0
        for tokens in ds.skip(skip).map(lambda ex: ex[self.feature]).as_numpy_iterator():
            count += 1
            yield tokens
        if repeat and count == 0:
            raise ValueError(f"seqio {self.task!r} split {split!r} yields no examples.")

    def train_loader(self, prepared: SeqioPrepared, seq_len: int, global_batch: int,
                     seed: int) -> SeqioBatches:
        """Batches ``[global_batch / processes, seq_len + 1]`` forever, sharded by process."""
        import jax

        n_proc = jax.process_count()
        return SeqioBatches(self, seq_len, global_batch // n_proc, seed,
                            (jax.process_index(), n_proc), prepared.tokenizer.eot_id)

    def val_batches(self, prepared: SeqioPrepared, seq_len: int, global_batch: int,
                    max_batches: int) -> list[np.ndarray]:
        """The first ``max_batches`` validation batches, in order (this process's rows)."""
        import jax

        stream = TokenStream(self.token_examples(self.val_split, 0, (0, 1)), seq_len,
                             global_batch, prepared.tokenizer.eot_id)
        batches = []
        with data_errors():  # found when the run starts: one error line, exit 2
            for _ in range(max_batches):
                try:
                    batches.append(next(stream))
                except StopIteration:
                    break
        if not batches:
            raise DataError(f"seqio {self.task!r} split {self.val_split!r} has fewer than "
                             f"trainer.batch_size={global_batch} windows of {seq_len + 1} tokens.")
        local, rank = global_batch // jax.process_count(), jax.process_index()
        return [b[rank * local:(rank + 1) * local] for b in batches]
