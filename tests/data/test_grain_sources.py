"""Tests for theseus.data.grain_sources: lazily opened, picklable sources over token shards."""

import itertools
import json
import pickle

import numpy as np
import pytest

from tests.data.shard_writer import EOT, write_blockwise, write_streaming
from theseus.data.grain_sources import BlockRows, ShardSplit, StreamWindows

DOCS = [f"document number {i} " * (i % 5 + 1) for i in range(40)]


@pytest.fixture(scope="module")
def stream_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("stream")
    streams = write_streaming(out, {"train": DOCS, "val": DOCS[:5]}, shard_tokens=333)
    return out, streams


def split_of(directory, split="train"):
    return ShardSplit.from_meta(directory, json.loads((directory / "meta.json").read_text()), split)


def test_split_lists_every_shard(stream_dir):
    out, streams = stream_dir
    split = split_of(out)
    assert len(split.files) == -(-len(streams["train"]) // 333) > 3
    assert split.total() == len(streams["train"])
    assert not split.blockwise


def test_windows_run_across_shard_boundaries(stream_dir):
    out, streams = stream_dir
    src = StreamWindows(split_of(out), 50)
    stream = streams["train"]
    assert len(src) == (len(stream) - 1) // 50
    for i in range(len(src)):
        window = src[i]
        assert window.dtype == np.int32 and window.shape == (51,)
        np.testing.assert_array_equal(window, stream[i * 50:i * 50 + 51])
    for a, b in itertools.pairwise(src[i] for i in range(3)):
        assert a[-1] == b[0]


def test_sources_open_lazily_and_pickle_without_tokens(stream_dir):
    out, _ = stream_dir
    src = StreamWindows(split_of(out), 16)
    assert src._lazy._maps is None  # nothing opened in __init__
    first = src[3]
    assert src._lazy._maps is not None
    data = pickle.dumps(src)
    assert len(data) < 2_000  # file names and sizes, not tokens or memory maps
    copy = pickle.loads(data)
    assert copy._lazy._maps is None
    np.testing.assert_array_equal(copy[3], first)


def test_repr_is_stable_and_names_the_data(stream_dir):
    out, _ = stream_dir
    a, b = StreamWindows(split_of(out), 16), StreamWindows(split_of(out), 16)
    a[0]
    assert repr(a) == repr(b)
    assert "seq_len=16" in repr(a) and "train" in repr(a) and "shards" in repr(a)
    assert repr(a) != repr(StreamWindows(split_of(out), 8))


def test_missing_shard_is_a_clear_error(tmp_path):
    write_streaming(tmp_path, {"train": DOCS}, shard_tokens=500)
    (tmp_path / "train-00001.bin").unlink()
    with pytest.raises(ValueError, match=r"train-00001.bin listed in .* is missing; run the "
                                         r"tokenize job again"):
        split_of(tmp_path)


def test_unknown_split_is_a_clear_error(stream_dir):
    with pytest.raises(ValueError, match="has no 'test' split"):
        split_of(stream_dir[0], "test")


def test_first_format_single_file(tmp_path):
    np.arange(100, dtype=np.uint16).tofile(tmp_path / "train.bin")
    meta = {"dtype": "uint16", "splits": {"train": {"file": "train.bin", "tokens": 100}}}
    src = StreamWindows(ShardSplit.from_meta(tmp_path, meta, "train"), 10)
    assert len(src) == 9
    np.testing.assert_array_equal(src[8], np.arange(80, 91))


def blockwise_dir(tmp_path, pad_side):
    rows = np.arange(6 * 8, dtype=np.uint16).reshape(6, 8)
    masks = (np.arange(6 * 8).reshape(6, 8) % 3 == 0).astype(np.uint8)
    write_blockwise(tmp_path, {"train": rows}, {"train": masks}, pad_side=pad_side)
    return rows, masks


@pytest.mark.parametrize("pad_side", ["right", "left"])
def test_block_rows_keep_their_content_side(tmp_path, pad_side):
    rows, masks = blockwise_dir(tmp_path, pad_side)
    exact = BlockRows(split_of(tmp_path), 7)  # rows of 8 = seq_len + 1: used whole
    assert len(exact) == 6
    np.testing.assert_array_equal(exact[2]["tokens"], rows[2])
    np.testing.assert_array_equal(exact[2]["loss_mask"], masks[2])
    short = BlockRows(split_of(tmp_path), 4)
    want = slice(3, 8) if pad_side == "left" else slice(0, 5)
    np.testing.assert_array_equal(short[5]["tokens"], rows[5][want])
    np.testing.assert_array_equal(short[5]["loss_mask"], masks[5][want])


@pytest.mark.parametrize("pad_side", ["right", "left"])
def test_rows_of_exactly_seq_len_get_one_masked_pad(tmp_path, pad_side):
    rows, masks = blockwise_dir(tmp_path, pad_side)
    row = BlockRows(split_of(tmp_path), 8)[1]
    assert row["tokens"].shape == row["loss_mask"].shape == (9,)
    pad_at = 0 if pad_side == "left" else 8
    assert row["tokens"][pad_at] == EOT and row["loss_mask"][pad_at] == 0
    rest = np.delete(np.arange(9), pad_at)
    np.testing.assert_array_equal(row["tokens"][rest], rows[1])
    np.testing.assert_array_equal(row["loss_mask"][rest], masks[1])


def test_sequence_longer_than_the_rows_is_an_error(tmp_path):
    blockwise_dir(tmp_path, "right")
    with pytest.raises(ValueError, match=r"model.seq_len=9 is longer than the 8-token rows .* "
                                         r"Blockwise\(seq_len=10\)"):
        BlockRows(split_of(tmp_path), 9)


def test_styles_are_not_confused(tmp_path, stream_dir):
    blockwise_dir(tmp_path, "right")
    with pytest.raises(ValueError, match="holds blockwise rows"):
        StreamWindows(split_of(tmp_path), 4)
    with pytest.raises(ValueError, match="is a token stream"):
        BlockRows(split_of(stream_dir[0]), 4)
