"""Tests for theseus.data.pipeline: preparing a corpus once, token windows, grain loaders."""

import dataclasses
import itertools
import json

import numpy as np
import pytest

from theseus.data import pipeline, shards
from theseus.data.corpus import Shakespeare
from theseus.data.pipeline import TokenizedText, TokenWindows
from theseus.data.tokenizers import TrainedBPE

SEQ = 16
BATCH = 4


@dataclasses.dataclass(frozen=True)
class FewPlays(Shakespeare):
    """The first ``count`` plays only, so that tokenizing takes well under a second."""

    count: int = 4

    def _files(self):
        return super()._files()[:self.count]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return TokenizedText(corpus=FewPlays(), tokenizer=TrainedBPE(300),
                         cache_dir=str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="module")
def prepared(data):
    return data.prepare()


def first_batches(loader, n=3):
    it = iter(loader)
    return [next(it) for _ in range(n)]


def test_prepare_writes_a_complete_dataset(data, prepared):
    assert prepared.path == data.dataset_dir(FewPlays().fingerprint())
    assert prepared.path.name == f"fewplays-{FewPlays().fingerprint()}-bpe300-val0.05"
    assert sorted(p.name for p in prepared.path.parent.iterdir()) == [prepared.path.name]
    meta = prepared.meta
    assert meta == json.loads((prepared.path / "meta.json").read_text())
    assert meta["source"] == "FewPlays"
    assert meta["tokenizer"]["vocab_size"] == prepared.tokenizer.vocab_size == 300
    assert meta["tokenizer"]["sha256"] == prepared.tokenizer.fingerprint()
    assert meta["splits"]["val"]["documents"] >= 1
    assert meta["splits"]["train"]["documents"] + meta["splits"]["val"]["documents"] == 4
    for split in ("train", "val"):
        tokens = prepared.tokens(split)
        assert len(tokens) == meta["splits"][split]["tokens"] > 10_000
        assert int(tokens.max()) < 300
        assert int((tokens == prepared.tokenizer.eot_id).sum()) == meta["splits"][split]["documents"]


def test_prepare_is_idempotent(data, prepared, monkeypatch):
    """A second prepare() neither retrains the tokenizer nor rewrites shards."""
    def fail(*args, **kwargs):
        raise AssertionError("prepare() rebuilt a dataset that already exists")

    monkeypatch.setattr(shards, "write_dataset", fail)
    monkeypatch.setattr(TrainedBPE, "load_or_train", fail)
    mtimes = {p.name: p.stat().st_mtime_ns for p in prepared.path.iterdir()}
    again = data.prepare()
    assert again.path == prepared.path and again.meta == prepared.meta
    assert again.tokenizer.fingerprint() == prepared.tokenizer.fingerprint()
    assert {p.name: p.stat().st_mtime_ns for p in again.path.iterdir()} == mtimes


def test_losing_a_build_race_is_not_an_error(data, prepared):
    """When another process finished the same dataset first, the slower build gives way."""
    meta_before = (prepared.path / "meta.json").read_bytes()
    data._build(list(FewPlays().documents()), prepared.path)
    assert (prepared.path / "meta.json").read_bytes() == meta_before
    assert sorted(p.name for p in prepared.path.parent.iterdir()) == [prepared.path.name]


def test_data_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("THESEUS_DATA", str(tmp_path / "root"))
    assert pipeline.default_data_root() == tmp_path / "root"
    data = TokenizedText(corpus=FewPlays(2), tokenizer=TrainedBPE(300), val_fraction=0.5)
    prepared = data.prepare()
    assert prepared.path.parent == tmp_path / "root"
    assert prepared.path.name.endswith("-bpe300-val0.5")
    assert (prepared.path / "meta.json").exists()


