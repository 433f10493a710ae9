"""One run per workdir: an exclusive lock on ``workdir/.lock``, which holds the owner's PID.

The lock is an ``flock``, so the kernel releases it when its process dies, even by
``kill -9``: a lock file left behind by a dead process is stale and is simply taken over.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import socket

LOCK_NAME = ".lock"


class WorkdirLockedError(RuntimeError):
    """Another live process is training in this workdir."""


class WorkdirLock:
    """Context manager holding the workdir's lock for the lifetime of a run."""

    def __init__(self, workdir: pathlib.Path):
        self.path = pathlib.Path(workdir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Takes the lock or raises ``WorkdirLockedError`` naming the owner."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise WorkdirLockedError(
                f"workdir {self.path.parent} is in use by {owner}; wait for it to finish, stop "
                f"it, or pass a different --workdir.") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Releases the lock (the file stays; its content no longer matters)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WorkdirLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
