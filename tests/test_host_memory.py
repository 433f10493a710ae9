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
