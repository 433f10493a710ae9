"""`theseus status`: one row per run, state from status.json or inferred from the files."""

from __future__ import annotations

import json
import os
import time

from tests.cli.conftest import one_error_line, run_theseus


def _run(root, name, *, status=None, summary=False, metrics=(), num_steps=100, age=0.0):
    workdir = root / name
    workdir.mkdir(parents=True)
    (workdir / "config.json").write_text("{}")
    (workdir / "config.txt").write_text(f"trainer.num_steps = {num_steps}\ntrainer.seed = 0\n")
    if metrics:
        rows = [{"step": s, "train/loss": loss} for s, loss in metrics] + [{"step": metrics[-1][0], "val/loss": 9.0}]
        (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if summary:
        (workdir / "summary.json").write_text("{}")
    if status:
        (workdir / "status.json").write_text(json.dumps({"num_steps": num_steps, "updated": time.time() - age, **status}))
    then = time.time() - age
    for path in workdir.iterdir():
        os.utime(path, (then, then))


def test_table_of_states_steps_losses_and_ages(tmp_path):
    root = tmp_path / "runs"
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    _run(root, "done", status={"state": "finished", "step": 100, "pid": 1}, metrics=[(100, 2.5)], age=7200)
    _run(root, "live", status={"state": "running", "step": 40, "pid": os.getpid()}, metrics=[(40, 3.25)], age=5)
    _run(root, "crashed", status={"state": "running", "step": 10, "pid": dead_pid}, metrics=[(10, 4.0)], age=120)
    _run(root, "nan", status={"state": "failed", "step": 12, "pid": dead_pid}, metrics=[(12, 5.0)])
    _run(root, "requeue", status={"state": "preempted", "step": 30, "pid": dead_pid}, age=3 * 86400)
    _run(root / "old", "finished", summary=True, metrics=[(50, 1.5)], num_steps=50)
    _run(root / "old", "partial", metrics=[(20, 2.0), (21, 1.9)])
    _run(root, "fresh")
    result = run_theseus("status", str(root))
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["RUN", "STEP", "LOSS", "STATE", "AGE"]
    table = {row[0]: row[1:] for row in rows[1:]}
    assert table == {
        "crashed": ["10/100", "4.0000", "stopped", "2m"],
        "done": ["100/100", "2.5000", "finished", "2h"],
        "fresh": ["-/100", "-", "new", table["fresh"][3]],
        "live": ["40/100", "3.2500", "running", table["live"][3]],
        "nan": ["12/100", "5.0000", "failed", table["nan"][3]],
        "old/finished": ["50/50", "1.5000", "finished", table["old/finished"][3]],
        "old/partial": ["21/100", "1.9000", "stopped", table["old/partial"][3]],
        "requeue": ["30/100", "-", "preempted", "3d"],
    }
    assert [row[0] for row in rows[1:]] == sorted(table)


def test_no_runs_and_a_missing_folder(tmp_path):
    empty = run_theseus("status", str(tmp_path))
    assert empty.returncode == 0 and empty.stdout.strip() == f"no runs under {tmp_path}"
    assert "is not a directory" in one_error_line(run_theseus("status", str(tmp_path / "nope")))
