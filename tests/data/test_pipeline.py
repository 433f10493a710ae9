"""Tests for theseus.data.pipeline: the data configs (TokenizedText, Shards), grain loaders,
resume exactness (with worker processes too), packing and blockwise batches, the checks
made before training (the data-wait metric of a real run: test_tokenize_configs.py)."""

import dataclasses
import itertools
import json
import pathlib

import fiddle as fdl
import numpy as np
import pytest

from configs import gpt
from tests.data.resume_check import assert_resumes_at_the_next_batch
from tests.data.shard_writer import write_blockwise, write_streaming
from theseus.data import pipeline
from theseus.data.corpus import Shakespeare
from theseus.data.pipeline import Shards, TokenizedText, TokenWindows
from theseus.data.styles import Blockwise
from theseus.data.tiktoken_files import Tiktoken
from theseus.data.tokenizers import ByteLevel, TrainedBPE

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
    return TokenizedText(corpus=FewPlays(), tokenizer=TrainedBPE(300), val_fraction=0.3,
                         cache_dir=str(tmp_path_factory.mktemp("data")), tokenize_workers=1)


@pytest.fixture(scope="module")
def prepared(data):
    return data.prepare()


def first_batches(loader, n=3):
    it = iter(loader)
    return [next(it) for _ in range(n)]


def test_prepare_writes_a_complete_dataset(data, prepared):
    assert prepared.path.parent == pathlib.Path(data.cache_dir)
    meta = prepared.meta
    assert meta == json.loads((prepared.path / "meta.json").read_text())
    assert meta["format"] == "theseus-tokens-v2" and meta["style"] == "streaming"
    assert meta["tokenizer"]["vocab_size"] == prepared.tokenizer.vocab_size == 300
    assert meta["tokenizer"]["sha256"] == prepared.tokenizer.fingerprint()
    assert meta["splits"]["train"]["documents"] + meta["splits"]["val"]["documents"] == 4
    for split in ("train", "val"):
        tokens = prepared.tokens(split)
        assert len(tokens) == meta["splits"][split]["tokens"] > 10_000
        assert int(tokens.max()) < 300
        assert int((tokens == prepared.tokenizer.eot_id).sum()) == meta["splits"][split]["documents"]


def test_prepare_is_cached(data, prepared):
    """A second prepare() neither retrains the tokenizer nor rewrites shards."""
    mtimes = {p.name: p.stat().st_mtime_ns for p in prepared.path.iterdir()}
    again = data.prepare()
    assert again.path == prepared.path and again.meta == prepared.meta
    assert again.tokenizer.fingerprint() == prepared.tokenizer.fingerprint()
    assert {p.name: p.stat().st_mtime_ns for p in again.path.iterdir()} == mtimes


@pytest.mark.parametrize("spec", [ByteLevel(), Tiktoken(name="gpt2")], ids=["bytes", "gpt2"])
def test_any_tokenizer_backend(tmp_path, spec):
    data = TokenizedText(corpus=FewPlays(2), tokenizer=spec, val_fraction=0.5,
                         cache_dir=str(tmp_path), tokenize_workers=1)
    prepared = data.prepare()
    assert prepared.tokenizer.fingerprint() == prepared.meta["tokenizer"]["sha256"]
    batch = next(iter(data.train_loader(prepared, SEQ, BATCH, seed=0)))
    assert batch.shape == (BATCH, SEQ + 1) and int(batch.max()) < prepared.tokenizer.vocab_size
    assert prepared.tokenizer.decode(batch[0]).strip()


def test_another_tokenizer_gets_another_directory(tmp_path):
    a = TokenizedText(corpus=FewPlays(1), tokenizer=ByteLevel(), cache_dir=str(tmp_path),
                      tokenize_workers=1)
    b = dataclasses.replace(a, tokenizer=ByteLevel(extra_special_tokens=("<x>",)))
    assert a.prepare().path != b.prepare().path


def test_data_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("THESEUS_DATA", str(tmp_path / "root"))
    data = TokenizedText(corpus=FewPlays(2), tokenizer=ByteLevel(), val_fraction=0.5,
                         tokenize_workers=1)
    assert data.prepare().path.parent == tmp_path / "root"


@pytest.mark.parametrize("changes", [{"val_fraction": 0.0}, {"val_fraction": 1.0},
                                     {"val_fraction": -0.5}, {"worker_count": -1},
                                     {"worker_buffer_size": 0}, {"tokenize_workers": -1}])
def test_invalid_settings(changes):
    with pytest.raises(ValueError, match=next(iter(changes))):
        TokenizedText(**changes)


def test_token_windows_overlap_by_one_token():
    tokens = np.arange(100, dtype=np.uint16)
    src = TokenWindows(tokens, 10)
    assert len(src) == 9
    windows = [src[i] for i in range(len(src))]
    assert all(w.shape == (11,) and w.dtype == np.int32 for w in windows)
    for a, b in itertools.pairwise(windows):
        assert a[-1] == b[0]  # the last target of one window is the first input of the next
    np.testing.assert_array_equal(np.concatenate([w[:-1] for w in windows]), tokens[:90])
    assert "seq_len=10" in repr(src)


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
    assert_resumes_at_the_next_batch(lambda: data.train_loader(prepared, SEQ, BATCH, seed=3), 2, 3)


