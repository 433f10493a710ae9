"""Tests for theseus.data.train_on: an experiment pointed at tokenize jobs' output."""

from __future__ import annotations

import json

import fiddle as fdl
import pytest

from configs import gpt
from configs import tokenize as jobs
from theseus import runner
from theseus.config import ConfigError
from theseus.data.mixture import Mixture
from theseus.data.pipeline import Shards
from theseus.data.sources import TextFiles
from theseus.data.tiktoken_files import Tiktoken
from theseus.data.tokenize_job import tokenize
from theseus.data.tokenizers import ByteLevel
from theseus.data.train_on import dataset_dir, tokenizer_config, train_on

DOCS = 12


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tokenize runs (GPT-2 BPE, text files): their workdirs."""
    root = tmp_path_factory.mktemp("train_on")
    out = []
    for name in ("a", "b"):
        folder = root / f"corpus_{name}"
        folder.mkdir()
        for i in range(DOCS):
            (folder / f"{i}.txt").write_text(f"{name} {i}. " + "To be, or not to be. " * 30)
        cfg = jobs.text_files(pattern=f"{folder}/*.txt")
        cfg.out_root, cfg.workers, cfg.progress, cfg.val_fraction = str(root / "data"), 1, False, 0.4
        runner.run(cfg, root / f"run_{name}")
        out.append(root / f"run_{name}")
    return out


def tiny(seq_len: int = 16) -> fdl.Config:
    cfg = gpt.tiny()
    cfg.model.seq_len, cfg.trainer.batch_size = seq_len, 2
    return cfg


def test_one_run_becomes_shards_with_the_tokenizer_that_wrote_them(runs):
    cfg = tiny()
    cfg.data.packing = True
    train_on(cfg, str(runs[0]))
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert cfg.data == fdl.Config(Shards, path=summary["dataset_dir"], packing=True,
                                  tokenizer=fdl.Config(Tiktoken, name="gpt2", path="",
                                                       extra_special_tokens=()))
    assert cfg.model.vocab_size == 50304  # 50,257 rounded up to a multiple of 128
    fdl.build(cfg).validate()
    train_on(same := tiny(), summary["dataset_dir"])  # the dataset directory itself
    assert same.data.path == summary["dataset_dir"]


def test_several_runs_become_a_weighted_mixture(runs):
    cfg = tiny()
    cfg.data.worker_count, cfg.data.packing = 1, True
    train_on(cfg, *map(str, runs), weights=(3, 1))
    assert cfg.data.__fn_or_cls__ is Mixture
    assert cfg.data.weights == (3.0, 1.0) and cfg.data.worker_count == 1
    assert [d.packing for d in cfg.data.datasets] == [True, True]
    assert all("worker_count" not in d.__arguments__ for d in cfg.data.datasets)
    exp = fdl.build(cfg)
    exp.validate()
    prepared = exp.data.prepare()
    batch = next(iter(exp.data.train_loader(prepared, 16, 2, seed=0)))
    assert batch["tokens"].shape == (2, 17) and batch["segment_ids"].shape == (2, 17)


def test_tokenizer_config_from_older_meta_without_a_spec():
    assert tokenizer_config({"kind": "Tiktoken", "name": "cl100k_base"}) == \
        fdl.Config(Tiktoken, name="cl100k_base")
    assert tokenizer_config({"kind": "ByteLevel", "name": "bytes"}) == fdl.Config(ByteLevel)
    assert tokenizer_config({"kind": "HFTokenizerFile", "name": "hf-123"}) is None


def test_spec_round_trips_through_meta(tmp_path):
    (tmp_path / "a.txt").write_text("hello there")
    spec = ByteLevel(extra_special_tokens=("<|x|>",))
    out = tokenize(TextFiles(paths=(str(tmp_path / "a.txt"),)), spec, val_fraction=0.0,
                   out_root=tmp_path / "data", workers=1, progress=False)
    wrote = json.loads((out / "meta.json").read_text())["tokenizer"]
    assert fdl.build(tokenizer_config(wrote)) == spec


@pytest.mark.parametrize("args, kwargs, words", [
    ((), {}, "train_on needs at least one path"),
    (("{a}", "{b}"), {"weights": (1.0,)}, "got 1 weights for 2 paths"),
    (("{tmp}",), {}, "is neither a dataset directory (with meta.json) nor the run directory"),
], ids=["no-path", "weights", "not-a-dataset"])
def test_bad_arguments(runs, tmp_path, args, kwargs, words):
    paths = [a.format(a=runs[0], b=runs[1], tmp=tmp_path) for a in args]
    with pytest.raises(ConfigError) as e:
        train_on(tiny(), *paths, **kwargs)
    assert words in str(e.value)


def test_a_mismatched_tokenizer_set_afterwards_is_refused(runs):
    cfg = tiny()
    train_on(cfg, str(runs[0]))
    cfg.data.tokenizer = fdl.Config(ByteLevel)
    with pytest.raises(ValueError, match=r"written by tokenizer 'gpt2' \(sha256 \w{12}\), not by "
                                         r"data.tokenizer 'bytes'"):
        fdl.build(cfg).validate()


def test_dataset_dir_follows_a_run_summary(runs):
    summary = json.loads((runs[1] / "summary.json").read_text())
    assert str(dataset_dir(str(runs[1]))) == summary["dataset_dir"]


def test_a_model_vocabulary_smaller_than_the_shards_stops_the_run_before_writing(runs, tmp_path):
    """What launch.py turns into one ``error:`` line and exit 2 (a ConfigError), nothing written."""
    cfg = tiny()
    train_on(cfg, str(runs[0]))
    cfg.model.vocab_size = 1000
    with pytest.raises(ConfigError, match=r"^model.vocab_size \(1000\) is smaller than the 50257 "
                                          r"tokens of the shards in .*; raise model.vocab_size"):
        runner.run(cfg, tmp_path / "train")
    assert not (tmp_path / "train").exists()
