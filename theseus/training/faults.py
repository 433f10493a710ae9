"""Fault injection for recovery tests: ``THESEUS_FAULT=kill:EVENT:STEP`` makes the process
``SIGKILL`` itself at a precise moment, exactly as ``kill -9`` from outside would.

Events: ``step`` (step STEP dispatched, not finished), ``save`` (the asynchronous save of
step STEP started, still being written), ``eval`` (half-way through the evaluation at step
STEP). Unset, this costs one dictionary lookup per event.
"""

from __future__ import annotations

import os
import signal

ENV = "THESEUS_FAULT"


def _parse(spec: str) -> tuple[str, int] | None:
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] != "kill":
        return None
    return parts[1], int(parts[2])


_FAULT = _parse(os.environ.get(ENV, ""))


def maybe_kill(event: str, step: int) -> None:
    """SIGKILLs this process if ``THESEUS_FAULT`` names this event and step."""
    if _FAULT is not None and _FAULT == (event, step):
        os.kill(os.getpid(), signal.SIGKILL)
