"""Tests for theseus.data.sources: text files, JSON Lines and parquet on local disk."""

import gzip
import json
import os
import re

import fiddle as fdl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from theseus.data.sources import JsonLines, Parquet, TextFiles


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_text_files_by_file_paragraph_and_line(tmp_path):
    a = write(tmp_path / "a.txt", "First para\nstill first.\n\n\nSecond para.\n")
    b = write(tmp_path / "sub" / "b.txt", "héllo 🙂\r\nwörld\r\n")
    write(tmp_path / "sub" / "empty.txt", "  \n")
    source = TextFiles(paths=[str(tmp_path / "**" / "*.txt")])
    assert source.paths == (str(tmp_path / "**" / "*.txt"),)  # a list from fiddle becomes a tuple
    assert list(source.documents()) == [(str(a), a.read_text()),
                                        (str(b), "héllo 🙂\r\nwörld\r\n")]
    assert source.num_documents() == 3  # the blank file counts as a file but yields nothing
    paras = TextFiles(paths=(str(a), str(b)), split="paragraph")
    assert list(paras.documents()) == [(f"{a}:1", "First para\nstill first."),
                                       (f"{a}:5", "Second para."),
                                       (f"{b}:1", "héllo 🙂\r\nwörld")]
    assert paras.num_documents() is None
    lines = TextFiles(paths=str(b), split="line")
    assert list(lines.documents()) == [(f"{b}:1", "héllo 🙂"), (f"{b}:2", "wörld")]
    assert "one document per line" in lines.describe()


def test_fingerprint_follows_content_and_settings(tmp_path):
    path = write(tmp_path / "a.txt", "one\n\ntwo\n")
    source = TextFiles(paths=(str(path),))
    first = source.fingerprint()
    assert len(first) == 64 and first == TextFiles(paths=[str(path)]).fingerprint()
    assert TextFiles(paths=(str(path),), split="line").fingerprint() != first
    write(path, "one\n\ntwo!\n")
    os.utime(path, ns=(1, 1))  # a new mtime and size: a new fingerprint
    assert source.fingerprint() != first


def test_gzip_text_and_jsonl(tmp_path):
    text = write(tmp_path / "t.txt.gz", gzip.compress(b"zipped text\n"))
    assert list(TextFiles(paths=(str(text),)).documents()) == [(str(text), "zipped text\n")]
    rows = write(tmp_path / "r.jsonl.gz", gzip.compress(b'{"text": "a"}\n{"text": "b"}\n'))
    assert [t for _, t in JsonLines(paths=(str(rows),)).documents()] == ["a", "b"]


def test_json_lines(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"body": "alpha", "n": 1}\n\n{"body": "bêta\\n"}\n')
    source = fdl.build(fdl.Config(JsonLines, paths=[str(tmp_path / "*.jsonl")], text_field="body"))
    assert list(source.documents()) == [(f"{path}:1", "alpha"), (f"{path}:3", "bêta\n")]
    assert source.fingerprint() != JsonLines(paths=(str(path),), text_field="text").fingerprint()
    assert "field 'body'" in source.describe() and source.num_documents() is None


def test_parquet_in_batches(tmp_path):
    path = tmp_path / "d.parquet"
    texts = [f"document {i}" for i in range(10)]
    texts[3] = None
    pq.write_table(pa.table({"text": texts, "n": list(range(10))}), path, row_group_size=4)
    source = Parquet(paths=[str(path)], batch_size=3)
    docs = list(source.documents())
    assert docs == [(f"{path}:{i}", t) for i, t in enumerate(texts) if t is not None]
    assert source.num_documents() == 10
    binary = tmp_path / "b.parquet"
    pq.write_table(pa.table({"text": pa.array([b"bytes \xc3\xa9"], pa.binary())}), binary)
    assert list(Parquet(paths=(str(binary),)).documents()) == [(f"{binary}:0", "bytes é")]


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"the file .*absent.txt does not exist; check the path"):
        list(TextFiles(paths=(str(tmp_path / "absent.txt"),)).documents())
    with pytest.raises(ValueError, match=r"the file .*absent.jsonl does not exist"):
        JsonLines(paths=(str(tmp_path / "absent.jsonl"),)).fingerprint()
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path} is a folder; name its files with "
                                                   f"a glob such as '{tmp_path / '*'}'")):
        TextFiles(paths=(str(tmp_path),)).fingerprint()


