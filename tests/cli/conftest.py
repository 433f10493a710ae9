"""Helpers for driving the ``theseus`` command as a subprocess, as a user would."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import ROOT

BIN = pathlib.Path(sys.executable).parent  # the environment's bin/, where `theseus` lives


def run_theseus(*args: str, cwd: pathlib.Path = ROOT, env: dict[str, str] | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs the installed ``theseus`` console script and captures its output."""
    full_env = {**os.environ, "JAX_PLATFORMS": "cpu",
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    return subprocess.run([str(BIN / "theseus"), *args], check=False, cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """Asserts a user mistake was reported as one ``error:`` line with exit status 2."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def theseus():
    """The ``run_theseus`` helper as a fixture."""
    return run_theseus
