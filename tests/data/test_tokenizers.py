"""Tests for theseus.data.tokenizers: the byte-level BPE trained on the corpus, tokenizer.json
files, the byte-level tokenizer and what every backend shares (bytes input, fiddle specs)."""

import hashlib
import shutil

import fiddle as fdl
import pytest
import tokenizers as hf
from fiddle.experimental import serialization

from theseus.data.corpus import Shakespeare
from theseus.data.tokenizers import EOT, ByteLevel, HFTokenizer, HFTokenizerFile, TrainedBPE


@pytest.fixture(scope="module")
def plays():
    return list(Shakespeare().documents())


@pytest.fixture(scope="module")
def bpe2048(plays, tmp_path_factory):
    """The default tokenizer trained on the whole corpus, once for this module (~3 s)."""
    path = tmp_path_factory.mktemp("bpe2048") / "tokenizer.json"
    return TrainedBPE().load_or_train((text for _, text in plays), path), path


@pytest.fixture(scope="module")
def bpe300(plays, tmp_path_factory):
    path = tmp_path_factory.mktemp("bpe300") / "tokenizer.json"
    return TrainedBPE(300).load_or_train((text for _, text in plays[:3]), path)


def test_default_tokenizer(bpe2048):
    tok, path = bpe2048
    assert tok.vocab_size == 2048 and tok.name == "bpe2048"
    assert tok.eot_id == hf.Tokenizer.from_file(str(path)).token_to_id(EOT)
    assert tok.fingerprint() == hashlib.sha256(path.read_bytes()).hexdigest()
    # Only the finished file is left behind (written atomically).
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]


def test_small_vocab_size_as_asked(bpe300):
    assert bpe300.vocab_size == 300 and bpe300.name == "bpe300"
    assert 0 <= bpe300.eot_id < 300


def test_round_trip_plays(bpe2048, plays):
    tok, _ = bpe2048
    for name, text in plays[:2] + plays[-1:]:
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert tok.eot_id not in ids, name
        assert tok.decode(ids) == text, name
    # Learned merges compress English well below one token per byte.
    text = plays[0][1]
    assert len(tok.encode(text)) < 0.5 * len(text.encode())


@pytest.mark.parametrize("text", ["", " ", "héllo wörld — ünïcode 🙂 中文\n",
                                  "\t tabs\r\n and  spaces  ", "x" * 1000, "\x00\x01 bytes \x7f"])
def test_round_trip_any_text(bpe300, text):
    assert bpe300.decode(bpe300.encode(text)) == text


def test_encode_batch_matches_encode(bpe300, plays):
    texts = ["To be, or not to be", "", plays[1][1][:2000]]
    assert bpe300.encode_batch(texts) == [bpe300.encode(t) for t in texts]


def test_decode_drops_ids_outside_the_vocabulary(bpe300):
    ids = bpe300.encode("Fair is foul")
    assert bpe300.decode(ids + [bpe300.vocab_size, bpe300.vocab_size + 17]) == "Fair is foul"


def test_cached_file_is_reused(bpe2048, tmp_path):
    tok, path = bpe2048

    def must_not_be_read():
        raise AssertionError("the cached tokenizer was retrained")
        yield  # pragma: no cover

    again = TrainedBPE().load_or_train(must_not_be_read(), path)
    assert again.fingerprint() == tok.fingerprint()
    other = TrainedBPE().load_or_train(iter(["completely different text"] * 3), path)
    assert other.fingerprint() == tok.fingerprint()
    assert other.encode("Romeo") == tok.encode("Romeo")


def test_training_is_deterministic(plays, bpe300, tmp_path):
    again = TrainedBPE(300).load_or_train((text for _, text in plays[:3]),
                                          tmp_path / "sub" / "tokenizer.json")
    assert again.fingerprint() == bpe300.fingerprint()


@pytest.mark.parametrize("vocab_size", [0, -1, 256, 2**32 + 1])
def test_invalid_vocab_size(vocab_size):
    with pytest.raises(ValueError, match="vocab_size"):
        TrainedBPE(vocab_size)


def test_tokenizer_without_end_of_text_is_rejected(tmp_path):
    tok = hf.Tokenizer(hf.models.BPE())
    tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(["some text"], trainer=hf.trainers.BpeTrainer(
        vocab_size=300, show_progress=False, initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet()))
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    with pytest.raises(ValueError, match="endoftext"):
        HFTokenizer(path, "noeot")


# --- what every backend shares -------------------------------------------------------------


def test_trained_bpe_load_reads_what_was_trained(bpe2048):
    tok, path = bpe2048
    again = TrainedBPE().load(path)
    assert again.fingerprint() == tok.fingerprint() and again.name == "bpe2048"
    assert again.special_tokens == {EOT: tok.eot_id}


def test_trained_bpe_load_without_a_file(tmp_path):
    with pytest.raises(ValueError, match=r"does not exist"):
        TrainedBPE().load(tmp_path / "tokenizer.json")


def test_special_token_text_is_ordinary_text(bpe300):
    """A document that quotes '<|endoftext|>' does not end there."""
    ids = bpe300.encode(f"before {EOT} after")
    assert bpe300.eot_id not in ids
    assert bpe300.decode(ids) == f"before {EOT} after"
    assert bpe300.decode([bpe300.eot_id] + bpe300.encode("x")) == "x"  # specials are dropped


