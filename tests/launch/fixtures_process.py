"""Helpers the service fixtures share: stopping a daemon they started, and setting an
environment variable for as long as a fixture lives."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Terminates a process this session started (by its handle), killing it if it lingers."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def env_set(name: str, value: str) -> Iterator[None]:
    """Sets ``$name`` inside the block and restores its previous value (or absence) after."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
