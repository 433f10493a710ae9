"""Tests for theseus.data.shards: dtypes, deterministic splits, the v2 reading API, and the
v1 single-file writer that TokenizedText uses until it calls tokenize()."""

import json

import numpy as np
import pytest

from theseus.data import shards
from theseus.data.tokenize_job import Blockwise, tokenize
from theseus.data.tokenizers import ByteLevel, TrainedBPE

DOCS = [(f"doc{i}", f"Document number {i}. " + "All the world's a stage. " * (i + 1))
        for i in range(6)]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    return TrainedBPE(300).load_or_train((text for _, text in DOCS), path), path


class ExplodingTokenizer:
    """Delegates to a real tokenizer but fails while encoding."""

    def __init__(self, tok):
        self._tok = tok
        self.name, self.vocab_size, self.eot_id = tok.name, tok.vocab_size, tok.eot_id

    def fingerprint(self):
        return self._tok.fingerprint()

    def encode_batch(self, texts):
        raise RuntimeError("disk on fire")


@pytest.mark.parametrize("vocab_size, dtype", [(257, np.uint16), (50304, np.uint16),
                                               (65536, np.uint16), (65537, np.uint32),
                                               (200_000, np.uint32), (2**32, np.uint32)])
def test_token_dtype(vocab_size, dtype):
    assert shards.token_dtype(vocab_size) == np.dtype(dtype)
    assert np.iinfo(shards.token_dtype(vocab_size)).max >= vocab_size - 1


def test_split_of_is_deterministic_and_depends_on_content():
    docs = [(f"d{i}", f"text {i}") for i in range(400)]
    first = [shards.split_of(n, t, 0.5) for n, t in docs]
    assert first == [shards.split_of(n, t, 0.5) for n, t in docs]
    assert set(first) == {"train", "val"}
    # Same name, other text (and same text, other name) lands elsewhere for some documents.
    assert first != [shards.split_of(n, t + "!", 0.5) for n, t in docs]
    assert first != [shards.split_of(n + "!", t, 0.5) for n, t in docs]


def test_split_of_respects_the_fraction():
    splits = [shards.split_of(f"d{i}", "same text", 0.1) for i in range(2000)]
    assert 0.07 < splits.count("val") / len(splits) < 0.13
    assert shards.split_of("a", "b", 0.0) == "train"
    assert shards.split_of("a", "b", 1.0) == "val"


@pytest.mark.parametrize("n", [2, 3, 10, 38])
def test_assign_splits_always_has_a_val_doc(n):
    docs = [(f"d{i}", "x") for i in range(n)]
    splits = shards.assign_splits(docs, 1e-9)
    assert len(splits["val"]) == 1
    assert sorted(splits["train"] + splits["val"]) == list(range(n))


@pytest.mark.parametrize("n", [2, 3])
def test_assign_splits_always_has_a_train_doc(n):
    docs = [(f"d{i}", "x") for i in range(n)]
    splits = shards.assign_splits(docs, 1 - 1e-9)
    assert len(splits["train"]) == 1 and len(splits["val"]) == n - 1


def test_assign_splits_partitions_and_is_stable():
    docs = [(f"d{i}", f"text {i}") for i in range(100)]
    splits = shards.assign_splits(docs, 0.2)
    assert splits == shards.assign_splits(docs, 0.2)
    assert sorted(splits["train"] + splits["val"]) == list(range(100))
    assert 5 < len(splits["val"]) < 40
    # A document's split does not depend on the other documents.
    moved = shards.assign_splits(docs[::-1], 0.2)
    assert {docs[::-1][i][0] for i in moved["val"]} == {docs[i][0] for i in splits["val"]}


def test_write_dataset(tokenizer, tmp_path):
    tok, tok_path = tokenizer
    out = tmp_path / "ds"
    splits = {"train": [0, 2, 3, 5], "val": [1, 4]}
    shards.write_dataset(out, tok_path, tok, DOCS, splits, source="Toy")
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "tokenizer.json", "train.bin",
                                                     "val.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temp dir left
    assert (out / "tokenizer.json").read_bytes() == tok_path.read_bytes()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["source"] == "Toy" and meta["dtype"] == "uint16"
    assert meta["tokenizer"] == {"name": "bpe300", "sha256": tok.fingerprint(),
                                 "vocab_size": tok.vocab_size, "eot_id": tok.eot_id}
    for split, idx in splits.items():
        info = meta["splits"][split]
        assert info["file"] == f"{split}.bin"
        assert info["documents"] == len(idx)
        assert info["names"] == [DOCS[i][0] for i in idx]
        assert (out / info["file"]).stat().st_size == 2 * info["tokens"]
        tokens = shards.load_tokens(out, split)
        assert tokens.dtype == np.uint16 and len(tokens) == info["tokens"]
        expected = [t for i in idx for t in tok.encode(DOCS[i][1]) + [tok.eot_id]]
        np.testing.assert_array_equal(tokens, expected)
        assert int((tokens == tok.eot_id).sum()) == len(idx)
        assert tok.decode(tokens[:-1]) == "".join(DOCS[i][1] for i in idx)