def test_bytes_input(bpe300):
    assert bpe300.encode("héllo".encode()) == bpe300.encode("héllo")
    assert bpe300.encode_batch([b"a b", "a b"]) == [bpe300.encode("a b")] * 2
    with pytest.raises(ValueError, match=r"not valid UTF-8 \(byte 1"):
        bpe300.encode(b"h\xe9llo")
    with pytest.raises(ValueError, match="UTF-8"):
        bpe300.encode_batch(["fine", b"\xff"])


# --- tokenizer.json files --------------------------------------------------------------------


def test_hf_tokenizer_file(bpe2048, plays):
    tok, path = bpe2048
    spec = HFTokenizerFile(str(path))
    loaded = spec.load()
    assert spec.name.startswith("hf-") and len(spec.name) == 15 and loaded.name == spec.name
    assert loaded.vocab_size == 2048 and loaded.eot_id == tok.eot_id
    assert loaded.special_tokens == {EOT: tok.eot_id}
    assert loaded.fingerprint() == tok.fingerprint() == HFTokenizerFile(str(path)).load().fingerprint()
    text = plays[3][1]
    assert loaded.decode(loaded.encode(text)) == text
    assert loaded.encode_batch([text[:500], ""]) == [loaded.encode(text[:500]), []]


def test_hf_tokenizer_file_with_extra_special_tokens(bpe2048):
    _, path = bpe2048
    tok = HFTokenizerFile(str(path), extra_special_tokens=("<|a|>", "<|b|>")).load()
    assert tok.vocab_size == 2050
    assert tok.special_tokens == {EOT: tok.eot_id, "<|a|>": 2048, "<|b|>": 2049}
    assert 2048 not in tok.encode("<|a|> text")
    assert tok.decode([2048] + tok.encode("hi") + [2049]) == "hi"
    plain = HFTokenizerFile(str(path))
    assert tok.fingerprint() != plain.load().fingerprint()
    assert HFTokenizerFile(str(path), ("<|a|>", "<|b|>")).name != plain.name


def test_hf_tokenizer_file_missing(tmp_path):
    with pytest.raises(ValueError, match=r"tokenizer file .*nope.json does not exist"):
        HFTokenizerFile(str(tmp_path / "nope.json")).load()


def test_hf_tokenizer_file_not_json(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text("this is not a tokenizer")
    with pytest.raises(ValueError, match="is not a valid tokenizer.json"):
        HFTokenizerFile(str(path)).load()


@pytest.mark.parametrize("bad", [("",), ("<|a|>", "<|a|>"), (3,)])
def test_bad_extra_special_tokens(bad):
    with pytest.raises(ValueError, match="extra_special_tokens"):
        ByteLevel(extra_special_tokens=bad)


# --- bytes ------------------------------------------------------------------------------------


def test_byte_level(plays):
    tok = ByteLevel().load()
    assert (tok.name, tok.vocab_size, tok.eot_id, tok.special_tokens) == ("bytes", 257, 256, {EOT: 256})
    text = plays[0][1]
    ids = tok.encode(text)
    assert ids == list(text.encode()) and tok.decode(ids) == text
    assert tok.encode_batch(["é", EOT]) == [[0xC3, 0xA9], list(EOT.encode())]
    assert tok.decode([256, 0x68, 0x69, 999, -1]) == "hi"
    assert tok.decode([0xC3]) == "\ufffd"  # a character cut in half
    assert len(tok.fingerprint()) == 64 and tok.fingerprint() == ByteLevel().load().fingerprint()


def test_byte_level_with_extra_special_tokens():
    spec = ByteLevel(extra_special_tokens=("<|im_start|>", EOT, "<|im_end|>"))
    tok = spec.load()
    assert tok.special_tokens == {EOT: 256, "<|im_start|>": 257, "<|im_end|>": 258}
    assert tok.vocab_size == 259 and spec.name.startswith("bytes-") and spec.name == tok.name
    assert tok.fingerprint() != ByteLevel().load().fingerprint()


def test_byte_level_rejects_bad_bytes():
    with pytest.raises(ValueError, match="not valid UTF-8"):
        ByteLevel().load().encode(b"\xc3(")


# --- specs are fiddle configs -----------------------------------------------------------------


def test_specs_round_trip_through_fiddle_json(bpe2048):
    _, path = bpe2048
    for cfg in [fdl.Config(TrainedBPE, vocab_size=300), fdl.Config(ByteLevel),
                fdl.Config(ByteLevel, extra_special_tokens=("<|im_start|>", "<|im_end|>")),
                fdl.Config(HFTokenizerFile, path=str(path), extra_special_tokens=("<|x|>",))]:
        spec = fdl.build(serialization.load_json(serialization.dump_json(cfg)))
        assert spec == fdl.build(cfg) and spec.name == fdl.build(cfg).name
    tok = fdl.build(serialization.load_json(serialization.dump_json(
        fdl.Config(HFTokenizerFile, path=str(path))))).load()
    assert tok.fingerprint() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_copy_of_a_file_has_the_same_name(bpe2048, tmp_path):
    _, path = bpe2048
    shutil.copy(path, tmp_path / "copy.json")
    assert HFTokenizerFile(str(tmp_path / "copy.json")).name == HFTokenizerFile(str(path)).name
