"""`theseus run` end to end on the tiny test config, then `status` and `sample` on its run."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import run_theseus
from tests.conftest import TINY_OVERRIDES


@pytest.mark.slow
def test_configure_run_status_sample(tmp_path):
    config = tmp_path / "tiny_test.py"
    made = run_theseus("configure", "gpt:tiny", str(config), *TINY_OVERRIDES)
    assert made.returncode == 0, made.stderr
    runs = tmp_path / "runs"

    result = run_theseus("run", "tiny", str(config), str(runs))
    assert result.returncode == 0, result.stderr[-3000:]
    workdir = runs / "tiny"
    assert "final validation loss" in result.stdout and f"run directory: {workdir}" in result.stdout
    for name in ("config.json", "config.txt", "metrics.jsonl", "summary.json", "status.json"):
        assert (workdir / name).is_file(), name
    assert json.loads((workdir / "summary.json").read_text())["step"] == 6
    assert "model.num_layers = 1" in (workdir / "config.txt").read_text()

    status = run_theseus("status", str(runs))
    assert status.returncode == 0, status.stderr
    row = status.stdout.splitlines()[1].split()
    assert row[:2] == ["tiny", "6/6"] and row[3] == "finished"

    sampled = run_theseus("sample", str(workdir), "--prompt", "ROMEO:", "--tokens", "5")
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    lines = sampled.stdout.splitlines()
    assert lines[0] == f"[{workdir}, step 6]" and lines[1].startswith("ROMEO:")
    assert len(lines[1]) > len("ROMEO:")
    best = run_theseus("sample", str(workdir), "--best", "--tokens", "3")
    assert best.returncode == 0 and best.stdout.startswith(f"[{workdir}, step 6]"), best.stderr[-3000:]

    # The run exists, so the same name resumes it; a config that changes the math is refused.
    changed = run_theseus("run", "tiny", str(config), str(runs), "model.num_layers=2")
    assert changed.returncode == 2 and changed.stderr.startswith("error: ")
    assert "model.num_layers: 1 -> 2" in changed.stderr and "Traceback" not in changed.stderr
    assert json.loads((workdir / "summary.json").read_text())["step"] == 6


def test_a_misspelled_malloc_setting_stops_run_before_anything_is_written(tmp_path):
    from tests.cli.conftest import one_error_line

    result = run_theseus("run", "t", "gpt:tiny", str(tmp_path / "runs"),
                         env={"THESEUS_MALLOC": "sytem"})
    assert "THESEUS_MALLOC='sytem' is not a setting" in one_error_line(result)
    assert not (tmp_path / "runs").exists()