@pytest.mark.slow
def test_resume_with_worker_processes(data, prepared):
    """Two grain worker processes: a restored position continues at exactly the next batch."""
    workers = dataclasses.replace(data, worker_count=2, worker_buffer_size=2)
    assert_resumes_at_the_next_batch(lambda: workers.train_loader(prepared, SEQ, BATCH, seed=4), 5, 3)


def test_each_process_reads_its_own_share(data, prepared):
    """Two JAX processes: disjoint training windows, validation rows split in order."""
    source = TokenWindows(np.arange(64 * SEQ + 1), SEQ)  # window i starts with token i * SEQ
    shares = []
    for rank in range(2):
        it = iter(pipeline.train_loader(source, 2 * BATCH, 0, 0, 1, process=(rank, 2)))
        batches = [next(it) for _ in range(64 // (2 * BATCH))]  # one epoch
        assert batches[0].shape == (BATCH, SEQ + 1)
        shares.append({int(row[0]) // SEQ for b in batches for row in b})
    assert not shares[0] & shares[1] and shares[0] | shares[1] == set(range(64))
    val_source = data.source(prepared, "val", SEQ)
    halves = [pipeline.val_batches(val_source, 2 * BATCH, 1, process=(r, 2))[0] for r in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(halves),
                                  pipeline.val_batches(val_source, 2 * BATCH, 1)[0])


def test_packed_batches_keep_document_boundaries(data, prepared):
    packed = dataclasses.replace(data, packing=True)
    plain = first_batches(data.train_loader(prepared, SEQ, BATCH, seed=1), 2)
    batches = first_batches(packed.train_loader(prepared, SEQ, BATCH, seed=1), 2)
    eot = prepared.tokenizer.eot_id
    for want, batch in zip(plain, batches):
        assert set(batch) == {"tokens", "segment_ids", "positions"}
        np.testing.assert_array_equal(batch["tokens"], want)
        assert (batch["segment_ids"][:, 0] == 1).all() and (batch["positions"][:, 0] == 0).all()
        starts = np.diff(batch["segment_ids"], axis=1) == 1
        np.testing.assert_array_equal(starts, batch["tokens"][:, 1:] == eot)
    val = packed.val_batches(prepared, SEQ, BATCH, max_batches=1)[0]
    assert val["positions"].shape == (BATCH, SEQ + 1)


def test_val_batches_are_fixed_and_ordered(data, prepared):
    a = data.val_batches(prepared, SEQ, BATCH, max_batches=3)
    b = data.val_batches(prepared, SEQ, BATCH, max_batches=3)
    assert len(a) == 3
    for x, y in zip(a, b):
        assert x.shape == (BATCH, SEQ + 1) and x.dtype == np.int32
        np.testing.assert_array_equal(x, y)
    val = np.asarray(prepared.tokens("val"))
    stacked = np.concatenate(a)
    np.testing.assert_array_equal(stacked[:, :-1].reshape(-1), val[:3 * BATCH * SEQ])


def test_split_too_small_for_the_batch_is_an_error(data, prepared):
    n_train = len(TokenWindows(prepared.tokens("train"), 1024))
    with pytest.raises(ValueError, match="fewer than trainer.batch_size"):
        data.train_loader(prepared, 1024, n_train + 1, seed=0)
    n_val = len(TokenWindows(prepared.tokens("val"), 1024))
    with pytest.raises(ValueError, match="data.val_fraction"):
        data.val_batches(prepared, 1024, n_val + 1, max_batches=1)


# --- Shards written by a tokenize job


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "ds"
    docs = [f"line {i} of the test corpus. " * 3 for i in range(60)]
    streams = write_streaming(out, {"train": docs, "val": docs[:10]}, shard_tokens=700)
    return out, streams


def test_shards_serve_windows_across_files(shard_dir):
    out, streams = shard_dir
    data = Shards(path=str(out), tokenizer=ByteLevel())
    prepared = data.prepare()
    assert prepared.tokenizer.eot_id == 256 and len(prepared.split("train").files) > 3
    windows = {tuple(streams["train"][i * SEQ:i * SEQ + SEQ + 1].astype(int))
               for i in range((len(streams["train"]) - 1) // SEQ)}
    for batch in first_batches(data.train_loader(prepared, SEQ, BATCH, seed=0), 5):
        assert all(tuple(row) in windows for row in batch)
    data.check(SEQ, 257)


def test_blockwise_shards_give_tokens_and_loss_mask(tmp_path):
    rows = np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) % 200
    masks = (rows % 2).astype(np.uint8)
    write_blockwise(tmp_path, {"train": rows, "val": rows}, {"train": masks, "val": masks})
    data = Shards(path=str(tmp_path), tokenizer=ByteLevel())
    batch = next(iter(data.train_loader(data.prepare(), 9, BATCH, seed=0)))
    assert set(batch) == {"tokens", "loss_mask"} and batch["tokens"].shape == (BATCH, 10)
    np.testing.assert_array_equal(batch["loss_mask"], batch["tokens"] % 2)
    with pytest.raises(ValueError, match="data.packing applies to streaming shards"):
        dataclasses.replace(data, packing=True).train_loader(data.prepare(), 9, BATCH, seed=0)


def test_blockwise_style_of_tokenized_text(tmp_path):
    data = TokenizedText(corpus=FewPlays(4), tokenizer=ByteLevel(), val_fraction=0.3,
                         style=Blockwise(seq_len=SEQ + 1), cache_dir=str(tmp_path),
                         tokenize_workers=1)
    prepared = data.prepare()
    batch = data.val_batches(prepared, SEQ, 1, max_batches=1)[0]
    assert batch["tokens"].shape == batch["loss_mask"].shape == (1, SEQ + 1)
    assert batch["loss_mask"].all()  # plays are longer than a row: no padding


# --- checks made before training (Experiment.validate), one sentence each


def experiment(data, **model):
    cfg = gpt.tiny()
    cfg.data = data
    for k, v in {"seq_len": SEQ, **model}.items():
        setattr(cfg.model, k, v)
    return fdl.build(cfg)


def test_tokenizer_larger_than_the_model_vocabulary(shard_dir):
    exp = experiment(fdl.Config(Shards, path=str(shard_dir[0]), tokenizer=ByteLevel()),
                     vocab_size=200)
    with pytest.raises(ValueError, match=r"^model.vocab_size \(200\) is smaller than the 257 "
                                         r"tokens of the shards in .*; raise model.vocab_size"):
        exp.validate()
    tiktoken = experiment(fdl.Config(TokenizedText, tokenizer=Tiktoken(name="gpt2")))
    with pytest.raises(ValueError, match=r"smaller than the 50257 tokens of data.tokenizer"):
        tiktoken.validate()


def test_shards_of_another_tokenizer(shard_dir):
    exp = experiment(fdl.Config(Shards, path=str(shard_dir[0]),
                                tokenizer=ByteLevel(extra_special_tokens=("<x>",))))
    with pytest.raises(ValueError, match=r"^the shards in .* were written by tokenizer 'bytes' "
                                         r"\(sha256 \w{12}\), not by data.tokenizer 'bytes-\w+' .*; "
                                         r"set data.tokenizer to the one that wrote them"):
        exp.validate()


def test_sequence_longer_than_the_blockwise_rows(tmp_path):
    rows = np.zeros((4, 33), dtype=np.uint16)
    write_blockwise(tmp_path, {"train": rows, "val": rows}, {"train": rows, "val": rows})
    exp = experiment(fdl.Config(Shards, path=str(tmp_path), tokenizer=ByteLevel()), seq_len=64)
    with pytest.raises(ValueError, match=r"^model.seq_len=64 is longer than the 33-token rows"):
        exp.validate()
    experiment(fdl.Config(Shards, path=str(tmp_path), tokenizer=ByteLevel()), seq_len=32).validate()


def test_empty_split_of_the_shards_is_refused_before_training(tmp_path):
    write_streaming(tmp_path, {"train": ["x" * 99], "val": ["y" * 19]})  # +1 end-of-text each
    exp = experiment(fdl.Config(Shards, path=str(tmp_path), tokenizer=ByteLevel()), seq_len=32)
    with pytest.raises(ValueError, match=r"^the val split of the shards in .* has no sequence of 33 "
                                         r"tokens \(it has 20 tokens\); raise val_fraction"):
        exp.validate()
    experiment(fdl.Config(Shards, path=str(tmp_path), tokenizer=ByteLevel()), seq_len=16).validate()


def test_packing_blockwise_rows_is_refused_before_training(tmp_path):
    rows = np.zeros((4, 33), dtype=np.uint16)
    write_blockwise(tmp_path, {"train": rows, "val": rows}, {"train": rows, "val": rows})
    for data in (fdl.Config(Shards, path=str(tmp_path), tokenizer=ByteLevel(), packing=True),
                 fdl.Config(TokenizedText, tokenizer=ByteLevel(), packing=True,
                            style=Blockwise(seq_len=64))):
        with pytest.raises(ValueError, match=r"^data.packing applies to streaming shards, but "
                                             r".* holds blockwise rows .*; set data.packing=False"):
            experiment(data, seq_len=32).validate()


def test_blockwise_style_shorter_than_the_sequence():
    data = TokenizedText(tokenizer=ByteLevel(), style=Blockwise(seq_len=SEQ))
    data.check(SEQ, 257)
    with pytest.raises(ValueError, match=rf"model.seq_len={SEQ + 1} is longer than the {SEQ}-token "
                                         rf"rows of the blockwise shards in data.style"):
        data.check(SEQ + 1, 257)


def test_missing_shards_directory(tmp_path):
    exp = experiment(fdl.Config(Shards, path=str(tmp_path / "nothing"), tokenizer=ByteLevel()))
    with pytest.raises(ValueError, match=r"is not a prepared dataset \(it has no meta.json\)"):
        exp.validate()
    with pytest.raises(ValueError, match="data.path is empty"):
        Shards(tokenizer=ByteLevel())
