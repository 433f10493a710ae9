"""Tests for theseus.data.tokenizers: the byte-level BPE trained on the corpus."""

import hashlib

import pytest
import tokenizers as hf

from theseus.data.corpus import Shakespeare
from theseus.data.tokenizers import EOT, HFTokenizer, TrainedBPE


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
