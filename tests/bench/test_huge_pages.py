"""bench/huge_pages.py: its dot timer and the page settings its two processes run under."""

from __future__ import annotations

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load():
    spec = importlib.util.spec_from_file_location("huge_pages", ROOT / "bench" / "huge_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_times_every_shape(monkeypatch):
    bench = load()
    monkeypatch.setattr(bench, "SHAPES", {"a": (8, 16, 32), "b": (4, 4, 4)})
    times = bench.time_dots(repeats=2)
    assert set(times) == {"a", "b"} and all(t > 0 for t in times.values())


def test_the_two_settings_are_4kb_and_the_tunable_launch_py_adds():
    from theseus import host_memory

    bench = load()
    assert bench.PAGES["2 MB"] == host_memory.HUGE_PAGES_TUNABLE
    # With either value set, theseus's worker keeps it instead of restarting.
    for tunables in bench.PAGES.values():
        assert not host_memory.huge_pages_wanted({"GLIBC_TUNABLES": tunables}, "madvise", (2, 36))


def test_workers_run_in_the_train_benchs_environment_with_the_page_setting(monkeypatch):
    bench = load()
    seen = {}

    def fake_run(cmd, env, **kwargs):
        seen.update(cmd=cmd, env=env)
        return type("Done", (), {"returncode": 0, "stdout": "ok\n", "stderr": ""})()

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    assert bench.in_process(["x.py"], "4 KB", 1) == "ok\n"
    assert seen["cmd"][:3] == ["taskset", "-c", "0"]
    assert seen["env"]["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=0"
    assert "--xla_cpu_multi_thread_eigen=false" in seen["env"]["XLA_FLAGS"]
    assert seen["env"]["THESEUS_COMPILE_CACHE"] == "off" and seen["env"]["JAX_PLATFORMS"] == "cpu"
