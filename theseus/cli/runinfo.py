"""What a run directory says about its run: state, progress, last loss, last activity.

Read from ``status.json`` when the trainer wrote one (``running`` is double-checked against
the workdir lock: a dead process on this machine means ``stopped``); otherwise inferred:
``summary.json`` means finished, checkpoints or metrics mean ``stopped``, and a lone
``config.json`` means ``new``. Only small files are read; nothing is imported from jax.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import socket
import time

SKIP = {"checkpoints", "best", "tensorboard"}  # folders inside a run that hold no runs


@dataclasses.dataclass
class RunInfo:
    """One row of ``theseus status``."""

    path: pathlib.Path
    state: str
    step: int | None
    num_steps: int | None
    loss: float | None
    updated: float


def find_runs(root: pathlib.Path) -> list[pathlib.Path]:
    """Run directories (holding ``config.json``) at or under ``root``, sorted."""
    if (root / "config.json").is_file():
        return [root]
    runs = []
    for folder, subdirs, files in os.walk(root):
        if "config.json" in files:
            runs.append(pathlib.Path(folder))
            subdirs[:] = []
        else:
            subdirs[:] = sorted(d for d in subdirs if d not in SKIP and not d.startswith("."))
    return sorted(runs)


def read_run(workdir: pathlib.Path) -> RunInfo:
    """Everything ``theseus status`` shows about one run."""
    status = _json(workdir / "status.json")
    last_step, loss = _last_metrics(workdir / "metrics.jsonl")
    num_steps = _num_steps(workdir)
    times = [p.stat().st_mtime for p in (workdir / n for n in
             ("config.json", "metrics.jsonl", "summary.json", "status.json")) if p.exists()]
    if status:
        state = status.get("state", "unknown")
        if state == "running" and not _alive(workdir, status.get("pid")):
            state = "stopped"
        return RunInfo(workdir, state, status.get("step", last_step),
                       status.get("num_steps", num_steps), loss,
                       max([status.get("updated", 0.0), *times]))
    if (workdir / "summary.json").exists():
        state = "finished"
    elif last_step is not None or _has_checkpoint(workdir):
        state = "stopped"
    else:
        state = "new"
    return RunInfo(workdir, state, last_step, num_steps, loss, max(times, default=0.0))


def _json(path: pathlib.Path) -> dict | None:
    """A JSON object from a file, or None if it is missing or torn."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _last_metrics(path: pathlib.Path, tail_bytes: int = 65536) -> tuple[int | None, float | None]:
    """The last step and the last ``train/loss`` in ``metrics.jsonl`` (its tail only)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - tail_bytes))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None, None
    step = loss = None
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a torn line, or the first (partial) line of the tail
        if step is None and isinstance(row.get("step"), int):
            step = row["step"]
        if loss is None and isinstance(row.get("train/loss"), (int, float)):
            loss = float(row["train/loss"])
        if step is not None and loss is not None:
            break
    return step, loss


def _num_steps(workdir: pathlib.Path) -> int | None:
    """``trainer.num_steps`` from ``config.txt``."""
    try:
        text = (workdir / "config.txt").read_text()
    except OSError:
        return None
    match = re.search(r"^trainer\.num_steps = (\d+)$", text, re.MULTILINE)
    return int(match[1]) if match else None


def _has_checkpoint(workdir: pathlib.Path) -> bool:
    """Whether any committed checkpoint exists."""
    folder = workdir / "checkpoints"
    return folder.is_dir() and any((p / "commit_success.txt").exists() for p in folder.iterdir())


def _alive(workdir: pathlib.Path, pid: object) -> bool:
    """False only when the run's process is known to be gone: the lock names this machine
    and no process has that PID. A run on another machine is taken at its word."""
    owner = (workdir / ".lock").read_text(errors="replace") if (workdir / ".lock").exists() else ""
    match = re.search(r"pid (\d+) on (\S+)", owner)
    if match:
        pid, host = int(match[1]), match[2]
        if host != socket.gethostname():
            return True
    if not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def age(updated: float, now: float | None = None) -> str:
    """``12s``, ``5m``, ``3h``, ``2d``: how long ago ``updated`` was."""
    seconds = max(0, int((now or time.time()) - updated))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
