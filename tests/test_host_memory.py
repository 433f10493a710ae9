"""theseus.host_memory: freed XLA:CPU temporaries are reused instead of faulted in again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from theseus import host_memory

# Five calls of a program with ~45 MB of temporaries, after one to compile; with ``queued``
# the calls are dispatched without waiting for each other, as the training loop does.
PROGRAM = """
import json, resource, sys
import theseus, jax, jax.numpy as jnp
from theseus import host_memory
host_memory.run_cpu_inline()
x = jnp.arange(8 * 2**20, dtype=jnp.float32)
f = jax.jit(lambda x: (jnp.sort(x * -1.0) * 2.0)[::3].sum())
f(x).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
outs = []
for _ in range(5):
    outs.append(f(x))
    if sys.argv[1] == "waiting":
        outs[-1].block_until_ready()
jax.block_until_ready(outs)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
temp = f.lower(x).compile().memory_analysis().temp_size_in_bytes
print(json.dumps({"faults_per_call": faults, "temp_pages": temp / 4096}))
"""


def _env_with_malloc_defaults() -> dict[str, str]:
    """This process's environment without a ``THESEUS_MALLOC`` opt-out."""
    return {k: v for k, v in os.environ.items() if k != "THESEUS_MALLOC"}


def _faults(malloc: str | None, mode: str = "waiting") -> dict:
    env = _env_with_malloc_defaults()
    if malloc:
        env["THESEUS_MALLOC"] = malloc
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="glibc malloc tuning is Linux-only")
@pytest.mark.parametrize("mode", ["waiting", "queued"])
def test_freed_temporaries_are_reused_instead_of_faulted_in_every_call(mode):
    tuned, system = _faults(None, mode), _faults("system", mode)
    # With the C library's defaults every call maps the ~45 MB of temporaries anew and
    # faults each page in; tuned, the heap keeps them and a call faults few pages.
    assert system["faults_per_call"] > system["temp_pages"] / 2
    assert tuned["faults_per_call"] < system["faults_per_call"] / 4


def test_opt_out_leaves_malloc_and_dispatch_alone(monkeypatch):
    monkeypatch.setenv("THESEUS_MALLOC", "system")
    assert host_memory.keep_freed_memory() is False
    assert host_memory.run_cpu_inline() is False


@pytest.mark.skipif(sys.platform != "linux", reason="glibc malloc tuning is Linux-only")
def test_applies_on_glibc(monkeypatch):
    monkeypatch.delenv("THESEUS_MALLOC", raising=False)
    assert host_memory.keep_freed_memory() is True


def test_cpu_calls_run_inline_after_run_cpu_inline():
    program = ("import jax; from theseus import host_memory; host_memory.run_cpu_inline(); "
               "print(jax.config.read('jax_cpu_enable_async_dispatch'))")
    out = subprocess.run([sys.executable, "-c", program], check=True, capture_output=True,
                         text=True, env=_env_with_malloc_defaults()).stdout
    assert out.strip().splitlines()[-1] == "False"


# The restart that gives the heap huge pages (reexec_with_huge_pages).
RESTART_PROGRAM = """
import json, os, sys, time
from theseus import host_memory
started = host_memory.reexec_with_huge_pages(float(sys.argv[1]))
import ctypes
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
size = 64 * 2**20
block = libc.malloc(size)  # through malloc itself (numpy would madvise on its own)
ctypes.memset(block, 1, size)
huge_kb = 0
for line in open("/proc/self/smaps_rollup"):
    if line.startswith("AnonHugePages:"):
        huge_kb = int(line.split()[1])
print(json.dumps({"pid": os.getpid(), "started_at": started, "huge_kb": huge_kb,
                  "tunables": os.environ.get("GLIBC_TUNABLES", ""),
                  "marker": os.environ.get(host_memory.STARTED_AT_VAR)}))
"""


def _restart(extra_env: dict[str, str]) -> dict:
    env = {k: v for k, v in _env_with_malloc_defaults().items() if k != "GLIBC_TUNABLES"}
    proc = subprocess.Popen([sys.executable, "-c", RESTART_PROGRAM, "123.5"],
                            env={**env, **extra_env}, stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    return {**json.loads(out.strip().splitlines()[-1]), "spawned_pid": proc.pid}


@pytest.mark.skipif(not host_memory.huge_pages_wanted({}, host_memory.thp_mode(),
                                                      host_memory.glibc_version()),
                    reason="needs glibc >= 2.35 and the kernel's THP mode 'madvise'")
def test_restart_backs_the_heap_with_huge_pages_and_keeps_pid_and_start_time():
    restarted = _restart({})
    assert restarted["pid"] == restarted["spawned_pid"]  # execve: same process
    assert restarted["started_at"] == 123.5  # the first process's start time, carried
    assert restarted["tunables"] == host_memory.HUGE_PAGES_TUNABLE
    assert restarted["marker"] is None  # popped, so a child process restarts on its own
    assert restarted["huge_kb"] >= 32 * 1024
    plain = _restart({"THESEUS_MALLOC": "system"})
    assert plain["tunables"] == "" and plain["huge_kb"] < 32 * 1024


@pytest.mark.parametrize("environ, mode, glibc, wanted", [
    ({}, "madvise", (2, 36), True),
    ({}, "always", (2, 36), False),  # the kernel gives huge pages already
    ({}, "never", (2, 36), False),
    ({}, "", (2, 36), False),  # no THP support
    ({}, "madvise", (2, 31), False),  # glibc without the tunable
    ({}, "madvise", None, False),  # musl, macOS
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, "madvise", (2, 36), False),
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "madvise", (2, 36), False),  # user's choice
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "madvise", (2, 36), True),
    ({"THESEUS_MALLOC": "system"}, "madvise", (2, 36), False),
])
def test_huge_pages_are_wanted_only_where_the_restart_changes_something(environ, mode, glibc,
                                                                         wanted):
    assert host_memory.huge_pages_wanted(environ, mode, glibc) is wanted


def test_the_tunable_is_added_to_existing_ones():
    env = host_memory.huge_pages_environ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2",
                                          "HOME": "/h"})
    assert env == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1",
                   "HOME": "/h"}


def test_a_misspelled_malloc_setting_is_refused_in_one_sentence(monkeypatch):
    monkeypatch.setenv("THESEUS_MALLOC", "sytem")
    with pytest.raises(ValueError, match=r"THESEUS_MALLOC='sytem' is not a setting; set "
                                         r"THESEUS_MALLOC=system"):
        host_memory.reexec_with_huge_pages(0.0)


def test_thp_mode_and_glibc_version_read_this_machine():
    assert host_memory.thp_mode() in ("always", "madvise", "never", "")
    version = host_memory.glibc_version()
    assert version is None or (len(version) == 2 and version[0] >= 2)
