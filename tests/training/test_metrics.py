"""metrics.jsonl rows, resume truncation, and MFU arithmetic."""

from __future__ import annotations

import json
import subprocess
import sys

import jax.numpy as jnp
import pytest

from theseus.training.metrics import MetricsLogger, read_metrics, truncate_metrics
from theseus.training.mfu import measure_matmul_peak, mfu, peak_flops


def test_rows_are_written_only_on_flush_one_per_step(tmp_path):
    logger = MetricsLogger(tmp_path, tokens_per_step=100, flops_per_token=6.0, peak_flops=1e6,
                           start_step=0)
    for step in (1, 2, 3):
        logger.push(step, {"train/loss": jnp.float32(step)})
    assert read_metrics(tmp_path / "metrics.jsonl") == []  # nothing fetched yet
    last = logger.flush()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert [r["train/loss"] for r in rows] == [1.0, 2.0, 3.0]
    assert last["step"] == 3 and last["tokens_per_sec"] > 0
    assert last["mfu"] == pytest.approx(last["tokens_per_sec"] * 6.0 / 1e6)
    logger.write(3, {"val/loss": 2.5})
    logger.close()
    assert list((tmp_path / "tensorboard").iterdir())


def test_truncate_drops_rows_after_the_restored_step_and_torn_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "train/loss": float(s)} for s in range(1, 6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 6, "tr')
    assert len(read_metrics(path)) == 5
    truncate_metrics(path, 3)
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3]


def test_mfu_and_measured_peak():
    assert mfu(1000.0, 6e6, 1e10) == pytest.approx(0.6)
    assert measure_matmul_peak(n=128, repeats=2) > 0
    peak, source = peak_flops()
    assert peak > 0 and "CPU" in source and "f32 matmul" in source


def test_the_cpu_peak_follows_the_matmul_precision():
    assert measure_matmul_peak(n=128, repeats=2, precision="bfloat16") > 0
    peak, source = peak_flops("bfloat16")
    assert peak > 0 and "bf16 x bf16 -> f32 matmul" in source


def test_importing_metrics_does_not_import_torch():
    """tensorboardX would import torch (seconds of start-up); metrics hides it."""
    code = ("import sys, theseus.training.metrics as m; "
            "assert m.SummaryWriter.__name__ == 'SummaryWriter'; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_torch_imported_first_stays_usable():
    """When torch is already imported, metrics leaves it in place."""
    pytest.importorskip("torch")
    code = ("import torch, sys, theseus.training.metrics; "
            "print(sys.modules['torch'] is torch and torch.zeros(2).sum().item() == 0.0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "True"
