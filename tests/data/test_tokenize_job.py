"""Tests for theseus.data.tokenize_job: streaming and blockwise shards, meta.json, resuming
after SIGKILL, worker processes, dataset naming and every bad input."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import ROOT
from theseus.config import ConfigError
from theseus.data import shards
from theseus.data.chat import CHATML_TOKENS, ChatML
from theseus.data.tokenize_job import Blockwise, Streaming, TokenizeJob, run_tokenize, source_size, tokenize
from theseus.data.tokenizers import ByteLevel, HFTokenizer, HFTokenizerFile, TrainedBPE

BLOCK_AFTER, FAIL_AFTER = "THESEUS_TEST_BLOCK_AFTER", "THESEUS_TEST_FAIL_AFTER"


@dataclasses.dataclass(frozen=True)
class Docs:
    """A minimal in-memory source. Before document ``$THESEUS_TEST_BLOCK_AFTER`` it stalls
    (so that a test can kill a job at a known point); before ``$THESEUS_TEST_FAIL_AFTER`` it
    fails as a lost disk would."""

    docs: tuple

    def documents(self):
        block = int(os.environ.get(BLOCK_AFTER, "-1"))
        fail = int(os.environ.get(FAIL_AFTER, "-1"))
        for i, doc in enumerate(self.docs):
            if i == block:
                time.sleep(600)
            if i == fail:
                raise OSError("disk went away")
            yield doc

    def fingerprint(self) -> str:
        return hashlib.sha256(repr(self.docs).encode()).hexdigest()[:16]

    def describe(self) -> str:
        return f"test documents ({len(self.docs)})"

    def num_documents(self) -> int:
        return len(self.docs)


def make_docs(n: int = 20) -> Docs:
    return Docs(tuple((f"doc{i}", f"Document {i}: " + "all the world's a stage. " * (i % 5 + 1))
                      for i in range(n)))


DOCS = make_docs()
VAL = 0.3


def expected_stream(tok, docs, split: str) -> list[int]:
    """What the streaming shards of ``split`` must hold: each document's ids and end-of-text."""
    return [t for name, text in docs if shards.split_of(name, text, VAL) == split
            for t in tok.encode(text) + [tok.eot_id]]


def read_split(path, split):
    parts = shards.split_shards(path, split)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)


def dir_bytes(path: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_streaming_shards_and_meta(tmp_path):
    out = tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=tmp_path, workers=1,
                   progress=False)
    tok = ByteLevel().load()
    meta = shards.read_meta(out)
    assert meta["format"] == "theseus-tokens-v2" and meta["style"] == "streaming"
    assert meta["tokenizer"] == {"name": "bytes", "kind": "ByteLevel", "sha256": tok.fingerprint(),
                                 "vocab_size": 257, "eot_id": 256, "pad_id": 256,
                                 "spec": {"class": "theseus.data.tokenizers.ByteLevel",
                                          "fields": {"extra_special_tokens": []}}}
    assert meta["dtype"] == "uint16" and meta["val_fraction"] == VAL
    assert meta["source"] == {"kind": "Docs", "fingerprint": DOCS.fingerprint(),
                              "description": "test documents (20)"}
    counts = {s: sum(shards.split_of(n, t, VAL) == s for n, t in DOCS.docs) for s in shards.SPLITS}
    assert min(counts.values()) > 0
    for split in shards.SPLITS:
        tokens = read_split(out, split)
        assert tokens.dtype == np.uint16
        np.testing.assert_array_equal(tokens, expected_stream(tok, DOCS.docs, split))
        info = meta["splits"][split]
        assert (info["documents"], info["tokens"]) == (counts[split], len(tokens))
        assert int((tokens == tok.eot_id).sum()) == counts[split]
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "train-00000.bin", "val-00000.bin"]


def test_small_chunks_give_many_shards_with_the_same_tokens(tmp_path):
    one = run_tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=tmp_path / "a", workers=1,
                       progress=False).path
    many = run_tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=tmp_path / "b", workers=1,
                        progress=False, chunk_documents=3).path
    assert one.name == many.name
    meta = shards.read_meta(many)
    assert len(meta["splits"]["train"]["shards"]) > 3
    for split in shards.SPLITS:
        np.testing.assert_array_equal(read_split(one, split), read_split(many, split))
        files = meta["splits"][split]["shards"]
        assert sum(f["tokens"] for f in files) == meta["splits"][split]["tokens"]
        assert [f["tokens"] for f in files] == [len(a) for a in shards.split_shards(many, split)]


