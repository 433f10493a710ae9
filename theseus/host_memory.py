"""Host memory: keep what XLA:CPU frees for the next step instead of returning it to the OS.

Why: XLA:CPU allocates an executable's temporaries in one block per call (189 MB for the
tiny preset's train step) and frees it when the call ends. glibc serves a block that large
with ``mmap`` (a thread's arena cannot hold more than 64 MB, and blocks over 32 MB are
always mapped) and gives it back with ``munmap``, so every step page-faults all of it in
again: on the tiny preset 46,000 page faults and 76 ms of kernel time in a 290 ms step.
With one arena, no ``mmap`` and no trimming, the freed block stays in the heap and the next
step reuses it (43 faults a step). The cost is that the process keeps its peak heap, as
jemalloc and tcmalloc do.

``keep_freed_memory`` runs when ``theseus`` is imported, before JAX starts any thread (the
arena limit only counts for arenas created afterwards). ``THESEUS_MALLOC=system`` leaves
the C library's defaults alone. Outside glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt(3) parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8


def keep_freed_memory() -> bool:
    """Tunes glibc malloc so that freed large blocks are reused; True if it was applied."""
    if sys.platform != "linux" or os.environ.get("THESEUS_MALLOC", "") == "system":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; -1 as the trim threshold means never trim.
    return all(mallopt(param, value) == 1 for param, value in
               ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1)))
