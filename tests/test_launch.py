"""launch.py end to end: a real (tiny) training run, its outputs, resume, and user errors."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, run_launch, tiny_args


def _rows(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_train_writes_every_output_and_resumes(tmp_path):
    workdir = tmp_path / "run"
    result = run_launch(*tiny_args(workdir, "--fdl_set=trainer.sample_tokens=8"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "final validation loss" in result.stdout and "unigram entropy" in result.stdout

    for name in ("config.json", "config.txt", "metrics.jsonl", "loss.png", "summary.json"):
        assert (workdir / name).is_file(), name
    assert list((workdir / "tensorboard").iterdir())
    assert "model.num_layers = 1" in (workdir / "config.txt").read_text()

    rows = _rows(workdir)
    train_steps = [r["step"] for r in rows if "train/loss" in r]
    assert train_steps == [1, 2, 3, 4, 5, 6]
    last_train_row = [r for r in rows if "train/loss" in r][-1]
    assert {"train/loss", "tokens_per_sec", "mfu"} <= set(last_train_row)
    assert [r["step"] for r in rows if "val/loss" in r] == [3, 6]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["step"] == 6 and summary["sample"]

    # Same command with more steps: resumes from step 6, never re-logs steps 1..6.
    more = run_launch(*tiny_args(workdir, "--fdl_set=trainer.num_steps=9",
                                 "--fdl_set=trainer.sample_tokens=8"))
    assert more.returncode == 0, more.stderr[-3000:]
    train_steps = [r["step"] for r in _rows(workdir) if "train/loss" in r]
    assert train_steps == list(range(1, 10))
    assert json.loads((workdir / "summary.json").read_text())["step"] == 9


@pytest.mark.slow
def test_config_json_reloads_and_reproduces_the_run(tmp_path):
    first = tmp_path / "first"
    assert run_launch(*tiny_args(first)).returncode == 0
    second = tmp_path / "second"
    result = run_launch(f"--config={first / 'config.json'}", f"--workdir={second}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (second / "config.json").read_text() == (first / "config.json").read_text()
    losses = lambda w: [r["train/loss"] for r in _rows(w) if "train/loss" in r]  # noqa: E731
    assert losses(first) == losses(second)


BAD_INPUTS = {
    "misspelt field": (["--fdl_set=model.num_layer=2"], ["num_layer", "num_layers"]),
    "unparsable value": (["--fdl_set=trainer.num_steps=[1,"], ["trainer.num_steps"]),
    "wrong type": (["--fdl_set=trainer.num_steps=abc"], ["trainer.num_steps", "int"]),
    "invalid value": (["--fdl_set=model.num_heads=3"], ["num_heads"]),
    "missing function": (["--config=configs/gpt.py:tinyy"], ["tinyy", "tiny"]),
    "missing file": (["--config=configs/nope.py:tiny"], ["nope.py"]),
    "unknown fiddler": (["--fiddler=fast"], ["fast", "bf16"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_and_writes_nothing(tmp_path, case):
    extra, words = BAD_INPUTS[case]
    workdir = tmp_path / "run"
    result = run_launch(*tiny_args(workdir), *extra)  # a repeated --config: the last one counts
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0]
    assert not workdir.exists()


def test_a_misspelled_malloc_setting_gives_one_line_and_writes_nothing(tmp_path):
    workdir = tmp_path / "run"
    result = run_launch(*tiny_args(workdir), env={"THESEUS_MALLOC": "sytem"})
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [("error: THESEUS_MALLOC='sytem' is not a setting; set "
                      "THESEUS_MALLOC=system for the C library's malloc defaults, or unset it.")]
    assert not workdir.exists()


def test_default_workdir_is_under_runs(tmp_path):
    from theseus.config import default_workdir

    assert default_workdir("configs/gpt.py:tiny").as_posix() == "runs/gpt_tiny"
    assert (ROOT / "README.md").read_text().count("launch.py --config=configs/gpt.py:tiny") >= 1