def test_uint32_for_a_large_vocabulary(tmp_path):
    from theseus.data.tiktoken_files import Tiktoken

    out = tokenize(make_docs(4), Tiktoken(name="cl100k_base"), val_fraction=0.0,
                   out_root=tmp_path, workers=1, progress=False)
    meta = shards.read_meta(out)
    assert meta["dtype"] == "uint32" and meta["tokenizer"]["vocab_size"] == 100277
    tokens = read_split(out, "train")
    assert tokens.dtype == np.uint32 and int(tokens.max()) == 100257  # end-of-text


@pytest.mark.parametrize("pad_side, truncate_side", [("right", "right"), ("left", "left"),
                                                     ("left", "right")])
def test_blockwise_rows_pad_truncate_and_mask(tmp_path, pad_side, truncate_side):
    docs = Docs((("short", "abc"), ("long", "abcdefghijkl"), ("exact", "abcdefg")))
    style = Blockwise(seq_len=8, pad_side=pad_side, truncate_side=truncate_side)
    out = tokenize(docs, ByteLevel(), style=style, val_fraction=0.0, out_root=tmp_path,
                   workers=1, progress=False)
    meta = shards.read_meta(out)
    assert (meta["style"], meta["seq_len"], meta["pad_side"], meta["truncate_side"]) == \
        ("blockwise", 8, pad_side, truncate_side)
    [rows], [masks] = shards.split_shards(out, "train"), shards.split_masks(out, "train")
    assert rows.shape == masks.shape == (3, 8) and masks.dtype == np.uint8
    eot = 256
    real = [[*b"abc", eot], [*b"abcdefghijkl", eot], [*b"abcdefg", eot]]
    for row, mask, ids in zip(rows, masks, real, strict=True):
        ids = ids[:8] if truncate_side == "right" else ids[-8:]
        pad = [eot] * (8 - len(ids))
        want = ids + pad if pad_side == "right" else pad + ids
        ones = [1] * len(ids) + [0] * len(pad)
        assert row.tolist() == want
        assert mask.tolist() == (ones if pad_side == "right" else ones[::-1])
    assert meta["splits"]["train"] == {**meta["splits"]["train"], "rows": 3, "documents": 3,
                                       "tokens": 4 + 8 + 8}
    assert meta["splits"]["train"]["shards"][0]["mask"] == "train-00000.mask.bin"


def test_blockwise_chat_masks_only_the_assistant(tmp_path):
    conversation = [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Me."}]
    docs = Docs((("c0", json.dumps(conversation)), ("c1", json.dumps({"messages": conversation}))))
    spec = ByteLevel(extra_special_tokens=CHATML_TOKENS)
    out = tokenize(docs, spec, style=Blockwise(seq_len=64, chat=ChatML()), val_fraction=0.0,
                   out_root=tmp_path, workers=1, progress=False)
    ids, mask = ChatML().encode(spec.load(), conversation)
    [rows], [masks] = shards.split_shards(out, "train"), shards.split_masks(out, "train")
    for row, row_mask in zip(rows, masks, strict=True):
        assert row[:len(ids)].tolist() == ids and row_mask[:len(ids)].tolist() == mask
        assert not row_mask[len(ids):].any() and (row[len(ids):] == 256).all()
    assert 0 < sum(mask) < len(mask)


def test_trained_bpe_is_trained_on_the_train_split_and_stored(tmp_path):
    out = tokenize(DOCS, TrainedBPE(300), val_fraction=VAL, out_root=tmp_path, workers=1,
                   progress=False)
    tok = HFTokenizer(out / "tokenizer.json", "bpe300")
    meta = shards.read_meta(out)
    assert meta["tokenizer"]["sha256"] == tok.fingerprint()
    assert meta["tokenizer"]["kind"] == "TrainedBPE"
    np.testing.assert_array_equal(read_split(out, "val"), expected_stream(tok, DOCS.docs, "val"))


def test_another_tokenizer_or_setting_gets_another_directory_and_a_rerun_reuses(tmp_path):
    first = tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=tmp_path, workers=1,
                     progress=False)
    stamp = (first / "meta.json").stat().st_mtime_ns
    again = run_tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=tmp_path, workers=1,
                         progress=False)
    assert again.path == first and again.encoded_tokens == 0
    assert (first / "meta.json").stat().st_mtime_ns == stamp
    others = {tokenize(DOCS, ByteLevel(extra_special_tokens=("<x>",)), val_fraction=VAL,
                       out_root=tmp_path, workers=1, progress=False),
              tokenize(DOCS, ByteLevel(), val_fraction=0.5, out_root=tmp_path, workers=1,
                       progress=False),
              tokenize(DOCS, ByteLevel(), style=Blockwise(16), val_fraction=VAL, out_root=tmp_path,
                       workers=1, progress=False),
              tokenize(make_docs(21), ByteLevel(), val_fraction=VAL, out_root=tmp_path, workers=1,
                       progress=False)}
    assert len(others | {first}) == 5


