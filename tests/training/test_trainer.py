"""The training loop through launch.py: exact resume and 1 vs 8 simulated devices."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_launch, tiny_args


def _train_losses(workdir) -> dict[int, float]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


@pytest.mark.slow
def test_eight_simulated_devices_match_one_device(tmp_path):
    one = run_launch(*tiny_args(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-3000:]
    eight = run_launch(*tiny_args(tmp_path / "eight"),
                       env={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
    assert eight.returncode == 0, eight.stderr[-3000:]
    a, b = _train_losses(tmp_path / "one"), _train_losses(tmp_path / "eight")
    assert a.keys() == b.keys()
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-5), step


def test_batch_that_does_not_split_over_devices_is_a_clear_error(tmp_path):
    result = run_launch(*tiny_args(tmp_path / "run", "--fdl_set=trainer.batch_size=12"),
                        env={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: trainer.batch_size")
    assert not (tmp_path / "run").exists()
