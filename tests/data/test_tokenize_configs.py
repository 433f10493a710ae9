"""Tests for configs/tokenize.py: every job builds, and launch.py runs one end to end."""

from __future__ import annotations

import json

import fiddle as fdl
import numpy as np
import pytest

from configs import tokenize as jobs
from tests.conftest import run_launch, tiny_args
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
        (folder / f"play{i}.txt").write_text(f"Scene {i}. " + "To be, or not to be. " * 40 * (i + 1))
    return folder


@pytest.fixture
def files(corpus, tmp_path):
    """Globs of text files, JSON Lines, Parquet and chat JSON Lines, by the job that reads them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [f"Document {i}. " + "Words upon words. " * (i + 1) for i in range(6)]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    pq.write_table(pa.table({"text": texts}), tmp_path / "docs.parquet")
    chats = [{"messages": [{"role": "user", "content": f"What is {i} + 1?"},
                           {"role": "assistant", "content": f"It is {i + 1}."}]} for i in range(6)]
    (tmp_path / "chats.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    return {"text_files": f"{corpus}/*.txt", "json_lines": f"{tmp_path}/docs*.jsonl",
            "parquet": f"{tmp_path}/*.parquet", "chat": f"{tmp_path}/chat*.jsonl"}


def run_job(cfg, tmp_path) -> dict:
    """Runs a tokenize job config in-process; returns its dataset's meta.json."""
    cfg.out_root, cfg.workers, cfg.progress = str(tmp_path / "data"), 1, False
    return shards.read_meta(runner.run(cfg, tmp_path / "run")["dataset_dir"])


@pytest.mark.parametrize("name", ["json_lines", "parquet"])
def test_json_lines_and_parquet_jobs(name, files, tmp_path):
    meta = run_job(getattr(jobs, name)(pattern=files[name]), tmp_path)
    assert sum(s["documents"] for s in meta["splits"].values()) == 6
    assert meta["source"]["kind"] == {"json_lines": "JsonLines", "parquet": "Parquet"}[name]


def test_chat_job_masks_only_the_assistant(files, tmp_path):
    meta = run_job(jobs.chat(pattern=files["chat"], seq_len=48), tmp_path)
    assert meta["style"] == "blockwise" and meta["seq_len"] == 48
    tok = fdl.build(jobs.chat().tokenizer).load()
    path = tmp_path / "data" / next(p.name for p in (tmp_path / "data").iterdir())
    learned = []
    for info in meta["splits"].values():
        for shard in info["shards"]:
            rows = np.fromfile(path / shard["file"], dtype=meta["dtype"]).reshape(-1, 48)
            masks = np.fromfile(path / shard["mask"], dtype=np.uint8).reshape(-1, 48)
            learned += [r[m == 1].tolist() for r, m in zip(rows, masks)]
    assert {ids[-1] for ids in learned} == {tok.special_tokens["<|im_end|>"]}  # the turn's end
    assert sorted(tok.decode(ids[:-1]) for ids in learned) == [f"It is {i + 1}." for i in range(6)]


def args(corpus, tmp_path, *extra):
    return [f'--config=configs/tokenize.py:text_files(pattern="{corpus}/*.txt")',
            f"--workdir={tmp_path / 'run'}", f"--fdl_set=out_root={tmp_path / 'data'}",
            "--fdl_set=workers=1", "--fdl_set=val_fraction=0.5", *extra]


@pytest.mark.parametrize("name", ["shakespeare_gpt2", "shakespeare_blockwise", "text_files",
                                  "json_lines", "parquet", "chat"])
def test_jobs_build_validate_and_round_trip(name, corpus, files):
    cfg = getattr(jobs, name)()
    if name in files:
        cfg = getattr(jobs, name)(pattern=files[name])
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

    cfg = jobs.text_files(pattern=f"{corpus}/*.txt")  # again, in-process: the shards are reused
    cfg.out_root, cfg.workers, cfg.val_fraction = str(tmp_path / "data"), 1, 0.5
    again = runner.describe(runner.run(cfg, tmp_path / "again"), tmp_path / "again")
    assert again.startswith(f"already tokenized: 8 documents, {summary['tokens']:,} tokens")

    # train on it, as the configs/tokenize.py docstring shows; data wait is logged every window
    train = run_launch(*tiny_args(tmp_path / "train",
                                  f"--fiddler=configs.tokenize.train_on('{tmp_path / 'run'}')"))
    assert train.returncode == 0, train.stderr[-3000:]
    assert f"data.path = '{summary['dataset_dir']}'" in (tmp_path / "train" / "config.txt").read_text()
    rows = [json.loads(line) for line in (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()]
    waits = {r["step"]: r["train/data_wait"] for r in rows if "train/data_wait" in r}
    assert sorted(waits) == [2, 4, 6]  # log_every=2, num_steps=6
    assert all(0.0 <= w < 1.0 for w in waits.values())


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
