"""The two ways a tokenize job lays documents out: ``Streaming`` and ``Blockwise``.

``Streaming()``
    every document's tokens followed by the end-of-text id, all joined into one flat array
    (pretraining: the loader cuts windows across document boundaries).
``Blockwise(seq_len, pad_side="right", truncate_side="right", chat=None)``
    one row of ``seq_len`` tokens per document: its tokens and end-of-text, truncated on
    ``truncate_side`` when longer and padded with the tokenizer's pad id (its end-of-text id
    when it has none) on ``pad_side`` when shorter, with a ``uint8`` loss mask that is 1 on
    real tokens and 0 on padding (fine-tuning). With ``chat=ChatML()`` each document is a
    JSON conversation — a list of ``{"role", "content"}`` messages, or an object with a
    ``"messages"`` list — rendered by the template, and the mask is 1 on the assistant's
    tokens only.

``style.encode(tokenizer, docs, dtype)`` turns a list of ``(name, text)`` into an
``Encoded`` block of arrays; the tokenize job calls it in its worker processes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from theseus.data.chat import ChatML
from theseus.data.tokenizers import Tokenizer

SIDES = ("left", "right")


@dataclasses.dataclass(frozen=True)
class Encoded:
    """The arrays of one split of one chunk: ``tokens`` (1-D for streaming, ``[rows,
    seq_len]`` for blockwise), ``mask`` (blockwise only), and the counts."""

    tokens: np.ndarray
    mask: np.ndarray | None
    documents: int
    num_tokens: int


def pad_id(tokenizer: Tokenizer) -> int:
    """The id blockwise rows are padded with: the tokenizer's ``pad_id``, else end-of-text."""
    pad = getattr(tokenizer, "pad_id", None)
    return tokenizer.eot_id if pad is None else int(pad)


@dataclasses.dataclass(frozen=True)
class Streaming:
    """Documents joined by end-of-text into flat token shards, for pretraining."""

    name: ClassVar[str] = "streaming"

    def settings(self) -> dict:
        """The style's fields as they appear in ``meta.json`` (none)."""
        return {}

    def encode(self, tokenizer: Tokenizer, docs: Sequence[tuple[str, str]],
               dtype: np.dtype) -> Encoded:
        """Each document's ids and end-of-text, concatenated (one array per chunk; each
        document's ids are copied into place by numpy, with no Python loop over tokens).
        A tokenizer with ``encode_array(text) -> np.ndarray`` is asked for arrays instead of
        lists, which skips making a Python int per token."""
        encode = getattr(tokenizer, "encode_array", None) or tokenizer.encode
        encoded = [encode(text) for _, text in docs]
        tokens = np.empty(sum(map(len, encoded)) + len(encoded), dtype=dtype)
        pos = 0
        for ids in encoded:
            end = pos + len(ids)
            tokens[pos:end] = ids
            tokens[end] = tokenizer.eot_id
            pos = end + 1
        return Encoded(tokens, None, len(docs), tokens.size)


@dataclasses.dataclass(frozen=True)
class Blockwise:
    """One padded, truncated row of ``seq_len`` tokens per document, with a loss mask."""

    name: ClassVar[str] = "blockwise"
    seq_len: int
    pad_side: str = "right"
    truncate_side: str = "right"
    chat: ChatML | None = None

    def __post_init__(self):
        if isinstance(self.seq_len, bool) or not isinstance(self.seq_len, int) or self.seq_len < 1:
            raise ValueError(f"Blockwise.seq_len must be a whole number of tokens, at least 1, "
                             f"got {self.seq_len!r}.")
        for field in ("pad_side", "truncate_side"):
            if getattr(self, field) not in SIDES:
                raise ValueError(f"Blockwise.{field} must be 'left' or 'right', got "
                                 f"{getattr(self, field)!r}.")
        if self.chat is not None and not isinstance(self.chat, ChatML):
            raise ValueError(f"Blockwise.chat must be a chat template such as ChatML() or None, "
                             f"got {type(self.chat).__name__}.")

    def settings(self) -> dict:
        """``seq_len``, ``pad_side`` and ``truncate_side``, as ``meta.json`` records them."""
        return {"seq_len": self.seq_len, "pad_side": self.pad_side,
                "truncate_side": self.truncate_side}

    def _ids(self, tokenizer: Tokenizer, name: str, text: str) -> tuple[list[int], list[int] | None]:
        """A document's ids and, for chat, its assistant-only mask (``None``: all ones)."""
        if self.chat is None:
            ids = tokenizer.encode(text)
            ids.append(tokenizer.eot_id)
            return ids, None
        try:
            ids, mask = self.chat.encode(tokenizer, chat_messages(text))
        except ValueError as e:
            raise ValueError(f"document {name!r}: {e}") from None
        return ids, mask

    def encode(self, tokenizer: Tokenizer, docs: Sequence[tuple[str, str]],
               dtype: np.dtype) -> Encoded:
        """Rows ``[len(docs), seq_len]`` of tokens and of the ``uint8`` loss mask."""
        n, width = len(docs), self.seq_len
        rows = np.full((n, width), pad_id(tokenizer), dtype=dtype)
        masks = np.zeros((n, width), dtype=np.uint8)
        real = 0
        for i, (name, text) in enumerate(docs):
            ids, mask = self._ids(tokenizer, name, text)
            k = min(len(ids), width)
            src = slice(0, k) if self.truncate_side == "right" else slice(len(ids) - k, len(ids))
            dst = slice(0, k) if self.pad_side == "right" else slice(width - k, width)
            rows[i, dst] = ids[src]
            masks[i, dst] = 1 if mask is None else mask[src]
            real += k
        return Encoded(rows, masks, n, real)


def chat_messages(text: str) -> list:
    """The messages of a JSON conversation: a list, or an object with a ``messages`` list."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"a chat document must be JSON (a list of {{'role', 'content'}} "
                         f"messages), but it is not ({e}).") from None
    if isinstance(value, dict) and "messages" in value:
        value = value["messages"]
    return value