def test_glob_matching_nothing(tmp_path):
    pattern = str(tmp_path / "*.parquet")
    with pytest.raises(ValueError, match=re.escape(f"the pattern '{pattern}' matches no file")):
        list(Parquet(paths=(pattern,)).documents())


def test_bytes_that_are_not_utf8(tmp_path):
    path = write(tmp_path / "bad.txt", b"fine line\nbad \xff byte\n")
    with pytest.raises(ValueError, match=r"bad.txt is not valid UTF-8 at byte offset 14 "):
        list(TextFiles(paths=(str(path),)).documents())
    with pytest.raises(ValueError, match=r"bad.txt:2 is not valid UTF-8 at byte offset 14 "):
        list(TextFiles(paths=(str(path),), split="paragraph").documents())
    rows = write(tmp_path / "bad.jsonl", b'{"text": "ok"}\n{"text": "\xe9"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2 is not valid UTF-8 at byte offset 25 "):
        list(JsonLines(paths=(str(rows),)).documents())


def test_jsonl_line_not_json_or_without_field(tmp_path):
    bad = write(tmp_path / "bad.jsonl", '{"text": "ok"}\n{"text": oops}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2 is not valid JSON \(Expecting value"):
        list(JsonLines(paths=(str(bad),)).documents())
    other = write(tmp_path / "other.jsonl", json.dumps({"content": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"other.jsonl:1 has no field 'text' \(it has: 'content'\)"):
        list(JsonLines(paths=(str(other),)).documents())
    number = write(tmp_path / "number.jsonl", '{"text": 5}\n')
    with pytest.raises(ValueError, match=r"number.jsonl:1 field 'text' is a int, not text"):
        list(JsonLines(paths=(str(number),)).documents())


def test_parquet_without_the_column(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"content": ["x"]}), path)
    with pytest.raises(ValueError, match=r"d.parquet has no column 'text' \(it has: 'content'\)"):
        list(Parquet(paths=(str(path),)).documents())
    junk = write(tmp_path / "junk.parquet", b"not parquet")
    with pytest.raises(ValueError, match=r"junk.parquet is not a readable parquet file"):
        list(Parquet(paths=(str(junk),)).documents())


def test_empty_source(tmp_path):
    path = write(tmp_path / "blank.txt", "\n\n  \n")
    with pytest.raises(ValueError, match=r"the source text files .*blank.txt \(one document per "
                                         r"paragraph\) has no documents"):
        list(TextFiles(paths=(str(path),), split="paragraph").documents())
    empty = write(tmp_path / "empty.jsonl", "")
    with pytest.raises(ValueError, match="has no documents"):
        list(JsonLines(paths=(str(empty),)).documents())


def test_bad_settings():
    with pytest.raises(ValueError, match=r"TextFiles.split must be one of file, paragraph, line"):
        TextFiles(paths=("a.txt",), split="page")
    with pytest.raises(ValueError, match=r"JsonLines.paths must be one or more non-empty paths"):
        JsonLines(paths=())
    with pytest.raises(ValueError, match=r"Parquet.batch_size must be at least 1"):
        Parquet(paths=("a.parquet",), batch_size=0)


def test_tokenize_job_reads_a_source(tmp_path):
    """A source as the tokenize job consumes it: every document once, ids as split keys."""
    from theseus.data import shards
    from theseus.data.tokenize_job import tokenize
    from theseus.data.tokenizers import ByteLevel

    rows = [{"text": f"document number {i}"} for i in range(40)]
    path = write(tmp_path / "d.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    source = JsonLines(paths=(str(path),))
    meta = shards.read_meta(tokenize(source, ByteLevel(), val_fraction=0.2, out_root=tmp_path,
                                     workers=1, progress=False))
    splits = meta["splits"]
    assert splits["train"]["documents"] + splits["val"]["documents"] == 40
    assert splits["train"]["tokens"] + splits["val"]["tokens"] == sum(
        len(r["text"]) + 1 for r in rows)
    assert meta["source"]["description"] == source.describe()
