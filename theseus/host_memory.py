"""Host memory on the CPU backend: reuse what XLA frees instead of faulting it in again.

Why: XLA:CPU allocates an executable's temporaries in one block per call (189 MB for the
tiny preset's train step) and frees it when the call ends. glibc serves a block that large
with ``mmap`` (a thread's arena cannot hold more than 64 MB, and blocks over 32 MB are
always mapped) and gives it back with ``munmap``, so every step page-faults all of it in
again: on the tiny preset 46,000 page faults and 76 ms of kernel time in a 290 ms step.

Two settings together make the next step reuse the freed block (43 faults a step):

- ``keep_freed_memory`` (run when ``theseus`` is imported, before JAX starts any thread,
  since the arena limit only counts for arenas created afterwards): one arena, no ``mmap``,
  no trimming. The process keeps its peak heap, as jemalloc and tcmalloc do.
- ``run_cpu_inline`` (run by ``theseus.runner.run`` before the backend starts): XLA:CPU
  runs each call on the calling thread instead of queueing it behind the previous one.
  Queued, two steps' temporaries are alive at once and the heap fragments and grows
  (GPT-2 small at batch 2 x 256: 8.5 GB resident and 38,000 faults a step, against 3.2 GB
  and none inline). On CPU the host and the device are the same cores, so nothing is lost
  by not overlapping them.

A third, ``reexec_with_huge_pages`` (run first thing by ``launch.py``, ``theseus run`` and
``theseus sample``), backs that heap with 2 MB transparent huge pages. A train step's dots
stream through hundreds of megabytes (GPT-2 small's output head: a 77 MB table and a 103 MB
logits array at batch 2 x 256), and with 4 KB pages the TLB misses dominate: that head's
forward dot ran at 200-330 GFLOP/s against 500-560 with huge pages, and a train step took
12 % (tiny) and 3-22 % (GPT-2 small, depending on the machine's load) longer. On kernels
whose THP mode is ``madvise`` (the common default) only memory marked with ``madvise`` gets
huge pages, and glibc marks its heap only when the ``glibc.malloc.hugetlb=1`` tunable is
set when the process starts; so the process re-executes itself once (same PID, same
arguments) with the tunable added to ``GLIBC_TUNABLES``, before anything heavy is imported.

``THESEUS_MALLOC=system`` leaves all three at the defaults;
``GLIBC_TUNABLES=glibc.malloc.hugetlb=0`` turns off the huge pages alone. Outside glibc
(macOS, musl) they do nothing. ``bench/huge_pages.py`` measures the difference.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import sys
from collections.abc import Mapping

# mallopt(3) parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8

MALLOC_SETTINGS = ("", "system")  # THESEUS_MALLOC: unset (tuned) or the C library's defaults
HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"  # glibc >= 2.35: madvise its heap for THP
HUGE_PAGES_MIN_GLIBC = (2, 35)
THP_MODE_FILE = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled")
# Carries the command's start time across the re-execution, and marks the second process.
STARTED_AT_VAR = "THESEUS_STARTED_AT"


def _opted_out(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get("THESEUS_MALLOC", "") == "system"


def check_malloc_setting(environ: Mapping[str, str]) -> None:
    """Raises ValueError, in one sentence, if ``THESEUS_MALLOC`` has a value it does not know."""
    value = environ.get("THESEUS_MALLOC", "")
    if value not in MALLOC_SETTINGS:
        raise ValueError(f"THESEUS_MALLOC={value!r} is not a setting; set THESEUS_MALLOC=system "
                         "for the C library's malloc defaults, or unset it.")


def keep_freed_memory() -> bool:
    """Tunes glibc malloc so that freed large blocks are reused; True if it was applied."""
    if sys.platform != "linux" or _opted_out():
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; -1 as the trim threshold means never trim.
    return all(mallopt(param, value) == 1 for param, value in
               ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1)))


def run_cpu_inline() -> bool:
    """Makes XLA:CPU run each call on the calling thread (no asynchronous dispatch); True if
    set. Takes effect only if the CPU backend has not started yet; other backends are
    untouched."""
    if _opted_out():
        return False
    import jax

    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return True


def thp_mode() -> str:
    """The kernel's transparent huge page mode (``always``, ``madvise``, ``never``), or ``""``
    where it cannot be read (not Linux, no THP support)."""
    try:
        text = THP_MODE_FILE.read_text()
    except OSError:
        return ""
    return next((w[1:-1] for w in text.split() if w.startswith("[")), "")


def glibc_version() -> tuple[int, ...] | None:
    """The running C library's version if it is glibc (``(2, 36)``), else None."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        return tuple(int(part) for part in version.split(".")[:2]) if name == "glibc" else None
    except (AttributeError, ValueError, OSError):
        return None


def huge_pages_wanted(environ: Mapping[str, str], mode: str,
                      glibc: tuple[int, ...] | None) -> bool:
    """Whether restarting with ``HUGE_PAGES_TUNABLE`` would give the heap huge pages: glibc
    new enough to know the tunable, THP mode ``madvise`` (``always`` gives them already,
    ``never`` refuses them), ``glibc.malloc.hugetlb`` not set yet (to any value: a user's
    ``=0`` is kept) and no ``THESEUS_MALLOC=system``."""
    tunable_name = HUGE_PAGES_TUNABLE.split("=")[0]
    names = [t.split("=")[0] for t in environ.get("GLIBC_TUNABLES", "").split(":")]
    return (glibc is not None and glibc >= HUGE_PAGES_MIN_GLIBC and mode == "madvise"
            and tunable_name not in names and not _opted_out(environ))


def huge_pages_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` with ``HUGE_PAGES_TUNABLE`` added to its ``GLIBC_TUNABLES``."""
    tunables = [t for t in environ.get("GLIBC_TUNABLES", "").split(":") if t]
    return {**environ, "GLIBC_TUNABLES": ":".join([*tunables, HUGE_PAGES_TUNABLE])}


def reexec_with_huge_pages(started_at: float) -> float:
    """Restarts this process once with ``HUGE_PAGES_TUNABLE`` if that would give its heap
    huge pages; returns the command's start time (``started_at``, or the first process's).

    Call it first thing in an entry point, before jax is imported: the restart replaces the
    process image (same PID and arguments), so everything imported so far is loaded again.
    Raises ValueError if ``THESEUS_MALLOC`` is misspelled.
    """
    check_malloc_setting(os.environ)
    carried = os.environ.pop(STARTED_AT_VAR, None)
    if carried is not None:  # this is the restarted process
        return float(carried)
    if not huge_pages_wanted(os.environ, thp_mode(), glibc_version()):
        return started_at
    env = {**huge_pages_environ(os.environ), STARTED_AT_VAR: repr(started_at)}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    return started_at  # not reached: execve does not return