def test_load_tokens_unknown_split(tokenizer, tmp_path):
    tok, tok_path = tokenizer
    shards.write_dataset(tmp_path / "ds", tok_path, tok, DOCS, {"train": [0], "val": [1]}, "Toy")
    with pytest.raises(ValueError, match="no split 'test'"):
        shards.load_tokens(tmp_path / "ds", "test")


def test_failed_write_leaves_nothing(tokenizer, tmp_path):
    tok, tok_path = tokenizer
    out = tmp_path / "data" / "ds"
    with pytest.raises(RuntimeError, match="disk on fire"):
        shards.write_dataset(out, tok_path, ExplodingTokenizer(tok), DOCS,
                             {"train": [0, 1], "val": [2]}, source="Toy")
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_existing_dataset_is_not_overwritten(tokenizer, tmp_path):
    """Renaming onto a finished dataset fails instead of mixing two writes."""
    tok, tok_path = tokenizer
    out = tmp_path / "ds"
    shards.write_dataset(out, tok_path, tok, DOCS, {"train": [0, 1], "val": [2]}, "Toy")
    before = (out / "meta.json").read_bytes()
    with pytest.raises(OSError):
        shards.write_dataset(out, tok_path, tok, DOCS, {"train": [3], "val": [4]}, "Toy")
    assert (out / "meta.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


class Docs:
    """A minimal in-memory source."""

    def __init__(self, docs):
        self.docs = docs

    def documents(self):
        return iter(self.docs)

    def fingerprint(self):
        return str(hash(tuple(self.docs)))

    def describe(self):
        return "toy documents"


@pytest.fixture(scope="module")
def streaming_dir(tmp_path_factory):
    return tokenize(Docs(DOCS), ByteLevel(), val_fraction=0.3, workers=1, progress=False,
                    out_root=tmp_path_factory.mktemp("v2"))


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("THESEUS_DATA", str(tmp_path))
    assert shards.default_data_root() == tmp_path
    monkeypatch.delenv("THESEUS_DATA")
    assert shards.default_data_root() == shards.pathlib.Path("~/.cache/theseus/data").expanduser()


def test_split_shards_are_read_only_memory_maps(streaming_dir):
    meta = shards.read_meta(streaming_dir)
    for split in shards.SPLITS:
        maps = shards.split_shards(streaming_dir, split)
        assert [len(m) for m in maps] == [s["tokens"] for s in meta["splits"][split]["shards"]]
        assert all(isinstance(m, np.memmap) and m.dtype == np.uint16 and m.ndim == 1 for m in maps)
        with pytest.raises(ValueError, match="read-only"):
            maps[0][0] = 1


def test_split_masks_of_a_blockwise_dataset(tmp_path):
    out = tokenize(Docs(DOCS), ByteLevel(), style=Blockwise(seq_len=40), val_fraction=0.3,
                   workers=1, progress=False, out_root=tmp_path)
    meta = shards.read_meta(out)
    for split in shards.SPLITS:
        rows, masks = shards.split_shards(out, split), shards.split_masks(out, split)
        assert [r.shape for r in rows] == [m.shape for m in masks]
        assert sum(len(r) for r in rows) == meta["splits"][split]["rows"]
        assert all(r.shape[1] == 40 and m.dtype == np.uint8 for r, m in zip(rows, masks))
        assert sum(int(m.sum()) for m in masks) == meta["splits"][split]["tokens"]


def test_read_meta_errors(streaming_dir, tmp_path):
    with pytest.raises(ValueError, match=f"^{tmp_path} is not a prepared dataset \\(it has no "
                                         f"meta.json\\); run its tokenize job"):
        shards.read_meta(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"splits": {}}))
    with pytest.raises(ValueError, match="holds shards in format 'v1', not 'theseus-tokens-v2'"):
        shards.read_meta(tmp_path)
    with pytest.raises(ValueError, match="has no split 'test'; it has \\['train', 'val'\\]"):
        shards.split_shards(streaming_dir, "test")
    with pytest.raises(ValueError, match="is streaming; only blockwise datasets have loss masks"):
        shards.split_masks(streaming_dir, "train")
