"""Tests for theseus.data.spm: SentencePiece models, trained here on a play."""

import io

import fiddle as fdl
import pytest
import sentencepiece
from fiddle.experimental import serialization

from theseus.data.corpus import Shakespeare
from theseus.data.spm import SentencePiece


@pytest.fixture(scope="module")
def plays():
    return list(Shakespeare().documents())


def train(lines, path, **options):
    """Writes a small BPE model trained on ``lines`` (well under a second) to ``path``."""
    model = io.BytesIO()
    settings = {"vocab_size": 600, "model_type": "bpe", "byte_fallback": True, "num_threads": 1,
                "normalization_rule_name": "identity", "remove_extra_whitespaces": False,
                "minloglevel": 2}
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model,
                                             **{**settings, **options})
    path.write_bytes(model.getvalue())
    return path


@pytest.fixture(scope="module")
def model_path(plays, tmp_path_factory):
    return train(plays[0][1].splitlines(), tmp_path_factory.mktemp("spm") / "play.model")


def test_round_trip_and_identity(model_path, plays):
    spec = SentencePiece(str(model_path))
    tok = spec.load()
    assert tok.vocab_size == 600 and tok.name == spec.name and spec.name.startswith("spm-")
    assert tok.eot_id == 2 and tok.special_tokens == {"<s>": 1, "</s>": 2}
    for _, text in plays[:2]:  # the second play was not seen in training
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert len(ids) < 0.6 * len(text)
        assert tok.eot_id not in ids
    for text in ["", "héllo wörld — ünïcode 🙂 中文\n", "\t tabs\r\n and  spaces  ", "</s> <s>"]:
        assert tok.decode(tok.encode(text)) == text
    texts = [plays[1][1][:2000], "", b"bytes"]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]
    assert tok.decode([1, *tok.encode("Puck"), 2, 600, -1]) == "Puck"
    assert tok.fingerprint() == SentencePiece(str(model_path)).load().fingerprint()
    assert len(tok.fingerprint()) == 64


def test_other_end_of_text_piece(model_path):
    tok = SentencePiece(str(model_path), eot="<s>").load()
    assert tok.eot_id == 1
    assert tok.fingerprint() != SentencePiece(str(model_path)).load().fingerprint()
    assert SentencePiece(str(model_path), eot="<s>").name != SentencePiece(str(model_path)).name
    with pytest.raises(ValueError, match=r"has no piece '<\|endoftext\|>' to end texts with"):
        SentencePiece(str(model_path), eot="<|endoftext|>").load()


def test_model_without_end_of_text(plays, tmp_path):
    path = train(plays[0][1].splitlines()[:2000], tmp_path / "noeos.model", eos_id=-1,
                 vocab_size=400)
    with pytest.raises(ValueError, match=r"has no end-of-text token \(it was trained with eos_id=-1\)"):
        SentencePiece(str(path)).load()


def test_missing_model(tmp_path):
    with pytest.raises(ValueError, match=r"SentencePiece model .*absent.model does not exist"):
        SentencePiece(str(tmp_path / "absent.model")).load()


def test_not_a_model(tmp_path):
    path = tmp_path / "junk.model"
    path.write_bytes(b"\x00\x01 not a protobuf at all " * 10)
    with pytest.raises(ValueError, match="is not a SentencePiece model"):
        SentencePiece(str(path)).load()


def test_bad_bytes(model_path):
    with pytest.raises(ValueError, match="not valid UTF-8"):
        SentencePiece(str(model_path)).load().encode(b"caf\xe9")


def test_spec_round_trips_through_fiddle_json(model_path):
    cfg = fdl.Config(SentencePiece, path=str(model_path), eot="</s>")
    spec = fdl.build(serialization.load_json(serialization.dump_json(cfg)))
    assert spec == SentencePiece(str(model_path), eot="</s>")
    assert spec.load().encode("Lysander") == SentencePiece(str(model_path)).load().encode("Lysander")
