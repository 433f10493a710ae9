"""bench/profile_step.py: it profiles the tiny preset and names the ops that took the time."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_profiles_tiny_and_lists_ops_and_kinds():
    out = subprocess.run([sys.executable, "bench/profile_step.py", "--preset=tiny",
                          "--precision=float32", "--steps=1", "--top=5"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    lines = out.splitlines()
    assert lines[0].startswith("tiny, float32: ") and "ms in ops" in lines[0]
    assert len([line for line in lines if " ms  " in line]) == 5
    assert lines[-1].startswith("by kind: ")