def test_default_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv("THESEUS_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert pipeline.default_data_root() == tmp_path / ".cache" / "theseus" / "data"


def test_dataset_dir_depends_on_tokenizer_and_split():
    base = TokenizedText(cache_dir="/x")
    dirs = {base.dataset_dir("f"),
            dataclasses.replace(base, tokenizer=TrainedBPE(300)).dataset_dir("f"),
            dataclasses.replace(base, val_fraction=0.1).dataset_dir("f"),
            base.dataset_dir("g")}
    assert len(dirs) == 4


@pytest.mark.parametrize("changes", [{"val_fraction": 0.0}, {"val_fraction": 1.0},
                                     {"val_fraction": -0.5}, {"worker_count": -1}])
def test_invalid_settings(changes):
    with pytest.raises(ValueError, match=next(iter(changes))):
        TokenizedText(**changes)


def test_token_windows_overlap_by_one_token():
    tokens = np.arange(100, dtype=np.uint16)
    src = TokenWindows(tokens, 10)
    assert len(src) == 9
    windows = [src[i] for i in range(len(src))]
    assert all(w.shape == (11,) and w.dtype == np.int32 for w in windows)
    np.testing.assert_array_equal(windows[0], np.arange(11))
    for a, b in itertools.pairwise(windows):
        assert a[-1] == b[0]  # the last target of one window is the first input of the next
    # Inputs of consecutive windows tile the stream without gaps.
    np.testing.assert_array_equal(np.concatenate([w[:-1] for w in windows]), tokens[:90])
    assert "seq_len=10" in repr(src)


@pytest.mark.parametrize("n_tokens, expected", [(11, 1), (20, 1), (21, 2), (10, 0), (1, 0)])
def test_token_windows_count(n_tokens, expected):
    src = TokenWindows(np.arange(n_tokens), 10)
    assert len(src) == expected
    if expected:
        assert len(src[len(src) - 1]) == 11  # the last window is full length


def test_train_batches_shape(data, prepared):
    batch = next(iter(data.train_loader(prepared, SEQ, BATCH, seed=0)))
    assert batch.shape == (BATCH, SEQ + 1) and batch.dtype == np.int32
    assert batch.min() >= 0 and batch.max() < 300


def test_same_seed_same_batches(data, prepared):
    a = first_batches(data.train_loader(prepared, SEQ, BATCH, seed=7))
    b = first_batches(data.train_loader(prepared, SEQ, BATCH, seed=7))
    c = first_batches(data.train_loader(prepared, SEQ, BATCH, seed=8))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], a[1])


def test_batches_are_windows_of_the_train_split(data, prepared):
    source = TokenWindows(prepared.tokens("train"), SEQ)
    windows = {tuple(source[i]) for i in range(len(source))}
    for batch in first_batches(data.train_loader(prepared, SEQ, BATCH, seed=0)):
        assert all(tuple(row) in windows for row in batch)


def test_iterator_state_restores_the_next_batch(data, prepared):
    it = iter(data.train_loader(prepared, SEQ, BATCH, seed=3))
    next(it), next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(3)]

    resumed = iter(data.train_loader(prepared, SEQ, BATCH, seed=3))
    resumed.set_state(state)
    for want in expected:
        np.testing.assert_array_equal(next(resumed), want)


def test_val_batches_are_fixed_and_ordered(data, prepared):
    a = data.val_batches(prepared, SEQ, BATCH, max_batches=3)
    b = data.val_batches(prepared, SEQ, BATCH, max_batches=3)
    assert len(a) == 3
    for x, y in zip(a, b):
        assert x.shape == (BATCH, SEQ + 1) and x.dtype == np.int32
        np.testing.assert_array_equal(x, y)
    val = np.asarray(prepared.tokens("val"))
    stacked = np.concatenate(a)
    np.testing.assert_array_equal(stacked[0], val[:SEQ + 1])
    np.testing.assert_array_equal(stacked[:, :-1].reshape(-1), val[:3 * BATCH * SEQ])


def test_val_batches_capped_by_available_windows(data, prepared):
    n_windows = len(TokenWindows(prepared.tokens("val"), SEQ))
    batches = data.val_batches(prepared, SEQ, BATCH, max_batches=10**9)
    assert len(batches) == n_windows // BATCH


def test_batch_larger_than_the_data_is_an_error(data, prepared):
    n_train = len(TokenWindows(prepared.tokens("train"), 1024))
    with pytest.raises(ValueError, match="trainer.batch_size"):
        data.train_loader(prepared, 1024, n_train + 1, seed=0)
    n_val = len(TokenWindows(prepared.tokens("val"), 1024))
    with pytest.raises(ValueError, match="data.val_fraction"):
        data.val_batches(prepared, 1024, n_val + 1, max_batches=1)
