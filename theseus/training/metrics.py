"""Metrics: ``metrics.jsonl`` rows and TensorBoard events, fetched without per-step syncs.

The train step returns metrics as device arrays. ``MetricsLogger.push`` only queues them;
``flush`` (every ``log_every`` steps) fetches the whole queue in one ``device_get`` and
writes one row per step, so logging never stalls the accelerator step by step.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
import time
from typing import Any

import jax

from theseus.fileio import atomic_write_text


def _import_summary_writer() -> type:
    """``tensorboardX.SummaryWriter``, imported with torch hidden: ``tensorboardX.writer``
    imports torch whenever it is installed (2-3 s of start-up) only to recognise torch
    tensors, which theseus never logs. If torch is already imported it is left alone."""
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter
        return SummaryWriter
    sys.modules["torch"] = None  # makes ``import torch`` raise ImportError
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


SummaryWriter = _import_summary_writer()


def read_metrics(path: pathlib.Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.jsonl``; a torn last line (a crash mid-write) is ignored."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def truncate_metrics(path: pathlib.Path, last_step: int) -> None:
    """Drops rows after ``last_step``: a resumed run logs those steps again."""
    rows = [r for r in read_metrics(path) if r.get("step", 0) <= last_step]
    if path.exists():
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


class MetricsLogger:
    """Writes queued per-step metrics to ``metrics.jsonl`` and TensorBoard."""

    def __init__(self, workdir: pathlib.Path, tokens_per_step: int, flops_per_token: float,
                 peak_flops: float, start_step: int):
        self._jsonl = open(workdir / "metrics.jsonl", "a", buffering=1)
        self._tb = SummaryWriter(str(workdir / "tensorboard"))
        self._queue: list[tuple[int, dict]] = []
        self._tokens_per_step, self._flops_per_token = tokens_per_step, flops_per_token
        self._peak = peak_flops
        self._window_start, self._window_step = time.perf_counter(), start_step
        self.last: dict[str, float] = {}

    def push(self, step: int, metrics: dict[str, jax.Array]) -> None:
        """Queues the (device) metrics of ``step``; nothing is fetched here."""
        self._queue.append((step, metrics))

    def flush(self) -> dict[str, float]:
        """Fetches queued metrics, writes one row per step; returns the newest row."""
        self.flush_rows()
        return self.last

    def flush_rows(self) -> list[dict[str, Any]]:
        """Like ``flush``, but returns every row it wrote."""
        if not self._queue:
            return []
        fetched = jax.device_get([m for _, m in self._queue])
        now = time.perf_counter()
        last_step = self._queue[-1][0]
        elapsed = max(now - self._window_start, 1e-9)
        tps = (last_step - self._window_step) * self._tokens_per_step / elapsed
        speed = {"tokens_per_sec": tps,
                 "mfu": tps * self._flops_per_token / self._peak,
                 "step_time": elapsed / max(last_step - self._window_step, 1)}
        rows = []
        for (step, _), values in zip(self._queue, fetched):
            rows.append(self.write(step, {**{k: float(v) for k, v in values.items()}, **speed}))
        self._queue.clear()
        self._window_start, self._window_step = now, last_step
        return rows

    def write(self, step: int, values: dict[str, float]) -> dict[str, Any]:
        """Writes one row now (used directly for evaluation results); returns it."""
        row = {"step": step, **{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                for k, v in values.items()}}
        self._jsonl.write(json.dumps(row) + "\n")
        for k, v in values.items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                self._tb.add_scalar(k, v, step)
        self.last = {**self.last, **values, "step": step}
        return {"step": step, **values}

    def restart_window(self) -> None:
        """Flushes, then starts timing afresh, so that time spent outside training steps
        (compilation, evaluation) does not count against tokens/s."""
        self.flush()
        self._window_start = time.perf_counter()

    def close(self) -> None:
        """Flushes and closes both outputs."""
        self.flush()
        self._jsonl.close()
        self._tb.close()
