"""Tokenize jobs: a corpus and a tokenizer into token shards, run like any experiment.

    uv run launch.py --config=configs/tokenize.py:shakespeare_gpt2
    uv run launch.py --config='configs/tokenize.py:text_files(pattern="corpus/*.txt")'
    uv run launch.py --config=configs/tokenize.py:shakespeare_gpt2 --fdl_set=workers=2

The dataset directory goes under ``$THESEUS_DATA`` (or ``~/.cache/theseus/data``; set
``out_root`` to choose) with a name that hashes the source, tokenizer and style, so a job
run again returns at once, an interrupted one resumes, and another tokenizer gets its own.
"""

from __future__ import annotations

import fiddle as fdl

from theseus.data.corpus import Shakespeare
from theseus.data.sources import TextFiles
from theseus.data.styles import Blockwise, Streaming
from theseus.data.tiktoken_files import Tiktoken
from theseus.data.tokenize_job import TokenizeJob


def shakespeare_gpt2() -> fdl.Config[TokenizeJob]:
    """Shakespeare's plays as GPT-2 BPE tokens, streaming (about 1.5M tokens, a few seconds)."""
    return fdl.Config(TokenizeJob, source=fdl.Config(Shakespeare),
                      tokenizer=fdl.Config(Tiktoken, name="gpt2"), style=fdl.Config(Streaming))


def shakespeare_blockwise(seq_len: int = 1024) -> fdl.Config[TokenizeJob]:
    """Shakespeare's plays as GPT-2 BPE rows of 1,024 tokens with a loss mask, one per play.

    Rows are padded and truncated on the right; a play longer than ``seq_len`` keeps its start.
    """
    return fdl.Config(TokenizeJob, source=fdl.Config(Shakespeare),
                      tokenizer=fdl.Config(Tiktoken, name="gpt2"),
                      style=fdl.Config(Blockwise, seq_len=seq_len))


def text_files(pattern: str = "data/*.txt", split: str = "file") -> fdl.Config[TokenizeJob]:
    """Plain text files matching a glob, as GPT-2 BPE tokens, streaming.

    ``split`` says what one document is: a ``file``, a ``paragraph`` or a ``line``.
    """
    return fdl.Config(TokenizeJob, source=fdl.Config(TextFiles, paths=(pattern,), split=split),
                      tokenizer=fdl.Config(Tiktoken, name="gpt2"), style=fdl.Config(Streaming))