@pytest.mark.slow
def test_worker_processes_write_the_same_bytes(tmp_path):
    one = run_tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=tmp_path / "a", workers=1,
                       progress=False, chunk_documents=3).path
    two = run_tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=tmp_path / "b", workers=2,
                       progress=False, chunk_documents=3).path
    assert dir_bytes(one) == dir_bytes(two)


def test_interrupted_job_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv(FAIL_AFTER, "7")
    with pytest.raises(OSError, match="disk went away"):
        run_tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=tmp_path, workers=1,
                     progress=False, chunk_documents=2)
    [partial] = tmp_path.iterdir()
    assert not (partial / "meta.json").exists()
    assert len(list((partial / "progress").glob("chunk-*.json"))) == 3
    monkeypatch.delenv(FAIL_AFTER)
    resumed = run_tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=tmp_path, workers=1,
                           progress=False, chunk_documents=2)
    assert resumed.path == partial and resumed.resumed_chunks == 3
    clean = run_tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=tmp_path / "clean",
                         workers=1, progress=False, chunk_documents=2)
    assert dir_bytes(resumed.path) == dir_bytes(clean.path)


@pytest.mark.parametrize("again", [{"chunk_documents": 3}, {"chunk_documents": 2, "resume": False}],
                         ids=["other-chunking", "from-scratch"])
def test_changed_chunking_or_from_scratch_starts_over(tmp_path, monkeypatch, again):
    monkeypatch.setenv(FAIL_AFTER, "7")
    with pytest.raises(OSError):
        run_tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=tmp_path, workers=1,
                     progress=False, chunk_documents=2)
    monkeypatch.delenv(FAIL_AFTER)
    result = run_tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=tmp_path, workers=1,
                          progress=False, **again)
    assert result.resumed_chunks == 0
    assert result.encoded_tokens == sum(s["tokens"] for s in result.meta["splits"].values())


KILL_SCRIPT = """
import sys
from tests.data.test_tokenize_job import DOCS, VAL
from theseus.data.tokenize_job import run_tokenize
from theseus.data.tokenizers import ByteLevel
run_tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=sys.argv[1], workers=2,
             progress=False, chunk_documents=2)
"""


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is still running (a zombie counts as gone)."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_sigkill_mid_job_then_rerun_matches_an_uninterrupted_run(tmp_path):
    """Kill -9 with 6 chunks recorded, drop one record (as if killed between its shard and
    its record), rerun: meta.json and every shard equal an uninterrupted run's, byte for byte."""
    env = {**os.environ, BLOCK_AFTER: "13", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "killed")], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            records = list((tmp_path / "killed").glob("*/progress/chunk-*.json"))
            if len(records) == 6:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stdout.read().decode()
        assert len(records) == 6
        workers = children(proc.pid)
        assert len(workers) >= 2  # the two encoders (and multiprocessing's resource tracker)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 60
    while time.time() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not [pid for pid in workers if alive(pid)], "worker processes outlived their job"
    [partial] = (tmp_path / "killed").iterdir()
    assert not (partial / "meta.json").exists()
    (partial / "progress" / "chunk-00005.json").unlink()
    resumed = run_tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=tmp_path / "killed",
                           workers=1, progress=False, chunk_documents=2)
    assert resumed.resumed_chunks == 5
    clean = run_tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=tmp_path / "clean",
                         workers=1, progress=False, chunk_documents=2)
    assert dir_bytes(resumed.path) == dir_bytes(clean.path)
    assert sorted(dir_bytes(clean.path)) == sorted(
        ["meta.json"] + [s["file"] for split in clean.meta["splits"].values()
                         for s in split["shards"]])


