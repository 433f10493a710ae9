"""``workdir/status.json``: what a run is doing, for ``theseus status`` and launchers.

``state`` is one of ``running``, ``finished``, ``failed`` or ``preempted``; ``step`` and
``num_steps`` give progress; ``pid`` and ``updated`` (unix time) tell whether it is alive.
"""

from __future__ import annotations

import json
import os
import pathlib
import time

from theseus.fileio import atomic_write_text

STATES = ("running", "finished", "failed", "preempted")


def write_status(workdir: pathlib.Path, state: str, step: int, num_steps: int,
                 message: str | None = None) -> None:
    """Atomically records the run's state."""
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}; expected one of {STATES}.")
    record = {"state": state, "step": step, "num_steps": num_steps, "pid": os.getpid(),
              "updated": time.time()}
    if message:
        record["message"] = message
    atomic_write_text(workdir / "status.json", json.dumps(record) + "\n")


def read_status(workdir: pathlib.Path) -> dict | None:
    """The recorded status, or None when the run never wrote one."""
    try:
        return json.loads((workdir / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
