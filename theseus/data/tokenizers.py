"""Tokenizers. One interface (``Tokenizer``) and, for now, a byte-level BPE trained on the
corpus itself, so that nothing is downloaded. The data issue adds more backends here."""

from __future__ import annotations

import dataclasses
import hashlib
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

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def fingerprint(self) -> str: ...


class HFTokenizer:
    """A ``tokenizers`` (Rust) tokenizer loaded from a ``tokenizer.json`` file."""

    def __init__(self, path: pathlib.Path, name: str):
        self._tok = hf.Tokenizer.from_file(str(path))
        self._json = path.read_bytes()
        self.name = name
        self.vocab_size = self._tok.get_vocab_size()
        eot = self._tok.token_to_id(EOT)
        if eot is None:
            raise ValueError(f"tokenizer {path} has no '{EOT}' token.")
        self.eot_id = eot

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of several texts, encoded in parallel by the Rust library."""
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        """Text for ``ids``; ids outside the vocabulary (model padding) are dropped."""
        return self._tok.decode([int(i) for i in ids if 0 <= int(i) < self.vocab_size])

    def fingerprint(self) -> str:
        """sha256 of the tokenizer's JSON: its exact identity."""
        return hashlib.sha256(self._json).hexdigest()


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