def test_progress_bar_shows_documents_tokens_and_rate(tmp_path, capsys):
    tokenize(DOCS, ByteLevel(), val_fraction=VAL, out_root=tmp_path, workers=1, progress=True)
    err = capsys.readouterr().err
    assert "20/20" in err and "doc" in err and "tok/s" in err and "tokens" in err


def test_source_size_hint():
    assert source_size(DOCS) == 20
    assert source_size(iter([])) is None

    class Unknown(Docs):
        def num_documents(self):
            return None

    assert source_size(Unknown(())) is None


# --- bad input: one sentence each, and nothing left behind


@pytest.mark.parametrize("docs", [(), (("a", ""), ("b", b""))], ids=["no-documents", "all-empty"])
def test_empty_corpus(tmp_path, docs):
    with pytest.raises(ValueError, match=r"^test documents \(\d\) has no documents with text; "):
        tokenize(Docs(docs), ByteLevel(), out_root=tmp_path, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_empty_corpus_with_a_trained_tokenizer(tmp_path):
    with pytest.raises(ValueError, match="has no documents with text"):
        tokenize(Docs(()), TrainedBPE(300), out_root=tmp_path, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bytes_that_are_not_utf8_name_the_document_and_byte(tmp_path):
    docs = Docs((("fine", b"caf\xc3\xa9"), ("latin1", b"caf\xe9 au lait")))
    with pytest.raises(ValueError, match=r"^document 'latin1' of test documents \(2\) is not "
                                         r"UTF-8: byte 3 is b'\\xe9'; convert it"):
        tokenize(docs, ByteLevel(), out_root=tmp_path, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_chat_document_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"^document 'c0': message 0 has role 'robot'"):
        tokenize(Docs((("c0", json.dumps([{"role": "robot", "content": "hi"}])),)), ByteLevel(),
                 style=Blockwise(8, chat=ChatML()), out_root=tmp_path, workers=1, progress=False)


def test_source_that_yields_the_wrong_thing(tmp_path):
    with pytest.raises(ValueError, match=r"yielded 'just text'; a source must yield \(document id"):
        tokenize(Docs(("just text",)), ByteLevel(), out_root=tmp_path, workers=1, progress=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"seq_len": 0}, r"Blockwise.seq_len must be a whole number of tokens, at least 1, got 0."),
    ({"seq_len": 8, "pad_side": "middle"}, r"Blockwise.pad_side must be 'left' or 'right', got 'middle'."),
    ({"seq_len": 8, "truncate_side": "up"}, r"Blockwise.truncate_side must be 'left' or 'right'"),
    ({"seq_len": 8, "chat": "chatml"}, r"Blockwise.chat must be a chat template such as ChatML"),
])
def test_bad_blockwise_settings(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        Blockwise(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"val_fraction": 1.0}, r"val_fraction must be in \[0, 1\), got 1.0."),
    ({"workers": -1}, r"workers must be >= 0 \(0: one per CPU core\), got -1."),
    ({"style": "streaming"}, r"style must be Streaming\(\) or Blockwise\(seq_len=...\), got str."),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        tokenize(DOCS, ByteLevel(), out_root=tmp_path, **kwargs)
    with pytest.raises(ValueError, match=f"^{message}"):
        TokenizeJob(DOCS, ByteLevel(), **kwargs).validate()
    assert list(tmp_path.iterdir()) == []


def test_not_a_source(tmp_path):
    with pytest.raises(ValueError, match=r"^list is not a document source: it lacks documents\(\), "
                                         r"fingerprint\(\), describe\(\)."):
        tokenize([("a", "b")], ByteLevel(), out_root=tmp_path)


