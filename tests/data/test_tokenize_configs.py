"""Tests for configs/tokenize.py: every job builds, and launch.py runs one end to end."""

from __future__ import annotations

import json

import fiddle as fdl
import pytest

from configs import tokenize as jobs
from tests.conftest import run_launch
from theseus import runner
from theseus.config import ConfigError, from_json, to_json
from theseus.data import shards
from theseus.data.tokenize_job import TokenizeJob


@pytest.fixture
def corpus(tmp_path):
    """Eight small text files, one document each."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(8):
        (folder / f"play{i}.txt").write_text(f"Scene {i}. " + "To be, or not to be. " * (i + 1))
    return folder


def args(corpus, tmp_path, *extra):
    return [f'--config=configs/tokenize.py:text_files(pattern="{corpus}/*.txt")',
            f"--workdir={tmp_path / 'run'}", f"--fdl_set=out_root={tmp_path / 'data'}",
            "--fdl_set=workers=1", *extra]


@pytest.mark.parametrize("name", ["shakespeare_gpt2", "shakespeare_blockwise", "text_files"])
def test_jobs_build_validate_and_round_trip(name, corpus):
    cfg = getattr(jobs, name)()
    if name == "text_files":
        cfg = jobs.text_files(pattern=f"{corpus}/*.txt")
    assert from_json(to_json(cfg)) == cfg
    job = fdl.build(cfg)
    assert isinstance(job, TokenizeJob)
    job.validate()


@pytest.mark.slow
def test_launch_tokenizes_text_files_then_reuses_them(corpus, tmp_path):
    result = run_launch(*args(corpus, tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tokenized 8 documents, ") and "tokens/s" in lines[0]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert f"dataset directory: {summary['dataset_dir']}" in lines
    meta = shards.read_meta(summary["dataset_dir"])
    assert meta["tokenizer"]["name"] == "gpt2" and meta["source"]["kind"] == "TextFiles"
    assert summary["tokens"] == sum(s["tokens"] for s in meta["splits"].values())
    assert (tmp_path / "run" / "config.json").exists()
    assert "tok/s" in result.stderr  # the progress bar

    again = run_launch(*args(corpus, tmp_path))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"already tokenized: 8 documents, {summary['tokens']:,} tokens")


@pytest.mark.slow
def test_launch_bad_input_gives_one_line_and_writes_nothing(corpus, tmp_path):
    result = run_launch(*args(corpus, tmp_path, "--fdl_set=tokenizer.path=/no/such/encoder.json"))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [("error: gpt2 vocabulary file /no/such/encoder.json does not exist; check "
                      "the path in the tokenizer config.")], result.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize("change, words", [
    ({"val_fraction": 1.5}, "val_fraction must be in [0, 1), got 1.5."),
    ({"pattern": "none/*.txt"}, "none/*.txt"),
], ids=["bad-val-fraction", "glob-matches-nothing"])
def test_bad_job_fails_before_writing(corpus, tmp_path, change, words):
    cfg = jobs.text_files(pattern=f"{corpus}/{change.get('pattern', '*.txt')}")
    cfg.out_root = str(tmp_path / "data")
    cfg.val_fraction = change.get("val_fraction", 0.05)
    with pytest.raises(ConfigError) as e:
        runner.run(cfg, tmp_path / "run")
    assert words in str(e.value)
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def test_runner_runs_a_tokenize_job_in_process(corpus, tmp_path):
    cfg = jobs.text_files(pattern=f"{corpus}/*.txt")
    cfg.out_root, cfg.workers, cfg.progress = str(tmp_path / "data"), 1, False
    summary = runner.run(cfg, tmp_path / "run")
    text = runner.describe(summary, tmp_path / "run")
    assert text.startswith("tokenized 8 documents, ")
    assert f"dataset directory: {summary['dataset_dir']}" in text.splitlines()
    assert (tmp_path / "run" / "config.json").exists()
