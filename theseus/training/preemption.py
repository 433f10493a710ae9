"""Preemption: SIGTERM, SIGINT and SIGUSR1 ask the run to stop after the current step.

The trainer then saves a checkpoint and exits with ``REQUEUE_EXIT_CODE``, which launchers
read as "requeue me" (SLURM sends SIGUSR1 ahead of the time limit with ``--signal``, and
SIGTERM on preemption). A second SIGINT (Ctrl-C twice) exits at once: checkpoints are only
ever renamed into place when complete, so nothing is corrupted.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

REQUEUE_EXIT_CODE = 75  # EX_TEMPFAIL: "temporary failure, try again"
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class PreemptionWatcher:
    """Records stop requests from signals; ``requested`` is polled by the training loop."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """True once any of the watched signals arrived."""
        return self.signal_name is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.signal_name == "SIGINT":
            print("\nsecond interrupt: exiting now", file=sys.stderr, flush=True)
            os._exit(INTERRUPTED_EXIT_CODE)
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
            print(f"\n{self.signal_name} received: finishing this step, saving a checkpoint, "
                  f"then exiting with code {REQUEUE_EXIT_CODE} (requeue)", file=sys.stderr,
                  flush=True)
        elif signum == signal.SIGINT:
            self.signal_name = "SIGINT"

    def __enter__(self) -> "PreemptionWatcher":
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
