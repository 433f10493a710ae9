"""theseus.host_memory: freed XLA:CPU temporaries are reused instead of faulted in again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from theseus import host_memory

PROGRAM = """
import json, resource
import theseus, jax, jax.numpy as jnp
x = jnp.arange(8 * 2**20, dtype=jnp.float32)
f = jax.jit(lambda x: (jnp.sort(x * -1.0) * 2.0)[::3].sum())
f(x).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    f(x).block_until_ready()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
temp = f.lower(x).compile().memory_analysis().temp_size_in_bytes
print(json.dumps({"faults_per_call": faults, "temp_pages": temp / 4096}))
"""


def _faults(malloc: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "THESEUS_MALLOC"}
    if malloc:
        env["THESEUS_MALLOC"] = malloc
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="glibc malloc tuning is Linux-only")
def test_freed_temporaries_are_reused_instead_of_faulted_in_every_call():
    tuned, system = _faults(None), _faults("system")
    # With the C library's defaults every call maps the ~45 MB of temporaries anew and
    # faults each page in; tuned, the heap keeps them and a call faults few pages.
    assert system["faults_per_call"] > system["temp_pages"] / 2
    assert tuned["faults_per_call"] < system["faults_per_call"] / 4


def test_opt_out_leaves_malloc_alone(monkeypatch):
    monkeypatch.setenv("THESEUS_MALLOC", "system")
    assert host_memory.keep_freed_memory() is False


@pytest.mark.skipif(sys.platform != "linux", reason="glibc malloc tuning is Linux-only")
def test_applies_on_glibc(monkeypatch):
    monkeypatch.delenv("THESEUS_MALLOC", raising=False)
    assert host_memory.keep_freed_memory() is True
