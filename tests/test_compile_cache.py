"""The persistent compilation cache: where it goes, how to turn it off, and that a second
process loads what the first compiled."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT, tiny_args
from theseus import compile_cache
from theseus.config import ConfigError

# Enables the cache in argv[1], compiles one small function, prints the cache hits.
PROGRAM = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp
    from theseus import compile_cache
    hits = []
    jax.monitoring.register_event_listener(
        lambda name, **kw: hits.append(name) if name == "/jax/compilation_cache/cache_hits" else None)
    compile_cache.enable(sys.argv[1])
    print(float(jax.jit(lambda x: jnp.sin(x) * 2.0 + x)(jnp.arange(3.0)).sum()), len(hits))
""")


def test_default_directory():
    assert compile_cache.cache_dir({}) == pathlib.Path("~/.cache/theseus/jax").expanduser()
    assert compile_cache.cache_dir({"THESEUS_CACHE": "/c"}) == pathlib.Path("/c/jax")
    assert compile_cache.cache_dir({compile_cache.ENV_VAR: "/x/y"}) == pathlib.Path("/x/y")


@pytest.mark.parametrize("value", ["off", "OFF", "0", "false", "no", ""])
def test_turned_off(value):
    assert compile_cache.cache_dir({compile_cache.ENV_VAR: value}) is None


def test_enable_when_off_changes_nothing(monkeypatch):
    import jax

    monkeypatch.setenv(compile_cache.ENV_VAR, "off")
    before = jax.config.jax_compilation_cache_dir
    assert compile_cache.enable() is None
    assert jax.config.jax_compilation_cache_dir == before


def test_unwritable_directory_is_one_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="THESEUS_COMPILE_CACHE to a writable directory"):
        compile_cache.enable(blocker / "jax")


def _compile_in_subprocess(directory: pathlib.Path) -> tuple[str, int]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", PROGRAM, str(directory)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    value, hits = out.stdout.split()
    return value, int(hits)


@pytest.mark.slow
def test_second_process_loads_the_first_ones_program(tmp_path):
    first_value, first_hits = _compile_in_subprocess(tmp_path)
    assert first_hits == 0 and any(tmp_path.iterdir())  # even a tiny, fast program is written
    second_value, second_hits = _compile_in_subprocess(tmp_path)
    assert second_hits >= 1 and second_value == first_value


@pytest.mark.slow
def test_launch_uses_the_cache_by_default(tmp_path, launch):
    cache = tmp_path / "cache"
    result = launch(*tiny_args(tmp_path / "run"), env={"THESEUS_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr
    assert len(list((cache / "jax").iterdir())) >= 2  # state init and the train step at least
