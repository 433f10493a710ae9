"""Tokenizers: one interface (``Tokenizer``) and its backends.

A tokenizer is named in configs by a frozen dataclass "spec" with literal fields, whose
``load()`` returns the loaded ``Tokenizer``::

    TrainedBPE(vocab_size=2048)      a byte-level BPE trained on the corpus (``load_or_train``)
    HFTokenizerFile(path=...)        a ``tokenizers`` tokenizer.json
    ByteLevel()                      the 256 bytes and <|endoftext|>; no file, no dependency
    Tiktoken(name="gpt2")            GPT-2 / cl100k_base from files shipped in packages
                                     (theseus.data.tiktoken_files)
    SentencePiece(path=...)          a SentencePiece .model (theseus.data.spm)

Every backend means the same by each method: ``encode`` reads its input as ordinary text (the
text of a special token never becomes that token's id: insert ids from ``special_tokens``
instead), and ``decode`` drops special tokens and ids outside the vocabulary (model padding).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from collections.abc import Iterable, Sequence
from typing import Protocol

import tokenizers as hf

from theseus.fileio import atomic_write_text

EOT = "<|endoftext|>"


class Tokenizer(Protocol):
    """What the rest of theseus needs from a tokenizer."""

    name: str
    vocab_size: int
    eot_id: int
    special_tokens: dict[str, int]

    def encode(self, text: str | bytes) -> list[int]: ...

    def encode_batch(self, texts: Sequence[str | bytes]) -> list[list[int]]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def fingerprint(self) -> str: ...


def as_text(text: str | bytes) -> str:
    """``text`` itself, or UTF-8 ``bytes`` decoded; anything else is refused in one sentence."""
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"encode() was given bytes that are not valid UTF-8 (byte {e.start} is "
                             f"{data[e.start:e.start + 1]!r}); decode them with their real encoding "
                             f"and pass a str.") from None
    raise TypeError(f"encode() takes a str or UTF-8 bytes, got {type(text).__name__}.")


def digest(kind: str, meta: dict, payload: bytes = b"") -> str:
    """sha256 of a backend's kind, its settings (as canonical JSON) and its file's bytes."""
    h = hashlib.sha256(kind.encode() + b"\0")
    h.update(json.dumps(meta, sort_keys=True, ensure_ascii=True).encode() + b"\0")
    h.update(payload)
    return h.hexdigest()


def check_extra_special_tokens(tokens: Sequence[str], where: str) -> tuple[str, ...]:
    """``tokens`` as a tuple of distinct, non-empty strings (fiddle may hand over a list)."""
    tokens = tuple(tokens)
    for t in tokens:
        if not isinstance(t, str) or not t:
            raise ValueError(f"{where}.extra_special_tokens must be non-empty strings, got {t!r}.")
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"{where}.extra_special_tokens has duplicates: {list(tokens)}.")
    return tokens


def existing_file(path: str | pathlib.Path, what: str) -> pathlib.Path:
    """``path`` as a Path, after checking that it is a file."""
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist; check the path in the tokenizer config.")
    return path


class HFTokenizer:
    """A ``tokenizers`` (Rust) tokenizer loaded from a ``tokenizer.json`` file.

    ``extra_special_tokens`` are added after the file's vocabulary (the chat template's
    markers, say); then the fingerprint covers them too.
    """

    def __init__(self, path: pathlib.Path, name: str, extra_special_tokens: Sequence[str] = ()):
        path = existing_file(path, "tokenizer file")
        try:
            self._tok = hf.Tokenizer.from_file(str(path))
        except Exception as e:  # noqa: BLE001 - the Rust library raises a bare Exception
            raise ValueError(f"{path} is not a valid tokenizer.json ({e}).") from None
        # Text is text: '<|endoftext|>' inside a document is not the end-of-text token.
        self._tok.encode_special_tokens = True
        self._json = path.read_bytes()
        if extra_special_tokens:
            self._tok.add_special_tokens([hf.AddedToken(t, special=True, normalized=False)
                                         for t in extra_special_tokens])
            self._json = self._tok.to_str().encode()
        self.name = name
        self.vocab_size = self._tok.get_vocab_size()
        eot = self._tok.token_to_id(EOT)
        if eot is None:
            raise ValueError(f"tokenizer {path} has no '{EOT}' token.")
        self.eot_id = eot
        self.special_tokens = {t.content: i for i, t in self._tok.get_added_tokens_decoder().items()
                               if t.special}

    def encode(self, text: str | bytes) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        return self._tok.encode(as_text(text), add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str | bytes]) -> list[list[int]]:
        """Token ids of several texts, encoded in parallel by the Rust library."""
        batch = [as_text(t) for t in texts]
        return [e.ids for e in self._tok.encode_batch(batch, add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        """Text for ``ids``; ids outside the vocabulary (model padding) are dropped."""
        return self._tok.decode([int(i) for i in ids if 0 <= int(i) < self.vocab_size])

    def fingerprint(self) -> str:
        """sha256 of the tokenizer's JSON: its exact identity."""
        return hashlib.sha256(self._json).hexdigest()


