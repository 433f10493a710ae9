"""Tokenize jobs: a corpus and a tokenizer into token shards, run like any experiment.

    uv run launch.py --config=configs/tokenize.py:shakespeare_gpt2
    uv run launch.py --config='configs/tokenize.py:text_files(pattern="corpus/*.txt")'
    uv run launch.py --config=configs/tokenize.py:shakespeare_gpt2 --fdl_set=workers=2
    uv run launch.py --config='configs/tokenize.py:json_lines(pattern="data/*.jsonl")'
    uv run launch.py --config='configs/tokenize.py:parquet(pattern="data/*.parquet")'
    uv run launch.py --config='configs/tokenize.py:chat(pattern="chats/*.jsonl", seq_len=512)'

Train on what a job wrote with the ``train_on`` fiddler, given the job's ``--workdir`` (or
the dataset directory it printed); several paths make a mixture (``weights=(3, 1)``)::

    uv run launch.py --config=configs/tokenize.py:shakespeare_gpt2 --workdir=runs/tok
    uv run launch.py --config=configs/gpt.py:tiny --fiddler="configs.tokenize.train_on('runs/tok')"
    uv run launch.py --config=configs/gpt.py:tiny --fdl_set=data.packing=True \
        --fiddler="configs.tokenize.train_on('runs/tok', 'runs/tok2', weights=(3, 1))"

The dataset directory goes under ``$THESEUS_DATA`` (or ``~/.cache/theseus/data``; set
``out_root`` to choose) with a name that hashes the source, tokenizer and style, so a job
run again returns at once, an interrupted one resumes, and another tokenizer gets its own.
"""

from __future__ import annotations

import fiddle as fdl

from theseus.data.chat import CHATML_TOKENS, ChatML
from theseus.data.corpus import Shakespeare
from theseus.data.sources import JsonLines, Parquet, TextFiles
from theseus.data.styles import Blockwise, Streaming
from theseus.data.tiktoken_files import Tiktoken
from theseus.data.tokenize_job import TokenizeJob
from theseus.data.train_on import train_on

__all__ = ["chat", "json_lines", "parquet", "shakespeare_blockwise", "shakespeare_gpt2",
           "text_files", "train_on"]


def _gpt2_job(source: fdl.Config, style: fdl.Config | None = None) -> fdl.Config[TokenizeJob]:
    """A job that encodes ``source`` with the GPT-2 BPE (streaming unless ``style``)."""
    return fdl.Config(TokenizeJob, source=source, tokenizer=fdl.Config(Tiktoken, name="gpt2"),
                      style=style or fdl.Config(Streaming))


def shakespeare_gpt2() -> fdl.Config[TokenizeJob]:
    """Shakespeare's plays as GPT-2 BPE tokens, streaming (about 1.5M tokens, a few seconds)."""
    return _gpt2_job(fdl.Config(Shakespeare))


def shakespeare_blockwise(seq_len: int = 1024) -> fdl.Config[TokenizeJob]:
    """Shakespeare's plays as GPT-2 BPE rows of 1,024 tokens with a loss mask, one per play.

    Rows are padded and truncated on the right; a play longer than ``seq_len`` keeps its start.
    """
    return _gpt2_job(fdl.Config(Shakespeare), fdl.Config(Blockwise, seq_len=seq_len))


def text_files(pattern: str = "data/*.txt", split: str = "file") -> fdl.Config[TokenizeJob]:
    """Plain text files matching a glob, as GPT-2 BPE tokens, streaming.

    ``split`` says what one document is: a ``file``, a ``paragraph`` or a ``line``.
    """
    return _gpt2_job(fdl.Config(TextFiles, paths=(pattern,), split=split))


def json_lines(pattern: str = "data/*.jsonl", text_field: str = "text") -> fdl.Config[TokenizeJob]:
    """JSON Lines files matching a glob (one document per line, its text in ``text_field``),
    as GPT-2 BPE tokens, streaming."""
    return _gpt2_job(fdl.Config(JsonLines, paths=(pattern,), text_field=text_field))


def parquet(pattern: str = "data/*.parquet", text_field: str = "text") -> fdl.Config[TokenizeJob]:
    """Parquet files matching a glob (one document per row of column ``text_field``), as GPT-2
    BPE tokens, streaming."""
    return _gpt2_job(fdl.Config(Parquet, paths=(pattern,), text_field=text_field))


def chat(pattern: str = "data/*.jsonl", seq_len: int = 1024,
         field: str = "messages") -> fdl.Config[TokenizeJob]:
    """Chat fine-tuning data: JSON Lines of conversations (``field`` holds the list of
    ``{"role", "content"}`` messages) as ChatML rows of ``seq_len`` GPT-2 BPE tokens, with
    the loss on the assistant's tokens only (blockwise, padded and truncated on the right)."""
    return fdl.Config(TokenizeJob,
                      source=fdl.Config(JsonLines, paths=(pattern,), text_field=field, as_json=True),
                      tokenizer=fdl.Config(Tiktoken, name="gpt2", extra_special_tokens=CHATML_TOKENS),
                      style=fdl.Config(Blockwise, seq_len=seq_len, chat=fdl.Config(ChatML)))
