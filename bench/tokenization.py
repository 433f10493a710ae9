"""Tokenization speed with the GPT-2 BPE: our tokenize job against tiktoken called directly.

    uv run python bench/tokenization.py              # Shakespeare x 8 (about 12M tokens)
    uv run python bench/tokenization.py --repeat 4 --processes 1 2

(Not ``bench/tokenize.py``: run as a script, that name would shadow the standard library's
``tokenize`` module.) The corpus is Shakespeare's plays repeated ``--repeat`` times, each
copy a new document. For 1 and 2 processes it reports tokens/s and tokens/s per process for:

- ``tiktoken``: ``Encoding.encode_ordinary_batch(texts, num_threads=P)`` on the texts in
  memory, the library alone (threads, which release the GIL);
- ``tokenize job``: ``run_tokenize(..., workers=P)`` end to end (reading the source,
  splitting by hash, encoding in P processes, writing shards and meta.json), wall clock
  including the vocabulary load and worker start-up.

Goal: 2M tokens/s per core or more for the tokenize job.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import pathlib
import shutil
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from theseus.data.corpus import Shakespeare
from theseus.data.tiktoken_files import ENCODINGS, parse_ranks, shipped_file


@dataclasses.dataclass(frozen=True)
class Repeated:
    """Shakespeare's plays ``times`` times over, each copy its own document, in memory."""

    docs: tuple[tuple[str, str], ...]
    times: int

    def documents(self):
        for r in range(self.times):
            for name, text in self.docs:
                yield f"{name}#{r}", text

    def fingerprint(self) -> str:
        return hashlib.sha256(f"{Shakespeare().fingerprint()}x{self.times}".encode()).hexdigest()[:16]

    def describe(self) -> str:
        return f"Shakespeare's plays x {self.times}"

    def num_documents(self) -> int:
        return len(self.docs) * self.times


def gpt2_encoding():
    """The GPT-2 ``tiktoken.Encoding``, built from the same shipped file theseus uses."""
    import tiktoken

    vocab = ENCODINGS["gpt2"]
    ranks = parse_ranks(shipped_file("gpt2").read_bytes(), vocab.format)
    return tiktoken.Encoding("gpt2", pat_str=vocab.pattern, mergeable_ranks=ranks,
                             special_tokens=vocab.special_tokens)


def bench_tiktoken(texts: list[str], threads: int) -> tuple[int, float]:
    """Tokens and seconds of one ``encode_ordinary_batch`` over ``texts``."""
    enc = gpt2_encoding()
    start = time.perf_counter()
    ids = enc.encode_ordinary_batch(texts, num_threads=threads)
    seconds = time.perf_counter() - start
    return sum(len(i) for i in ids), seconds


def bench_job(source: Repeated, workers: int) -> tuple[int, float]:
    """Tokens and seconds of a whole tokenize job in ``workers`` processes."""
    from theseus.data.tiktoken_files import Tiktoken
    from theseus.data.tokenize_job import run_tokenize

    out = pathlib.Path(tempfile.mkdtemp(prefix="bench-tokenize-"))
    try:
        start = time.perf_counter()
        result = run_tokenize(source, Tiktoken(name="gpt2"), val_fraction=0.0, out_root=out,
                              workers=workers, progress=False)
        seconds = time.perf_counter() - start
        return result.encoded_tokens, seconds
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=8, help="copies of the corpus")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    source = Repeated(tuple(Shakespeare().documents()), args.repeat)
    texts = [text for _, text in source.documents()]
    print(f"corpus: {source.describe()}, {len(texts)} documents, "
          f"{sum(len(t.encode()) for t in texts) / 1e6:.1f} MB")
    print(f"{'what':<16}{'processes':>10}{'tokens':>14}{'seconds':>10}{'tokens/s':>14}"
          f"{'per process':>14}")
    for processes in args.processes:
        for what, fn, arg in (("tiktoken", bench_tiktoken, texts),
                              ("tokenize job", bench_job, source)):
            tokens, seconds = fn(arg, processes)
            rate = tokens / seconds
            print(f"{what:<16}{processes:>10}{tokens:>14,}{seconds:>10.2f}{rate:>14,.0f}"
                  f"{rate / processes:>14,.0f}", flush=True)


if __name__ == "__main__":
    main()