@dataclasses.dataclass(frozen=True)
class HFTokenizerFile:
    """A ``tokenizers`` tokenizer.json made elsewhere; it must have an ``<|endoftext|>`` token."""

    path: str
    extra_special_tokens: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "extra_special_tokens",
                           check_extra_special_tokens(self.extra_special_tokens, "HFTokenizerFile"))

    @property
    def name(self) -> str:
        """``hf-`` and the start of the file's sha256 (with the extra tokens): path-safe."""
        data = existing_file(self.path, "tokenizer file").read_bytes()
        return "hf-" + digest("hf", {"extra": list(self.extra_special_tokens)}, data)[:12]

    def load(self) -> HFTokenizer:
        return HFTokenizer(pathlib.Path(self.path), self.name, self.extra_special_tokens)


class ByteTokenizer:
    """Ids 0-255 are the UTF-8 bytes, 256 is ``<|endoftext|>``, extra special tokens follow."""

    def __init__(self, name: str, extra_special_tokens: Sequence[str] = ()):
        self.name = name
        self.eot_id = 256
        self.special_tokens = {EOT: 256}
        for t in extra_special_tokens:
            self.special_tokens.setdefault(t, 256 + len(self.special_tokens))
        self.vocab_size = 256 + len(self.special_tokens)

    def encode(self, text: str | bytes) -> list[int]:
        return list(as_text(text).encode("utf-8", errors="replace"))  # lone surrogates: "?"

    def encode_batch(self, texts: Sequence[str | bytes]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of the byte ids; a byte sequence cut inside a character decodes to U+FFFD."""
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")

    def fingerprint(self) -> str:
        return digest("bytes", {"special_tokens": self.special_tokens})


@dataclasses.dataclass(frozen=True)
class ByteLevel:
    """No vocabulary to learn: 256 byte tokens, ``<|endoftext|>``, ``extra_special_tokens``."""

    extra_special_tokens: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "extra_special_tokens",
                           check_extra_special_tokens(self.extra_special_tokens, "ByteLevel"))

    @property
    def name(self) -> str:
        if not self.extra_special_tokens:
            return "bytes"
        return "bytes-" + digest("bytes", {"extra": list(self.extra_special_tokens)})[:8]

    def load(self) -> ByteTokenizer:
        return ByteTokenizer(self.name, self.extra_special_tokens)


@dataclasses.dataclass(frozen=True)
class TrainedBPE:
    """A byte-level BPE of ``vocab_size`` tokens trained on the training documents.

    Training takes a few seconds on the default corpus; the result is cached as
    ``tokenizer.json`` next to the shards and reused by every later run.
    """

    vocab_size: int = 2048

    def __post_init__(self):
        if not 257 <= self.vocab_size <= 2**32:
            raise ValueError(f"data.tokenizer.vocab_size must be at least 257 (the 256 bytes and "
                             f"{EOT}), got {self.vocab_size}.")

    @property
    def name(self) -> str:
        """A short, path-safe identity."""
        return f"bpe{self.vocab_size}"

    def load(self, path: pathlib.Path) -> HFTokenizer:
        """The tokenizer trained before and written to ``path``."""
        return HFTokenizer(pathlib.Path(path), self.name)

    def load_or_train(self, texts: Iterable[str], path: pathlib.Path) -> HFTokenizer:
        """Loads ``path`` if it exists, else trains on ``texts`` and writes it atomically."""
        if not path.exists():
            tok = hf.Tokenizer(hf.models.BPE())
            tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
            tok.decoder = hf.decoders.ByteLevel()
            trainer = hf.trainers.BpeTrainer(
                vocab_size=self.vocab_size, special_tokens=[EOT], show_progress=False,
                initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet())
            tok.train_from_iterator(texts, trainer=trainer)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, tok.to_str())
        return HFTokenizer(path, self.name)
