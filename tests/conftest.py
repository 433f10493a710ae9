"""Shared test setup: absl flags parsed (grain workers need it) and a per-session data cache."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile

import pytest
from absl import flags

flags.FLAGS.mark_as_parsed()

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Prepared datasets (tokenizer + shards) are shared by every test of the session.
os.environ.setdefault("THESEUS_DATA", tempfile.mkdtemp(prefix="theseus-test-data-"))
# Submission records (theseus status/logs) of the tests stay out of ~/.theseus.
os.environ.setdefault("THESEUS_HOME", tempfile.mkdtemp(prefix="theseus-test-home-"))

# A training run small enough for tests: seconds, not minutes.
TINY_OVERRIDES = [
    "model.num_layers=1", "model.d_model=32", "model.num_heads=2", "model.seq_len=32",
    "trainer.batch_size=8", "trainer.num_steps=6", "trainer.eval_every=3",
    "trainer.checkpoint_every=3", "trainer.eval_batches=2", "trainer.sample_tokens=0",
    "trainer.log_every=2", "optimizer.schedule.warmup_steps=1",
]


def run_launch(*args: str, env: dict[str, str] | None = None, cwd: pathlib.Path = ROOT,
               timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs ``launch.py`` in a subprocess, as a user would, and captures its output."""
    full_env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def tiny_args(workdir: pathlib.Path, *extra: str) -> list[str]:
    """launch.py arguments for the tiny preset shrunk to test size, in ``workdir``."""
    return ["--config=configs/gpt.py:tiny", f"--workdir={workdir}",
            *[f"--fdl_set={o}" for o in TINY_OVERRIDES], *extra]


@pytest.fixture
def launch():
    """The ``run_launch`` helper as a fixture."""
    return run_launch