def test_missing_tokenizer_file(tmp_path):
    spec = HFTokenizerFile(path=str(tmp_path / "nope.json"))
    message = f"^tokenizer file {tmp_path / 'nope.json'} does not exist; check the path"
    with pytest.raises(ValueError, match=message):
        tokenize(DOCS, spec, out_root=tmp_path / "out", workers=1, progress=False)
    with pytest.raises(ValueError, match=message):
        TokenizeJob(DOCS, spec).validate()
    assert not (tmp_path / "out").exists()


def test_job_run_writes_a_summary_and_bad_data_is_a_config_error(tmp_path):
    job = TokenizeJob(DOCS, ByteLevel(), val_fraction=VAL, out_root=str(tmp_path / "data"),
                      workers=1, progress=False)
    job.validate()
    summary = job.run(tmp_path / "wd")
    assert json.loads((tmp_path / "wd" / "summary.json").read_text()) == summary
    meta = shards.read_meta(summary["dataset_dir"])
    assert summary["tokens"] == summary["encoded_tokens"] == sum(
        s["tokens"] for s in meta["splits"].values())
    assert summary["documents"] == 20 and summary["tokens_per_second"] > 0
    assert job.run(tmp_path / "wd")["tokens_per_second"] is None  # already complete
    bad = TokenizeJob(Docs((("x", b"\xff"),)), ByteLevel(), out_root=str(tmp_path / "data"),
                      workers=1, progress=False)
    with pytest.raises(ConfigError, match="document 'x' of test documents"):
        bad.run(tmp_path / "wd2")


class ArrayTokenizer:
    """A byte tokenizer that also offers ``encode_array``, the fast path for streaming."""

    def __init__(self):
        self._tok = ByteLevel().load()
        self.name, self.vocab_size, self.eot_id = "arr", self._tok.vocab_size, self._tok.eot_id
        self.special_tokens = self._tok.special_tokens
        self.calls = 0

    def encode(self, text):
        return self._tok.encode(text)

    def encode_array(self, text):
        self.calls += 1
        return np.frombuffer(text.encode(), dtype=np.uint8).astype(np.uint32)


def test_streaming_uses_encode_array_when_the_tokenizer_has_it():
    tok = ArrayTokenizer()
    docs = [("a", "hello"), ("b", "world!")]
    enc = Streaming().encode(tok, docs, np.dtype(np.uint16))
    assert tok.calls == 2
    assert enc.tokens.tolist() == [*b"hello", 256, *b"world!", 256] and enc.num_tokens == 13


class DyingTokenizer:
    """Bytes, but the process dies (as if killed for memory) on a text saying so."""

    def __init__(self):
        tok = ByteLevel().load()
        self._tok, self.name, self.vocab_size, self.eot_id = tok, "dying", 257, 256
        self.special_tokens = tok.special_tokens

    def fingerprint(self):
        return "dying"

    def encode(self, text):
        if text == "die":
            os._exit(1)
        return self._tok.encode(text)


@dataclasses.dataclass(frozen=True)
class Dying:
    """The spec of ``DyingTokenizer``."""

    name = "dying"

    def load(self):
        return DyingTokenizer()


@pytest.mark.slow
def test_a_worker_that_dies_fails_the_job_instead_of_hanging(tmp_path):
    from concurrent.futures.process import BrokenProcessPool

    docs = Docs(tuple((f"d{i}", "die" if i == 5 else f"text {i}") for i in range(8)))
    with pytest.raises(BrokenProcessPool):
        run_tokenize(docs, Dying(), val_fraction=0.0, out_root=tmp_path, workers=2,
                     progress=False, chunk_documents=1)
    [partial] = tmp_path.iterdir()
    assert not (partial / "meta.json").exists()


UNGUARDED_SCRIPT = """
from tests.data.test_tokenize_job import DOCS
from theseus.data.tokenize_job import run_tokenize
from theseus.data.tokenizers import ByteLevel
run_tokenize(DOCS, ByteLevel(), out_root=OUT, workers=2, progress=False, chunk_documents=2)
"""


@pytest.mark.slow
def test_a_script_without_the_main_guard_fails_instead_of_hanging(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(f"OUT = {str(tmp_path / 'out')!r}\n" + UNGUARDED_SCRIPT)
    result = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300, check=False)
    assert result.returncode != 0
    assert "call it under `if __name__ == \"__main__\":`" in result.stderr
